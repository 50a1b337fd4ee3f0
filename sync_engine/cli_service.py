"""``crmsync serve | worker | status`` — crmsync as a long-running service."""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

from .cli_engine import ConfigArg, open_engine, run
from .engine import SyncEngine
from .service import Scheduler, Worker, install_stop_handlers
from .state.db import normalise_url
from .state.queue import JobQueue
from .status import collect_status

log = logging.getLogger("crmsync.service")
out = Console()
GRACE_SECONDS = 30.0
#: set by ``serve`` for its worker child: the one process SQLite allows beside serve's receivers
SERVE_CHILD_ENV = "CRMSYNC_SERVE_WORKERS"


def _sqlite_path(config) -> Path | None:
    url = make_url(normalise_url(config.state.url))
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


@contextlib.contextmanager
def _sole_serve_on_sqlite(config):
    """SQLite serves one ``serve`` process (its queue has no SKIP LOCKED and one writer at a time):
    a second one on the same file is refused with a clear message instead of fighting over it."""
    from .cli import UserError

    path = _sqlite_path(config)
    if path is None:
        yield
        return
    import fcntl

    with open(path.with_name(path.name + ".serve.lock"), "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(
                f"another crmsync serve is already using the SQLite state database {path}; SQLite serves one "
                "process. Use a PostgreSQL state database (state.url: postgresql+psycopg://…) to run several."
            ) from None
        yield


def _refuse_sqlite_workers(config) -> None:
    from .cli import UserError

    if _sqlite_path(config) is not None and not os.environ.get(SERVE_CHILD_ENV):
        raise UserError(
            "crmsync worker needs a PostgreSQL state database: with SQLite, crmsync serve runs the workers "
            "itself (--workers N). Set state.url to postgresql+psycopg://… to add worker processes."
        )


async def _rescue_loop(queue: JobQueue, every: float, stopping: asyncio.Event) -> None:
    while not stopping.is_set():
        try:
            report = await asyncio.to_thread(queue.rescue_expired)
            if report.requeued or report.dead:
                log.warning("rescued jobs of dead workers: requeued %s, dead %s", report.requeued, report.dead)
        except Exception:  # noqa: BLE001 - the database may be away; try again next time
            log.exception("rescue pass failed")
        try:
            await asyncio.wait_for(stopping.wait(), timeout=every)
        except asyncio.TimeoutError:
            pass


async def run_workers(engine: SyncEngine, queue: JobQueue, count: int, stopping: asyncio.Event, *, name: str) -> None:
    """Run ``count`` workers until ``stopping`` is set, then stop them gracefully."""
    workers = [Worker(engine.rt, engine, queue, name=f"{name}-{i}") for i in range(count)]
    tasks = [asyncio.create_task(w.run()) for w in workers]
    await stopping.wait()
    for worker in workers:
        worker.stopping.set()
    done, pending = await asyncio.wait(tasks, timeout=GRACE_SECONDS)
    for task in pending:
        task.cancel()  # the worker releases its job back to the queue
    await asyncio.gather(*pending, return_exceptions=True)


