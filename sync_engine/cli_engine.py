"""``crmsync sync | dlq | review | history | discover`` — the engine from the command line."""
from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from connectors.errors import ConnectorError

from .context import COUNTERS, OPTIONAL_COUNTERS, Report
from .engine import SyncEngine
from .operations import (
    NotFound, discard_dead_letters, get_dead_letter, history, list_dead_letters, list_reviews, replay_dead_letters,
    resolve_review,
)
from .runtime import Runtime
from .state.errors import StateStoreUnavailable

out = Console()
err = Console(stderr=True)
ConfigArg = typer.Argument(..., help="Path of the YAML configuration file.", show_default=False)

dlq_app = typer.Typer(help="Records that could not sync: list, show, replay, discard.", no_args_is_help=True)
review_app = typer.Typer(help="Decisions waiting for a person: ambiguous matches, manual conflicts, deletes.", no_args_is_help=True)


@contextlib.asynccontextmanager
async def open_engine(config_path: Path) -> AsyncIterator[SyncEngine]:
    from .cli import UserError, load

    config = load(config_path)
    try:
        runtime = Runtime(config, base_dir=config_path.parent)
    except StateStoreUnavailable as exc:
        raise UserError(f"state database unavailable: {exc}") from None
    try:
        async with runtime:
            yield SyncEngine(runtime)
    finally:
        runtime.store.dispose()


def run(coro):
    from .cli import UserError

    try:
        return asyncio.run(coro)
    except NotFound as exc:
        raise UserError(str(exc)) from None
    except StateStoreUnavailable as exc:
        raise UserError(f"state database unavailable: {exc}") from None
    except ConnectorError as exc:
        raise UserError(str(exc)) from None


def summary_table(reports: list[Report]) -> Table:
    table = Table(title="crmsync — summary", show_lines=False)
    table.add_column("flow")
    table.add_column("system")
    shown = [c for c in COUNTERS if c not in OPTIONAL_COUNTERS
             or any(r.counts.get(s, {}).get(c) for r in reports for s in r.counts)]
    for name in shown:
        table.add_column(name.replace("_", " "), justify="right")
    for report in reports:
        systems = sorted(report.counts) or ["—"]
        for i, system in enumerate(systems):
            counts = report.counts.get(system, {})
            table.add_row(report.flow if i == 0 else "", system, *[str(counts.get(c, 0) or "") for c in shown])
    return table


