"""The Kingdee emulator's state: records per form, login sessions, and the rules of saving.

Thread-safe: one re-entrant lock guards everything, so uvicorn's worker threads
and the ``/_admin`` API can run at once. Times are naive ERP local time in the
emulator's time zone, as the real server stores them.
"""
from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import HTTPException

from ..emulation.switches import Switches
from . import emulator_render as render
from .emulator_amounts import compute_amounts
from .emulator_forms import (
    FORMS,
    REF,
    REFERENCE_DATA,
    STATUS,
    EntrySpec,
    FieldSpec,
    FormSpec,
)
from .emulator_index import FormTable
from .emulator_query import LINES, Resolver, candidates, find_form, plan, run
from .emulator_sessions import Credentials, LoginSession, SessionBook
from .emulator_values import RowError, ref_number, required_missing, scalar, unknown_reference
from .localtime import zone
from .protocol import DOCUMENT_STATUS, QUERY_LIMIT_MAX, MsgCode

#: Run-time switches (PATCH /_admin/switches) and their defaults. Behaviour the sources leave open is a switch.
SWITCH_DEFAULTS: dict[str, Any] = {
    "session_ttl": 1800.0,  # idle seconds before a login session is lost; 0 = never
    "batch_all_or_nothing": False,  # BatchSave saves nothing when any row fails (UNCONFIRMED either way)
    "status_bumps_modify_date": False,  # Submit/Audit/UnAudit also move FModifyDate (UNCONFIRMED)
    "require_audited_refs": True,  # references must point at audited, enabled base data
    "edit_audited": False,  # Save may change submitted/audited records (UNCONFIRMED; real servers refuse)
    "max_query_limit": QUERY_LIMIT_MAX,
    "rate_limit_fault": "msgcode",  # injected rate limits: "msgcode" (HTTP 200, MsgCode 14) or "http429"
    # Most models one BatchSave takes (0 = no limit). The sources give no number; the size is the
    # customer's server setting in practice, so benches set it to the connector's write_batch to
    # prove no call exceeds it. A larger batch fails whole, before any row is saved.
    "max_batch_save": 0,
}


class StoreError(Exception):
    """A whole call fails (bad form id, bad parameters): one ResponseStatus error without DIndex."""

    def __init__(self, msg_code: int, message: str) -> None:
        super().__init__(message)
        self.msg_code = msg_code
        self.message = message


@dataclass(slots=True)
class RowFailure:
    index: int
    errors: list[RowError]


@dataclass(slots=True)
class Saved:
    index: int
    pk: int
    number: str


