"""ExecuteBillQuery inside the emulator: resolve field keys, filter, sort, page, render.

Rows are (header, line) pairs: a query that names an entry field (in
FieldKeys, the filter or the order) yields one row per entry line, the way the
ERP's SQL join does; a header without lines still yields one row of nulls.
Dotted keys (``FCustId.FNumber``) follow base-data references to the target
record. Errors are :class:`QueryError` with the MsgCode and message the ERP
would wrap as ``[[{"Result": …}]]``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from .emulator_filter import (
    Between,
    BoolOp,
    Compare,
    FilterSyntaxError,
    InList,
    IsNull,
    Like,
    Literal,
    Not,
    fields_of,
    like_regex,
    parse_filter,
    parse_order,
)
from .emulator_forms import (
    BOOL,
    COMBO,
    DATE,
    DATETIME,
    DECIMAL,
    FORMS,
    INTEGER,
    MLTEXT,
    REF,
    STATUS,
    TEXT,
    FormSpec,
)
from .emulator_index import MODIFIED, FormTable
from .localtime import parse_local, wire
from .protocol import MsgCode

Row = tuple[dict[str, Any], dict[str, Any] | None]
LINES = "__lines__"


class QueryError(Exception):
    def __init__(self, msg_code: int, message: str) -> None:
        super().__init__(message)
        self.msg_code = msg_code
        self.message = message


def field_missing(key: str) -> QueryError:
    return QueryError(MsgCode.FIELD_NOT_FOUND, f"元数据中标识为{key}的字段不存在")


@dataclass(frozen=True, slots=True)
class Column:
    kind: str
    entry: str | None
    get: Callable[[dict[str, Any], dict[str, Any] | None], Any]
    ref: str | None = None
    joined: bool = False  # reached through a reference: null when the target is missing


def find_form(form_id: str) -> FormSpec | None:
    found = FORMS.get(form_id)
    if found is None:
        folded = form_id.lower()
        found = next((f for k, f in FORMS.items() if k.lower() == folded), None)
    return found


class Resolver:
    """Turns field keys into :class:`Column` getters against the store's records."""

    def __init__(self, deref: Callable[[str, Any], dict[str, Any] | None]) -> None:
        self._deref = deref

    def column(self, form: FormSpec, key: str) -> Column:
        parts = key.strip().split(".")
        column = self._own(form, parts[0], allow_entries=True)
        for part in parts[1:]:
            if column.kind != REF or column.ref is None:
                raise field_missing(key)
            target = FORMS[column.ref]
            inner = self._own(target, part, allow_entries=False)
            column = self._chain(column, inner)
        return column

    def _chain(self, outer: Column, inner: Column) -> Column:
        deref, ref, get_outer, get_inner = self._deref, outer.ref, outer.get, inner.get

        def get(header: dict[str, Any], line: dict[str, Any] | None) -> Any:
            target = deref(ref, get_outer(header, line))  # type: ignore[arg-type]
            return None if target is None else get_inner(target, None)

        return Column(kind=inner.kind, entry=outer.entry, get=get, ref=inner.ref, joined=True)

    def _own(self, form: FormSpec, name: str, *, allow_entries: bool) -> Column:
        folded = name.lower()
        if folded == form.pk.lower():
            pk = form.pk
            return Column(INTEGER, None, lambda h, _l: h.get(pk))
        spec = form.field(folded)
        if spec is not None:
            key = spec.key
            return Column(spec.kind, None, lambda h, _l: h.get(key), ref=spec.ref)
        if allow_entries:
            for entry in form.entries.values():
                entry_key = entry.key
                if folded == entry.query_pk.lower():
                    return Column(INTEGER, entry_key, lambda _h, line: None if line is None else line.get("FEntryID"))
                if folded == entry.query_seq.lower():
                    return Column(INTEGER, entry_key, lambda _h, line: None if line is None else line.get("FSeq"))
                line_spec = entry.fields.get(folded)
                if line_spec is not None:
                    key = line_spec.key
                    return Column(line_spec.kind, entry_key, lambda _h, line, k=key: None if line is None else line.get(k),
                                  ref=line_spec.ref)
        raise field_missing(name)


# -- values --------------------------------------------------------------------
def comparable(kind: str, literal: Literal) -> Any:
    """A filter literal in the column's terms (raises the SQL Server conversion errors the ERP relays)."""
    value = literal.value
    if value is None:
        return None
    if kind in (DATE, DATETIME):
        try:
            return parse_local(str(value))
        except ValueError:
            raise QueryError(MsgCode.EXCEPTION, "从字符串转换日期和/或时间时，转换失败。") from None
    if kind in (DECIMAL, INTEGER, REF):
        try:
            return Decimal(str(value).strip())
        except InvalidOperation:
            raise QueryError(MsgCode.EXCEPTION, f"从数据类型 varchar 转换为 numeric 时出错。（{value}）") from None
    if kind == BOOL:
        return str(value).strip().lower() in ("1", "1.0", "true")
    return str(value).casefold()


