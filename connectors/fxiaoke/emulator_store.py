"""The emulated tenant's data: thread-safe, validated like the API, and telling
listeners about every change (the push sender turns changes into deliveries).

Codes the public docs do not name (data not found, data already invalid,
validation failures) are the emulator's own choice, listed in :data:`CODES` and
overridable through the ``codes`` switch; the connector's matching settings
(``not_found_codes``, ``already_invalid_codes``) default to the same values.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .emulator_query import Filter, Order, QueryError, Table
from .emulator_schema import OBJECTS, SYSTEM_USER, Employees, FieldDef, ObjectDef, SeedFactory

#: The emulator's error codes. 201112011 and 10013 are documented; the others are UNCONFIRMED choices.
CODES = {
    "param": 10006,
    "offset_out_of_range": 10013,
    "validation": 201112001,
    "lookup_missing": 201112011,
    "not_found": 201112008,
    "invalid_state": 201112016,
}


class ApiError(Exception):
    """An answer with a non-zero errorCode."""

    def __init__(self, code: int, message: str, description: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.description = description or message


@dataclass(frozen=True, slots=True)
class Change:
    object: str
    ids: tuple[str, ...]
    action: str  # create | update | invalid | delete | recover
    at_ms: int
    by_api: bool


Listener = Callable[[Change], None]

#: Fields a write never sets directly.
_SYSTEM_MANAGED = frozenset(
    {"_id", "created_by", "last_modified_by", "create_time", "last_modified_time", "life_status", "is_deleted",
     "version", "object_describe_api_name", "tenant_id", "dataObjectApiName"}
)


class Store:
    def __init__(
        self,
        *,
        ea: str,
        seed: int | None = 0,
        clock: Callable[[], float] = time.time,
        skew: Callable[[], float] = lambda: 0.0,
        frozen: Callable[[], float | None] = lambda: None,
        codes: dict[str, int] | None = None,
        invalid_sets_is_deleted: bool = True,
        unknown_fields: str = "ignore",
        update_owner: str = "ignore",
    ) -> None:
        self.ea = ea
        self.employees = Employees(ea)
        self.objects: dict[str, ObjectDef] = dict(OBJECTS)
        self.tables: dict[str, Table] = {name: Table() for name in self.objects}
        self._seed = seed
        self.factory = SeedFactory(seed, self.employees)
        self._clock = clock
        self._skew = skew
        self._frozen = frozen
        self._lock = threading.RLock()
        self._listeners: list[Listener] = []
        self._last_ms = 0
        self.codes = dict(CODES, **(codes or {}))
        self.invalid_sets_is_deleted = invalid_sets_is_deleted
        self.unknown_fields = unknown_fields
        self.update_owner = update_owner
        self._serial = 0

    # -- plumbing ---------------------------------------------------------------------------
    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _emit(self, change: Change) -> None:
        for listener in self._listeners:
            listener(change)

    def now_ms(self) -> int:
        """Wall-clock ms plus the clock skew switch; the wall clock never goes backwards within this store.

        A frozen time (set on purpose: ties, a record committed late with an older time) is used as it is.
        """
        frozen = self._frozen()
        if frozen is not None:
            return int(frozen * 1000)
        with self._lock:
            now = int(self._clock() * 1000)
            self._last_ms = max(now, self._last_ms)
            return self._last_ms + int(self._skew() * 1000)

    def object_def(self, name: str) -> ObjectDef:
        found = self.objects.get(name)
        if found is None:
            raise ApiError(self.codes["param"], f"对象不存在: {name}", f"unknown object api name {name}")
        return found

    def table(self, name: str) -> Table:
        self.object_def(name)
        return self.tables[name]

    # -- reads --------------------------------------------------------------------------------
    def get(self, object_name: str, record_id: str) -> dict[str, Any]:
        with self._lock:
            record = self.table(object_name).get(record_id)
            if record is None:
                raise ApiError(self.codes["not_found"], "数据不存在或已被删除", f"no {object_name} {record_id}")
            return dict(record)

    def query(
        self,
        object_name: str,
        raw_filters: list[Any],
        raw_orders: list[Any],
        *,
        offset: int,
        limit: int,
        count_total: bool,
        visible: Callable[[dict[str, Any]], bool],
    ) -> tuple[list[dict[str, Any]], int]:
        try:
            filters = [Filter.parse(f) for f in raw_filters]
            orders = [Order.parse(o) for o in raw_orders]
        except QueryError as exc:
            raise ApiError(self.codes["param"], f"参数错误: {exc}", str(exc)) from None
        with self._lock:
            rows, total = self.table(object_name).query(
                filters, orders, offset=offset, limit=limit, count_total=count_total, visible=visible
            )
            return [dict(r) for r in rows], total

    # -- writes (API and admin) ---------------------------------------------------------------
    def create(
        self,
        object_name: str,
        data: dict[str, Any],
        *,
        user: str,
        by_api: bool,
        keep_times: bool = False,
        life_status: str = "normal",
    ) -> dict[str, Any]:
        definition = self.object_def(object_name)
        with self._lock:
            values = self._validated(definition, data, creating=True)
            now = self.now_ms()
            created = int(data["create_time"]) if keep_times and data.get("create_time") is not None else now
            given = data.get("last_modified_time") if keep_times else None
            modified = int(given) if given is not None else created
            record = self._new_record(definition, values, user=user, created=created, modified=modified)
            record["life_status"] = life_status
            self.tables[object_name].put(record)
        self._emit(Change(object_name, (record["_id"],), "create", modified, by_api))
        return dict(record)

    def update(
        self,
        object_name: str,
        record_id: str,
        data: dict[str, Any],
        *,
        user: str,
        by_api: bool,
        keep_times: bool = False,
    ) -> dict[str, Any]:
        definition = self.object_def(object_name)
        with self._lock:
            current = self._live(object_name, record_id)
            changes = dict(data)
            if by_api and "owner" in changes and self.update_owner == "ignore":
                changes.pop("owner")  # update cannot change the owner; changeOwner does
            values = self._validated(definition, changes, creating=False)
            if by_api and "owner" in values and self.update_owner == "reject":
                raise ApiError(self.codes["validation"], "负责人不能通过编辑修改，请使用更换负责人接口")
            modified = (
                int(data["last_modified_time"]) if keep_times and data.get("last_modified_time") is not None
                else self.now_ms()
            )
            record = self._touched(current, values, user=user, modified=modified)
            self.tables[object_name].put(record)
        self._emit(Change(object_name, (record_id,), "update", modified, by_api))
        return dict(record)

    def change_owner(self, object_name: str, pairs: list[tuple[str, list[str]]], *, user: str, by_api: bool) -> None:
        definition = self.object_def(object_name)
        with self._lock:
            for record_id, owner in pairs:
                self._live(object_name, record_id)
                self._validated(definition, {"owner": owner}, creating=False)
            modified = self.now_ms()
            for record_id, owner in pairs:
                current = self.tables[object_name].get(record_id)
                assert current is not None
                owners = [self.employees.resolve(o) or o for o in owner]
                self.tables[object_name].put(self._touched(current, {"owner": owners}, user=user, modified=modified))
        self._emit(Change(object_name, tuple(r for r, _ in pairs), "update", modified, by_api))

    def invalidate(self, object_name: str, record_ids: list[str], *, user: str, by_api: bool) -> None:
        with self._lock:
            for record_id in record_ids:
                self._live(object_name, record_id)
            modified = self.now_ms()
            for record_id in record_ids:
                current = self.tables[object_name].get(record_id)
                assert current is not None
                record = self._touched(current, {}, user=user, modified=modified)
                record["life_status"] = "invalid"
                if self.invalid_sets_is_deleted:
                    record["is_deleted"] = True
                self.tables[object_name].put(record)
        self._emit(Change(object_name, tuple(record_ids), "invalid", modified, by_api))

    def recover(self, object_name: str, record_ids: list[str], *, user: str, by_api: bool) -> None:
        with self._lock:
            table = self.table(object_name)
            for record_id in record_ids:
                record = table.get(record_id)
                if record is None:
                    raise ApiError(self.codes["not_found"], "数据不存在或已被删除", f"no {object_name} {record_id}")
                if record.get("life_status") != "invalid":
                    raise ApiError(self.codes["validation"], "只能恢复已作废的数据", f"{record_id} is not invalid")
            modified = self.now_ms()
            for record_id in record_ids:
                current = table.get(record_id)
                assert current is not None
                record = self._touched(current, {}, user=user, modified=modified)
                record["life_status"] = "normal"
                record["is_deleted"] = False
                table.put(record)
        self._emit(Change(object_name, tuple(record_ids), "recover", modified, by_api))

    def delete(self, object_name: str, record_ids: list[str], *, by_api: bool) -> None:
        """Physical delete: only invalid (作废) data can be deleted."""
        with self._lock:
            table = self.table(object_name)
            for record_id in record_ids:
                record = table.get(record_id)
                if record is None:
                    raise ApiError(self.codes["not_found"], "数据不存在或已被删除", f"no {object_name} {record_id}")
                if record.get("life_status") != "invalid":
                    raise ApiError(
                        self.codes["invalid_state"], "请先作废数据再删除", f"{record_id} must be invalidated first"
                    )
            for record_id in record_ids:
                table.remove(record_id)
        self._emit(Change(object_name, tuple(record_ids), "delete", self.now_ms(), by_api))

    # -- helpers --------------------------------------------------------------------------------
    def _live(self, object_name: str, record_id: str) -> dict[str, Any]:
        record = self.table(object_name).get(record_id)
        if record is None:
            raise ApiError(self.codes["not_found"], "数据不存在或已被删除", f"no {object_name} {record_id}")
        if record.get("life_status") == "invalid":
            raise ApiError(self.codes["invalid_state"], "数据已作废或已删除", f"{object_name} {record_id} is invalid")
        return record

    def _new_record(
        self, definition: ObjectDef, values: dict[str, Any], *, user: str, created: int, modified: int
    ) -> dict[str, Any]:
        self._serial += 1
        record: dict[str, Any] = {
            "_id": self.factory.new_id(created),
            "object_describe_api_name": definition.api_name,
            "tenant_id": self.ea,
            "record_type": "default__c",
            "lock_status": "0",
            "is_deleted": False,
            "life_status": "normal",
            "version": "1",
            "created_by": [user],
            "last_modified_by": [user],
            "create_time": created,
            "last_modified_time": modified,
            "data_own_department": ["1000"],
        }
        if "account_no" in definition.by_name:
            record["account_no"] = f"KH{self._serial:08d}"
        record.update(values)
        if not record.get("owner"):
            record["owner"] = [user if user != SYSTEM_USER else "1000"]
        return record

    @staticmethod
    def _touched(current: dict[str, Any], values: dict[str, Any], *, user: str, modified: int) -> dict[str, Any]:
        record = dict(current)
        record.update(values)
        record["version"] = str(int(current.get("version") or "0") + 1)
        record["last_modified_time"] = max(modified, int(current.get("create_time") or 0))
        record["last_modified_by"] = [user]
        return record

    def _validated(self, definition: ObjectDef, data: dict[str, Any], *, creating: bool) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name in _SYSTEM_MANAGED:
                continue
            field = definition.by_name.get(name)
            if field is None:
                if self.unknown_fields == "reject":
                    raise ApiError(self.codes["validation"], f"字段[{name}]不存在", f"unknown field {name}")
                continue
            if field.readonly and field.api_name not in ("owner",):
                continue
            values[name] = self._checked(definition, field, value)
        if creating:
            for field in definition.fields:
                if field.required and field.api_name != "owner" and values.get(field.api_name) in (None, "", []):
                    raise ApiError(
                        self.codes["validation"],
                        f"{field.label}[{field.api_name}]为必填项",
                        f"required field {field.api_name} missing",
                    )
        return values

    def _checked(self, definition: ObjectDef, field: FieldDef, value: Any) -> Any:
        def bad(why: str) -> ApiError:
            return ApiError(self.codes["validation"], f"字段[{field.label}]的值不合法: {why}", f"{field.api_name}: {why}")

        if value is None:
            if field.required:
                raise bad("必填")
            return None
        kind = field.type
        if kind in ("number", "currency", "percentile"):
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise bad("需要数字")
            try:
                float(value)
            except ValueError:
                raise bad("需要数字") from None
            return str(value)  # numbers are stored and returned as strings
        if kind in ("date", "date_time", "time"):
            if isinstance(value, bool):
                raise bad("需要毫秒时间戳")
            try:
                return int(value)
            except (TypeError, ValueError):
                raise bad("需要毫秒时间戳") from None
        if kind == "true_or_false":
            if not isinstance(value, bool):
                raise bad("需要布尔值")
            return value
        if kind in ("select_one", "record_type"):
            allowed = {v for v, _ in field.options}
            if str(value) not in allowed:
                raise bad(f"选项值{value!r}不存在 (请传选项值而不是显示名)")
            return str(value)
        if kind == "select_many":
            items = value if isinstance(value, list) else [value]
            allowed = {v for v, _ in field.options}
            if any(str(v) not in allowed for v in items):
                raise bad("选项值不存在")
            return [str(v) for v in items]
        if kind in ("employee", "employee_many"):
            if not isinstance(value, list):
                raise bad("人员字段需要数组, 例如 [\"1000\"]")
            resolved = [self.employees.resolve(str(v)) for v in value]
            if any(r is None for r in resolved):
                raise bad("员工不存在")
            return resolved
        if kind in ("object_reference", "master_detail"):
            target = self.tables.get(field.target or "")
            row = target.get(str(value)) if target is not None else None
            if row is None or row.get("life_status") == "invalid":
                raise ApiError(
                    self.codes["lookup_missing"],
                    f"数据[{definition.label}]的字段[{field.label}]关联关系不存在",
                    f"{field.api_name}: no {field.target} {value}",
                )
            return str(value)
        if kind == "department":
            return [str(v) for v in value] if isinstance(value, list) else [str(value)]
        if not isinstance(value, str):
            raise bad("需要文本")
        return value

    # -- bulk -----------------------------------------------------------------------------------
    def load(self, object_name: str, records: list[dict[str, Any]]) -> None:
        with self._lock:
            self.table(object_name).load(records)

    def reset(self) -> None:
        with self._lock:
            for table in self.tables.values():
                table.clear()
            self.factory = SeedFactory(self._seed, self.employees)
            self._serial = 0

    def seed(
        self, count: int, objects: list[str] | None = None, *, opportunity_object: str = "NewOpportunityObj"
    ) -> dict[str, int]:
        """Realistic records: without ``objects``, ``count`` accounts plus partners, contacts,
        opportunities in several stages, sales orders and service contracts around them."""
        if count < 0:
            raise ValueError("count must not be negative")
        plan: dict[str, int]
        if objects:
            plan = {name: count for name in objects}
        else:
            plan = {
                "PartnerObj": max(1, count // 10) if count else 0,
                "AccountObj": count,
                "ContactObj": count,
                opportunity_object: count // 2,
                "SalesOrderObj": count // 4,
                "ServiceContract__c": count // 10,
            }
        order = ["PartnerObj", "AccountObj", "ContactObj", "NewOpportunityObj", "OpportunityObj", "SalesOrderObj",
                 "ServiceContract__c"]
        created: dict[str, int] = {}
        with self._lock:
            now = self.now_ms()
            for name in sorted(plan, key=lambda n: order.index(n) if n in order else len(order)):
                self.object_def(name)
                rows = self._seed_rows(name, plan[name], now)
                self.tables[name].load(rows)
                created[name] = len(rows)
        return created

    def _seed_rows(self, name: str, count: int, now: int) -> list[dict[str, Any]]:
        f = self.factory
        accounts = [r for r in self.tables["AccountObj"].records.values() if r.get("life_status") != "invalid"]
        partner_ids = [r["_id"] for r in self.tables["PartnerObj"].records.values()]
        if name != "AccountObj" and name != "PartnerObj" and not accounts and count:
            accounts = self._seed_rows("AccountObj", max(1, count // 2), now)
            self.tables["AccountObj"].load(accounts)
        definition = self.objects[name]
        rows: list[dict[str, Any]] = []
        # Spread creation over the last 90 days; most records were edited once or twice since.
        start = now - 90 * 86_400_000
        step = max(1, (now - start) // max(count, 1))
        for i in range(count):
            created = start + i * step + f.rng.randrange(step)
            modified = min(now, created + (f.rng.randrange(5 * 86_400_000) if f.rng.random() < 0.6 else 0))
            if name == "AccountObj":
                values = f.account(partner_ids)
            elif name == "PartnerObj":
                values = f.partner()
            else:
                account = accounts[i % len(accounts)]
                if name == "ContactObj":
                    values = f.contact(account["_id"], account.get("url", "https://www.example.cn").split("www.")[-1])
                elif name in ("NewOpportunityObj", "OpportunityObj"):
                    values = f.opportunity(account, now, new_style=name == "NewOpportunityObj")
                elif name == "SalesOrderObj":
                    self._serial += 1
                    values = f.sales_order(account, self._serial, now)
                else:
                    values = f.service_contract(account, now)
            record = self._new_record(definition, values, user=values["owner"][0], created=created, modified=modified)
            if modified != created:
                record["version"] = str(f.rng.randint(2, 4))
            rows.append(record)
        return rows

    def dump(self, object_name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self.table(object_name).records.values()]

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {name: len(t) for name, t in self.tables.items()}
