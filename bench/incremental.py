"""Incremental passes after an initial sync: the cost must follow the changes, not the size.

    .venv/bin/python bench/incremental.py                       # sizes 1000 and 100000
    .venv/bin/python bench/incremental.py --sizes 1000,20000 --changes 100 --latency-ms 20

For each size S: Fxiaoke holds S accounts; a first sync copies them to Zoho and the ERP;
one pass reads back the echoes of crmsync's own writes (Zoho and the ERP report every
record just created as changed: that pass is shown, not judged); a no-op pass right
after it ("recent": it still re-reads the overlap window before the newest change, which
holds crmsync's own last writes — shown, not judged); once the overlap has passed, one
pass that reads that window a last time and so settles it (shown); then a no-op pass (nothing changed anywhere) and a pass after users
edited C accounts in Fxiaoke. All passes run in one process, like `crmsync serve`,
against the emulators in their own processes.

Prints, per size and pass: API calls per system, records written, wall time; then the
ratios t(largest)/t(smallest) of the no-op and the change pass. Targets: a no-op pass
makes at most 2 calls per entity per system, and t(100k)/t(1k) ≤ 1.5. The last line
holds the figures as key=value pairs.
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from harness import Limits


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,100000", help="comma-separated account counts (default 1000,100000)")
    parser.add_argument("--changes", type=int, default=100, help="accounts users edit before the change pass")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="latency of every API call (default 20)")
    parser.add_argument("--fx-rate-limit", type=int, default=100, help="Fxiaoke calls per interface per period")
    parser.add_argument("--fx-period", type=float, default=2.0,
                        help="Fxiaoke window in seconds (documented 20; default 2 so the first sync of 100k takes minutes, not an hour)")
    parser.add_argument("--overlap", type=float, default=120.0,
                        help="sync.overlap in seconds (default 120 = the product's 2m): each pull re-reads this window "
                             "before the newest change it has seen")
    parser.add_argument("--settle", type=float, default=None,
                        help="seconds between reading the echoes and the settling pass before the judged no-op (default: the "
                             "overlap + the longest connector look-back, e.g. Kingdee's overlap_seconds, + 1 s; "
                             "the 'recent' pass right after the echoes is shown either way)")
    parser.add_argument("--state-url", default=None, help="state database server (default: SQLite in a temp dir)")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile crmsync's process during the no-op and change passes of each size; print the top functions")
    parser.add_argument("--top", type=int, default=25, help="functions shown per profile (default 25)")
    args = parser.parse_args(argv)
    try:
        args.sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    except ValueError:
        parser.error("--sizes takes comma-separated whole numbers, e.g. 1000,20000")
    if not args.sizes or min(args.sizes) < 1 or args.changes < 1 or args.changes > min(args.sizes):
        parser.error("need sizes ≥ 1 and 1 ≤ --changes ≤ the smallest size")
    if args.latency_ms < 0 or args.fx_rate_limit < 10 or args.fx_period <= 0:
        parser.error("need --latency-ms ≥ 0, --fx-rate-limit ≥ 10 and --fx-period > 0")
    return args


async def measured(engine, emus: dict[str, harness.Emulator], profile: int = 0) -> dict:
    """One pass: wall time, calls, reads and writes, CPU per process; with ``profile`` > 0 also
    crmsync's cProfile top ``profile`` functions by own time."""
    profiler = cProfile.Profile() if profile else None
    before = {k: e.total_calls() for k, e in emus.items()}
    cpu_before = {k: e.cpu_seconds() for k, e in emus.items()}
    started, own_cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    reports = await engine.run_all()
    if profiler:
        profiler.disable()
    seconds, own_cpu = time.perf_counter() - started, time.process_time() - own_cpu
    # CPU per process over the pass: crmsync's own (this process) and each emulator's, to tell which grows with size.
    cpu = {"crmsync": own_cpu, **{k: e.cpu_seconds() - cpu_before[k] for k, e in emus.items()}}
    calls = {k: e.total_calls() - before[k] for k, e in emus.items()}
    writes = sum(r.total("created") + r.total("updated") + r.total("deleted") for r in reports)
    errors = [e for r in reports for e in r.errors]
    # The ERP's system is named "erp" in the bench configuration.
    read_by = {k: sum(r.counts[n]["read"] for r in reports for n in {k, "erp" if k == "kingdee" else k} if n in r.counts)
               for k in emus}
    text = None
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(profile)
        text = out.getvalue()
    return {"seconds": seconds, "cpu": cpu, "calls": calls, "writes": writes, "errors": errors, "read": sum(r.total("read") for r in reports),
            "read_by": read_by, "profile": text}


