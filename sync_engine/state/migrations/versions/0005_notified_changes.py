"""notified changes: the field values a change notification carried (Zoho affected_values)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "notified_changes",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("system", sa.String(64), nullable=False),
        sa.Column("object", sa.String(128), nullable=False),
        sa.Column("external_id", sa.String(255), nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("values", JSON, nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notified_changes")),
        sa.UniqueConstraint(
            "system", "object", "external_id", "occurred_at",
            name=op.f("uq_notified_changes_system_object_external_id_occurred_at"),
        ),
    )
    op.create_index("ix_notified_changes_received", "notified_changes", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_notified_changes_received", table_name="notified_changes")
    op.drop_table("notified_changes")
