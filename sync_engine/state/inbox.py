"""Webhook inbox: a verified delivery is stored and its job enqueued in one transaction.

The receiver answers the sender only after that transaction commits, so
nothing acknowledged is lost; a redelivery (same system and dedupe key) is
recognised by the inbox's unique key and adds no work.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
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


def mark_processed(session: Session, inbox_id: int, status: InboxStatus = InboxStatus.PROCESSED) -> None:
    session.execute(_inbox.update().where(_inbox.c.id == inbox_id).values(status=status))
