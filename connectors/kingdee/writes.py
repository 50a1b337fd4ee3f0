"""Pushing records: Save/BatchSave, then optional Submit and Audit; Delete; one result per op, in order.

Creates, updates and deletes go in separate calls because ``NeedUpDateFields``
and ``IsDeleteEntry`` are per call, not per model: updates are grouped by the
set of fields they touch, so each one changes exactly those fields.

``ResponseStatus`` reports rows by ``DIndex`` (position in the call's
``Model`` list / ``Ids``). A row with neither a success nor an error was not
saved because *another* row failed (servers that save batches all-or-nothing);
such rows are sent again once on their own.
"""
from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..base import WriteCheck, WriteOp, WriteResult, withdrawn
from . import filters
from .client import KingdeeClient, WriteOutcomeUnknown
from .objects import ObjectSpec
from .protocol import Stub
from .responses import OperationStatus

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Outcome:
    ok: bool
    id: str | None = None
    number: str | None = None
    code: str | None = None
    message: str | None = None
    retryable: bool = False
    collateral: bool = False  # failed only because another row of the batch did


class Writer:
    def __init__(self, client: KingdeeClient, spec: ObjectSpec) -> None:
        self.client = client
        self.spec = spec
        self.settings = client.settings

    # -- entry point -------------------------------------------------------
    async def push(self, ops: Sequence[WriteOp], check: WriteCheck | None = None) -> list[WriteResult]:
        """``check`` (see :meth:`connectors.base.Connector.push_checked`) is awaited for each group of
        updates right before its calls (before the un-audit that precedes its Save, which only a Save
        sent after it may follow)."""
        results: list[WriteResult | None] = [None] * len(ops)
        creates: list[int] = []
        updates: list[tuple[int, str]] = []
        deletes: list[tuple[int, str]] = []
        upserts: list[int] = []
        for i, op in enumerate(ops):
            if op.action == "create":
                creates.append(i)
            elif op.action == "upsert":
                if op.external_id:
                    updates.append((i, op.external_id))
                else:
                    upserts.append(i)
            elif op.action in ("update", "delete"):
                if not op.external_id:
                    results[i] = WriteResult(key=op.key, ok=False, code="MISSING_ID",
                                             message=f"{op.action} needs the record's {self.spec.id_field}")
                elif op.action == "update":
                    updates.append((i, op.external_id))
                else:
                    deletes.append((i, op.external_id))
            else:
                results[i] = WriteResult(key=op.key, ok=False, code="BAD_ACTION", message=f"unknown action {op.action!r}")
        if upserts:
            found, failed = await self._resolve_upserts([ops[i] for i in upserts])
            for i, op in zip(upserts, [ops[i] for i in upserts], strict=True):
                if op.key in failed:
                    results[i] = failed[op.key]
                elif op.key in found:
                    updates.append((i, found[op.key]))
                else:
                    creates.append(i)
        await self._creates(ops, sorted(creates), results)
        await self._updates(ops, updates, results, check)
        await self._deletes(ops, deletes, results)
        return [r if r is not None else WriteResult(key=op.key, ok=False, code="NOT_SENT", message="not sent")
                for r, op in zip(results, ops, strict=True)]

    # -- creates -------------------------------------------------------------
    async def _creates(self, ops: Sequence[WriteOp], indices: list[int], results: list[WriteResult | None]) -> None:
        if not indices:
            return
        outcomes = await self._save_all([ops[i].data for i in indices], [None] * len(indices))
        unknown = [n for n, o in enumerate(outcomes) if o.code == "OUTCOME_UNKNOWN"]
        if unknown:
            await self._reconcile_unknown_creates([ops[indices[n]] for n in unknown], [outcomes[n] for n in unknown])
        await self._workflow(outcomes, updating=False)
        for n, i in enumerate(indices):
            results[i] = self._result(ops[i], outcomes[n])

    async def _reconcile_unknown_creates(self, ops: list[WriteOp], outcomes: list[_Outcome]) -> None:
        """The answer to a create was lost: look the records up by their match field, re-send those not there."""
        field = self.spec.match_field
        keyed = [(op, o) for op, o in zip(ops, outcomes, strict=True) if op.data.get(field) not in (None, "")]
        if not keyed:
            return
        found = await self._lookup([field], [(op.key, (op.data[field],)) for op, _ in keyed])
        resend: list[tuple[WriteOp, _Outcome]] = []
        for op, outcome in keyed:
            ids = found.get(op.key, [])
            if len(ids) == 1:
                outcome.ok, outcome.id, outcome.code, outcome.message = True, ids[0], None, None
            elif not ids:
                resend.append((op, outcome))
        if resend:
            again = await self._save_all([op.data for op, _ in resend], [None] * len(resend))
            for (_, outcome), new in zip(resend, again, strict=True):
                outcome.ok, outcome.id, outcome.number = new.ok, new.id, new.number
                outcome.code, outcome.message, outcome.retryable = new.code, new.message, new.retryable

    # -- updates -------------------------------------------------------------
    async def _updates(self, ops: Sequence[WriteOp], items: list[tuple[int, str]],
                       results: list[WriteResult | None], check: WriteCheck | None = None) -> None:
        if not items:
            return
        groups: dict[tuple[str, ...], list[tuple[int, str]]] = defaultdict(list)
        for i, external_id in items:
            model = self.spec.save_model(ops[i].data, external_id=external_id)
            if not model.need_update_fields:
                results[i] = WriteResult(key=ops[i].key, ok=True, external_id=external_id)
                continue
            groups[tuple(model.need_update_fields)].append((i, external_id))
        for need, members in groups.items():
            if check is not None:
                out = set(await check([ops[i] for i, _ in members if ops[i].action == "update"]))
                for i, _ in members:
                    if ops[i].key in out:
                        results[i] = withdrawn(ops[i])
                members = [(i, external_id) for i, external_id in members if ops[i].key not in out]
                if not members:
                    continue
            ids = [external_id for _, external_id in members]
            if self.spec.form.unaudit_before_update:
                await self._operate_many(Stub.UNAUDIT, ids)  # failures show up in the Save that follows
            outcomes = await self._save_all([ops[i].data for i, _ in members], ids, need=list(need))
            for outcome, external_id in zip(outcomes, ids, strict=True):
                outcome.id = outcome.id or external_id
            await self._workflow(outcomes, updating=True)
            for (i, _), outcome in zip(members, outcomes, strict=True):
                results[i] = self._result(ops[i], outcome)

    # -- deletes -------------------------------------------------------------
    async def _deletes(self, ops: Sequence[WriteOp], items: list[tuple[int, str]],
                       results: list[WriteResult | None]) -> None:
        if not items:
            return
        ids = [external_id for _, external_id in items]
        if self.spec.form.unaudit_before_delete:
            await self._operate_many(Stub.UNAUDIT, ids)
        outcomes = await self._operate_many(Stub.DELETE, ids)
        failed = [n for n, o in enumerate(outcomes) if not o.ok]
        if failed:
            # Deleting what is already gone is success; the answer does not say which rows those were.
            still_there = set(await self._existing([ids[n] for n in failed]))
            for n in failed:
                if ids[n] not in still_there:
                    outcomes[n] = _Outcome(ok=True, id=ids[n])
        for (i, external_id), outcome in zip(items, outcomes, strict=True):
            outcome.id = external_id
            results[i] = self._result(ops[i], outcome)

    # -- Save / BatchSave ----------------------------------------------------
    async def _save_all(self, datas: list[dict[str, Any]], ids: list[str | None],
                        need: list[str] | None = None) -> list[_Outcome]:
        size = self.settings.write_batch
        chunks = [list(range(start, min(start + size, len(datas)))) for start in range(0, len(datas), size)]
        outcomes: list[_Outcome | None] = [None] * len(datas)

        async def run(chunk: list[int]) -> None:
            got = await self._save_batch([datas[n] for n in chunk], [ids[n] for n in chunk], need)
            retry = [k for k, o in enumerate(got) if o.collateral]
            if retry and len(retry) < len(chunk):
                again = await self._save_batch([datas[chunk[k]] for k in retry], [ids[chunk[k]] for k in retry], need)
                for k, outcome in zip(retry, again, strict=True):
                    got[k] = outcome
            for n, outcome in zip(chunk, got, strict=True):
                outcomes[n] = outcome

        await asyncio.gather(*(run(chunk) for chunk in chunks))
        return [o if o is not None else _Outcome(ok=False, code="NOT_SENT") for o in outcomes]

    async def _save_batch(self, datas: list[dict[str, Any]], ids: list[str | None],
                          need: list[str] | None) -> list[_Outcome]:
        creating = ids[0] is None
        models = [self.spec.save_model(data, external_id=external_id).model for data, external_id in zip(datas, ids, strict=True)]
        body: dict[str, Any] = {
            "Creator": "",
            "NeedUpDateFields": need or [],
            "NeedReturnFields": [],
            # A partial update never drops entry lines the record did not mention.
            "IsDeleteEntry": bool(self.spec.form.replace_entries) if not creating else True,
            "SubSystemId": "",
            "IsVerifyBaseDataField": self.settings.verify_base_data,
            "IsEntryBatchFill": True,
            "ValidateFlag": True,
            "NumberSearch": True,
            "IsAutoSubmitAndAudit": False,
            "Model": models if len(models) > 1 else models[0],
        }
        try:
            status = await self.client.save(self.spec.form_id, body, batch=len(models) > 1, creates=creating)
        except WriteOutcomeUnknown as exc:
            return [_Outcome(ok=False, code="OUTCOME_UNKNOWN", message=exc.message, retryable=True) for _ in models]
        return self._by_row(status, len(models))

    # -- Submit / Audit ------------------------------------------------------
    async def _workflow(self, outcomes: list[_Outcome], *, updating: bool) -> None:
        form = self.spec.form
        steps = ([Stub.SUBMIT] if form.submit else []) + ([Stub.AUDIT] if form.audit else [])
        for stub in steps:
            current = [o for o in outcomes if o.ok and o.id]
            if not current:
                return
            done = await self._operate_many(stub, [o.id for o in current if o.id])
            for outcome, step in zip(current, done, strict=True):
                if not step.ok:
                    outcome.ok = False
                    outcome.code = f"{stub.op} {step.code or ''}".strip()
                    what = "updated" if updating else f"saved as {outcome.number or outcome.id}"
                    outcome.message = f"{what}, but {stub.op} failed: {step.message}"
                    outcome.retryable = step.retryable

    async def _operate_many(self, stub: Stub, ids: list[str]) -> list[_Outcome]:
        size = self.settings.write_batch
        out: list[_Outcome] = []
        for start in range(0, len(ids), size):
            chunk = ids[start:start + size]
            status = await self.client.operate(stub, self.spec.form_id, chunk)
            out.extend(self._by_row(status, len(chunk), ids=chunk))
        return out

    # -- answer -> per-row outcomes -----------------------------------------
    def _by_row(self, status: OperationStatus, count: int, ids: list[str] | None = None) -> list[_Outcome]:
        outcomes: list[_Outcome | None] = [None] * count
        position = {i: n for n, i in enumerate(ids or [])}
        for k, success in enumerate(status.successes):
            n = success.dindex if success.dindex is not None and 0 <= success.dindex < count else None
            if n is None and success.id in position:
                n = position[success.id]
            if n is None and len(status.successes) == count:
                n = k
            if n is not None:
                outcomes[n] = _Outcome(ok=True, id=success.id, number=success.number)
        code = f"MsgCode {status.msg_code}" if status.msg_code else "MsgCode 0"
        retryable = status.msg_code in (*self.settings.transient_msg_codes, *self.settings.rate_limit_msg_codes)
        unplaced: list[str] = []
        for error in status.errors:
            n = error.dindex if error.dindex is not None and 0 <= error.dindex < count else None
            if n is None and count == 1:
                n = 0
            message = f"[{error.field}] {error.message}" if error.field else error.message
            if n is None:
                unplaced.append(message)
                continue
            previous = outcomes[n]
            if previous is not None and not previous.ok and previous.message:
                message = f"{previous.message}; {message}"
            outcomes[n] = _Outcome(ok=False, code=code, message=message, retryable=retryable)
        filled: list[_Outcome] = []
        for outcome in outcomes:
            if outcome is not None:
                filled.append(outcome)
            elif unplaced:
                filled.append(_Outcome(ok=False, code=code, message="; ".join(unplaced), retryable=retryable))
            elif status.success:
                filled.append(_Outcome(ok=True))
            else:
                filled.append(_Outcome(ok=False, code=code, retryable=True, collateral=True,
                                       message="not saved: the ERP rejected the batch because of other rows"))
        return filled

    def _result(self, op: WriteOp, outcome: _Outcome) -> WriteResult:
        return WriteResult(key=op.key, ok=outcome.ok, external_id=outcome.id, code=None if outcome.ok else outcome.code,
                           message=None if outcome.ok else outcome.message, retryable=outcome.retryable and not outcome.ok)

    # -- lookups -------------------------------------------------------------
    async def _resolve_upserts(self, ops: list[WriteOp]) -> tuple[dict[str, str], dict[str, WriteResult]]:
        found: dict[str, str] = {}
        failed: dict[str, WriteResult] = {}
        by_fields: dict[tuple[str, ...], list[tuple[str, tuple[Any, ...]]]] = defaultdict(list)
        for op in ops:
            fields = tuple(op.match_fields or (self.spec.match_field,))
            values = tuple(op.data.get(f) for f in fields)
            if any(v in (None, "") for v in values):
                continue  # nothing to match on: a new record
            by_fields[fields].append((op.key, values))
        for fields, keyed in by_fields.items():
            matches = await self._lookup(list(fields), keyed)
            for key, ids in matches.items():
                if len(ids) == 1:
                    found[key] = ids[0]
                elif len(ids) > 1:
                    failed[key] = WriteResult(key=key, ok=False, code="DUPLICATE_MATCH",
                                              message=f"{len(ids)} {self.spec.form_id} records match on "
                                                      f"{', '.join(fields)}: {', '.join(ids[:5])}")
        return found, failed

    async def _lookup(self, fields: list[str], keyed: list[tuple[str, tuple[Any, ...]]]) -> dict[str, list[str]]:
        """op key -> ids of the records whose ``fields`` equal the op's values (case-insensitive, as the ERP's collation)."""
        id_field = self.spec.id_field
        keys = [id_field, *fields]
        wanted: dict[tuple[str, ...], list[str]] = defaultdict(list)
        original: dict[tuple[str, ...], tuple[Any, ...]] = {}
        for key, values in keyed:
            folded = tuple(str(v).casefold() for v in values)
            wanted[folded].append(key)
            original.setdefault(folded, values)
        distinct = list(wanted)
        hits: dict[tuple[str, ...], list[str]] = defaultdict(list)
        for start in range(0, len(distinct), self.settings.fetch_batch):
            chunk = [original[folded] for folded in distinct[start:start + self.settings.fetch_batch]]
            if len(fields) == 1:
                clause = filters.in_list(fields[0], [values[0] for values in chunk])
            else:
                clause = filters.any_of(filters.all_of(filters.equals(f, v) for f, v in zip(fields, values, strict=True))
                                        for values in chunk)
            rows = await self.client.query(self.spec.form_id, keys, filter=filters.all_of([self.spec.form.filter, clause]))
            for row in rows:
                hits[tuple(str(v).casefold() for v in row[1:])].append(str(row[0]))
        return {key: sorted(set(hits.get(values, []))) for values, op_keys in wanted.items() for key in op_keys}

    async def _existing(self, ids: list[str]) -> list[str]:
        present: list[str] = []
        for start in range(0, len(ids), self.settings.fetch_batch):
            chunk = ids[start:start + self.settings.fetch_batch]
            rows = await self.client.query(self.spec.form_id, [self.spec.id_field],
                                           filter=filters.in_list(self.spec.id_field, chunk,
                                                                  numeric=all(i.lstrip("-").isdigit() for i in chunk)))
            present.extend(str(row[0]) for row in rows)
        return present

