"""trigger firings: a won deal makes one ERP order, ever

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "trigger_firings",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("trigger", sa.String(128), nullable=False),
        sa.Column("source_entity", sa.String(64), nullable=False),
        sa.Column("source_id", sa.String(64), nullable=False),
        sa.Column("target_entity", sa.String(64), nullable=False),
        sa.Column("target_id", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("fired_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trigger_firings")),
        sa.UniqueConstraint("trigger", "source_id", name=op.f("uq_trigger_firings_trigger_source_id")),
    )
    op.create_index("ix_trigger_firings_target", "trigger_firings", ["trigger", "target_id"])


def downgrade() -> None:
    op.drop_index("ix_trigger_firings_target", table_name="trigger_firings")
    op.drop_table("trigger_firings")
