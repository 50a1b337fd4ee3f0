"""Waking idle workers when a job is enqueued, instead of having them poll fast.

PostgreSQL: ``NOTIFY crmsync_jobs`` inside the enqueueing transaction (delivered
only if it commits, to every listening process on every host); a
:class:`JobWaiter` holds a dedicated ``LISTEN`` connection.

SQLite (one process): a per-database in-process signal raised after the
enqueueing transaction commits.

Wake-ups are hints: a woken worker claims and may find nothing (another worker
was faster). Workers should still wait with a timeout (e.g. 1-5 s) so delayed
jobs and retries whose ``run_at`` arrives are picked up.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.orm import Session

from .db import StateStore

log = logging.getLogger(__name__)

CHANNEL = "crmsync_jobs"
_ANNOUNCED = "crmsync_jobs_announced"


class _LocalSignal:
    """A counter plus a condition: a waiter never misses a signal raised between two of its waits."""

    def __init__(self) -> None:
        self.generation = 0
        self.condition = threading.Condition()

    def raise_(self) -> None:
        with self.condition:
            self.generation += 1
            self.condition.notify_all()


_signals: dict[str, _LocalSignal] = {}
_signals_lock = threading.Lock()


def _local_signal(url: Any) -> _LocalSignal:
    key = url.render_as_string(hide_password=False)
    with _signals_lock:
        return _signals.setdefault(key, _LocalSignal())


def announce(session: Session) -> None:
    """Wake waiting workers once the session's current transaction commits (at most once per transaction)."""
    transaction = session.get_transaction()
    if transaction is None or session.info.get(_ANNOUNCED) is transaction:
        return
    session.info[_ANNOUNCED] = transaction
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.execute(text(f"NOTIFY {CHANNEL}"))
    else:
        signal = _local_signal(bind.url)
        event.listen(session, "after_commit", lambda _s: signal.raise_(), once=True)


class JobWaiter:
    """Blocks a worker until a job may be waiting. One per waiting thread; create it
    before the worker's first claim so nothing enqueued in between is missed."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self._connection: Any = None
        self._signal: _LocalSignal | None = None
        self._seen = 0
        if store.is_postgres:
            self._listen()
        else:
            self._signal = _local_signal(store.url)
            self._seen = self._signal.generation

    def wait(self, timeout: float) -> bool:
        """True when woken by an enqueue, False when the timeout passed."""
        if self._signal is not None:
            return self._wait_local(self._signal, timeout)
        try:
            if self._connection is None:
                self._listen()
            for _ in self._connection.notifies(timeout=timeout, stop_after=1):
                return True
            return False
        except Exception as exc:  # noqa: BLE001 - the database went away; the caller's claim will say so
            log.warning("job wake-up listener lost its connection (%s); reconnecting", type(exc).__name__)
            self._drop()
            return True

    def close(self) -> None:
        self._drop()

    def __enter__(self) -> JobWaiter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _wait_local(self, signal: _LocalSignal, timeout: float) -> bool:
        with signal.condition:
            woken = signal.condition.wait_for(lambda: signal.generation != self._seen, timeout)
            self._seen = signal.generation
            return woken

    def _listen(self) -> None:
        raw = self.store.engine.raw_connection()
        connection = raw.driver_connection
        raw.detach()  # ours for good: a LISTENing connection must not go back to the pool
        connection.autocommit = True
        connection.execute(f"LISTEN {CHANNEL}")
        self._connection = connection

    def _drop(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:  # noqa: BLE001 - already broken
                pass
            self._connection = None
