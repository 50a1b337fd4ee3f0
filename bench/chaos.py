"""Chaos convergence: three emulated systems failing at random, a `crmsync serve` whose worker
process is killed with SIGKILL, users creating, editing and deleting records everywhere, and
webhooks duplicated, delayed, dropped and reordered. After quiescence (plus one `crmsync sync
--full` reconciliation pass) a checker compares the three systems with what the policies say.

    python bench/chaos.py --ops 10000 --kills 50          # the long version
    python bench/chaos.py --ops 500 --kills 5 --json      # what tests/chaos runs in CI

Emulators (Zoho, Fxiaoke, Kingdee) and `crmsync serve --workers N` run as separate processes;
the state is a throwaway PostgreSQL database (``CRMSYNC_TEST_DATABASE_URL``'s server, default
postgres@127.0.0.1:5432). Everything stays on 127.0.0.1.

The oracle is exact and simple: every edit writes a value never used before, edits of one field
of one record are at least ``EDIT_SPACING`` apart (so every system's modified time orders them,
whatever its resolution), and the policies give the expected final value per field:

* ``phone`` (latest_wins): the value of the last edit, in every system;
* ``address`` ({source_of_truth: erp}): the last edit, or the ERP's last edit when it won a
  conflict against a later one (the policy's very purpose) — nothing else;
* ``domain`` (manual): the last edit everywhere, or the systems disagree *and* an open conflict
  review holds the field;
* a record created anywhere exists once in every system; one deleted anywhere (propagate)
  exists nowhere.

It prints lost updates, duplicates, unresolved conflicts not in review, echo writes (writes made
by two more passes after convergence) and dead letters with their reasons, and exits 1 when a
record was lost or duplicated.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.emulation.crmsync_process import CLI, CrmsyncProcess
from connectors.emulation.fakedata import FakeData  # noqa: E402
from connectors.emulation.server import ThreadedServer, free_port  # noqa: E402
from connectors.fxiaoke.emulator import EmulatorConfig  # noqa: E402
from connectors.kingdee.emulator import DEFAULT_CREDENTIALS  # noqa: E402
from connectors.zoho.emulator import (  # noqa: E402
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REFRESH_TOKEN,
)

OPS_TOKEN = "chaos-ops-token"
APL_SECRET = "chaos-apl-secret-0123456789abcdef"
FX = EmulatorConfig()
SYSTEMS = ("fx", "zoho", "erp")
OBJECT = {"fx": "AccountObj", "zoho": "Accounts", "erp": "BD_Customer"}
ID_FIELD = {"fx": "_id", "zoho": "id", "erp": "FCUSTID"}
FIELD = {
    "name": {"fx": "name", "zoho": "Account_Name", "erp": "FName"},
    "tax_id": {"fx": "credit_code__c", "zoho": "Unified_Social_Credit_Code", "erp": "FTAXREGISTERCODE"},
    "phone": {"fx": "tel", "zoho": "Phone", "erp": "FTEL"},
    "address": {"fx": "address", "zoho": "Billing_Street", "erp": "FADDRESS"},
    "domain": {"fx": "url", "zoho": "Website", "erp": "FWEBSITE"},
}
EDITABLE = ("phone", "address", "domain")
POLICY = {"phone": "latest_wins", "address": "source_of_truth:erp", "domain": "manual"}
#: Kingdee reports no deletes to a modify-date poll (connectors/kingdee/README.md): users delete in the CRMs.
DELETABLE_IN = ("fx", "zoho")
#: Edits of one field of one record are at least this far apart: every system's modified time
#: (Zoho and Kingdee keep whole seconds) then orders them as they happened.
EDIT_SPACING = 1.2
FAULT_KINDS = ["server_error", "rate_limit", "timeout", "disconnect"]
FLOW_INTERVAL = 8  # seconds between scheduled passes: the safety net under dropped webhooks


# -- the pieces ---------------------------------------------------------------------------------------
def throwaway_database(server_url: str):
    admin_url = make_url(server_url).set(drivername="postgresql+psycopg", database="postgres")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"crmsync_chaos_{uuid.uuid4().hex[:8]}"
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return admin_url.set(database=name).render_as_string(hide_password=False), drop


def config_text(urls: dict[str, str], port: int, public_url: str, state: str, workers_lease: str = "5s") -> str:
    return textwrap.dedent(f"""
        state: {{url: "{state}"}}
        server: {{host: 127.0.0.1, port: {port}, public_url: "{public_url}", ops_token: {OPS_TOKEN}}}
        logging: {{level: warning}}
        sync: {{lease: {workers_lease}, overlap: 30s, max_attempts: 8}}
        systems:
          zoho:
            type: zoho
            accounts_url: {urls['zoho']}
            api_domain: {urls['zoho']}
            client_id: "{DEFAULT_CLIENT_ID}"
            client_secret: {DEFAULT_CLIENT_SECRET}
            refresh_token: "{DEFAULT_REFRESH_TOKEN}"
          fx:
            type: fxiaoke
            host: {urls['fx']}
            app_id: {FX.app_id}
            app_secret: {FX.app_secret}
            permanent_code: {FX.permanent_code}
            rate_limit_calls: 100000
            rate_limit_burst: 1000
            notifications: {{style: apl_function, apl_secret: {APL_SECRET}}}
          erp:
            type: kingdee
            server_url: {urls['erp']}
            acct_id: "{DEFAULT_CREDENTIALS.acct_id}"
            username: {DEFAULT_CREDENTIALS.username}
            auth: password
            password: {DEFAULT_CREDENTIALS.password}
        entities:
          account:
            model: Account
            match: {{keys: [tax_id]}}
            systems:
              fx:
                object: AccountObj
                fields: {{name: name, tax_id: credit_code__c, phone: tel, address: address,
                          domain: {{field: url, transform: {{read: "normalize_domain(value)"}}}}}}
              zoho:
                object: Accounts
                fields: {{name: Account_Name, tax_id: Unified_Social_Credit_Code, phone: Phone, address: Billing_Street,
                          domain: {{field: Website, transform: {{read: "normalize_domain(value)"}}}}}}
              erp:
                object: BD_Customer
                fields: {{name: FName, tax_id: FTAXREGISTERCODE, phone: FTEL, address: FADDRESS,
                          domain: {{field: FWEBSITE, transform: {{read: "normalize_domain(value)"}}}}}}
        flows:
          accounts: {{entity: account, systems: [fx, zoho, erp], webhooks: true, schedule: {{interval: {FLOW_INTERVAL}s}}}}
        conflicts:
          account:
            default: latest_wins
            fields: {{address: {{source_of_truth: erp}}, domain: manual}}
        deletes:
          account: propagate
        """)


class Emulator:
    def __init__(self, kind: str, args: list[str]) -> None:
        self.kind = kind
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen([*CLI, "emulator", kind, *args, "--port", str(self.port)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(600):
            try:
                httpx.get(f"{self.url}/_admin/calls", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"the {kind} emulator did not start")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_emulators(seed: int) -> dict[str, Emulator]:
    emulators: dict[str, Emulator] = {}
    try:
        emulators["zoho"] = Emulator("zoho", ["--time-zone", "+08:00", "--random-seed", str(seed)])
        emulators["fx"] = Emulator("fxiaoke", ["--app-id", FX.app_id, "--app-secret", FX.app_secret,
                                               "--permanent-code", FX.permanent_code, "--rate-limit", "100000",
                                               "--apl-secret", APL_SECRET, "--random-seed", str(seed)])
        emulators["erp"] = Emulator("kingdee", ["--random-seed", str(seed)])
    except BaseException:
        for e in emulators.values():
            e.stop()
        raise
    return emulators


class WebhookChaos:
    """Stands between the systems' notifications and crmsync: acknowledges each one at once, then
    forwards it late (reordering them), twice now and then, and sometimes not at all."""

    def __init__(self, target: str, rng: random.Random, *, dup: float, drop: float, max_delay: float) -> None:
        from starlette.applications import Starlette
        from starlette.responses import PlainTextResponse
        from starlette.routing import Route

        self.target = target.rstrip("/")
        self.rng = rng
        self.dup, self.drop, self.max_delay = dup, drop, max_delay
        self.stats: Counter[str] = Counter()
        self.pending = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._client = httpx.AsyncClient(timeout=30)

        async def receive(request):
            body = await request.body()
            headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
            self._schedule(request.url.path, headers, body)
            return PlainTextResponse("success")

        self.server = ThreadedServer(Starlette(routes=[Route("/webhooks/{system}", receive, methods=["POST"])])).start()
        self.url = self.server.url

    def _schedule(self, path: str, headers: dict, body: bytes) -> None:
        with self._lock:
            self.stats["received"] += 1
            if self.rng.random() < self.drop:
                self.stats["dropped"] += 1
                return
            copies = 2 if self.rng.random() < self.dup else 1
            self.stats["duplicated"] += copies - 1
            delays = [self.rng.uniform(0, self.max_delay) for _ in range(copies)]
            self.pending += copies
        for delay in delays:
            asyncio.run_coroutine_threadsafe(self._forward(path, headers, body, delay), self._loop)

    async def _forward(self, path: str, headers: dict, body: bytes, delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            for attempt in range(20):  # crmsync's receiver may be briefly away: a real sender retries too
                try:
                    response = await self._client.post(self.target + path, content=body, headers=headers)
                    with self._lock:
                        self.stats[f"forwarded {response.status_code}"] += 1
                    return
                except httpx.HTTPError:
                    await asyncio.sleep(0.5 * (attempt + 1))
            with self._lock:
                self.stats["undeliverable"] += 1
        except asyncio.CancelledError:
            with self._lock:
                self.stats["still on its way at the end"] += 1
            raise
        finally:
            with self._lock:
                self.pending -= 1

    def stop(self) -> None:
        self.server.stop()

        async def cancel_the_rest() -> None:
            # A notification of the checker's own last pass may still be on its way: cancelled, not left
            # for the garbage collector to complain about.
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)
            await self._client.aclose()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(cancel_the_rest(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)


class Serve:
    """`crmsync serve CONFIG --workers N` as a subprocess (the shared CrmsyncProcess helper, in its own
    process group); ``kill_worker`` SIGKILLs its worker child."""

    def __init__(self, config: Path, workers: int, port: int, log: Path) -> None:
        self.config, self.workers, self.port = config, workers, port
        self.process = CrmsyncProcess(["serve", config, "--workers", workers], log=log, append=True, port=port,
                                      ready_timeout=60, stop_timeout=60, new_session=True)
        self.kills = 0

    def start(self) -> None:
        self.process.start()

    def children(self) -> list[int]:
        pid = self.process.pid
        try:
            with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
                return [int(p) for p in f.read().split()]
        except OSError:
            return []

    def kill_worker(self) -> bool:
        children = self.children()
        if not children:
            return False
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.kills += 1
        return True

    def status(self) -> dict | None:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            r = httpx.get(f"http://127.0.0.1:{self.port}/status", headers={"authorization": f"Bearer {OPS_TOKEN}"},
                          timeout=10)
            if r.status_code == 200:
                return r.json()
        return None

    def stop(self) -> int:
        return self.process.stop() or 0


# -- the users -------------------------------------------------------------------------------------------
@dataclass
class Edit:
    seq: int
    system: str
    value: str
    #: when the system answered the edit (it landed at or before this)
    at: float
    #: when the edit was sent (it landed at or after this); a creation's values: its `at`
    started: float | None = None


@dataclass
class Company:
    tax: str
    name: str
    origin: str
    ids: dict[str, str] = field(default_factory=dict)
    edits: dict[str, list[Edit]] = field(default_factory=lambda: defaultdict(list))
    deleted_in: str | None = None
    deleted_at: float | None = None
    busy: bool = False
    next_edit: dict[str, float] = field(default_factory=dict)


class Driver:
    def __init__(self, emulators: dict[str, Emulator], rng: random.Random, run_tag: str) -> None:
        self.emu = emulators
        self.rng = rng
        self.fake = FakeData(rng.randrange(10**9))
        self.tag = run_tag
        self.companies: dict[str, Company] = {}
        self.seq = 0
        self.stats: Counter[str] = Counter()
        self.client = httpx.AsyncClient(timeout=60)
        self._dumped: dict[str, float] = {}

    def _value(self, field_name: str) -> str:
        self.seq += 1
        if field_name == "phone":
            return f"0755-{self.seq:08d}"  # Zoho validates phone fields
        if field_name == "address":
            return f"深圳市南山区科技园{self.seq}号"
        return f"d{self.seq}.{self.tag}.example.cn"

    async def _admin(self, method: str, system: str, path: str, **kw) -> httpx.Response:
        for attempt in range(5):  # the admin API has no faults, but a busy emulator may be slow
            try:
                return await self.client.request(method, f"{self.emu[system].url}/_admin/{path}", **kw)
            except httpx.HTTPError:
                await asyncio.sleep(0.5 * (attempt + 1))
        raise RuntimeError(f"{system} admin API unreachable")

    async def find_id(self, company: Company, system: str) -> str | None:
        if system in company.ids:
            return company.ids[system]
        if time.monotonic() - self._dumped.get(system, 0) > 1.0:  # one dump a second per system at most
            self._dumped[system] = time.monotonic()
            rows = (await self._admin("GET", system, f"records/{OBJECT[system]}")).json()
            for row in rows:
                tax = row.get(FIELD["tax_id"][system])
                if tax and tax in self.companies and system not in self.companies[tax].ids and not is_deleted(system, row):
                    self.companies[tax].ids[system] = str(row[ID_FIELD[system]])
        return company.ids.get(system)

    async def create(self) -> None:
        system = self.rng.choice(SYSTEMS)
        company = self.fake.company()
        tax = company.tax_id
        while tax in self.companies:
            tax = self.fake.company().tax_id
        name = f"{company.name[:-4]}{len(self.companies) + 1:05d}{company.name[-4:]}"
        c = Company(tax=tax, name=name, origin=system, busy=True)
        self.companies[tax] = c
        now = time.time()
        data = {FIELD["name"][system]: name, FIELD["tax_id"][system]: tax}
        if system == "erp":
            data |= {"FCreateOrgId": {"FNumber": "100"}, "FUseOrgId": {"FNumber": "100"}}  # required in Kingdee
        for f in EDITABLE:
            value = self._value(f)
            data[FIELD[f][system]] = value
            c.edits[f].append(Edit(self.seq, system, value, now))
            c.next_edit[f] = now + EDIT_SPACING
        try:
            response = await self._admin("POST", system, f"records/{OBJECT[system]}", json=data)
            response.raise_for_status()
            created = response.json()
            rid = created.get(ID_FIELD[system]) or created.get("id") or (created.get("details") or {}).get("id")
            if rid:
                c.ids[system] = str(rid)
            self.stats[f"create {system}"] += 1
        finally:
            c.busy = False

    def _pick(self) -> Company | None:
        live = [c for c in self.companies.values() if not c.busy and c.deleted_in is None]
        return self.rng.choice(live) if live else None

    async def edit(self, conflicting: bool = False) -> None:
        company = self._pick()
        if company is None:
            return await self.create()
        now = time.time()
        fields = [f for f in EDITABLE if company.next_edit.get(f, 0) <= now]
        if not fields:
            self.stats["edit skipped (spacing)"] += 1
            return
        company.busy = True
        try:
            f = self.rng.choice(fields)
            present = [s for s in SYSTEMS if await self.find_id(company, s) is not None]
            if len(present) < (2 if conflicting else 1):
                self.stats["edit skipped (not synced yet)"] += 1
                return
            systems = self.rng.sample(present, 2) if conflicting else [self.rng.choice(present)]
            for i, system in enumerate(systems):
                if i:
                    await asyncio.sleep(EDIT_SPACING)  # the same field in a second system, before crmsync settles it
                rid = company.ids[system]
                value = self._value(f)
                sent = time.time()
                response = await self._admin("PATCH", system, f"records/{OBJECT[system]}/{rid}",
                                             json={FIELD[f][system]: value})
                if response.status_code == 404:
                    company.ids.pop(system, None)  # gone there (a propagated delete can't be: we never delete twice)
                    self.stats[f"edit missed (404 in {system})"] += 1
                    continue
                response.raise_for_status()
                done = time.time()
                company.edits[f].append(Edit(self.seq, system, value, done, sent))
                company.next_edit[f] = done + EDIT_SPACING
                self.stats[f"edit {system}"] += 1
                if i:
                    self.stats["conflicting edit pairs"] += 1
        finally:
            company.busy = False

    async def delete(self) -> None:
        company = self._pick()
        if company is None:
            return
        company.busy = True
        try:
            system = self.rng.choice(DELETABLE_IN)
            rid = await self.find_id(company, system)
            if rid is None:
                return
            response = await self._admin("DELETE", system, f"records/{OBJECT[system]}/{rid}")
            if response.status_code == 200:
                company.deleted_in = system
                company.deleted_at = time.time()
                self.stats[f"delete {system}"] += 1
        finally:
            company.busy = False

    async def one(self) -> None:
        roll = self.rng.random()
        if roll < 0.18 or len(self.companies) < 5:
            await self.create()
        elif roll < 0.26:
            await self.delete()
        elif roll < 0.38:
            await self.edit(conflicting=True)
        else:
            await self.edit()

    async def run(self, ops: int, rate: float, in_flight: int = 8) -> None:
        gate = asyncio.Semaphore(in_flight)
        start = time.monotonic()
        failures: list[str] = []

        async def guarded() -> None:
            async with gate:
                try:
                    await self.one()
                except Exception as exc:  # noqa: BLE001 - the driver reports, it does not stop
                    failures.append(f"{type(exc).__name__}: {exc}")

        tasks = []
        for i in range(ops):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(guarded()))
        await asyncio.gather(*tasks)
        self.stats["driver failures"] = len(failures)
        if failures:
            print("driver failures (first 5):", failures[:5], file=sys.stderr)


def is_deleted(system: str, row: dict) -> bool:
    """Fxiaoke's delete is 作废: the record stays, invalid, until someone empties the recycle bin."""
    return system == "fx" and row.get("life_status") == "invalid"


