"""The durable job queue's rows and the webhook inbox.

The partial indexes below carry the queue's guarantees, so they hold for any
number of worker processes (see :mod:`sync_engine.state.queue`):

* ``uq_jobs_dedupe_key_pending`` — at most one queued or running job per dedupe key;
* ``uq_jobs_lock_key_running`` — at most one running job per lock key (never at once);
* ``uq_jobs_unique_key`` — at most one job ever per unique key (a scheduler slot);
* ``ix_jobs_claim`` — the claim scan in priority, run_at, id order over queued jobs only;
* ``ix_jobs_lock_key_pending`` — "is an earlier job of this lock key still pending?";
* ``ix_jobs_lease`` — finding running jobs whose lease expired.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..types import utc_now
from .base import KEY_LEN, Base, BigId, created_at_column, enum_type, system_column
from .enums import PENDING_JOB_STATUSES, InboxStatus, JobStatus

_PENDING = [s.value for s in PENDING_JOB_STATUSES]


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict, nullable=False)
    status: Mapped[JobStatus] = mapped_column(
        enum_type(JobStatus, "job_status"), default=JobStatus.QUEUED, nullable=False
    )
    #: higher runs first (webhook work above scheduled syncs).
    priority: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    #: not claimed before this instant (delayed jobs, retry backoff).
    run_at: Mapped[datetime] = mapped_column(default=utc_now, nullable=False)
    #: claims so far, including the running one; also the fencing token of a claim.
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5, nullable=False)
    #: jobs sharing it run one at a time, in enqueue (id) order — one key per record.
    lock_key: Mapped[str | None] = mapped_column(String(KEY_LEN))
    #: while a job with this key is queued or running, enqueueing it again returns that job.
    dedupe_key: Mapped[str | None] = mapped_column(String(KEY_LEN))
    #: a job with this key is enqueued once, whatever its status (scheduler slots).
    unique_key: Mapped[str | None] = mapped_column(String(KEY_LEN))
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = created_at_column()
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("unique_key"),
        Index("ix_jobs_status_finished_at", "status", "finished_at"),
    )


_queued = Job.status == JobStatus.QUEUED.value
_running = Job.status == JobStatus.RUNNING.value
_pending = Job.status.in_(_PENDING)
Index("ix_jobs_claim", Job.priority.desc(), Job.run_at, Job.id, postgresql_where=_queued, sqlite_where=_queued)
Index(
    "ix_jobs_lock_key_pending",
    Job.lock_key,
    Job.id,
    postgresql_where=Job.lock_key.is_not(None) & _pending,
    sqlite_where=Job.lock_key.is_not(None) & _pending,
)
Index("uq_jobs_lock_key_running", Job.lock_key, unique=True, postgresql_where=_running, sqlite_where=_running)
Index("uq_jobs_dedupe_key_pending", Job.dedupe_key, unique=True, postgresql_where=_pending, sqlite_where=_pending)
Index("ix_jobs_lease", Job.lease_expires_at, postgresql_where=_running, sqlite_where=_running)


class InboxEntry(Base):
    """A verified webhook delivery, stored with its job in one transaction before the reply.

    ``headers`` arrive already redacted by the receiver (no signatures or
    tokens); ``body`` is the raw text as received, for replay and debugging.
    """

    __tablename__ = "inbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    system: Mapped[str] = system_column()
    dedupe_key: Mapped[str] = mapped_column(String(KEY_LEN), nullable=False)
    received_at: Mapped[datetime] = created_at_column()
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict, nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False, default="")
    status: Mapped[InboxStatus] = mapped_column(
        enum_type(InboxStatus, "inbox_status"), default=InboxStatus.RECEIVED, nullable=False
    )
    #: the job that processes it; no foreign key: finished jobs are purged, deliveries kept longer.
    job_id: Mapped[int | None] = mapped_column(BigId)

    __table_args__ = (
        UniqueConstraint("system", "dedupe_key"),
        Index("ix_inbox_received_at", "received_at"),
    )

