"""One entity in two flows that share a system: Zoho ↔ Fxiaoke and Zoho ↔ ERP, each with its own
schedule (so one system's outage holds up only its own flow).

Found while testing degraded dependencies (issue #10, item 7): a Zoho record the first flow has
already reconciled is skipped by the second ("read 1, skipped 1"), even by a full pass, so it never
reaches the ERP. Kept here as a strict xfail until the engine tracks what each flow has pushed.
"""
from __future__ import annotations

import pytest

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


@pytest.mark.xfail(strict=True, reason="a record reconciled by one flow is skipped by another flow of the same "
                                       "entity: it never reaches that flow's other systems")
async def test_a_record_reaches_the_systems_of_both_flows_of_its_entity(memory_plugin, tmp_path):
    assert TWO_FLOWS != THREE_SYSTEMS
    url = f"sqlite:///{tmp_path / 'state.db'}"
    config = make_config(TWO_FLOWS)
    config.state.url = url
    runtime = Runtime(config, store=StateStore.open(url))
    async with runtime:
        zoho = MemorySystem.instances["zoho"]
        zoho.user_create("Accounts", {"Account_Name": "深圳市华为技术有限公司", "Phone": "0755-0001"})
        engine = SyncEngine(runtime)
        await engine.run_flow("crm_accounts")
        await engine.run_flow("erp_accounts")
        fx_names = [r["name"] for r in MemorySystem.instances["fx"].records("AccountObj").values()]
        assert fx_names == ["深圳市华为技术有限公司"]
        erp_names = [r["FName"] for r in MemorySystem.instances["erp"].records("BD_Customer").values()]
        assert erp_names == ["深圳市华为技术有限公司"]
    runtime.store.dispose()
