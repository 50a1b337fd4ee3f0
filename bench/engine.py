"""Sync engine throughput: records/s through pull → map → reconcile → push → commit.

The engine alone: two in-memory systems (the engine tests' connector, in process, no
latency) so what is measured is crmsync's own work and its state database. N accounts
exist in one system; the first pass creates them in the other (initial sync), the
second pass reads both systems again and finds nothing changed (no-op pass).

    .venv/bin/python bench/engine.py --records 20000 --store both --profile

State on SQLite (a temporary file) and/or PostgreSQL: a throwaway database created on
the server named by --pg-url or CRMSYNC_BENCH_DATABASE_URL (loopback only) and dropped
afterwards. Prints a table, a cProfile top 10 (cumulative) with --profile, and a last
line of key=value figures.
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import random
import sqlite3
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from config.loader import parse_config
from connectors import registry
from connectors.emulation.fakedata import CITIES, FakeData
from sync_engine.engine import SyncEngine
from sync_engine.runtime import Runtime
from sync_engine.state.db import StateStore
from tests.engine.memory import PLUGIN, MemorySettings, MemorySystem

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"

CONFIG = """
systems:
  fx: {type: memory}
  zoho: {type: memory}
entities:
  account:
    model: Account
    systems:
      fx:
        object: AccountObj
        fields: {name: name, tax_id: uscc, phone: tel, industry: industry, city: city, domain: web}
      zoho:
        object: Accounts
        fields: {name: Account_Name, tax_id: Tax_ID, phone: Phone, industry: Industry, city: Billing_City, domain: Website}
flows:
  accounts:
    entity: account
    systems: [fx, zoho]
"""

def throwaway_database(server_url: str) -> tuple[str, Callable[[], None]]:
    url = make_url(server_url).set(drivername="postgresql+psycopg")
    if url.host not in LOOPBACK:
        raise SystemExit(f"refusing {url.render_as_string(hide_password=True)}: benchmarks use loopback databases only")
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"crmsync_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url.set(database=name).render_as_string(hide_password=False), drop


#: Name parts: three characters of brand give ~10⁵ names per trade, so names repeat about as
#: rarely as in a real customer base and similar-name blocks stay small.
BRAND_CHARS = "华信恒通中科博远瑞丰金桥天成鼎盛星河云启宏达汇智新锐东方联创卓越海纳正泰锦程安和嘉隆兴茂广源泰康永昌德润"
TRADES = ["科技", "电子", "软件", "制造", "贸易", "医疗器械", "物流", "能源", "信息技术", "精密机械"]
SUFFIXES = ["有限公司", "股份有限公司", "有限责任公司"]
EN_SYLLABLES = ["ac", "ve", "lo", "mi", "ra", "to", "ne", "xi", "qu", "an", "or", "el", "is", "um", "ty"]
EN_TRADES = ["Robotics", "Software", "Medical", "Logistics", "Energy", "Trading"]


def company_name(rng: random.Random) -> str:
    if rng.random() < 0.8:
        brand = "".join(rng.choice(BRAND_CHARS) for _ in range(3))
        return f"{rng.choice(CITIES)}{brand}{rng.choice(TRADES)}{rng.choice(SUFFIXES)}"
    word = "".join(rng.choice(EN_SYLLABLES) for _ in range(3)).title()
    return f"{word} {rng.choice(EN_TRADES)} {rng.choice(['Co., Ltd.', 'Ltd.', 'Inc.'])}"


def seed(fx: MemorySystem, zoho: MemorySystem, n: int, shared: float) -> int:
    """N companies in fx; every 1/shared-th of them keyed in zoho too (to be matched, not copied)."""
    fake = FakeData(seed=7)
    every = round(1 / shared) if shared > 0 else 0
    in_both = 0
    for i in range(n):
        c = fake.company()
        name = company_name(fake.rng)
        fx.user_create("AccountObj", {"name": name, "uscc": c.tax_id, "tel": c.phone, "industry": c.industry,
                                      "city": c.city, "web": c.domain})
        if every and i % every == 0:
            zoho.user_create("Accounts", {"Account_Name": name, "Tax_ID": c.tax_id, "Phone": c.phone,
                                          "Industry": c.industry, "Billing_City": c.city, "Website": c.domain})
            in_both += 1
    return in_both


class SqliteClock:
    """Seconds spent inside SQLite's own calls (execute, executemany, fetches, commit), wall and CPU:
    what the state database costs whatever crmsync's Python does around it (``--sql-time``).

    Through sqlite3's public connection and cursor factories (``connect_args``), so every statement
    SQLAlchemy sends is counted, the ORM's and the bulk writes' alike."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0
        self.statements = self.rows = 0

    def timed(self, call: Callable, *args):
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return call(*args)
        finally:
            self.wall += time.perf_counter() - wall
            self.cpu += time.thread_time() - cpu

    def connect_args(self) -> dict:
        clock = self

        class Cursor(sqlite3.Cursor):
            def execute(self, sql, parameters=()):
                clock.statements += 1
                if sql.lstrip()[:6].upper() not in ("SELECT", "PRAGMA"):
                    clock.rows += 1  # rows written (at least one; a bulk statement is an executemany)
                return clock.timed(super().execute, sql, parameters)

            def executemany(self, sql, seq):
                seq = list(seq)
                clock.statements += 1
                clock.rows += len(seq)
                return clock.timed(super().executemany, sql, seq)

            def fetchone(self):
                return clock.timed(super().fetchone)

            def fetchmany(self, size=None):
                return clock.timed(super().fetchmany, *(() if size is None else (size,)))

            def fetchall(self):
                return clock.timed(super().fetchall)

        class Connection(sqlite3.Connection):
            def cursor(self, factory=Cursor):
                return super().cursor(factory)

            def commit(self):
                return clock.timed(super().commit)

        return {"factory": Connection}

    def snapshot(self) -> tuple[float, float, int, int]:
        return self.wall, self.cpu, self.statements, self.rows


