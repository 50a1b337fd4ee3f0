"""Two schedulers (as in two `serve` processes) enqueue each slot once; workers on
PostgreSQL run each pass once."""
from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from sync_engine.engine import SyncEngine
from sync_engine.runtime import Runtime
from sync_engine.service import Scheduler, Worker
from sync_engine.state.db import StateStore
from sync_engine.state.models import Job, Run
from sync_engine.state.queue import JobQueue

from .conftest import THREE_SYSTEMS, make_config

SCHEDULED = THREE_SYSTEMS.replace(
    "    systems: [fx, zoho, erp]\n", "    systems: [fx, zoho, erp]\n    schedule: {interval: 1s}\n", 1
)


@pytest.mark.postgres
async def test_two_schedulers_run_each_slot_once_on_postgres(memory_plugin, pg_databases):
    url = pg_databases()
    config = make_config(SCHEDULED)
    config.state.url = url
    runtimes = [Runtime(config, store=StateStore.open(url)) for _ in range(2)]
    schedulers = [Scheduler(rt, JobQueue(rt.store)) for rt in runtimes]
    for scheduler in schedulers:
        scheduler.start()
    workers = [Worker(rt, SyncEngine(rt), JobQueue(rt.store), poll_seconds=0.05) for rt in runtimes]
    tasks = [asyncio.create_task(w.run()) for w in workers]
    await asyncio.sleep(4.2)
    for scheduler in schedulers:
        scheduler.shutdown()
    await asyncio.sleep(0.5)
    for worker in workers:
        worker.stopping.set()
    await asyncio.gather(*tasks)
    with runtimes[0].store.read() as session:
        slots = list(session.scalars(select(Job.unique_key).where(Job.kind == "flow_pass")))
        runs = session.scalar(select(func.count()).select_from(Run).where(Run.flow == "accounts"))
    for rt in runtimes:
        rt.store.dispose()
    assert len(slots) >= 3, slots
    assert len(slots) == len(set(slots)), f"a slot was enqueued twice: {slots}"
    # Each enqueued pass ran exactly once (a slot skipped while the previous pass was still queued is fine).
    assert runs == len(slots)


async def test_a_scheduled_job_cut_short_by_the_process_stopping_logs_no_error(memory_plugin, tmp_path, monkeypatch, caplog):
    """`serve` stops (SIGTERM) while a scheduled slot is enqueuing its pass: the job's task is cancelled with
    the rest and apscheduler logged that as the job's failure, a traceback in the serve log (bench/chaos.py
    counts them: tests/chaos failed on a clean run, seed 16). Stopping is not a failure."""
    import logging
    import threading

    from sync_engine import service

    url = f"sqlite:///{tmp_path / 'state.db'}"
    config = make_config(SCHEDULED)
    config.state.url = url
    rt = Runtime(config, store=StateStore.open(url))
    entered, release = threading.Event(), threading.Event()

    def slow_enqueue(*args, **kwargs):
        entered.set()
        release.wait(5)
        return 0

    monkeypatch.setattr(service, "enqueue_flow", slow_enqueue)
    scheduler = Scheduler(rt, JobQueue(rt.store))
    caplog.set_level(logging.INFO)
    scheduler.start()
    try:
        for _ in range(300):
            if entered.is_set():
                break
            await asyncio.sleep(0.01)
        assert entered.is_set()
        scheduler.shutdown()
        # What asyncio.run does with the tasks left when serve's main coroutine returns.
        left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)
    finally:
        release.set()
        rt.store.dispose()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