def normalise(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == DECIMAL:
        return value if isinstance(value, Decimal) else Decimal(value)
    if kind in (TEXT, MLTEXT, COMBO, STATUS):
        return str(value).casefold()
    return value


def render(column: Column, value: Any) -> Any:
    """A stored value as ExecuteBillQuery writes it."""
    if value is None and column.joined:
        return None
    kind = column.kind
    if kind in (DATE, DATETIME):
        return wire(value) if isinstance(value, datetime) else None
    if kind == DECIMAL:
        return float(value) if value is not None else 0.0
    if kind in (INTEGER, REF):
        return int(value) if value is not None else 0
    if kind == BOOL:
        return bool(value)
    return "" if value is None else value


# -- predicates ---------------------------------------------------------------
def compile_filter(node: Any, columns: dict[str, Column]) -> Callable[[Row], bool] | None:
    if node is None:
        return None
    if isinstance(node, BoolOp):
        parts = [compile_filter(p, columns) for p in node.parts]
        if node.op == "and":
            return lambda row: all(p(row) for p in parts)  # type: ignore[misc]
        return lambda row: any(p(row) for p in parts)  # type: ignore[misc]
    if isinstance(node, Not):
        inner = compile_filter(node.part, columns)
        return lambda row: not inner(row)  # type: ignore[misc]
    column = columns[node.field.lower()]
    kind, get = column.kind, column.get

    def value(row: Row) -> Any:
        return normalise(kind, get(*row))

    if isinstance(node, Compare):
        target = comparable(kind, node.value)
        op = node.op

        def compare(row: Row) -> bool:
            v = value(row)
            if v is None or target is None:
                return False
            if op == "=":
                return v == target
            if op == "<>":
                return v != target
            if op == ">":
                return v > target
            if op == ">=":
                return v >= target
            if op == "<":
                return v < target
            return v <= target

        return compare
    if isinstance(node, InList):
        wanted = {comparable(kind, lit) for lit in node.values}
        negate = node.negate
        return lambda row: (v := value(row)) is not None and ((v in wanted) != negate)
    if isinstance(node, Like):
        pattern = like_regex(node.pattern)
        negate = node.negate
        return lambda row: (v := get(*row)) is not None and (bool(pattern.match(str(v))) != negate)
    if isinstance(node, IsNull):
        negate = node.negate
        return lambda row: ((v := get(*row)) is None or v == "") != negate
    if isinstance(node, Between):
        low, high = comparable(kind, node.low), comparable(kind, node.high)
        return lambda row: (v := value(row)) is not None and low <= v <= high
    raise QueryError(MsgCode.EXCEPTION, "不支持的过滤条件")


def sort_rows(rows: list[Row], order: list[tuple[Column, bool]]) -> list[Row]:
    for column, descending in reversed(order):
        kind, get = column.kind, column.get

        def key(row: Row, kind=kind, get=get) -> tuple[bool, Any]:
            v = normalise(kind, get(*row))
            return (v is not None, v if v is not None else 0)

        rows.sort(key=key, reverse=descending)
    return rows


@dataclass(slots=True)
class QueryPlan:
    form: FormSpec
    keys: list[str]
    columns: list[Column]
    predicate: Callable[[Row], bool] | None
    order: list[tuple[Column, bool]]
    entry: str | None
    start: int
    limit: int
    top: int
    window: tuple[datetime | None, datetime | None] | None = None  # FModifyDate bounds the filter implies


def modified_window(node: Any, form: FormSpec, columns: dict[str, Column]) -> tuple[datetime | None, datetime | None] | None:
    """The ``FModifyDate`` range every row the filter passes lies in (ends None when open), or None.

    Read from the filter's top-level conjuncts on the form's own ``FModifyDate`` only: a row
    outside the range fails that conjunct, so it fails the filter. The range may hold rows
    the filter still rejects (``>`` is read as ``>=``); the filter runs on them all the same.
    """
    spec = form.field(MODIFIED.lower())
    if spec is None or spec.key != MODIFIED:
        return None
    parts = node.parts if isinstance(node, BoolOp) and node.op == "and" else (node,)
    low: datetime | None = None
    high: datetime | None = None
    found = False
    for part in parts:
        if not isinstance(part, (Compare, Between)) or part.field.lower() != MODIFIED.lower():
            continue
        column = columns.get(part.field.lower())
        if column is None or column.kind != DATETIME or column.entry is not None or column.joined:
            continue
        literals = (part.low, part.high) if isinstance(part, Between) else (part.value,)
        if any(lit.value is None for lit in literals):
            continue  # NULL compares as nothing: left to the filter, which sees every row
        if isinstance(part, Between):
            bounds = (comparable(DATETIME, part.low), comparable(DATETIME, part.high))
        elif part.op in (">=", ">"):
            bounds = (comparable(DATETIME, part.value), None)
        elif part.op in ("<=", "<"):
            bounds = (None, comparable(DATETIME, part.value))
        elif part.op == "=":
            value = comparable(DATETIME, part.value)
            bounds = (value, value)
        else:
            continue
        if any(b is not None and (not isinstance(b, datetime) or b.tzinfo is not None) for b in bounds):
            continue  # only naive datetimes are compared the way the index sorts
        found = True
        if bounds[0] is not None:
            low = bounds[0] if low is None else max(low, bounds[0])
        if bounds[1] is not None:
            high = bounds[1] if high is None else min(high, bounds[1])
    return (low, high) if found else None


def plan(resolver: Resolver, data: dict[str, Any], *, max_limit: int) -> QueryPlan:
    options = {k.lower(): v for k, v in data.items()}
    form_id = str(options.get("formid") or "").strip()
    if not form_id:
        raise QueryError(MsgCode.FORM_ID_EMPTY, "表单标识FormId不能为空")
    form = find_form(form_id)
    if form is None:
        raise QueryError(MsgCode.EXCEPTION, f"业务对象“{form_id}”不存在")
    keys = [k.strip() for k in str(options.get("fieldkeys") or "").split(",") if k.strip()]
    if not keys:
        raise QueryError(MsgCode.PARAMETER, "FieldKeys不能为空")
    columns = [resolver.column(form, k) for k in keys]
    raw_filter = options.get("filterstring") or ""
    if isinstance(raw_filter, list):
        raise QueryError(MsgCode.PARAMETER, "仿真服务只支持字符串形式的FilterString")
    try:
        node = parse_filter(str(raw_filter))
        order_keys = parse_order(str(options.get("orderstring") or ""))
    except FilterSyntaxError as exc:
        raise QueryError(MsgCode.EXCEPTION, str(exc)) from None
    filter_columns = {name.lower(): resolver.column(form, name) for name in fields_of(node)}
    order = [(resolver.column(form, k), desc) for k, desc in order_keys]
    entries = {c.entry for c in [*columns, *filter_columns.values(), *(c for c, _ in order)] if c.entry}
    if len(entries) > 1:
        raise QueryError(MsgCode.PARAMETER, "不能同时查询多个单据体的字段")
    try:
        start = int(options.get("startrow") or 0)
        limit = int(options.get("limit") or 0)
        top = int(options.get("toprowcount") or 0)
    except (TypeError, ValueError):
        raise QueryError(MsgCode.PARAMETER, "StartRow/Limit/TopRowCount必须是整数") from None
    if start < 0 or limit < 0 or top < 0:
        raise QueryError(MsgCode.PARAMETER, "StartRow/Limit/TopRowCount不能为负数")
    if limit > max_limit:
        raise QueryError(MsgCode.PARAMETER, f"Limit不能超过{max_limit}")
    predicate = compile_filter(node, filter_columns)
    return QueryPlan(form=form, keys=keys, columns=columns, predicate=predicate,
                     order=order, entry=entries.pop() if entries else None, start=start, limit=limit, top=top,
                     window=modified_window(node, form, filter_columns) if node is not None else None)


def candidates(query: QueryPlan, table: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """The headers the filter must see, in the table's order: those in the query's ``FModifyDate``
    window when the table keeps that index, else every one."""
    if query.window is not None and isinstance(table, FormTable):
        return table.window(*query.window)
    return list(table.values())


def run(query: QueryPlan, headers: list[dict[str, Any]]) -> list[list[Any]]:
    if query.entry:
        rows: list[Row] = [(h, line) for h in headers for line in (h[LINES].get(query.entry) or [None])]
    else:
        rows = [(h, None) for h in headers]
    if query.predicate is not None:
        rows = [row for row in rows if query.predicate(row)]
    if query.order:
        rows = sort_rows(rows, query.order)
    if query.top:
        rows = rows[:query.top]
    end = query.start + query.limit if query.limit else None
    page = rows[query.start:end]
    return [[render(c, c.get(*row)) for c in query.columns] for row in page]
