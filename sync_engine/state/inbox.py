"""Webhook inbox: a verified delivery is stored and its job enqueued in one transaction.

The receiver answers the sender only after that transaction commits, so
nothing acknowledged is lost; a redelivery (same system and dedupe key) is
recognised by the inbox's unique key and adds no work.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from .models import InboxEntry, InboxStatus
from .queue import JobQueue
from .types import utc_now

_inbox = InboxEntry.__table__


@dataclass(frozen=True, slots=True)
class AcceptedDelivery:
    inbox_id: int
    job_id: int | None
    #: True when this delivery had been received before (nothing new was stored or enqueued).
    duplicate: bool


def accept_delivery(
    session: Session,
    queue: JobQueue,
    *,
    system: str,
    dedupe_key: str,
    headers: Mapping[str, Any],
    body: str,
    job_kind: str,
    job_payload: Mapping[str, Any],
    lock_key: str | None = None,
    priority: int = 0,
) -> AcceptedDelivery:
    """Store the delivery and enqueue its job in the caller's transaction (a ``StateStore.write()`` session).

    ``headers`` must already be redacted (no signatures, tokens or cookies).
    The job's payload gets ``inbox_id`` so the worker can mark the entry processed.
    """
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    inbox_id = session.execute(
        insert(_inbox)
        .values(
            system=system,
            dedupe_key=dedupe_key,
            received_at=utc_now(),
            headers=dict(headers),
            body=body,
            status=InboxStatus.RECEIVED,
        )
        .on_conflict_do_nothing(index_elements=["system", "dedupe_key"])
        .returning(_inbox.c.id)
    ).scalar_one_or_none()
    if inbox_id is None:
        earlier = session.execute(
            select(_inbox.c.id, _inbox.c.job_id).where(_inbox.c.system == system, _inbox.c.dedupe_key == dedupe_key)
        ).one()
        return AcceptedDelivery(earlier.id, earlier.job_id, duplicate=True)
    job_id = queue.enqueue(
        job_kind,
        {**job_payload, "inbox_id": inbox_id},
        lock_key=lock_key,
        priority=priority,
        session=session,
    )
    session.execute(
        _inbox.update().where(_inbox.c.id == inbox_id).values(job_id=job_id, status=InboxStatus.QUEUED)
    )
    return AcceptedDelivery(inbox_id, job_id, duplicate=False)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One verified delivery for :func:`accept_deliveries` (``headers`` already redacted)."""

    system: str
    dedupe_key: str
    body: str
    headers: Mapping[str, Any] = field(default_factory=dict)
    job_payload: Mapping[str, Any] = field(default_factory=dict)
    lock_key: str | None = None


def accept_deliveries(
    session: Session, queue: JobQueue, deliveries: Sequence[Delivery], *, job_kind: str, priority: int = 0
) -> list[bool]:
    """Store many deliveries and enqueue their jobs in the caller's transaction, in three statements
    whatever their number (the receivers' group commit). For each delivery: True when it is new,
    False for a redelivery (already stored, or the same delivery earlier in this batch)."""
    if not deliveries:
        return []
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    received = utc_now()
    # executemany (one multi-row INSERT on the wire): compiled once per call, not once per batch size.
    stored = session.execute(
        insert(_inbox)
        .on_conflict_do_nothing(index_elements=["system", "dedupe_key"])
        .returning(_inbox.c.id, _inbox.c.system, _inbox.c.dedupe_key),
        [
            {"system": d.system, "dedupe_key": d.dedupe_key, "received_at": received, "headers": dict(d.headers),
             "body": d.body, "status": InboxStatus.QUEUED}
            for d in deliveries
        ],
    ).all()
    new_ids = {(row.system, row.dedupe_key): row.id for row in stored}
    fresh: list[bool] = []
    work: list[tuple[int, Delivery]] = []
    for d in deliveries:
        inbox_id = new_ids.pop((d.system, d.dedupe_key), None)  # pop: a second copy in the batch is a duplicate
        fresh.append(inbox_id is not None)
        if inbox_id is not None:
            work.append((inbox_id, d))
    if work:
        job_ids = queue.enqueue_many(
            job_kind, [({**d.job_payload, "inbox_id": inbox_id}, d.lock_key) for inbox_id, d in work],
            priority=priority, session=session,
        )
        session.execute(
            _inbox.update().where(_inbox.c.id == bindparam("b_inbox")).values(job_id=bindparam("b_job")),
            [{"b_inbox": inbox_id, "b_job": job_id} for (inbox_id, _), job_id in zip(work, job_ids)],
        )
    return fresh


def mark_processed(session: Session, inbox_id: int, status: InboxStatus = InboxStatus.PROCESSED) -> None:
    session.execute(_inbox.update().where(_inbox.c.id == inbox_id).values(status=status))
