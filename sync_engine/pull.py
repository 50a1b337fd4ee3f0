"""Pull a system's changes and stage them durably.

The cursor is read-inclusive: the next pull starts at the watermark minus the
overlap window, and versions already processed are skipped by (id, modified
time). While a pull runs, its progress (the connector's resume state and the
newest modified time seen) is saved with every page, in the transaction that
stages that page, so an interrupted pull continues where it stopped. The
watermark itself moves only after the staged records are reconciled.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from connectors.base import PullRequest, SourceRecord

from .context import Report, UnitOfWork
from .runtime import Runtime
from .state.models import Cursor, Link, Snapshot
from .state.models.pipeline import StagedChange
from .state.types import utc_now


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def stage_records(
    session: Session,
    entity: str,
    system: str,
    object: str,
    records: Sequence[SourceRecord],
    *,
    origin: str,
    run_id: int | None,
    force: bool = False,
    fetched_at: datetime | None = None,
) -> tuple[int, int]:
    """Stage new versions; skip versions already reconciled. Returns (staged, skipped).

    ``force`` stages even a version already seen (replays, reconciliation passes).
    ``fetched_at``: when the read that returned ``records`` was started; reconciliation uses it to
    tell a read that cannot show one of our later writes (see ``reconcile``).
    """
    fetched_at = fetched_at or utc_now()
    if not records:
        return 0, 0
    ids = [r.external_id for r in records]
    links = {
        link.external_id: link
        for link in session.scalars(
            select(Link).where(Link.system == system, Link.object == object, Link.external_id.in_(ids))
        )
    }
    seen: dict[str, datetime | None] = {}
    if links and not force:
        canonical = {link.canonical_id: ext for ext, link in links.items() if link.entity == entity}
        for snap in session.scalars(
            select(Snapshot).where(
                Snapshot.entity == entity, Snapshot.system == system, Snapshot.canonical_id.in_(list(canonical))
            )
        ):
            seen[canonical[snap.canonical_id]] = snap.source_modified_at
    staged_rows = {
        row.external_id: row
        for row in session.scalars(
            select(StagedChange).where(
                StagedChange.entity == entity,
                StagedChange.system == system,
                StagedChange.object == object,
                StagedChange.external_id.in_(ids),
            )
        )
    }
    staged = skipped = 0
    new_rows: dict[str, dict[str, Any]] = {}  # inserted together at the end, not as ORM objects one by one
    for record in records:
        ext = record.external_id
        if (
            not force
            and not record.deleted
            and record.modified_at is not None
            and ext in seen
            and seen[ext] is not None
            and seen[ext] >= record.modified_at
        ):
            skipped += 1  # this version (or a newer one) is already reconciled
            continue
        row = staged_rows.get(ext)
        new = new_rows.get(ext)
        if row is not None or new is not None:
            known = row.modified_at if row is not None else new["modified_at"]
            if known and record.modified_at and record.modified_at < known:
                skipped += 1  # an older version arriving late: the staged one is newer
                continue
        if row is not None:
            row.data = dict(record.data)
            row.modified_at = record.modified_at
            row.deleted = record.deleted
            row.origin = origin
            row.run_id = run_id
            row.staged_at = fetched_at
            if row.status == "deferred":
                row.status = "pending"
        else:
            new_rows[ext] = {
                "entity": entity,
                "system": system,
                "object": object,
                "external_id": ext,
                "modified_at": record.modified_at,
                "deleted": record.deleted,
                "data": dict(record.data),
                "origin": origin,
                "run_id": run_id,
                "status": "pending",
                "attempts": 0,
                "staged_at": fetched_at,
            }
        staged += 1
    if new_rows:
        session.execute(insert(StagedChange.__table__), list(new_rows.values()))
    return staged, skipped


async def pull_and_stage(
    rt: Runtime,
    uow: UnitOfWork,
    report: Report,
    flow_name: str,
    system: str,
    *,
    full: bool,
    run_id: int | None,
) -> None:
    flow = rt.flow(flow_name)
    entity = flow.entity
    mapper = rt.mappings.mapper(entity, system)
    connector = rt.connector(system)
    object = mapper.object
    key = (system, object, flow_name)

    with uow.tx() as session:
        cursor = session.get(Cursor, key)
        state: dict[str, Any] = dict(cursor.resume or {}) if cursor else {}
        watermark = cursor.watermark if cursor else None
    if state.get("complete"):
        return  # pulled before a crash; what it staged is still waiting to be reconciled
    if state.get("page") is not None:
        since = _parse(state.get("since"))
        resume = state["page"]
    else:
        since = None if full or watermark is None else watermark - rt.config.sync.overlap
        resume = None
    max_seen = _parse(state.get("max_seen"))

    request = PullRequest(object=object, fields=mapper.system_fields(), since=since, resume=resume)
    fetched_at = utc_now()
    async for page in connector.pull(request):
        with uow.tx() as session:
            staged, skipped = stage_records(
                session, entity, system, object, page.records, origin="poll", run_id=run_id, fetched_at=fetched_at
            )
            for record in page.records:
                max_seen = _later(max_seen, record.modified_at)
            _save_progress(session, key, {"since": _iso(since), "page": page.resume, "max_seen": _iso(max_seen)})
        report.count(system, "read", len(page.records))
        report.count(system, "skipped", skipped)
        fetched_at = utc_now()  # the next page is requested from here on
    with uow.tx() as session:
        _save_progress(session, key, {"since": _iso(since), "complete": True, "max_seen": _iso(max_seen)})


def _save_progress(session: Session, key: tuple[str, str, str], state: dict[str, Any]) -> None:
    cursor = session.get(Cursor, key)
    if cursor is None:
        cursor = Cursor(system=key[0], object=key[1], consumer=key[2])
        session.add(cursor)
    cursor.resume = state


def commit_cursor(session: Session, system: str, object: str, flow_name: str) -> None:
    """The pull's records are reconciled: move the watermark to the newest modified time seen."""
    cursor = session.get(Cursor, (system, object, flow_name))
    if cursor is None or not cursor.resume or not cursor.resume.get("complete"):
        return
    cursor.watermark = _later(cursor.watermark, _parse(cursor.resume.get("max_seen")))
    cursor.resume = None
