from __future__ import annotations

import contextlib
import textwrap

import pytest

from config.loader import parse_config
from connectors import registry
from sync_engine.engine import SyncEngine
from sync_engine.runtime import Runtime
from sync_engine.state.db import StateStore

from .memory import PLUGIN, MemorySystem

THREE_SYSTEMS = """
systems:
  fx: {type: memory}
  zoho: {type: memory}
  erp: {type: memory}
entities:
  account:
    model: Account
    systems:
      fx:
        object: AccountObj
        fields: {name: name, tax_id: uscc, phone: tel, industry: industry, credit_limit: {field: credit, direction: read}}
      zoho:
        object: Accounts
        fields: {name: Account_Name, tax_id: Tax_ID, phone: Phone, industry: Industry, credit_limit: {field: Credit_Limit, direction: write}}
      erp:
        object: BD_Customer
        fields: {name: FName, tax_id: FTaxRegisterCode, phone: FTel, credit_limit: FCreditLimit}
  contact:
    model: Contact
    systems:
      fx:
        object: ContactObj
        fields: {name: name, email: email, account: {field: account_id, reference: account}}
      zoho:
        object: Contacts
        fields: {name: Last_Name, email: Email, account: {field: Account_Name.id, reference: account}}
flows:
  accounts:
    entity: account
    systems: [fx, zoho, erp]
  contacts:
    entity: contact
    systems: [fx, zoho]
conflicts:
  account:
    default: latest_wins
    fields:
      credit_limit: {source_of_truth: erp}
      industry: manual
deletes:
  account: propagate
"""


@pytest.fixture
def memory_plugin(monkeypatch):
    plugins = {**{k: v for k, v in registry.plugins().items()}, "memory": PLUGIN}
    monkeypatch.setattr(registry, "plugins", lambda: plugins)
    MemorySystem.instances.clear()
    return plugins


def make_config(text: str = THREE_SYSTEMS, tmp_path=None):
    return parse_config(textwrap.dedent(text), "engine-test.yaml", environ={})


@pytest.fixture
def state_url(tmp_path):
    return f"sqlite:///{tmp_path / 'state.db'}"


@contextlib.asynccontextmanager
async def engine_for(text: str, state_url: str):
    """A SyncEngine on the memory systems configured by ``text`` (a variant of THREE_SYSTEMS)."""
    config = make_config(text)
    config.state.url = state_url
    runtime = Runtime(config, store=StateStore.open(state_url))
    async with runtime:
        yield SyncEngine(runtime)
    runtime.store.dispose()


@pytest.fixture
async def engine(memory_plugin, state_url):
    async with engine_for(THREE_SYSTEMS, state_url) as engine:
        yield engine


@pytest.fixture
def systems(engine):
    return MemorySystem.instances
