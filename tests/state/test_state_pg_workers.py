"""Several worker processes sharing the queue on a real PostgreSQL."""
from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections import defaultdict

import pytest
from sqlalchemy import text

from sync_engine.state import JobQueue, open_store, upgrade
from sync_engine.state.models import JobStatus

import state_workers

pytestmark = pytest.mark.postgres

JOBS = 2000
LOCK_KEYS = 60
JOBS_PER_KEY = 20  # 1,200 jobs share 60 record keys; the other 800 have none


@pytest.fixture
def pg_url(pg_databases) -> str:
    url = pg_databases()
    upgrade(url)
    store = open_store(url)
    with store.write() as s:
        s.execute(text(state_workers.EXECUTIONS_DDL))
    store.dispose()
    return url


def _produce(queue: JobQueue, store) -> None:
    """Enqueue 2,000 jobs in 40 transactions; same-key jobs interleaved with the rest."""
    seq = defaultdict(int)
    with_key = [f"account:c-{n % LOCK_KEYS}" for n in range(LOCK_KEYS * JOBS_PER_KEY)]
    plan = []
    for n in range(JOBS):
        if n % 5 < 3 and with_key:
            plan.append(with_key.pop(0))
        else:
            plan.append(None)
    plan += with_key
    for start in range(0, len(plan), 50):
        with store.write() as s:
            for index, key in enumerate(plan[start : start + 50], start):
                payload = {"n": index}
                if key:
                    seq[key] += 1
                    payload["seq"] = seq[key]
                queue.enqueue("sync_record", payload, lock_key=key, priority=index % 3, session=s)


def test_four_processes_drain_2000_jobs_exactly_once_in_record_order(pg_url):
    ctx = multiprocessing.get_context("spawn")
    producer_done = ctx.Event()
    workers = [ctx.Process(target=state_workers.drain, args=(pg_url, f"w{i}", producer_done)) for i in range(4)]
    for w in workers:
        w.start()
    store = open_store(pg_url)
    queue = JobQueue(store)
    try:
        _produce(queue, store)  # while the workers already run
        producer_done.set()
        for w in workers:
            w.join(timeout=150)  # ~10 s on an idle 2-core machine; generous for a loaded CI box
        assert [w.exitcode for w in workers] == [0, 0, 0, 0]

        with store.read() as s:
            executions = s.execute(
                text("SELECT id, job_id, lock_key, seq, worker FROM test_executions ORDER BY id")
            ).all()
            statuses = dict(s.execute(text("SELECT status, count(*) FROM jobs GROUP BY status")).all())
            jobs = {
                r.id: r
                for r in s.execute(text("SELECT id, lock_key, started_at, finished_at FROM jobs")).all()
            }
        assert statuses == {JobStatus.DONE.value: JOBS}
        per_job = defaultdict(int)
        for e in executions:
            per_job[e.job_id] += 1
        assert len(per_job) == JOBS and set(per_job.values()) == {1}, "each job executed exactly once"

        by_key = defaultdict(list)
        for e in executions:
            if e.lock_key:
                by_key[e.lock_key].append(e)
        assert len(by_key) == LOCK_KEYS
        for key, runs in by_key.items():
            assert [r.seq for r in runs] == list(range(1, JOBS_PER_KEY + 1)), f"{key} ran out of order"
            for before, after in zip(runs, runs[1:]):
                # never at once: the next job of a record was claimed after the previous one finished
                assert jobs[after.job_id].started_at >= jobs[before.job_id].finished_at
        assert len({e.worker for e in executions}) >= 2, "the work was shared"
    finally:
        for w in workers:
            if w.is_alive():
                w.kill()
        store.dispose()


def test_job_of_a_worker_killed_mid_job_is_rescued_and_completed_once(pg_url):
    ctx = multiprocessing.get_context("spawn")
    store = open_store(pg_url)
    queue = JobQueue(store)
    victim = queue.enqueue("slow_sync", {"seq": 1}, lock_key="account:c-1")
    follower = queue.enqueue("sync_record", {"seq": 2}, lock_key="account:c-1")

    claimed = ctx.Queue()
    doomed = ctx.Process(target=state_workers.stall_mid_job, args=(pg_url, "slow_sync", 2.0, claimed))
    doomed.start()
    survivor = None
    try:
        assert claimed.get(timeout=30) == victim
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.join(timeout=10)
        assert doomed.exitcode == -signal.SIGKILL
        killed_at = time.monotonic()

        row = queue.get(victim)
        assert row.status is JobStatus.RUNNING and row.attempts == 1
        assert queue.claim("observer", limit=5) == [], "the record's next job waits behind the stuck one"

        producer_done = ctx.Event()
        producer_done.set()
        survivor = ctx.Process(target=state_workers.drain, args=(pg_url, "survivor", producer_done))
        survivor.start()
        survivor.join(timeout=60)
        assert survivor.exitcode == 0
        assert time.monotonic() - killed_at >= 1.0, "rescued only once the lease ran out"

        with store.read() as s:
            executions = s.execute(text("SELECT job_id, worker FROM test_executions ORDER BY id")).all()
        assert [tuple(e) for e in executions] == [(victim, "survivor"), (follower, "survivor")]
        row = queue.get(victim)
        assert row.status is JobStatus.DONE and row.attempts == 2
        assert "lease expired while held by doomed@" in row.last_error
        assert queue.get(follower).status is JobStatus.DONE
    finally:
        for p in (doomed, survivor):
            if p is not None and p.is_alive():
                p.kill()
        store.dispose()