# -- the checker -------------------------------------------------------------------------------------------
def dump_all(emulators: dict[str, Emulator]) -> dict[str, list[dict]]:
    return {s: httpx.get(f"{emulators[s].url}/_admin/records/{OBJECT[s]}", timeout=60).json() for s in SYSTEMS}


def normalized(system: str, field_name: str, value):
    if value in (None, ""):
        return None
    if field_name == "domain":
        v = str(value).lower()
        for prefix in ("https://", "http://", "www."):
            v = v.removeprefix(prefix)
        return v.rstrip("/")
    return str(value)


def check(driver: Driver, dumps: dict[str, list[dict]], state_url: str) -> dict:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from sync_engine.state.models import AuditEvent, DeadLetter, Link, Review
    from sync_engine.state.models.enums import (
        DeadLetterStatus,
        ReviewKind,
        ReviewStatus,
    )

    by_tax: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    strangers = 0
    for system, rows in dumps.items():
        for row in rows:
            tax = row.get(FIELD["tax_id"][system])
            if is_deleted(system, row):
                continue
            if tax in driver.companies:
                by_tax[tax][system].append(row)
            else:
                strangers += 1
    engine = create_engine(state_url)
    with Session(engine) as session:
        cid_of = {(l.system, l.external_id): l.canonical_id for l in session.scalars(select(Link))}
        open_reviews = {
            (r.canonical_id, (r.details or {}).get("field"))
            for r in session.scalars(select(Review).where(Review.kind == ReviewKind.CONFLICT,
                                                          Review.status == ReviewStatus.OPEN))
        }
        reviews_open = Counter(str(r.kind) for r in session.scalars(select(Review).where(Review.status == ReviewStatus.OPEN)))
        conflicts: dict[tuple[str, str], list[dict]] = defaultdict(list)
        #: the same, with each event's id (the audit trail's order)
        conflict_events: dict[tuple[str, str], list[tuple[int, dict]]] = defaultdict(list)
        for event_id, cid, details in session.execute(select(AuditEvent.id, AuditEvent.canonical_id, AuditEvent.details)
                                                      .where(AuditEvent.kind == "conflict")):
            conflicts[(cid, (details or {}).get("field"))].append(details or {})
            conflict_events[(cid, (details or {}).get("field"))].append((event_id, details or {}))
        #: (canonical id, field) -> changes read from the systems: (event id, system, new value, record modified at)
        reads: dict[tuple[str, str], list[tuple[int, str, object, str | None]]] = defaultdict(list)
        for event_id, cid, system, details in session.execute(
            select(AuditEvent.id, AuditEvent.canonical_id, AuditEvent.system, AuditEvent.details)
            .where(AuditEvent.kind == "read")
        ):
            details = details or {}
            for f, change in (details.get("changes") or {}).items():
                reads[(cid, f)].append((event_id, system, change[1], details.get("modified_at")))
        #: (canonical id, system, field) -> our checked updates of it: (answer applied at, check read at, value)
        checked_writes: dict[tuple[str, str, str], list[tuple[float, float | None, object]]] = defaultdict(list)
        for cid, system, at, details in session.execute(
            select(AuditEvent.canonical_id, AuditEvent.system, AuditEvent.at, AuditEvent.details)
            .where(AuditEvent.kind == "write")
        ):
            details = details or {}
            if details.get("action") != "update":
                continue
            checked = datetime.fromisoformat(details["checked_at"]).timestamp() if details.get("checked_at") else None
            for f, change in (details.get("changes") or {}).items():
                checked_writes[(cid, system, f)].append((at.timestamp(), checked, change[1]))
        letters = Counter(
            f"{d.system} {d.stage} {d.code}: {(d.message or '')[:120]}"
            for d in session.scalars(select(DeadLetter).where(DeadLetter.status == DeadLetterStatus.OPEN))
        )
    engine.dispose()

    lost: list[dict] = []
    in_write_window: list[dict] = []
    duplicates: list[dict] = []
    unreviewed: list[dict] = []
    by_record_time: list[dict] = []
    sot_wins = 0
    for tax, company in driver.companies.items():
        held = by_tax.get(tax, {})
        for system in SYSTEMS:
            if len(held.get(system, [])) > 1:
                duplicates.append({"tax_id": tax, "system": system, "copies": len(held[system])})
        if company.deleted_in:
            still = sorted(s for s in SYSTEMS if held.get(s))
            if still:
                at = _at(company.deleted_at) if company.deleted_at else "?"
                lost.append({"tax_id": tax, "what": f"deleted in {company.deleted_in} @{at}, still in {still}",
                             "ids": company.ids})
            continue
        missing = [s for s in SYSTEMS if not held.get(s)]
        if missing:
            lost.append({"tax_id": tax, "what": f"created in {company.origin}, missing in {missing}"})
            continue
        rows = {s: held[s][0] for s in SYSTEMS}
        for f in EDITABLE:
            edits = company.edits[f]
            last = edits[-1].value
            finals = {s: normalized(s, f, rows[s].get(FIELD[f][s])) for s in SYSTEMS}
            distinct = set(finals.values())
            if f == "domain":
                if distinct == {last}:
                    continue
                if len(distinct) > 1:
                    cids = {cid_of.get((s, str(rows[s][ID_FIELD[s]]))) for s in SYSTEMS}
                    if any((cid, f) in open_reviews for cid in cids) and last in distinct:
                        continue  # (a review freezes the field: no write of ours may have overwritten the last edit)
                    unreviewed.append({"tax_id": tax, "field": f, "values": finals, "edits": _story(edits)})
                    continue
                story = {"tax_id": tax, "field": f, "expected": last, "values": finals, "edits": _story(edits)}
                cids = {cid_of.get((s, str(rows[s][ID_FIELD[s]]))) for s in SYSTEMS}
                if len(distinct) == 1 and _overwritten_after_check(checked_writes, cids, f, edits[-1],
                                                                   next(iter(distinct))):
                    in_write_window.append(story)
                    continue
                lost.append(story)
                continue
            acceptable = {last}
            cids = {cid_of.get((s, str(rows[s][ID_FIELD[s]]))) for s in SYSTEMS}
            if f == "address":
                erp_edits = [e for e in edits[1:] if e.system == "erp"]  # edits[0] is the record's creation
                # The ERP's value wins only a conflict (a change concurrent with the later edit): an ERP
                # edit synced before a later edit was made is simply older, and the later edit wins.
                if erp_edits and (
                    _won_by_source_of_truth(conflicts, cids, f, erp_edits[-1].value, last)
                    or _erp_edit_unseen_when_the_last_lost(conflict_events, reads, cids, f, erp_edits[-1].value, edits[-1])
                ):
                    acceptable.add(erp_edits[-1].value)
            if len(distinct) == 1 and distinct <= acceptable:
                if distinct != {last}:
                    sot_wins += 1
                continue
            story = {"tax_id": tax, "field": f, "expected": sorted(acceptable), "values": finals, "edits": _story(edits)}
            if len(distinct) == 1 and (
                _lost_by_record_time(conflicts, cids, f, next(iter(distinct)), last)
                or _newer_record_after_a_lost_conflict(conflict_events, reads, cids, f, next(iter(distinct)), edits[-1])
            ):
                by_record_time.append(story)
                continue
            if len(distinct) == 1 and _overwritten_after_check(checked_writes, cids, f, edits[-1], next(iter(distinct))):
                in_write_window.append(story)
                continue
            lost.append(story)
    return {
        "companies": len(driver.companies),
        "deleted": sum(1 for c in driver.companies.values() if c.deleted_in),
        "lost": lost,
        "overwritten_between_check_and_write": in_write_window,
        "duplicates": duplicates,
        "unresolved_conflicts_not_in_review": unreviewed,
        "source_of_truth_wins": sot_wins,
        "latest_wins_by_record_time": by_record_time,
        "records_not_from_the_driver": strangers,
        "reviews_open": dict(reviews_open),
        "dead_letters": dict(letters),
    }


