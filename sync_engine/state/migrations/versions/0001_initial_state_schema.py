"""initial state schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26

Written for both SQLite and PostgreSQL, with plain SQLAlchemy types and
explicit constraint names so it never changes meaning when the models do.
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def _pk(*columns: str, table: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint(*columns, name=op.f(f"pk_{table}"))


def _status(table: str, column: str, name: str, *values: str) -> tuple[sa.Column, sa.CheckConstraint]:
    allowed = ", ".join(f"'{v}'" for v in values)
    return (
        sa.Column(column, sa.String(16), nullable=False),
        sa.CheckConstraint(f"{column} IN ({allowed})", name=op.f(f"ck_{table}_{name}")),
    )


def _where(condition: str) -> dict[str, sa.TextClause]:
    return {"postgresql_where": sa.text(condition), "sqlite_where": sa.text(condition)}


def upgrade() -> None:
    op.create_table(
        "records",
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("canonical_id", sa.String(64), nullable=False),
        sa.Column("values", JSON, nullable=False),
        sa.Column("hash", sa.String(64)),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("deleted_at", TS),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        _pk("entity", "canonical_id", table="records"),
    )
    op.create_table(
        "links",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("canonical_id", sa.String(64), nullable=False),
        sa.Column("system", sa.String(64), nullable=False),
        sa.Column("object", sa.String(128), nullable=False),
        sa.Column("external_id", sa.String(255), nullable=False),
        *_status("links", "status", "link_status", "active", "deleted", "inactive"),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_synced_at", TS),
        _pk("id", table="links"),
        sa.UniqueConstraint("system", "object", "external_id", name=op.f("uq_links_system_object_external_id")),
        sa.UniqueConstraint("entity", "canonical_id", "system", name=op.f("uq_links_entity_canonical_id_system")),
        sa.ForeignKeyConstraint(
            ["entity", "canonical_id"],
            ["records.entity", "records.canonical_id"],
            name=op.f("fk_links_entity_canonical_id_records"),
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "snapshots",
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("canonical_id", sa.String(64), nullable=False),
        sa.Column("system", sa.String(64), nullable=False),
        sa.Column("values", JSON, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("source_modified_at", TS),
        *_status("snapshots", "last_action", "snapshot_action", "read", "write"),
        sa.Column("read_at", TS),
        sa.Column("written_at", TS),
        sa.Column("last_op_key", sa.String(255)),
        sa.Column("updated_at", TS, nullable=False),
        _pk("entity", "canonical_id", "system", table="snapshots"),
        sa.ForeignKeyConstraint(
            ["entity", "canonical_id"],
            ["records.entity", "records.canonical_id"],
            name=op.f("fk_snapshots_entity_canonical_id_records"),
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "cursors",
        sa.Column("system", sa.String(64), nullable=False),
        sa.Column("object", sa.String(128), nullable=False),
        sa.Column("consumer", sa.String(128), nullable=False),
        sa.Column("watermark", TS),
        sa.Column("tiebreak", JSON),
        sa.Column("resume", JSON),
        sa.Column("updated_at", TS, nullable=False),
        _pk("system", "object", "consumer", table="cursors"),
    )

    op.create_table(
        "jobs",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("payload", JSON, nullable=False),
        *_status("jobs", "status", "job_status", "queued", "running", "done", "failed", "dead"),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("run_at", TS, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("lock_key", sa.String(255)),
        sa.Column("dedupe_key", sa.String(255)),
        sa.Column("unique_key", sa.String(255)),
        sa.Column("claimed_by", sa.String(128)),
        sa.Column("lease_expires_at", TS),
        sa.Column("heartbeat_at", TS),
        sa.Column("last_error", sa.Text()),
        sa.Column("result", JSON),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("started_at", TS),
        sa.Column("finished_at", TS),
        _pk("id", table="jobs"),
        sa.UniqueConstraint("unique_key", name=op.f("uq_jobs_unique_key")),
    )
    op.create_index(
        "ix_jobs_claim", "jobs", [sa.literal_column("priority DESC"), "run_at", "id"], **_where("status = 'queued'")
    )
    op.create_index(
        "ix_jobs_lock_key_pending",
        "jobs",
        ["lock_key", "id"],
        **_where("lock_key IS NOT NULL AND status IN ('queued', 'running')"),
    )
    op.create_index("uq_jobs_lock_key_running", "jobs", ["lock_key"], unique=True, **_where("status = 'running'"))
    op.create_index(
        "uq_jobs_dedupe_key_pending", "jobs", ["dedupe_key"], unique=True, **_where("status IN ('queued', 'running')")
    )
    op.create_index("ix_jobs_lease", "jobs", ["lease_expires_at"], **_where("status = 'running'"))
    op.create_index("ix_jobs_status_finished_at", "jobs", ["status", "finished_at"])
    if op.get_bind().dialect.name == "postgresql":
        # Every job is updated 2-3 times and then deleted: vacuum and analyze the
        # queue after 1-2 % of changes instead of PostgreSQL's 20 %, so dead tuples
        # do not pile up in the claim index and the planner knows the queue's size.
        op.execute(
            "ALTER TABLE jobs SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.02)"
        )

    op.create_table(
        "inbox",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("system", sa.String(64), nullable=False),
        sa.Column("dedupe_key", sa.String(255), nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("headers", JSON, nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        *_status("inbox", "status", "inbox_status", "received", "queued", "processed", "ignored", "failed"),
        sa.Column("job_id", ID),
        _pk("id", table="inbox"),
        sa.UniqueConstraint("system", "dedupe_key", name=op.f("uq_inbox_system_dedupe_key")),
    )
    op.create_index("ix_inbox_received_at", "inbox", ["received_at"])

    op.create_table(
        "runs",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("flow", sa.String(128), nullable=False),
        *_status("runs", "kind", "run_kind", "incremental", "full", "webhook", "reconcile", "replay", "dry_run"),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS),
        *_status("runs", "status", "run_status", "running", "succeeded", "partial", "failed", "cancelled"),
        sa.Column("stats", JSON, nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("job_id", ID),
        _pk("id", table="runs"),
    )
    op.create_index("ix_runs_flow_started_at", "runs", ["flow", "started_at"])

    op.create_table(
        "audit_events",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("canonical_id", sa.String(64)),
        sa.Column("run_id", ID),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("system", sa.String(64)),
        sa.Column("object", sa.String(128)),
        sa.Column("external_id", sa.String(255)),
        sa.Column("origin", sa.String(16)),
        sa.Column("api_call", JSON),
        sa.Column("details", JSON, nullable=False),
        _pk("id", table="audit_events"),
        sa.CheckConstraint(
            "origin IN ('event', 'poll', 'replay', 'reconcile', 'manual')", name=op.f("ck_audit_events_audit_origin")
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_audit_events_run_id_runs"), ondelete="SET NULL"
        ),
    )
    op.create_index("ix_audit_events_entity_canonical_id_at", "audit_events", ["entity", "canonical_id", "at"])
    op.create_index("ix_audit_events_at", "audit_events", ["at"])
    op.create_index("ix_audit_events_run_id", "audit_events", ["run_id"])

    op.create_table(
        "dead_letters",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("entity", sa.String(64)),
        sa.Column("flow", sa.String(128)),
        sa.Column("system", sa.String(64)),
        sa.Column("object", sa.String(128)),
        sa.Column("external_id", sa.String(255)),
        sa.Column("canonical_id", sa.String(64)),
        *_status("dead_letters", "stage", "dead_letter_stage", "pull", "map", "push", "reference", "conflict"),
        sa.Column("code", sa.String(128)),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        *_status("dead_letters", "status", "dead_letter_status", "open", "replayed", "discarded"),
        sa.Column("run_id", ID),
        sa.Column("job_id", ID),
        sa.Column("replay_job_id", ID),
        sa.Column("lock_key", sa.String(255)),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("closed_at", TS),
        _pk("id", table="dead_letters"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_dead_letters_run_id_runs"), ondelete="SET NULL"
        ),
    )
    op.create_index("ix_dead_letters_status_entity", "dead_letters", ["status", "entity"])
    op.create_index("ix_dead_letters_entity_canonical_id", "dead_letters", ["entity", "canonical_id"])
    op.create_index(
        "ix_dead_letters_system_object_external_id", "dead_letters", ["system", "object", "external_id"]
    )

    op.create_table(
        "reviews",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        *_status("reviews", "kind", "review_kind", "match", "conflict", "delete"),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("canonical_id", sa.String(64)),
        sa.Column("system", sa.String(64)),
        sa.Column("external_id", sa.String(255)),
        sa.Column("subject_key", sa.String(512)),
        sa.Column("details", JSON, nullable=False),
        *_status("reviews", "status", "review_status", "open", "accepted", "rejected"),
        sa.Column("resolution", JSON),
        sa.Column("resolved_by", sa.String(128)),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("resolved_at", TS),
        _pk("id", table="reviews"),
    )
    op.create_index("ix_reviews_status_kind_entity", "reviews", ["status", "kind", "entity"])
    op.create_index("uq_reviews_subject_key_open", "reviews", ["subject_key"], unique=True, **_where("status = 'open'"))

    op.create_table(
        "conflicts",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("canonical_id", sa.String(64), nullable=False),
        sa.Column("field", sa.String(128), nullable=False),
        sa.Column("values", JSON, nullable=False),
        sa.Column("policy", sa.String(32), nullable=False),
        sa.Column("winner_system", sa.String(64)),
        sa.Column("resolved_value", JSON),
        sa.Column("at", TS, nullable=False),
        sa.Column("run_id", ID),
        sa.Column("review_id", ID),
        _pk("id", table="conflicts"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_conflicts_run_id_runs"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(
            ["review_id"], ["reviews.id"], name=op.f("fk_conflicts_review_id_reviews"), ondelete="SET NULL"
        ),
    )
    op.create_index("ix_conflicts_entity_canonical_id", "conflicts", ["entity", "canonical_id"])
    op.create_index("ix_conflicts_at", "conflicts", ["at"])

    op.create_table(
        "channels",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("system", sa.String(64), nullable=False),
        sa.Column("channel_id", sa.String(255), nullable=False),
        sa.Column("token", sa.String(255), nullable=False),
        sa.Column("objects", JSON, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        _pk("id", table="channels"),
        sa.UniqueConstraint("channel_id", name=op.f("uq_channels_channel_id")),
    )
    op.create_index("ix_channels_system_expires_at", "channels", ["system", "expires_at"])

    op.create_table(
        "system_state",
        sa.Column("system", sa.String(64), nullable=False),
        sa.Column("auth_state", sa.String(16), nullable=False),
        sa.Column("auth_error", sa.Text()),
        sa.Column("paused_until", TS),
        sa.Column("pause_reason", sa.Text()),
        sa.Column("quota", JSON),
        sa.Column("updated_at", TS, nullable=False),
        _pk("system", table="system_state"),
    )


def downgrade() -> None:
    # Children before parents; indexes go with their tables.
    for table in (
        "system_state",
        "channels",
        "conflicts",
        "reviews",
        "dead_letters",
        "audit_events",
        "runs",
        "inbox",
        "jobs",
        "cursors",
        "snapshots",
        "links",
        "records",
    ):
        op.drop_table(table)
