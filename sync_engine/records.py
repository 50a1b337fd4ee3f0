"""Small state-store operations the engine repeats: dead letters, audit events,
match keys, snapshots and outbox rows."""
from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.orm import Session

from mapping.canonical import canonical_equal

from .matching import Candidate, KeySpec, keys_of
from .merge import values_equal
from .state.models import AuditEvent, DeadLetter, Link, Snapshot
from .state.models.enums import DeadLetterStage, Origin, SnapshotAction
from .state.models.pipeline import MatchKey, OutboxWrite
from .state.types import utc_now


def new_canonical_id() -> str:
    return uuid.uuid4().hex


def field_equality(model: str) -> Callable[[str, Any, Any], bool]:
    """Equality of one canonical field: null == "" and Decimal scale does not matter."""

    def equal(field: str, a: Any, b: Any) -> bool:
        return values_equal(a, b) or canonical_equal({field: a}, {field: b}, model)

    return equal


def dead_letter(
    session: Session,
    *,
    entity: str | None,
    flow: str | None,
    system: str | None,
    object: str | None,
    external_id: str | None,
    canonical_id: str | None,
    stage: DeadLetterStage,
    code: str | None,
    message: str,
    payload: Mapping[str, Any],
    attempts: int = 1,
    run_id: int | None = None,
) -> DeadLetter:
    row = DeadLetter(
        entity=entity,
        flow=flow,
        system=system,
        object=object,
        external_id=external_id,
        canonical_id=canonical_id,
        stage=stage,
        code=code,
        message=message,
        payload=dict(payload),
        attempts=attempts,
        run_id=run_id,
        lock_key=f"{entity}:{system}:{external_id}" if external_id else (f"{entity}:{canonical_id}" if canonical_id else None),
    )
    session.add(row)
    return row


def audit(
    session: Session,
    kind: str,
    *,
    entity: str,
    canonical_id: str | None,
    system: str | None = None,
    object: str | None = None,
    external_id: str | None = None,
    origin: str | None = None,
    run_id: int | None = None,
    details: Mapping[str, Any] | None = None,
    api_call: Mapping[str, Any] | None = None,
) -> None:
    session.add(
        AuditEvent(
            kind=kind,
            entity=entity,
            canonical_id=canonical_id,
            system=system,
            object=object,
            external_id=external_id,
            origin=Origin(origin) if origin in Origin._value2member_map_ else None,
            run_id=run_id,
            details=dict(details or {}),
            api_call=dict(api_call) if api_call else None,
        )
    )


def replace_match_keys(session: Session, entity: str, canonical_id: str, specs: list[KeySpec], values: Mapping[str, Any]) -> None:
    session.execute(delete(MatchKey).where(MatchKey.entity == entity, MatchKey.canonical_id == canonical_id))
    add_match_keys(session, entity, canonical_id, specs, values)


def add_match_keys(session: Session, entity: str, canonical_id: str, specs: list[KeySpec], values: Mapping[str, Any]) -> None:
    """Index a record's keys. Written at once: the next record of the same batch may match it."""
    rows = [
        {"entity": entity, "field": field, "value": key[:255], "canonical_id": canonical_id}
        for field, key in keys_of(specs, values).items()
    ]
    if rows:
        session.execute(MatchKey.__table__.insert(), rows)


def candidates(session: Session, entity: str, specs: list[KeySpec], mine: Mapping[str, str]) -> list[Candidate]:
    """Canonical records sharing a key with ``mine`` — and, for names, a few similar ones
    (same first two characters) so near-misses reach the review queue. Three queries in all."""
    if not mine:
        return []
    exact = [and_(MatchKey.field == field, MatchKey.value == value[:255]) for field, value in mine.items()]
    ids = set(session.scalars(select(MatchKey.canonical_id).where(MatchKey.entity == entity, or_(*exact))))
    weak = [(s.field, mine[s.field]) for s in specs if not s.strong and len(mine.get(s.field, "")) >= 2]
    for field, value in weak:
        ids.update(
            session.scalars(
                select(MatchKey.canonical_id)
                # A range, not LIKE: SQLite's LIKE ignores the index (case-insensitive), a range uses it.
                .where(MatchKey.entity == entity, MatchKey.field == field,
                       MatchKey.value >= value[:2], MatchKey.value < value[:2] + "\U0010ffff")
                .limit(FUZZY_CANDIDATES)
            )
        )
    if not ids:
        return []
    keys: dict[str, dict[str, str]] = {cid: {} for cid in ids}
    for row in session.scalars(select(MatchKey).where(MatchKey.entity == entity, MatchKey.canonical_id.in_(ids))):
        keys[row.canonical_id][row.field] = row.value
    systems: dict[str, set[str]] = {cid: set() for cid in ids}
    # Every link counts, deleted ones too: a record keeps one link per system (a unique key), so one
    # whose copy there was deleted cannot take another record of that system without a person.
    for cid, system in session.execute(
        select(Link.canonical_id, Link.system).where(Link.entity == entity, Link.canonical_id.in_(ids))
    ):
        systems[cid].add(system)
    return [Candidate(cid, keys[cid], systems[cid]) for cid in sorted(ids)]


#: How many similar-name records a match looks at, at most.
FUZZY_CANDIDATES = 20


def save_snapshot(
    session: Session,
    *,
    entity: str,
    canonical_id: str,
    system: str,
    values: Mapping[str, Any],
    modified_at: datetime | None,
    action: SnapshotAction,
    op_key: str | None = None,
    hash_of: Callable[[Mapping[str, Any]], str],
    existing: Snapshot | None = None,
    look_up: bool = True,
) -> Snapshot:
    """Merge ``values`` into the system's snapshot. ``look_up=False``: the caller knows there is none
    unless it passed ``existing`` (it read them all in one query)."""
    snap = existing if existing is not None or not look_up else session.get(Snapshot, (entity, canonical_id, system))
    now = utc_now()
    merged = {**(snap.values if snap else {}), **values}
    if snap is None:
        snap = Snapshot(entity=entity, canonical_id=canonical_id, system=system, values=merged, hash=hash_of(merged))
        session.add(snap)
    else:
        snap.values = merged
        snap.hash = hash_of(merged)
    if modified_at is not None:
        snap.source_modified_at = modified_at
    snap.last_action = action
    if action == SnapshotAction.READ:
        snap.read_at = now
    else:
        snap.written_at = now
        snap.last_op_key = op_key
    return snap


def queue_write(
    session: Session,
    *,
    entity: str,
    canonical_id: str,
    system: str,
    object: str,
    action: str,
    external_id: str | None,
    values: Mapping[str, Any],
    flow: str,
    origin: str,
    run_id: int | None,
) -> OutboxWrite:
    row = OutboxWrite(
        op_key=f"{entity}:{canonical_id}:{system}:{uuid.uuid4().hex[:12]}",
        entity=entity,
        canonical_id=canonical_id,
        system=system,
        object=object,
        action=action,
        external_id=external_id,
        values=dict(values),
        status="pending",
        attempts=0,
        flow=flow,
        origin=origin,
        run_id=run_id,
    )
    session.add(row)
    return row
