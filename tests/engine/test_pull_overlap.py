"""A pass reconciles what its pulls have staged while they are still reading, and ``run_all`` starts
every flow's pulls at once while merging and writing the flows in dependency order.

Pushing still waits for every pull and every merge of its flow (a Zoho twin read last must stop the
create of its Fxiaoke copy); a flow merges once the flow it depends on has merged, and writes once
that flow has finished.
"""
from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

import sync_engine.engine as engine_module
from connectors.errors import ConnectorError
from sync_engine.state.models import Run
from sync_engine.state.models.enums import RunStatus
from sync_engine.state.models.pipeline import OutboxWrite, StagedChange
from sync_engine.turns import PrecedingFlowFailed

from .conftest import THREE_SYSTEMS
from .memory import MemorySystem

# The engine tests' systems with partners (referenced by nothing) in place of contacts.
_CONTACT = THREE_SYSTEMS[THREE_SYSTEMS.index("  contact:\n"):THREE_SYSTEMS.index("flows:\n")]
THREE_SYSTEMS_NO_CONTACTS = THREE_SYSTEMS.replace(_CONTACT, """  partner:
    model: Partner
    systems:
      fx: {object: PartnerObj, fields: {name: name}}
      zoho: {object: Partners, fields: {name: Partner_Name}}
""").replace("""  contacts:
    entity: contact
    systems: [fx, zoho]""", """  partners:
    entity: partner
    systems: [fx, zoho]""")

COMPANIES = ["深圳市华为技术有限公司", "北京字节跳动科技有限公司", "杭州阿里巴巴网络技术有限公司", "上海华勤技术股份有限公司"]


def seed_accounts(fx, n: int) -> list[str]:
    return [fx.user_create("AccountObj", {"name": f"{COMPANIES[i % 4]}（{i}）", "uscc": f"91440300{i:010d}"})
            for i in range(n)]


def slow_pull(system, events: list, delay: float = 0.003):
    """The system's pages come over a network: each one a wait, logged as it is staged."""
    real = system.pull

    async def pull(request):
        events.append(("pull", system.name, request.object))
        async for page in real(request):
            await asyncio.sleep(delay)
            yield page
            events.append(("page", system.name, request.object))

    system.pull = pull


@pytest.fixture
def events(monkeypatch) -> list:
    log: list = []
    real_reconcile, real_push = engine_module.reconcile_batch, engine_module.push_pending

    def reconcile_batch(rt, session, report, flow_name, batch, *args, **kwargs):
        log.append(("batch", flow_name, len(batch)))
        return real_reconcile(rt, session, report, flow_name, batch, *args, **kwargs)

    async def push_pending(rt, uow, report, entity, **kwargs):
        log.append(("push", entity))
        try:
            return await real_push(rt, uow, report, entity, **kwargs)
        finally:
            log.append(("pushed", entity))

    monkeypatch.setattr(engine_module, "reconcile_batch", reconcile_batch)
    monkeypatch.setattr(engine_module, "push_pending", push_pending)
    return log


def first(events: list, *kind) -> int:
    return next(i for i, e in enumerate(events) if e[: len(kind)] == kind)


def last(events: list, *kind) -> int:
    return max(i for i, e in enumerate(events) if e[: len(kind)] == kind)


async def test_full_batches_are_merged_while_pages_still_arrive_and_written_once_all_are(engine, systems, events):
    fx, zoho, erp = systems["fx"], systems["zoho"], systems["erp"]
    seed_accounts(fx, 1_000)  # 20 pages of 50
    slow_pull(fx, events)

    report = await engine.run_flow("accounts")

    assert not report.errors
    batches = [e for e in events if e[0] == "batch"]
    # Merging began long before the last page (the network's waits were filled)…
    assert first(events, "batch") < last(events, "page", "fx") - 10
    # …in full batches while reading, the rest (if any) after the last page…
    during = [e for e in events[: last(events, "page", "fx")] if e[0] == "batch"]
    assert during and all(size == engine.batch_size for _, _, size in during)
    assert sum(size for _, _, size in batches) == 1_000
    # …and nothing was written before every record had been merged.
    assert first(events, "push") > last(events, "batch")
    assert len(zoho.records("Accounts")) == len(erp.records("BD_Customer")) == 1_000
    with engine.rt.store.read() as s:
        assert s.scalar(select(func.count()).select_from(StagedChange)) == 0


