"""The job queue's guarantees, on SQLite and PostgreSQL, with a hand-moved clock."""
from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from sync_engine.state import JobQueue, JobWaiter, LeaseLost, RetryPolicy
from sync_engine.state.inbox import accept_delivery
from sync_engine.state.models import InboxEntry, Job, JobStatus, Run, RunKind

W1 = "worker-1@test"
W2 = "worker-2@test"


def _job_count(store) -> int:
    with store.read() as s:
        return s.scalar(select(func.count()).select_from(Job))


def _ids(jobs) -> list[int]:
    return [j.id for j in jobs]


# -- dedupe and unique keys --------------------------------------------------


def test_dedupe_key_gives_one_job_until_it_finishes(queue, store):
    first = queue.enqueue("sync_record", {"id": "4711"}, dedupe_key="zoho:delivery-1")
    assert queue.enqueue("sync_record", {"id": "4711"}, dedupe_key="zoho:delivery-1") == first
    assert _job_count(store) == 1

    [job] = queue.claim(W1)
    assert queue.enqueue("sync_record", {"id": "4711"}, dedupe_key="zoho:delivery-1") == first, "running holds the key"
    queue.complete(job)

    again = queue.enqueue("sync_record", {"id": "4711"}, dedupe_key="zoho:delivery-1")
    assert again != first
    assert _job_count(store) == 2


def test_dedupe_key_is_freed_by_dead_and_failed_jobs(queue):
    first = queue.enqueue("sync_record", {}, dedupe_key="k", max_attempts=1)
    [job] = queue.claim(W1)
    assert queue.fail(job, "boom").status is JobStatus.DEAD
    assert queue.enqueue("sync_record", {}, dedupe_key="k") != first


def test_unique_key_enqueues_once_whatever_the_status(queue, store):
    slot = "sync:partners:2025-03-01T08:00Z"
    first = queue.enqueue("sync_flow", {"flow": "partners"}, unique_key=slot)
    [job] = queue.claim(W1)
    queue.complete(job)
    # a second scheduler, late, enqueues the same slot: no second run
    assert queue.enqueue("sync_flow", {"flow": "partners"}, unique_key=slot) == first
    assert queue.claim(W2) == []
    assert _job_count(store) == 1


def test_enqueue_in_a_rolled_back_transaction_leaves_nothing(queue, store):
    with pytest.raises(RuntimeError):
        with store.write() as s:
            queue.enqueue("sync_record", {}, session=s)
            raise RuntimeError("the webhook's inbox insert failed")
    assert _job_count(store) == 0


# -- claim order and per-record lock keys ------------------------------------


def test_priority_then_run_at_then_id(queue, clock):
    low = queue.enqueue("sync_flow", {}, priority=0)
    later_due = queue.enqueue("webhook", {}, priority=10, delay=5)
    high_b = queue.enqueue("webhook", {}, priority=10)
    high_a = queue.enqueue("webhook", {}, priority=10, run_at=clock() - timedelta(seconds=30))
    assert _ids(queue.claim(W1, limit=10)) == [high_a, high_b, low]
    clock.advance(5)
    assert _ids(queue.claim(W1, limit=10)) == [later_due]


def test_kinds_filter(queue):
    queue.enqueue("sync_flow", {})
    hook = queue.enqueue("webhook", {})
    assert _ids(queue.claim(W1, kinds=["webhook"], limit=5)) == [hook]
    assert queue.claim(W1, kinds=["webhook"]) == []


def test_lock_key_runs_one_at_a_time_in_enqueue_order(queue):
    a1 = queue.enqueue("sync_record", {"n": 1}, lock_key="account:c-1")
    b1 = queue.enqueue("sync_record", {"n": 1}, lock_key="account:c-2")
    # a later job of the same record never overtakes, even with a higher priority
    a2 = queue.enqueue("sync_record", {"n": 2}, lock_key="account:c-1", priority=100)
    a3 = queue.enqueue("sync_record", {"n": 3}, lock_key="account:c-1")
    free = queue.enqueue("sync_flow", {})

    first = queue.claim(W1, limit=10)
    assert sorted(_ids(first)) == sorted([a1, b1, free])
    assert queue.claim(W2, limit=10) == [], "a2 waits behind a1, a3 behind a2"

    queue.complete(next(j for j in first if j.id == a1))
    [second] = queue.claim(W2, limit=10)
    assert second.id == a2
    assert queue.claim(W1, limit=10) == [], "a3 never runs while a2 does"
    queue.complete(second)
    assert _ids(queue.claim(W1, limit=10)) == [a3]


