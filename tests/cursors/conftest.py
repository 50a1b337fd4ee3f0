"""Cursor edge cases against each source over real loopback HTTP (the SQL connector over a database).

Every test syncs one source system (``src``: Zoho, Fxiaoke or Kingdee on its emulator, or the SQL
connector on an ERP database) one way into an in-memory system (``mem``), with the real engine and
state store, so what is asserted is what the engine staged, wrote and kept as its cursor.

A :class:`Source` makes records at exact modified times (ties, records committed late with an older
time), shifts the source's clock (skew) and knows how the system writes its times; bulk set-up goes
straight into the emulator's store (1,000 admin calls would dominate the run time), single records
and clock changes go through the emulators' ``/_admin`` API.
"""
from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml
from sqlalchemy import Engine, create_engine, func, insert, select

from config.loader import parse_config
from connectors import registry
from connectors.base import PullRequest, SourceRecord
from connectors.emulation.server import ThreadedServer
from connectors.fxiaoke.emulator import EmulatorConfig, FxiaokeEmulator
from connectors.kingdee.emulator import DEFAULT_CREDENTIALS as KINGDEE_CREDENTIALS
from connectors.kingdee.emulator import create_app as kingdee_app
from connectors.kingdee.emulator_forms import FORMS
from connectors.sql import demo_schema
from connectors.zoho.emulator import ZohoEmulator
from connectors.zoho.emulator_schema import UI_USER
from sync_engine.context import Report
from sync_engine.engine import SyncEngine
from sync_engine.runtime import Runtime
from sync_engine.state.db import StateStore
from sync_engine.state.models import Cursor
from tests.engine.memory import PLUGIN as MEMORY_PLUGIN
from tests.engine.memory import MemorySystem

FLOW = "accounts"
SHANGHAI = ZoneInfo("Asia/Shanghai")
#: Small pages, so 1,000 tied records straddle several page edges in every system.
PAGE = 150


def utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def second(value: datetime) -> datetime:
    """Whole seconds: Zoho and the SQL demo schema keep no fractions."""
    return value.replace(microsecond=0)


# ---------------------------------------------------------------------------
# sources


