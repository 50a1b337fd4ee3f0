"""links: an index for resolving a reference by system and external id

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_links_external", "links", ["system", "external_id"])


def downgrade() -> None:
    op.drop_index("ix_links_external", table_name="links")
