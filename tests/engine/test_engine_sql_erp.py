"""An ERP behind interface tables: crmsync stages rows, the ERP's import job decides,
and crmsync reads the verdicts back — rejected rows become dead letters."""
from __future__ import annotations

import textwrap

import yaml
from sqlalchemy import create_engine, select

from connectors.sql.demo_schema import create_demo_schema, demo_settings, run_erp_import_job
from sync_engine.engine import SyncEngine
from sync_engine.runtime import Runtime
from sync_engine.state.db import StateStore
from sync_engine.state.models import DeadLetter, Link

from .conftest import make_config
from .memory import MemorySystem

ENTITIES = """
entities:
  account:
    model: Account
    match: {keys: [tax_id, name]}
    systems:
      fx: {object: AccountObj, fields: {name: name, tax_id: uscc, phone: tel}}
      erp:
        object: customer
        fields:
          name: name
          tax_id: tax_no
          phone: phone
          erp_customer_number: {field: cust_no, direction: read}
          id: {field: crm_id, direction: write}
flows:
  accounts: {entity: account, systems: [fx, erp]}
"""


async def test_erp_verdicts_come_back(memory_plugin, tmp_path):
    erp_url = f"sqlite:///{tmp_path / 'erp.db'}"
    erp_db = create_engine(erp_url)
    create_demo_schema(erp_db)
    systems = {"systems": {"fx": {"type": "memory"}, "erp": {"type": "sql", **demo_settings(erp_url)}}}
    config = make_config(yaml.safe_dump(systems, allow_unicode=True) + textwrap.dedent(ENTITIES))
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    config.state.url = state_url
    runtime = Runtime(config, store=StateStore.open(state_url))
    async with runtime:
        fx = MemorySystem.instances["fx"]
        fx.user_create("AccountObj", {"name": "深圳市华为技术有限公司", "uscc": "914403001922038216", "tel": "0755-1"})
        fx.user_create("AccountObj", {"name": "", "uscc": "91440300MA5FAKE12X"})  # the ERP refuses a customer without a name
        engine = SyncEngine(runtime)
        report = (await engine.run_all())[0]
        assert report.counts["erp"]["created"] == 2  # staged in the interface table, waiting for the ERP
        run_erp_import_job(erp_db)
        await engine.run_all()
        with runtime.store.read() as s:
            letters = list(s.scalars(select(DeadLetter)))
            erp_links = list(s.scalars(select(Link).where(Link.system == "erp")))
        assert len(letters) == 1 and letters[0].system == "erp"
        assert letters[0].code and letters[0].message
        # The imported customer's link now carries the ERP's own number, so its reads match it.
        assert any(not link.external_id.startswith(("fx", "dry")) for link in erp_links)
        await engine.run_all()
        assert len(fx.records("AccountObj")) == 2  # nothing came back as a new company
    runtime.store.dispose()