@dataclass
class Source:
    """One source system under test. Subclasses know how to make records at exact times."""

    kind: str
    object: str
    name_field: str
    url: str = ""
    admin: httpx.Client | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    serial: int = 0

    def system_config(self) -> dict[str, Any]:
        return {"type": self.kind, **self.settings}

    def next_name(self) -> str:
        self.serial += 1
        return f"客户{self.serial:05d}有限公司"

    # -- the source's clock, through /_admin/switches ----------------------
    def switch(self, **values: Any) -> dict[str, Any]:
        assert self.admin is not None
        response = self.admin.patch(f"{self.url}/_admin/switches", json=values)
        assert response.status_code == 200, response.text
        return response.json()

    def skew(self, seconds: float) -> None:
        self.switch(clock_offset_seconds=seconds)

    def freeze(self, at: datetime | None) -> None:
        self.switch(frozen_time=at.isoformat() if at else None)

    def clock(self) -> datetime:
        """The source's own idea of now: what it stamps on a record changed now."""
        return datetime.now(UTC) + timedelta(seconds=self._offset())

    def _offset(self) -> float:
        assert self.admin is not None
        return float(self.admin.get(f"{self.url}/_admin/switches").json()["clock_offset_seconds"])

    # -- records -----------------------------------------------------------
    def create(self, at: datetime | None = None) -> str:
        """One record "as a user" through /_admin; ``at`` freezes the source's clock there while it is saved."""
        if at is not None:
            self.freeze(at)
        try:
            response = self.admin.post(f"{self.url}/_admin/records/{self.object}", json=self.new_record())
            assert response.status_code == 200, response.text
            return self.id_of(response.json())
        finally:
            if at is not None:
                self.freeze(None)

    def new_record(self) -> dict[str, Any]:
        return {self.name_field: self.next_name()}

    def id_of(self, body: dict[str, Any]) -> str:
        raise NotImplementedError

    def bulk(self, count: int, at: datetime) -> list[str]:
        """``count`` records sharing the modified time ``at`` (a bulk import), straight into the store."""
        raise NotImplementedError

    def raw_modified(self, record: SourceRecord) -> Any:
        """The modified time exactly as the system sent it."""
        raise NotImplementedError

    def rename(self, record_id: str, at: datetime) -> str:
        """A user gives the record a new name, saved with the modified time ``at``; returns the name."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class ZohoSource(Source):
    def __init__(self, emu: ZohoEmulator, url: str, admin: httpx.Client) -> None:
        super().__init__("zoho", "Accounts", "Account_Name", url, admin, {
            "accounts_url": url, "client_id": emu.tokens.client_id, "client_secret": emu.tokens.client_secret,
            "refresh_token": emu.tokens.refresh_token, "page_size": PAGE,
            "retry_attempts": 3, "retry_base_seconds": 0.01, "retry_max_seconds": 0.05,
        })
        self.emu = emu

    def id_of(self, body: dict[str, Any]) -> str:
        return str(body["id"])

    def bulk(self, count: int, at: datetime) -> list[str]:
        self.freeze(at)
        try:
            ids: list[str] = []
            for start in range(0, count, 100):
                items = [self.new_record() for _ in range(min(100, count - start))]
                results = self.emu.store.insert(self.object, items, UI_USER, source="admin")
                ids += [str(r["details"]["id"]) for r in results]
            return ids
        finally:
            self.freeze(None)

    def raw_modified(self, record: SourceRecord) -> Any:
        return record.data["Modified_Time"]

    def rename(self, record_id: str, at: datetime) -> str:
        name = self.next_name()
        self.freeze(at)
        try:
            [result] = self.emu.store.update(self.object, [{"id": record_id, self.name_field: name}], UI_USER,
                                             source="admin")
            assert result["status"] == "success", result
        finally:
            self.freeze(None)
        return name


class FxiaokeSource(Source):
    def __init__(self, emu: FxiaokeEmulator, url: str, admin: httpx.Client) -> None:
        creds = emu.credentials()
        super().__init__("fxiaoke", "AccountObj", "name", url, admin, {
            "host": url, "app_id": creds["app_id"], "app_secret": creds["app_secret"],
            "permanent_code": creds["permanent_code"], "user_id": creds["user_id"],
            "open_user_id": creds["open_user_id"], "page_size": 100,
            # The emulator's throttle is lifted below: the pacing is not what these tests are about.
            "rate_limit_calls": 10_000, "rate_limit_period_seconds": 1,
            "retry_base_seconds": 0.01, "retry_cap_seconds": 0.05,
        })
        self.emu = emu

    def id_of(self, body: dict[str, Any]) -> str:
        return str(body["_id"])

    def bulk(self, count: int, at: datetime) -> list[str]:
        ms = int(at.timestamp() * 1000)
        return [
            str(self.emu.store.create(self.object, {**self.new_record(), "owner": ["1000"], "last_modified_time": ms,
                                                   "create_time": ms}, user="1000", by_api=False, keep_times=True)["_id"])
            for _ in range(count)
        ]

    def raw_modified(self, record: SourceRecord) -> Any:
        return record.data["last_modified_time"]

    def rename(self, record_id: str, at: datetime) -> str:
        name = self.next_name()
        self.emu.store.update(self.object, record_id, {"name": name, "last_modified_time": int(at.timestamp() * 1000)},
                              user="1000", by_api=False, keep_times=True)
        return name


class KingdeeSource(Source):
    def __init__(self, app, url: str, admin: httpx.Client) -> None:
        c = KINGDEE_CREDENTIALS
        super().__init__("kingdee", "BD_Customer", "FName", url, admin, {
            "server_url": url + "/", "acct_id": c.acct_id, "username": c.username, "auth": "app_secret",
            "app_id": c.app_id, "app_secret": c.app_secret, "timezone": "Asia/Shanghai", "page_size": PAGE,
            # Only the engine's overlap: the cases below are about the cursor's own bound.
            "overlap_seconds": 0,
            "retry": {"attempts": 3, "base_seconds": 0.01, "cap_seconds": 0.05, "total_seconds": 10},
        })
        self.store = app.state.kingdee.store

    def new_record(self) -> dict[str, Any]:
        return {"FName": self.next_name(), "FCreateOrgId.FNumber": "100", "FUseOrgId.FNumber": "100"}

    def id_of(self, body: dict[str, Any]) -> str:
        return str(body["FCUSTID"])

    def bulk(self, count: int, at: datetime) -> list[str]:
        form = FORMS["BD_Customer"]
        stamp = at.astimezone(SHANGHAI).replace(tzinfo=None)
        ids = []
        with self.store.lock:
            for _ in range(count):
                model = {"FName": self.next_name(), "FCreateOrgId": {"FNumber": "100"}, "FUseOrgId": {"FNumber": "100"}}
                ids.append(str(self.store.apply_model(form, model, status="C", stamp=stamp)["FCUSTID"]))
        return ids

    def raw_modified(self, record: SourceRecord) -> Any:
        return record.data["FModifyDate"]

    def rename(self, record_id: str, at: datetime) -> str:
        name = self.next_name()
        stamp = at.astimezone(SHANGHAI).replace(tzinfo=None)
        with self.store.lock:
            self.store.apply_model(FORMS["BD_Customer"], {"FCUSTID": int(record_id), "FName": name}, stamp=stamp)
        return name


class SqlSource(Source):
    """The SQL connector over the demo ERP schema. The "server clock" is the time the ERP writes in
    ``modified_at`` (naive Asia/Shanghai wall-clock time), so skew is an offset applied to it here."""

    def __init__(self, db_url: str) -> None:
        super().__init__("sql", "customer", "name", settings={**demo_schema.demo_settings(db_url), "page_size": PAGE})
        self.engine: Engine = create_engine(db_url)
        demo_schema.create_demo_schema(self.engine)
        self.offset = 0.0

    def skew(self, seconds: float) -> None:
        self.offset = seconds

    def clock(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.offset)

    def create(self, at: datetime | None = None) -> str:
        return self.bulk(1, at or self.clock())[0]

    def bulk(self, count: int, at: datetime) -> list[str]:
        local = second(at).astimezone(SHANGHAI).replace(tzinfo=None)
        rows = []
        with self.engine.begin() as conn:
            start = conn.scalar(select(func.count()).select_from(demo_schema.erp_customer))
            for i in range(count):
                rows.append({"cust_no": f"C{start + i + 1:06d}", "name": self.next_name(), "doc_status": "C",
                             "created_at": local, "modified_at": local})
            conn.execute(insert(demo_schema.erp_customer), rows)
        return [r["cust_no"] for r in rows]

    def raw_modified(self, record: SourceRecord) -> Any:
        """The stored column value: the ERP's naive local time."""
        table = demo_schema.erp_customer
        with self.engine.connect() as conn:
            return conn.scalar(select(table.c.modified_at).where(table.c.cust_no == record.external_id))

    def rename(self, record_id: str, at: datetime) -> str:
        name = self.next_name()
        table = demo_schema.erp_customer
        with self.engine.begin() as conn:
            conn.execute(table.update().where(table.c.cust_no == record_id).values(
                name=name, modified_at=second(at).astimezone(SHANGHAI).replace(tzinfo=None)))
        return name

    def close(self) -> None:
        self.engine.dispose()


