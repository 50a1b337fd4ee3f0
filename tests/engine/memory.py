"""A small in-memory system behind the real connector interface, for engine tests
that need thousands of quick, deterministic passes (the emulator-backed tests
cover the wire formats; this covers the engine's decisions).

It behaves like the real APIs where the engine cares: inclusive ``since``,
records sorted by modified time, per-record write results in order, ids it
invents on create, tombstones for deleted records, and a count of every write.
"""
from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict

from connectors.base import (
    Connector, ConnectorPlugin, FieldInfo, Limits, ObjectInfo, Page, PullRequest, SourceRecord, WriteCheck, WriteOp,
    WriteResult, withdrawn,
)

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class MemorySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    page_size: int = 50
    required: list[str] = []


class Clock:
    """A shared clock: every tick is one second later, so modified times are comparable across systems."""

    def __init__(self) -> None:
        self.now = EPOCH

    def tick(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


CLOCK = Clock()


class MemorySystem(Connector):
    type = "memory"
    instances: dict[str, "MemorySystem"] = {}

    def __init__(self, name: str, settings: MemorySettings) -> None:
        super().__init__(name)
        self.settings = settings
        self.objects: dict[str, dict[str, dict]] = {}
        self.modified: dict[tuple[str, str], datetime] = {}
        self.deleted: dict[tuple[str, str], datetime] = {}
        self.writes: Counter[str] = Counter()
        self.fail_ids: set[str] = set()
        #: what a tombstone still shows of the deleted record (Zoho's deleted list: its display name)
        self.tombstone_fields: tuple[str, ...] = ()
        self.tombstones: dict[tuple[str, str], dict] = {}
        self._ids = itertools.count(1)
        #: What happens while a write call waits for its turn (a slot, a rate-limit permit): called once per
        #: call, before it is sent, as a real connector would wait there.
        self.while_waiting: Callable[[], None] | None = None
        MemorySystem.instances[name] = self

    # -- "as a user" ---------------------------------------------------
    def user_create(self, object: str, data: dict, *, at: datetime | None = None) -> str:
        rid = f"{self.name}-{next(self._ids)}"
        self.objects.setdefault(object, {})[rid] = dict(data)
        self.modified[(object, rid)] = at or CLOCK.tick()
        return rid

    def user_update(self, object: str, rid: str, changes: dict, *, at: datetime | None = None) -> None:
        self.objects[object][rid].update(changes)
        self.modified[(object, rid)] = at or CLOCK.tick()

    def user_delete(self, object: str, rid: str) -> None:
        gone = self.objects[object].pop(rid)
        self.tombstones[(object, rid)] = {f: gone[f] for f in self.tombstone_fields if f in gone}
        self.modified.pop((object, rid))
        self.deleted[(object, rid)] = CLOCK.tick()

    def records(self, object: str) -> dict[str, dict]:
        return self.objects.get(object, {})

    # -- connector interface -----------------------------------------
    async def check(self) -> None:
        return None

    @property
    def limits(self) -> Limits:
        return Limits(page_size=self.settings.page_size, write_batch=100, fetch_batch=100, concurrency=1)

    def _record(self, object: str, rid: str) -> SourceRecord:
        return SourceRecord(object, rid, self.modified[(object, rid)], dict(self.objects[object][rid]))

    async def pull(self, request: PullRequest) -> AsyncIterator[Page]:
        rows = [
            (ts, rid) for (obj, rid), ts in self.modified.items()
            if obj == request.object and (request.since is None or ts >= request.since)
        ]
        rows.sort()
        start = (request.resume or {}).get("offset", 0)
        tombstones = [
            SourceRecord(request.object, rid, ts, dict(self.tombstones.get((obj, rid), {})), deleted=True)
            for (obj, rid), ts in sorted(self.deleted.items(), key=lambda kv: kv[1])
            if obj == request.object and (request.since is None or ts >= request.since)
        ]
        size = self.settings.page_size
        for offset in range(start, len(rows), size):
            chunk = rows[offset : offset + size]
            yield Page([self._record(request.object, rid) for _, rid in chunk], {"offset": offset + size})
        if tombstones and request.include_deleted:
            yield Page(tombstones, None)

    async def fetch(self, object: str, ids: Sequence[str], fields: Sequence[str] = ()) -> list[SourceRecord]:
        out = []
        for rid in ids:
            if rid in self.objects.get(object, {}):
                out.append(self._record(object, rid))
            elif (object, rid) in self.deleted:
                out.append(SourceRecord(object, rid, self.deleted[(object, rid)], dict(self.tombstones.get((object, rid), {})),
                                        deleted=True))
        return out

    def _wait_for_turn(self) -> None:
        if self.while_waiting is not None:
            self.while_waiting()

    async def push_checked(self, object: str, ops: Sequence[WriteOp], check: WriteCheck) -> list[WriteResult]:
        # As the real connectors do: the check runs once the call has its turn, right before sending.
        self._wait_for_turn()
        out = set(await check([op for op in ops if op.action == "update"]))
        sendable = [op for op in ops if op.key not in out]
        sent = iter(await self.push(object, sendable) if sendable else [])
        return [withdrawn(op) if op.key in out else next(sent) for op in ops]

    async def push(self, object: str, ops: Sequence[WriteOp]) -> list[WriteResult]:
        self._wait_for_turn()
        results = []
        for op in ops:
            self.writes[op.action] += 1
            missing = [f for f in self.settings.required if op.action == "create" and not op.data.get(f)]
            if missing or op.data.get("name") in self.fail_ids:
                results.append(WriteResult(op.key, False, code="MANDATORY_NOT_FOUND", message=f"missing {missing}"))
                continue
            if op.action == "create":
                rid = self.user_create(object, op.data)
                results.append(WriteResult(op.key, True, rid, self.modified[(object, rid)]))
            elif op.action == "update":
                if op.external_id not in self.objects.get(object, {}):
                    results.append(WriteResult(op.key, False, code="INVALID_DATA", message="record not found"))
                    continue
                self.user_update(object, op.external_id, op.data)
                results.append(WriteResult(op.key, True, op.external_id, self.modified[(object, op.external_id)]))
            else:
                if op.external_id in self.objects.get(object, {}):
                    self.user_delete(object, op.external_id)
                results.append(WriteResult(op.key, True, op.external_id))
        return results

    async def list_objects(self) -> list[ObjectInfo]:
        return [ObjectInfo(o) for o in self.objects]

    async def describe(self, object: str) -> list[FieldInfo]:
        return []


PLUGIN = ConnectorPlugin(
    type="memory",
    description="in-memory test system",
    settings_model=MemorySettings,
    # Reused by name, so a "restarted" engine talks to the same system.
    create=lambda name, settings, observer=None: MemorySystem.instances.get(name) or MemorySystem(name, settings),
)


class MemoryVerifier:
    """HMAC-SHA256 over ``timestamp.body`` — the same scheme as the ERP trigger verifier."""

    SECRET = b"memory-webhook-secret"

    def verify(self, headers, body, *, now, channel_token=lambda _c: None):
        import hashlib
        import hmac
        import json

        from connectors.base import ChangeHint, WebhookDelivery
        from connectors.errors import WebhookRejected

        ts = headers.get("x-timestamp", "")
        sig = headers.get("x-signature", "")
        if not ts.isdigit() or abs(now - int(ts)) > 300:
            raise WebhookRejected(401, "stale or missing timestamp")
        expected = hmac.new(self.SECRET, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, sig):
            raise WebhookRejected(401, "bad signature")
        data = json.loads(body)
        return WebhookDelivery(
            dedupe_key=str(data["event_id"]),
            hints=[ChangeHint(data["object"], [str(i) for i in data["ids"]])],
            reply_body={"ok": True},
        )

    @classmethod
    def sign(cls, body: bytes, ts: int) -> dict[str, str]:
        import hashlib
        import hmac

        return {
            "x-timestamp": str(ts),
            "x-signature": hmac.new(cls.SECRET, str(ts).encode() + b"." + body, hashlib.sha256).hexdigest(),
            "content-type": "application/json",
        }


PLUGIN.webhook_verifier = lambda name, settings: MemoryVerifier()
