"""staged_changes.data_hash and snapshots.source_hash: a record's version is its modified time and its content

A system whose modified times have whole-second resolution (Zoho) gives two edits made in one second the
same modified time. A read made in that second sees the first; the second edit's re-read then carried the
modified time already reconciled and was skipped as a repeat: lost until the next edit. The hash of the
record as the system returned it tells such a re-read from a true repeat.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable and without a backfill: a version seen before this revision has no hash, and a re-read of
    # it with the same modified time is taken as a repeat (as before) until its next change.
    op.add_column("staged_changes", sa.Column("data_hash", sa.String(32)))
    op.add_column("snapshots", sa.Column("source_hash", sa.String(32)))


def downgrade() -> None:
    with op.batch_alter_table("snapshots") as batch:
        batch.drop_column("source_hash")
    with op.batch_alter_table("staged_changes") as batch:
        batch.drop_column("data_hash")
