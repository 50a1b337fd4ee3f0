"""Send decided writes (the outbox) to the target systems and record the outcomes.

Rows go ``pending → sent`` in a committed transaction *before* the API call, so
after a crash a ``sent`` row is known to be "in doubt": :func:`recover_in_doubt`
resends updates and deletes (they are idempotent) and looks for a create in the
target before making it again. Each success updates the target's snapshot with
exactly what was written — that is how its echo is recognised later. A record
the target rejects goes to the dead-letter queue with the target's code and
message; the rest of the batch carries on.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from connectors.base import WITHDRAWN, PullRequest, WriteOp, WriteResult
from connectors.errors import ConnectorError, QuotaExhausted, RateLimited, TransientError
from connectors.http import retried, single_attempt
from mapping.canonical import canonical_hash
from mapping.compiler import CANONICAL_ID_FIELD
from mapping.errors import MappingError
from mapping.references import UnresolvedReference

from . import records as rec
from .context import PlannedWrite, Report, UnitOfWork
from .links import LinkResolver
from .pull import stage_records
from .runtime import Runtime
from .state.models import Cursor, Link, Record, Snapshot, SystemState
from .state.models import Review
from .state.models.enums import DeadLetterStage, LinkStatus, ReviewKind, ReviewStatus, SnapshotAction
from .state.models.pipeline import OutboxWrite
from .state.types import utc_now

log = logging.getLogger(__name__)


#: Outbox rows sent per round: bounded memory however many writes a first sync decides.
PUSH_CHUNK = 2000

#: The outbox columns sending reads and writes back (not ``created_at``: never looked at here).
_OUTBOX_COLUMNS = [c for c in OutboxWrite.__table__.columns if c.name != "created_at"]


async def push_pending(
    rt: Runtime,
    uow: UnitOfWork,
    report: Report,
    entity: str,
    *,
    run_id: int | None,
    dry_run: bool,
    ids: list[int] | None = None,
) -> None:
    """Send every pending outbox row of ``entity`` (or just ``ids``), grouped by target system."""
    after = 0
    while (after := await _push_chunk(rt, uow, report, entity, run_id=run_id, dry_run=dry_run, ids=ids, after=after)):
        pass


def _create_context(session, entity: str, cids: list[str]) -> dict[str, dict[str, Any]]:
    """Canonical values of the records about to be created somewhere (one query per chunk)."""
    if not cids:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for part in rec.chunks(cids):
        # Plain rows: the values are only read, ORM objects would cost more than the query.
        for cid, values in session.connection().execute(
            select(Record.canonical_id, Record.values).where(Record.entity == entity, Record.canonical_id.in_(part))
        ):
            out[cid] = dict(values or {})
    return out


async def _push_chunk(
    rt: Runtime, uow: UnitOfWork, report: Report, entity: str, *, run_id: int | None, dry_run: bool,
    ids: list[int] | None, after: int,
) -> int:
    """One round of at most PUSH_CHUNK rows with ids above ``after``; returns the last id, 0 when done.

    Walking by id means a write put back for later (an outage) is not retried in the same call."""
    plans: dict[str, list[tuple[int, WriteOp]]] = defaultdict(list)
    with uow.tx() as session:
        query = select(*_OUTBOX_COLUMNS).where(
            OutboxWrite.entity == entity, OutboxWrite.status == "pending", OutboxWrite.id > after
        )
        if ids is not None:
            query = query.where(OutboxWrite.id.in_(ids))
        query = query.order_by(OutboxWrite.id).limit(PUSH_CHUNK)
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        # Plain rows, written back with one UPDATE at the end of this block (see the last line).
        rows = rec.load_rows(session, query)
        resolver = LinkResolver(session)
        waiting = _awaiting_match(session, entity)
        context = _create_context(session, entity, [r.canonical_id for r in rows if r.action == "create"])
        # The records these writes point at (a contact's account), read in one query per system.
        resolver.prefetch_external_ids(
            ref for row in rows if row.action != "delete"
            for ref in rt.mappings.mapper(entity, row.system).ids_referenced_by(row.values)
        )
        #: system -> the canonical fields its mapping writes (the mapper builds that list on every call)
        writes_of: dict[str, frozenset[str]] = {}
        for row in rows:
            if row.action == "create" and (row.system, row.canonical_id) in waiting:
                # A person is deciding whether a record already in that system is this one.
                row.status = "deferred"
                continue
            mapper = rt.mappings.mapper(entity, row.system)
            write_fields = writes_of.get(row.system)
            if write_fields is None:
                write_fields = writes_of[row.system] = frozenset(mapper.write_fields)
            try:
                # The canonical id travels along for systems that key records by it (interface tables).
                values = {**row.values, CANONICAL_ID_FIELD: row.canonical_id}
                keyed_by_id = CANONICAL_ID_FIELD in write_fields
                if row.action == "delete":
                    data: dict[str, Any] = mapper.to_system(values, resolver, fields=[CANONICAL_ID_FIELD]) if keyed_by_id else {}
                elif row.action == "create":
                    # Write transforms may read fields this system does not store, e.g. Zoho's
                    # Last_Name from the one-field name of a Chinese contact: coalesce(value, record.name).
                    extra = {f: v for f, v in context.get(row.canonical_id, {}).items() if f not in write_fields}
                    data = mapper.to_system({**extra, **values}, resolver)
                else:
                    data = mapper.to_system(values, resolver, fields=[*row.values, *([CANONICAL_ID_FIELD] if keyed_by_id else [])])
            except UnresolvedReference as exc:
                row.attempts += 1
                row.error = str(exc)
                if row.attempts >= rt.config.sync.max_attempts:
                    _fail(rt, session, report, row, "reference.unresolved", str(exc), DeadLetterStage.REFERENCE, run_id)
                else:
                    row.status = "deferred"
                    report.count(row.system, "deferred")
                continue
            except MappingError as exc:
                _fail(rt, session, report, row, f"mapping.{exc.code}", exc.describe(), DeadLetterStage.MAP, run_id)
                continue
            if row.action == "update" and not data:
                row.status = "done"  # nothing this system stores changed after all
                continue
            row.status = "sent"
            row.sent_at = utc_now()
            row.attempts += 1
            plans[row.system].append(
                (row.id, WriteOp(key=row.op_key, action=row.action, data=data, external_id=row.external_id))
            )
        rec.save_rows(session, OutboxWrite, rows, ["status", "sent_at", "attempts", "error"])

    by_id = {row.id: row for row in rows}

    async def send(system: str, planned: list[tuple[int, WriteOp]]) -> None:
        if not dry_run:
            with uow.tx() as session:
                # Sent from now, not from when the rows were claimed: the wait for a slot may have been
                # long, and a create "sent" longer ago than recovery waits is looked for, not found (not
                # sent yet) and sent once more by another worker — a twin.
                session.execute(update(OutboxWrite).where(OutboxWrite.id.in_([row_id for row_id, _ in planned]))
                                .values(sent_at=utc_now()))
        ops = [op for _, op in planned]
        connector = rt.connector(system)
        #: row id -> when the check's last read of that record came back (written to the write's audit event)
        checked_at: dict[int, datetime] = {}
        object = rt.mappings.mapper(entity, system).object
        if dry_run:
            results = [
                WriteResult(key=op.key, ok=True, external_id=op.external_id or f"dry-run:{row_id}")
                for row_id, op in planned
            ]
        else:
            results = []
            row_of = {op.key: row_id for row_id, op in planned}

            async def check(updates) -> set[str]:
                # The connector's last moment before the call: the target is read once more (see
                # _without_overwrites); the updates that would overwrite an edit are withdrawn.
                asked = [(row_of[op.key], op) for op in updates]
                return await _checked(rt, uow, report, entity, system, asked, by_id, run_id, checked_at)

            for start, end, updates in _runs_of_updates(ops):
                try:
                    # An update is checked against the target right before its call: replayed after a
                    # backoff it could overwrite a user's edit made meanwhile. It fails back to the outbox
                    # instead, and is checked again before it is sent again.
                    if updates:
                        with single_attempt():
                            results.extend(await connector.push_checked(object, ops[start:end], check))
                    else:
                        results.extend(await connector.push(object, ops[start:end]))
                except ConnectorError as exc:
                    _call_failed(rt, uow, report, system, [row_id for row_id, _ in planned[start:]], exc)
                    planned = planned[:start]
                    break
            # Withdrawn by the check: already put back (superseded, staged, or pending again) there.
            kept = [(p, r) for p, r in zip(planned, results, strict=True) if r.code != WITHDRAWN]
            planned, results = [p for p, _ in kept], [r for _, r in kept]
            if not planned:
                return
        # No await inside: this transaction never interleaves with another system's.
        with uow.tx() as session, session.no_autoflush, rec.batched_inserts(session):
            cache = _ApplyCache.load(session, entity, system, [row_id for row_id, _ in planned])
            for (row_id, op), result in zip(planned, results, strict=True):
                _apply(rt, session, report, cache.rows[row_id], op, result, run_id, cache,
                       checked_at=checked_at.get(row_id))
            cache.save(session)

    # Each target system works through its own limits; they do not wait for one another.
    await asyncio.gather(*(send(system, planned) for system, planned in plans.items()))
    return rows[-1].id if rows else 0


def _runs_of_updates(ops: list[WriteOp]) -> list[tuple[int, int, bool]]:
    """Consecutive runs of updates and of other writes, in order: (start, end, are updates)."""
    runs: list[tuple[int, int, bool]] = []
    for i, op in enumerate(ops):
        updates = op.action == "update"
        if runs and runs[-1][2] == updates:
            runs[-1] = (runs[-1][0], i + 1, updates)
        else:
            runs.append((i, i + 1, updates))
    return runs


#: A check whose read was sent longer ago than this is done again before the write goes out.
CHECK_FRESH_SECONDS = 0.5
#: ... at most this many times; then the write goes out on the last one (a machine that slow would
#: otherwise never write).
CHECK_ROUNDS = 3


async def _checked(
    rt: Runtime, uow: UnitOfWork, report: Report, entity: str, system: str, asked: list[tuple[int, WriteOp]],
    rows: dict[int, Any], run_id: int | None, checked_at: dict[int, datetime] | None = None,
) -> set[str]:
    """The keys of the updates :func:`_without_overwrites` withdraws, with a read fresh when the write goes out.

    A user's edit landing after the check's read and before the write is overwritten. That window is not
    only the network's: the read's answer may wait for this process's event loop while another worker
    reconciles a batch (seconds on a loaded machine; chaos seed 38 lost an edit made 3.9 s before our
    write). So the time from sending the read to deciding is measured, and a check that took longer than
    ``CHECK_FRESH_SECONDS`` is done again with a new read."""
    withdrawn: set[str] = set()
    for round_ in range(CHECK_ROUNDS):
        started = time.monotonic()
        kept = {op.key for _, op in await _without_overwrites(rt, uow, report, entity, system, asked, rows, run_id,
                                                              checked_at)}
        withdrawn |= {op.key for _, op in asked if op.key not in kept}
        asked = [(row_id, op) for row_id, op in asked if op.key in kept]
        if not asked or time.monotonic() - started <= CHECK_FRESH_SECONDS:
            break
        if round_ + 1 < CHECK_ROUNDS:
            report.count(system, "rechecked")
    return withdrawn


async def _without_overwrites(
    rt: Runtime, uow: UnitOfWork, report: Report, entity: str, system: str, planned: list[tuple[int, WriteOp]],
    rows: dict[int, Any], run_id: int | None, checked_at: dict[int, datetime] | None = None,
) -> list[tuple[int, WriteOp]]:
    """Read the records about to be updated once more, right before writing: a user may have edited
    one of the fields since we last read that system (the APIs offer no conditional write). Such an
    update is not sent — it would overwrite that edit, which no later read could bring back; the
    record is staged instead, and its next merge weighs the edit against the others by policy.

    Every edit landing between that read and the write is lost, so nothing else sits between them:
    what we hold (snapshots, the records, open reviews) is read before, and after the read an update
    that is sent costs no query (only a withdrawn one is written down, and a reference resolved)."""
    updates = [(row_id, op) for row_id, op in planned if op.action == "update" and op.external_id]
    if not updates:
        return planned
    mapper = rt.mappings.mapper(entity, system)
    equal = rec.field_equality(rt.mappings.models[entity])
    outdated: set[int] = set()
    with uow.tx() as session:
        cids = list({rows[row_id].canonical_id for row_id, _ in updates})
        snapshots = {
            cid: dict(values or {})
            for cid, values in session.execute(select(Snapshot.canonical_id, Snapshot.values).where(
                Snapshot.entity == entity, Snapshot.system == system, Snapshot.canonical_id.in_(cids),
            ))
        }
        canonical = {
            cid: (dict(values or {}), deleted)
            for cid, values, deleted in session.execute(
                select(Record.canonical_id, Record.values, Record.deleted)
                .where(Record.entity == entity, Record.canonical_id.in_(cids))
            )
        }
        frozen = {
            (r.canonical_id, (r.details or {}).get("field"))
            for r in session.scalars(select(Review).where(
                Review.kind == ReviewKind.CONFLICT, Review.status == ReviewStatus.OPEN,
                Review.entity == entity, Review.canonical_id.in_(cids),
            ))
        }
        for row_id, _ in updates:
            row = rows[row_id]
            now, deleted = canonical.get(row.canonical_id, ({}, False))
            if deleted or any((row.canonical_id, f) in frozen or (f in now and not equal(f, v, now[f]))
                              for f, v in row.values.items()):
                # A merge since this write was decided changed the record, deleted it (or a person now
                # decides a field): that merge planned its own writes; this one would undo it, or fail.
                outdated.add(row_id)
                session.get(OutboxWrite, row_id).status = "superseded"
    updates = [(row_id, op) for row_id, op in updates if row_id not in outdated]
    if not updates:
        return [(row_id, op) for row_id, op in planned if row_id not in outdated]
    fetched_at = utc_now()
    try:
        # A read: retried after a transient failure even right before a write that is not (single_attempt).
        with retried():
            records = await rt.connector(system).fetch(mapper.object, sorted({op.external_id for _, op in updates}),
                                                        mapper.system_fields())
    except ConnectorError as exc:
        # Not knowing what the target holds now, writing could overwrite an edit: the updates wait.
        _call_failed(rt, uow, report, system, [row_id for row_id, _ in updates], exc)
        held = {row_id for row_id, _ in updates} | outdated
        return [(row_id, op) for row_id, op in planned if row_id not in held]
    if checked_at is not None:
        # An edit the target took before this moment was in the answer; one after it, before our write
        # lands, is overwritten (no conditional write). The audit trail keeps the moment, so such a loss
        # can be told from a bug (bench/chaos.py's checker does).
        answered = utc_now()
        for row_id, _ in updates:
            checked_at[row_id] = answered
    current = {r.external_id: r for r in records}
    edited: dict[int, Any] = {}
    with uow.tx() as session:
        resolver = LinkResolver(session)  # queries only for a reference field
        for row_id, op in updates:
            row, record = rows[row_id], current.get(str(op.external_id))
            snapshot = snapshots.get(row.canonical_id)
            if record is not None and record.deleted:
                # Deleted there since: the update could only fail (a dead letter); the tombstone,
                # staged, brings the delete in instead.
                edited[row_id] = record
                continue
            if record is None or snapshot is None:
                continue
            try:
                values = mapper.to_canonical(record.data, resolver)
            except (MappingError, UnresolvedReference):
                continue
            if any(f in values and f in snapshot and not equal(f, values[f], snapshot[f]) for f in row.values):
                edited[row_id] = record
        if edited:
            for row_id in edited:
                session.get(OutboxWrite, row_id).status = "superseded"
                report.count(system, "deferred")
            stage_records(session, entity, system, mapper.object, list({id(r): r for r in edited.values()}.values()),
                          origin="poll", run_id=run_id, force=True, fetched_at=fetched_at)
    return [(row_id, op) for row_id, op in planned if row_id not in edited and row_id not in outdated]


def _awaiting_match(session, entity: str) -> set[tuple[str, str]]:
    """(system, canonical id) pairs named as candidates by an open match review of that system."""
    out: set[tuple[str, str]] = set()
    for review in session.scalars(
        select(Review).where(Review.kind == ReviewKind.MATCH, Review.status == ReviewStatus.OPEN, Review.entity == entity)
    ):
        for candidate in (review.details or {}).get("candidates", []):
            out.add((review.system, candidate.get("canonical_id")))
    return out


def _call_failed(rt: Runtime, uow: UnitOfWork, report: Report, system: str, row_ids: list[int], exc: ConnectorError) -> None:
    """The whole call failed (outage, auth, quota): the writes wait for the next pass."""
    report.errors.append(f"{system}: {exc}")
    log.warning("writes to %s postponed: %s", system, exc)
    with uow.tx() as session:
        for row_id in row_ids:
            row = session.get(OutboxWrite, row_id)
            # A create that failed in flight (a 500, a lost answer) may have landed: sent again blindly it
            # makes a twin, or brings back a record a user deleted before we saw it. In doubt, it is looked
            # for in the target first (recover_in_doubt). Refused calls (auth, quota, throttling) sent nothing.
            row.status = "sent" if row.action == "create" and _maybe_landed(exc) else "pending"
            row.error = str(exc)
        if isinstance(exc, QuotaExhausted):
            state = session.get(SystemState, system) or SystemState(system=system)
            state.paused_until = exc.until
            state.pause_reason = str(exc)
            session.add(state)


def _maybe_landed(exc: ConnectorError) -> bool:
    return isinstance(exc, TransientError) and not isinstance(exc, RateLimited)


def _fail(rt: Runtime, session, report: Report, row: OutboxWrite, code: str | None, message: str, stage, run_id) -> None:
    row.status = "failed"
    row.error = message
    rec.dead_letter(
        session, entity=row.entity, flow=row.flow, system=row.system, object=row.object,
        external_id=row.external_id, canonical_id=row.canonical_id, stage=stage, code=code, message=message,
        payload={"action": row.action, "values": row.values, "op_key": row.op_key}, attempts=row.attempts, run_id=run_id,
    )
    report.count(row.system, "dead_letters")


class _ApplyCache:
    """The outbox rows, snapshots and links one batch of results touches, read in three queries."""

    #: the outbox columns applying a result changes
    COLUMNS = ("status", "error", "done_at", "external_id")

    def __init__(self) -> None:
        self.rows: dict[int, rec.NewRow] = {}
        self.snapshots: dict[tuple[str, str], Snapshot] = {}
        self.links: dict[tuple[str, str], Link] = {}
        #: canonical ids of the created records that are deleted (read for the creates only)
        self.deleted: set[str] = set()

    @classmethod
    def load(cls, session, entity: str, system: str, row_ids: list[int]) -> "_ApplyCache":
        cache = cls()
        cache.rows = {
            r.id: r for r in rec.load_rows(session, select(*_OUTBOX_COLUMNS).where(OutboxWrite.id.in_(row_ids)))
        }
        cids = list({r.canonical_id for r in cache.rows.values()})
        for snap in session.scalars(select(Snapshot).where(
            Snapshot.entity == entity, Snapshot.system == system, Snapshot.canonical_id.in_(cids)
        )):
            cache.snapshots[(snap.canonical_id, system)] = snap
        for link in session.scalars(select(Link).where(
            Link.entity == entity, Link.system == system, Link.canonical_id.in_(cids)
        )):
            cache.links[(link.canonical_id, system)] = link
        created = list({r.canonical_id for r in cache.rows.values() if r.action == "create"})
        for part in rec.chunks(created):
            cache.deleted.update(session.scalars(select(Record.canonical_id).where(
                Record.entity == entity, Record.canonical_id.in_(part), Record.deleted.is_(True)
            )))
        return cache

    def save(self, session) -> None:
        rec.save_rows(session, OutboxWrite, list(self.rows.values()), list(self.COLUMNS))


def _undo_twin(rt: Runtime, session, report: Report, row: OutboxWrite, result: WriteResult, link, run_id) -> None:
    """Our create landed, but the record got linked in that system while the call waited for its turn:
    another run matched a copy already there (say our earlier create in doubt, found by its tax id) and
    superseded this create, too late to stop it. Two copies of one record: the one just made, which
    nobody has seen or edited yet, is deleted; the link keeps the copy that was matched."""
    twin = str(result.external_id)
    row.external_id = twin
    rec.queue_write(session, entity=row.entity, canonical_id=row.canonical_id, system=row.system,
                    object=row.object, action="delete", external_id=twin, values={},
                    flow=row.flow or "", origin=row.origin or "poll", run_id=run_id)
    rec.audit(
        session, "write", entity=row.entity, canonical_id=row.canonical_id, system=row.system, object=row.object,
        external_id=twin, origin=row.origin, run_id=run_id,
        details={"action": "create", "twin_of": link.external_id, "op_key": row.op_key,
                 "note": "linked to another copy meanwhile: this one is deleted"},
    )
    report.count(row.system, "created")


def _apply(
    rt: Runtime, session, report: Report, row: OutboxWrite, op: WriteOp, result: WriteResult, run_id,
    cache: _ApplyCache | None = None, *, checked_at: datetime | None = None,
) -> None:
    entity = row.entity
    model = rt.mappings.models[entity]
    if cache is None:
        cache = _ApplyCache.load(session, entity, row.system, [row.id])
        _apply(rt, session, report, cache.rows[row.id], op, result, run_id, cache, checked_at=checked_at)
        cache.save(session)
        return
    if not result.ok:
        if result.retryable and row.attempts < rt.config.sync.max_attempts:
            # A create may have landed though it failed (see _call_failed): in doubt, not pending.
            row.status = "sent" if row.action == "create" else "pending"
            row.error = f"{result.code}: {result.message}"
            report.count(row.system, "deferred")
            return
        _fail(rt, session, report, row, result.code, result.message or "rejected", DeadLetterStage.PUSH, run_id)
        return
    row.status = "done"
    row.done_at = utc_now()
    key = (row.canonical_id, row.system)
    snapshot = cache.snapshots.get(key)
    before = dict(snapshot.values) if snapshot is not None else {}
    link = cache.links.get(key)
    if row.action == "create" and link is not None and link.status == LinkStatus.ACTIVE \
            and link.external_id != str(result.external_id):
        _undo_twin(rt, session, report, row, result, link, run_id)
        return
    if row.action == "create":
        if link is None:
            fields = {"entity": entity, "canonical_id": row.canonical_id, "system": row.system, "object": row.object,
                      "external_id": str(result.external_id), "status": LinkStatus.ACTIVE,
                      "last_synced_at": utc_now(), "created_at": utc_now()}
            buffer = rec.buffer_of(session)
            if buffer is not None:
                link = buffer.add(Link, fields)
            else:
                link = Link(**fields)
                session.add(link)
            cache.links[key] = link
        row.external_id = str(result.external_id)
        if row.canonical_id in cache.deleted and link.status == LinkStatus.ACTIVE:
            # Deleted elsewhere while this create was in flight or in doubt (its delete could not name
            # this copy yet): the copy goes too, or the delete is lost here.
            rec.queue_write(session, entity=entity, canonical_id=row.canonical_id, system=row.system,
                            object=row.object, action="delete", external_id=str(result.external_id), values={},
                            flow=row.flow or "", origin=row.origin or "poll", run_id=run_id)
    elif row.action == "delete" and link is not None and link.external_id == row.external_id:
        link.status = LinkStatus.DELETED  # (a twin's delete leaves the record's link alone)
    if row.action != "delete":
        # The modified time a write returns is not a version we have read: the record may also hold a
        # user's edit made just before our write and not read yet. Recorded as "seen", it would make
        # every later read of that version look like our echo and be skipped, and the edit would never
        # sync. Our own echo is recognised by its values instead (they equal the snapshot).
        cache.snapshots[key] = rec.save_snapshot(
            session, entity=entity, canonical_id=row.canonical_id, system=row.system, values=row.values,
            modified_at=None, action=SnapshotAction.WRITE, op_key=row.op_key,
            hash_of=lambda values: canonical_hash(values, model), existing=snapshot, look_up=False,
        )
    counter = {"create": "created", "update": "updated", "delete": "deleted"}[row.action]
    report.count(row.system, counter)
    rt.metrics.records.labels(row.flow or "", row.system, row.action).inc()
    changes = {f: (before.get(f), v) for f, v in row.values.items()}
    if report.dry_run:
        # Only a dry run prints them; kept for every write, a first sync of a million records would
        # hold a million of them until the pass ends.
        report.planned.append(
            PlannedWrite(flow=row.flow or "", system=row.system, action=row.action, canonical_id=row.canonical_id,
                         external_id=row.external_id, changes=changes)
        )
    details = {"action": row.action, "changes": {f: [a, b] for f, (a, b) in changes.items()},
               "pending": result.pending, "op_key": row.op_key}
    if checked_at is not None:
        # When the read that cleared this update came back: the target's edits after it were not seen.
        details["checked_at"] = checked_at.isoformat()
    rec.audit(
        session, "write", entity=entity, canonical_id=row.canonical_id, system=row.system, object=row.object,
        external_id=row.external_id, origin=row.origin, run_id=run_id, details=details,
    )


async def recover_in_doubt(rt: Runtime, uow: UnitOfWork, report: Report, entity: str, *, older_than: timedelta) -> int:
    """Settle writes a crashed worker sent without recording the outcome.

    Updates and deletes are resent. A create is looked for first: the target's
    records changed since the send are pulled and compared with what we meant to
    write; a match is linked instead of created again.
    """
    cutoff = utc_now() - older_than
    with uow.tx() as session:
        rows = list(
            session.scalars(
                select(OutboxWrite).where(
                    OutboxWrite.entity == entity, OutboxWrite.status == "sent", OutboxWrite.sent_at < cutoff
                )
            )
        )
        alive = _runs_still_working(session, {row.run_id for row in rows if row.run_id is not None})
        creates: dict[str, list[int]] = defaultdict(list)
        for row in rows:
            if row.run_id in alive:
                continue  # its run's worker still holds its job: the send is slow, not lost
            if row.action == "create":
                creates[row.system].append(row.id)
            elif row.action == "update" and not _refresh_update(session, row):
                row.status = "superseded"
            else:
                row.status = "pending"
    settled = 0
    for system, row_ids in creates.items():
        settled += await _find_created(rt, uow, report, entity, system, row_ids)
    return len(rows)


def _runs_still_working(session, run_ids: set[int]) -> set[int]:
    """Runs whose job a live worker still holds (running, lease not expired). On a loaded machine a
    send can take longer than recovery waits; taken for lost, a create was looked for before it
    landed, not found, and sent again by another worker: a twin."""
    if not run_ids:
        return set()
    from .state.models import Job, Run
    from .state.models.enums import JobStatus, RunStatus

    return set(session.scalars(
        select(Run.id).join(Job, Job.id == Run.job_id).where(
            Run.id.in_(list(run_ids)), Run.status == RunStatus.RUNNING,
            Job.status == JobStatus.RUNNING, Job.lease_expires_at > utc_now(),
        )
    ))


def _refresh_update(session, row: OutboxWrite) -> bool:
    """An update in doubt is resent with what the record holds *now*: its own values may be long
    stale (a worker killed mid-call, recovered minutes later), and sent as they were they would undo
    every change synced since. Fields a person is deciding are left out. False: nothing left to send."""
    record = session.get(Record, (row.entity, row.canonical_id))
    if record is None or record.deleted:
        return False
    frozen = {
        (r.details or {}).get("field")
        for r in session.scalars(select(Review).where(
            Review.kind == ReviewKind.CONFLICT, Review.status == ReviewStatus.OPEN,
            Review.entity == row.entity, Review.canonical_id == row.canonical_id,
        ))
    }
    values = {f: record.values[f] for f in row.values if f in record.values and f not in frozen}
    if not values:
        return False
    row.values = values
    return True


async def _find_created(rt: Runtime, uow: UnitOfWork, report: Report, entity: str, system: str, row_ids: list[int]) -> int:
    mapper = rt.mappings.mapper(entity, system)
    model = rt.mappings.models[entity]
    equal = rec.field_equality(model)
    from .reconcile import match_specs  # reconcile's matching rules; imported here to keep modules apart

    strong = [spec.field for spec in match_specs(rt, entity) if spec.strong]
    with uow.tx() as session:
        rows = {row_id: session.get(OutboxWrite, row_id) for row_id in row_ids}
        # Linked there meanwhile (matched to the record a user or an earlier send made): sending the
        # create again would only add a twin of it.
        linked = set(session.scalars(select(Link.canonical_id).where(
            Link.entity == entity, Link.system == system,
            Link.canonical_id.in_([r.canonical_id for r in rows.values()]),
        )))
        for row_id, row in list(rows.items()):
            if row.canonical_id in linked:
                row.status = "superseded"
                del rows[row_id]
        # Where to look from, in the *target's* clock (ours may be skewed from it): where our last completed
        # read of that object ended, less as long as these creates have been waiting. Reads since the send
        # may have moved the cursor past a create that landed and was deleted before we linked it (a tombstone
        # of a record not linked is nothing to them); looked for from the cursor only, it was not found and
        # made again, alive (chaos: "deleted in zoho, still in [erp, fx, zoho]"). A watermark is a time the
        # target has shown already, and a duration does not depend on how our clocks differ: the cursor less
        # the wait is at or before the send, in the target's clock.
        marks = [
            c.watermark for c in session.scalars(select(Cursor).where(Cursor.system == system, Cursor.object == mapper.object))
        ]
        waited = utc_now() - min((r.created_at for r in rows.values()), default=utc_now())
        since = min(marks) - rt.config.sync.overlap - waited if marks and None not in marks else None
    waiting = dict(rows)
    found = 0
    async for page in rt.connector(system).pull(PullRequest(object=mapper.object, fields=mapper.system_fields(), since=since)):
        with uow.tx() as session:
            resolver = LinkResolver(session)
            for record in page.records:
                if not waiting:
                    continue
                taken = session.scalar(select(Link.id).where(Link.system == system, Link.object == mapper.object,
                                                             Link.external_id == record.external_id))
                if taken is not None:
                    continue
                try:
                    values = mapper.to_canonical(record.data, resolver)
                except (MappingError, UnresolvedReference):
                    continue
                if record.deleted:
                    # A tombstone shows little (Zoho's deleted list: the name). A field it lacks is no
                    # difference, though a read transform (normalize_domain(value)) maps it to None.
                    values = {f: v for f, v in values.items() if v not in (None, "")}
                for row_id, row in list(waiting.items()):
                    # Scalar fields only: a target fills in list items (order lines) with ids and totals of its own.
                    comparable = [f for f in row.values if f in values and not isinstance(row.values[f], list)]
                    # A user may have edited our new record already: a strong key (tax id, domain, …)
                    # it shares with what we sent, unlinked as it is, identifies it as well.
                    same_key = any(row.values.get(f) not in (None, "") and equal(f, row.values[f], values.get(f))
                                   for f in strong)
                    if same_key or (comparable and all(equal(f, row.values[f], values[f]) for f in comparable)):
                        row = session.get(OutboxWrite, row_id)
                        _apply(rt, session, report, row, WriteOp(key=row.op_key, action="create"),
                               WriteResult(key=row.op_key, ok=True, external_id=record.external_id,
                                           modified_at=record.modified_at), row.run_id)
                        if record.deleted:
                            # It landed, and a user deleted it before we ever read it: sent again, the
                            # create would bring it back. The tombstone, linked now, carries the delete.
                            stage_records(session, entity, system, mapper.object, [record], origin="poll",
                                          run_id=row.run_id, force=True)
                        del waiting[row_id]
                        found += 1
                        break
    with uow.tx() as session:
        for row_id in waiting:
            session.get(OutboxWrite, row_id).status = "pending"  # it never landed: send it again
    return found
