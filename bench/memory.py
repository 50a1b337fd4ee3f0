"""Peak RSS of crmsync during an initial sync of N accounts, for growing N: memory must stay flat.

    .venv/bin/python bench/memory.py --records 1000000          # 10k, 100k, 1M
    .venv/bin/python bench/memory.py --sizes 2000,10000,50000

Each size runs bench/initial_sync.py in a fresh process (peak RSS only ever grows, so sizes
must not share one), accounts only, Fxiaoke → Zoho and the ERP, no latency and a rate
limit high enough not to matter: this measures memory, not speed. The emulators run in
processes of their own, so the figure is crmsync's (engine, connectors, state store on
SQLite) alone. Prints peak RSS per size, the growth per 10,000 records between the
smallest and the largest size, and a last line of key=value figures. Target: ≤ 200 MB at
one million records.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

HERE = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000,
                        help="largest size; the sizes are 10k, 100k, 1M up to it (default 1000000)")
    parser.add_argument("--sizes", default=None, help="comma-separated sizes instead (e.g. 2000,10000,50000)")
    parser.add_argument("--no-erp", action="store_true", help="Fxiaoke to Zoho only")
    parser.add_argument("--state-url", default=None, help="state database server (default: SQLite in a temp dir)")
    args = parser.parse_args(argv)
    if args.sizes:
        try:
            args.sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
        except ValueError:
            parser.error("--sizes takes comma-separated whole numbers")
    else:
        args.sizes = [n for n in (10_000, 100_000, 1_000_000) if n <= args.records] or [args.records]
        if args.records not in args.sizes:
            args.sizes.append(args.records)
    if min(args.sizes) < 1:
        parser.error("sizes must be positive")
    return args


def one(size: int, args: argparse.Namespace) -> dict[str, str]:
    command = [sys.executable, str(HERE / "initial_sync.py"), "--records", str(size), "--entities", "account",
               "--latency-ms", "0", "--fx-rate-limit", "1000000", "--fx-period", "1", "--zoho-concurrency", "25"]
    if args.no_erp:
        command.append("--no-erp")
    if args.state_url:
        command += ["--state-url", args.state_url]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, preexec_fn=harness.die_with_parent)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if not lines or "peak_rss_mb=" not in lines[-1]:
        raise SystemExit(f"initial_sync.py --records {size} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    figures = harness.parse_key_values(lines[-1])
    figures["run_s"] = f"{time.perf_counter() - started:.0f}"
    return figures


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = {}
    for size in args.sizes:
        print(f"initial sync of {size} accounts …", flush=True)
        results[size] = one(size, args)
    print(f"{'accounts':>10}{'peak RSS MB':>13}{'sync s':>9}{'records/s':>11}{'complete':>10}")
    for size, f in results.items():
        print(f"{size:>10}{f['peak_rss_mb']:>13}{f['seconds']:>9}{f['records_per_s']:>11}{f['complete']:>10}")
    small, large = args.sizes[0], args.sizes[-1]
    rss_small, rss_large = float(results[small]["peak_rss_mb"]), float(results[large]["peak_rss_mb"])
    slope = (rss_large - rss_small) / (large - small) * 10_000 if large > small else 0.0
    print(f"growth: {slope:.2f} MB per 10,000 accounts between {small} and {large}; "
          f"at that rate 1,000,000 accounts would peak near {rss_small + slope * (1_000_000 - small) / 10_000:.0f} MB")
    figures: dict[str, object] = {f"rss_mb_{size}": f["peak_rss_mb"] for size, f in results.items()}
    figures.update({
        "largest": large,
        "mb_per_10k": round(slope, 2),
        "projected_rss_mb_1m": round(rss_small + slope * (1_000_000 - small) / 10_000),
        "complete": int(all(f["complete"] == "1" for f in results.values())),
    })
    print(harness.key_values(figures))
    return 0 if figures["complete"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
