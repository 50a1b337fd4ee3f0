"""Webhooks stored before the answer, one job per delivery, workers running them,
ops routes with their token — through the real app, queue and engine."""
from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from sqlalchemy import func, select

from sync_engine.engine import SyncEngine
from sync_engine.runtime import Runtime
from sync_engine.service import Worker, enqueue_flow, slot_name
from sync_engine.state.db import StateStore
from sync_engine.state.models import InboxEntry, Job
from sync_engine.state.queue import JobQueue
from webhooks.app import create_app

from .conftest import THREE_SYSTEMS, make_config
from .memory import MemorySystem, MemoryVerifier


@pytest.fixture
async def service(memory_plugin, state_url):
    config = make_config(THREE_SYSTEMS + "\nserver: {ops_token: s3cret-ops-token, max_body_bytes: 2048}\n")
    config.state.url = state_url
    runtime = Runtime(config, store=StateStore.open(state_url))
    async with runtime:
        queue = JobQueue(runtime.store)
        app = create_app(runtime, queue=queue)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://crmsync.test")
        yield runtime, queue, client
        await client.aclose()
    runtime.store.dispose()


def body(event_id="e1", ids=("fx-1",), object="AccountObj") -> bytes:
    return json.dumps({"event_id": event_id, "object": object, "ids": list(ids)}).encode()


def count(runtime, model):
    with runtime.store.read() as s:
        return s.scalar(select(func.count()).select_from(model))


async def test_verified_delivery_is_stored_and_enqueued_before_the_answer(service):
    runtime, queue, client = service
    payload = body()
    response = await client.post("/webhooks/fx", content=payload, headers=MemoryVerifier.sign(payload, int(time.time())))
    assert response.status_code == 200 and response.json() == {"ok": True}
    assert count(runtime, InboxEntry) == 1 and count(runtime, Job) == 1
    # The same delivery again (a retry by the sender): acknowledged, no new work.
    response = await client.post("/webhooks/fx", content=payload, headers=MemoryVerifier.sign(payload, int(time.time())))
    assert response.status_code == 200
    assert count(runtime, InboxEntry) == 1 and count(runtime, Job) == 1


@pytest.mark.parametrize(
    ("case", "status"),
    [("forged", 401), ("stale", 401), ("too_large", 413), ("not_json", 400), ("wrong_type", 400), ("unknown", 404)],
)
async def test_rejected_deliveries_store_nothing(service, case, status):
    runtime, queue, client = service
    payload, path, now = body(), "/webhooks/fx", int(time.time())
    headers = MemoryVerifier.sign(payload, now)
    if case == "forged":
        headers["x-signature"] = "0" * 64
    elif case == "stale":
        headers = MemoryVerifier.sign(payload, now - 3600)
    elif case == "too_large":
        payload = body(ids=[f"id-{i}" for i in range(500)])
        headers = MemoryVerifier.sign(payload, now)
    elif case == "not_json":
        payload = b"{not json"
        headers = MemoryVerifier.sign(payload, now)
    elif case == "wrong_type":
        headers["content-type"] = "text/plain"
    elif case == "unknown":
        path = "/webhooks/nosuchsystem"
    response = await client.post(path, content=payload, headers=headers)
    assert response.status_code == status
    assert count(runtime, InboxEntry) == 0 and count(runtime, Job) == 0
    metrics = await client.get("/metrics", headers={"authorization": "Bearer s3cret-ops-token"})
    assert 'crmsync_webhook_deliveries_total{' in metrics.text


async def test_flood_of_one_delivery_makes_one_job(service):
    runtime, queue, client = service
    payload = body(event_id="flood")
    headers = MemoryVerifier.sign(payload, int(time.time()))
    responses = await asyncio.gather(*[client.post("/webhooks/fx", content=payload, headers=headers) for _ in range(30)])
    assert {r.status_code for r in responses} == {200}
    assert count(runtime, Job) == 1


async def test_worker_runs_the_webhook_job_end_to_end(service):
    runtime, queue, client = service
    fx = MemorySystem.instances["fx"]
    rid = fx.user_create("AccountObj", {"name": "深圳市华为技术有限公司"})
    payload = body(event_id="e-1", ids=[rid])
    await client.post("/webhooks/fx", content=payload, headers=MemoryVerifier.sign(payload, int(time.time())))
    worker = Worker(runtime, SyncEngine(runtime), queue, poll_seconds=0.01)
    task = asyncio.create_task(worker.run())
    for _ in range(200):
        if worker.done:
            break
        await asyncio.sleep(0.02)
    worker.stopping.set()
    await task
    assert worker.done == 1
    (zoho_record,) = MemorySystem.instances["zoho"].records("Accounts").values()
    assert zoho_record["Account_Name"] == "深圳市华为技术有限公司"
    with runtime.store.read() as s:
        assert s.scalar(select(InboxEntry.status)) == "processed"


