"""A crash at any step of a pass, then a rerun: nothing lost, nothing duplicated."""
from __future__ import annotations

import asyncio

import pytest

from sync_engine import engine as engine_module
from sync_engine import pull as pull_module
from sync_engine.engine import SyncEngine
from sync_engine.runtime import Runtime
from sync_engine.state.db import StateStore

from .conftest import make_config
from .memory import MemorySystem

CONFIG = """
systems: {fx: {type: memory, page_size: 7}, zoho: {type: memory}, erp: {type: memory}}
sync: {lease: 0.2s}
entities:
  account:
    model: Account
    match: {keys: [tax_id]}
    systems:
      fx: {object: AccountObj, fields: {name: name, tax_id: uscc}}
      zoho: {object: Accounts, fields: {name: Account_Name, tax_id: Tax_ID}}
      erp: {object: BD_Customer, fields: {name: FName, tax_id: FTaxRegisterCode}}
flows:
  accounts: {entity: account, systems: [fx, zoho, erp]}
"""


class Crash(Exception):
    pass


def crash_on_call(monkeypatch, module, name, n=1):
    real = getattr(module, name)
    calls = {"n": 0}

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise Crash(f"injected crash in {name}")
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


async def run_once(url):
    config = make_config(CONFIG)
    config.state.url = url
    runtime = Runtime(config, store=StateStore.open(url))
    try:
        async with runtime:
            await SyncEngine(runtime, batch_size=10).run_all()
    finally:
        runtime.store.dispose()


def check(systems, n):
    for name, obj, key in (("fx", "AccountObj", "uscc"), ("zoho", "Accounts", "Tax_ID"), ("erp", "BD_Customer", "FTaxRegisterCode")):
        taxes = sorted(r[key] for r in systems[name].records(obj).values())
        assert taxes == sorted(f"T{i:03d}" for i in range(n)), f"{name}: {len(taxes)} records"


@pytest.mark.parametrize(
    ("module", "name", "n"),
    [
        pytest.param(engine_module, "reconcile_batch", 2, id="after-pull-mid-reconcile"),
        pytest.param(pull_module, "stage_records", 3, id="mid-pull"),
        pytest.param(engine_module, "push_pending", 1, id="before-push"),
        pytest.param(engine_module, "commit_cursor", 1, id="before-cursor-commit"),
    ],
)
async def test_crash_then_rerun_converges(memory_plugin, tmp_path, monkeypatch, module, name, n):
    MemorySystem.instances.clear()
    url = f"sqlite:///{tmp_path / 's.db'}"
    await run_once(url)  # creates the systems
    fx = MemorySystem.instances["fx"]
    for i in range(40):
        fx.user_create("AccountObj", {"name": f"公司{i}", "uscc": f"T{i:03d}"})
    with pytest.MonkeyPatch.context() as mp:
        calls = crash_on_call(mp, module, name, n)
        with pytest.raises(Crash):
            await run_once(url)
        assert calls["n"] == n
    await run_once(url)
    check(MemorySystem.instances, 40)


async def test_crash_after_partial_push_does_not_create_twice(memory_plugin, tmp_path, monkeypatch):
    """The target applied the writes but the process died before recording the results."""
    MemorySystem.instances.clear()
    url = f"sqlite:///{tmp_path / 's.db'}"
    await run_once(url)
    systems = MemorySystem.instances
    fx, zoho = systems["fx"], systems["zoho"]
    for i in range(25):
        fx.user_create("AccountObj", {"name": f"公司{i}", "uscc": f"T{i:03d}"})
    real_push = type(zoho).push
    state = {"calls": 0}

    async def push_then_die(self, object, ops):
        results = await real_push(self, object, ops)
        if self.name == "zoho":
            state["calls"] += 1
            if state["calls"] == 1:
                raise Crash("died after the target applied the batch")
        return results

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(type(zoho), "push", push_then_die)
        with pytest.raises(Crash):
            await run_once(url)
    await asyncio.sleep(0.5)  # the dead worker's sends are in doubt once their lease is over
    await run_once(url)
    check(systems, 25)
    creates = zoho.writes["create"]
    await run_once(url)
    assert zoho.writes["create"] == creates


async def test_a_create_in_doubt_is_found_even_after_a_user_edited_it(memory_plugin, tmp_path):
    """The worker died after Zoho created the records; before recovery a user renamed one of them.
    Recovery must still recognise it (by its tax id) rather than create the company twice."""
    MemorySystem.instances.clear()
    url = f"sqlite:///{tmp_path / 's.db'}"
    await run_once(url)
    systems = MemorySystem.instances
    fx, zoho = systems["fx"], systems["zoho"]
    for i in range(5):
        fx.user_create("AccountObj", {"name": f"公司{i}", "uscc": f"T{i:03d}"})
    real_push = type(zoho).push

    async def push_then_die(self, object, ops):
        results = await real_push(self, object, ops)
        if self.name == "zoho":
            raise Crash("died after the target applied the batch")
        return results

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(type(zoho), "push", push_then_die)
        with pytest.raises(Crash):
            await run_once(url)
    rid = next(r for r, v in zoho.records("Accounts").items() if v["Tax_ID"] == "T003")
    zoho.user_update("Accounts", rid, {"Account_Name": "公司3（已更名）"})
    await asyncio.sleep(0.5)  # the dead worker's sends are in doubt once their lease is over
    await run_once(url)
    await run_once(url)
    check(systems, 5)
    assert any(r["name"] == "公司3（已更名）" for r in fx.records("AccountObj").values())
