"""Benchmark: a full and an incremental pull of Zoho CRM Accounts from the local emulator.

    .venv/bin/python bench/zoho_pull.py --records 20000 --latency-ms 20

Starts the Zoho emulator in its own process on a loopback port (so that it does not
share the connector's interpreter), seeds N realistic accounts, makes every API call
take L ms, pulls them all through the Zoho connector (Modified_Time order, 200 per
page, page_token past 2,000), then changes 1 % of them "as a user" and pulls
incrementally.
Prints records/s, API calls, calls per record, the minimum number of calls the API
limits allow, and the wall time against the lower bound the latency allows. The
last line holds the figures as key=value pairs.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.base import PullRequest  # noqa: E402
from connectors.emulation.server import free_port  # noqa: E402
from connectors.zoho.connector import ZohoConnector  # noqa: E402
from connectors.zoho.emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_REFRESH_TOKEN  # noqa: E402
from connectors.zoho.settings import ZohoSettings  # noqa: E402

EMULATOR = """
import sys, uvicorn
from connectors.zoho.emulator import ZohoEmulator
port, limit = int(sys.argv[1]), int(sys.argv[2])
emu = ZohoEmulator(switches={"page_token_record_limit": limit})
emu.base_url = f"http://127.0.0.1:{port}"
uvicorn.run(emu.app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
"""

PAGE = 200
FIELDS_PER_CALL = 50


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000, help="accounts in the org (default 20000)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="emulated latency of every API call (default 20)")
    parser.add_argument("--fields", default="20", help="fields per record: a number of Accounts fields, or 'all' (default 20)")
    parser.add_argument("--api-version", default="v8", help="REST API version the connector uses (default v8)")
    parser.add_argument("--changed", type=float, default=0.01, help="share of records changed before the incremental pull")
    parser.add_argument("--sequence-limit", type=int, default=100_000,
                        help="records one page_token sequence may return in the emulator (Zoho: 100000)")
    args = parser.parse_args()
    if args.records < 1 or args.latency_ms < 0:
        parser.error("--records must be positive and --latency-ms not negative")
    return args


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def pull(zoho: ZohoConnector, request: PullRequest) -> tuple[list[str], int, float]:
    """Ids in delivery order, API calls made, seconds."""
    calls_before = zoho.client.http.stats.total
    started = time.perf_counter()
    ids: list[str] = []
    async for page in zoho.pull(request):
        ids.extend(record.external_id for record in page.records)
    elapsed = time.perf_counter() - started
    if len(ids) != len(set(ids)):
        raise SystemExit(f"repeated records: {len(ids)} delivered, {len(set(ids))} distinct")
    return ids, zoho.client.http.stats.total - calls_before, elapsed


@contextlib.contextmanager
def emulator(sequence_limit: int) -> Iterator[str]:
    """The emulator in a child process; yields its base URL."""
    port = free_port()
    child = subprocess.Popen([sys.executable, "-c", EMULATOR, str(port), str(sequence_limit)], cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/_admin/objects", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if child.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the emulator did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        child.terminate()
        child.wait(timeout=10)


async def run(args: argparse.Namespace) -> dict[str, float | int | str]:
    with emulator(args.sequence_limit) as url:
        admin = httpx.Client(base_url=f"{url}/_admin", timeout=600)
        started = time.perf_counter()
        admin.post("/seed", json={"count": args.records, "objects": ["Accounts"]}).raise_for_status()
        print(f"seeded {args.records} accounts in {time.perf_counter() - started:.1f}s", flush=True)
        admin.patch("/switches", json={"latency_ms": args.latency_ms}).raise_for_status()
        settings = ZohoSettings(
            accounts_url=url, api_version=args.api_version, client_id=DEFAULT_CLIENT_ID,
            client_secret=DEFAULT_CLIENT_SECRET, refresh_token=DEFAULT_REFRESH_TOKEN,
        )
        async with ZohoConnector("bench", settings) as zoho:
            await zoho.check()
            all_fields = [f.name for f in await zoho.describe("Accounts")]
            fields = all_fields if args.fields == "all" else all_fields[: int(args.fields)]
            chunks = math.ceil((len([f for f in fields if f != "Modified_Time"])) / (FIELDS_PER_CALL - 1)) or 1

            pulled, full_calls, full_seconds = await pull(zoho, PullRequest("Accounts", fields=fields))
            full = len(pulled)
            if full != args.records:
                raise SystemExit(f"full pull returned {full} of {args.records} records")

            # Incremental: a share of the records edited "by users", then a pull since just before.
            since = datetime.now(timezone.utc).replace(microsecond=0)
            changed = max(1, int(args.records * args.changed))
            for i, rid in enumerate(pulled[:: max(1, full // changed)][:changed]):
                admin.patch(f"/records/Accounts/{rid}", json={"Description": f"bench change {i}"}).raise_for_status()
            delta, inc_calls, inc_seconds = await pull(zoho, PullRequest("Accounts", fields=fields, since=since))
            inc = len(delta)
            if inc != changed:
                raise SystemExit(f"incremental pull returned {inc} records for {changed} changes")
            restarts = zoho.puller.restarts
        server_calls = admin.get("/calls").json()["total"]
        admin.close()
    # Lower bounds: one call per page per field chunk, plus the deleted-records list; calls in sequence.
    full_min = math.ceil(args.records / PAGE) * chunks + 1
    inc_min = math.ceil(changed / PAGE) * chunks + 1
    latency = args.latency_ms / 1000
    full_floor = full_min / chunks * latency  # chunks of one page go out together
    return {
        "records": args.records,
        "latency_ms": args.latency_ms,
        "api_version": args.api_version,
        "fields": len(fields),
        "field_chunks": chunks,
        "full_records_per_s": round(full / full_seconds),
        "full_seconds": round(full_seconds, 2),
        "full_calls": full_calls,
        "full_calls_min": full_min,
        "full_calls_ratio": round(full_calls / full_min, 3),
        "full_calls_per_record": round(full_calls / full, 5),
        "full_wall_vs_latency_floor": round(full_seconds / full_floor, 2) if full_floor else 0,
        "restarts": restarts,
        "emulator_calls_total": server_calls,
        "incremental_changed": changed,
        "incremental_records": inc,
        "incremental_calls": inc_calls,
        "incremental_calls_min": inc_min,
        "incremental_seconds": round(inc_seconds, 3),
        "peak_rss_mb": round(peak_rss_mb()),
    }


def main() -> None:
    args = parse_args()
    figures = asyncio.run(run(args))
    print(f"full pull:        {figures['records']} records in {figures['full_seconds']}s = {figures['full_records_per_s']} records/s")
    print(f"  API calls:      {figures['full_calls']} (minimum {figures['full_calls_min']}, ratio {figures['full_calls_ratio']}), "
          f"{figures['full_calls_per_record']} calls per record, {figures['field_chunks']} field chunk(s) per page")
    if figures["latency_ms"]:
        print(f"  wall time:      {figures['full_wall_vs_latency_floor']}x the floor set by {figures['latency_ms']} ms latency per page")
    print(f"incremental pull: {figures['incremental_records']} records ({figures['incremental_changed']} changed) in "
          f"{figures['incremental_seconds']}s with {figures['incremental_calls']} calls (minimum {figures['incremental_calls_min']})")
    print(f"peak RSS:         {figures['peak_rss_mb']} MB")
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
