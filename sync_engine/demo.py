"""``crmsync demo``: the whole product on this machine in about a minute.

Starts the Fxiaoke, Zoho and Kingdee emulators on free loopback ports, seeds a channel-sales company
(:mod:`.demo_data`), writes a configuration built from ``config/examples/channel-sales.yaml`` into
the demo directory, and then does what production does:

1. the first sync (matching twins, creating the rest, dead-lettering what a target refuses), and the
   pass after it that reads back what the systems assigned to the new records (the ERP's numbers)
   together with the echoes of crmsync's own writes;
2. people edit records in every system — the same field in two of them, a delete too;
3. the systems' notifications reach crmsync's real webhook receiver, and workers process them;
4. a scheduled pass picks up what sent no notification (the ERP has none);

then prints what happened, checks it, and says where to look next. ``--serve`` keeps the
emulators, the receivers, the scheduler and the status page running until Ctrl-C.
"""
from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from sqlalchemy import func, select

import config as config_package
from config.loader import load_config
from config.yaml_source import Interpolator
from connectors.emulation.server import ThreadedServer, free_port

from .context import Report
from .demo_data import DemoError, DemoSeeder, Emulators, Seeded
from .engine import SyncEngine
from .runtime import Runtime
from .state.models import Link, Run
from .state.models.enums import LinkStatus
from .state.models.pipeline import OutboxWrite

EXAMPLE = Path(config_package.__file__).resolve().parent / "examples" / "channel-sales.yaml"
MARKER = ".crmsync-demo"  # a file that says the directory is the demo's to wipe
CONFIG_NAME = "crmsync-demo.yaml"
APL_SECRET = "demo-apl-secret-0123456789abcdef"
FXIAOKE_RATE_LIMIT = 5000  # calls per interface per 20 s for the demo tenant


@dataclass
class Phase:
    name: str
    reports: list[Report] = field(default_factory=list)
    seconds: float = 0.0
    first_run_id: int = 0


@dataclass
class Edits:
    """What the demo's users changed after the first sync (ids per system), for the story and its checks."""

    zoho_phone: dict[str, Any] = field(default_factory=dict)
    conflict: dict[str, Any] = field(default_factory=dict)
    manual: dict[str, Any] = field(default_factory=dict)
    deal_won: dict[str, Any] = field(default_factory=dict)
    new_contact: dict[str, Any] = field(default_factory=dict)
    deleted_contact: dict[str, Any] = field(default_factory=dict)
    credit_limit: dict[str, Any] = field(default_factory=dict)
    partner_tier: dict[str, Any] = field(default_factory=dict)
    new_order: dict[str, Any] = field(default_factory=dict)


