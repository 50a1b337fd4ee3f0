"""Initial sync: partners, accounts, contacts and deals from Fxiaoke to Zoho and the ERP, within the documented limits.

    .venv/bin/python bench/initial_sync.py --records 2000 --latency-ms 50
    .venv/bin/python bench/initial_sync.py --records 10000 --latency-ms 50 --fx-rate-limit 100 --fx-period 2

The three emulators run in their own processes with the documented limits enforced and
every call delayed by L ms: Fxiaoke 100 records a page and R calls per interface per P
seconds (100 per 20 s documented; scale P down for a bench), no batch create; Zoho 200 a
page, 100 a write, C calls in flight; Kingdee BatchSave capped at the connector's batch.
Fxiaoke holds N accounts and contacts, N/10 partners and N/2 deals (contacts and deals
point at accounts, some accounts at partners); Zoho and the ERP start empty. One
`crmsync sync` pass (all four flows, in reference order) runs in this process.

Prints records/s; API calls made per system against the theoretical minimum (every
system read once per object — the source in ⌈n/page⌉ pages, an empty one in one call —
⌈n/batch⌉ writes into each target, one login each); the wall time against the lower
bound the limits and the latency allow (the largest of: Fxiaoke's window for the query
calls, the longest chain of dependent pages, Zoho's writes C at a time, the ERP's writes
at the connector's concurrency); and peak RSS. The last line holds the figures as
key=value pairs.
"""
from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from harness import ENTITIES, FX_PAGE, ZOHO_BATCH, Limits, ceil_div


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=2000, help="Fxiaoke accounts N (plus N contacts, N/10 partners, N/2 deals)")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="latency of every API call (default 50)")
    parser.add_argument("--fx-rate-limit", type=int, default=100, help="Fxiaoke calls per interface per period (default 100)")
    parser.add_argument("--fx-period", type=float, default=20.0, help="Fxiaoke rate-limit window in seconds (documented: 20)")
    parser.add_argument("--fx-rate-limit-mode", choices=("window", "paced"), default="window",
                        help="the Fxiaoke connector's rate_limit_mode (default window, the product's default)")
    parser.add_argument("--zoho-concurrency", type=int, default=10, help="Zoho calls in flight (Standard edition: 10)")
    parser.add_argument("--zoho-write-parallelism", type=int, default=None,
                        help="the Zoho connector's write_parallelism (default: the product's, 4 of the concurrency)")
    parser.add_argument("--kingdee-batch", type=int, default=harness.KINGDEE_BATCH, help="BatchSave models per call")
    parser.add_argument("--entities", default="partner,account,contact,deal", help="comma-separated subset")
    parser.add_argument("--no-erp", action="store_true", help="Fxiaoke to Zoho only")
    parser.add_argument("--state-url", default=None, help="state database server (default: SQLite in a temp dir)")
    args = parser.parse_args(argv)
    args.entities = [e.strip() for e in args.entities.split(",") if e.strip()]
    unknown = set(args.entities) - set(ENTITIES)
    if unknown:
        parser.error(f"unknown entities {sorted(unknown)}; known: {', '.join(ENTITIES)}")
    if args.records < 1 or args.latency_ms < 0 or args.fx_rate_limit < 10 or args.fx_period <= 0:
        parser.error("need --records ≥ 1, --latency-ms ≥ 0, --fx-rate-limit ≥ 10 and --fx-period > 0")
    if not 1 <= args.zoho_concurrency <= 25 or not 1 <= args.kingdee_batch <= 1000:
        parser.error("need 1 ≤ --zoho-concurrency ≤ 25 and 1 ≤ --kingdee-batch ≤ 1000")
    args.entities = [e for e in ENTITIES if e in args.entities]  # reference order
    if args.zoho_write_parallelism is not None and not 1 <= args.zoho_write_parallelism <= args.zoho_concurrency:
        parser.error("need 1 ≤ --zoho-write-parallelism ≤ --zoho-concurrency")
    return args


def minimum_calls(counts: dict[str, int], limits: Limits, erp: bool) -> dict[str, int]:
    """The fewest calls a first sync can make: read each object (an empty read is one call),
    write each target in full batches, log in once per system."""
    fx = 1 + sum(max(1, ceil_div(n, FX_PAGE)) for n in counts.values())
    zoho = 1 + len(counts) + sum(ceil_div(n, ZOHO_BATCH) for n in counts.values())
    out = {"fxiaoke": fx, "zoho": zoho}
    if erp:
        erp_entities = {e: n for e, n in counts.items() if ENTITIES[e][2]}
        out["kingdee"] = 1 + len(erp_entities) + sum(ceil_div(n, limits.kingdee_batch) for n in erp_entities.values())
    return out


def lower_bound(counts: dict[str, int], limits: Limits, erp: bool) -> dict[str, float]:
    """Seconds below which no client could finish, whatever its design."""
    lat = limits.latency_ms / 1000
    queries = sum(max(1, ceil_div(n, FX_PAGE)) for n in counts.values())
    bounds = {
        # Fxiaoke admits fx_rate_limit query calls per window: the last window starts after the others.
        "fxiaoke_window": max(0, math.ceil(queries / limits.fx_rate_limit) - 1) * limits.fx_period + lat,
        # Each object's pages follow one another (the next page starts after the last id).
        "paging_chain": max(ceil_div(n, FX_PAGE) for n in counts.values()) * lat,
        "zoho_writes": math.ceil(sum(ceil_div(n, ZOHO_BATCH) for n in counts.values()) / limits.zoho_concurrency) * lat,
    }
    if erp:
        writes = sum(ceil_div(n, limits.kingdee_batch) for e, n in counts.items() if ENTITIES[e][2])
        bounds["erp_writes"] = math.ceil(writes / limits.kingdee_concurrency) * lat
    return bounds


