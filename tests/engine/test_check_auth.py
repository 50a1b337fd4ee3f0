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


def refuse(monkeypatch, connector: MemorySystem, reason: str) -> None:
    """The system refuses our credentials for every call, as a revoked token or a changed password does."""

    async def refused(*_args, **_kwargs):
        raise AuthError(reason, system=connector.name)

    def refused_pull(*_args, **_kwargs):
        raise AuthError(reason, system=connector.name)

    monkeypatch.setattr(connector, "check", refused)
    monkeypatch.setattr(connector, "pull", refused_pull)
    monkeypatch.setattr(connector, "fetch", refused)


def flow_status(runtime, name: str) -> dict:
    from sync_engine.status import collect_status

    return next(f for f in collect_status(runtime)["flows"] if f["name"] == name)


async def test_a_flow_whose_systems_all_refuse_credentials_is_not_ok_until_they_are_fixed(runtime, monkeypatch):
    """Before: the flow said "ok" (check_auth alone) or "warning" (after a pass); every one of its
    systems refusing means nothing moves, which the status (JSON, page, CLI) says, with the reasons."""
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime)), base_url="http://crmsync.test")
    for name in ("fx", "zoho", "erp"):
        refuse(monkeypatch, runtime.connectors[name], f"{name} says: invalid credentials")
    assert (await check_auth(runtime))["failed"] == ["fx", "zoho", "erp"]
    accounts = flow_status(runtime, "accounts")
    assert accounts["health"] == "auth_failed", accounts
    assert accounts["auth_failed"] == {s: f"[{s}] {s} says: invalid credentials" for s in ("fx", "zoho", "erp")}
    assert "zoho refuses our credentials: [zoho] zoho says: invalid credentials" in accounts["attention"]
    status = (await client.get("/status")).json()
    assert [f["health"] for f in status["flows"]] == ["auth_failed", "auth_failed"]  # contacts: fx and zoho
    page = (await client.get("/")).text
    assert 'class="badge auth_failed"' in page
    assert (await client.get("/readyz")).status_code == 503

    # A pass meanwhile fails every pull: still auth_failed (not a mere warning).
    await SyncEngine(runtime).run_flow("accounts")
    assert flow_status(runtime, "accounts")["health"] == "auth_failed"

    monkeypatch.undo()  # the credentials are fixed; the next scheduled check_auth sees it
    assert (await check_auth(runtime))["ok"] == ["fx", "zoho", "erp"]
    accounts = flow_status(runtime, "accounts")
    assert accounts["auth_failed"] == {} and accounts["health"] != "auth_failed"
    assert not any("refuses our credentials" in a for a in accounts["attention"])
    assert (await client.get("/readyz")).status_code == 200
    await client.aclose()


async def test_one_system_refusing_degrades_its_flows_and_a_good_pull_clears_it(runtime, monkeypatch):
    erp = runtime.connectors["erp"]
    refuse(monkeypatch, erp, "login refused: 用户名或密码错误")
    engine = SyncEngine(runtime)
    await engine.run_flow("accounts")
    accounts, contacts = flow_status(runtime, "accounts"), flow_status(runtime, "contacts")
    assert accounts["health"] == "degraded" and accounts["auth_failed"] == {"erp": "[erp] login refused: 用户名或密码错误"}
    assert contacts["health"] == "ok", contacts  # erp is not in it

    monkeypatch.undo()
    await engine.run_flow("accounts")  # erp took our credentials for this pull: no wait for check_auth
    accounts = flow_status(runtime, "accounts")
    assert accounts["auth_failed"] == {} and accounts["health"] in ("ok", "warning"), accounts


async def test_a_one_way_flow_whose_source_refuses_is_auth_failed(memory_plugin, state_url, monkeypatch):
    one_way = "flows:\n  erp_to_fx:\n    entity: account\n    systems: [erp, fx]\n    direction: one_way\n    source: erp\n"
    config = make_config(THREE_SYSTEMS.replace("flows:\n", one_way, 1))
    config.state.url = state_url
    rt = Runtime(config, store=StateStore.open(state_url))
    async with rt:
        refuse(monkeypatch, rt.connectors["erp"], "login refused")
        await check_auth(rt)
        assert flow_status(rt, "erp_to_fx")["health"] == "auth_failed"  # its only source: nothing moves
        assert flow_status(rt, "accounts")["health"] == "degraded"  # fx and zoho still sync with each other
    rt.store.dispose()