class Pass:
    def __init__(self, label: str, records: int, seconds: float, cpu: float, counts: dict[str, dict[str, int]]) -> None:
        self.label, self.records, self.seconds, self.cpu, self.counts = label, records, seconds, cpu, counts
        #: (wall s, CPU s, statements, rows written) inside SQLite during the pass, with --sql-time
        self.sql: tuple[float, float, int, int] | None = None

    def counts_of(self, *names: str) -> int:
        return sum(c.get(name, 0) for c in self.counts.values() for name in names)

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else float("inf")


async def run_store(store_name: str, url: str, args: argparse.Namespace) -> tuple[list[Pass], str | None]:
    MemorySystem.instances.clear()
    settings = MemorySettings(page_size=args.page_size)
    fx, zoho = MemorySystem("fx", settings), MemorySystem("zoho", settings)
    in_both = seed(fx, zoho, args.records, args.shared)
    config = parse_config(textwrap.dedent(CONFIG), "bench-engine.yaml", environ={})
    config.state.url = url
    clock = SqliteClock() if args.sql_time and url.startswith("sqlite") else None
    store = StateStore.open(url, **({"connect_args": clock.connect_args()} if clock else {}))
    runtime = Runtime(config, store=store, connectors={"fx": fx, "zoho": zoho})
    engine = SyncEngine(runtime, batch_size=args.batch_size)
    profile_text = None
    passes: list[Pass] = []
    try:
        async with runtime:
            for label in ("initial", "no-op"):
                sql_before = clock.snapshot() if clock else None
                profiler = cProfile.Profile() if args.profile and label == args.profile_pass else None
                started, cpu_started = time.perf_counter(), time.process_time()
                if profiler:
                    profiler.enable()
                report = await engine.run_flow("accounts")
                if profiler:
                    profiler.disable()
                seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
                if report.errors:
                    raise SystemExit(f"{store_name} {label} pass failed: {report.errors}")
                counts = {s: dict(c) for s, c in report.counts.items()}
                # Records read from both systems and carried through the whole pass.
                records = report.total("read")
                passes.append(Pass(label, records, seconds, cpu, counts))
                if clock:
                    passes[-1].sql = tuple(b - a for a, b in zip(sql_before, clock.snapshot()))
                if profiler:
                    out = io.StringIO()
                    pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(args.top + 20)
                    profile_text = out.getvalue()
        # The figures count only if the sync did what it should.
        created = len(zoho.records("Accounts"))
        if created != args.records:
            raise SystemExit(f"{store_name}: expected {args.records} accounts in zoho, found {created}")
        if zoho.writes["create"] != args.records - in_both or fx.writes["create"] or passes[1].counts_of("created", "updated"):
            raise SystemExit(f"{store_name}: unexpected writes: zoho {dict(zoho.writes)}, fx {dict(fx.writes)}")
    finally:
        store.dispose()
    return passes, profile_text


#: Frames every pass goes through (the event loop, this script): they say nothing about the engine.
NOISE = ("asyncio/", "_contextvars", "bench/engine.py", "{built-in method builtins.exec}")


