"""Group commit of webhook deliveries: a burst shares one transaction, each delivery still
stored with its job before its answer; a delivery the database refuses fails alone."""
from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from sqlalchemy import select

from sync_engine.runtime import Runtime
from sync_engine.state.db import StateStore
from sync_engine.state.models import InboxEntry, Job
from sync_engine.state.queue import JobQueue
from webhooks.app import create_app

from .conftest import THREE_SYSTEMS, make_config
from .memory import MemoryVerifier


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def service(request, memory_plugin, tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_databases")()
    config = make_config(THREE_SYSTEMS)
    config.state.url = url
    runtime = Runtime(config, store=StateStore.open(url))
    async with runtime:
        app = create_app(runtime, queue=JobQueue(runtime.store))
        batches: list[list[str]] = []
        store = app.state.intake._store

        def recording_store(batch):
            batches.append([w.delivery.dedupe_key for w in batch])
            if len(batches) == 1:
                time.sleep(0.3)  # a slow first commit: the rest of the burst piles up behind it
            if any("refused" in w.delivery.dedupe_key for w in batch):
                raise ValueError("the database refuses this row")
            return store(batch)

        app.state.intake._store = recording_store
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://crmsync.test") as client:
            yield runtime, client, batches
        app.state.intake.close()
    runtime.store.dispose()


def post(client, event_id: str, record: str):
    payload = json.dumps({"event_id": event_id, "object": "AccountObj", "ids": [record]}).encode()
    return client.post("/webhooks/fx", content=payload, headers=MemoryVerifier.sign(payload, int(time.time())))


async def test_a_burst_shares_a_commit_and_every_delivery_gets_its_job(service):
    runtime, client, batches = service
    first = await post(client, "e-0", "fx-0")
    assert first.status_code == 200
    # 30 new deliveries, each also sent twice more (sender retries), all at once.
    calls = [post(client, f"e-{i % 30 + 1}", f"fx-{i % 30 + 1}") for i in range(90)]
    responses = await asyncio.gather(*calls)
    assert {r.status_code for r in responses} == {200}
    assert max(len(b) for b in batches) > 1, batches
    with runtime.store.read() as s:
        inbox = s.execute(select(InboxEntry.id, InboxEntry.dedupe_key, InboxEntry.job_id, InboxEntry.status)).all()
        jobs = {j.id: j for j in s.scalars(select(Job))}
    assert len(inbox) == 31 and len(jobs) == 31
    for row in inbox:
        assert row.status == "queued"
        assert jobs[row.job_id].payload["inbox_id"] == row.id
    assert {jobs[r.job_id].lock_key for r in inbox} == {f"fx:AccountObj:fx-{i}" for i in range(31)}


async def test_a_refused_delivery_fails_alone_and_is_not_acknowledged(service):
    runtime, client, batches = service
    await post(client, "warm-up", "fx-w")
    responses = await asyncio.gather(*[post(client, "refused" if i == 3 else f"ok-{i}", f"fx-{i}") for i in range(8)])
    assert [r.status_code for r in responses] == [200, 200, 200, 503, 200, 200, 200, 200]
    assert responses[3].headers["retry-after"]
    with runtime.store.read() as s:
        keys = set(s.scalars(select(InboxEntry.dedupe_key)))
    assert len(keys) == 8 and not any("refused" in k for k in keys)
