"""engine pipeline: staged changes, write outbox, match keys

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "staged_changes",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("system", sa.String(64), nullable=False),
        sa.Column("object", sa.String(128), nullable=False),
        sa.Column("external_id", sa.String(255), nullable=False),
        sa.Column("modified_at", TS),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("run_id", ID),
        sa.Column("staged_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staged_changes")),
        sa.UniqueConstraint(
            "entity", "system", "object", "external_id", name=op.f("uq_staged_changes_entity_system_object_external_id")
        ),
    )
    op.create_index("ix_staged_changes_pick", "staged_changes", ["entity", "status", "id"])
    op.create_table(
        "outbox",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("op_key", sa.String(255), nullable=False),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("canonical_id", sa.String(64), nullable=False),
        sa.Column("system", sa.String(64), nullable=False),
        sa.Column("object", sa.String(128), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("external_id", sa.String(255)),
        sa.Column("values", JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("flow", sa.String(128)),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("run_id", ID),
        sa.Column("error", sa.Text()),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS),
        sa.Column("done_at", TS),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("op_key", name=op.f("uq_outbox_op_key")),
    )
    op.create_index("ix_outbox_work", "outbox", ["status", "system", "id"])
    op.create_index("ix_outbox_record", "outbox", ["entity", "canonical_id", "system"])
    op.create_table(
        "match_keys",
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("field", sa.String(64), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        sa.Column("canonical_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("entity", "field", "value", "canonical_id", name=op.f("pk_match_keys")),
    )
    op.create_index("ix_match_keys_record", "match_keys", ["entity", "canonical_id"])


def downgrade() -> None:
    for table in ("match_keys", "outbox", "staged_changes"):
        op.drop_table(table)