def test_a_retry_keeps_its_place_in_the_record_order(queue, clock):
    a1 = queue.enqueue("sync_record", {}, lock_key="account:c-1")
    a2 = queue.enqueue("sync_record", {}, lock_key="account:c-1")
    [job] = queue.claim(W1)
    queue.fail(job, "Zoho 503")
    clock.advance(60)
    # a1 waits for its backoff; a2 must not slip in front of it meanwhile
    [retry] = queue.claim(W1, limit=5)
    assert retry.id == a1 and retry.attempt == 2
    queue.complete(retry)
    assert _ids(queue.claim(W1)) == [a2]


def test_a_dead_job_stops_blocking_its_record(queue):
    queue.enqueue("sync_record", {}, lock_key="account:c-1", max_attempts=1)
    a2 = queue.enqueue("sync_record", {}, lock_key="account:c-1")
    [job] = queue.claim(W1)
    assert queue.fail(job, "mapping error", retryable=False).status is JobStatus.FAILED
    assert _ids(queue.claim(W1)) == [a2]


# -- retries, backoff, dead --------------------------------------------------


def test_retries_back_off_exponentially_then_die(queue, clock):
    job_id = queue.enqueue("push", {"system": "kingdee"}, max_attempts=3)
    start = clock()

    [job] = queue.claim(W1)
    outcome = queue.fail(job, TimeoutError("Kingdee did not answer"))
    assert outcome.will_retry and outcome.retry_at == start + timedelta(seconds=10)
    clock.advance(9)
    assert queue.claim(W1) == [], "not before the backoff"
    clock.advance(1)
    [job] = queue.claim(W1)
    assert job.attempt == 2

    outcome = queue.fail(job, "HTTP 502")
    assert outcome.retry_at == clock() + timedelta(seconds=20)
    clock.advance(20)
    [job] = queue.claim(W1)
    assert job.attempt == 3 and job.is_last_attempt

    outcome = queue.fail(job, "HTTP 502 again")
    assert outcome.status is JobStatus.DEAD and outcome.needs_dead_letter and not outcome.will_retry
    clock.advance(3600)
    assert queue.claim(W1) == []
    row = queue.get(job_id)
    assert row.status is JobStatus.DEAD
    assert row.attempts == 3 and row.last_error == "HTTP 502 again"
    assert row.finished_at == clock() - timedelta(seconds=3600)


def test_retry_after_wins_over_a_shorter_backoff(queue, clock):
    queue.enqueue("push", {})
    [job] = queue.claim(W1)
    outcome = queue.fail(job, "429 Too Many Requests", retry_after=90)
    assert outcome.retry_at == clock() + timedelta(seconds=90)


def test_error_text_names_the_exception_and_is_bounded(queue):
    job_id = queue.enqueue("push", {})
    [job] = queue.claim(W1)
    queue.fail(job, ValueError("金额格式错误 " * 1000))
    last_error = queue.get(job_id).last_error
    assert last_error.startswith("ValueError: 金额格式错误")
    assert len(last_error) <= 4000


def test_backoff_jitter_stays_within_its_bound():
    policy = RetryPolicy(base_seconds=10, factor=2, max_seconds=100, jitter=0.25)
    for attempt, base in [(1, 10), (2, 20), (3, 40), (4, 80), (5, 100), (9, 100)]:
        delays = {policy.delay(attempt) for _ in range(50)}
        assert all(base <= d <= base * 1.25 for d in delays)
        assert len(delays) > 1, "jitter spreads retries"


# -- leases, rescue, release -------------------------------------------------


def test_expired_lease_is_rescued_and_the_old_worker_is_fenced_off(queue, clock, store):
    job_id = queue.enqueue("sync_record", {}, lock_key="account:c-1")
    [stale] = queue.claim(W1, lease_seconds=30)
    clock.advance(29)
    assert queue.rescue_expired().requeued == [], "lease still valid"
    clock.advance(2)
    report = queue.rescue_expired()
    assert report.requeued == [job_id] and report.dead == []

    [fresh] = queue.claim(W2, lease_seconds=30)
    assert fresh.id == job_id and fresh.attempt == 2
    # the first worker wakes up: it can neither heartbeat nor complete, and its effects roll back
    assert queue.heartbeat([stale], W1) == set()
    with pytest.raises(LeaseLost):
        with store.write() as s:
            s.add(Run(flow="accounts", kind=RunKind.WEBHOOK, job_id=job_id))
            queue.complete(stale, session=s)
    with pytest.raises(LeaseLost):
        queue.fail(stale, "late failure")
    with pytest.raises(LeaseLost):
        queue.release(stale)

    with store.write() as s:
        s.add(Run(flow="accounts", kind=RunKind.WEBHOOK, job_id=job_id))
        queue.complete(fresh, {"moved": 1}, session=s)
    with store.read() as s:
        assert s.scalar(select(func.count()).select_from(Run)) == 1, "the job's effects committed once"
    assert queue.get(job_id).result == {"moved": 1}


