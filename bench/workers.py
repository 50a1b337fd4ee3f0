"""Workers: 1 vs 2 vs 4 `crmsync worker` processes sharing the PostgreSQL job queue.

    .venv/bin/python bench/workers.py --jobs 2000 --latency-ms 20
    .venv/bin/python bench/workers.py --jobs 300 --processes 1,2 --url postgresql+psycopg://postgres@127.0.0.1:5432/postgres

Work where the APIs are not the bound: the Fxiaoke and Zoho emulators (own processes)
allow far more calls than the workers make and answer after L ms (Fxiaoke's token endpoint keeps its
10 calls a minute: the processes share one token through the state database). Setup: Fxiaoke holds J
accounts, a first sync links them to Zoho (state in a throwaway PostgreSQL database).
Then, for each worker count P: users edit all J accounts in Fxiaoke, J webhook jobs
(one record each, as the receiver enqueues them) go into the queue in one transaction,
P `crmsync worker --workers 1` processes — already started and waiting — drain it, and
every edit is checked in Zoho. Prints jobs/s and records/s per P and the speed-up over
one process; the target is 4 processes ≥ 3 × one. The last line holds the figures as
key=value pairs. The machine's cores bound the speed-up: the workers, the emulators and
PostgreSQL share them.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from harness import Limits


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000, help="webhook jobs per round, one account each (default 2000)")
    parser.add_argument("--processes", default="1,2,4", help="worker process counts to compare (default 1,2,4)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="latency of every API call (default 20)")
    parser.add_argument("--url", default=os.environ.get("CRMSYNC_TEST_DATABASE_URL", harness.DEFAULT_PG),
                        help="loopback PostgreSQL server; a throwaway database is created on it")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds one round may take")
    args = parser.parse_args(argv)
    try:
        args.processes = [int(p) for p in args.processes.split(",") if p.strip()]
    except ValueError:
        parser.error("--processes takes comma-separated whole numbers, e.g. 1,2,4")
    if args.jobs < 1 or not args.processes or min(args.processes) < 1 or max(args.processes) > 16:
        parser.error("need --jobs ≥ 1 and 1 ≤ processes ≤ 16")
    if not args.url.startswith("postgresql"):
        parser.error("workers share the queue through PostgreSQL: give a postgresql+psycopg:// server URL")
    return args


async def first_sync(config: Path) -> list[tuple[str, str]]:
    """Link every account; returns (Fxiaoke id, canonical id) pairs."""
    from sqlalchemy import select

    from sync_engine.state.models import Link

    rt, engine = harness.open_runtime(config)
    async with rt:
        reports = await engine.run_all()
    errors = [e for r in reports for e in r.errors]
    if errors:
        raise SystemExit(f"the first sync failed: {errors[:3]}")
    with rt.store.read() as session:
        pairs = [(ext, cid) for ext, cid in session.execute(
            select(Link.external_id, Link.canonical_id).where(Link.system == "fxiaoke").order_by(Link.id))]
    rt.store.engine.dispose()
    return pairs


def enqueue(store, pairs: list[tuple[str, str]]) -> None:
    """The jobs `crmsync serve` enqueues for single-record deliveries, all in one transaction."""
    from sync_engine.service import WEBHOOK_PRIORITY
    from sync_engine.state.queue import JobQueue

    queue = JobQueue(store)
    with store.write() as session:
        for ext, canonical in pairs:
            queue.enqueue("webhook", {"system": "fxiaoke", "hints": [{"object": "AccountObj", "ids": [ext], "event": "update"}]},
                          lock_key=f"record:account:{canonical}", priority=WEBHOOK_PRIORITY, session=session)


def queue_state(store) -> tuple[int, int, int]:
    """(waiting or running, done, failed or dead)."""
    from sqlalchemy import func, select

    from sync_engine.state.models.jobs import Job

    with store.read() as session:
        rows = dict(session.execute(select(Job.status, func.count()).group_by(Job.status)).all())
    by = {str(getattr(k, "value", k)): v for k, v in rows.items()}
    return (by.get("queued", 0) + by.get("running", 0), by.get("succeeded", 0) + by.get("done", 0),
            by.get("failed", 0) + by.get("dead", 0))


def start_workers(config: Path, count: int) -> list[subprocess.Popen]:
    workers = []
    for _ in range(count):
        workers.append(subprocess.Popen([*harness.CLI, "worker", str(config), "--workers", "1"], cwd=harness.ROOT,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
    for worker in workers:  # each prints one line once its engine is open and it starts claiming
        line = worker.stdout.readline()
        if "worker running" not in line:
            stop_workers(workers)
            raise SystemExit(f"a worker did not start: {line!r}")
    return workers


def stop_workers(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc; 0 where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, every core and process (/proc/stat)."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return 0.0, 0.0
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(values) - idle) / tick, sum(values) / tick


def one_round(args, config: Path, store, emus, pairs, processes: int, round_no: int) -> dict[str, float]:
    fx, zoho = emus["fxiaoke"], emus["zoho"]
    values = {}
    for i, (ext, _) in enumerate(pairs):
        value = f"0{round_no}-{70000000 + i}"
        fx.admin.patch(f"/records/AccountObj/{ext}", json={"tel": value}).raise_for_status()
        values[ext] = value
    done_before = queue_state(store)[1]
    workers = start_workers(config, processes)
    try:
        calls_before = {k: e.calls() for k, e in emus.items()}
        # Where the CPU goes: the workers, the emulators, and the machine as a whole (PostgreSQL and
        # everything else running on it included) — on a machine with few cores that is the bound.
        cpu_before = {"workers": sum(cpu_seconds(w.pid) for w in workers),
                      "emulators": sum(cpu_seconds(e.process.pid) for e in emus.values())}
        busy_before = machine_busy()
        started = time.perf_counter()
        enqueue(store, pairs)
        deadline = started + args.timeout
        while True:
            waiting, done, failed = queue_state(store)
            if not waiting or time.perf_counter() > deadline:
                break
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        busy_after = machine_busy()
        cpu = {"workers": sum(cpu_seconds(w.pid) for w in workers) - cpu_before["workers"],
               "emulators": sum(cpu_seconds(e.process.pid) for e in emus.values()) - cpu_before["emulators"]}
        routes = {f"{k} {route}": n - calls_before[k].get(route, 0)
                  for k, e in emus.items() for route, n in e.calls().items()}
    finally:
        stop_workers(workers)
    phones = {r.get("Phone") for r in zoho.admin.get("/records/Accounts").json()}
    arrived = sum(1 for v in values.values() if v in phones)
    jobs = max(1, done - done_before)
    elapsed = busy_after[1] - busy_before[1]
    return {"seconds": seconds, "jobs": done - done_before, "failed": failed, "arrived": arrived,
            "calls": sum(routes.values()), "routes": {r: n for r, n in routes.items() if n}, "waiting": waiting,
            "worker_cpu_ms": 1000 * cpu["workers"] / jobs, "emulator_cpu_ms": 1000 * cpu["emulators"] / jobs,
            "machine_busy": (busy_after[0] - busy_before[0]) / elapsed if elapsed > 0 else 0.0}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    limits = Limits(latency_ms=args.latency_ms, fx_rate_limit=1_000_000, fx_period=1, zoho_concurrency=25)
    results = {}
    with harness.emulators(limits, ("fxiaoke", "zoho"), fx_seed={"account": args.jobs}) as emus, \
            harness.state_database(args.url) as state_url:
        # Fxiaoke's token endpoint keeps its documented 10 calls a minute. Every round starts P fresh
        # worker processes; when each fetched its own token, rounds of 2 and 4 processes less than a
        # minute apart were throttled there (19 token calls in one 4-process round, the machine idle 74 %).
        # The processes now share the token the first sync left in the state database: no token calls.
        config = harness.write_config(harness.config_text({k: e.url for k, e in emus.items()}, state_url, ["account"],
                                                          limits, erp=False, webhooks=True))
        started = time.perf_counter()
        pairs = asyncio.run(first_sync(config))
        print(f"first sync of {len(pairs)} accounts in {time.perf_counter() - started:.1f} s", flush=True)
        from sync_engine.state.db import StateStore

        store = StateStore.open(state_url)
        for round_no, processes in enumerate(args.processes, 1):
            results[processes] = one_round(args, config, store, emus, pairs, processes, round_no)
            r = results[processes]
            print(f"{processes} process(es): {r['jobs']} jobs in {r['seconds']:.2f} s", flush=True)
        store.engine.dispose()
    base = results[args.processes[0]]
    print(f"{'processes':>10}{'seconds':>9}{'jobs/s':>9}{'records/s':>11}{'speed-up':>10}{'in Zoho':>9}{'failed':>8}{'calls':>8}"
          f"{'worker CPU ms/job':>19}{'emulator CPU ms/job':>21}{'machine busy':>14}")
    figures: dict[str, object] = {"jobs": args.jobs, "latency_ms": args.latency_ms, "cores": os.cpu_count()}
    for processes, r in results.items():
        speed_up = base["seconds"] / r["seconds"]
        print(f"{processes:>10}{r['seconds']:>9.2f}{r['jobs'] / r['seconds']:>9.1f}{r['arrived'] / r['seconds']:>11.1f}"
              f"{speed_up:>10.2f}{r['arrived']:>9}{r['failed']:>8}{r['calls']:>8}"
              f"{r['worker_cpu_ms']:>19.1f}{r['emulator_cpu_ms']:>21.1f}{r['machine_busy']:>13.0%}")
        figures[f"jobs_per_s_{processes}"] = round(r["jobs"] / r["seconds"], 1)
        figures[f"records_per_s_{processes}"] = round(r["arrived"] / r["seconds"], 1)
        figures[f"speedup_{processes}"] = round(speed_up, 2)
        figures[f"worker_cpu_ms_per_job_{processes}"] = round(r["worker_cpu_ms"], 1)
        figures[f"emulator_cpu_ms_per_job_{processes}"] = round(r["emulator_cpu_ms"], 1)
        figures[f"machine_busy_{processes}"] = round(r["machine_busy"], 2)
    # The calls by route show where a round made more than it needs (a token call, a retry, a page read
    # twice): the minimum is no token call (the first sync's tokens are shared), one Fxiaoke read per
    # job, and Zoho's reads and writes in batches.
    print("calls by route:")
    for processes, r in results.items():
        print(f"  {processes} process(es): " + ", ".join(f"{route} {n}" for route, n in sorted(r["routes"].items())))
    complete = all(r["arrived"] == args.jobs and r["jobs"] == args.jobs and not r["waiting"] for r in results.values())
    figures["complete"] = int(complete)
    print(harness.key_values(figures))
    return 0 if complete else 1


if __name__ == "__main__":
    raise SystemExit(main())
