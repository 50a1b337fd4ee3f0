"""outbox: an index for sending one entity's pending rows in id order

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_outbox_pick", "outbox", ["entity", "status", "id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_pick", table_name="outbox")
