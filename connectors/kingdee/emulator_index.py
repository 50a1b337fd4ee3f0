"""The emulator's records of one form, with an index by ``FModifyDate``.

A real K/3 Cloud answers ``FModifyDate >= x`` from an index; the emulator used to test
every record of the form in Python on every ExecuteBillQuery, so one incremental call cost
O(records) (a no-op pass against 100,000 customers took most of its time here). A
:class:`FormTable` is the form's ``dict`` (pk → record, in insertion order, as before)
that also keeps ``(FModifyDate, pk)`` sorted, so a query whose filter bounds
``FModifyDate`` (a conjunct ``>=``, ``>``, ``=``, ``<``, ``<=`` or ``BETWEEN``) reads
only the records inside that window.

The window is a *superset* of what the filter passes: the full filter still runs on
every record in it, and the records go through it in the dict's insertion order, so
the stable sort after it gives exactly the rows (ties included) the scan of every
record gives. Records whose ``FModifyDate`` is not a naive ``datetime`` (none the
emulator writes) are kept aside and always offered to the filter.

Every change through the mapping methods keeps the index right. A record changed in
place (a status change that moves ``FModifyDate``) must be followed by
:meth:`FormTable.reindex`.
"""
from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, Self

MODIFIED = "FModifyDate"
_NOTHING = object()


def _key(pk: Any, record: Any) -> tuple[datetime, Any] | None:
    """The index entry of a record, or None when its modified time is not a naive datetime."""
    value = record.get(MODIFIED) if isinstance(record, dict) else None
    if isinstance(value, datetime) and value.tzinfo is None and isinstance(pk, int):
        return value, pk
    return None


class FormTable(dict):
    """pk → record (a dict, insertion order kept) plus a sorted ``(FModifyDate, pk)`` index."""

    def __init__(self, items: Iterable[tuple[Any, Any]] = ()) -> None:
        super().__init__()
        self._modified: list[tuple[datetime, Any]] = []
        self._entry: dict[Any, tuple[datetime, Any]] = {}  # the index entry each indexed pk holds now
        self._odd: set[Any] = set()  # pks whose FModifyDate is not a naive datetime: not in the index
        self._order: dict[Any, int] = {}  # pk → insertion sequence (the dict's own order)
        self._next = 0
        for pk, record in items:
            self[pk] = record

    # -- keeping the index -----------------------------------------------------------------
    def _unlink(self, pk: Any) -> None:
        self._odd.discard(pk)
        entry = self._entry.pop(pk, None)
        if entry is not None:
            at = bisect.bisect_left(self._modified, entry)
            if at < len(self._modified) and self._modified[at] == entry:
                del self._modified[at]

    def _link(self, pk: Any, record: Any) -> None:
        entry = _key(pk, record)
        if entry is None:
            self._odd.add(pk)
            return
        self._entry[pk] = entry
        if not self._modified or entry > self._modified[-1]:
            self._modified.append(entry)  # the common case: a fresh save is the newest
        else:
            bisect.insort(self._modified, entry)

    def reindex(self, pk: Any) -> None:
        """Re-read a record's ``FModifyDate`` after it was changed in place."""
        if pk in self:
            self._unlink(pk)
            self._link(pk, dict.__getitem__(self, pk))

    # -- the mapping methods that change the dict ---------------------------------------------
    def __setitem__(self, pk: Any, record: Any) -> None:
        if pk in self:
            self._unlink(pk)
        else:
            self._order[pk] = self._next
            self._next += 1
        super().__setitem__(pk, record)
        self._link(pk, record)

    def __delitem__(self, pk: Any) -> None:
        super().__delitem__(pk)
        self._unlink(pk)
        del self._order[pk]

    def pop(self, pk: Any, default: Any = _NOTHING) -> Any:
        if pk not in self:
            if default is _NOTHING:
                raise KeyError(pk)
            return default
        record = dict.__getitem__(self, pk)
        del self[pk]
        return record

    def popitem(self) -> tuple[Any, Any]:
        pk, record = super().popitem()
        self._unlink(pk)
        del self._order[pk]
        return pk, record

    def setdefault(self, pk: Any, default: Any = None) -> Any:
        if pk not in self:
            self[pk] = default
        return dict.__getitem__(self, pk)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for pk, record in dict(*args, **kwargs).items():
            self[pk] = record

    def clear(self) -> None:
        super().clear()
        self._modified.clear()
        self._entry.clear()
        self._odd.clear()
        self._order.clear()

    def __ior__(self, other: Any) -> Self:
        self.update(other)
        return self

    def copy(self) -> dict:  # a plain dict: a copy is not kept indexed
        return dict(self)

    # -- reading ------------------------------------------------------------------------
    def window(self, low: datetime | None, high: datetime | None) -> list[Any]:
        """Every record whose ``FModifyDate`` may lie in [low, high] (either end open when None),
        in the dict's insertion order: those indexed inside it and those not indexed at all."""
        keys = self._modified
        lo = 0 if low is None else bisect.bisect_left(keys, (low,))
        hi = len(keys) if high is None else bisect.bisect_right(keys, (high, math.inf))
        pks = [keys[i][1] for i in range(lo, hi)]
        pks.extend(self._odd)  # records outside the index (no naive datetime): always candidates
        order = self._order
        pks.sort(key=order.__getitem__)
        get = dict.__getitem__
        return [get(self, pk) for pk in pks]

    def scan(self) -> Iterator[Any]:
        return iter(self.values())
