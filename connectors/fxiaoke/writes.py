"""Writing records: one call per record (there is no batch create), run concurrently
inside the interface rate limits.

* create → ``data/create`` with ``object_data``; the new id is ``dataId``.
* update → ``data/update`` with ``_id`` and only the given fields. ``update``
  cannot change the owner, so an ``owner`` in the op becomes a separate
  ``data/changeOwner`` call.
* delete → ``data/invalid`` (作废) then ``data/delete``: only invalid data can be deleted.
* upsert → ``external_id`` given: update; else the ``match_fields`` are looked up
  (EQ filters): none → create, one → update, several → refused as ambiguous.
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..base import WriteCheck, WriteOp, WriteResult, withdrawn
from ..errors import AuthError, ConnectorError, QuotaExhausted, RecordRejected, TransientError
from .client import FxiaokeClient, Withdrawn
from .paging import Puller, query_filter
from .paths import Endpoints
from .settings import FxiaokeSettings

#: Keys the connector sets itself inside object_data.
_RESERVED = ("_id", "dataObjectApiName")


class Writer:
    def __init__(
        self,
        client: FxiaokeClient,
        endpoints: Endpoints,
        puller: Puller,
        settings: FxiaokeSettings,
        *,
        system: str,
    ) -> None:
        self.client = client
        self.endpoints = endpoints
        self.puller = puller
        self.settings = settings
        self.system = system

    async def push(self, object_name: str, ops: Sequence[WriteOp], check: WriteCheck | None = None) -> list[WriteResult]:
        """``check`` (see :meth:`connectors.base.Connector.push_checked`) is awaited for each update on its
        own, once its call holds its write slot, the record's turn, its rate-limit permit and a token:
        one data/get per update more, for the shortest window between the last look and the write."""
        slots = asyncio.Semaphore(self.settings.write_concurrency)
        results: list[WriteResult | None] = [None] * len(ops)
        stopped: list[ConnectorError] = []
        # Ops on the same record run one after another, in input order (asyncio locks are FIFO).
        per_record: dict[str, asyncio.Lock] = {}

        async def run(index: int, op: WriteOp) -> None:
            record = op.external_id or op.data.get("_id")
            lock = per_record.setdefault(str(record), asyncio.Lock()) if record else None
            async with lock or contextlib.nullcontext(), slots:
                if stopped:
                    results[index] = _not_attempted(op, stopped[0])
                    return
                try:
                    results[index] = await self.apply(object_name, op, _guard(op, check))
                except Withdrawn:
                    results[index] = withdrawn(op)
                except RecordRejected as exc:
                    results[index] = WriteResult(key=op.key, ok=False, code=exc.code, message=exc.message)
                except TransientError as exc:
                    results[index] = WriteResult(
                        key=op.key, ok=False, code=exc.code, message=exc.message, retryable=True
                    )
                except (AuthError, QuotaExhausted, ConnectorError) as exc:
                    # Credentials, quota or configuration: the whole system is unusable, so stop
                    # starting new writes (those in flight finish and keep their results).
                    stopped.append(exc)
                    results[index] = _not_attempted(op, exc)

        await asyncio.gather(*(run(i, op) for i, op in enumerate(ops)))
        final = [r for r in results if r is not None]
        if stopped and not any(r.ok or not r.retryable for r in final):
            # Nothing was written: the call as a whole could not be made.
            raise stopped[0]
        return final

    # -- one op ------------------------------------------------------------------------
    async def apply(
        self, object_name: str, op: WriteOp, before_send: Callable[[], Awaitable[bool]] | None = None,
    ) -> WriteResult:
        """``before_send``: awaited right before an update's first call (see :meth:`FxiaokeClient.call`)."""
        if op.action == "create":
            return await self._create(object_name, op)
        if op.action == "update":
            return await self._update(object_name, op, _record_id(op), before_send)
        if op.action == "delete":
            return await self._delete(object_name, op, _record_id(op))
        if op.action == "upsert":
            return await self._upsert(object_name, op)
        raise RecordRejected(f"unknown write action {op.action!r}", code="BAD_ACTION", system=self.system)

    def _flags(self, object_name: str) -> dict[str, Any]:
        per_object = self.settings.object_settings(object_name)
        flags: dict[str, Any] = {
            "triggerWorkFlow": self.settings.trigger_workflow
            if per_object.trigger_workflow is None
            else per_object.trigger_workflow,
            "triggerApprovalFlow": self.settings.trigger_approval_flow
            if per_object.trigger_approval_flow is None
            else per_object.trigger_approval_flow,
        }
        return flags

    def _data(self, object_name: str, object_data: dict[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = {"object_data": object_data}
        option_info = self.settings.object_settings(object_name).option_info
        if option_info:
            data["optionInfo"] = dict(option_info)
        return data

    async def _create(self, object_name: str, op: WriteOp) -> WriteResult:
        fields = {k: v for k, v in op.data.items() if k not in _RESERVED}
        if "owner" in fields:
            fields["owner"] = _owner_list(fields["owner"])
        object_data = {"dataObjectApiName": object_name, **fields}
        answer = await self.client.call(
            self.endpoints.data(object_name, "create"),
            self._data(object_name, object_data),
            **self._flags(object_name),
            hasSpecifyTime=False,
            hasSpecifyCreatedBy=False,
        )
        new_id = _created_id(answer)
        if not new_id:
            raise RecordRejected("create succeeded without returning dataId", code="NO_ID", system=self.system)
        return WriteResult(key=op.key, ok=True, external_id=new_id)

    async def _update(
        self, object_name: str, op: WriteOp, record_id: str, before_send: Callable[[], Awaitable[bool]] | None = None,
    ) -> WriteResult:
        fields = {k: v for k, v in op.data.items() if k not in _RESERVED}
        owner = fields.pop("owner", None)
        if fields:
            object_data = {"_id": record_id, "dataObjectApiName": object_name, **fields}
            await self.client.call(
                self.endpoints.data(object_name, "update"),
                self._data(object_name, object_data),
                before_send=before_send,
                **self._flags(object_name),
            )
            before_send = None  # checked once: the owner change below belongs to the same write
        if owner is not None:
            await self.client.call(
                self.endpoints.data(object_name, "changeOwner"),
                {
                    "dataObjectApiName": object_name,
                    "Data": [{"objectDataId": record_id, "ownerId": self._owner_id(owner)}],
                },
                before_send=before_send,
            )
        return WriteResult(key=op.key, ok=True, external_id=record_id)

    def _owner_id(self, owner: Any) -> list[str] | str:
        owners = _owner_list(owner)
        if self.settings.change_owner_id_format == "bracket_string":
            return "[" + ",".join(owners) + "]"  # the official example's "[FSUID_xx1]"
        return owners

    async def _delete(self, object_name: str, op: WriteOp, record_id: str) -> WriteResult:
        not_found = set(self.settings.not_found_codes)
        try:
            await self.client.call(
                self.endpoints.data(object_name, "invalid"),
                {"object_data_id": record_id, "dataObjectApiName": object_name},
            )
        except RecordRejected as exc:
            code = _int(exc.code)
            if code in not_found:
                return WriteResult(key=op.key, ok=True, external_id=record_id)
            if code not in set(self.settings.already_invalid_codes):
                raise
        try:
            await self.client.call(
                self.endpoints.data(object_name, "delete"),
                {"idList": [record_id], "dataObjectApiName": object_name},
            )
        except RecordRejected as exc:
            if _int(exc.code) not in not_found:
                raise
        return WriteResult(key=op.key, ok=True, external_id=record_id)

    async def _upsert(self, object_name: str, op: WriteOp) -> WriteResult:
        if op.external_id or op.data.get("_id"):
            return await self._update(object_name, op, _record_id(op))
        match = [f for f in (op.match_fields or ()) if op.data.get(f) not in (None, "", [])]
        if not match:
            return await self._create(object_name, op)
        filters = [query_filter(f, "EQ", op.data[f]) for f in match]
        rows = await self.puller.query(
            object_name, filters, [{"fieldName": "_id", "isAsc": True}], limit=2, fields=["_id"]
        )
        if not rows:
            return await self._create(object_name, op)
        if len(rows) > 1:
            return WriteResult(
                key=op.key,
                ok=False,
                code="AMBIGUOUS_MATCH",
                message=f"several {object_name} records match on {', '.join(match)}",
            )
        return await self._update(object_name, op, str(rows[0]["_id"]))


def _guard(op: WriteOp, check: WriteCheck | None) -> Callable[[], Awaitable[bool]] | None:
    """The check of one update as a ``before_send``: True, send it."""
    if check is None or op.action != "update":
        return None

    async def before_send() -> bool:
        return op.key not in set(await check([op]))

    return before_send


def _record_id(op: WriteOp) -> str:
    record_id = op.external_id or op.data.get("_id")
    if not record_id:
        raise RecordRejected(f"{op.action} needs the record's _id (external_id)", code="MISSING_ID")
    return str(record_id)


def _owner_list(owner: Any) -> list[str]:
    # owner is always a list in the API, even for a single owner.
    if isinstance(owner, (list, tuple)):
        return [str(o) for o in owner]
    return [str(owner)]


def _created_id(answer: dict[str, Any]) -> str | None:
    if answer.get("dataId"):
        return str(answer["dataId"])
    data = answer.get("data")
    if isinstance(data, dict):
        for key in ("dataId", "_id", "objectDataId"):
            if data.get(key):
                return str(data[key])
    return None


def _int(code: str | None) -> int | None:
    try:
        return int(code) if code is not None else None
    except ValueError:
        return None


def _not_attempted(op: WriteOp, exc: ConnectorError) -> WriteResult:
    return WriteResult(key=op.key, ok=False, code=exc.code, message=f"not written: {exc.message}", retryable=True)
