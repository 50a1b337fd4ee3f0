"""SQLAlchemy models of the state database. Importing this module registers every table on ``Base.metadata``."""
from .base import Base
from .enums import (
    FAILED_JOB_STATUSES,
    PENDING_JOB_STATUSES,
    DeadLetterStage,
    DeadLetterStatus,
    InboxStatus,
    JobStatus,
    LinkStatus,
    Origin,
    ReviewKind,
    ReviewStatus,
    RunKind,
    RunStatus,
    SnapshotAction,
)
from .history import AuditEvent, DeadLetter, Run
from .jobs import InboxEntry, Job
from .review import Conflict, Review
from .sync import Cursor, Link, Record, Snapshot
from .pipeline import MatchKey, NotifiedChange, OutboxWrite, StagedChange, TriggerFiring
from .systems import Channel, SharedTokenRow, SystemState

__all__ = [
    "FAILED_JOB_STATUSES",
    "PENDING_JOB_STATUSES",
    "AuditEvent",
    "Base",
    "Channel",
    "Conflict",
    "Cursor",
    "DeadLetter",
    "DeadLetterStage",
    "DeadLetterStatus",
    "InboxEntry",
    "InboxStatus",
    "Job",
    "JobStatus",
    "Link",
    "MatchKey",
    "NotifiedChange",
    "OutboxWrite",
    "StagedChange",
    "TriggerFiring",
    "LinkStatus",
    "Origin",
    "Record",
    "Review",
    "ReviewKind",
    "ReviewStatus",
    "Run",
    "RunKind",
    "RunStatus",
    "Snapshot",
    "SnapshotAction",
    "SharedTokenRow",
    "SystemState",
]