def _folded(data: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    return {str(k).lower(): (k, v) for k, v in data.items()}


class KingdeeStore:
    def __init__(self, credentials: Credentials, switches: Switches, *, timezone: str = "Asia/Shanghai") -> None:
        self.credentials = credentials
        self.switches = switches
        for key, value in SWITCH_DEFAULTS.items():
            switches.extra.setdefault(key, value)
        self.tz = zone(timezone)
        self.lock = threading.RLock()
        self.resolver = Resolver(self._deref)
        self.sessions = SessionBook(credentials, lambda: float(self.switch("session_ttl") or 0))
        self.reset()

    def switch(self, name: str) -> Any:
        return self.switches.extra.get(name, SWITCH_DEFAULTS[name])

    # -- clock ---------------------------------------------------------------
    def now(self) -> datetime:
        """The server's local time (naive, milliseconds), skewed or frozen by the shared clock switches."""
        frozen = self.switches.frozen()
        if frozen is not None:
            # Set on purpose (ties, a save that commits late with an older stamp): used as it is.
            stamp = frozen.astimezone(self.tz).replace(tzinfo=None)
            return stamp.replace(microsecond=stamp.microsecond // 1000 * 1000)
        # The machine's clock never goes backwards here (NTP adjustments): FModifyDate order is what clients
        # page by. The skew switch is added after, so a server set minutes off stamps minutes off at once.
        wall = max(time.time(), self._last_wall)
        self._last_wall = wall
        stamp = datetime.fromtimestamp(wall + self.switches.clock_offset_seconds, self.tz).replace(tzinfo=None)
        return stamp.replace(microsecond=stamp.microsecond // 1000 * 1000)

    # -- state ---------------------------------------------------------------
    def reset(self) -> None:
        with self.lock:
            # FormTable: a dict that also keeps the records sorted by FModifyDate (queries read the window)
            self.records: dict[str, FormTable] = {form_id: FormTable() for form_id in FORMS}
            self.numbers: dict[str, dict[str, int]] = {form_id: {} for form_id in FORMS}
            self.next_pk: dict[str, int] = {form_id: 100001 for form_id in FORMS}
            self.number_seq: dict[str, int] = {form_id: 0 for form_id in FORMS}
            self.next_entry_pk = 1
            self._last_wall = 0.0
            self._load_reference_data()

    def _load_reference_data(self) -> None:
        stamp = self.now()
        for form_id, rows in REFERENCE_DATA.items():
            form = FORMS[form_id]
            for number, name, extra in rows:
                model: dict[str, Any] = {"FNumber": number, "FName": name}
                for key, value in extra.items():
                    spec = form.field(key)
                    model[key] = {"FNumber": value} if spec and spec.kind == REF else value
                self.apply_model(form, model, status="C", stamp=stamp)

    def _deref(self, form_id: str, pk: Any) -> dict[str, Any] | None:
        if pk is None:
            return None
        return self.records[form_id].get(int(pk))

    def find_by_number(self, form: FormSpec, number: str) -> dict[str, Any] | None:
        pk = self.numbers[form.form_id].get(str(number).casefold())
        return None if pk is None else self.records[form.form_id].get(pk)

    def form(self, form_id: str) -> FormSpec:
        if not form_id:
            raise StoreError(MsgCode.FORM_ID_EMPTY, "表单标识FormId不能为空")
        found = find_form(form_id)
        if found is None:
            raise StoreError(MsgCode.EXCEPTION, f"业务对象“{form_id}”不存在")
        return found

    # -- ExecuteBillQuery --------------------------------------------------------
    def query(self, data: dict[str, Any]) -> list[list[Any]]:
        with self.lock:
            query = plan(self.resolver, data, max_limit=int(self.switch("max_query_limit")))
            return run(query, candidates(query, self.records[query.form.form_id]))

    # -- Save / BatchSave --------------------------------------------------------
    def save(self, form_id: str, data: dict[str, Any], *, batch: bool) -> tuple[list[Saved], list[RowFailure]]:
        form = self.form(form_id)
        options = {k.lower(): v for k, v in data.items()}
        models = options.get("model")
        if batch:
            models = models if isinstance(models, list) else [models] if isinstance(models, dict) else None
        else:
            models = [models] if isinstance(models, dict) else None
        if not models or not all(isinstance(m, dict) for m in models):
            raise StoreError(MsgCode.PARAMETER, "参数Model格式不正确：Save 需要一个对象，BatchSave 需要对象数组")
        cap = int(self.switch("max_batch_save") or 0)
        if batch and cap and len(models) > cap:
            raise StoreError(MsgCode.PARAMETER, f"BatchSave 一次最多 {cap} 个对象，本次 {len(models)} 个")
        need = [str(k) for k in options.get("needupdatefields") or []]
        delete_entry = _truthy(options.get("isdeleteentry", True))
        verify = _truthy(options.get("isverifybasedatafield", False))
        auto = _truthy(options.get("isautosubmitandaudit", False))
        saved: list[Saved] = []
        failed: list[RowFailure] = []
        with self.lock:
            undo: list[tuple[str, int, dict[str, Any] | None]] = []
            for index, model in enumerate(models):
                try:
                    record = self.apply_model(form, model, need=need, delete_entry=delete_entry, verify=verify,
                                              auto_audit=auto, undo=undo)
                    saved.append(Saved(index, record[form.pk], str(record.get(form.number) or "")))
                except _RowErrors as exc:
                    failed.append(RowFailure(index, exc.errors))
            if failed and batch and self.switch("batch_all_or_nothing"):
                self._rollback(undo)
                saved = []
        return saved, failed

    def _rollback(self, undo: list[tuple[str, int, dict[str, Any] | None]]) -> None:
        for form_id, pk, previous in reversed(undo):
            current = self.records[form_id].pop(pk, None)
            if current is not None:
                self.numbers[form_id].pop(str(current.get(FORMS[form_id].number) or "").casefold(), None)
            if previous is not None:
                self.records[form_id][pk] = previous
                self.numbers[form_id][str(previous.get(FORMS[form_id].number) or "").casefold()] = pk

    def apply_model(
        self,
        form: FormSpec,
        model: dict[str, Any],
        *,
        need: list[str] | None = None,
        delete_entry: bool = True,
        verify: bool = True,
        auto_audit: bool = False,
        status: str | None = None,
        stamp: datetime | None = None,
        as_admin: bool = False,
        undo: list | None = None,
    ) -> dict[str, Any]:
        """Validate one model and commit it; raises :class:`_RowErrors` listing every problem found."""
        given = _folded(model)
        raw_pk = given.get(form.pk.lower(), (None, None))[1]
        try:
            pk = int(raw_pk) if raw_pk not in (None, "", 0, "0") else 0
        except (TypeError, ValueError):
            raise _RowErrors([RowError(f"主键{form.pk}的值“{raw_pk}”不正确", form.pk, MsgCode.PARAMETER)]) from None
        previous = self.records[form.form_id].get(pk) if pk else None
        if pk and previous is None:
            raise _RowErrors([RowError(f"{form.label}内码为“{pk}”的数据不存在或已被删除", form.pk,
                                       MsgCode.DATA_NOT_FOUND)])
        creating = previous is None
        if not creating:
            state = previous.get("FDocumentStatus")
            if state in ("B", "C") and not as_admin and not self.switch("edit_audited"):
                raise _RowErrors([RowError(
                    f"{form.label}“{previous.get(form.number)}”的数据状态为“{DOCUMENT_STATUS[state]}”，不允许修改",
                    None, MsgCode.NOT_ALLOWED)])
            if auto_audit:
                raise _RowErrors([RowError("更新数据时IsAutoSubmitAndAudit不能为true", None, MsgCode.PARAMETER)])
        record = copy.deepcopy(previous) if previous else self._blank(form)
        wanted = {k.lower() for k in need} if (need and not creating) else None
        errors: list[RowError] = []
        subs = {s.lower(): s for s in form.sub_entities}
        for folded, (key, value) in given.items():
            if folded == form.pk.lower():
                continue
            entry = form.entry(folded)
            if entry is not None:
                if wanted is None or entry.key.lower() in wanted:
                    self._apply_lines(form, entry, record, value, wanted, delete_entry, verify, errors)
                continue
            if folded in subs:
                if not isinstance(value, dict):
                    errors.append(RowError(f"“{subs[folded]}”的值必须是对象", subs[folded], MsgCode.PARAMETER))
                    continue
                for sub_key, sub_value in value.items():
                    spec = form.field(sub_key)
                    if spec is None or spec.sub is None or spec.sub.lower() != folded or spec.readonly:
                        continue
                    if wanted is None or spec.key.lower() in wanted or folded in wanted:
                        self._set(record, spec, sub_value, verify, errors, None)
                continue
            spec = form.field(folded)
            if spec is None:
                continue  # the ERP ignores keys its metadata does not have
            if spec.readonly:
                if as_admin and spec.key == "FDocumentStatus" and value in DOCUMENT_STATUS:
                    status = str(value)
                continue
            if wanted is None or spec.key.lower() in wanted:
                self._set(record, spec, value, verify, errors, None)
        for spec in form.fields.values():
            if spec.required and record.get(spec.key) in (None, ""):
                errors.append(required_missing(spec, None))
        number = record.get(form.number)
        if number:
            holder = self.numbers[form.form_id].get(str(number).casefold())
            if holder is not None and holder != pk:
                errors.append(RowError(f"{form.label}编码“{number}”已被使用，编码必须唯一", form.number))
        if form.entries and form.is_bill:
            for entry in form.entries.values():
                if not record[LINES][entry.key]:
                    errors.append(RowError(f"单据体“{entry.label}”至少需要一行数据", entry.key))
        if errors:
            raise _RowErrors(errors)
        compute_amounts(record)
        return self._commit(form, record, creating=creating, auto_audit=auto_audit, status=status, stamp=stamp,
                            undo=undo)

    def _blank(self, form: FormSpec) -> dict[str, Any]:
        record: dict[str, Any] = {spec.key: None for spec in form.fields.values()}
        record[LINES] = {entry.key: [] for entry in form.entries.values()}
        for spec in form.fields.values():
            if spec.default is not None:
                self._set(record, spec, {"FNumber": spec.default} if spec.kind == REF else spec.default, False, [], None)
        if form.is_bill and "FDate" in record:
            record["FDate"] = self.now().replace(hour=0, minute=0, second=0, microsecond=0)
        return record

    def _set(self, target: dict[str, Any], spec: FieldSpec, value: Any, verify: bool, errors: list[RowError],
             line: int | None) -> None:
        try:
            if spec.kind == REF:
                target[spec.key] = self._resolve_ref(spec, value, verify, line)
            elif spec.kind != STATUS:
                target[spec.key] = scalar(spec, value, line)
        except RowError as exc:
            errors.append(exc)

    def _resolve_ref(self, spec: FieldSpec, value: Any, verify: bool, line: int | None) -> int | None:
        number = ref_number(spec, value, line)
        if number is None:
            return None
        target_form = FORMS[spec.ref or ""]
        if isinstance(number, int):
            found = self.records[target_form.form_id].get(number)
        else:
            found = self.find_by_number(target_form, number)
        usable = found is not None and (
            not self.switch("require_audited_refs")
            or (found.get("FDocumentStatus") == "C" and found.get("FForbidStatus") in (None, "A")))
        if usable:
            return found[target_form.pk]  # type: ignore[index]
        if verify:
            raise unknown_reference(spec, number, line)
        return None  # without IsVerifyBaseDataField the ERP blanks an unknown reference

    def _apply_lines(self, form: FormSpec, entry: EntrySpec, record: dict[str, Any], value: Any,
                     wanted: set[str] | None, delete_entry: bool, verify: bool, errors: list[RowError]) -> None:
        if not isinstance(value, list):
            errors.append(RowError(f"单据体“{entry.key}”的值必须是数组", entry.key, MsgCode.PARAMETER))
            return
        existing = {line["FEntryID"]: line for line in record[LINES][entry.key]}
        listed_fields = {k for k in (wanted or set()) if k in entry.fields}
        result: list[dict[str, Any]] = []
        touched: set[int] = set()
        for n, raw in enumerate(value, start=1):
            if not isinstance(raw, dict):
                errors.append(RowError(f"第{n}行：分录格式不正确", entry.key, MsgCode.PARAMETER))
                continue
            given = _folded(raw)
            raw_id = (given.get(entry.pk.lower()) or given.get(entry.query_pk.lower()) or (None, None))[1]
            entry_id = int(raw_id) if str(raw_id or "").isdigit() else 0
            if entry_id and entry_id not in existing:
                errors.append(RowError(f"第{n}行：分录内码“{entry_id}”不存在", entry.pk, MsgCode.DATA_NOT_FOUND))
                continue
            line = existing[entry_id] if entry_id else {"FEntryID": 0, **{s.key: None for s in entry.fields.values()}}
            is_new = not entry_id
            if is_new:
                for spec in entry.fields.values():
                    if spec.default is not None:
                        self._set(line, spec, spec.default, False, errors, n)
            for folded, (_key, field_value) in given.items():
                spec = entry.fields.get(folded)
                if spec is None or spec.readonly:
                    continue
                if is_new or not listed_fields or folded in listed_fields:
                    self._set(line, spec, field_value, verify, errors, n)
            line["__given__"] = {k for k in given}
            self._check_line(entry, line, n, errors)
            touched.add(entry_id)
            result.append(line)
        if delete_entry:
            record[LINES][entry.key] = result
        else:
            kept = [line for line in record[LINES][entry.key]]
            record[LINES][entry.key] = kept + [line for line in result if not line["FEntryID"]]

    def _check_line(self, entry: EntrySpec, line: dict[str, Any], n: int, errors: list[RowError]) -> None:
        for spec in entry.fields.values():
            if spec.required and line.get(spec.key) in (None, ""):
                errors.append(required_missing(spec, n))
        qty = line.get("FQty")
        if qty is not None and qty <= 0:
            errors.append(RowError(f"第{n}行：销售数量必须大于0", "FQty"))
        if "FUnitID" in line and line.get("FUnitID") is None and line.get("FMaterialId"):
            material = self.records["BD_MATERIAL"].get(line["FMaterialId"])
            line["FUnitID"] = material.get("FBaseUnitId") if material else None

    def _commit(self, form: FormSpec, record: dict[str, Any], *, creating: bool, auto_audit: bool,
                status: str | None, stamp: datetime | None, undo: list | None) -> dict[str, Any]:
        now = stamp or self.now()
        table = self.records[form.form_id]
        if creating:
            pk = self.next_pk[form.form_id]
            self.next_pk[form.form_id] = pk + 1
            record[form.pk] = pk
            record["FCreateDate"] = now
            record["FDocumentStatus"] = "A"
            if form.has_forbid:
                record["FForbidStatus"] = "A"
            if "FCloseStatus" in record:
                record["FCloseStatus"] = "A"
            if not record.get(form.number):
                record[form.number] = self._next_number(form)
            previous = None
        else:
            pk = record[form.pk]
            previous = table[pk]
            self.numbers[form.form_id].pop(str(previous.get(form.number) or "").casefold(), None)
        for lines in record[LINES].values():
            for line in lines:
                line.pop("__given__", None)
                if not line.get("FEntryID"):
                    line["FEntryID"] = self.next_entry_pk
                    self.next_entry_pk += 1
        if auto_audit:
            status = "C"
        if status:
            record["FDocumentStatus"] = status
            record["FApproveDate"] = now if status == "C" else None
        record["FModifyDate"] = now
        table[pk] = record
        self.numbers[form.form_id][str(record[form.number]).casefold()] = pk
        if undo is not None:
            undo.append((form.form_id, pk, previous))
        return record

    def _next_number(self, form: FormSpec) -> str:
        while True:
            self.number_seq[form.form_id] += 1
            number = f"{form.number_prefix}{self.number_seq[form.form_id]:0{form.number_width}d}"
            if number.casefold() not in self.numbers[form.form_id]:
                return number

    # -- Submit / Audit / UnAudit / Delete ---------------------------------------
    def operate(self, op: str, form_id: str, data: dict[str, Any]) -> tuple[list[Saved], list[RowFailure]]:
        form = self.form(form_id)
        options = {k.lower(): v for k, v in data.items()}
        raw_ids = options.get("ids")
        ids = [s.strip() for s in raw_ids.split(",")] if isinstance(raw_ids, str) else list(raw_ids or [])
        ids = [str(i).strip() for i in ids if str(i).strip()]
        numbers = [str(n) for n in options.get("numbers") or []]
        if not ids and not numbers:
            raise StoreError(MsgCode.PARAMETER, "参数Ids和Numbers不能同时为空")
        done: list[Saved] = []
        failed: list[RowFailure] = []
        with self.lock:
            stamp = self.now()
            for index, given in enumerate(ids or numbers):
                record = (self.records[form.form_id].get(int(given)) if given.isdigit() else None) if ids \
                    else self.find_by_number(form, given)
                if record is None:
                    failed.append(RowFailure(index, [RowError(f"{form.label}“{given}”不存在或已被删除", None,
                                                              MsgCode.DATA_NOT_FOUND)]))
                    continue
                problem = self._transition(op, form, record, stamp)
                if problem:
                    failed.append(RowFailure(index, [RowError(problem, None, MsgCode.VALIDATION_FAILED)]))
                else:
                    done.append(Saved(index, record[form.pk], str(record.get(form.number) or "")))
        return done, failed

    def _transition(self, op: str, form: FormSpec, record: dict[str, Any], stamp: datetime) -> str | None:
        state = record.get("FDocumentStatus") or "A"
        label = f"{form.label}“{record.get(form.number)}”"
        rules = {"Submit": (("A", "D", "Z"), "B"), "Audit": (("B",), "C"), "UnAudit": (("C",), "D"),
                 "Delete": (("A", "D", "Z"), None)}
        allowed, target = rules[op]
        if state not in allowed:
            verb = {"Submit": "提交", "Audit": "审核", "UnAudit": "反审核", "Delete": "删除"}[op]
            return f"{label}的数据状态为“{DOCUMENT_STATUS.get(state, state)}”，不能{verb}"
        if op == "Delete":
            self.records[form.form_id].pop(record[form.pk])
            self.numbers[form.form_id].pop(str(record.get(form.number) or "").casefold(), None)
            return None
        record["FDocumentStatus"] = target
        if op == "Audit":
            record["FApproveDate"] = stamp
        elif op == "UnAudit":
            record["FApproveDate"] = None
        if self.switch("status_bumps_modify_date"):
            record["FModifyDate"] = stamp
            self.records[form.form_id].reindex(record[form.pk])  # changed in place: move it in the index
        return None

    # -- View ----------------------------------------------------------------------
    def view(self, form_id: str, data: dict[str, Any]) -> dict[str, Any]:
        form = self.form(form_id)
        options = {k.lower(): v for k, v in data.items()}
        with self.lock:
            given_id, number = str(options.get("id") or "").strip(), str(options.get("number") or "").strip()
            record = None
            if given_id.isdigit():
                record = self.records[form.form_id].get(int(given_id))
            elif number:
                record = self.find_by_number(form, number)
            elif not given_id:
                raise StoreError(MsgCode.PARAMETER, "参数Id和Number不能同时为空")
            if record is None:
                raise StoreError(MsgCode.DATA_NOT_FOUND, f"{form.label}“{given_id or number}”不存在或已被删除")
            return render.view(form, record, self._deref)

    def business_info(self, form_id: str) -> dict[str, Any]:
        return render.business_info(self.form(form_id))

    def dump_record(self, form: FormSpec, record: dict[str, Any]) -> dict[str, Any]:
        return render.dump(form, record, self._deref)

    # -- sessions (delegated) --------------------------------------------------------------
    @property
    def logins(self) -> dict[str, int]:
        return self.sessions.logins

    def login(self, mode: str, args: dict[str, Any]) -> tuple[dict[str, Any], LoginSession | None]:
        return self.sessions.login(mode, args)

    def session_valid(self, cookies: dict[str, str]) -> bool:
        return self.sessions.valid(cookies)

    def logout(self, cookies: dict[str, str]) -> None:
        self.sessions.logout(cookies)

    def expire_tokens(self) -> int:
        return self.sessions.expire_all()

    # -- /_admin (AdminStore) ------------------------------------------------------------
    def object_names(self) -> list[str]:
        return list(FORMS)

    def seed(self, count: int, objects: list[str] | None = None) -> dict[str, int]:
        from .emulator_seed import seed_store

        try:
            return seed_store(self, count, objects, seed=self.switches.seed)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None

    def admin_create(self, object: str, data: dict[str, Any]) -> dict[str, Any]:
        form = self.form(object)
        model = {k: v for k, v in _admin_model(data).items() if k.lower() != form.pk.lower()}
        with self.lock:
            try:
                record = self.apply_model(form, model, verify=True, as_admin=True)
            except _RowErrors as exc:
                raise HTTPException(400, [e.message for e in exc.errors]) from None
            return self.dump_record(form, record)

    def admin_update(self, object: str, record_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        form = self.form(object)
        with self.lock:
            if not str(record_id).isdigit() or int(record_id) not in self.records[form.form_id]:
                raise KeyError(record_id)
            model = _admin_model(changes)
            model[form.pk] = int(record_id)
            try:
                record = self.apply_model(form, model, need=list(model), verify=True, as_admin=True,
                                          delete_entry=False)
            except _RowErrors as exc:
                raise HTTPException(400, [e.message for e in exc.errors]) from None
            return self.dump_record(form, record)

    def admin_delete(self, object: str, record_id: str) -> None:
        form = self.form(object)
        with self.lock:
            if not str(record_id).isdigit() or int(record_id) not in self.records[form.form_id]:
                raise KeyError(record_id)
            record = self.records[form.form_id].pop(int(record_id))
            self.numbers[form.form_id].pop(str(record.get(form.number) or "").casefold(), None)

    def dump(self, object: str) -> list[dict[str, Any]]:
        form = self.form(object)
        with self.lock:
            return [self.dump_record(form, r) for r in self.records[form.form_id].values()]

class _RowErrors(Exception):
    def __init__(self, errors: list[RowError]) -> None:
        super().__init__("; ".join(e.message for e in errors))
        self.errors = errors


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1")
    return bool(value)


def _admin_model(data: dict[str, Any]) -> dict[str, Any]:
    """Admin calls may use query-style dotted keys (``FGroup.FNumber``) as well as model references."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        base, _, sub = str(key).partition(".")
        out[base if sub.lower() == "fnumber" else key] = {"FNumber": value} if sub.lower() == "fnumber" else value
    return out


__all__ = ["Credentials", "KingdeeStore", "RowFailure", "Saved", "StoreError", "SWITCH_DEFAULTS"]