SOURCES = ["zoho", "fxiaoke", "kingdee", "sql"]


@pytest.fixture
def admin() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def start_source(kind: str, admin: httpx.Client, tmp_path, **options: Any) -> Iterator[Source]:
    if kind == "sql":
        source = SqlSource(f"sqlite:///{tmp_path / 'erp.db'}")
        yield source
        source.close()
        return
    if kind == "zoho":
        emu = ZohoEmulator(random_seed=3, time_zone=options.get("time_zone", "+05:30"))
        app = emu.app
    elif kind == "fxiaoke":
        emu = FxiaokeEmulator(EmulatorConfig(seed=3))
        emu.switches.update({"token_rate_limit": 10_000, "rate_limit": 10_000})
        app = emu.app
    else:
        app = kingdee_app(seed=3, timezone="Asia/Shanghai")
    server = ThreadedServer(app).start()
    try:
        if kind == "zoho":
            emu.base_url = server.url
            source: Source = ZohoSource(emu, server.url, admin)
        elif kind == "fxiaoke":
            source = FxiaokeSource(emu, server.url, admin)
        else:
            source = KingdeeSource(app, server.url, admin)
        yield source
    finally:
        if kind == "zoho":
            emu.watch.stop()
        if kind == "fxiaoke":
            emu.push.close()
        server.stop()