def _newer_record_after_a_lost_conflict(
    conflict_events: dict, reads: dict, cids: set, field_name: str, final, last: Edit,
) -> bool:
    """The last edit reached crmsync and lost a conflict (the ERP's source of truth, say); then a change
    of another system, made before the last edit but read later, set the final value, and that system's
    *record* was modified after the last edit's (a user's edit of another field): by the documented rule
    the change with the newest modified time is the latest one, and a change read after a conflict was
    decided is a change of the decided value, not part of that conflict. (Chaos seed 7, session 11: ERP
    560 wins over Fxiaoke 596 by source of truth; Zoho's 588, made from 560 before 596 and read at its
    record's time 1.2 s after it, then wins as the only change.)

    Accepted only when the audit trail shows both: a conflict on this field where the last edit's value
    lost, and after it a read of the final value whose record time is not older than the loser's time
    in that conflict."""
    for cid in cids:
        for event_id, details in conflict_events.get((cid, field_name), []):
            values, times = details.get("values") or {}, details.get("times") or {}
            loser = last.system
            winner = details.get("winner")
            if loser not in values or normalized(loser, field_name, values[loser]) != normalized(loser, field_name, last.value):
                continue
            if winner is None or winner == loser or not times.get(loser):
                continue
            lost_at = datetime.fromisoformat(times[loser])
            for read_id, system, value, modified_at in reads.get((cid, field_name), []):
                if read_id > event_id and modified_at and normalized(system, field_name, value) == final \
                        and datetime.fromisoformat(modified_at) >= lost_at:
                    return True
    return False


