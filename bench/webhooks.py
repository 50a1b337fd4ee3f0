"""Webhook acknowledgement and webhook → target-written latency through a running `crmsync serve`.

Fxiaoke (emulated, APL-function pushes) → Zoho (emulated), state on PostgreSQL. For each
delivery the driver edits one Fxiaoke record "as a user", then posts the signed push at a
fixed rate; a poller watches the Zoho emulator for the new value. Everything on 127.0.0.1.

    python bench/webhooks.py --rate 500 --seconds 30 --records 2000 --workers 4
    python bench/webhooks.py --rate 500 --seconds 30 --workers 0     # acknowledgements alone

Prints a table and a last line of key=value figures: acknowledgement latency p50/p99 (time to
the 200, which means "stored and enqueued") and webhook → written in Zoho p50/p99 (to the
watcher's 0.25 s polling resolution), plus the CPU seconds serve (with its worker child) and
the driver used per delivery: on a shared machine those compare runs better than wall times.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.emulation.crmsync_process import CrmsyncProcess
from connectors.emulation.server import free_port  # noqa: E402
from connectors.emulation.systems import emulator_systems_yaml  # noqa: E402
from connectors.fxiaoke.emulator import EmulatorConfig  # noqa: E402
from connectors.fxiaoke.push_apl import build_push  # noqa: E402

CLI = [sys.executable, "-c", "from sync_engine.cli import main; main()"]
SECRET = "bench-apl-secret-0123456789abcdef"
FX = EmulatorConfig()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def throwaway_database(server_url: str) -> tuple[str, callable]:
    admin_url = make_url(server_url).set(drivername="postgresql+psycopg", database="postgres")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"crmsync_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return admin_url.set(database=name).render_as_string(hide_password=False), drop


def config_text(zoho: str, fx: str, port: int, state: str) -> str:
    systems = emulator_systems_yaml(zoho=zoho, fxiaoke=fx, names={"fxiaoke": "fx"}, settings={"fx": {
        "rate_limit_calls": 100000, "rate_limit_burst": 1000,
        "notifications": {"style": "apl_function", "apl_secret": SECRET}}})
    return systems + textwrap.dedent(f"""
        state: {{url: "{state}"}}
        server: {{host: 127.0.0.1, port: {port}, max_body_bytes: 65536}}
        entities:
          account:
            model: Account
            match: {{keys: [name]}}
            systems:
              fx: {{object: AccountObj, fields: {{name: name, phone: tel}}}}
              zoho: {{object: Accounts, fields: {{name: Account_Name, phone: Phone}}}}
        flows:
          accounts: {{entity: account, systems: [fx, zoho], webhooks: true}}
        """)


class _Emulator:
    def __init__(self, url: str) -> None:
        self.url = url


@contextlib.contextmanager
def emulator_process(args: list[str]):
    port = free_port()
    process = subprocess.Popen([*CLI, "emulator", *args, "--port", str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(f"{url}/_admin/calls", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield _Emulator(url)
    finally:
        process.terminate()
        process.wait(timeout=30)


def watch_zoho(url: str, stop, results) -> None:
    """Poll the Zoho emulator and note (wall clock) when each phone value first appears.

    Runs in its own process: each poll parses every record, which inside the driver's
    process took the interpreter from the driver's event loop and delayed the deliveries."""
    seen: dict[str, float] = {}
    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            now = time.time()
            try:
                records = client.get(f"{url}/_admin/records/Accounts").json()
            except httpx.HTTPError:
                records = []  # the emulator is busy: look again next time
            for record in records:
                seen.setdefault(str(record.get("Phone")), now)
            stop.wait(0.25)  # resolution of the written latency
    results.send(seen)


class ZohoWatcher:
    def __init__(self, url: str) -> None:
        context = multiprocessing.get_context("spawn")
        self.stop = context.Event()
        self._receive, send = context.Pipe(duplex=False)
        self._process = context.Process(target=watch_zoho, args=(url, self.stop, send), daemon=True)
        self.seen: dict[str, float] = {}

    def start(self) -> None:
        self._process.start()

    def join(self) -> None:
        self.stop.set()
        self.seen = self._receive.recv()
        self._process.join(timeout=30)


class _Closed(OSError):
    pass


