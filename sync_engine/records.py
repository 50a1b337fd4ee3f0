"""Small state-store operations the engine repeats: dead letters, audit events,
match keys, snapshots and outbox rows."""
from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mapping.canonical import canonical_equal

from .matching import Candidate, KeySpec, keys_of
from .merge import values_equal
from .state.models import AuditEvent, DeadLetter, Link, Snapshot
from .state.models.enums import DeadLetterStage, LinkStatus, Origin, SnapshotAction
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
    for field, key in keys_of(specs, values).items():
        session.add(MatchKey(entity=entity, field=field, value=key[:255], canonical_id=canonical_id))
    session.flush()


def candidates(session: Session, entity: str, specs: list[KeySpec], mine: Mapping[str, str]) -> list[Candidate]:
    """Canonical records sharing any key with ``mine`` (names: also similar ones, by a 2-character block)."""
    ids: set[str] = set()
    for field, value in mine.items():
        ids.update(
            session.scalars(
                select(MatchKey.canonical_id).where(
                    MatchKey.entity == entity, MatchKey.field == field, MatchKey.value == value[:255]
                )
            )
        )
        spec = next((s for s in specs if s.field == field), None)
        if spec is not None and not spec.strong and len(value) >= 2:
            ids.update(
                session.scalars(
                    select(MatchKey.canonical_id)
                    .where(MatchKey.entity == entity, MatchKey.field == field, MatchKey.value.like(value[:2] + "%"))
                    .limit(50)
                )
            )
    out = []
    for cid in sorted(ids):
        keys = {
            row.field: row.value
            for row in session.scalars(select(MatchKey).where(MatchKey.entity == entity, MatchKey.canonical_id == cid))
        }
        systems = set(
            session.scalars(
                select(Link.system).where(Link.entity == entity, Link.canonical_id == cid, Link.status == LinkStatus.ACTIVE)
            )
        )
        out.append(Candidate(cid, keys, systems))
    return out


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
) -> Snapshot:
    snap = session.get(Snapshot, (entity, canonical_id, system))
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
