"""The check read right before an update (sync_engine/push._checked) must be fresh when the write goes
out. Its answer can wait for this process's event loop while another worker reconciles (chaos seed 38:
a Fxiaoke edit made 3.9 s before our write was overwritten): a check that took too long is done again."""
from __future__ import annotations

import asyncio
import itertools

from connectors.base import ChangeHint
from sync_engine import push

from .test_notified_overwrites import _linked_company, _phones


def _zoho_edit_lands_while_the_check_waits(zoho, zid, phone, *, stall: float):
    """The check's read of Zoho answers; before our task resumes (the loop busy for ``stall`` s), a Zoho
    user sets the phone. Only the first check read is held up."""
    real_fetch = zoho.fetch

    async def fetch(object, ids, fields=()):
        records = await real_fetch(object, ids, fields)
        if zid in ids:
            zoho.fetch = real_fetch
            zoho.user_update("Accounts", zid, {"Phone": phone})
            await asyncio.sleep(stall)
        return records

    zoho.fetch = fetch


async def test_a_check_answered_too_long_before_the_write_is_done_again(engine, systems):
    fx, zoho = systems["fx"], systems["zoho"]
    rid, zid, eid = await _linked_company(engine, systems)
    fx.user_update("AccountObj", rid, {"tel": "0755-fx"})
    _zoho_edit_lands_while_the_check_waits(zoho, zid, "0755-zoho", stall=push.CHECK_FRESH_SECONDS + 0.2)
    await engine.sync_hints("fx", [ChangeHint("AccountObj", [rid])])
    assert zoho.records("Accounts")[zid]["Phone"] == "0755-zoho", "the second read saw the edit: not overwritten"
    await engine.run_all()
    # latest_wins: the Zoho edit came last; it reaches every system.
    assert _phones(systems, rid, zid, eid) == ("0755-zoho",) * 3


def _counted_checks(monkeypatch) -> list[tuple[str, list]]:
    """(system, external ids) of every check read from now on, in order."""
    checks: list[tuple[str, list]] = []
    real = push._without_overwrites

    async def counting(rt, uow, report, entity, system, planned, *args):
        checks.append((system, [op.external_id for _, op in planned]))
        return await real(rt, uow, report, entity, system, planned, *args)

    monkeypatch.setattr(push, "_without_overwrites", counting)
    return checks


async def test_a_prompt_check_is_not_repeated(engine, systems, monkeypatch):
    """The extra read costs a call only when the first was slow: a prompt check reads once."""
    fx = systems["fx"]
    rid, zid, eid = await _linked_company(engine, systems)
    fx.user_update("AccountObj", rid, {"tel": "0755-fx"})
    checks = _counted_checks(monkeypatch)
    await engine.sync_hints("fx", [ChangeHint("AccountObj", [rid])])
    assert sorted(checks) == [("erp", [eid]), ("zoho", [zid])]
    assert _phones(systems, rid, zid, eid) == ("0755-fx",) * 3


async def test_a_slow_check_is_repeated_only_a_few_times(engine, systems, monkeypatch):
    """A machine too slow for any check to be prompt still writes, after ``CHECK_ROUNDS`` reads."""
    fx = systems["fx"]
    rid, zid, eid = await _linked_company(engine, systems)
    fx.user_update("AccountObj", rid, {"tel": "0755-fx"})
    monkeypatch.setattr(push, "CHECK_FRESH_SECONDS", -1.0)
    checks = _counted_checks(monkeypatch)
    await engine.sync_hints("fx", [ChangeHint("AccountObj", [rid])])
    assert sorted(system for system, _ in checks) == ["erp"] * push.CHECK_ROUNDS + ["zoho"] * push.CHECK_ROUNDS
    assert _phones(systems, rid, zid, eid) == ("0755-fx",) * 3


async def test_reconciling_many_batches_lets_the_other_workers_run_between_them(engine, systems, monkeypatch):
    """Workers of one process share its event loop; reconciling is CPU work with no await. Between two
    batches the loop turns, so another worker's check read is not held up for the whole pass."""
    from sync_engine import engine as engine_module

    fx = systems["fx"]
    for n in range(6):
        fx.user_create("AccountObj", {"name": f"广州市第{n}贸易有限公司", "uscc": f"91440101MA5F00000{n}"})
    engine.batch_size = 2
    turns = 0
    seen: list[int] = []
    real = engine_module.reconcile_batch

    def noting(*args, **kwargs):
        seen.append(turns)
        return real(*args, **kwargs)

    async def other_worker():
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    monkeypatch.setattr(engine_module, "reconcile_batch", noting)
    ticker = asyncio.create_task(other_worker())
    try:
        await engine.run_all()
    finally:
        ticker.cancel()
    assert len(seen) >= 3
    assert all(b > a for a, b in itertools.pairwise(seen)), seen


async def test_an_update_records_when_its_check_read_came_back(engine, systems, monkeypatch):
    """The audit trail says when the read that cleared an update came back: an edit the target took after
    that moment could not be seen, and bench/chaos.py's checker tells such an overwritten edit (no API
    offers a conditional write) from a loss of ours by it."""
    from datetime import datetime

    from sqlalchemy import select

    from sync_engine.state.models import AuditEvent
    from sync_engine.state.types import utc_now

    fx, zoho = systems["fx"], systems["zoho"]
    rid, zid, _eid = await _linked_company(engine, systems)
    fx.user_update("AccountObj", rid, {"tel": "0755-fx"})
    checks = _counted_checks(monkeypatch)
    before = utc_now()
    await engine.sync_hints("fx", [ChangeHint("AccountObj", [rid])])
    assert zoho.records("Accounts")[zid]["Phone"] == "0755-fx"
    with engine.rt.store.read() as s:
        (write,) = s.scalars(select(AuditEvent).where(
            AuditEvent.kind == "write", AuditEvent.system == "zoho", AuditEvent.at >= before,
        )).all()
    assert write.details["action"] == "update" and write.details["changes"]["phone"][1] == "0755-fx"
    checked_at = datetime.fromisoformat(write.details["checked_at"])
    assert before <= checked_at <= write.at
    assert ("zoho", [zid]) in checks
    # A create is not checked (nothing there to overwrite): no such moment.
    with engine.rt.store.read() as s:
        creates = s.scalars(select(AuditEvent).where(AuditEvent.kind == "write")).all()
    assert all("checked_at" not in e.details for e in creates if e.details["action"] == "create")