@dataclass
class DemoRun:
    directory: Path
    config_path: Path
    urls: dict[str, str]
    server_url: str
    seeded: Seeded
    phases: list[Phase] = field(default_factory=list)
    edits: Edits = field(default_factory=Edits)
    seconds: float = 0.0
    webhooks_received: int = 0
    checks: list[tuple[str, bool]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(passed for _, passed in self.checks)


# -- the demo directory and configuration ------------------------------------------------------------
def prepare_directory(directory: Path) -> None:
    """A fresh demo directory. Only a directory the demo made (it holds the marker) is wiped."""
    if directory.exists():
        if not directory.is_dir():
            raise DemoError(f"{directory} exists and is not a directory")
        if any(directory.iterdir()) and not (directory / MARKER).exists():
            raise DemoError(f"{directory} is not empty and was not made by `crmsync demo`; choose another --dir")
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    (directory / MARKER).write_text("made by `crmsync demo`; wiped and rebuilt by the next run\n", encoding="utf-8")


def demo_config(urls: dict[str, str], port: int, state_url: str, products: dict[str, str]) -> dict[str, Any]:
    """The example configuration, its credentials filled in with the emulators' addresses."""
    env = {
        "ZOHO_ACCOUNTS_URL": urls["zoho"], "ZOHO_API_DOMAIN": urls["zoho"], "FXIAOKE_HOST": urls["fxiaoke"],
        "FXIAOKE_APL_SECRET": APL_SECRET, "KINGDEE_URL": urls["erp"] + "/", "CRMSYNC_STATE_URL": state_url,
        "CRMSYNC_PORT": str(port), "CRMSYNC_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    interpolate = Interpolator(env)

    def fill(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: fill(v) for k, v in node.items()}
        if isinstance(node, list):
            return [fill(v) for v in node]
        if isinstance(node, str) and "${" in node:
            issues: list = []
            value = interpolate(node, (), issues)
            if issues:
                raise DemoError(f"the example configuration cannot be filled in: {issues[0].message}")
            return value
        return node

    data = fill(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")))
    # Where the demo differs from the example, and why:
    data["server"].pop("ops_token", None)  # loopback only: the status page opens without a token
    data["logging"] = {"format": "human", "level": "warning"}  # the demo's own output tells the story
    data["systems"]["fxiaoke"]["rate_limit_calls"] = FXIAOKE_RATE_LIMIT  # the demo tenant's larger quota
    data["systems"]["fxiaoke"]["write_concurrency"] = 16
    for entity in data["entities"].values():
        for mapping in entity["systems"].values():
            mapping.pop("tests", None)  # the examples live in the example file: `crmsync mapping test`
            mapping.pop("tests_file", None)
    data["value_maps"]["products"]["values"] = {number: {"zoho": pid} for number, pid in products.items()}
    for flow in data["flows"].values():
        flow["schedule"] = {"interval": "1m"}  # --serve shows scheduled passes within a minute
    return data


def write_config(path: Path, data: dict[str, Any]) -> None:
    schema = EXAMPLE.parent.parent / "schema.json"
    header = (
        (f"# yaml-language-server: $schema={schema.as_uri()}\n" if schema.exists() else "")
        + "# Written by `crmsync demo` from config/examples/channel-sales.yaml (its comments and mapping tests are\n"
        "# there): the same mappings, flows and policies, pointed at the demo's emulators, with the Fxiaoke\n"
        "# tenant's call quota raised and every flow scheduled each minute. The emulators stop when the demo\n"
        "# ends; the state database beside this file stays, so `crmsync status|history|dlq|review` work.\n"
    )
    path.write_text(header + yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=120), encoding="utf-8")


# -- running -------------------------------------------------------------------------------------------
async def run_flows_with_progress(engine: SyncEngine, console: Console, title: str) -> list[Report]:
    """Every flow once, in reference order, with a progress bar per flow (writes done of decided)."""
    reports: list[Report] = []
    with Progress(SpinnerColumn(), TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                  TextColumn("writes"), TimeElapsedColumn(), console=console, transient=False) as progress:
        for name in engine.rt.flows_in_order():
            task = progress.add_task(f"{title}: {name}", total=None)
            watcher = asyncio.create_task(_watch_writes(engine.rt, name, progress, task))
            try:
                report = await engine.run_flow(name)
            finally:
                watcher.cancel()
            done, total = _write_progress(engine.rt, report.run_id)
            progress.update(task, total=max(total, 1), completed=done if total else 1,
                            description=f"{title}: {name} — read {report.total('read')}, "
                                        f"created {report.total('created')}, updated {report.total('updated')}")
            reports.append(report)
    return reports


async def run_phase(engine: SyncEngine, console: Console, name: str) -> Phase:
    phase = Phase(name, first_run_id=last_run_id(engine.rt) + 1)
    started = time.monotonic()
    phase.reports = await run_flows_with_progress(engine, console, name)
    phase.seconds = time.monotonic() - started
    return phase


def _write_progress(rt: Runtime, run_id: int | None) -> tuple[int, int]:
    if run_id is None:
        return 0, 0
    with rt.store.read() as session:
        rows = dict(session.execute(select(OutboxWrite.status, func.count()).where(OutboxWrite.run_id == run_id)
                                    .group_by(OutboxWrite.status)).all())
    total = sum(rows.values())
    return total - rows.get("pending", 0) - rows.get("sent", 0) - rows.get("deferred", 0), total


async def _watch_writes(rt: Runtime, flow: str, progress: Progress, task) -> None:
    while True:
        await asyncio.sleep(0.3)
        with rt.store.read() as session:
            run_id = session.scalar(select(func.max(Run.id)).where(Run.flow == flow))
        done, total = _write_progress(rt, run_id)
        if total:
            progress.update(task, total=total, completed=done)


async def drain_webhooks(engine: SyncEngine, queue, emulators: Emulators, *, timeout: float = 120.0) -> int:
    """Run workers until every notification the emulators sent has been processed."""
    from .service import Worker

    # One worker: the two notifications of the record edited in both CRMs are processed one after the
    # other (their lock keys differ — one per system record — so two workers could run them at once).
    workers = [Worker(engine.rt, engine, queue, name="demo", poll_seconds=0.05)]
    tasks = [asyncio.create_task(w.run()) for w in workers]
    deadline = time.monotonic() + timeout
    quiet = 0
    try:
        while time.monotonic() < deadline and quiet < 3:
            await asyncio.sleep(0.3)
            idle = await asyncio.to_thread(emulators.notifications_idle, 0.1)
            counts = await asyncio.to_thread(queue.counts)
            quiet = quiet + 1 if idle and counts.queued == 0 and counts.running == 0 and counts.scheduled == 0 else 0
    finally:
        for worker in workers:
            worker.stopping.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    return sum(w.done for w in workers)


def reports_of_runs(rt: Runtime, after_run_id: int) -> list[Report]:
    """The counters of runs workers made (webhook jobs), one report per flow."""
    merged: dict[str, Report] = {}
    with rt.store.read() as session:
        for run in session.scalars(select(Run).where(Run.id > after_run_id).order_by(Run.id)):
            report = merged.setdefault(run.flow, Report(flow=run.flow, kind="webhook"))
            for system, counters in ((run.stats or {}).get("counts") or {}).items():
                for name, n in counters.items():
                    report.count(system, name, n)
    order = {name: i for i, name in enumerate(rt.flows_in_order())}
    return sorted(merged.values(), key=lambda r: order.get(r.flow, 99))


def last_run_id(rt: Runtime) -> int:
    with rt.store.read() as session:
        return session.scalar(select(func.max(Run.id))) or 0


def linked_in_all(rt: Runtime, entity: str, systems: tuple[str, ...], *, skip: set[str] = frozenset(), n: int = 1) -> list[dict[str, str]]:
    """Records of ``entity`` linked (active) in every one of ``systems``: {system: external id, "cid": …}."""
    found: dict[str, dict[str, str]] = {}
    with rt.store.read() as session:
        for link in session.scalars(select(Link).where(Link.entity == entity, Link.status == LinkStatus.ACTIVE,
                                                       Link.system.in_(systems)).order_by(Link.id)):
            found.setdefault(link.canonical_id, {"cid": link.canonical_id})[link.system] = link.external_id
    complete = [ids for cid, ids in found.items() if cid not in skip and all(s in ids for s in systems)]
    return complete[:n]


async def run_demo(
    directory: Path, *, scale: float = 1.0, serve: bool = False, console: Console | None = None,
) -> DemoRun:
    from .demo_report import check, print_story
    from .demo_scenario import make_edits

    console = console or Console()
    started = time.monotonic()
    directory = directory.resolve()
    prepare_directory(directory)
    port = free_port()
    console.print(f"[bold]crmsync demo[/bold] — directory {escape(str(directory))}", highlight=False)
    emulators = Emulators.start(fxiaoke_rate_limit=FXIAOKE_RATE_LIMIT, apl_secret=APL_SECRET)
    server: ThreadedServer | None = None
    try:
        for name, url in emulators.urls.items():
            console.print(f"  {name:8} emulator on {url}", highlight=False, markup=False)
        t = time.monotonic()
        seeded = DemoSeeder(emulators, scale).seed()
        console.print(
            f"  seeded {seeded.total()} records in {time.monotonic() - t:.1f} s: "
            + "; ".join(f"{s} " + ", ".join(f"{n} {o}" for o, n in c.items()) for s, c in seeded.counts.items()),
            highlight=False,
        )
        config_path = directory / CONFIG_NAME
        write_config(config_path, demo_config(emulators.urls, port, f"sqlite:///{directory / 'state.db'}", seeded.products))
        config = load_config(config_path)
        demo = DemoRun(directory=directory, config_path=config_path, urls=emulators.urls,
                       server_url=f"http://127.0.0.1:{port}", seeded=seeded)
        runtime = Runtime(config, base_dir=config_path.parent)
        try:
            async with runtime:
                engine = SyncEngine(runtime)
                # 1. the first sync
                console.rule("1. First sync")
                demo.phases.append(await run_phase(engine, console, "first sync"))
                # What the systems assigned to the records crmsync created (the ERP's 客户编码) is read
                # back with the echoes of our own writes, and travels on; the echoes cause nothing.
                demo.phases.append(await run_phase(engine, console, "first sync, read-back"))

                # 2. notifications on: Zoho watches crmsync's receiver, Fxiaoke's APL function posts to it
                from webhooks.app import create_app

                from .service import renew_channels
                from .state.queue import JobQueue

                queue = JobQueue(runtime.store, default_max_attempts=config.sync.max_attempts)
                server = ThreadedServer(create_app(runtime, queue=queue), port=port).start()
                await renew_channels(runtime, demo.server_url)
                emulators.deliver_fxiaoke_pushes_to(f"{demo.server_url}/webhooks/fxiaoke")

                console.rule("2. People edit records in every system")
                demo.edits = await asyncio.to_thread(make_edits, runtime, emulators, console)

                # 3. the notifications arrive at the receiver; workers process them
                console.rule("3. Webhooks")
                phase = Phase("webhooks", first_run_id=last_run_id(runtime) + 1)
                t = time.monotonic()
                with console.status("processing the notifications the systems sent…"):
                    demo.webhooks_received = await drain_webhooks(engine, queue, emulators)
                phase.seconds = time.monotonic() - t
                phase.reports = reports_of_runs(runtime, phase.first_run_id - 1)
                demo.phases.append(phase)

                # 4. the scheduled pass: the ERP sends no notifications
                console.rule("4. Scheduled pass")
                demo.phases.append(await run_phase(engine, console, "scheduled pass"))

                demo.checks = await asyncio.to_thread(check, demo, runtime, emulators)
                demo.seconds = time.monotonic() - started
                print_story(demo, runtime, console)
                if serve:
                    await serve_until_stopped(engine, queue, demo, console)
        finally:
            runtime.store.dispose()
        return demo
    finally:
        if server is not None:
            server.stop()
        emulators.stop()


async def serve_until_stopped(engine: SyncEngine, queue, demo: DemoRun, console: Console) -> None:
    """``crmsync serve`` behaviour on the demo: scheduler, workers, receivers and status page, until Ctrl-C."""
    from .cli_service import run_workers
    from .service import Scheduler, install_stop_handlers

    scheduler = Scheduler(engine.rt, queue)
    scheduler.start()
    stopping = asyncio.Event()
    install_stop_handlers(stopping.set)
    console.rule("Serving")
    console.print(f"status page   {demo.server_url}/", highlight=False, markup=False)
    console.print(f"webhooks      {demo.server_url}/webhooks/{{fxiaoke,zoho}}", highlight=False, markup=False)
    for name, url in demo.urls.items():
        console.print(f"{name:13} {url}/_admin/objects  (edit records as a user: PATCH /_admin/records/…)",
                      highlight=False, markup=False)
    console.print("Every flow runs each minute; edits in Zoho and Fxiaoke arrive as webhooks. Ctrl-C stops.")
    try:
        await run_workers(engine, queue, 2, stopping, name="demo")
    finally:
        scheduler.shutdown()
    console.print("stopped.")