async def test_a_twin_read_on_the_last_page_stops_the_create_planned_on_the_first(engine, systems, events):
    """Zoho's copy of a company arrives after its Fxiaoke record was merged (and a Zoho create planned):
    it is linked, and the create never goes out."""
    fx, zoho = systems["fx"], systems["zoho"]
    ids = seed_accounts(fx, 400)
    twin = fx.records("AccountObj")[ids[0]]
    for i in range(399):  # Zoho's pages: its own companies first, the twin last
        zoho.user_create("Accounts", {"Account_Name": f"重庆长安汽车股份有限公司（{i}）", "Tax_ID": f"91500000{i:010d}"})
    zoho.user_create("Accounts", {"Account_Name": twin["name"], "Tax_ID": twin["uscc"]})
    slow_pull(fx, events, delay=0.0)
    slow_pull(zoho, events, delay=0.01)  # Zoho reads slower: Fxiaoke's records are merged first

    report = await engine.run_flow("accounts")

    assert not report.errors
    assert first(events, "batch") < last(events, "page", "zoho")
    names = [r["Account_Name"] for r in zoho.records("Accounts").values()]
    assert len(names) == len(set(names)) == 400 + 399  # the twin was not created again
    assert zoho.writes["create"] > 0


async def test_creates_into_a_system_whose_pull_failed_wait_for_a_pass_that_reads_it(engine, systems, events):
    fx, zoho, erp = systems["fx"], systems["zoho"], systems["erp"]
    seed_accounts(fx, 600)
    slow_pull(fx, events)
    real_pull = erp.pull

    async def failing_late(request):
        await asyncio.sleep(0.1)  # long after Fxiaoke's first pages were merged (creates into the ERP planned)
        raise ConnectorError("erp: 503 service unavailable")
        yield  # an async generator, like a real pull

    erp.pull = failing_late
    report = await engine.run_flow("accounts")

    assert any("503" in e for e in report.errors)
    assert first(events, "batch") < last(events, "page", "fx")  # merged while reading, before the failure
    assert len(zoho.records("Accounts")) == 600
    assert erp.records("BD_Customer") == {}  # the ERP may hold them already: crmsync could not look
    with engine.rt.store.read() as s:
        held = s.scalar(select(func.count()).select_from(OutboxWrite).where(
            OutboxWrite.system == "erp", OutboxWrite.status == "deferred"))
    assert held == 600

    erp.pull = real_pull
    await engine.run_flow("accounts")
    assert len(erp.records("BD_Customer")) == 600


async def test_run_all_reads_every_flow_at_once_and_merges_them_in_order(engine, systems, events):
    fx, zoho = systems["fx"], systems["zoho"]
    accounts = seed_accounts(fx, 300)
    for i, account in enumerate(accounts):
        fx.user_create("ContactObj", {"name": f"联系人{i}", "email": f"c{i}@example.cn", "account_id": account})
    slow_pull(fx, events)
    turns: list[str] = []

    reports = await engine.run_all(on_flow=turns.append)

    assert [r.flow for r in reports] == ["accounts", "contacts"] == turns
    assert all(not r.errors for r in reports)
    # The contacts were being read before the accounts were written…
    assert first(events, "pull", "fx", "ContactObj") < first(events, "push", "account")
    # …merged once every account was (each contact's account has its canonical id: none waited)…
    assert first(events, "batch", "contacts") > last(events, "batch", "accounts")
    # …and written once the accounts' writes had landed (their Zoho ids are what the contacts name).
    assert first(events, "push", "contact") > last(events, "pushed", "account")
    assert sum(r.total("deferred") for r in reports) == 0
    contacts = zoho.records("Contacts").values()
    assert len(contacts) == 300
    zoho_accounts = set(zoho.records("Accounts"))
    assert {c["Account_Name"]["id"] for c in contacts} <= zoho_accounts