def _overwritten_after_check(checked_writes: dict, cids: set, field_name: str, last: Edit, final) -> bool:
    """The last edit was overwritten by our update of that system in the window no API lets us close:
    the update's check read the record back *before* the edit was sent (so it could not show it), and the
    update was answered *after* the edit was (so ours landed last). README ("Edit overwritten between the
    last read and our write"): Fxiaoke and the ERP offer neither a conditional write nor the edited
    values in their notifications, so nothing brings such an edit back.

    Accepted only when the audit trail proves exactly that for our last update of the field in that
    system, and it wrote the final value: any other loss, and this one with a check that came back after
    the edit was sent, stays a loss."""
    if last.started is None:
        return False
    writes = sorted(w for cid in cids for w in checked_writes.get((cid, last.system, field_name), []))
    if not writes:
        return False
    answered, checked, value = writes[-1]
    return (checked is not None and checked < last.started and answered > last.at
            and normalized(last.system, field_name, value) == final)


def _erp_edit_unseen_when_the_last_lost(
    conflict_events: dict, reads: dict, cids: set, field_name: str, erp_value, last: Edit,
) -> bool:
    """The last edit lost a conflict to the ERP (source of truth) and the ERP's own last edit, made before
    the last edit, was first read only after that conflict was decided. No system could hold that ERP
    value when the last edit was made (we write a value only after reading it), so the two edits were
    concurrent, and the ERP's wins by policy although it reached crmsync as a change of its own, after the
    conflict. (Chaos seed 10, session 11: ERP 390 at 12.64 s, Zoho 402 at 13.84 s from the older 278; 402
    lost to the ERP's 278 at 14.7 s, then 390 was read at 20.5 s and set everywhere.)

    Accepted only when the audit trail shows both, in that order; a last edit made after crmsync had read
    the ERP's value (and could have written it) is not excused."""
    for cid in cids:
        erp_reads = [rid for rid, system, value, _ in reads.get((cid, field_name), [])
                     if system == "erp" and normalized("erp", field_name, value) == normalized("erp", field_name, erp_value)]
        if not erp_reads:
            continue
        first_read = min(erp_reads)
        for event_id, details in conflict_events.get((cid, field_name), []):
            values = details.get("values") or {}
            if details.get("policy") != "source_of_truth:erp" or details.get("winner") != "erp":
                continue
            if last.system in values and last.system != "erp" \
                    and normalized(last.system, field_name, values[last.system]) == normalized(last.system, field_name, last.value) \
                    and first_read > event_id:
                return True
    return False


