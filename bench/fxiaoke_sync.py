"""Fxiaoke connector throughput against the local emulator, at a given latency and rate limit.

Phases: a full pull of N accounts (offsets, then _id keys past 10,000), an incremental
pull after users edited a share of them, and U concurrent updates (one call each: the
OpenAPI has no batch write). For each phase it prints records/s, calls per record, and
how close the run came to two lower bounds:

* gateway bound — the least time the documented limit allows: (⌈calls/limit⌉ − 1) ×
  period for a sliding window, or pages × latency for the sequential pulls if larger;
* pacing bound — the least time the connector's own pacing allows: it spreads calls at
  (limit × (1 − headroom) − burst) / period after a burst, because 30004 reads
  "秒频次超限" (per-second frequency) and the gateway's exact algorithm is not documented.

    .venv/bin/python bench/fxiaoke_sync.py --records 5000 --updates 500 --latency-ms 30 \
        --rate-limit 100 --period 10

Loopback only: the emulator runs in this process on 127.0.0.1.
"""
from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.base import PullRequest, WriteOp  # noqa: E402
from connectors.emulation.server import serve_in_thread  # noqa: E402
from connectors.fxiaoke.connector import FxiaokeConnector  # noqa: E402
from connectors.fxiaoke.emulator import EmulatorConfig, FxiaokeEmulator  # noqa: E402
from connectors.fxiaoke.settings import FxiaokeSettings  # noqa: E402

