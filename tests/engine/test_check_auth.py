"""The scheduler's credential check: tokens refreshed and each system's auth state recorded,
so /readyz turns red when a system refuses our credentials and green again once fixed."""
from __future__ import annotations

import httpx
import pytest

from connectors.errors import AuthError
from sync_engine.engine import SyncEngine
from sync_engine.runtime import Runtime
from sync_engine.service import Worker, check_auth
from sync_engine.state.db import StateStore
from sync_engine.state.queue import JobQueue
from webhooks.app import create_app

from .conftest import THREE_SYSTEMS, make_config
from .memory import MemorySystem


@pytest.fixture
async def runtime(memory_plugin, state_url):
    config = make_config(THREE_SYSTEMS)
    config.state.url = state_url
    rt = Runtime(config, store=StateStore.open(state_url))
    async with rt:
        yield rt
    rt.store.dispose()


async def test_refused_credentials_show_in_readyz_until_fixed(runtime, monkeypatch):
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime)), base_url="http://crmsync.test")
    zoho = runtime.connectors["zoho"]
    assert isinstance(zoho, MemorySystem)

    async def refused() -> None:
        raise AuthError("refresh token revoked", system="zoho")

    monkeypatch.setattr(zoho, "check", refused)
    assert await check_auth(runtime) == {"ok": ["fx", "erp"], "failed": ["zoho"], "unavailable": []}
    ready = await client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["auth_failed"] == ["zoho"]

    monkeypatch.undo()  # the credentials were fixed
    queue = JobQueue(runtime.store)
    job_id = queue.enqueue("check_auth", {}, dedupe_key="check_auth")
    worker = Worker(runtime, SyncEngine(runtime), queue)
    claimed = queue.claim(worker.id)
    assert [j.id for j in claimed] == [job_id]
    assert await worker.execute(claimed[0]) == {"ok": ["fx", "zoho", "erp"], "failed": [], "unavailable": []}
    assert (await client.get("/readyz")).status_code == 200
    await client.aclose()
