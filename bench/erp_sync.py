"""ERP connector throughput: rows/s for pull and push.

SQL half: the interface-table connector against a real PostgreSQL (or any loopback
database URL) with the demo ERP schema — full pull, incremental pull, hash scan,
staging writes (inserts, then re-staging as updates), and reading the import job's
verdicts back. A throwaway database is created on the server and dropped afterwards.

    .venv/bin/python bench/erp_sync.py --target sql --rows 50000

Kingdee half: see ``bench_kingdee`` (added by the lead with the Kingdee connector).

Prints one line per measurement and a last line of key=value figures.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from connectors.base import PullRequest, WriteOp  # noqa: E402
from connectors.emulation.fakedata import FakeData  # noqa: E402
from connectors.sql.connector import SqlConnector  # noqa: E402
from connectors.sql.demo_schema import (  # noqa: E402
    create_demo_schema,
    demo_settings,
    erp_customer,
    local_now,
    run_erp_import_job,
    seed_demo,
    touch,
)
from connectors.sql.settings import SqlSettings  # noqa: E402

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def report(label: str, rows: int, seconds: float) -> float:
    rate = rows / seconds if seconds else float("inf")
    print(f"{label:<38} {rows:>8} rows {seconds:>8.2f} s {rate:>10.0f} rows/s")
    return rate


async def timed(fn: Callable[[], Awaitable[int]]) -> tuple[int, float]:
    started = time.perf_counter()
    count = await fn()
    return count, time.perf_counter() - started


# -- SQL interface tables ----------------------------------------------------------
def throwaway_database(server_url: str) -> tuple[str, Callable[[], None]]:
    url = make_url(server_url)
    if url.host not in LOOPBACK and url.get_backend_name() != "sqlite":
        raise SystemExit(f"refusing {url.render_as_string(hide_password=True)}: benchmarks use loopback databases only")
    if url.get_backend_name() == "sqlite":
        return server_url, lambda: None
    name = f"crmsync_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    mysql = url.get_backend_name() == "mysql"
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4" if mysql else f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`" if mysql else f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url.set(database=name).render_as_string(hide_password=False), drop


async def bench_sql(args: argparse.Namespace) -> dict[str, float]:
    url, drop = throwaway_database(args.url)
    try:
        return await _bench_sql(url, args)
    finally:
        drop()


async def _bench_sql(url: str, args: argparse.Namespace) -> dict[str, float]:
    rows, hash_rows = args.rows, args.hash_rows or max(args.rows // 5, 1)
    settings = SqlSettings.model_validate(
        demo_settings(url, page_size=args.page_size, write_batch_size=args.batch_size)
    )
    connector = SqlConnector("erp", settings)
    engine = connector.db.engine
    print(f"database: {connector.db.display_url}  rows={rows} hash_rows={hash_rows} "
          f"page_size={args.page_size} write_batch={args.batch_size}")
    create_demo_schema(engine)
    started = time.perf_counter()
    start = local_now() - timedelta(days=10)
    seed_demo(engine, customers=rows, dealers=hash_rows, orders=0, start=start, ties=5)
    print(f"seeded ERP tables in {time.perf_counter() - started:.1f} s")
    figures: dict[str, float] = {}

    async def pull(**request) -> int:
        count = 0
        async for page in connector.pull(PullRequest(**request)):
            count += len(page.records)
        return count

    n, s = await timed(lambda: pull(object="customer"))
    assert n == rows, n
    figures["pull_full_rows_per_s"] = report("pull full (modified-at, keyset)", n, s)

    changed = [f"C{i:06d}" for i in range(1, rows + 1, 10)]
    moment = local_now()
    touch(engine, erp_customer, changed, moment)
    since = moment.replace(tzinfo=ZoneInfo(settings.timezone)) - timedelta(seconds=1)  # ERP local → aware
    n, s = await timed(lambda: pull(object="customer", since=since))
    assert n == len(changed), (n, len(changed))
    figures["pull_incremental_rows_per_s"] = report("pull incremental (10% changed)", n, s)

    n, s = await timed(lambda: pull(object="dealer"))
    figures["hash_scan_first_rows_per_s"] = report("hash scan, first (all new)", n, s)
    n_again, s = await timed(lambda: pull(object="dealer"))
    assert n_again == 0
    figures["hash_scan_unchanged_rows_per_s"] = report("hash scan, unchanged table", hash_rows, s)

    fake = FakeData(7)
    companies = [fake.company() for _ in range(rows)]
    ops = [
        WriteOp(key=f"op-{i}", action="create", data={
            "crm_id": f"fx-{i:07d}", "name": f"{c.name}#{i}", "tax_no": c.tax_id, "city": c.city, "phone": c.phone,
            "payment_days": 30,
        })
        for i, c in enumerate(companies)
    ]

    async def push(batch: list[WriteOp]) -> int:
        results = await connector.push("customer", batch)
        assert all(r.ok for r in results), next(r for r in results if not r.ok)
        return len(results)

    n, s = await timed(lambda: push(ops))
    figures["push_insert_rows_per_s"] = report("push: stage new rows (upsert)", n, s)
    updates = [WriteOp(key=f"op2-{i}", action="update", data={**op.data, "city": "上海"}) for i, op in enumerate(ops)]
    n, s = await timed(lambda: push(updates))
    figures["push_restage_rows_per_s"] = report("push: re-stage pending rows (merge)", n, s)

    started = time.perf_counter()
    job = run_erp_import_job(engine)
    print(f"ERP import job (simulator, not crmsync): {job.accepted} accepted, {job.rejected} rejected "
          f"in {time.perf_counter() - started:.1f} s")

    async def poll() -> int:
        total = 0
        while True:
            found = await connector.poll_write_outcomes(["customer"], limit=5000)
            finals = [r for r in found if r.code != "SUPERSEDED"]
            total += len(finals)
            if not found:
                return total

    n, s = await timed(poll)
    assert n == rows, n
    figures["poll_outcomes_rows_per_s"] = report("poll outcomes (read back + ack)", n, s)
    await connector.close()
    return figures


# -- Kingdee K/3 Cloud ------------------------------------------------------------------
def bench_kingdee(args: argparse.Namespace) -> None:
    """The Kingdee half: the emulator at --latency-ms, pull and push rows/s (bench/erp_kingdee.py)."""
    import erp_kingdee  # same folder

    erp_kingdee.main(["--rows", str(args.rows), "--latency-ms", str(args.latency_ms)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=["sql", "kingdee"], default="sql")
    parser.add_argument("--rows", type=int, default=50_000, help="customer rows pulled and pushed")
    parser.add_argument("--hash-rows", type=int, default=0, help="dealer rows for the hash scan (default rows/5)")
    parser.add_argument("--url", default=os.environ.get("CRMSYNC_TEST_DATABASE_URL", DEFAULT_URL),
                        help="loopback database server URL; a throwaway database is created on it")
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--latency-ms", type=float, default=50.0, help="kingdee: latency the emulator adds per call")
    args = parser.parse_args()
    if args.target == "kingdee":
        bench_kingdee(args)
        return
    figures = asyncio.run(bench_sql(args))
    print(" ".join(f"{k}={v:.0f}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
