"""Closed vocabularies of the state database.

They are stored as short strings with a CHECK constraint (not native PostgreSQL
enums), so adding a member is a one-line migration on both databases.
"""
from __future__ import annotations

from enum import StrEnum


class LinkStatus(StrEnum):
    ACTIVE = "active"
    #: the system said the record is gone (tombstone); the link is kept so a late update is recognised.
    DELETED = "deleted"
    #: unlinked on purpose (merge, review rejected); kept for the audit trail.
    INACTIVE = "inactive"


class SnapshotAction(StrEnum):
    READ = "read"
    WRITE = "write"


class JobStatus(StrEnum):
    #: waiting to run; ``run_at`` may be in the future (a retry waiting for its backoff).
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    #: failed with an error that retrying cannot fix (4xx-style); terminal.
    FAILED = "failed"
    #: retryable failures used up ``max_attempts`` (or the worker died on the last attempt); terminal.
    DEAD = "dead"


#: Statuses in which a job still holds its dedupe key and blocks later jobs of its lock key.
PENDING_JOB_STATUSES: tuple[JobStatus, ...] = (JobStatus.QUEUED, JobStatus.RUNNING)
#: Terminal failures: the engine copies these jobs to ``dead_letters``.
FAILED_JOB_STATUSES: tuple[JobStatus, ...] = (JobStatus.FAILED, JobStatus.DEAD)


class InboxStatus(StrEnum):
    RECEIVED = "received"
    QUEUED = "queued"
    PROCESSED = "processed"
    IGNORED = "ignored"
    FAILED = "failed"


class DeadLetterStage(StrEnum):
    PULL = "pull"
    MAP = "map"
    PUSH = "push"
    REFERENCE = "reference"
    CONFLICT = "conflict"


class DeadLetterStatus(StrEnum):
    OPEN = "open"
    REPLAYED = "replayed"
    DISCARDED = "discarded"


class Origin(StrEnum):
    """Why the engine touched a record (audit trail, echo suppression)."""

    EVENT = "event"
    POLL = "poll"
    REPLAY = "replay"
    RECONCILE = "reconcile"
    MANUAL = "manual"


class RunKind(StrEnum):
    INCREMENTAL = "incremental"
    FULL = "full"
    WEBHOOK = "webhook"
    RECONCILE = "reconcile"
    REPLAY = "replay"
    DRY_RUN = "dry_run"


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    #: finished, but some records went to the dead-letter queue or to review.
    PARTIAL = "partial"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ReviewKind(StrEnum):
    MATCH = "match"
    CONFLICT = "conflict"
    DELETE = "delete"


class ReviewStatus(StrEnum):
    OPEN = "open"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