async def supervise_workers(config_path: Path, workers: int, stopping: asyncio.Event) -> None:
    """Run the workers in one child process (``crmsync worker``) and keep it running.

    The HTTP thread of ``serve`` then never competes with sync work for this process's
    interpreter, so webhooks are acknowledged in milliseconds however busy the workers are.
    One child keeps SQLite's single-worker-process rule; PostgreSQL may add more hosts.
    """
    command = [sys.executable, "-c", "from sync_engine.cli import main; main()", "worker", str(config_path),
               "--workers", str(workers)]
    while not stopping.is_set():
        child = await asyncio.create_subprocess_exec(*command, env={**os.environ, SERVE_CHILD_ENV: "1"})
        waiter = asyncio.create_task(child.wait())
        stopper = asyncio.create_task(stopping.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stopping.is_set():
            if child.returncode is None:
                child.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(waiter, timeout=GRACE_SECONDS + 5)
                except asyncio.TimeoutError:
                    child.kill()
                    await waiter
            return
        stopper.cancel()
        log.error("the worker process exited with %s; starting it again", child.returncode)
        await asyncio.sleep(1.0)


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        config_path: Path = ConfigArg,
        workers: int = typer.Option(2, "--workers", min=0, max=64, help="Async workers (in one child process)."),
        host: Optional[str] = typer.Option(None, help="Override server.host."),
        port: Optional[int] = typer.Option(None, help="Override server.port."),
    ) -> None:
        """Webhook receivers, ops routes and the scheduler, with N workers in a supervised child process."""

        async def go() -> None:
            from .cli import load

            with _sole_serve_on_sqlite(load(config_path)):
                await serve_until_stopped()

        async def serve_until_stopped() -> None:
            from connectors.emulation.server import ThreadedServer
            from webhooks.app import create_app

            async with open_engine(config_path) as engine:
                config = engine.rt.config
                queue = JobQueue(engine.rt.store, default_max_attempts=config.sync.max_attempts)
                scheduler = Scheduler(engine.rt, queue)
                scheduler.start()
                app = create_app(engine.rt, queue=queue, next_runs=scheduler.next_runs)
                # The HTTP side runs on its own thread and event loop: acknowledging a
                # webhook never waits behind a sync batch the workers are chewing on.
                server = ThreadedServer(app, host=host or config.server.host, port=port or config.server.port,
                                        allow_any_host=True)
                server.start()
                log.info("serving on %s with %d workers", server.url, workers)
                print(f"crmsync serving on {server.url} with {workers} workers", flush=True)
                stopping = asyncio.Event()
                install_stop_handlers(stopping.set)
                try:
                    if workers:
                        await supervise_workers(config_path, workers, stopping)
                    else:
                        await stopping.wait()
                finally:
                    scheduler.shutdown()
                    server.stop()

        run(go())

    @app.command()
    def worker(
        config_path: Path = ConfigArg,
        workers: int = typer.Option(2, "--workers", min=1, max=64, help="Async workers in this process."),
    ) -> None:
        """Workers only: more capacity, on this or another host, sharing the PostgreSQL queue."""
        from .cli import load

        _refuse_sqlite_workers(load(config_path))

        async def go() -> None:
            async with open_engine(config_path) as engine:
                queue = JobQueue(engine.rt.store, default_max_attempts=engine.rt.config.sync.max_attempts)
                stopping = asyncio.Event()
                install_stop_handlers(stopping.set)
                print(f"crmsync worker running {workers} workers", flush=True)
                rescue = asyncio.create_task(
                    _rescue_loop(queue, max(engine.rt.config.sync.lease.total_seconds() / 2, 1.0), stopping)
                )
                await run_workers(engine, queue, workers, stopping, name="worker")
                await rescue

        run(go())

    @app.command()
    def status(config_path: Path = ConfigArg, as_json: bool = typer.Option(False, "--json")) -> None:
        """Per flow and per system health, as on the status page."""

        async def go():
            async with open_engine(config_path) as engine:
                return collect_status(engine.rt)

        data = run(go())
        if as_json:
            sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
            return
        table = Table(title="flows")
        for col in ("flow", "health", "last run", "moved 24 h", "lag", "queued", "reviews", "dead letters", "attention"):
            table.add_column(col)
        for f in data["flows"]:
            last = f["last_run"] or {}
            lag = "—" if f["lag_seconds"] is None else f"{f['lag_seconds']:.0f} s"
            table.add_row(f["name"], f["health"], f"{last.get('status', 'never')} {(last.get('finished_at') or '')[:19]}",
                          str(f["records_moved_24h"]), lag, str(f["jobs"].get("queued", 0)), str(f["reviews_open"]),
                          str(f["dead_letters_open"]), "; ".join(f["attention"]))
        out.print(table)
        systems = Table(title="systems")
        for col in ("system", "type", "auth", "paused until", "channel expires"):
            systems.add_column(col)
        for s in data["systems"]:
            systems.add_row(s["name"], s["type"], s["auth_state"], s["paused_until"] or "—", s["channel_expires_at"] or "—")
        out.print(systems)
        q = data["queue"]
        out.print(f"queue: {q['queued']} queued, {q['running']} running, {q['dead']} dead")
