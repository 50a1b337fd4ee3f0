"""Worker processes for the multi-process queue tests (run under multiprocessing 'spawn').

Each job's "effect" is a row in ``test_executions``, inserted in the same
transaction as :meth:`JobQueue.complete` — the pattern the sync engine uses for
its records, cursors and snapshots.
"""
from __future__ import annotations

import time

from sqlalchemy import text

from sync_engine.state import JobQueue, JobWaiter, LeaseLost, new_worker_id, open_store

EXECUTIONS_DDL = """
CREATE TABLE IF NOT EXISTS test_executions (
    id BIGSERIAL PRIMARY KEY,
    job_id BIGINT NOT NULL,
    lock_key TEXT,
    seq INTEGER,
    worker TEXT NOT NULL
)
"""
_RECORD = text(
    "INSERT INTO test_executions (job_id, lock_key, seq, worker) VALUES (:job_id, :lock_key, :seq, :worker)"
)


def drain(url: str, name: str, producer_done, lease_seconds: float = 30.0, work_seconds: float = 0.0) -> None:
    """Claim and execute jobs until the producer is done and nothing is left to do."""
    store = open_store(url, pool_size=2)
    queue = JobQueue(store)
    waiter = JobWaiter(store)
    worker = new_worker_id(name)
    last_rescue = 0.0
    while True:
        if time.monotonic() - last_rescue > 0.5:
            queue.rescue_expired()
            last_rescue = time.monotonic()
        jobs = queue.claim(worker, lease_seconds=lease_seconds, limit=2)
        if not jobs:
            counts = queue.counts()
            if producer_done.is_set() and counts.queued + counts.scheduled + counts.running == 0:
                break
            waiter.wait(0.25)
            continue
        for job in jobs:
            if work_seconds:
                time.sleep(work_seconds)
            try:
                with store.write() as s:
                    s.execute(
                        _RECORD,
                        {"job_id": job.id, "lock_key": job.lock_key, "seq": job.payload.get("seq"), "worker": name},
                    )
                    queue.complete(job, {"worker": name}, session=s)
            except LeaseLost:
                pass  # someone else owns it now; our effects rolled back
    waiter.close()
    store.dispose()


def stall_mid_job(url: str, kind: str, lease_seconds: float, claimed) -> None:
    """Claim one job, write its effect without committing, report, then hang until killed."""
    store = open_store(url, pool_size=1)
    queue = JobQueue(store)
    worker = new_worker_id("doomed")
    while True:
        jobs = queue.claim(worker, lease_seconds=lease_seconds, kinds=[kind])
        if jobs:
            break
        time.sleep(0.01)
    [job] = jobs
    session = store.session(write=True)
    effect = {"job_id": job.id, "lock_key": job.lock_key, "seq": job.payload.get("seq"), "worker": "doomed"}
    session.execute(_RECORD, effect)
    session.flush()
    claimed.put(job.id)
    time.sleep(3600)  # "mid-job": the transaction above stays open until SIGKILL