async def sync_once(config_path: Path):
    rt, engine = harness.open_runtime(config_path)
    async with rt:
        started, cpu = time.perf_counter(), time.process_time()
        reports = await engine.run_all()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    rt.store.engine.dispose()
    return reports, seconds, cpu


def run(args: argparse.Namespace) -> dict[str, float | int | str]:
    limits = Limits(latency_ms=args.latency_ms, fx_rate_limit=args.fx_rate_limit, fx_period=args.fx_period,
                    fx_rate_limit_mode=args.fx_rate_limit_mode, zoho_concurrency=args.zoho_concurrency,
                    zoho_write_parallelism=args.zoho_write_parallelism, kingdee_batch=args.kingdee_batch)
    erp = not args.no_erp and any(ENTITIES[e][2] for e in args.entities)
    kinds = ("fxiaoke", "zoho", "kingdee") if erp else ("fxiaoke", "zoho")
    counts = harness.plan_counts(args.records, args.entities)
    started = time.perf_counter()
    with harness.emulators(limits, kinds, fx_seed=counts) as emus, harness.state_database(args.state_url) as state_url:
        print(f"emulators up, Fxiaoke seeded with {counts}, in {time.perf_counter() - started:.1f} s", flush=True)
        before = {k: e.calls() for k, e in emus.items()}
        config = harness.write_config(harness.config_text({k: e.url for k, e in emus.items()}, state_url,
                                                          args.entities, limits, erp=erp))
        reports, seconds, cpu = asyncio.run(sync_once(config))
        calls = {k: harness.diff_calls(e.calls(), before[k]) for k, e in emus.items()}
        zoho_stats = emus["zoho"].admin.get("/stats").json()
        fx_state = emus["fxiaoke"].admin.get("/fxiaoke/state").json()
        why = harness.dead_letters(state_url)
        left = harness.left_over(state_url)
    errors = [e for r in reports for e in r.errors]
    created = {s: sum(r.counts.get(s, {}).get("created", 0) for r in reports) for s in ("zoho", "erp")}
    in_zoho = sum(zoho_stats["records"].get(ENTITIES[e][1], 0) for e in args.entities)
    total = sum(counts.values())
    erp_total = sum(n for e, n in counts.items() if ENTITIES[e][2]) if erp else 0
    dead = sum(r.total("dead_letters") for r in reports)

    minimum = minimum_calls(counts, limits, erp)
    made = {k: sum(v.values()) for k, v in calls.items()}
    bounds = lower_bound(counts, limits, erp)
    floor = max(bounds.values())
    print(f"{'system':<10}{'calls':>8}{'minimum':>9}{'ratio':>8}   by route")
    for system, n in made.items():
        routes = ", ".join(f"{harness.route_label(r)}={c}" for r, c in sorted(calls[system].items(), key=lambda kv: -kv[1])[:6])
        print(f"{system:<10}{n:>8}{minimum[system]:>9}{n / minimum[system]:>8.3f}   {routes}")
    print("lower bounds (s): " + ", ".join(f"{k} {v:.2f}" for k, v in bounds.items()))
    print(f"crmsync's CPU {cpu:.2f} s ({cpu / seconds:.0%} of the wall time; {cpu / total * 1e3:.2f} ms a record)")
    print(f"wall {seconds:.2f} s for {total} records = {total / seconds:.0f} records/s; "
          + (f"{seconds / floor:.2f}x the lower bound {floor:.2f} s" if floor else "no lower bound without latency"))
    print(f"written: Zoho {in_zoho}/{total}, ERP {created['erp']}/{erp_total}; dead letters {dead}; "
          f"Fxiaoke throttled {sum(fx_state.get('throttled', {}).values())}, Zoho throttled {zoho_stats['throttled']}")
    if errors:
        print("errors: " + "; ".join(errors[:5]))
    if why:
        print("dead letters: " + "; ".join(why))
    if any(left.values()):
        print("left for the next pass: " + "; ".join(f"{kind} {', '.join(f'{k}={n}' for k, n in rows.items())}"
                                                    for kind, rows in left.items() if rows))
    return {
        "records": total,
        "accounts": counts.get("account", 0),
        "latency_ms": args.latency_ms,
        "fx_limit": f"{args.fx_rate_limit}/{args.fx_period:g}s",
        "fx_mode": args.fx_rate_limit_mode,
        "zoho_concurrency": args.zoho_concurrency,
        "zoho_write_parallelism": args.zoho_write_parallelism or "default",
        "seconds": round(seconds, 2),
        "records_per_s": round(total / seconds, 1),
        "cpu_s": round(cpu, 2),
        "calls": sum(made.values()),
        "calls_min": sum(minimum.values()),
        "calls_ratio": round(sum(made.values()) / sum(minimum.values()), 3),
        **{f"calls_ratio_{k}": round(made[k] / minimum[k], 3) for k in made},
        "wall_floor_s": round(floor, 2),
        "wall_ratio": round(seconds / floor, 2) if floor else 0,
        "written_zoho": in_zoho,
        "written_erp": created["erp"],
        "complete": int(in_zoho == total and created["erp"] == erp_total and not dead),
        "dead_letters": dead,
        "errors": len(errors),
        "peak_rss_mb": round(harness.peak_rss_mb()),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    figures = run(args)
    print(harness.key_values(figures))
    return 0 if figures["complete"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
