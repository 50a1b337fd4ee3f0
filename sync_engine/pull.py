"""Pull a system's changes and stage them durably.

The cursor is read-inclusive: the next pull starts at the watermark minus the
overlap window, and versions already processed are skipped by (id, modified
time). While a pull runs, its progress (the connector's resume state and the
newest modified time seen) is saved with every page, in the transaction that
stages that page, so an interrupted pull continues where it stopped. The
watermark itself moves only after the staged records are reconciled.

Settling. The overlap is there for records that become visible late (a slow
transaction stamps its rows when it starts, they show when it commits), and a
record becomes visible within ``sync.overlap`` of being written. A watermark W
was seen by a pull that ended at E, so every record stamped at or before W had
been written by E, and is visible to any pull that starts ``overlap`` after E.
Once such a pull has completed, nothing at or before W can still appear: W is
*settled*, and later pulls start at ``max(watermark - overlap, settled)``
instead of re-reading the window before a watermark that no longer moves. That
is what keeps a quiet system quiet: without it, every record crmsync itself
wrote in the last two minutes before the newest change was read again by every
pass, for as long as nothing newer changed. Only elapsed time on this machine
is compared with the overlap (no clocks of two systems are compared), and the
settled point is a watermark the source itself reported, so skew and time
zones do not enter. The bookkeeping (``settled``; the candidate ``mark`` and
the time ``marked_at`` it was seen) is kept in the cursor's ``tiebreak``.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.base import PullRequest, SourceRecord

from .context import Report, UnitOfWork
from .runtime import Runtime
from .state import bulk
from .state.models import Cursor, Link, Snapshot
from .state.models.pipeline import StagedChange
from .state.types import utc_now


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


#: Built once: ``json.dumps`` with options builds an encoder per call (a third of its cost here).
_CONTENT = json.JSONEncoder(separators=(",", ":"), default=str)


def version_hash(data: Mapping[str, Any]) -> str:
    """The content of a record as the system returned it, hashed: with its modified time, what tells one
    version from another. Two edits in one second share the modified time of a system whose times have
    whole seconds (Zoho's ``Modified_Time``); a read made between them saw the first, and a later read of
    the second carries a modified time already reconciled. Its content tells it from a true repeat.
    Keys are not sorted (a system returns one version's fields in one order): a reordering would only
    stage a repeat once, and reconciliation drops it by its values."""
    return hashlib.blake2b(_CONTENT.encode(data).encode(), digest_size=16).hexdigest()


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
    #: external id -> (modified time, version hash) of the version last reconciled
    seen: dict[str, tuple[datetime | None, str | None]] = {}
    hashes: dict[int, str] = {}

    def hash_of(record: SourceRecord) -> str:
        key = id(record)
        if key not in hashes:
            hashes[key] = version_hash(record.data)
        return hashes[key]

    def repeat(record: SourceRecord) -> bool:
        """This version (or a newer one) is already reconciled."""
        known = seen.get(record.external_id)
        if record.deleted or record.modified_at is None or known is None or known[0] is None:
            return False
        if known[0] != record.modified_at:
            return known[0] > record.modified_at
        # Same modified time: a repeat unless the content differs (a second edit in the same second).
        # No hash (a version reconciled before hashes were kept): taken as a repeat, as it always was.
        return known[1] is None or known[1] == hash_of(record)

    if not force:
        # Plain columns, not ORM objects: a pull that re-reads its overlap window (or a settled second)
        # skips most of what it reads, and that check should cost no more than two narrow queries.
        # The entity is checked here, not in SQL: with ``entity = ?`` in the WHERE, SQLite (no statistics)
        # picked the (entity, canonical_id, system) index and walked every link of the entity — a
        # no-op pass then cost O(links) (1 s at 30k accounts). (system, object, external_id) is unique.
        canonical = {
            canonical_id: ext
            for ext, canonical_id, link_entity in session.connection().execute(
                select(Link.external_id, Link.canonical_id, Link.entity).where(
                    Link.system == system, Link.object == object, Link.external_id.in_(ids)
                )
            )
            if link_entity == entity
        }
        if canonical:
            for canonical_id, modified, source_hash in session.connection().execute(
                select(Snapshot.canonical_id, Snapshot.source_modified_at, Snapshot.source_hash).where(
                    Snapshot.entity == entity, Snapshot.system == system, Snapshot.canonical_id.in_(list(canonical))
                )
            ):
                seen[canonical[canonical_id]] = (modified, source_hash)
    wanted = [r.external_id for r in records if not repeat(r)] if seen else ids
    staged_rows = {
        row.external_id: row
        for row in session.scalars(
            select(StagedChange).where(
                StagedChange.entity == entity,
                StagedChange.system == system,
                StagedChange.object == object,
                StagedChange.external_id.in_(wanted),
            )
        )
    } if wanted else {}
    staged = skipped = 0
    new_rows: dict[str, dict[str, Any]] = {}  # inserted together at the end, not as ORM objects one by one
    for record in records:
        ext = record.external_id
        if not force and repeat(record):
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
            row.data_hash = hash_of(record)
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
                "data_hash": hash_of(record),
                "origin": origin,
                "run_id": run_id,
                "status": "pending",
                "attempts": 0,
                "staged_at": fetched_at,
            }
        staged += 1
    if new_rows:
        bulk.insert_rows(session, StagedChange.__table__, list(new_rows.values()))
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
    on_page: Callable[[], object] | None = None,
) -> None:
    """Read ``system``'s changes since its cursor and stage them, page by page; ``on_page`` is called
    after each page's transaction."""
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
        book: dict[str, Any] = dict(cursor.tiebreak or {}) if cursor else {}
        first = watermark is None and not state and not _linked(session, system, object)
    if state.get("complete"):
        return  # pulled before a crash; what it staged is still waiting to be reconciled
    if state.get("page") is not None:
        since = _parse(state.get("since"))
        resume = state["page"]
        started = state.get("started")
        deletes = state.get("deletes", True)
        strict = bool(state.get("strict"))
    else:
        overlap = rt.config.sync.overlap
        settled = _parse(book.get("settled"))
        strict = False
        if full or watermark is None:
            since = None
        else:
            since = watermark - overlap
            if settled is not None and settled > since:
                # Everything up to ``settled`` has been read after it was visible for sure; the strictly
                # later bound (inclusive by the request's contract) skips the settled instant itself.
                since, strict = settled + SETTLED_STEP, True
        resume = None
        started = utc_now().isoformat()
        # A first sync of this object (nothing linked, no watermark) has no deletions to learn: every
        # record it does not see simply is not synced. Skipping the deleted-records list (Zoho) or the
        # invalidated-records query (Fxiaoke) saves their calls; a record deleted while this pull runs is
        # deleted after its start, so the next incremental pull's list (from the watermark minus the
        # overlap) still reports it.
        deletes = not first
    max_seen = _parse(state.get("max_seen"))
    progress = {"since": _iso(since), "started": started, "deletes": deletes, "strict": strict}

    request = PullRequest(
        object=object, fields=mapper.system_fields(), since=since, resume=resume, include_deleted=bool(deletes),
        settled=strict,
    )
    fetched_at = utc_now()
    async for page in connector.pull(request):
        with uow.tx() as session:
            staged, skipped = stage_records(
                session, entity, system, object, page.records, origin="poll", run_id=run_id, fetched_at=fetched_at
            )
            for record in page.records:
                max_seen = _later(max_seen, record.modified_at)
            _save_progress(session, key, {**progress, "page": page.resume, "max_seen": _iso(max_seen)})
        report.count(system, "read", len(page.records))
        report.count(system, "skipped", skipped)
        if on_page is not None:
            on_page()
        fetched_at = utc_now()  # the next page is requested from here on
    with uow.tx() as session:
        _save_progress(
            session, key,
            {**progress, "complete": True, "max_seen": _iso(max_seen),
             "overlap_s": _settle_after(rt.config.sync.overlap, connector, object).total_seconds()},
        )


#: How far past the settled instant the next pull starts: the request's lower bound is inclusive and the
#: settled instant was read; one microsecond is below every source's resolution (Fxiaoke: milliseconds).
SETTLED_STEP = timedelta(microseconds=1)


def _linked(session: Session, system: str, object: str) -> bool:
    """Anything of this object known already: linked, or staged and not yet reconciled."""
    if session.scalar(select(Link.id).where(Link.system == system, Link.object == object).limit(1)) is not None:
        return True
    staged = select(StagedChange.external_id).where(StagedChange.system == system, StagedChange.object == object)
    return session.scalar(staged.limit(1)) is not None


def _settle_after(overlap: timedelta, connector: Any, object: str) -> timedelta:
    """How long after a pull saw an instant the next pull must start for that instant to settle: the
    overlap (plus the connector's own look-back), and at least one step of the source's modified times,
    or a second edit in the instant's step, made after the pull, would be stamped at a settled instant
    (a ``sync.overlap`` below one second, with a source of whole seconds)."""
    return max(overlap + connector.visibility_lag(object), connector.timestamp_resolution(object))


def _save_progress(session: Session, key: tuple[str, str, str], state: dict[str, Any]) -> None:
    cursor = session.get(Cursor, key)
    if cursor is None:
        cursor = Cursor(system=key[0], object=key[1], consumer=key[2])
        session.add(cursor)
    cursor.resume = state


def commit_cursor(session: Session, system: str, object: str, flow_name: str) -> None:
    """The pull's records are reconciled: move the watermark to the newest modified time seen.

    Then settle (see the module's docstring): if this pull started at least the overlap after the
    candidate mark was seen (plus the connector's own visibility lag), the mark is settled; the
    watermark now is the next candidate.
    """
    cursor = session.get(Cursor, (system, object, flow_name))
    if cursor is None or not cursor.resume or not cursor.resume.get("complete"):
        return
    state = cursor.resume
    cursor.watermark = _later(cursor.watermark, _parse(state.get("max_seen")))
    cursor.resume = None
    started = _parse(state.get("started"))
    overlap = state.get("overlap_s")
    if started is None or overlap is None or cursor.watermark is None:
        return  # progress saved by an older version: keep the plain overlap
    book = dict(cursor.tiebreak or {})
    mark, marked_at = _parse(book.get("mark")), _parse(book.get("marked_at"))
    if mark is not None and marked_at is not None and started >= marked_at + timedelta(seconds=float(overlap)):
        book["settled"] = _iso(_later(_parse(book.get("settled")), min(mark, cursor.watermark)))
        mark = None
    if mark is None:
        book["mark"], book["marked_at"] = _iso(cursor.watermark), utc_now().isoformat()
    cursor.tiebreak = book
