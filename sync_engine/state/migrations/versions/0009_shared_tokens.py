"""shared_tokens: access tokens the deployment's processes share, sealed, with the fetch claim

Every process fetched its own token: an eleventh worker started within a minute passed Fxiaoke's 10 token
calls a minute, and a 31st Zoho token evicted one another process was still using.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "shared_tokens",
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("sealed", sa.Text()),
        sa.Column("expires_at", sa.Float()),
        sa.Column("fetch_owner", sa.String(255)),
        sa.Column("fetch_until", sa.Float()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_shared_tokens")),
    )


def downgrade() -> None:
    op.drop_table("shared_tokens")
