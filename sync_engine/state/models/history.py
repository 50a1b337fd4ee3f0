"""What happened: sync runs, the audit trail, and the dead-letter queue."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import (
    CANONICAL_ID_LEN,
    ENTITY_LEN,
    EXTERNAL_ID_LEN,
    KEY_LEN,
    OBJECT_LEN,
    Base,
    BigId,
    created_at_column,
    enum_type,
    system_column,
    updated_at_column,
)
from .enums import DeadLetterStage, DeadLetterStatus, Origin, RunKind, RunStatus


class Run(Base):
    """One execution of a flow (or a replay, a reconciliation, a dry run)."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    flow: Mapped[str] = mapped_column(String(128), nullable=False)
    kind: Mapped[RunKind] = mapped_column(enum_type(RunKind, "run_kind"), nullable=False)
    started_at: Mapped[datetime] = created_at_column()
    finished_at: Mapped[datetime | None]
    status: Mapped[RunStatus] = mapped_column(
        enum_type(RunStatus, "run_status"), default=RunStatus.RUNNING, nullable=False
    )
    #: counters: read, created, updated, deleted, skipped_echo, conflicts, dead_letters, api_calls…
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict, nullable=False)
    error: Mapped[str | None] = mapped_column(Text)
    #: the queue job that ran it (no foreign key: finished jobs are purged, runs kept).
    job_id: Mapped[int | None] = mapped_column(BigId)

    __table_args__ = (Index("ix_runs_flow_started_at", "flow", "started_at"),)


class AuditEvent(Base):
    """One thing the engine did or saw for a record: who, when, why, which API call, before/after."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = created_at_column()
    entity: Mapped[str] = mapped_column(String(ENTITY_LEN), nullable=False)
    canonical_id: Mapped[str | None] = mapped_column(String(CANONICAL_ID_LEN))
    run_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("runs.id", ondelete="SET NULL"))
    #: read | write | create | match | conflict | delete | echo | review | … (open-ended on purpose)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    system: Mapped[str | None] = system_column(nullable=True)
    object: Mapped[str | None] = mapped_column(String(OBJECT_LEN))
    external_id: Mapped[str | None] = mapped_column(String(EXTERNAL_ID_LEN))
    origin: Mapped[Origin | None] = mapped_column(enum_type(Origin, "audit_origin"))
    #: the API call behind the event: method, endpoint, status, request id, duration_ms.
    api_call: Mapped[dict[str, Any] | None]
    #: before/after values of the changed fields, match scores, policy applied…
    details: Mapped[dict[str, Any]] = mapped_column(default=dict, nullable=False)

    __table_args__ = (
        Index("ix_audit_events_entity_canonical_id_at", "entity", "canonical_id", "at"),
        Index("ix_audit_events_at", "at"),
        Index("ix_audit_events_run_id", "run_id"),
    )


class DeadLetter(Base):
    """A record the engine could not move, kept for inspection and ordered replay.

    Replay enqueues a job with the record's lock key (so it runs in order with
    newer work for the same record) that re-fetches current state.
    """

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    entity: Mapped[str | None] = mapped_column(String(ENTITY_LEN))
    flow: Mapped[str | None] = mapped_column(String(128))
    system: Mapped[str | None] = system_column(nullable=True)
    object: Mapped[str | None] = mapped_column(String(OBJECT_LEN))
    external_id: Mapped[str | None] = mapped_column(String(EXTERNAL_ID_LEN))
    canonical_id: Mapped[str | None] = mapped_column(String(CANONICAL_ID_LEN))
    stage: Mapped[DeadLetterStage] = mapped_column(enum_type(DeadLetterStage, "dead_letter_stage"), nullable=False)
    #: the system's or the engine's error code (DUPLICATE_DATA, 201112011, mapping.required…).
    code: Mapped[str | None] = mapped_column(String(128))
    message: Mapped[str] = mapped_column(Text, nullable=False, default="")
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    status: Mapped[DeadLetterStatus] = mapped_column(
        enum_type(DeadLetterStatus, "dead_letter_status"), default=DeadLetterStatus.OPEN, nullable=False
    )
    run_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("runs.id", ondelete="SET NULL"))
    #: the queue job that died, and the job that replays this letter (ids only: jobs get purged).
    job_id: Mapped[int | None] = mapped_column(BigId)
    replay_job_id: Mapped[int | None] = mapped_column(BigId)
    #: the lock key replays must use to stay in order with newer work.
    lock_key: Mapped[str | None] = mapped_column(String(KEY_LEN))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()
    closed_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_dead_letters_status_entity", "status", "entity"),
        Index("ix_dead_letters_entity_canonical_id", "entity", "canonical_id"),
        Index("ix_dead_letters_system_object_external_id", "system", "object", "external_id"),
    )