QUERY = "/cgi/crm/v2/data/query"
UPDATE = "/cgi/crm/v2/data/update"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=5000, help="accounts in the emulator (N)")
    parser.add_argument("--updates", type=int, default=500, help="records updated in the push phase (U)")
    parser.add_argument("--edited", type=float, default=0.1, help="share of records edited before the incremental pull")
    parser.add_argument("--latency-ms", type=float, default=30.0, help="emulator latency per call")
    parser.add_argument("--rate-limit", type=int, default=100, help="calls per interface per period (both sides)")
    parser.add_argument("--period", type=float, default=20.0, help="rate-limit window in seconds (documented: 20)")
    parser.add_argument("--auth", choices=["current", "legacy"], default="current")
    parser.add_argument("--write-concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    if args.records < 1 or args.updates < 0 or args.updates > args.records:
        parser.error("need 1 ≤ records and 0 ≤ updates ≤ records")
    if args.rate_limit < 10 or args.period <= 0 or args.latency_ms < 0 or not 0 <= args.edited <= 1:
        parser.error("need rate-limit ≥ 10, period > 0, latency-ms ≥ 0 and 0 ≤ edited ≤ 1")
    return args


def limit_floor(calls: int, limit: int, period: float) -> float:
    return max(0, math.ceil(calls / limit) - 1) * period


def pacing_floor(calls: int, settings: FxiaokeSettings) -> float:
    budget = settings.rate_limit_calls * (1 - settings.rate_limit_headroom)
    burst = settings.rate_limit_burst
    return max(0, calls - burst) * settings.rate_limit_period_seconds / (budget - burst)


def report(name: str, records: int, calls: int, seconds: float, gateway: float, pacing: float) -> dict[str, float]:
    rate = records / seconds if seconds else float("inf")
    per_record = calls / records if records else 0.0
    near_gateway = gateway / seconds if seconds else 0.0
    near_pacing = pacing / seconds if seconds else 0.0
    print(
        f"{name:<12} {records:>6} records {seconds:7.2f} s = {rate:8.1f} rec/s | {calls:>4} calls = "
        f"{per_record:.4f}/record | gateway bound {gateway:6.2f} s ({near_gateway:4.0%}), "
        f"pacing bound {pacing:6.2f} s ({near_pacing:4.0%})"
    )
    return {"records_per_s": rate, "calls_per_record": per_record, "gateway_closeness": near_gateway,
            "pacing_closeness": near_pacing}


async def run(args: argparse.Namespace, emu: FxiaokeEmulator, url: str) -> dict[str, dict[str, float]]:
    creds = emu.credentials()
    settings = FxiaokeSettings(
        host=url, app_id=creds["app_id"], app_secret=creds["app_secret"], permanent_code=creds["permanent_code"],
        auth_style=args.auth, open_user_id=creds["open_user_id"], rate_limit_calls=args.rate_limit,
        rate_limit_period_seconds=args.period, write_concurrency=args.write_concurrency,
    )
    results: dict[str, dict[str, float]] = {}
    latency = args.latency_ms / 1000
    async with FxiaokeConnector("bench", settings) as crm:
        await crm.check()

        def calls(path: str) -> int:
            return len(emu.arrivals.get(path, []))

        # 1. full pull
        before, started = calls(QUERY), time.perf_counter()
        pulled = [r async for page in crm.pull(PullRequest(object="AccountObj")) for r in page.records]
        seconds, used = time.perf_counter() - started, calls(QUERY) - before
        assert len({r.external_id for r in pulled}) == args.records, "full pull lost records"
        gateway = max(used * latency, limit_floor(used, args.rate_limit, args.period))
        pacing = max(used * latency, pacing_floor(used, settings))
        results["full_pull"] = report("full pull", len(pulled), used, seconds, gateway, pacing)

        # 2. incremental pull after users edited a share of the records
        since = max(r.modified_at for r in pulled) - timedelta(seconds=1)
        edited = [r.external_id for r in pulled[: int(len(pulled) * args.edited)]]
        for i, rid in enumerate(edited):
            emu.store.update("AccountObj", rid, {"remark": f"用户修改 {i}"}, user="1002", by_api=False)
        before, started = calls(QUERY), time.perf_counter()
        changed = [r async for page in crm.pull(PullRequest(object="AccountObj", since=since)) for r in page.records]
        seconds, used = time.perf_counter() - started, calls(QUERY) - before
        assert set(edited) <= {r.external_id for r in changed}, "incremental pull missed an edit"
        gateway = max(used * latency, limit_floor(used, args.rate_limit, args.period))
        pacing = max(used * latency, pacing_floor(used, settings))
        results["incremental"] = report("incremental", len(changed), used, seconds, gateway, pacing)

        # 3. concurrent updates inside the rate limit
        ops = [WriteOp(key=r.external_id, action="update", external_id=r.external_id,
                       data={"remark": f"同步更新 {i}", "tel": f"021-{60000000 + i}"})
               for i, r in enumerate(pulled[: args.updates])]
        if ops:
            before, started = calls(UPDATE), time.perf_counter()
            written = await crm.push("AccountObj", ops)
            seconds, used = time.perf_counter() - started, calls(UPDATE) - before
            assert all(w.ok for w in written), "an update failed"
            gateway = limit_floor(used, args.rate_limit, args.period)
            results["push"] = report("updates", len(ops), used, seconds, gateway, pacing_floor(used, settings))
        status = crm.status()
    throttled = sum(emu.throttled.values())
    worst = max((emu.max_calls_in_window(p, args.period) for p in (QUERY, UPDATE)), default=0)
    print(f"gateway view: most calls on one interface in any {args.period:g} s window = {worst} "
          f"(limit {args.rate_limit}); 30004 answered = {throttled}; token calls = {sum(emu.token_calls.values())}; "
          f"daily calls counted = {status['daily_quota']['used_today']}")
    results["gateway"] = {"max_in_window": worst, "throttled": throttled}
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    emu = FxiaokeEmulator(EmulatorConfig(seed=11, latency_ms=args.latency_ms, rate_limit=args.rate_limit,
                                         rate_period=args.period))
    started = time.perf_counter()
    emu.store.seed(args.records, ["AccountObj"])
    print(f"Fxiaoke bench: {args.records} accounts seeded in {time.perf_counter() - started:.1f} s; latency "
          f"{args.latency_ms:g} ms; limit {args.rate_limit} calls / {args.period:g} s per interface; "
          f"auth {args.auth}; {datetime.now().isoformat(timespec='seconds')}")
    with serve_in_thread(emu.app) as server:
        results = asyncio.run(run(args, emu, server.url))
    emu.push.close()
    figures = {
        "records": args.records,
        "updates": args.updates,
        "latency_ms": args.latency_ms,
        "limit": args.rate_limit,
        "period_s": args.period,
        "pull_records_per_s": round(results["full_pull"]["records_per_s"], 1),
        "pull_calls_per_record": round(results["full_pull"]["calls_per_record"], 4),
        "pull_gateway_closeness": round(results["full_pull"]["gateway_closeness"], 3),
        "pull_pacing_closeness": round(results["full_pull"]["pacing_closeness"], 3),
        "incremental_records_per_s": round(results["incremental"]["records_per_s"], 1),
        "incremental_calls_per_record": round(results["incremental"]["calls_per_record"], 4),
        "push_records_per_s": round(results.get("push", {}).get("records_per_s", 0.0), 2),
        "push_calls_per_record": round(results.get("push", {}).get("calls_per_record", 0.0), 4),
        "push_gateway_closeness": round(results.get("push", {}).get("gateway_closeness", 0.0), 3),
        "push_pacing_closeness": round(results.get("push", {}).get("pacing_closeness", 0.0), 3),
        "max_calls_in_window": results["gateway"]["max_in_window"],
        "throttled": results["gateway"]["throttled"],
    }
    print(" ".join(f"{k}={v}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
