"""One entity in two flows that share a system: Zoho ↔ Fxiaoke and Zoho ↔ ERP, each with its own
schedule (so one system's outage holds up only its own flow).

Found while testing degraded dependencies (issue #10, item 7): links, snapshots and the canonical
record belong to the entity, so a Zoho version the first flow had reconciled was skipped by the
second ("read 1, skipped 1"), even by a full pass, and never reached the ERP. Every flow of the
entity now plans its writes when a record changes.
"""
from __future__ import annotations

from connectors.base import ChangeHint
from sync_engine.engine import SyncEngine
from sync_engine.runtime import Runtime
from sync_engine.state.db import StateStore

from .conftest import THREE_SYSTEMS, make_config
from .memory import MemorySystem

TWO_FLOWS = THREE_SYSTEMS.replace(
    "flows:\n  accounts:\n    entity: account\n    systems: [fx, zoho, erp]\n",
    "flows:\n  crm_accounts:\n    entity: account\n    systems: [fx, zoho]\n"
    "  erp_accounts:\n    entity: account\n    systems: [zoho, erp]\n",
)
ERP_READ_ONLY = TWO_FLOWS.replace(
    "  erp_accounts:\n    entity: account\n    systems: [zoho, erp]\n",
    "  erp_accounts:\n    entity: account\n    systems: [erp, zoho]\n    direction: one_way\n    source: erp\n",
)


def _runtime(text: str, tmp_path) -> Runtime:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    config = make_config(text)
    config.state.url = url
    return Runtime(config, store=StateStore.open(url))


def _names(system: str, object: str) -> list[str]:
    field = {"fx": "name", "zoho": "Account_Name", "erp": "FName"}[system]
    return sorted(r[field] for r in MemorySystem.instances[system].records(object).values())


async def test_a_record_reaches_the_systems_of_both_flows_of_its_entity(memory_plugin, tmp_path):
    assert TWO_FLOWS != THREE_SYSTEMS
    runtime = _runtime(TWO_FLOWS, tmp_path)
    async with runtime:
        zoho = MemorySystem.instances["zoho"]
        zoho.user_create("Accounts", {"Account_Name": "深圳市华为技术有限公司", "Phone": "0755-0001"})
        engine = SyncEngine(runtime)
        await engine.run_flow("crm_accounts")
        await engine.run_flow("erp_accounts")
        assert _names("fx", "AccountObj") == ["深圳市华为技术有限公司"]
        assert _names("erp", "BD_Customer") == ["深圳市华为技术有限公司"]
        # A second round of both flows finds nothing left to write: no second copy anywhere.
        await engine.run_flow("crm_accounts")
        await engine.run_flow("erp_accounts")
        assert _names("erp", "BD_Customer") == ["深圳市华为技术有限公司"]
        assert _names("zoho", "Accounts") == ["深圳市华为技术有限公司"]
    runtime.store.dispose()


async def test_an_edit_announced_by_webhook_reaches_both_flows(memory_plugin, tmp_path):
    runtime = _runtime(TWO_FLOWS, tmp_path)
    async with runtime:
        zoho = MemorySystem.instances["zoho"]
        rid = zoho.user_create("Accounts", {"Account_Name": "比亚迪股份有限公司", "Phone": "0755-1111"})
        engine = SyncEngine(runtime)
        await engine.run_flow("crm_accounts")
        await engine.run_flow("erp_accounts")
        zoho.user_update("Accounts", rid, {"Phone": "0755-2222"})
        # A webhook runs every flow that reads the object; the first one reconciles the new version.
        await engine.sync_hints("zoho", [ChangeHint("Accounts", [rid], "update")])
        [fx] = MemorySystem.instances["fx"].records("AccountObj").values()
        [erp] = MemorySystem.instances["erp"].records("BD_Customer").values()
        assert fx["tel"] == "0755-2222"
        assert erp["FTel"] == "0755-2222"
    runtime.store.dispose()


async def test_a_delete_reaches_the_systems_of_both_flows(memory_plugin, tmp_path):
    runtime = _runtime(TWO_FLOWS, tmp_path)
    async with runtime:
        fx = MemorySystem.instances["fx"]
        rid = fx.user_create("AccountObj", {"name": "腾讯科技（深圳）有限公司", "tel": "0755-3333"})
        engine = SyncEngine(runtime)
        await engine.run_flow("crm_accounts")
        await engine.run_flow("erp_accounts")
        assert _names("erp", "BD_Customer") == ["腾讯科技（深圳）有限公司"]
        fx.user_delete("AccountObj", rid)
        await engine.run_flow("crm_accounts")
        assert _names("zoho", "Accounts") == []
        assert _names("erp", "BD_Customer") == []
    runtime.store.dispose()


async def test_a_one_way_flow_still_writes_only_away_from_its_source(memory_plugin, tmp_path):
    """erp → zoho one way: the ERP is never written, whatever the CRM flow reconciles."""
    runtime = _runtime(ERP_READ_ONLY, tmp_path)
    async with runtime:
        MemorySystem.instances["fx"].user_create("AccountObj", {"name": "小米科技有限责任公司"})
        engine = SyncEngine(runtime)
        await engine.run_flow("crm_accounts")
        await engine.run_flow("erp_accounts")
        assert _names("zoho", "Accounts") == ["小米科技有限责任公司"]
        assert _names("erp", "BD_Customer") == []
    runtime.store.dispose()