def _won_by_source_of_truth(conflicts: dict, cids: set, field_name: str, final, last) -> bool:
    """The audit trail shows a conflict on this field won by the ERP (source_of_truth: erp) with the
    final value, in which the last edit's value was one of the losers."""
    for cid in cids:
        for details in conflicts.get((cid, field_name), []):
            values = details.get("values") or {}
            if details.get("policy") != "source_of_truth:erp" or details.get("winner") != "erp":
                continue
            if normalized("erp", field_name, values.get("erp")) != final:
                continue
            if any(s != "erp" and normalized(s, field_name, v) == last for s, v in values.items()):
                return True
    return False


def _lost_by_record_time(conflicts: dict, cids: set, field_name: str, final, last) -> bool:
    """The last edit reached crmsync and lost a latest_wins conflict to an earlier edit because the
    earlier one's *record* had the newer modified time when read (modified again since, by a user's edit
    of another field or by crmsync's own write of one). The systems expose one modified time per record,
    not per field: that is the documented rule ("the change with the newest modified time wins"), and
    nothing the systems report lets crmsync order these two edits otherwise. EDIT_SPACING orders edits
    of one field, not the record's modified times.

    Accepted only when the audit trail shows exactly that: a conflict on this field (latest_wins, or
    source_of_truth without the ERP among the changers, which falls back to it) between the final value
    and the last edit's value, won by the final value with a modified time not older than the loser's."""
    for cid in cids:
        for details in conflicts.get((cid, field_name), []):
            values = details.get("values") or {}
            times = details.get("times") or {}
            policy = str(details.get("policy") or "")
            if not (policy == "latest_wins" or (policy.startswith("source_of_truth:")
                                                and policy.split(":", 1)[1] not in values)):
                continue
            winner = details.get("winner")
            if winner is None or normalized(winner, field_name, values.get(winner)) != final:
                continue
            for loser, value in values.items():
                if loser == winner or normalized(loser, field_name, value) != last:
                    continue
                won_at, lost_at = (datetime.fromisoformat(t) if t else None for t in (times.get(winner), times.get(loser)))
                if won_at and (lost_at is None or won_at >= lost_at):
                    return True
    return False