@pytest.fixture(params=SOURCES)
def source(request, admin, tmp_path) -> Iterator[Source]:
    yield from start_source(request.param, admin, tmp_path)


# ---------------------------------------------------------------------------
# the engine


ENTITIES = """
entities:
  account:
    model: Account
    match: {keys: [tax_id]}  # no source record has one: first-sync matching stays out of the timing
    systems:
      src: {object: %(object)s, fields: {name: {field: %(name)s, direction: read}}}
      mem: {object: Account, fields: {name: name}}
flows:
  accounts: {entity: account, systems: [src, mem], direction: one_way, source: src}
"""


class Sync:
    """The engine over one source, with the pass reports and cursor it leaves."""

    def __init__(self, runtime: Runtime, source: Source) -> None:
        self.runtime = runtime
        self.engine = SyncEngine(runtime)
        self.source = source
        self.mem = MemorySystem.instances["mem"]

    async def run(self, *, full: bool = False) -> Report:
        report = await self.engine.run_flow(FLOW, full=full)
        assert not report.errors, report.errors
        return report

    def watermark(self) -> datetime | None:
        with self.runtime.store.read() as session:
            cursor = session.get(Cursor, ("src", self.source.object, FLOW))
            return cursor.watermark if cursor else None

    def names(self) -> list[str]:
        """Every record written into ``mem`` (duplicates included: a repeated create shows up twice)."""
        return [r["name"] for r in self.mem.records("Account").values()]

    async def pull(self, since: datetime | None) -> list[SourceRecord]:
        """The source connector alone: one pull from ``since`` (inclusive), every page."""
        connector = self.runtime.connector("src")
        request = PullRequest(self.source.object, fields=[self.source.name_field], since=since)
        records: list[SourceRecord] = []
        async for page in connector.pull(request):
            records.extend(page.records)
        return records


@pytest.fixture
def memory_plugin(monkeypatch):
    plugins = {**registry.plugins(), "memory": MEMORY_PLUGIN}
    monkeypatch.setattr(registry, "plugins", lambda: plugins)
    MemorySystem.instances.clear()
    return plugins


@pytest.fixture
def make_sync(memory_plugin, tmp_path):
    """``async with make_sync(source, overlap=...) as sync``: the engine, its state in a fresh SQLite file."""
    made: list[Runtime] = []

    class _Open:
        def __init__(self, source: Source, overlap: str) -> None:
            raw = {"state": {"url": f"sqlite:///{tmp_path / f'state{len(made)}.db'}"},
                   "sync": {"overlap": overlap},
                   "systems": {"src": source.system_config(), "mem": {"type": "memory", "page_size": 500}}}
            text = yaml.safe_dump(raw, allow_unicode=True) + textwrap.dedent(
                ENTITIES % {"object": source.object, "name": source.name_field})
            config = parse_config(text, "cursors-test.yaml", environ={})
            self.runtime = Runtime(config, store=StateStore.open(config.state.url))
            made.append(self.runtime)
            self.source = source

        async def __aenter__(self) -> Sync:
            await self.runtime.open()
            return Sync(self.runtime, self.source)

        async def __aexit__(self, *exc) -> None:
            await self.runtime.close()
            self.runtime.store.dispose()

    def make(source: Source, overlap: str = "2m") -> _Open:
        return _Open(source, overlap)

    return make


def counted(report: Report, counter: str, system: str = "src") -> int:
    return report.counts.get(system, {}).get(counter, 0)



def assert_quiet(report: Report, window: int) -> None:
    """A pass with nothing new: it re-reads at most the ``window`` records inside the overlap window,
    and stages and writes none of them."""
    assert counted(report, "read") <= window, f"re-read {counted(report, 'read')} records, window holds {window}"
    assert counted(report, "skipped") == counted(report, "read")
    assert counted(report, "created", "mem") == counted(report, "updated", "mem") == 0