class RawHTTP:
    """A minimal HTTP/1.1 keep-alive client over asyncio streams.

    The driver shares the machine's cores with what it measures; httpx spent ~7 ms of CPU per
    delivery (more than the receiver itself), so at a few hundred deliveries a second the
    driver, not crmsync, set the pace. This one writes the request bytes and reads a
    Content-Length (or chunked) answer: well under a millisecond.
    """

    def __init__(self, base_url: str, connections: int) -> None:
        parsed = httpx.URL(base_url)
        self.host, self.port = parsed.host, parsed.port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.slots = asyncio.Semaphore(connections)

    async def request(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> int:
        async with self.slots:
            reused = bool(self.idle)
            conn = self.idle.pop() if reused else await asyncio.open_connection(self.host, self.port)
            try:
                status = await self._exchange(conn, method, path, body, headers or {})
            except _Closed:
                conn[1].close()
                if not reused:
                    raise
                # The server closed the idle connection (keep-alive timeout): once more on a new one.
                conn = await asyncio.open_connection(self.host, self.port)
                status = await self._exchange(conn, method, path, body, headers or {})
            except BaseException:
                conn[1].close()
                raise
            self.idle.append(conn)
            return status

    async def _exchange(self, conn, method, path, body, headers) -> int:
        reader, writer = conn
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write(f"{method} {path} HTTP/1.1\r\nhost: {self.host}\r\ncontent-length: {len(body)}\r\n{head}\r\n"
                     .encode("latin-1") + body)
        first = await reader.readline()
        if not first:
            raise _Closed
        status = int(first.split()[1])
        length, chunked = 0, False
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        if not chunked:
            await reader.readexactly(length)
            return status
        while (size := int((await reader.readline()).strip() or b"0", 16)) > 0:
            await reader.readexactly(size + 2)
        await reader.readline()
        return status

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


async def drive(args, fx_url: str, hook_url: str, ids: list[str]) -> tuple[list[float], dict[str, float]]:
    acks: list[float] = []
    sent: dict[str, float] = {}
    failures: list[int] = []
    total = int(args.rate * args.seconds)
    fx = RawHTTP(fx_url, args.max_in_flight)
    hook = RawHTTP(hook_url, args.max_in_flight)
    hook_path = httpx.URL(hook_url).raw_path.decode()
    start = time.perf_counter()
    in_flight = asyncio.Semaphore(args.max_in_flight)
    late = 0

    async def one(i: int) -> None:
        async with in_flight:  # past this many unanswered deliveries the driver itself would be the bottleneck
            try:
                await deliver(i)
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                failures.append(i)

    async def deliver(i: int) -> None:
        record_id = ids[i % len(ids)]
        value = f"0755-{i:08d}"  # Zoho validates phone fields
        if args.workers:  # with no workers (--workers 0) nothing is synced: acknowledgements alone
            edit = json.dumps({"tel": value}).encode()
            await fx.request("PATCH", f"/_admin/records/AccountObj/{record_id}", edit, {"content-type": "application/json"})
        ms = int(time.time() * 1000)
        headers, body = build_push(SECRET, object_api_name="AccountObj", ids=[record_id], event="update",
                                   timestamp_ms=ms, event_id=f"bench-{i}")
        t0, wall = time.perf_counter(), time.time()
        status = await hook.request("POST", hook_path, body, headers)
        acks.append(time.perf_counter() - t0)
        if status == 200:
            sent[value] = wall
        else:
            failures.append(i)

    tasks = []
    for i in range(total):
        due = start + i / args.rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.05:
            late += 1
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    fx.close()
    hook.close()
    print(f"achieved rate: {total / elapsed:.0f} deliveries/s over {elapsed:.1f} s "
          f"({late} started over 50 ms late: the driver could not keep up)")
    if failures:
        print(f"{len(failures)} deliveries failed (transport error or not 200)")
    return acks, sent


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and its live children (Linux), to compare runs on a shared machine."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            total += cpu_seconds(int(child))
    except (OSError, IndexError, ValueError):
        pass
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100, help="deliveries per second")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--records", type=int, default=2000, help="Fxiaoke accounts the deliveries cycle through")
    parser.add_argument("--workers", type=int, default=4, help="0: acknowledgements only (no edits, nothing synced)")
    parser.add_argument("--max-in-flight", type=int, default=100, help="unanswered deliveries at most")
    parser.add_argument("--drain-seconds", type=float, default=120, help="how long to wait for the last writes")
    parser.add_argument("--url", default=os.environ.get("CRMSYNC_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()

    state_url, drop = throwaway_database(args.url)
    work = Path(tempfile.mkdtemp(prefix="crmsync-bench-"))
    # The emulators run in their own processes, so the driver's timings measure crmsync, not the
    # emulators competing with the driver for this process's interpreter.
    with emulator_process(["zoho"]) as zoho, emulator_process([
        "fxiaoke", "--rate-limit", "1000000", "--rate-period", "1", "--app-id", FX.app_id,
        "--app-secret", FX.app_secret, "--permanent-code", FX.permanent_code,
    ]) as fx:
        with httpx.Client(timeout=60) as admin:
            ids = []
            for i in range(args.records):
                ids.append(str(admin.post(f"{fx.url}/_admin/records/AccountObj",
                                          json={"name": f"基准测试公司{i:05d}", "tel": "0"}).json()["_id"]))
        port = free_port()
        config = work / "bench.yaml"
        config.write_text(config_text(zoho.url, fx.url, port, state_url), encoding="utf-8")
        started = time.perf_counter()
        subprocess.run([*CLI, "sync", str(config)], check=True, capture_output=True, timeout=1800)
        initial = time.perf_counter() - started
        with CrmsyncProcess(["serve", str(config), "--workers", str(args.workers)], log=work / "serve.log",
                            port=port, stop_timeout=60) as server:
            watcher = ZohoWatcher(zoho.url)
            watcher.start()
            serve_cpu, driver_cpu = cpu_seconds(server.pid), time.process_time()
            acks, sent = asyncio.run(drive(args, fx.url, f"http://127.0.0.1:{port}/webhooks/fx", ids))
            serve_cpu, driver_cpu = cpu_seconds(server.pid) - serve_cpu, time.process_time() - driver_cpu
            deadline = time.monotonic() + args.drain_seconds
            state = create_engine(state_url)
            while args.workers and time.monotonic() < deadline:
                with state.connect() as c:
                    if not c.execute(text("SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')")).scalar():
                        break
                time.sleep(0.5)
            state.dispose()
            time.sleep(1.0)  # the watcher's last poll
            watcher.join()
    drop()
    print(f"serve log: {work / 'serve.log'}")

    written = [watcher.seen[v] - t for v, t in sent.items() if v in watcher.seen]
    # A value overwritten by a later edit of the same record before the poll saw it is not "lost":
    # the record converged to the later value. Those are reported apart.
    unseen = len(sent) - len(written)
    ack_ms = [a * 1000 for a in acks]
    written_ms = [w * 1000 for w in written]
    print(f"{'measure':<28}{'p50 ms':>10}{'p99 ms':>10}{'count':>8}")
    print(f"{'acknowledgement':<28}{percentile(ack_ms, 50):>10.1f}{percentile(ack_ms, 99):>10.1f}{len(ack_ms):>8}")
    print(f"{'webhook -> written in Zoho':<28}{percentile(written_ms, 50):>10.1f}{percentile(written_ms, 99):>10.1f}{len(written_ms):>8}")
    print(f"initial sync of {args.records} records: {initial:.1f} s; values overwritten before seen: {unseen}")
    print(f"CPU while driving: serve and its workers {serve_cpu:.1f} s ({serve_cpu / max(len(acks), 1) * 1000:.2f} ms "
          f"per delivery), driver {driver_cpu:.1f} s; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(
        f"rate={args.rate:g} seconds={args.seconds:g} deliveries={len(acks)} workers={args.workers} "
        f"ack_p50_ms={percentile(ack_ms, 50):.1f} ack_p99_ms={percentile(ack_ms, 99):.1f} "
        f"written_p50_ms={percentile(written_ms, 50):.0f} written_p99_ms={percentile(written_ms, 99):.0f} "
        f"written={len(written)} unseen={unseen} mean_ack_ms={statistics.fmean(ack_ms) if ack_ms else 0:.1f}"
    )


if __name__ == "__main__":
    main()
