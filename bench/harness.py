"""What the engine benches share: emulators in their own processes, a bench configuration,
seeding, call counts, throwaway state databases, peak RSS and the key=value line.

The emulators run as ``crmsync emulator …`` child processes, so the bench process holds
crmsync alone: its timings and its peak RSS are crmsync's, not the emulators'.
"""
from __future__ import annotations

import contextlib
import ctypes
import json
import math
import os
import resource
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
# The repository first: bench/mapping.py must never shadow the mapping package.
if sys.path[:1] != [str(ROOT)]:
    sys.path.insert(0, str(ROOT))

from connectors.emulation.server import free_port
from connectors.fxiaoke.emulator import EmulatorConfig
from connectors.zoho.emulator import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REFRESH_TOKEN,
)

CLI = [sys.executable, "-c", "from sync_engine.cli import main; main()"]
FX = EmulatorConfig()
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}

# Documented page and batch sizes (connectors' READMEs, ../shared/reference).
FX_PAGE = 100          # Fxiaoke query limit
ZOHO_PAGE = 200        # Zoho per_page
ZOHO_BATCH = 100       # Zoho records per insert
KINGDEE_BATCH = 100    # the Kingdee connector's write_batch (BatchSave models per call)

#: Canonical entity → (Fxiaoke object, Zoho module, Kingdee form or None), in reference order.
ENTITIES = {
    "partner": ("PartnerObj", "Partners", "PAEZ_BD_Dealer"),
    "account": ("AccountObj", "Accounts", "BD_Customer"),
    "contact": ("ContactObj", "Contacts", None),
    "deal": ("NewOpportunityObj", "Deals", None),
}
#: Records of each entity per --records N (the Fxiaoke emulator's own mix: N/10 partners, N/2 deals).
SHARE = {"partner": 0.1, "account": 1.0, "contact": 1.0, "deal": 0.5}


def peak_rss_mb() -> float:
    """This process's peak resident set size (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc; 0 where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def key_values(figures: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in figures.items())


def parse_key_values(line: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in line.split() if "=" in part)


def plan_counts(records: int, entities: list[str]) -> dict[str, int]:
    return {e: max(1, round(records * SHARE[e])) for e in entities}


# -- emulators -----------------------------------------------------------------------------------
@dataclass
class Emulator:
    kind: str
    url: str
    process: subprocess.Popen
    admin: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.admin = httpx.Client(base_url=f"{self.url}/_admin", timeout=3600)

    def calls(self) -> dict[str, int]:
        """Calls the emulator answered, by route (token calls included, admin calls not)."""
        return dict(self.admin.get("/calls").json()["by_route"])

    def total_calls(self) -> int:
        return sum(self.calls().values())

    def cpu_seconds(self) -> float:
        """User + system CPU seconds the emulator's process has used so far (Linux /proc; 0 elsewhere)."""
        return process_cpu_seconds(self.process.pid)

    def switches(self, **values) -> None:
        self.admin.patch("/switches", json=values).raise_for_status()


# Fxiaoke is started by this script rather than `crmsync emulator fxiaoke --seed`, so that the seeded
# data is ready before the first call and company names are unique per object, as a tenant's 查重 rules
# (and Zoho's unique Account_Name and Partner Name) keep them: otherwise the fake-data generator's
# repeated names would turn into Zoho DUPLICATE_DATA dead letters the bench is not about.
FX_SCRIPT = """
import json, sys, uvicorn
from collections import Counter
from connectors.fxiaoke.emulator import EmulatorConfig, FxiaokeEmulator
port, latency, limit, period, counts = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), json.loads(sys.argv[5])
emu = FxiaokeEmulator(EmulatorConfig(seed=11, latency_ms=latency, rate_limit=limit, rate_period=period))
for obj, n in counts.items():
    for start in range(0, n, 100_000):
        emu.store.seed(min(100_000, n - start), [obj])
for obj in ("PartnerObj", "AccountObj", "NewOpportunityObj"):
    seen = Counter()
    for record in emu.store.tables[obj].records.values():  # names are not indexed: renaming in place is safe
        seen[record["name"]] += 1
        if seen[record["name"]] > 1:
            record["name"] = f"{record['name']}（{seen[record['name']] - 1}）"
uvicorn.run(emu.app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
"""