def trim_profile(text_: str, top: int) -> str:
    """pstats' table without its preamble and the event loop's frames, paths shortened."""
    root = str(Path(__file__).resolve().parents[1]) + os.sep
    lines = text_.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip().startswith("ncalls")), 0)
    rows = [line.replace(root, "") for line in lines[start + 1:] if line.strip() and not any(n in line for n in NOISE)]
    return "\n".join([lines[start], *rows[:top]])


async def main_async(args: argparse.Namespace) -> int:
    stores = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    figures: dict[str, str] = {"records": str(args.records)}
    print(f"engine: {args.records} accounts in fx ({args.shared:.0%} also in zoho) synced fx ⇄ zoho, page_size={args.page_size} batch={args.batch_size}")
    # CPU seconds of this process: on a shared machine a steadier figure than wall time
    # (on PostgreSQL the server's own CPU is not in it).
    print(f"{'store':<10} {'pass':<8} {'records':>8} {'seconds':>9} {'records/s':>10} {'cpu s':>7} {'rec/cpu s':>10}  counts")
    for store_name in stores:
        with tempfile.TemporaryDirectory() as tmp:
            if store_name == "sqlite":
                url, drop = f"sqlite:///{Path(tmp) / 'bench-state.db'}", (lambda: None)
            else:
                url, drop = throwaway_database(args.pg_url)
            try:
                passes, profile_text = await run_store(store_name, url, args)
            finally:
                drop()
        for p in passes:
            counts = "; ".join(f"{s}: " + ", ".join(f"{k}={v}" for k, v in sorted(c.items())) for s, c in sorted(p.counts.items()))
            per_cpu = p.records / p.cpu if p.cpu else float("inf")
            key = "initial" if p.label == "initial" else "noop"
            print(f"{store_name:<10} {p.label:<8} {p.records:>8} {p.seconds:>9.2f} {p.rate:>10.0f} {p.cpu:>7.2f} {per_cpu:>10.0f}  {counts}")
            if p.sql:
                wall, cpu, statements, rows = p.sql
                ceiling = p.records / wall if wall else float("inf")
                print(f"{'':<10} {'':<8} inside SQLite: {wall:.2f} s wall, {cpu:.2f} s CPU ({wall / p.seconds:.0%} of the pass),"
                      f" {statements} statements, {rows} rows written; {1e6 * wall / p.records:.0f} µs a record:"
                      f" at most {ceiling:.0f} records/s even if crmsync's Python cost nothing")
                figures[f"{store_name}_{key}_sql_s"] = f"{wall:.2f}"
                figures[f"{store_name}_{key}_sql_ceiling_records_per_s"] = f"{ceiling:.0f}"
            figures[f"{store_name}_{key}_records_per_s"] = f"{p.rate:.0f}"
            figures[f"{store_name}_{key}_s"] = f"{p.seconds:.2f}"
            figures[f"{store_name}_{key}_records_per_cpu_s"] = f"{per_cpu:.0f}"
        if profile_text:
            print(f"\nprofile ({store_name}, {args.profile_pass} pass), top {args.top} by {args.sort} time:")
            print(trim_profile(profile_text, args.top))
            print()
    print(" ".join(f"{k}={v}" for k, v in figures.items()))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=5000, help="accounts to sync (default 5000)")
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--pg-url", default=os.environ.get("CRMSYNC_BENCH_DATABASE_URL", DEFAULT_PG_URL),
                        help="PostgreSQL server for the throwaway database (default: $CRMSYNC_BENCH_DATABASE_URL)")
    parser.add_argument("--shared", type=float, default=0.1,
                        help="share of the accounts already keyed in zoho too, matched on the first sync (default 0.1)")
    parser.add_argument("--page-size", type=int, default=200, help="records per pulled page (default 200)")
    parser.add_argument("--batch-size", type=int, default=None, help="staged changes per reconcile batch")
    parser.add_argument("--profile", action="store_true", help="cProfile one pass and print the top functions")
    parser.add_argument("--profile-pass", choices=["initial", "no-op"], default="initial")
    parser.add_argument("--sql-time", action="store_true",
                        help="SQLite: time spent inside SQLite's calls per pass, and the records/s it alone would allow")
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--sort", choices=["cumulative", "tottime"], default="cumulative")
    args = parser.parse_args()
    if args.records < 1:
        parser.error("--records must be at least 1")
    if args.batch_size is None:
        from sync_engine.engine import BATCH_SIZE
        args.batch_size = BATCH_SIZE
    # The in-memory system is a test connector, not an installed plugin: register it for this process.
    plugins = {**registry.plugins(), "memory": PLUGIN}
    registry.plugins = lambda: plugins
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
