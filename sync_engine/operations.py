"""What people do by hand: look at and replay dead letters, settle reviews, read
a record's history. Used by the CLI and the ops routes alike."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from . import derive
from .context import Report, UnitOfWork
from .engine import SyncEngine
from .push import push_pending
from .reconcile import _plan_writes
from .records import audit, field_equality, new_canonical_id
from .state.models import AuditEvent, DeadLetter, Link, Record, Review
from .state.models.enums import DeadLetterStatus, LinkStatus, ReviewKind, ReviewStatus
from .state.models.pipeline import OutboxWrite, StagedChange
from .state.types import utc_now


class NotFound(LookupError):
    pass


# -- dead letters -------------------------------------------------------------
def list_dead_letters(engine: SyncEngine, *, status: str = "open", limit: int = 100) -> list[DeadLetter]:
    with engine.rt.store.read() as session:
        query = select(DeadLetter).order_by(DeadLetter.id.desc()).limit(limit)
        if status != "all":
            query = query.where(DeadLetter.status == status)
        return list(session.scalars(query))


def get_dead_letter(engine: SyncEngine, letter_id: int) -> DeadLetter:
    with engine.rt.store.read() as session:
        letter = session.get(DeadLetter, letter_id)
    if letter is None:
        raise NotFound(f"no dead letter {letter_id}")
    return letter


def discard_dead_letters(engine: SyncEngine, ids: list[int]) -> int:
    with engine.rt.store.write() as session:
        n = 0
        for letter_id in ids:
            letter = session.get(DeadLetter, letter_id)
            if letter is None:
                raise NotFound(f"no dead letter {letter_id}")
            if letter.status == DeadLetterStatus.OPEN:
                letter.status = DeadLetterStatus.DISCARDED
                letter.closed_at = utc_now()
                n += 1
        return n


async def replay_dead_letters(engine: SyncEngine, ids: list[int]) -> list[Report]:
    """Replay in id order (the order they failed in), each through the normal reconciliation.

    A record that failed to map or referenced something missing is fetched again
    from its system; a write a target rejected is decided again from the record's
    current state — so a replay never writes stale values.
    """
    rt = engine.rt
    reports: list[Report] = []
    for letter_id in sorted(ids):
        letter = get_dead_letter(engine, letter_id)
        if letter.status != DeadLetterStatus.OPEN:
            continue
        trigger = derive.trigger_named(rt, letter.flow)
        if trigger is not None and letter.canonical_id:
            reports.append(await _replay_trigger(engine, trigger, letter.entity, letter.canonical_id))
            _mark_replayed(rt, letter_id)
            continue
        flow = letter.flow if letter.flow in rt.config.flows else next(
            (n for n, f in rt.config.flows.items() if f.entity == letter.entity), None
        )
        if flow is None:
            raise NotFound(f"dead letter {letter_id}: no flow syncs {letter.entity!r} any more")
        if letter.stage in ("push",) and letter.canonical_id:
            report = await _replay_write(engine, flow, letter.entity, letter.canonical_id)
        elif letter.system and letter.external_id:
            report = await engine._sync_ids(flow, letter.system, [letter.external_id], origin="replay", job_id=None)
        else:
            raise NotFound(f"dead letter {letter_id} names no record to replay")
        reports.append(report)
        _mark_replayed(rt, letter_id)
    return reports


def _mark_replayed(rt, letter_id: int) -> None:
    with rt.store.write() as session:
        row = session.get(DeadLetter, letter_id)
        row.status = DeadLetterStatus.REPLAYED
        row.closed_at = utc_now()


async def _replay_trigger(engine: SyncEngine, trigger, entity: str, canonical_id: str) -> Report:
    rt = engine.rt
    report = Report(flow=trigger.flow_label, kind="replay")
    uow = UnitOfWork(rt.store)
    try:
        with uow.tx() as session:
            derive.replay(rt, session, report, trigger, entity, canonical_id)
        await push_pending(rt, uow, report, trigger.target, run_id=None, dry_run=False)
    finally:
        uow.close()
    return report


async def _replay_write(engine: SyncEngine, flow: str, entity: str, canonical_id: str) -> Report:
    rt = engine.rt
    report = Report(flow=flow, kind="replay")
    uow = UnitOfWork(rt.store)
    try:
        with uow.tx() as session:
            record = session.get(Record, (entity, canonical_id))
            if record is None:
                raise NotFound(f"no {entity} {canonical_id}")
            links = {l.system: l for l in session.scalars(select(Link).where(Link.entity == entity, Link.canonical_id == canonical_id))}
            _plan_writes(rt, session, flow, record, links, origin="replay", run_id=None,
                         equal=field_equality(rt.mappings.models[entity]))
        await push_pending(rt, uow, report, entity, run_id=None, dry_run=False)
    finally:
        uow.close()
    return report


# -- reviews --------------------------------------------------------------------
def list_reviews(engine: SyncEngine, *, status: str = "open", kind: str | None = None, limit: int = 100) -> list[Review]:
    with engine.rt.store.read() as session:
        query = select(Review).order_by(Review.id).limit(limit)
        if status != "all":
            query = query.where(Review.status == status)
        if kind:
            query = query.where(Review.kind == kind)
        return list(session.scalars(query))


async def resolve_review(
    engine: SyncEngine, review_id: int, *, accept: bool, choice: str | None = None, by: str = "cli"
) -> Review:
    """Settle a review, then let the engine carry the decision out.

    match: accept links to ``choice`` (a candidate's canonical id; default the best), reject creates a new record.
    conflict: accept takes the value of system ``choice`` (default: the base stays); reject keeps the base.
    delete: accept deletes the record everywhere (policy propagate); reject keeps it.
    """
    rt = engine.rt
    flow_to_run = None
    with rt.store.write() as session:
        review = session.get(Review, review_id)
        if review is None:
            raise NotFound(f"no review {review_id}")
        if review.status != ReviewStatus.OPEN:
            raise ValueError(f"review {review_id} is already {review.status}")
        details = dict(review.details or {})
        flow_to_run = details.get("flow")
        resolution: dict[str, Any] = {"accepted": accept}
        if review.kind == ReviewKind.MATCH:
            staged = session.scalar(select(StagedChange).where(
                StagedChange.entity == review.entity, StagedChange.system == review.system,
                StagedChange.external_id == review.external_id,
            ))
            if accept:
                candidates = [c["canonical_id"] for c in details.get("candidates", [])]
                target = choice or (candidates[0] if candidates else None)
                if target not in candidates:
                    raise ValueError(f"{choice!r} is not a candidate of review {review_id}: {candidates}")
                taken = session.scalar(select(Link.external_id).where(
                    Link.entity == review.entity, Link.canonical_id == target, Link.system == review.system
                ))
                if taken is not None:
                    raise ValueError(
                        f"that record is already linked to {review.system} record {taken}: these look like two "
                        f"copies of one company in {review.system}. Merge them there (the duplicate will then be "
                        f"reported deleted), or reject this review to keep both."
                    )
                cid = target
            else:
                cid = new_canonical_id()
                session.add(Record(entity=review.entity, canonical_id=cid, values={}, hash=None))
                session.flush()
            object = staged.object if staged else details.get("object", "")
            session.add(Link(entity=review.entity, canonical_id=cid, system=review.system, object=object,
                             external_id=review.external_id, status=LinkStatus.ACTIVE))
            # The create of that record in this system, held while the question was open, is moot now.
            for row in session.scalars(select(OutboxWrite).where(
                OutboxWrite.entity == review.entity, OutboxWrite.canonical_id == cid, OutboxWrite.system == review.system,
                OutboxWrite.action == "create", OutboxWrite.status.in_(("pending", "deferred")),
            )):
                row.status = "superseded"
            if staged is not None:
                staged.status = "pending"
            resolution["canonical_id"] = cid
            review.canonical_id = cid
        elif review.kind == ReviewKind.CONFLICT:
            field = details["field"]
            record = session.get(Record, (review.entity, review.canonical_id))
            if accept:
                values = details.get("values", {})
                if choice not in values:
                    raise ValueError(f"choose one of the systems {sorted(values)} with --value")
                record.values = {**record.values, field: values[choice]}
                resolution["value"] = values[choice]
                resolution["system"] = choice
            else:
                resolution["value"] = details.get("base")
            audit(session, "review", entity=review.entity, canonical_id=review.canonical_id, origin="manual",
                  details={"field": field, **resolution})
        elif review.kind == ReviewKind.DELETE:
            if accept:
                record = session.get(Record, (review.entity, review.canonical_id))
                record.deleted = True
                record.deleted_at = utc_now()
                from .records import queue_write

                for link in session.scalars(select(Link).where(
                    Link.entity == review.entity, Link.canonical_id == review.canonical_id, Link.status == LinkStatus.ACTIVE
                )):
                    queue_write(session, entity=review.entity, canonical_id=review.canonical_id, system=link.system,
                                object=link.object, action="delete", external_id=link.external_id, values={},
                                flow=flow_to_run or "", origin="manual", run_id=None)
        review.status = ReviewStatus.ACCEPTED if accept else ReviewStatus.REJECTED
        review.resolution = resolution
        review.resolved_by = by
        review.resolved_at = utc_now()
        entity, canonical_id, kind = review.entity, review.canonical_id, review.kind
    # Carry the decision out now rather than at the next scheduled pass.
    if kind == ReviewKind.MATCH and flow_to_run in rt.config.flows:
        uow = UnitOfWork(rt.store)
        try:
            await engine._reconcile_all(uow, Report(flow=flow_to_run, kind="manual"), flow_to_run, dry_run=False)
        finally:
            uow.close()
    elif flow_to_run in rt.config.flows and canonical_id:
        if kind == ReviewKind.CONFLICT:
            await _replay_write(engine, flow_to_run, entity, canonical_id)
        else:
            uow = UnitOfWork(rt.store)
            try:
                await push_pending(rt, uow, Report(flow=flow_to_run, kind="manual"), entity, run_id=None, dry_run=False)
            finally:
                uow.close()
    return review


# -- history ------------------------------------------------------------------------
def find_record(engine: SyncEngine, entity: str, id_or_external: str) -> str:
    with engine.rt.store.read() as session:
        if session.get(Record, (entity, id_or_external)) is not None:
            return id_or_external
        cids = set(session.scalars(select(Link.canonical_id).where(Link.entity == entity, Link.external_id == id_or_external)))
    if not cids:
        raise NotFound(f"no {entity} with canonical or external id {id_or_external!r}")
    if len(cids) > 1:
        raise NotFound(f"{id_or_external!r} is an id in several systems; use the canonical id: {sorted(cids)}")
    return cids.pop()


def history(engine: SyncEngine, entity: str, id_or_external: str) -> tuple[str, Record | None, list[Link], list[AuditEvent]]:
    cid = find_record(engine, entity, id_or_external)
    with engine.rt.store.read() as session:
        record = session.get(Record, (entity, cid))
        links = list(session.scalars(select(Link).where(Link.entity == entity, Link.canonical_id == cid)))
        events = list(session.scalars(
            select(AuditEvent).where(AuditEvent.entity == entity, AuditEvent.canonical_id == cid).order_by(AuditEvent.id)
        ))
    return cid, record, links, events