# Zoho and Kingdee as `crmsync emulator …` would run them, without importing the whole CLI first
# (a second or more per process on a busy machine).
ZOHO_SCRIPT = """
import sys, uvicorn
from connectors.zoho.emulator import ZohoEmulator
port, latency, concurrency = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
emu = ZohoEmulator(latency_ms=latency, concurrency=concurrency, time_zone="+08:00")
emu.base_url = f"http://127.0.0.1:{port}"
uvicorn.run(emu.app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
"""
KINGDEE_SCRIPT = """
import sys, uvicorn
from connectors.kingdee.emulator import create_app
port, latency = int(sys.argv[1]), float(sys.argv[2])
uvicorn.run(create_app(latency_ms=latency), host="127.0.0.1", port=port, log_level="warning", access_log=False)
"""
SCRIPTS = {"fxiaoke": FX_SCRIPT, "zoho": ZOHO_SCRIPT, "kingdee": KINGDEE_SCRIPT}


def _parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` for a bench's child processes: on Linux the child is sent SIGTERM when the process
    that started it dies, however it dies. A bench stopped with SIGTERM or SIGKILL runs no ``finally`` and
    would otherwise leave its emulators running (a 1M-record Fxiaoke emulator holds 2 GB). Everything is
    looked up here, in the parent: the child, between fork and exec, only makes the one call."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig, sigterm = 1, int(signal.SIGTERM)

    def die_with_parent() -> None:
        prctl(pr_set_pdeathsig, sigterm)

    return die_with_parent


#: None off Linux.
die_with_parent = _parent_death_signal()


def _spawn(kind: str, args: list[str], log_dir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = (log_dir / f"{kind}.log").open("w")
    command = [sys.executable, "-c", SCRIPTS[kind], str(port), *args]
    process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                               preexec_fn=die_with_parent)  # noqa: PLW1509 - one prctl call, nothing imported or locked
    return process, f"http://127.0.0.1:{port}"


def _ready(kind: str, process: subprocess.Popen, url: str, log_dir: Path) -> Emulator:
    deadline = time.monotonic() + 3600  # seeding a million records takes a while
    # One client for all the polls: each new httpx client loads the CA bundle (~0.5 s on a busy machine).
    with httpx.Client(timeout=1) as probe:
        while True:
            try:
                probe.get(f"{url}/_admin/calls").raise_for_status()
                return Emulator(kind, url, process)
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    raise SystemExit(f"the {kind} emulator did not start; see {log_dir / (kind + '.log')}") from None
                time.sleep(0.1)


@dataclass
class Limits:
    latency_ms: float = 0.0
    fx_rate_limit: int = 100           # calls per interface per fx_period
    fx_period: float = 20.0
    fx_rate_limit_mode: str | None = None  # window | paced (None: the product's default, window)
    zoho_concurrency: int = 10         # Standard edition
    zoho_write_parallelism: int | None = None  # write batches of one push in flight (None: the product's default)
    kingdee_batch: int = KINGDEE_BATCH
    kingdee_concurrency: int = 4       # the connector's default; Kingdee documents no limit


@contextlib.contextmanager
def emulators(limits: Limits, kinds: tuple[str, ...] = ("fxiaoke", "zoho", "kingdee"),
              fx_seed: dict[str, int] | None = None) -> Iterator[dict[str, Emulator]]:
    """The emulators, each in its own process, with the documented limits enforced; Fxiaoke
    seeded with ``fx_seed`` (entity → count) before it answers."""
    log_dir = Path(tempfile.mkdtemp(prefix="crmsync-bench-emulators-"))
    lat = str(limits.latency_ms)
    args = {
        "fxiaoke": [lat, str(limits.fx_rate_limit), str(limits.fx_period),
                    json.dumps({ENTITIES[e][0]: n for e, n in (fx_seed or {}).items()})],
        "zoho": [lat, str(limits.zoho_concurrency)],
        "kingdee": [lat],
    }
    started: dict[str, Emulator] = {}
    spawned = {kind: _spawn(kind, args[kind], log_dir) for kind in kinds}  # they start side by side
    try:
        for kind, (process, url) in spawned.items():
            started[kind] = _ready(kind, process, url, log_dir)
        if "kingdee" in started:
            started["kingdee"].switches(max_batch_save=limits.kingdee_batch)
        yield started
    finally:
        for emu in started.values():
            emu.admin.close()
        for process, _ in spawned.values():
            if process.poll() is None:
                process.terminate()
        for process, _ in spawned.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


# -- configuration -------------------------------------------------------------------------------
def config_text(urls: dict[str, str], state_url: str, entities: list[str], limits: Limits, *,
                overlap: str = "2s", erp: bool = True, webhooks: bool = False) -> str:
    """A bench configuration: Fxiaoke, Zoho and (for partners and accounts) the ERP, plain fields
    and the references between entities, so the engine does a real first sync's work."""
    fx_rate = limits.fx_rate_limit
    systems = textwrap.dedent(f"""
        state: {{url: "{state_url}"}}
        logging: {{format: human, level: error}}
        sync: {{overlap: {overlap}}}
        systems:
          fxiaoke:
            type: fxiaoke
            host: {urls['fxiaoke']}
            app_id: {FX.app_id}
            app_secret: {FX.app_secret}
            permanent_code: {FX.permanent_code}
            rate_limit_calls: {fx_rate}
            rate_limit_period_seconds: {limits.fx_period}
            {f"rate_limit_mode: {limits.fx_rate_limit_mode}" if limits.fx_rate_limit_mode else ""}
            notifications: {{style: {"apl_function" if webhooks else "none"}{", apl_secret: bench-apl-secret-0123456789" if webhooks else ""}}}
          zoho:
            type: zoho
            accounts_url: {urls['zoho']}
            api_domain: {urls['zoho']}
            client_id: "{DEFAULT_CLIENT_ID}"
            client_secret: {DEFAULT_CLIENT_SECRET}
            refresh_token: "{DEFAULT_REFRESH_TOKEN}"
            concurrency: {limits.zoho_concurrency}
            {f"write_parallelism: {limits.zoho_write_parallelism}" if limits.zoho_write_parallelism else ""}
            trigger: []
        """)
    if erp and "kingdee" in urls:
        systems += textwrap.indent(textwrap.dedent(f"""
            erp:
              type: kingdee
              server_url: {urls['kingdee']}/
              acct_id: 65f1c0de2a9b3e
              username: crmsync
              auth: app_secret
              app_id: 300123_emulatorKd3/W+crmsync
              app_secret: 0f6b2d1c9a8e4b7f95c3d2e1a0b9c8d7
              timezone: Asia/Shanghai
              write_batch: {limits.kingdee_batch}
              concurrency: {limits.kingdee_concurrency}
              organisation: {{create_org: "100", use_org: "100", sale_org: "100"}}
              objects:
                customer: {{form_id: BD_Customer}}
                dealer:
                  form_id: PAEZ_BD_Dealer
                  id_field: FID
                  number_field: FNumber
                  fields: [FName, F_PAEZ_Phone, F_PAEZ_Email]
            """), "  ")
    blocks = {
        "partner": """
          partner:
            model: Partner
            systems:
              fxiaoke: {object: PartnerObj, fields: {name: name, primary_contact_phone: tel, primary_contact_email: email}}
              zoho: {object: Partners, fields: {name: Name, primary_contact_phone: Phone, primary_contact_email: Email}}
              erp: {object: PAEZ_BD_Dealer, fields: {name: FName, primary_contact_phone: F_PAEZ_Phone, primary_contact_email: F_PAEZ_Email}}
        """,
        "account": """
          account:
            model: Account
            systems:
              fxiaoke:
                object: AccountObj
                constants: {owner: ["1000"]}
                fields: {name: name, phone: tel, address: address, partner: partner_id}
              zoho: {object: Accounts, fields: {name: Account_Name, phone: Phone, address: Billing_Street, partner: Partner}}
              erp: {object: BD_Customer, fields: {name: FName, phone: FTEL, address: FADDRESS}}
        """,
        "contact": """
          contact:
            model: Contact
            systems:
              fxiaoke:
                object: ContactObj
                constants: {owner: ["1000"]}
                fields: {name: name, title: job_title, mobile: mobile1, email: email, account: account_id}
              zoho:
                object: Contacts
                fields: {name: Last_Name, title: Title, mobile: Mobile, email: Email, account: Account_Name}
        """,
        "deal": """
          deal:
            model: Deal
            systems:
              fxiaoke:
                object: NewOpportunityObj
                constants: {owner: ["1000"], sales_stage: "1"}
                fields: {name: name, amount: amount, expected_close_date: close_date, account: account_id, currency: {default: CNY}}
              zoho:
                object: Deals
                timezone: Asia/Shanghai
                constants: {Stage: Qualification}
                fields: {name: Deal_Name, amount: Amount, expected_close_date: Closing_Date, account: Account_Name, currency: {default: CNY}}
        """,
    }
    with_erp = erp and "kingdee" in urls
    body = "entities:\n"
    flows = "flows:\n"
    for entity in entities:
        block = textwrap.dedent(blocks[entity])
        if "partner" not in entities:  # a reference needs its entity configured
            block = block.replace(", partner: partner_id", "").replace(", partner: Partner", "")
        if not with_erp:
            block = "\n".join(line for line in block.splitlines() if not line.strip().startswith("erp:"))
        body += textwrap.indent(block.strip("\n") + "\n", "  ")
        members = ["fxiaoke", "zoho"] + (["erp"] if with_erp and ENTITIES[entity][2] else [])
        flows += f"  {entity}s: {{entity: {entity}, systems: [{', '.join(members)}], webhooks: {str(webhooks).lower()}}}\n"
    return systems + body + flows


# -- state databases -----------------------------------------------------------------------------
@contextlib.contextmanager
def state_database(url: str | None) -> Iterator[str]:
    """SQLite in a temporary directory (``None``/``sqlite``), or a throwaway database on a loopback
    PostgreSQL server (a ``postgresql+psycopg://…`` server URL), dropped afterwards."""
    if not url or url == "sqlite":
        directory = Path(tempfile.mkdtemp(prefix="crmsync-bench-state-"))
        try:
            yield f"sqlite:///{directory / 'state.db'}"
        finally:
            for f in directory.iterdir():
                f.unlink()
            directory.rmdir()
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    server = make_url(url)
    if server.host not in LOOPBACK:
        raise SystemExit("benchmarks use loopback databases only")
    admin_url = server.set(database="postgres")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"crmsync_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def write_config(text: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix="crmsync-bench-config-")) / "bench.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def open_runtime(config_path: Path):
    """A Runtime and its engine for the bench configuration (imported late: emulators first)."""
    from config.loader import load_config
    from sync_engine.engine import SyncEngine
    from sync_engine.runtime import Runtime

    rt = Runtime(load_config(config_path), base_dir=config_path.parent)
    return rt, SyncEngine(rt)


def route_label(route: str) -> str:
    """'POST /crm/{version}/{module}' → 'POST {module}'; Kingdee's '…DynamicFormService.BatchSave.common.kdsvc' → 'BatchSave'."""
    method, _, path = route.partition(" ")
    last = path.rsplit("/", 1)[-1]
    if last.endswith(".common.kdsvc"):
        last = last.removesuffix(".common.kdsvc").rsplit(".", 1)[-1]
    return f"{method} {last}"


def dead_letters(rt_or_url, limit: int = 5) -> list[str]:
    """The first dead letters' system, code and message (why a record did not sync)."""
    from sqlalchemy import create_engine, select

    from sync_engine.state.models import DeadLetter

    engine = create_engine(rt_or_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(DeadLetter.system, DeadLetter.code, DeadLetter.message).limit(limit)).all()
    finally:
        engine.dispose()
    return [f"{s} {c}: {m}" for s, c, m in rows]


def left_over(url: str) -> dict[str, dict[str, int]]:
    """What a pass left for the next one: outbox writes not done, staged changes not reconciled, by
    (entity, system, status) — where an incomplete first sync stopped."""
    from sqlalchemy import create_engine, func, select

    from sync_engine.state.models import OutboxWrite, StagedChange

    engine = create_engine(url)
    found: dict[str, dict[str, int]] = {"outbox": {}, "staged": {}}
    try:
        with engine.connect() as conn:
            for kind, model in (("outbox", OutboxWrite), ("staged", StagedChange)):
                query = select(model.entity, model.system, model.status, func.count()).group_by(
                    model.entity, model.system, model.status)
                if model is OutboxWrite:
                    query = query.where(model.status.not_in(("done", "superseded")))
                for entity, system, status, n in conn.execute(query):
                    found[kind][f"{entity} {system} {status}"] = n
    finally:
        engine.dispose()
    return found


def diff_calls(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def ceil_div(a: int, b: int) -> int:
    return math.ceil(a / b) if a > 0 else 0