async def test_ops_routes_need_the_token(service):
    runtime, queue, client = service
    for path in ("/status", "/metrics", "/", "/readyz"):
        assert (await client.get(path)).status_code == 401, path
        assert (await client.get(path, headers={"authorization": "Bearer wrong"})).status_code == 401
    assert (await client.get("/healthz")).status_code == 200
    auth = {"authorization": "Bearer s3cret-ops-token"}
    status = (await client.get("/status", headers=auth)).json()
    assert {f["name"] for f in status["flows"]} == {"accounts", "contacts"}
    page = await client.get("/?token=s3cret-ops-token")
    assert page.status_code == 200 and "<svg" in page.text and "accounts" in page.text
    ready = await client.get("/readyz", headers=auth)
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert "s3cret-ops-token" not in page.text + json.dumps(status)


async def test_status_reflects_runs_and_dead_letters(service):
    runtime, queue, client = service
    fx = MemorySystem.instances["fx"]
    MemorySystem.instances["erp"].settings.required = ["FTaxRegisterCode"]
    fx.user_create("AccountObj", {"name": "Rejected by ERP Ltd"})
    await SyncEngine(runtime).run_flow("accounts")
    status = (await client.get("/status", headers={"authorization": "Bearer s3cret-ops-token"})).json()
    accounts = next(f for f in status["flows"] if f["name"] == "accounts")
    assert accounts["dead_letters_open"] == 1
    assert accounts["health"] == "warning" and "1 dead letters" in accounts["attention"]
    assert accounts["last_run"]["status"] == "partial"
    assert accounts["records_moved_24h"] == 1 and len(accounts["series"]) == 1
    assert status["flows"][0]["name"] == "accounts"  # flows needing attention come first


def test_scheduler_slots_are_the_same_in_every_process():
    from datetime import UTC, datetime

    from config.schema import ScheduleConfig

    spec = ScheduleConfig(interval="5m")
    a = slot_name(spec, datetime(2026, 11, 26, 10, 5, 0, 200000, tzinfo=UTC))
    b = slot_name(spec, datetime(2026, 11, 26, 10, 5, 3, tzinfo=UTC))
    assert a == b == "2026-11-26T10:05:00+00:00"
    cron = ScheduleConfig(cron="*/15 * * * *")
    assert slot_name(cron, datetime(2026, 11, 26, 10, 15, 1, tzinfo=UTC)) == "2026-11-26T10:15:00+00:00"


async def test_two_schedulers_enqueue_a_slot_once(service):
    runtime, queue, client = service
    first = enqueue_flow(queue, "accounts", slot="2026-11-26T10:05:00+00:00")
    queue.complete(queue.claim("w1")[0], {})
    second = enqueue_flow(queue, "accounts", slot="2026-11-26T10:05:00+00:00")  # the other scheduler, later
    assert first == second and count(runtime, Job) == 1


async def test_openapi_describes_every_route(service):
    runtime, queue, client = service
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    for path in ("/webhooks/{system_name}", "/healthz", "/readyz", "/status", "/", "/metrics"):
        assert path in paths, path
    assert set(paths["/webhooks/{system_name}"]["post"]["responses"]) >= {"200", "400", "401", "404", "413"}


async def test_metrics_count_each_webhook_result(service):
    runtime, queue, client = service
    good = body(event_id="m1")
    await client.post("/webhooks/fx", content=good, headers=MemoryVerifier.sign(good, int(time.time())))
    await client.post("/webhooks/fx", content=good, headers=MemoryVerifier.sign(good, int(time.time())))
    forged = MemoryVerifier.sign(good, int(time.time())) | {"x-signature": "0" * 64}
    await client.post("/webhooks/fx", content=good, headers=forged)
    await client.post("/webhooks/nope", content=good, headers=MemoryVerifier.sign(good, int(time.time())))
    text = (await client.get("/metrics", headers={"authorization": "Bearer s3cret-ops-token"})).text
    for result, system in (("accepted", "fx"), ("duplicate", "fx"), ("rejected", "fx"), ("unknown_system", "unknown")):
        assert f'crmsync_webhook_deliveries_total{{result="{result}",system="{system}"}} 1.0' in text, result


async def test_a_burst_of_webhooks_is_handled_together(service):
    runtime, queue, client = service
    fx = MemorySystem.instances["fx"]
    ids = [fx.user_create("AccountObj", {"name": f"批量公司{i}"}) for i in range(6)]
    for i, rid in enumerate(ids):
        payload = body(event_id=f"burst-{i}", ids=[rid])
        await client.post("/webhooks/fx", content=payload, headers=MemoryVerifier.sign(payload, int(time.time())))
    worker = Worker(runtime, SyncEngine(runtime), queue, poll_seconds=0.01, webhook_batch=10)
    task = asyncio.create_task(worker.run())
    for _ in range(300):
        if worker.done >= 6:
            break
        await asyncio.sleep(0.02)
    worker.stopping.set()
    await task
    assert worker.done == 6
    assert len(MemorySystem.instances["zoho"].records("Accounts")) == 6
    with runtime.store.read() as s:
        assert set(s.scalars(select(InboxEntry.status))) == {"processed"}
        results = [job.result for job in s.scalars(select(Job))]
    assert all(r == {"batched_with": 6} for r in results), results
