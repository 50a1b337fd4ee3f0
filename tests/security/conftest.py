"""The real app with the real verifiers of every push style, on SQLite and (when
CRMSYNC_TEST_DATABASE_URL is set) PostgreSQL, whose column limits SQLite does not enforce."""
from __future__ import annotations

import shutil
import textwrap
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select, text

from config.loader import parse_config
from sync_engine.runtime import Runtime
from sync_engine.state import migrate
from sync_engine.state.db import StateStore
from sync_engine.state.models import Base, Channel, InboxEntry, Job
from sync_engine.state.queue import JobQueue
from sync_engine.state.types import utc_now
from webhooks.app import create_app

ZOHO_CHANNEL = "1000000068001"
ZOHO_TOKEN = "zoho-channel-token-Ω-5d1c7e"
FX_TOKEN = "fx-open-platform-token-9c2b"
FX_AES_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
APL_SECRET = "apl-shared-secret-3f8e1a0b7c6d"
ERP_SECRET = "erp-webhook-secret-0d9e8f7a"
MAX_BODY = 8192

CONFIG = f"""
server: {{max_body_bytes: {MAX_BODY}, ops_token: hostile-ops-token}}
systems:
  zoho:
    type: zoho
    accounts_url: http://127.0.0.1:9
    api_domain: http://127.0.0.1:9
    client_id: 1000.HOSTILE
    client_secret: zoho-client-secret
    refresh_token: 1000.refresh
  fx_open:
    type: fxiaoke
    host: http://127.0.0.1:9
    app_id: FSAID_1
    app_secret: fx-app-secret
    permanent_code: FX-PERM
    notifications: {{style: open_platform, token: {FX_TOKEN}, encoding_aes_key: {FX_AES_KEY}}}
  fx_apl:
    type: fxiaoke
    host: http://127.0.0.1:9
    app_id: FSAID_2
    app_secret: fx-app-secret
    permanent_code: FX-PERM
    notifications: {{style: apl_function, apl_secret: {APL_SECRET}}}
  fx_polled:
    type: fxiaoke
    host: http://127.0.0.1:9
    app_id: FSAID_3
    app_secret: fx-app-secret
    permanent_code: FX-PERM
  erp_db:
    type: sql
    url: sqlite://
    webhook_secret: {ERP_SECRET}
    webhook_max_ids: 50
    objects:
      customer:
        table: v_crm_customer
        key: [cust_no]
        modified_column: modified_at
        interface: {{table: crm_customer_if, key: [crm_id]}}
  erp_polled:
    type: sql
    url: sqlite://
    objects:
      customer:
        table: v_crm_customer
        key: [cust_no]
        interface: {{table: crm_customer_if, key: [crm_id]}}
"""


@dataclass
class Service:
    runtime: Runtime
    client: httpx.AsyncClient

    def counts(self) -> tuple[int, int]:
        """Rows in the inbox and the job queue: rejected deliveries must not change them."""
        with self.runtime.store.read() as s:
            return (
                s.scalar(select(func.count()).select_from(InboxEntry)),
                s.scalar(select(func.count()).select_from(Job)),
            )


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory) -> Path:
    """One migrated SQLite file, copied for each test (migrating each time costs more than the test)."""
    path = tmp_path_factory.mktemp("template") / "state.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def migrated_postgres(pg_databases) -> str:
    url = pg_databases()
    migrate.upgrade(url)
    return url


@pytest.fixture
def backend(request) -> str:
    """SQLite unless a test asks for PostgreSQL too (``indirect`` parametrisation)."""
    return getattr(request, "param", "sqlite")


BOTH_BACKENDS = pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


@pytest.fixture
def state_url(backend, request, tmp_path) -> str:
    if backend == "sqlite":
        path = tmp_path / "state.db"
        shutil.copyfile(request.getfixturevalue("migrated_sqlite"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("migrated_postgres")
    engine = create_engine(url)
    with engine.begin() as connection:
        names = ", ".join(t.name for t in Base.metadata.sorted_tables)
        connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def connectors(tmp_path_factory):
    """Built once: each builds HTTPS clients (≈60 ms of certificate loading); receivers never open them."""
    config = parse_config(textwrap.dedent(CONFIG), "hostile.yaml", environ={})
    url = f"sqlite:///{tmp_path_factory.mktemp('connectors') / 'state.db'}"
    return Runtime(config, store=StateStore.open(url)).connectors


@pytest.fixture
async def service(state_url, connectors):
    config = parse_config(textwrap.dedent(CONFIG), "hostile.yaml", environ={})
    config.state.url = state_url
    runtime = Runtime(config, store=StateStore.open(state_url), connectors=connectors, migrate_on_start=False)
    with runtime.store.write() as s:
        s.add(Channel(system="zoho", channel_id=ZOHO_CHANNEL, token=ZOHO_TOKEN, objects=["Accounts"],
                      expires_at=utc_now() + timedelta(days=1)))
    app = create_app(runtime, queue=JobQueue(runtime.store))
    # raise_app_exceptions=False: an unhandled exception must show up as the 500 a sender would see.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    client = httpx.AsyncClient(transport=transport, base_url="http://crmsync.test")
    try:
        yield Service(runtime, client)
    finally:
        await client.aclose()
        runtime.store.dispose()
