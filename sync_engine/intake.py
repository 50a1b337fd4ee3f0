"""Webhook intake: a verified delivery is stored in the inbox and its job enqueued in one
transaction, which commits before the receiver answers.

Group commit: the receivers hand deliveries to one writer thread, which stores everything
waiting in one transaction (three statements whatever the number) and then releases each
answer. Every delivery's inbox row and job still commit together before its answer; a burst
simply shares one commit. On PostgreSQL each commit waits for a WAL flush (milliseconds on
ordinary disks), so one transaction per delivery capped intake at a few hundred a second on
the whole database server, and dozens of request threads each doing small round trips
fought over the interpreter; one writer doing a few statements per batch does not.
When idle, a delivery is a batch of one and is written at once.
"""
from __future__ import annotations

import asyncio
import hashlib
import concurrent.futures
import logging
import threading
from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from typing import NamedTuple

from sqlalchemy import select, tuple_
from sqlalchemy.exc import OperationalError

from connectors.base import ChangeHint, WebhookDelivery, WebhookVerifier

from .logs import redact, register_secret
from .runtime import Runtime
from .state.inbox import Delivery, accept_deliveries
from .state.models import Channel, Link
from .state.models.base import KEY_LEN
from .state.queue import JobQueue

log = logging.getLogger(__name__)

WEBHOOK_PRIORITY = 10  # higher runs first: near-real-time work before backfills
#: deliveries written in one transaction at most (bounds the wait of the first one in a burst)
MAX_BATCH = 200


class _Waiting(NamedTuple):
    delivery: Delivery
    #: (system, object, id) when the delivery names exactly one record: its jobs lock on that record
    record: tuple[str, str, str] | None
    future: concurrent.futures.Future


class WebhookIntake:
    """The receivers' view of the engine: verifiers, channel tokens, and durable acceptance."""

    def __init__(self, runtime: Runtime, queue: JobQueue, *, max_batch: int = MAX_BATCH) -> None:
        self.rt = runtime
        self.queue = queue
        self.max_batch = max_batch
        self._waiting: list[_Waiting] = []
        self._wake = threading.Condition()
        self._writer: threading.Thread | None = None
        self._closed = False

    def verifier(self, system_name: str) -> WebhookVerifier | None:
        if system_name not in self.rt.config.systems:
            return None
        return self.rt.verifier(system_name)

    def channel_token(self, channel_id: str) -> str | None:
        with self.rt.store.read() as session:
            token = session.scalar(select(Channel.token).where(Channel.channel_id == channel_id))
        register_secret(token)  # a channel token is a credential: redacted wherever it would be shown
        return token

    async def accept(self, system_name: str, delivery: WebhookDelivery, headers: Mapping[str, str], body: bytes) -> bool:
        """Store the delivery and enqueue its job (one transaction, committed on return); False for a redelivery."""
        hints = [asdict(h) | {"occurred_at": h.occurred_at.isoformat() if h.occurred_at else None} for h in delivery.hints]
        single = [(h.object, str(i)) for h in delivery.hints for i in h.ids]
        # Verified already: what is stored keeps no credential (Zoho's channel token rides in the
        # body), and no secret crmsync knows of, whatever header or field carried it. (A verifier
        # that does not derive from WebhookVerifier may lack stored_body: its body is kept as sent.)
        stored_body = getattr(self.verifier(system_name), "stored_body", None)
        text = stored_body(body) if stored_body is not None else body.decode("utf-8", "replace")
        item = Delivery(
            system=system_name, dedupe_key=delivery.dedupe_key[:255], body=redact(text),
            headers={k: redact(v) if isinstance(v, str) else v for k, v in headers.items()},
            job_payload={"system": system_name, "hints": hints},
        )
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._wake:
            if self._closed:
                raise RuntimeError("the webhook intake is shut down")
            self._waiting.append(_Waiting(item, (system_name, *single[0]) if len(single) == 1 else None, future))
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, name="webhook-intake", daemon=True)
                self._writer.start()
            self._wake.notify()
        return await asyncio.wrap_future(future)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is waiting, then stop the writer."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        if self._writer is not None:
            self._writer.join(timeout)

    def _write_loop(self) -> None:
        while True:
            with self._wake:
                while not self._waiting and not self._closed:
                    self._wake.wait()
                if not self._waiting:
                    return
                batch, self._waiting = self._waiting[: self.max_batch], self._waiting[self.max_batch :]
            # A sender that hung up before we started is not stored: it was never acknowledged.
            batch = [w for w in batch if w.future.set_running_or_notify_cancel()]
            if batch:
                self._write(batch)

    def _write(self, batch: list[_Waiting]) -> None:
        try:
            fresh = self._store(batch)
        except Exception as exc:  # noqa: BLE001 - each sender hears of it (and retries)
            if len(batch) > 1 and not isinstance(exc, OperationalError):
                # One delivery the database refuses must not fail the rest of the burst (a database
                # that is away fails them all at once instead of once each).
                for one in batch:
                    self._write([one])
                return
            batch[0].future.set_exception(exc)
            return
        for waiting, is_new in zip(batch, fresh):
            waiting.future.set_result(is_new)

    def _store(self, batch: list[_Waiting]) -> list[bool]:
        with self.rt.store.write() as session:
            records = {w.record for w in batch if w.record is not None}
            known = {}
            if records:
                # One key per canonical record, so the same company's deliveries from two systems
                # run one after the other, never at once.
                rows = session.execute(
                    select(Link.system, Link.object, Link.external_id, Link.entity, Link.canonical_id).where(
                        tuple_(Link.system, Link.object, Link.external_id).in_(sorted(records))
                    )
                )
                known = {(r.system, r.object, r.external_id): f"record:{r.entity}:{r.canonical_id}" for r in rows}
            deliveries = [
                w.delivery if w.record is None else _with_lock(w.delivery, known.get(w.record) or ":".join(w.record))
                for w in batch
            ]
            return accept_deliveries(session, self.queue, deliveries, job_kind="webhook", priority=WEBHOOK_PRIORITY)


def hint_of(stored: Mapping) -> ChangeHint:
    """A hint as a webhook job's payload keeps it (see :meth:`WebhookIntake.accept`), back as a ChangeHint:
    with the time of the change and the values the notification carried, when it did."""
    occurred = stored.get("occurred_at")
    when = datetime.fromisoformat(occurred) if isinstance(occurred, str) else None
    values = stored.get("values")
    return ChangeHint(
        stored["object"], [str(i) for i in stored["ids"]], stored.get("event", "update"),
        occurred_at=when if when is None or when.tzinfo else when.replace(tzinfo=UTC),
        values={str(k): dict(v) for k, v in values.items() if isinstance(v, dict)} if isinstance(values, dict) else None,
    )


def _with_lock(delivery: Delivery, lock_key: str) -> Delivery:
    if len(lock_key) > KEY_LEN:  # long ids: a digest keeps the key unique and within its column
        lock_key = f"{delivery.system}:sha256:{hashlib.sha256(lock_key.encode()).hexdigest()}"
    return Delivery(delivery.system, delivery.dedupe_key, delivery.body, delivery.headers, delivery.job_payload, lock_key)