async def test_a_failed_flow_stops_the_flows_after_it_before_they_merge(engine, systems, monkeypatch):
    fx, zoho = systems["fx"], systems["zoho"]
    [account] = seed_accounts(fx, 1)
    fx.user_create("ContactObj", {"name": "张伟", "email": "zhang.wei@example.cn", "account_id": account})
    real_reconcile = engine_module.reconcile_batch

    def broken_for_accounts(rt, session, report, flow_name, batch, *args, **kwargs):
        if flow_name == "accounts":
            raise RuntimeError("state database went away")
        return real_reconcile(rt, session, report, flow_name, batch, *args, **kwargs)

    monkeypatch.setattr(engine_module, "reconcile_batch", broken_for_accounts)
    with pytest.raises(RuntimeError, match="state database went away"):
        await engine.run_all()
    assert zoho.records("Accounts") == zoho.records("Contacts") == {}
    with engine.rt.store.read() as s:
        runs = {r.flow: r for r in s.scalars(select(Run))}
        pending = s.scalar(select(func.count()).select_from(StagedChange).where(StagedChange.entity == "contact"))
    assert runs["accounts"].status == runs["contacts"].status == RunStatus.FAILED
    assert PrecedingFlowFailed.__name__ in runs["contacts"].error
    assert pending == 1  # read, kept for the next pass

    monkeypatch.setattr(engine_module, "reconcile_batch", real_reconcile)
    reports = await engine.run_all()
    assert all(not r.errors for r in reports)
    [contact] = zoho.records("Contacts").values()
    assert contact["Account_Name"]["id"] in zoho.records("Accounts")


def slow_push(system, delay: float = 0.01):
    """The system's writes take a network round trip each."""
    real = system.push

    async def push(object, ops):
        await asyncio.sleep(delay)
        return await real(object, ops)

    system.push = push


async def test_a_flow_merges_while_the_flow_before_it_writes_and_writes_after_it(engine, systems, events):
    fx, zoho = systems["fx"], systems["zoho"]
    accounts = seed_accounts(fx, 600)
    for i, account in enumerate(accounts):
        fx.user_create("ContactObj", {"name": f"联系人{i}", "email": f"c{i}@example.cn", "account_id": account})
    slow_push(zoho, 0.02)
    slow_push(systems["erp"], 0.02)

    reports = await engine.run_all()

    assert all(not r.errors for r in reports)
    # The contacts were merged while the accounts' writes were on their way…
    assert first(events, "batch", "contacts") < last(events, "pushed", "account")
    # …and written only after those had landed, naming the accounts' new Zoho ids.
    assert first(events, "push", "contact") > last(events, "pushed", "account")
    assert sum(r.total("deferred") for r in reports) == 0
    contacts = list(zoho.records("Contacts").values())
    assert len(contacts) == 600
    assert {c["Account_Name"]["id"] for c in contacts} == set(zoho.records("Accounts"))


def test_a_flow_depends_on_the_flows_it_references_shares_its_entity_with_or_is_tied_to_by_a_trigger(memory_plugin):
    from sync_engine.runtime import Runtime
    from sync_engine.turns import turns

    from .conftest import THREE_SYSTEMS, make_config
    from .test_triggers import config_text as trigger_config
    from .test_two_flows_one_entity import TWO_FLOWS

    def depends(text: str) -> dict[str, dict[str, bool]]:
        rt = Runtime(make_config(text))
        return {t.name: {d.name: early for d, early in t.depends_on} for t in turns(rt, rt.flows_in_order())}

    # A contact points at its account: merged once the accounts are, written once they are written.
    assert depends(THREE_SYSTEMS) == {"accounts": {}, "contacts": {"accounts": True}}
    # Deals make ERP orders (a trigger) and orders report back onto deals: orders wait for the deals' end.
    chain = depends(trigger_config())
    assert chain["deals"] == {"accounts": True}
    assert chain["orders"]["deals"] is False
    # Two flows of one entity: the second merges the same records' changes, so it waits for the first.
    assert depends(TWO_FLOWS)["erp_accounts"] == {"crm_accounts": False}


async def test_flows_that_do_not_depend_on_each_other_write_side_by_side(memory_plugin, state_url):
    """Partners and accounts with no reference between them: neither waits for the other."""
    from .conftest import engine_for

    text = THREE_SYSTEMS_NO_CONTACTS
    async with engine_for(text, state_url) as engine:
        fx = MemorySystem.instances["fx"]
        seed_accounts(fx, 200)
        for i in range(200):
            fx.user_create("PartnerObj", {"name": f"渠道伙伴{i}"})
        log: list = []
        for name in ("zoho", "erp"):
            system = MemorySystem.instances[name]
            real = system.push

            async def push(object, ops, real=real):
                log.append(("send", object))
                await asyncio.sleep(0.05)
                log.append(("sent", object))
                return await real(object, ops)

            system.push = push
        reports = await engine.run_all()
    assert all(not r.errors for r in reports)
    # Both entities' writes were in flight together.
    assert log.index(("send", "Partners")) < log.index(("sent", "Accounts")) \
        and log.index(("send", "Accounts")) < log.index(("sent", "Partners")), log