def fxiaoke_ids(state_url: str, count: int, size: int) -> list[str]:
    """``count`` linked Fxiaoke accounts spread over the whole set."""
    from sqlalchemy import create_engine, select

    from sync_engine.state.models import Link

    engine = create_engine(state_url)
    try:
        with engine.connect() as conn:
            ids = list(conn.scalars(select(Link.external_id).where(Link.system == "fxiaoke").order_by(Link.id)))
    finally:
        engine.dispose()
    step = max(1, len(ids) // count)
    return ids[::step][:count]


def visibility_lag(rt) -> float:
    """The longest look-back a connector adds for late commits (Kingdee's overlap_seconds), in seconds."""
    from sync_engine.reconcile import readable_systems

    lags = [rt.connector(system).visibility_lag(rt.mappings.mapper(rt.flow(name).entity, system).object).total_seconds()
            for name in rt.flows_in_order() for system in readable_systems(rt, name)]
    return max(lags, default=0.0)


async def passes(config: Path, emus: dict[str, harness.Emulator], state_url: str, size: int, changes: int,
                 settle: float | None, overlap: float, profile: int = 0) -> dict:
    """initial → echo → recent no-op → (the overlap later) no-op → users edit → change → after (its echoes)."""
    rt, engine = harness.open_runtime(config)
    out = {}
    async with rt:
        out["initial"] = await measured(engine, emus)
        out["echo"] = await measured(engine, emus)
        echoed = time.monotonic()
        await asyncio.sleep(1.5)  # later than the last write's second
        out["recent"] = await measured(engine, emus)
        # A record becomes visible within the overlap of being written (what sync.overlap means); once that
        # long has passed since the echoes were read, their instant is settled and no pull re-reads it.
        # The first pass after that still reads the window (it is what settles it); the next is the no-op judged.
        # A connector that looks back further for late commits (Kingdee) is waited out as well.
        settle = overlap + visibility_lag(rt) + 1.0 if settle is None else settle
        out["settle_s"] = settle
        await asyncio.sleep(max(0.0, echoed + settle - time.monotonic()))
        out["settle"] = await measured(engine, emus)
        out["noop"] = await measured(engine, emus, profile)
        ids = fxiaoke_ids(state_url, changes, size)
        for i, rid in enumerate(ids):
            emus["fxiaoke"].admin.patch(f"/records/AccountObj/{rid}", json={"tel": f"0755-{80000000 + i}"}).raise_for_status()
        out["change"] = await measured(engine, emus, profile)
        out["changed"] = len(ids)
        await asyncio.sleep(1.5)  # later than the last write's second
        out["after"] = await measured(engine, emus)  # the change pass's own echoes: judged like a no-op
    rt.store.engine.dispose()
    return out


def run_size(args: argparse.Namespace, size: int) -> dict:
    limits = Limits(latency_ms=args.latency_ms, fx_rate_limit=args.fx_rate_limit, fx_period=args.fx_period)
    with harness.emulators(limits, fx_seed={"account": size}) as emus, harness.state_database(args.state_url) as state_url:
        config = harness.write_config(harness.config_text({k: e.url for k, e in emus.items()}, state_url, ["account"],
                                                          limits, overlap=f"{args.overlap:g}s"))
        result = asyncio.run(passes(config, emus, state_url, size, args.changes, args.settle, args.overlap,
                                    args.top if args.profile else 0))
        in_zoho = emus["zoho"].admin.get("/stats").json()["records"]["Accounts"]
    result["in_zoho"] = in_zoho
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = {}
    for size in args.sizes:
        print(f"size {size}: first sync …", flush=True)
        results[size] = run_size(args, size)
    print(f"{'size':>8} {'pass':<8}{'seconds':>9}{'read':>8}{'writes':>8}   calls per system (records read)")
    for size, r in results.items():
        for name in ("initial", "echo", "recent", "settle", "noop", "change", "after"):
            p = r[name]
            calls = ", ".join(f"{k} {v} ({p['read_by'].get(k, 0)} read)" for k, v in p["calls"].items())
            cpu = ", ".join(f"{k} {v:.2f}" for k, v in p["cpu"].items())
            print(f"{size:>8} {name:<8}{p['seconds']:>9.2f}{p['read']:>8}{p['writes']:>8}   {calls}   cpu s: {cpu}"
                  + (f"   errors: {p['errors'][:2]}" if p["errors"] else ""))
    for size, r in results.items():
        for name in ("noop", "change"):
            if r[name]["profile"]:
                print(f"\nprofile of crmsync's process, size {size}, {name} pass (top {args.top} by own time):")
                print(r[name]["profile"].split("\n\n", 1)[-1].rstrip())
    small, large = results[args.sizes[0]], results[args.sizes[-1]]
    noop_ratio = large["noop"]["seconds"] / small["noop"]["seconds"]
    change_ratio = large["change"]["seconds"] / small["change"]["seconds"]
    worst_noop_calls = max(max(r[p]["calls"].values()) for r in results.values() for p in ("noop", "after"))
    print(f"t({args.sizes[-1]})/t({args.sizes[0]}): no-op {noop_ratio:.2f}, {args.changes} changes {change_ratio:.2f}; "
          f"most calls by one system in a no-op pass: {worst_noop_calls} (one entity)")
    complete = all(r["in_zoho"] == size and r["change"]["writes"] == 2 * r["changed"] and not r["noop"]["writes"]
                   for size, r in results.items())
    figures: dict[str, object] = {"sizes": ",".join(map(str, args.sizes)), "changes": args.changes,
                                  "latency_ms": args.latency_ms, "overlap_s": args.overlap}
    for size, r in results.items():
        figures[f"initial_s_{size}"] = round(r["initial"]["seconds"], 2)
        figures[f"recent_s_{size}"] = round(r["recent"]["seconds"], 3)
        figures[f"recent_calls_{size}"] = sum(r["recent"]["calls"].values())
        figures[f"noop_s_{size}"] = round(r["noop"]["seconds"], 3)
        figures[f"noop_calls_{size}"] = sum(r["noop"]["calls"].values())
        figures[f"noop_writes_{size}"] = r["noop"]["writes"]
        for k, v in r["noop"]["cpu"].items():
            figures[f"noop_cpu_{k}_{size}"] = round(v, 3)
        for k, v in r["change"]["cpu"].items():
            figures[f"change_cpu_{k}_{size}"] = round(v, 3)
        figures[f"noop_read_{size}"] = r["noop"]["read"]
        figures[f"change_s_{size}"] = round(r["change"]["seconds"], 3)
        figures[f"change_calls_{size}"] = sum(r["change"]["calls"].values())
        figures[f"change_writes_{size}"] = r["change"]["writes"]
    figures.update({
        "noop_max_calls_per_system": worst_noop_calls,
        "noop_t_ratio": round(noop_ratio, 2),
        "change_t_ratio": round(change_ratio, 2),
        "complete": int(complete),
        "peak_rss_mb": round(harness.peak_rss_mb()),
    })
    print(harness.key_values(figures))
    return 0 if complete else 1


if __name__ == "__main__":
    raise SystemExit(main())
