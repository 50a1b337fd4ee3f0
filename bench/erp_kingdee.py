"""Pull and push throughput of the Kingdee connector against the K/3 Cloud emulator at a given latency.

    .venv/bin/python bench/erp_kingdee.py --rows 20000 --latency-ms 50

The emulator runs in its own process (``python -m connectors.kingdee.plugin``) on
127.0.0.1 so it does not share the connector's interpreter lock; ``--in-process``
runs it in a thread instead. It measures:

* pull: a full pull of N customers (ExecuteBillQuery pages, watermark paging);
* push create: N new customers (BatchSave, ``--batch`` models per call);
* push update: a partial update (NeedUpDateFields) of the same N customers.

Figures are rows per second of wall time, including the injected per-call latency.
The last line is key=value figures for bench/erp_sync.py to fold in.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.base import PullRequest, WriteOp  # noqa: E402
from connectors.emulation.server import LOOPBACK, free_port, serve_in_thread  # noqa: E402
from connectors.kingdee.connector import KingdeeConnector  # noqa: E402
from connectors.kingdee.emulator import DEFAULT_CREDENTIALS as CREDS  # noqa: E402
from connectors.kingdee.emulator import create_app  # noqa: E402
from connectors.kingdee.settings import KingdeeSettings  # noqa: E402


@dataclass
class Figures:
    rows: int
    latency_ms: float
    pull_seconds: float
    pull_rows: int
    pull_calls: int
    create_seconds: float
    create_ok: int
    create_calls: int
    update_seconds: float
    update_ok: int
    update_calls: int

    def line(self) -> str:
        def rate(n: int, s: float) -> str:
            return f"{n / s:.0f}" if s else "0"

        return (f"rows={self.rows} latency_ms={self.latency_ms:g} "
                f"pull_rows_per_s={rate(self.pull_rows, self.pull_seconds)} pull_calls={self.pull_calls} "
                f"push_create_rows_per_s={rate(self.create_ok, self.create_seconds)} "
                f"push_create_calls={self.create_calls} "
                f"push_update_rows_per_s={rate(self.update_ok, self.update_seconds)} "
                f"push_update_calls={self.update_calls}")


@contextlib.contextmanager
def emulator(latency_ms: float, in_process: bool) -> Iterator[str]:
    if in_process:
        app = create_app(latency_ms=latency_ms, session_ttl=0)
        with serve_in_thread(app) as server:
            yield server.url
        return
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "connectors.kingdee.plugin", "--port", str(port), "--host", LOOPBACK,
         "--latency-ms", str(latency_ms), "--session-ttl", "0"],
        cwd=Path(__file__).resolve().parents[1], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://{LOOPBACK}:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/_admin/objects", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"emulator did not start: {process.stderr.read().decode()[-500:]}") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


async def measure(url: str, rows: int, latency_ms: float, page_size: int, batch: int, concurrency: int) -> Figures:
    with httpx.Client(base_url=f"{url}/_admin", timeout=300) as admin:
        admin.post("/reset").raise_for_status()
        admin.post("/seed", json={"count": rows, "objects": ["BD_Customer"]}).raise_for_status()
        admin.post("/calls/reset").raise_for_status()
        settings = KingdeeSettings(server_url=url, acct_id=CREDS.acct_id, username=CREDS.username,
                                   auth="app_secret", app_id=CREDS.app_id, app_secret=CREDS.app_secret,
                                   page_size=page_size, write_batch=batch, concurrency=concurrency)
        async with KingdeeConnector("bench", settings) as connector:
            await connector.check()

            def calls() -> int:
                return connector.client.http.stats.total

            start, before = time.perf_counter(), calls()
            pulled = 0
            async for page in connector.pull(PullRequest(object="customer")):
                pulled += len(page.records)
            pull_seconds, pull_calls = time.perf_counter() - start, calls() - before

            ops = [WriteOp(key=f"crm-{i}", action="create",
                           data={"FName": f"苏州工业园区基准测试{i:06d}有限公司", "FTEL": f"0512-{i:08d}",
                                 "FADDRESS": "苏州工业园区星湖街328号", "FGroup.FNumber": "01"})
                   for i in range(rows)]
            start, before = time.perf_counter(), calls()
            created = await connector.push("customer", ops)
            create_seconds, create_calls = time.perf_counter() - start, calls() - before
            ids = [r.external_id for r in created if r.ok]

            updates = [WriteOp(key=f"crm-{i}", action="update", external_id=external_id,
                               data={"FTEL": f"0512-9{i:07d}"}) for i, external_id in enumerate(ids)]
            start, before = time.perf_counter(), calls()
            updated = await connector.push("customer", updates)
            update_seconds, update_calls = time.perf_counter() - start, calls() - before

    return Figures(rows=rows, latency_ms=latency_ms, pull_seconds=pull_seconds, pull_rows=pulled,
                   pull_calls=pull_calls, create_seconds=create_seconds, create_ok=len(ids), create_calls=create_calls,
                   update_seconds=update_seconds, update_ok=sum(r.ok for r in updated), update_calls=update_calls)


def main(argv: list[str] | None = None) -> Figures:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20000, help="customers to pull and to push (default 20000)")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="latency the emulator adds per API call")
    parser.add_argument("--page-size", type=int, default=2000, help="ExecuteBillQuery Limit (default 2000)")
    parser.add_argument("--batch", type=int, default=100, help="models per BatchSave (default 100)")
    parser.add_argument("--concurrency", type=int, default=4, help="calls in flight (default 4)")
    parser.add_argument("--in-process", action="store_true", help="run the emulator in a thread of this process")
    args = parser.parse_args(argv)
    if args.rows <= 0 or args.latency_ms < 0:
        parser.error("--rows must be positive and --latency-ms not negative")

    with emulator(args.latency_ms, args.in_process) as url:
        figures = asyncio.run(measure(url, args.rows, args.latency_ms, args.page_size, args.batch, args.concurrency))

    mode = "thread" if args.in_process else "own process"
    print(f"Kingdee K/3 Cloud emulator ({mode}), {args.rows} customers, {args.latency_ms:g} ms per call, "
          f"page {args.page_size}, BatchSave {args.batch}, concurrency {args.concurrency}")
    print(f"{'step':<14}{'rows':>8}{'seconds':>10}{'rows/s':>10}{'calls':>8}")
    for step, n, seconds, calls in [
        ("pull", figures.pull_rows, figures.pull_seconds, figures.pull_calls),
        ("push create", figures.create_ok, figures.create_seconds, figures.create_calls),
        ("push update", figures.update_ok, figures.update_seconds, figures.update_calls),
    ]:
        print(f"{step:<14}{n:>8}{seconds:>10.2f}{(n / seconds if seconds else 0):>10.0f}{calls:>8}")
    print(figures.line())
    return figures


if __name__ == "__main__":
    main()
