"""The emulator's record table and query evaluation.

A table keeps its records in a dict and two sorted indexes — by ``_id`` and by
(``last_modified_time``, ``_id``) — so the connector's two walks (``_id GT x``
and ``last_modified_time GTE t`` ordered by time) are a bisect plus a slice even
with 100,000 records. Other orders fall back to a scan and sort.

A counted query (``find_explicit_total_num``) must also say how many records match
in all. Scanning the rest of the table for that on every page makes a full walk
O(n²); instead the table keeps the sorted index keys of the records that pass the
query's other filters, and the total is a bisect of that list by the indexed range —
the same number the scan gives. Such a list is built once (one scan) and then moved
by one entry per record written or removed, so an incremental pull after users
edited a few records does not rescan the table either.
"""
from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

OPERATORS = frozenset(
    {"EQ", "N", "GT", "GTE", "LT", "LTE", "LIKE", "NLIKE", "IS", "ISN", "IN", "NIN", "BETWEEN", "NBETWEEN",
     "STARTWITH", "ENDWITH", "CONTAINS", "HASANYOF", "NHASANYOF"}
)


class QueryError(ValueError):
    """The query itself is malformed (the emulator answers a parameter error)."""


@dataclass(frozen=True, slots=True)
class Filter:
    field: str
    operator: str
    values: tuple[str, ...]

    @classmethod
    def parse(cls, raw: Any) -> Filter:
        if not isinstance(raw, dict):
            raise QueryError("each filter must be an object {field_name, operator, field_values}")
        field = raw.get("field_name")
        operator = str(raw.get("operator", "")).upper()
        values = raw.get("field_values", [])
        if not isinstance(field, str) or not field:
            raise QueryError("filter without field_name")
        if operator not in OPERATORS:
            raise QueryError(f"unknown operator {raw.get('operator')!r}")
        if not isinstance(values, list):
            raise QueryError("field_values must be a list of strings")
        if operator not in ("IS", "ISN") and not values:
            raise QueryError(f"filter on {field} needs field_values")
        if operator in ("BETWEEN", "NBETWEEN") and len(values) != 2:
            raise QueryError("BETWEEN needs two field_values")
        return cls(field, operator, tuple(_text(v) for v in values))


@dataclass(frozen=True, slots=True)
class Order:
    field: str
    ascending: bool

    @classmethod
    def parse(cls, raw: Any) -> Order:
        if not isinstance(raw, dict) or not isinstance(raw.get("fieldName"), str):
            raise QueryError("each order must be an object {fieldName, isAsc}")
        return cls(raw["fieldName"], bool(raw.get("isAsc", True)))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def _compare(value: Any, other: str) -> int:
    """-1/0/1 of value vs other: numerically when both are numbers, else as text."""
    a, b = _number(value), _number(other)
    if a is not None and b is not None:
        return (a > b) - (a < b)
    left = _text(value)
    return (left > other) - (left < other)


def matches(record: dict[str, Any], flt: Filter) -> bool:
    value = record.get(flt.field)
    op, vals = flt.operator, flt.values
    if op == "IS":
        return _empty(value)
    if op == "ISN":
        return not _empty(value)
    if isinstance(value, list):
        items = {_text(v) for v in value}
        if op in ("EQ", "IN", "CONTAINS", "HASANYOF"):
            return bool(items.intersection(vals))
        if op in ("N", "NIN", "NHASANYOF"):
            return not items.intersection(vals)
        return False
    if op == "N":
        return value is None or _compare(value, vals[0]) != 0
    if value is None:
        return op in ("NIN", "NLIKE", "NBETWEEN")
    if op == "EQ":
        return _compare(value, vals[0]) == 0
    if op == "GT":
        return _compare(value, vals[0]) > 0
    if op == "GTE":
        return _compare(value, vals[0]) >= 0
    if op == "LT":
        return _compare(value, vals[0]) < 0
    if op == "LTE":
        return _compare(value, vals[0]) <= 0
    if op == "IN":
        return any(_compare(value, v) == 0 for v in vals)
    if op == "NIN":
        return not any(_compare(value, v) == 0 for v in vals)
    if op == "BETWEEN":
        return _compare(value, vals[0]) >= 0 and _compare(value, vals[1]) <= 0
    if op == "NBETWEEN":
        return not (_compare(value, vals[0]) >= 0 and _compare(value, vals[1]) <= 0)
    text = _text(value)
    if op == "LIKE" or op == "CONTAINS":
        return vals[0] in text
    if op == "NLIKE":
        return vals[0] not in text
    if op == "STARTWITH":
        return text.startswith(vals[0])
    if op == "ENDWITH":
        return text.endswith(vals[0])
    return False  # pragma: no cover - OPERATORS is exhaustive