def _story(edits: list[Edit]) -> list[str]:
    return [f"#{e.seq} {e.system} {e.value} @{_at(e.at)}" for e in edits]


def _at(t: float) -> str:
    return f"{time.strftime('%H:%M:%S', time.gmtime(t))}.{int(t % 1 * 1000):03d}Z"


def _company_json(c: Company) -> dict:
    return {"tax": c.tax, "name": c.name, "origin": c.origin, "ids": c.ids, "deleted_in": c.deleted_in,
            "deleted_at": c.deleted_at,
            "edits": {f: [[e.seq, e.system, e.value, e.at, e.started] for e in edits] for f, edits in c.edits.items()}}


def recheck(workdir: Path) -> dict:
    """The checker once more on a run kept with --keep (its dumps, the driver's story, the kept state)."""
    kept = json.loads((workdir / "driver.json").read_text(encoding="utf-8"))
    dumps = json.loads((workdir / "dumps.json").read_text(encoding="utf-8"))
    companies = {}
    for c in kept["companies"]:
        company = Company(tax=c["tax"], name=c["name"], origin=c["origin"], ids=c["ids"], deleted_in=c["deleted_in"],
                          deleted_at=c.get("deleted_at"))
        for f, edits in c["edits"].items():
            company.edits[f] = [Edit(*e) for e in edits]
        companies[company.tax] = company
    driver = argparse.Namespace(companies=companies)
    return check(driver, dumps, kept["state"])  # type: ignore[arg-type]


