"""Heartbeats for the jobs a worker holds, from a thread of their own.

The engine does part of its work (state-database calls, merging) on the worker's event
loop, so a heartbeat scheduled on that loop could wait behind a long batch; with a short
lease the job was then rescued from a worker that was alive and busy, and its work done
twice. A thread needs only the interpreter for a moment every few hundred milliseconds,
which a busy loop gives up all the time.
"""
from __future__ import annotations

import logging
import threading

from .state.queue import JobQueue

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Extends the leases of the jobs registered with :meth:`hold` every third of the lease."""

    def __init__(self, queue: JobQueue, worker_id: str, lease_seconds: float) -> None:
        self.queue = queue
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self._held: set[int] = set()
        self._lost: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"leases:{self.worker_id}", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def hold(self, job_ids: list[int]) -> None:
        with self._lock:
            self._held.update(job_ids)

    def drop(self, job_ids: list[int]) -> None:
        with self._lock:
            self._held.difference_update(job_ids)
            self._lost.difference_update(job_ids)

    def lost(self, job_ids: list[int]) -> set[int]:
        """Of these jobs, those another worker took over (their leases had expired)."""
        with self._lock:
            return self._lost.intersection(job_ids)

    def _run(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            with self._lock:
                ids = sorted(self._held - self._lost)
            if not ids:
                continue
            try:
                still = self.queue.heartbeat(ids, self.worker_id, lease_seconds=self.lease_seconds)
            except Exception:
                log.warning("heartbeat for jobs %s failed", ids, exc_info=True)
                continue
            with self._lock:
                # Only jobs still registered: one that finished meanwhile is not held, and not lost either.
                self._lost.update((set(ids) - still) & self._held)
