"""The state store: what crmsync remembers between runs, in SQLite or PostgreSQL.

Entry points:

* :func:`open_store` / :class:`StateStore` — engine plus ``read()`` / ``write()`` transactions.
* :func:`upgrade`, :func:`downgrade`, :func:`current`, :func:`is_at_head` — schema migrations.
* :class:`JobQueue` — the durable job queue; :class:`JobWaiter` — sleep until a job is enqueued.
* :mod:`sync_engine.state.models` — the tables.
"""
from .db import DEFAULT_URL, StateStore, create_state_engine, normalise_url, open_store, safe_url
from .errors import MigrationError, StateStoreConfigError, StateStoreError, StateStoreUnavailable
from .hashing import canonical_json, values_hash
from .migrate import current, downgrade, head, is_at_head, upgrade
from .queue import (
    ClaimedJob,
    FailOutcome,
    JobQueue,
    LeaseLost,
    QueueCounts,
    RescueReport,
    RetryPolicy,
    new_worker_id,
)
from .wakeup import JobWaiter

__all__ = [
    "DEFAULT_URL",
    "ClaimedJob",
    "FailOutcome",
    "JobQueue",
    "JobWaiter",
    "LeaseLost",
    "MigrationError",
    "QueueCounts",
    "RescueReport",
    "RetryPolicy",
    "StateStore",
    "StateStoreConfigError",
    "StateStoreError",
    "StateStoreUnavailable",
    "canonical_json",
    "create_state_engine",
    "current",
    "downgrade",
    "head",
    "is_at_head",
    "new_worker_id",
    "normalise_url",
    "open_store",
    "safe_url",
    "upgrade",
    "values_hash",
]