# -- the run -----------------------------------------------------------------------------------------------
async def set_faults(emulators: dict[str, Emulator], rate: float) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        for e in emulators.values():
            await client.patch(f"{e.url}/_admin/switches", json={
                "error_rate": rate, "fault_kinds": FAULT_KINDS, "timeout_seconds": 1.0})


async def expire_tokens_now_and_then(emulators: dict[str, Emulator], rng: random.Random, stop: asyncio.Event,
                                     stats: Counter) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=rng.uniform(5, 15))
            if stop.is_set():
                return
            system = rng.choice(SYSTEMS)
            with contextlib.suppress(httpx.HTTPError):
                await client.post(f"{emulators[system].url}/_admin/expire-tokens")
                stats[f"tokens expired {system}"] += 1


async def killer(serve: Serve, kills: int, duration: float, rng: random.Random) -> None:
    moments = sorted(rng.uniform(2, max(duration, 3)) for _ in range(kills))
    start = time.monotonic()
    for moment in moments:
        await asyncio.sleep(max(0.0, start + moment - time.monotonic()))
        for _ in range(50):  # the supervisor restarts the worker process after a second
            if await asyncio.to_thread(serve.kill_worker):
                break
            await asyncio.sleep(0.2)


def wait_quiet(serve: Serve, hooks: WebhookChaos, timeout: float) -> float:
    """Until no delivery is in flight and the queue has stayed empty across a scheduled pass."""
    start = time.monotonic()
    quiet_since = None
    while time.monotonic() - start < timeout:
        status = serve.status()
        busy = status is None or hooks.pending > 0 or status["queue"].get("queued", 0) or status["queue"].get("running", 0)
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > FLOW_INTERVAL + 3:
            return time.monotonic() - start
        time.sleep(0.5)
    return time.monotonic() - start


def sync_pass(config: Path, *, full: bool) -> tuple[dict[str, int], list[str], str]:
    cmd = [*CLI, "sync", str(config), "--json", *(["--full"] if full else [])]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        return {}, [done.stderr.strip()[-500:]], done.stderr
    writes: Counter[str] = Counter()
    errors: list[str] = []
    for report in json.loads(done.stdout):
        errors.extend(report.get("errors", []))
        for system, counts in report.get("counts", {}).items():
            for k in ("created", "updated", "deleted"):
                writes[f"{system} {k}"] += counts.get(k, 0) or 0
    return dict(+writes), errors, done.stderr