RANGE_OPERATORS = frozenset({"GT", "GTE", "LT", "LTE", "EQ"})
COUNT_CACHE_SIZE = 4  # filter sets remembered per table (a walk uses one or two at a time)


class Table:
    """Records of one object with id and modified-time indexes. Not locked: the store locks."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self._ids: list[str] = []
        self._modified: list[tuple[int, str]] = []
        self._modified_key: dict[str, tuple[int, str]] = {}  # the entry each record holds in _modified
        self._version = 0  # bumped by every change
        # (index, visible, other filters) → sorted keys of the records that pass: kept right by every put
        # and remove (one entry each), dropped by a bulk load or clear
        self._counted: dict[tuple, list] = {}

    def __len__(self) -> int:
        return len(self.records)

    def get(self, record_id: str) -> dict[str, Any] | None:
        return self.records.get(record_id)

    def put(self, record: dict[str, Any]) -> None:
        record_id = record["_id"]
        self._version += 1
        old_key = self._modified_key.get(record_id)
        if old_key is not None:
            _discard(self._modified, old_key)
        else:
            bisect.insort(self._ids, record_id)
        self.records[record_id] = record
        key = (int(record["last_modified_time"]), record_id)
        self._modified_key[record_id] = key
        _insort(self._modified, key)
        self._recount(record_id, old_key, key, record)

    def remove(self, record_id: str) -> dict[str, Any] | None:
        old = self.records.pop(record_id, None)
        if old is None:
            return None
        self._version += 1
        old_key = self._modified_key.pop(record_id, None)
        if old_key is not None:
            _discard(self._modified, old_key)
        _discard(self._ids, record_id)
        self._recount(record_id, old_key, None, None)
        return old

    def load(self, records: list[dict[str, Any]]) -> None:
        """Bulk insert (seeding): one sort instead of many inserts."""
        self._changed()
        for record in records:
            if record["_id"] in self.records:
                raise ValueError(f"duplicate _id {record['_id']}")
            self.records[record["_id"]] = record
        self._ids = sorted(self.records)
        self._modified_key = {rid: (int(r["last_modified_time"]), rid) for rid, r in self.records.items()}
        self._modified = sorted(self._modified_key.values())

    def clear(self) -> None:
        self._changed()
        self.records.clear()
        self._ids.clear()
        self._modified.clear()
        self._modified_key.clear()

    def _changed(self) -> None:
        self._version += 1
        self._counted.clear()

    def _recount(self, record_id: str, old_key: tuple[int, str] | None, key: tuple[int, str] | None,
                 record: dict[str, Any] | None) -> None:
        """Keep each cached list of passing keys right after one record changed (``record`` None: removed).

        Whether a record passes depends on that record alone (``visible`` and the filters read only
        it), so each list loses the record's old entry and gains its new one if it passes, instead
        of being rebuilt from the whole table at the next counted query."""
        for (index, visible, others), passing in self._counted.items():
            if index == "_id":
                _discard(passing, record_id)
            elif old_key is not None:
                _discard(passing, old_key)
            if record is not None and visible(record) and all(matches(record, f) for f in others):
                _insort(passing, record_id if index == "_id" else key)

    # -- querying ------------------------------------------------------------------------
    def query(
        self,
        filters: list[Filter],
        orders: list[Order],
        *,
        offset: int,
        limit: int,
        count_total: bool,
        visible: Callable[[dict[str, Any]], bool],
    ) -> tuple[list[dict[str, Any]], int]:
        """Matching records in order: the page (offset, limit) and the total (0 unless counted)."""
        plan = self._plan(filters, orders)
        if count_total:
            fast = self._fast_range(plan, filters, visible)
            if fast is not None:
                return self._fast_page(plan, *fast, offset=offset, limit=limit)
        candidates = self._candidates(filters, orders, plan)
        page: list[dict[str, Any]] = []
        total = 0
        skipped = 0
        for record in candidates:
            if not visible(record) or not all(matches(record, f) for f in filters):
                continue
            total += 1
            if skipped < offset:
                skipped += 1
                continue
            if len(page) < limit:
                page.append(record)
            elif not count_total:
                break
        return page, (total if count_total else 0)

    def _fast_page(
        self, plan: tuple[str, bool], passing: list, lo: int, hi: int, *, offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """The page and total of a counted query from the cached keys: what the scan would give."""
        index, ascending = plan
        if ascending:
            keys = passing[min(hi, lo + offset):min(hi, lo + offset + limit)]
        else:
            end = max(lo, hi - offset)
            keys = passing[max(lo, end - limit):end][::-1]
        if index == "_id":
            return [self.records[k] for k in keys], hi - lo
        return [self.records[k[1]] for k in keys], hi - lo

    @staticmethod
    def _plan(filters: list[Filter], orders: list[Order]) -> tuple[str, bool] | None:
        """Which index serves the order: ("_id" | "modified", ascending), or None for a scan and sort."""
        first = orders[0] if orders else Order("last_modified_time", False)
        rest_is_id = all(o.field == "_id" and o.ascending == first.ascending for o in orders[1:])
        if first.field == "_id" and len(orders) == 1:
            return "_id", first.ascending
        if first.field == "last_modified_time" and rest_is_id:
            return "modified", first.ascending
        return None

    def _candidates(
        self, filters: list[Filter], orders: list[Order], plan: tuple[str, bool] | None
    ) -> Iterator[dict[str, Any]]:
        if plan is None:
            return iter(sorted(self.records.values(), key=_sort_key(orders)))
        index, ascending = plan
        if index == "_id":
            ids = self._ids
            lo, hi = _id_bounds(ids, filters)
            positions = range(lo, hi) if ascending else range(hi - 1, lo - 1, -1)
            return (self.records[ids[i]] for i in positions)
        keys = self._modified
        lo, hi = _modified_bounds(keys, filters)
        positions = range(lo, hi) if ascending else range(hi - 1, lo - 1, -1)
        return (self.records[keys[i][1]] for i in positions)

    def _fast_range(
        self, plan: tuple[str, bool] | None, filters: list[Filter], visible: Callable[[dict[str, Any]], bool]
    ) -> tuple[list, int, int] | None:
        """The matching keys in index order and the range of them the query selects, or None
        when only the scan can tell.

        The index range filters (on the index's own field) bound a slice of the index; all
        other filters and ``visible`` are evaluated once over the whole index (then kept up to
        date record by record) and the keys that pass are kept in index order, so the total is the size of
        the same range in that list, and the page a slice of it. Only range filters the bisect reads exactly as the
        per-record check does qualify: text values for ``_id`` (a numeric-looking value is
        compared as a number by the check), whole numbers for ``last_modified_time``.
        """
        if plan is None:
            return None
        index = plan[0]
        field = "_id" if index == "_id" else "last_modified_time"
        ranged: list[Filter] = []
        others: list[Filter] = []
        for f in filters:
            if f.field != field:
                others.append(f)
            elif not _exact_range(f, index):
                return None
            else:
                ranged.append(f)
        key = (index, visible, tuple(others))
        passing = self._counted.get(key)
        if passing is None:
            passing = self._passing(index, others, visible)
            if len(self._counted) >= COUNT_CACHE_SIZE:
                self._counted.pop(next(iter(self._counted)))
            self._counted[key] = passing
        lo, hi = _id_bounds(passing, ranged) if index == "_id" else _modified_bounds(passing, ranged)
        return passing, lo, hi

    def _passing(self, index: str, others: list[Filter], visible: Callable[[dict[str, Any]], bool]) -> list:
        def ok(record: dict[str, Any]) -> bool:
            return visible(record) and all(matches(record, f) for f in others)

        if index == "_id":
            return [i for i in self._ids if ok(self.records[i])]
        return [k for k in self._modified if ok(self.records[k[1]])]


def _discard(keys: list, key: Any) -> None:
    at = bisect.bisect_left(keys, key)
    if at < len(keys) and keys[at] == key:
        del keys[at]


def _insort(keys: list, key: Any) -> None:
    if not keys or key > keys[-1]:
        keys.append(key)  # the common case: a fresh modified time is the newest
    else:
        bisect.insort(keys, key)


_WHOLE = re.compile(r"-?\d+")


def _exact_range(flt: Filter, index: str) -> bool:
    """Whether the index bisect selects exactly the records the per-record check passes."""
    if flt.operator not in RANGE_OPERATORS and not (index == "modified" and flt.operator == "BETWEEN"):
        return False
    if index == "_id":
        return flt.operator in RANGE_OPERATORS and bool(flt.values) and _number(flt.values[0]) is None
    # whole numbers a float holds exactly: the check compares as floats, the bisect as ints
    return bool(flt.values) and all(_WHOLE.fullmatch(v) and abs(int(v)) < 2**53 for v in flt.values)


def _id_bounds(ids: list[str], filters: list[Filter]) -> tuple[int, int]:
    lo, hi = 0, len(ids)
    for f in filters:
        if f.field != "_id" or not f.values:
            continue
        v = f.values[0]
        if f.operator == "GT":
            lo = max(lo, bisect.bisect_right(ids, v))
        elif f.operator == "GTE":
            lo = max(lo, bisect.bisect_left(ids, v))
        elif f.operator == "LT":
            hi = min(hi, bisect.bisect_left(ids, v))
        elif f.operator == "LTE":
            hi = min(hi, bisect.bisect_right(ids, v))
        elif f.operator == "EQ":
            lo, hi = max(lo, bisect.bisect_left(ids, v)), min(hi, bisect.bisect_right(ids, v))
    return lo, max(lo, hi)


def _modified_bounds(keys: list[tuple[int, str]], filters: list[Filter]) -> tuple[int, int]:
    lo, hi = 0, len(keys)
    for f in filters:
        if f.field != "last_modified_time":
            continue
        try:
            nums = [int(float(v)) for v in f.values]
        except ValueError:
            continue  # the per-record check decides
        if not nums:
            continue
        low_key, high_key = (nums[0], ""), (nums[0], "\uffff")
        if f.operator == "GT":
            lo = max(lo, bisect.bisect_right(keys, high_key))
        elif f.operator == "GTE":
            lo = max(lo, bisect.bisect_left(keys, low_key))
        elif f.operator == "LT":
            hi = min(hi, bisect.bisect_left(keys, low_key))
        elif f.operator == "LTE":
            hi = min(hi, bisect.bisect_right(keys, high_key))
        elif f.operator == "EQ":
            lo, hi = max(lo, bisect.bisect_left(keys, low_key)), min(hi, bisect.bisect_right(keys, high_key))
        elif f.operator == "BETWEEN" and len(nums) == 2:
            lo = max(lo, bisect.bisect_left(keys, (nums[0], "")))
            hi = min(hi, bisect.bisect_right(keys, (nums[1], "\uffff")))
    return lo, max(lo, hi)


def _sort_key(orders: list[Order]) -> Callable[[dict[str, Any]], tuple]:
    def key(record: dict[str, Any]) -> tuple:
        parts = []
        for order in orders:
            value = record.get(order.field)
            number = _number(value)
            rank = (0, number, "") if number is not None else (1, 0.0, _text(value) if value is not None else "")
            if not order.ascending:
                rank = (-rank[0], -rank[1], _Reverse(rank[2]))
            parts.append(rank)
        parts.append((record["_id"],))
        return tuple(parts)

    return key


class _Reverse(str):
    """A string that sorts backwards (descending text orders)."""

    def __lt__(self, other: str) -> bool:  # type: ignore[override]
        return str.__gt__(self, other)

    def __gt__(self, other: str) -> bool:  # type: ignore[override]
        return str.__lt__(self, other)