def test_heartbeat_keeps_a_long_job(queue, clock):
    queue.enqueue("full_sync", {})
    [job] = queue.claim(W1, lease_seconds=30)
    for _ in range(5):
        clock.advance(20)
        assert queue.heartbeat([job.id], W1, lease_seconds=30) == {job.id}
        assert queue.rescue_expired().requeued == []
    queue.complete(job)


def test_a_worker_dying_on_the_last_attempt_makes_the_job_dead(queue, clock):
    job_id = queue.enqueue("sync_record", {}, max_attempts=1)
    queue.claim(W1, lease_seconds=10)
    clock.advance(11)
    report = queue.rescue_expired()
    assert report.dead == [job_id] and report.requeued == []
    row = queue.get(job_id)
    assert row.status is JobStatus.DEAD and W1 in row.last_error


def test_the_runs_of_a_dead_workers_jobs_end_failed_with_the_reason(queue, clock, store):
    """The worker recorded a run, then died: nothing else would finish that run, so the rescue does,
    whether the job goes dead (last attempt) or is queued again; other runs are left alone."""
    from sync_engine.state.models import RunStatus

    last = queue.enqueue("webhook", {"system": "zoho"}, max_attempts=1)
    retried = queue.enqueue("flow_pass", {"flow": "accounts"}, lock_key="flow:accounts", max_attempts=3)
    other = queue.enqueue("flow_pass", {"flow": "contacts"}, lock_key="flow:contacts")
    queue.claim(W1, limit=2, lease_seconds=10)
    [kept] = queue.claim(W2, lease_seconds=60)
    assert kept.id == other
    with store.write() as s:
        for job_id in (last, retried, other):
            s.add(Run(flow="accounts", kind=RunKind.WEBHOOK, job_id=job_id))
        s.add(Run(flow="accounts", kind=RunKind.WEBHOOK, job_id=last, status=RunStatus.SUCCEEDED))  # an earlier one
    clock.advance(11)
    report = queue.rescue_expired()
    assert report.dead == [last] and report.requeued == [retried]
    with store.read() as s:
        runs = {(r.job_id, r.status): r for r in s.scalars(select(Run))}
    dead_run, retried_run = runs[(last, RunStatus.FAILED)], runs[(retried, RunStatus.FAILED)]
    assert "abandoned" in dead_run.error and W1 in dead_run.error and "dead" in dead_run.error
    assert "queued again" in retried_run.error and retried_run.finished_at is not None
    assert (last, RunStatus.SUCCEEDED) in runs, "a finished run keeps its outcome"
    assert (other, RunStatus.RUNNING) in runs, "a job whose lease holds keeps its run running"


def test_release_on_shutdown_does_not_count_the_attempt(queue):
    a1 = queue.enqueue("sync_record", {}, lock_key="account:c-1")
    a2 = queue.enqueue("sync_record", {}, lock_key="account:c-1")
    [job] = queue.claim(W1)
    queue.release(job)
    row = queue.get(a1)
    assert row.status is JobStatus.QUEUED and row.attempts == 0 and row.claimed_by is None
    [again] = queue.claim(W2)
    assert again.id == a1 and again.attempt == 1, "released job keeps its place and its attempts"
    queue.complete(again)
    assert _ids(queue.claim(W2)) == [a2]


def test_complete_rolls_back_with_the_callers_transaction(queue, store):
    job_id = queue.enqueue("sync_record", {})
    [job] = queue.claim(W1)
    with pytest.raises(RuntimeError):
        with store.write() as s:
            s.add(Run(flow="accounts", kind=RunKind.INCREMENTAL))
            queue.complete(job, session=s)
            raise RuntimeError("cursor save failed")
    assert queue.get(job_id).status is JobStatus.RUNNING
    queue.complete(job)
    assert queue.get(job_id).status is JobStatus.DONE


# -- ops ---------------------------------------------------------------------


