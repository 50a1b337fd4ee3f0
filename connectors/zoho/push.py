"""Writing records: insert, update, upsert and delete in batches of at most 100.

Zoho answers a batch with one result per record in input order, with HTTP 201
(all created), 200, 202 (v2), 207 (some failed) or 400 (all failed). Each op gets
its own :class:`WriteResult`: the id and ``Modified_Time`` on success, Zoho's code
(``DUPLICATE_DATA``, ``MANDATORY_NOT_FOUND``, ``INVALID_DATA``…) and message on
failure, so the engine dead-letters exactly the records that failed.

Ops keep their order: consecutive ops with the same action form a run, and runs are
sent one after another. Within a run, batches go out in parallel unless two ops
touch the same record.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from connectors.base import WriteCheck, WriteOp, WriteResult, withdrawn
from connectors.errors import ConnectorConfigError, ConnectorError

from .client import ZohoClient
from .discovery import Catalog
from .errors import RETRYABLE_RECORD_CODES, ZohoApiError
from .pull import batched
from .settings import SYSTEM_DUPLICATE_CHECK_FIELDS
from .timefmt import parse_datetime


def _runs(ops: Sequence[WriteOp]) -> list[list[int]]:
    runs: list[list[int]] = []
    for index, op in enumerate(ops):
        if runs and ops[runs[-1][0]].action == op.action:
            runs[-1].append(index)
        else:
            runs.append([index])
    return runs


def _identity(op: WriteOp, match_fields: Sequence[str]) -> tuple[Any, ...] | None:
    if op.action in ("update", "delete"):
        return ("id", op.external_id)
    if op.action == "upsert":
        return tuple(_norm(op.data.get(f)) for f in match_fields)
    return None


def _norm(value: Any) -> Any:
    return value.strip().casefold() if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def _failure_message(item: dict[str, Any]) -> str:
    message = str(item.get("message") or "")
    details = item.get("details") if isinstance(item.get("details"), dict) else {}
    if item.get("code") == "MULTIPLE_OR_MULTI_ERRORS" and isinstance(details.get("errors"), list):
        parts = [
            f"{e.get('code')}: {e.get('message')} ({(e.get('details') or {}).get('api_name', '')})"
            for e in details["errors"]
            if isinstance(e, dict)
        ]
        return "; ".join(parts) or message
    bits = []
    if details.get("api_name"):
        bits.append(f"field {details['api_name']}")
    if details.get("expected_data_type"):
        bits.append(f"expected {details['expected_data_type']}")
    if details.get("maximum_length"):
        bits.append(f"max length {details['maximum_length']}")
    duplicate = details.get("duplicate_record")
    if isinstance(duplicate, dict) and duplicate.get("id"):
        bits.append(f"existing record {duplicate['id']}")
    return f"{message} ({', '.join(bits)})" if bits else message


class Pusher:
    def __init__(self, client: ZohoClient, catalog: Catalog) -> None:
        self.client = client
        self.catalog = catalog

    async def push(self, module: str, ops: Sequence[WriteOp], check: WriteCheck | None = None) -> list[WriteResult]:
        """``check`` (see :meth:`connectors.base.Connector.push_checked`) is awaited for each batch of updates
        once it holds its place among the parallel batches, right before it is sent."""
        results: list[WriteResult | None] = [None] * len(ops)
        for run in _runs(ops):
            action = ops[run[0]].action
            groups = await self._groups(module, ops, run)
            batches: list[tuple[list[int], list[str]]] = []
            for indexes, match_fields in groups:
                batches.extend((list(b), match_fields) for b in batched(indexes, self.client.settings.write_batch))
            identities = [_identity(ops[i], mf) for idx, mf in batches for i in idx]
            distinct = [x for x in identities if x is not None and None not in x]
            parallel = len(distinct) == len(set(distinct))
            await self._send_all(module, action, ops, batches, results, parallel=parallel,
                                 check=check if action == "update" else None)
        return [r for r in results if r is not None]

    async def _groups(self, module: str, ops: Sequence[WriteOp], run: list[int]) -> list[tuple[list[int], list[str]]]:
        """Upserts are sent in groups sharing their duplicate_check_fields; other actions in one group."""
        if ops[run[0]].action != "upsert":
            return [(run, [])]
        groups: dict[tuple[str, ...], list[int]] = {}
        default: list[str] | None = None
        for i in run:
            fields = ops[i].match_fields
            if not fields:
                if default is None:
                    default = await self._default_match(module)
                fields = default
            groups.setdefault(tuple(fields), []).append(i)
        return [(indexes, list(fields)) for fields, indexes in groups.items()]

    async def _default_match(self, module: str) -> list[str]:
        settings = self.client.settings
        if module in settings.duplicate_check_fields or module in SYSTEM_DUPLICATE_CHECK_FIELDS:
            return settings.upsert_fields(module, custom=False)
        return settings.upsert_fields(module, custom=await self.catalog.is_custom(module))

    async def _send_all(
        self,
        module: str,
        action: str,
        ops: Sequence[WriteOp],
        batches: list[tuple[list[int], list[str]]],
        results: list[WriteResult | None],
        *,
        parallel: bool,
        check: WriteCheck | None = None,
    ) -> None:
        limit = asyncio.Semaphore(self.client.settings.write_parallelism if parallel else 1)
        succeeded = False

        async def one(indexes: list[int], match_fields: list[str]) -> None:
            nonlocal succeeded
            async with limit:
                batch = [ops[i] for i in indexes]
                out = set(await check(batch)) if check is not None else set()
                sendable = [op for op in batch if op.key not in out]
                sent = iter(await self._send(module, action, sendable, match_fields) if sendable else [])
                batch_results = [withdrawn(op) if op.key in out else next(sent) for op in batch]
            for i, result in zip(indexes, batch_results, strict=True):
                results[i] = result
            succeeded = True

        outcomes = await asyncio.gather(*(one(idx, mf) for idx, mf in batches), return_exceptions=True)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        if not errors:
            return
        if not succeeded or any(isinstance(e, ConnectorConfigError) or not isinstance(e, ConnectorError) for e in errors):
            raise errors[0]
        # Some batches landed: report the others as retryable failures rather than hide what landed.
        for (indexes, _), outcome in zip(batches, outcomes, strict=True):
            if isinstance(outcome, ConnectorError):
                for i in indexes:
                    results[i] = WriteResult(
                        key=ops[i].key, ok=False, code=outcome.code or type(outcome).__name__, message=outcome.message, retryable=True
                    )

    async def _send(self, module: str, action: str, batch: list[WriteOp], match_fields: list[str]) -> list[WriteResult]:
        precheck = [self._precheck(op) for op in batch]
        sendable = [op for op, problem in zip(batch, precheck, strict=True) if problem is None]
        answers: list[WriteResult] = []
        if sendable:
            answers = await self._call(module, action, sendable, match_fields)
        it = iter(answers)
        return [problem if problem is not None else next(it) for problem in precheck]

    @staticmethod
    def _precheck(op: WriteOp) -> WriteResult | None:
        if op.action in ("update", "delete") and not op.external_id:
            return WriteResult(key=op.key, ok=False, code="MANDATORY_NOT_FOUND", message=f"{op.action} needs the record id")
        if op.action not in ("create", "update", "upsert", "delete"):
            return WriteResult(key=op.key, ok=False, code="INVALID_ACTION", message=f"unknown action {op.action!r}")
        return None

    async def _call(self, module: str, action: str, ops: list[WriteOp], match_fields: list[str]) -> list[WriteResult]:
        settings = self.client.settings
        body: dict[str, Any] = {}
        params: dict[str, Any] | None = None
        if action == "delete":
            method, path = "DELETE", module
            params = {"ids": ",".join(str(op.external_id) for op in ops)}
            if settings.trigger is not None:
                params["wf_trigger"] = "true" if "workflow" in settings.trigger else "false"
        else:
            records = []
            for op in ops:
                record = {k: v for k, v in op.data.items() if k != "id"}
                if action == "update":
                    record["id"] = str(op.external_id)
                records.append(record)
            body["data"] = records
            if settings.trigger is not None:
                body["trigger"] = list(settings.trigger)
            if action == "upsert":
                method, path = "POST", f"{module}/upsert"
                if match_fields:
                    body["duplicate_check_fields"] = list(match_fields)
            elif action == "update":
                method, path = "PUT", module
            else:
                method, path = "POST", module
        try:
            response = await self.client.call(
                method, path, params=params, json=body or None, replay_safe=action != "create"
            )
        except ZohoApiError as exc:
            # A call-level business error (e.g. LIMIT_EXCEEDED, a malformed body) fails exactly these records.
            return [WriteResult(key=op.key, ok=False, code=exc.code, message=exc.message) for op in ops]
        items = (response.payload or {}).get("data") if isinstance(response.payload, dict) else None
        if not isinstance(items, list) or len(items) != len(ops):
            got = len(items) if isinstance(items, list) else "no"
            return [
                WriteResult(
                    key=op.key, ok=False, code="BAD_RESPONSE",
                    message=f"Zoho answered HTTP {response.status} with {got} results for {len(ops)} records", retryable=True,
                )
                for op in ops
            ]
        return [self._result(op, item) for op, item in zip(ops, items, strict=True)]

    @staticmethod
    def _result(op: WriteOp, item: Any) -> WriteResult:
        if not isinstance(item, dict):
            return WriteResult(key=op.key, ok=False, code="BAD_RESPONSE", message="result is not an object", retryable=True)
        details = item.get("details") if isinstance(item.get("details"), dict) else {}
        if str(item.get("status", "")).lower() == "success":
            record_id = details.get("id") or op.external_id
            return WriteResult(
                key=op.key,
                ok=True,
                external_id=str(record_id) if record_id is not None else None,
                modified_at=parse_datetime(details.get("Modified_Time")),
            )
        code = str(item.get("code") or "ERROR")
        return WriteResult(
            key=op.key, ok=False, code=code, message=_failure_message(item), retryable=code in RETRYABLE_RECORD_CODES
        )