def print_plan(reports: list[Report]) -> None:
    for report in reports:
        out.print(f"[bold]{report.flow}[/bold] (dry run): {len(report.planned)} writes")
        for write in report.planned:
            where = f"{write.system} {write.external_id or '(new)'}"
            if write.action == "create":
                out.print(f"  [green]create[/green] {where}: " + ", ".join(f"{k}={v!r}" for k, (_, v) in write.changes.items()), highlight=False)
            elif write.action == "delete":
                out.print(f"  [red]delete[/red] {where}", highlight=False)
            else:
                out.print(f"  [yellow]update[/yellow] {where}", highlight=False)
                for field, (old, new) in write.changes.items():
                    out.print(f"      {field}: {old!r} → {new!r}", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(dlq_app, name="dlq")
    app.add_typer(review_app, name="review")

    @app.command()
    def sync(
        config_path: Path = ConfigArg,
        flow: Optional[list[str]] = typer.Option(None, "--flow", help="Only this flow (repeatable)."),
        full: bool = typer.Option(False, "--full", help="Read everything, not just changes since the cursor."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Read everything, write nothing anywhere; print what would change."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Run one pass of the flows (in dependency order) and exit."""
        from .cli import UserError

        async def go() -> list[Report]:
            async with open_engine(config_path) as engine:
                unknown = [f for f in flow or [] if f not in engine.rt.config.flows]
                if unknown:
                    raise UserError(f"unknown flow {unknown[0]!r} (defined: {', '.join(engine.rt.config.flows)})")
                names = engine.rt.flows_in_order(flow or None)
                if not (sys.stderr.isatty() and not as_json):
                    return await engine.run_all(names, full=full, dry_run=dry_run)
                with err.status("syncing…") as status:
                    return await engine.run_all(names, full=full, dry_run=dry_run,
                                                on_flow=lambda name: status.update(f"syncing {name}…"))

        reports = run(go())
        if as_json:
            payload = [
                {**r.as_dict(), "planned": [
                    {"system": p.system, "action": p.action, "canonical_id": p.canonical_id, "external_id": p.external_id,
                     "changes": {k: [a, b] for k, (a, b) in p.changes.items()}} for p in r.planned
                ] if dry_run else []}
                for r in reports
            ]
            sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2, default=str) + "\n")
        else:
            if dry_run:
                print_plan(reports)
            out.print(summary_table(reports))
            for report in reports:
                for error in report.errors:
                    err.print(f"[yellow]{report.flow}: {error}[/yellow]", highlight=False)

    @app.command("history")
    def history_cmd(
        config_path: Path = ConfigArg,
        entity: str = typer.Argument(..., help="Entity name, e.g. account."),
        record_id: str = typer.Argument(..., help="Canonical id, or the record's id in any system."),
    ) -> None:
        """What came from where and what was written where, for one record."""

        async def go():
            async with open_engine(config_path) as engine:
                return history(engine, entity, record_id)

        cid, record, links, events = run(go())
        out.print(f"[bold]{entity} {cid}[/bold]" + (" (deleted)" if record and record.deleted else ""))
        for link in links:
            out.print(f"  {link.system}: {link.object} {link.external_id} [{link.status}]", highlight=False)
        if record:
            out.print("  values: " + json.dumps(record.values, ensure_ascii=False, default=str), highlight=False)
        table = Table(show_header=True)
        for col in ("when", "what", "system", "origin", "details"):
            table.add_column(col)
        for event in events:
            table.add_row(event.at.strftime("%Y-%m-%d %H:%M:%S"), event.kind, event.system or "", str(event.origin or ""),
                          escape(json.dumps(event.details, ensure_ascii=False, default=str)[:160]))
        out.print(table)

    @app.command()
    def discover(
        config_path: Path = ConfigArg,
        system: str = typer.Argument(..., help="A system name from the config."),
        object: Optional[str] = typer.Argument(None, help="Object/module/form to describe; omit to list objects."),
    ) -> None:
        """List a system's objects, or one object's fields (API name, type, required, picklist values)."""
        from .cli import UserError

        async def go():
            async with open_engine(config_path) as engine:
                if system not in engine.rt.connectors:
                    raise UserError(f"unknown system {system!r} (defined: {', '.join(engine.rt.connectors)})")
                connector = engine.rt.connector(system)
                return await (connector.describe(object) if object else connector.list_objects())

        items = run(go())
        table = Table()
        if object:
            for col in ("field", "label", "type", "required", "read only", "picklist / lookup"):
                table.add_column(col)
            for f in items:
                extra = ", ".join(f"{v}={l}" if l and l != v else v for v, l in (f.picklist or [])[:12]) or (f.lookup_object or "")
                table.add_row(f.name, f.label, f.type, "yes" if f.required else "", "yes" if f.read_only else "", extra)
        else:
            for col in ("object", "label", "custom"):
                table.add_column(col)
            for o in items:
                table.add_row(o.name, o.label, "yes" if o.custom else "")
        out.print(table)


@dlq_app.command("list")
def dlq_list(
    config_path: Path = ConfigArg,
    status: str = typer.Option("open", help="open, replayed, discarded or all."),
    limit: int = typer.Option(100, help="At most this many."),
) -> None:
    """Dead letters, newest first."""

    async def go():
        async with open_engine(config_path) as engine:
            return list_dead_letters(engine, status=status, limit=limit)

    letters = run(go())
    table = Table(title=f"dead letters ({status})")
    for col in ("id", "when", "flow", "system", "record", "stage", "code", "message"):
        table.add_column(col)
    for d in letters:
        table.add_row(str(d.id), d.created_at.strftime("%m-%d %H:%M"), d.flow or "", d.system or "",
                      d.external_id or d.canonical_id or "", str(d.stage), escape(d.code or ""), escape((d.message or "")[:80]))
    out.print(table)


@dlq_app.command("show")
def dlq_show(config_path: Path = ConfigArg, letter_id: int = typer.Argument(...)) -> None:
    """One dead letter with its payload."""

    async def go():
        async with open_engine(config_path) as engine:
            return get_dead_letter(engine, letter_id)

    d = run(go())
    out.print_json(json.dumps({
        "id": d.id, "status": str(d.status), "flow": d.flow, "entity": d.entity, "system": d.system, "object": d.object,
        "external_id": d.external_id, "canonical_id": d.canonical_id, "stage": str(d.stage), "code": d.code,
        "message": d.message, "attempts": d.attempts, "created_at": d.created_at.isoformat(), "payload": d.payload,
    }, ensure_ascii=False, default=str))


@dlq_app.command("replay")
def dlq_replay(config_path: Path = ConfigArg, letter_ids: list[int] = typer.Argument(..., help="Dead letter ids.")) -> None:
    """Replay dead letters through the normal reconciliation (current state is fetched again)."""

    async def go():
        async with open_engine(config_path) as engine:
            return await replay_dead_letters(engine, letter_ids)

    reports = run(go())
    out.print(summary_table(reports))


@dlq_app.command("discard")
def dlq_discard(config_path: Path = ConfigArg, letter_ids: list[int] = typer.Argument(...)) -> None:
    """Close dead letters without replaying them."""

    async def go():
        async with open_engine(config_path) as engine:
            return discard_dead_letters(engine, letter_ids)

    out.print(f"discarded {run(go())}")


@review_app.command("list")
def review_list(
    config_path: Path = ConfigArg,
    kind: Optional[str] = typer.Option(None, help="match, conflict or delete."),
    status: str = typer.Option("open", help="open, accepted, rejected or all."),
) -> None:
    """Open reviews with what a person needs to decide."""

    async def go():
        async with open_engine(config_path) as engine:
            return list_reviews(engine, status=status, kind=kind)

    table = Table(title=f"reviews ({status})")
    for col in ("id", "kind", "entity", "record", "question"):
        table.add_column(col)
    for r in run(go()):
        d = r.details or {}
        if r.kind == "match":
            question = f"{d.get('values', {}).get('name', '')!s} — {d.get('reason', '')}; candidates: " + ", ".join(
                f"{c['canonical_id'][:8]} {c.get('values', {}).get('name', '')} ({c['score']})" for c in d.get("candidates", []))
        elif r.kind == "conflict":
            question = f"{d.get('field')}: base {d.get('base')!r}; " + ", ".join(f"{s}={v!r}" for s, v in d.get("values", {}).items())
        else:
            question = f"deleted in {r.system}: delete everywhere?"
        table.add_row(str(r.id), str(r.kind), r.entity, r.external_id or (r.canonical_id or "")[:12], escape(question))
    out.print(table)


def _resolve(config_path: Path, review_id: int, accept: bool, choice: str | None) -> None:
    from .cli import UserError

    async def go():
        async with open_engine(config_path) as engine:
            try:
                return await resolve_review(engine, review_id, accept=accept, choice=choice)
            except ValueError as exc:
                raise UserError(str(exc)) from None

    review = run(go())
    out.print(f"review {review.id} {review.status}: {json.dumps(review.resolution, ensure_ascii=False, default=str)}")


@review_app.command("accept")
def review_accept(
    config_path: Path = ConfigArg,
    review_id: int = typer.Argument(...),
    choice: Optional[str] = typer.Option(None, "--choice", "--value", help="match: the canonical id to link to; conflict: the system whose value wins."),
) -> None:
    """Accept: link the match, take a system's value, or carry out the delete."""
    _resolve(config_path, review_id, True, choice)


@review_app.command("reject")
def review_reject(config_path: Path = ConfigArg, review_id: int = typer.Argument(...)) -> None:
    """Reject: create a separate record, keep the base value, or keep the record."""
    _resolve(config_path, review_id, False, None)