def test_counts_for_ops(queue, clock):
    assert queue.counts().queued == 0 and queue.counts().oldest_queued_age_seconds is None
    queue.enqueue("webhook", {})
    clock.advance(30)
    queue.enqueue("sync_flow", {})
    queue.enqueue("sync_flow", {}, delay=600)
    dying = queue.enqueue("push", {}, max_attempts=1, priority=50)
    [job] = queue.claim(W1)
    assert job.id == dying
    queue.fail(job, "boom")
    queue.claim(W1)
    clock.advance(15)

    counts = queue.counts()
    assert (counts.queued, counts.scheduled, counts.running, counts.failed, counts.dead) == (1, 1, 1, 0, 1)
    assert counts.oldest_queued_age_seconds == pytest.approx(15.0)
    assert counts.by_kind == {"webhook": {"running": 1}, "sync_flow": {"queued": 2}}


def test_purge_finished_removes_old_done_jobs_only(queue, clock, store):
    for _ in range(3):
        queue.enqueue("sync_flow", {})
    done = queue.claim(W1, limit=2)
    for job in done:
        queue.complete(job)
    clock.advance(8 * 86400)
    assert queue.purge_finished(timedelta(days=7), batch_size=1) == 2
    assert _job_count(store) == 1


def test_inbox_stores_a_delivery_and_its_job_once(queue, store):
    def deliver():
        with store.write() as s:
            return accept_delivery(
                s, queue, system="zoho_cn", dedupe_key="channel-1:42", headers={"content-type": "application/json"},
                body='{"ids": ["4711"], "module": "Accounts"}', job_kind="webhook",
                job_payload={"system": "zoho_cn", "ids": ["4711"]}, lock_key="zoho_cn:Accounts:4711", priority=10,
            )

    first = deliver()
    second = deliver()
    assert not first.duplicate and second.duplicate
    assert (second.inbox_id, second.job_id) == (first.inbox_id, first.job_id)
    assert _job_count(store) == 1
    [job] = queue.claim(W1)
    assert job.payload == {"system": "zoho_cn", "ids": ["4711"], "inbox_id": first.inbox_id}
    with store.read() as s:
        assert s.scalar(select(InboxEntry.status)) == "queued"


def test_a_queue_without_injected_clock_uses_real_time(store):
    queue = JobQueue(store)
    job_id = queue.enqueue("sync_flow", {})
    [job] = queue.claim(W1, lease_seconds=0.05)
    time.sleep(0.2)
    assert queue.rescue_expired().requeued == [job_id]
    [again] = queue.claim(W1)
    assert again.attempt == 2


# -- waking idle workers -----------------------------------------------------


def _enqueue_later(store, delay: float, **kwargs) -> threading.Thread:
    def run():
        time.sleep(delay)
        JobQueue(store).enqueue("webhook", {}, **kwargs)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_an_idle_worker_is_woken_by_an_enqueue(store):
    with JobWaiter(store) as waiter:
        started = time.monotonic()
        assert waiter.wait(0.2) is False
        assert time.monotonic() - started >= 0.2

        thread = _enqueue_later(store, 0.1)
        started = time.monotonic()
        assert waiter.wait(10) is True
        assert time.monotonic() - started < 5
        thread.join()


def test_an_enqueue_while_the_worker_was_busy_is_not_missed(store):
    with JobWaiter(store) as waiter:
        JobQueue(store).enqueue("webhook", {})  # before the worker starts to wait
        assert waiter.wait(5) is True


def test_a_rolled_back_enqueue_wakes_nobody(store):
    with JobWaiter(store) as waiter:
        with pytest.raises(RuntimeError):
            with store.write() as s:
                JobQueue(store).enqueue("webhook", {}, session=s)
                raise RuntimeError("rolled back")
        assert waiter.wait(0.3) is False


def test_the_end_of_a_records_job_wakes_the_worker_waiting_for_its_next(store):
    queue = JobQueue(store)
    queue.enqueue("sync_record", {}, lock_key="account:c-1")
    queue.enqueue("sync_record", {}, lock_key="account:c-1")
    [first] = queue.claim(W1)
    with JobWaiter(store) as waiter:
        assert queue.claim(W2) == []
        queue.complete(first)
        assert waiter.wait(5) is True
        assert len(queue.claim(W2)) == 1


def test_concurrent_enqueues_of_one_key_make_one_job(store):
    """Eight servers receive the same webhook / schedule the same slot at once."""
    queue = JobQueue(store)
    barrier = threading.Barrier(8)
    ids: list[tuple[int, int]] = []

    def producer():
        barrier.wait()
        by_dedupe = queue.enqueue("webhook", {}, dedupe_key="zoho:delivery-7")
        by_slot = queue.enqueue("sync_flow", {}, unique_key="sync:accounts:2025-03-01T08:00Z")
        ids.append((by_dedupe, by_slot))

    threads = [threading.Thread(target=producer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == 8 and len(set(ids)) == 1
    assert _job_count(store) == 2
