"""crmsync's Zoho connector against Airbyte's own Zoho CRM source: the same Accounts, emulator, N and latency.

    .venv/bin/python bench/vs_airbyte.py                           # N = 1000, 2000, 5000; 50 ms
    .venv/bin/python bench/vs_airbyte.py --sizes 1000 --latency-ms 20

The peer is the PyPI package `airbyte-source-zoho-crm` (pinned below), installed by this
script into a virtual environment of its own (default ~/.cache/crmsync-bench/airbyte-venv,
or --peer-venv): nothing of it enters crmsync's dependencies. Both run as child processes
against one Zoho emulator (own process, Standard edition: 10 calls in flight) holding N
Accounts, every call delayed by L ms:

* Airbyte: `read` of the Accounts stream, exactly as its code does it — token refresh at
  accounts.zoho.{dc}, /crm/v2/org for the edition, discovery (/crm/v2/settings/modules, then
  per module /settings/modules/{name} and /settings/fields), then /crm/v2/Accounts by `page`.
  The bench points it at the emulator by replacing its two data-centre URL tables in the
  child process only.
* crmsync: ZohoConnector.check(), describe(Accounts), and a full pull of every Accounts
  field (its default API version, Modified_Time order, page_token past 2,000).

Each writes every record as one JSON line to stdout (Airbyte's RECORD messages; the same
for crmsync), which the bench counts. Prints, per N and side: records delivered, distinct
ids, API calls, seconds (inside the process, from before its first call to its last
record, and for the whole process), records/s and peak RSS; then crmsync's records/s over
Airbyte's. Target: ≥ 5× with every record delivered. Past 2,000 records Airbyte's `page`
paging meets Zoho's DISCRETE_PAGINATION_LIMIT_EXCEEDED (airbyte #30977): shown, not hidden.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from harness import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REFRESH_TOKEN,
    Limits,
)

PEER_PACKAGE = "airbyte-source-zoho-crm==0.3.6"
DEFAULT_PEER_VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "crmsync-bench" / "airbyte-venv"

AIRBYTE_RUNNER = r'''
import json, resource, sys, tempfile, time
from types import MappingProxyType
from source_zoho_crm.api import ZohoAPI
url, client_id, client_secret, refresh_token = sys.argv[1:5]
# Point the data-centre tables at the emulator: this process only.
ZohoAPI._DC_REGION_TO_ACCESS_URL = MappingProxyType({"US": url})
ZohoAPI._DC_REGION_TO_API_URL = MappingProxyType({"US": url})
from airbyte_cdk.entrypoint import launch
from source_zoho_crm.source import SourceZohoCrm
work = tempfile.mkdtemp()
config = {"client_id": client_id, "client_secret": client_secret, "refresh_token": refresh_token,
          "dc_region": "US", "environment": "Production"}
# The CDK names a stream after its class: Incremental{module}ZohoCRMStream in snake case.
catalog = {"streams": [{"stream": {"name": "incremental_accounts_zoho_crm_stream", "json_schema": {"type": "object"},
                                   "supported_sync_modes": ["full_refresh", "incremental"]},
                        "sync_mode": "full_refresh", "destination_sync_mode": "overwrite"}]}
json.dump(config, open(f"{work}/config.json", "w"))
json.dump(catalog, open(f"{work}/catalog.json", "w"))
started = time.perf_counter()
failed = ""
try:
    launch(SourceZohoCrm(), ["read", "--config", f"{work}/config.json", "--catalog", f"{work}/catalog.json"])
except BaseException as exc:  # the CDK raises after emitting its error trace; the bench reports it
    failed = f"{type(exc).__name__}: {str(exc)[:300]}"
sys.stdout.flush()
print(json.dumps({"seconds": time.perf_counter() - started, "failed": failed}), file=sys.stderr)
'''

CRMSYNC_RUNNER = r'''
import asyncio, json, sys, time
sys.path.insert(0, sys.argv[5])
from connectors.base import PullRequest
from connectors.zoho.connector import ZohoConnector
from connectors.zoho.settings import ZohoSettings
url, client_id, client_secret, refresh_token = sys.argv[1:5]

async def main():
    settings = ZohoSettings(accounts_url=url, client_id=client_id, client_secret=client_secret,
                            refresh_token=refresh_token, concurrency=10)
    started = time.perf_counter()
    out = sys.stdout
    async with ZohoConnector("bench", settings) as zoho:
        await zoho.check()
        fields = [f.name for f in await zoho.describe("Accounts")]
        async for page in zoho.pull(PullRequest("Accounts", fields=fields)):
            for r in page.records:
                out.write(json.dumps({"type": "RECORD", "record": {"stream": "Accounts", "data": r.data}},
                                     ensure_ascii=False, default=str) + "\n")
    out.flush()
    return time.perf_counter() - started

seconds = asyncio.run(main())
print(json.dumps({"seconds": seconds, "failed": ""}), file=sys.stderr)
'''


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,2000,5000", help="Accounts in the org (default 1000,2000,5000)")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="latency of every API call (default 50)")
    parser.add_argument("--sides", default="airbyte,crmsync", help="which to run (default both; 'crmsync' alone needs no PyPI)")
    parser.add_argument("--peer-venv", type=Path, default=DEFAULT_PEER_VENV, help="where the Airbyte source is installed")
    args = parser.parse_args(argv)
    try:
        args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error("--sizes takes comma-separated whole numbers")
    if not args.sizes or min(args.sizes) < 1 or args.latency_ms < 0:
        parser.error("need sizes ≥ 1 and --latency-ms ≥ 0")
    args.sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    if not args.sides or set(args.sides) - {"airbyte", "crmsync"}:
        parser.error("--sides takes airbyte, crmsync or both")
    return args


def peer_python(venv: Path) -> Path:
    """The peer's interpreter, installing the pinned package into its own venv the first time."""
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import source_zoho_crm, airbyte_cdk"]
    if python.exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0:
        return python
    print(f"installing {PEER_PACKAGE} into {venv} (once) …", flush=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", PEER_PACKAGE], check=True)
    return python


def run_side(command: list[str]) -> dict:
    """Run one side; count the RECORD lines it writes and its distinct ids; its peak RSS from wait4."""
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=harness.ROOT)
    counts = {"records": 0, "ids": set(), "trace": ""}

    def drain() -> None:
        for raw in child.stdout:
            if b'"TRACE"' in raw[:40]:  # Airbyte reports a stream's failure as a TRACE message
                error = json.loads(raw).get("trace", {}).get("error") or {}
                counts["trace"] = counts["trace"] or str(error.get("message") or error.get("internal_message") or "")
            if b'"RECORD"' not in raw[:40]:
                continue
            counts["records"] += 1
            record_id = json.loads(raw)["record"]["data"].get("id")
            counts["ids"].add(str(record_id))

    reader = threading.Thread(target=drain)
    reader.start()
    err = child.stderr.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    reader.join()
    wall = time.perf_counter() - started
    tail = [line for line in err.splitlines() if line.startswith('{"seconds"')]
    inner = json.loads(tail[-1]) if tail else {"seconds": wall, "failed": f"exit {child.returncode}: {err[-300:]}"}
    return {"records": counts["records"], "distinct": len(counts["ids"]), "seconds": inner["seconds"], "wall": wall,
            "failed": counts["trace"] or inner["failed"] or ("" if child.returncode == 0 else f"exit {child.returncode}"),
            "rss_mb": usage.ru_maxrss / 1024}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    peer = peer_python(args.peer_venv) if "airbyte" in args.sides else None
    work = Path(tempfile.mkdtemp(prefix="crmsync-bench-vs-airbyte-"))
    (work / "airbyte_runner.py").write_text(AIRBYTE_RUNNER, encoding="utf-8")
    (work / "crmsync_runner.py").write_text(CRMSYNC_RUNNER, encoding="utf-8")
    creds = [DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_REFRESH_TOKEN]
    results: dict[int, dict[str, dict]] = {}
    limits = Limits(latency_ms=args.latency_ms, zoho_concurrency=10)
    for size in args.sizes:
        with harness.emulators(limits, ("zoho",)) as emus:
            zoho = emus["zoho"]
            zoho.admin.post("/seed", json={"count": size, "objects": ["Accounts"]}).raise_for_status()
            results[size] = {}
            commands = {
                "airbyte": [str(peer), str(work / "airbyte_runner.py"), zoho.url, *creds],
                "crmsync": [sys.executable, str(work / "crmsync_runner.py"), zoho.url, *creds, str(harness.ROOT)],
            }
            for side in args.sides:
                command = commands[side]
                zoho.admin.post("/calls/reset").raise_for_status()
                print(f"N={size}: {side} …", flush=True)
                outcome = run_side(command)
                outcome["calls"] = zoho.total_calls()
                results[size][side] = outcome
    print(f"{'N':>6} {'side':<8}{'delivered':>10}{'distinct':>9}{'calls':>7}{'pull s':>8}{'process s':>10}"
          f"{'records/s':>10}{'RSS MB':>8}  failure")
    figures: dict[str, object] = {"latency_ms": args.latency_ms, "peer": PEER_PACKAGE}
    for size, sides in results.items():
        for side, r in sides.items():
            r["rate"] = r["records"] / r["seconds"] if r["seconds"] else 0.0
            print(f"{size:>6} {side:<8}{r['records']:>10}{r['distinct']:>9}{r['calls']:>7}{r['seconds']:>8.2f}"
                  f"{r['wall']:>10.2f}{r['rate']:>10.0f}{r['rss_mb']:>8.0f}  {r['failed'][:90]}")
            figures[f"{side}_records_per_s_{size}"] = round(r["rate"], 1)
            figures[f"{side}_delivered_{size}"] = r["records"]
            figures[f"{side}_calls_{size}"] = r["calls"]
            figures[f"{side}_rss_mb_{size}"] = round(r["rss_mb"])
        if len(sides) == 2:
            ratio = sides["crmsync"]["rate"] / sides["airbyte"]["rate"] if sides["airbyte"]["rate"] else float("inf")
            figures[f"ratio_{size}"] = round(ratio, 2)
            print(f"{size:>6} crmsync/airbyte records/s: {ratio:.2f}")
    complete = all(s[side]["distinct"] == n and s[side]["records"] == n
                   for n, s in results.items() for side in s if side == "crmsync")
    figures["crmsync_complete"] = int(complete)
    if "airbyte" in args.sides:
        figures["airbyte_complete"] = int(all(s["airbyte"]["distinct"] == n for n, s in results.items()))
    print(harness.key_values(figures))
    return 0 if complete else 1


if __name__ == "__main__":
    raise SystemExit(main())