def run(args) -> dict:
    rng = random.Random(args.seed)
    server_url = os.environ.get("CRMSYNC_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    state_url, drop_db = throwaway_database(server_url)
    workdir = Path(tempfile.mkdtemp(prefix="crmsync-chaos-"))
    emulators = start_emulators(args.seed)
    hooks = serve = None
    started = time.monotonic()
    try:
        port = free_port()
        hooks = WebhookChaos(f"http://127.0.0.1:{port}", random.Random(args.seed + 1), dup=args.dup, drop=args.drop,
                             max_delay=args.max_delay)
        config = workdir / "chaos.yaml"
        config.write_text(config_text({s: e.url for s, e in emulators.items()}, port, hooks.url, state_url),
                          encoding="utf-8")
        httpx.patch(f"{emulators['fx'].url}/_admin/switches", json={"apl_push_url": f"{hooks.url}/webhooks/fx"})
        serve = Serve(config, args.workers, port, workdir / "serve.log")
        serve.start()
        driver = Driver(emulators, rng, f"c{args.seed}")

        async def chaos() -> None:
            await set_faults(emulators, args.fault_rate)
            stop = asyncio.Event()
            expiry = asyncio.create_task(expire_tokens_now_and_then(emulators, random.Random(args.seed + 2), stop,
                                                                    driver.stats))
            duration = args.ops / args.rate
            await asyncio.gather(driver.run(args.ops, args.rate), killer(serve, args.kills, duration, rng))
            stop.set()
            await expiry
            await set_faults(emulators, 0.0)
            await driver.client.aclose()

        asyncio.run(chaos())
        drive_seconds = time.monotonic() - started
        settle = wait_quiet(serve, hooks, args.settle_timeout)
        serve_status = serve.status() or {}
        code = serve.stop()
        reconcile_writes, reconcile_errors, _ = sync_pass(config, full=True)
        echo_writes: Counter[str] = Counter()
        echo_errors: list[str] = []
        for full in (False, True):
            writes, errors, _ = sync_pass(config, full=full)
            echo_writes.update(writes)
            echo_errors.extend(errors)
        dumps = dump_all(emulators)
        if args.keep:
            # What each system holds at the end, to trace a lost item back through `crmsync history`.
            (workdir / "dumps.json").write_text(json.dumps(dumps, ensure_ascii=False, default=str), encoding="utf-8")
            # And what the users did, so the checker can be run again on this run (--recheck).
            (workdir / "driver.json").write_text(json.dumps(
                {"state": state_url, "companies": [_company_json(c) for c in driver.companies.values()]},
                ensure_ascii=False), encoding="utf-8")
        result = check(driver, dumps, state_url)
        serve_log = (workdir / "serve.log").read_text(encoding="utf-8", errors="replace")
        result.update({
            "seed": args.seed, "ops": args.ops, "kills": serve.kills, "fault_rate": args.fault_rate,
            "workers": args.workers, "driver": dict(driver.stats), "webhooks": dict(hooks.stats),
            "seconds": {"driving": round(drive_seconds, 1), "settling": round(settle, 1),
                        "total": round(time.monotonic() - started, 1)},
            "serve_exit_code": code,
            "queue_at_quiescence": serve_status.get("queue"),
            "reconciliation_writes": reconcile_writes, "reconciliation_errors": reconcile_errors[:10],
            "echo_writes": dict(echo_writes), "echo_pass_errors": echo_errors[:10],
            "serve_log_tracebacks": serve_log.count("Traceback"),
            "serve_log_first_traceback": first_traceback(serve_log),
            "serve_log": str(workdir / "serve.log") if args.keep else None,
        })
        return result
    finally:
        if serve is not None:
            serve.stop()
        if hooks is not None:
            hooks.stop()
        for e in emulators.values():
            e.stop()
        if args.keep:
            print(f"kept: state {state_url}, files {workdir}", file=sys.stderr)
        else:
            with contextlib.suppress(Exception):
                drop_db()
            shutil.rmtree(workdir, ignore_errors=True)


def first_traceback(log: str, lines: int = 40) -> str | None:
    """The first traceback in the serve log with the line before it (a run not kept leaves nothing else)."""
    at = log.find("Traceback")
    if at < 0:
        return None
    start = log.rfind("\n", 0, max(log.rfind("\n", 0, at), 0)) + 1
    return "\n".join(log[start:].splitlines()[:lines])


def print_report(r: dict) -> None:
    print(f"chaos: seed {r['seed']}, {r['ops']} ops, {r['kills']} worker kills, faults {r['fault_rate']:.0%}, "
          f"{r['workers']} workers; {r['companies']} companies ({r['deleted']} deleted); "
          f"{r['seconds']['total']} s (driving {r['seconds']['driving']} s, settling {r['seconds']['settling']} s)")
    print("driver:", ", ".join(f"{k} {v}" for k, v in sorted(r["driver"].items())))
    print("webhooks:", ", ".join(f"{k} {v}" for k, v in sorted(r["webhooks"].items())))
    print(f"lost updates: {len(r['lost'])}")
    for item in r["lost"][:20]:
        print("   ", json.dumps(item, ensure_ascii=False))
    window = r.get("overwritten_between_check_and_write", [])
    print(f"edits overwritten between our check's read and our write (no conditional write; proven by the "
          f"audit trail): {len(window)}")
    for item in window[:10]:
        print("   ", json.dumps(item, ensure_ascii=False))
    print(f"duplicate records: {len(r['duplicates'])}")
    for item in r["duplicates"][:20]:
        print("   ", json.dumps(item, ensure_ascii=False))
    print(f"unresolved conflicts not in review: {len(r['unresolved_conflicts_not_in_review'])}")
    for item in r["unresolved_conflicts_not_in_review"][:10]:
        print("   ", json.dumps(item, ensure_ascii=False))
    print(f"echo writes (two passes after convergence): {sum(r['echo_writes'].values())} {r['echo_writes'] or ''}")
    print(f"reconciliation pass writes (repairs after quiescence): {r['reconciliation_writes'] or 0}")
    print(f"source_of_truth wins over a later edit: {r['source_of_truth_wins']}; open reviews: {r['reviews_open']}")
    print(f"latest_wins decided by record modified times against the later edit: {len(r['latest_wins_by_record_time'])}")
    for item in r["latest_wins_by_record_time"][:10]:
        print("   ", json.dumps(item, ensure_ascii=False))
    print(f"dead letters: {sum(r['dead_letters'].values())}")
    for reason, n in sorted(r["dead_letters"].items(), key=lambda x: -x[1]):
        print(f"   {n} × {reason}")
    print(f"serve exit code {r['serve_exit_code']}, tracebacks in serve log: {r['serve_log_tracebacks']}")
    if r.get("serve_log_first_traceback"):
        print(textwrap.indent(r["serve_log_first_traceback"], "    "))
    print(f"lost={len(r['lost'])} overwritten_after_check={len(window)} duplicates={len(r['duplicates'])} "
          f"unreviewed_conflicts={len(r['unresolved_conflicts_not_in_review'])} echo_writes={sum(r['echo_writes'].values())} "
          f"dead_letters={sum(r['dead_letters'].values())} kills={r['kills']} seconds={r['seconds']['total']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=500, help="user operations (creates, edits, deletes)")
    parser.add_argument("--kills", type=int, default=5, help="SIGKILLs of the worker process")
    parser.add_argument("--rate", type=float, default=6.0, help="operations per second")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--fault-rate", type=float, default=0.2, help="share of API calls failing (5xx, 429, timeout, drop)")
    parser.add_argument("--dup", type=float, default=0.3, help="share of webhooks delivered twice")
    parser.add_argument("--drop", type=float, default=0.05, help="share of webhooks never delivered")
    parser.add_argument("--max-delay", type=float, default=3.0, help="webhooks are delivered up to this late (s)")
    parser.add_argument("--settle-timeout", type=float, default=180.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the state database (for `crmsync history`)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--recheck", metavar="DIR", type=Path,
                        help="run only the checker again, on the files a --keep run kept in DIR")
    args = parser.parse_args(argv)
    if args.recheck:
        result = recheck(args.recheck)
        print(json.dumps({k: result[k] for k in ("lost", "overwritten_between_check_and_write", "duplicates",
                                                 "unresolved_conflicts_not_in_review",
                                                 "source_of_truth_wins", "latest_wins_by_record_time",
                                                 "records_not_from_the_driver")},
                         ensure_ascii=False, indent=1, default=str))
        return 1 if result["lost"] or result["duplicates"] else 0
    result = run(args)
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1, default=str))
    else:
        print_report(result)
    return 1 if result["lost"] or result["duplicates"] else 0


if __name__ == "__main__":
    sys.exit(main())
