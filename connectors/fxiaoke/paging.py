"""Pulling an object page by page within the query's rules.

The query takes ``limit`` ≤ 100 and refuses ``offset`` > 10,000 (10013). Two walks:

* **Full pull** — ``_id`` ascending with offsets 0, 100 … 10,000, then keyset:
  ``_id GT <last id>`` at offset 0 (the documented deep-paging recipe), so any
  number of records comes through.
* **Incremental pull** — ``last_modified_time GTE bound`` ordered by
  (``last_modified_time``, ``_id``), always at offset 0: the next bound is the
  last record's time, and the records already delivered at exactly that time are
  skipped by id. When a whole page shares one time (a bulk import), that time's
  records are drained with ``last_modified_time EQ t`` + ``_id GT <last id>``
  before moving on. Ties are neither lost nor repeated, no offset ever grows,
  and a record edited mid-pull simply shows up again later with its new time.

Invalidated (作废) records: unless tombstones are inline, the main walk leaves them
out and a second walk asks for them explicitly, because whether the query
returns them by default is not documented.

The walk's position is the page's ``resume`` state (a plain dict), so an
interrupted pull continues after the last committed page.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ..base import Page, PullRequest
from ..errors import ConnectorError
from .client import FxiaokeClient
from .paths import Endpoints
from .records import datetime_to_ms, modified_ms, projection, to_source_record
from .settings import FxiaokeSettings

STATE_VERSION = 1


def query_filter(field: str, operator: str, *values: Any) -> dict[str, Any]:
    return {"field_name": field, "operator": operator, "field_values": [str(v) for v in values]}


ID_ASC = [{"fieldName": "_id", "isAsc": True}]
MODIFIED_ASC = [{"fieldName": "last_modified_time", "isAsc": True}, {"fieldName": "_id", "isAsc": True}]


class Puller:
    def __init__(self, client: FxiaokeClient, endpoints: Endpoints, settings: FxiaokeSettings, *, system: str) -> None:
        self.client = client
        self.endpoints = endpoints
        self.settings = settings
        self.system = system

    # -- public --------------------------------------------------------------------
    async def pages(self, object_name: str, request: PullRequest) -> AsyncIterator[Page]:
        fields = projection(list(request.fields))
        state = self._resume(request) if request.resume else self._start(request)
        tombstones = self.settings.tombstones
        while state is not None:
            rows, state = await self._step(object_name, state, fields)
            records = [to_source_record(request.object, row, tombstones) for row in rows]
            if not request.include_deleted:
                records = [r for r in records if not r.deleted]
            if records:
                yield Page(records=records, resume=state)

    async def query(
        self,
        object_name: str,
        filters: list[dict[str, Any]],
        orders: list[dict[str, Any]],
        *,
        offset: int = 0,
        limit: int | None = None,
        fields: list[str] | None = None,
    ) -> list[dict[str, Any]]:
        rows, _total = await self.query_counted(object_name, filters, orders, offset=offset, limit=limit, fields=fields)
        return rows

    async def query_counted(
        self,
        object_name: str,
        filters: list[dict[str, Any]],
        orders: list[dict[str, Any]],
        *,
        offset: int = 0,
        limit: int | None = None,
        fields: list[str] | None = None,
        count: bool = False,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """One query call: its rows and, when ``count``, the ``total`` of matching records (None if not given)."""
        info: dict[str, Any] = {
            "limit": limit or self.settings.page_size,
            "offset": offset,
            "filters": filters,
            "orders": orders,
        }
        if fields:
            info["fieldProjection"] = fields
        answer = await self.client.call(
            self.endpoints.data(object_name, "query"),
            {"dataObjectApiName": object_name, "find_explicit_total_num": count, "search_query_info": info},
        )
        data = answer.get("data")
        total: int | None = None
        if isinstance(data, dict):
            rows = data.get("dataList") or []
            raw_total = data.get("total")
            total = raw_total if count and isinstance(raw_total, int) and not isinstance(raw_total, bool) else None
        elif isinstance(data, list):
            rows = data
        else:
            rows = []
        return [row for row in rows if isinstance(row, dict)], total

    def _exhausted(self, rows: list[dict[str, Any]], offset: int, total: int | None) -> bool:
        """No page after this one: a short page, or the query's ``total`` says so.

        ``total`` (asked with ``find_explicit_total_num``) saves the empty page that otherwise
        follows a last page holding exactly ``limit`` records. A total of 0 beside rows is the
        "not counted" answer, not a count, so it is ignored. A record created while the pull runs
        and missed by this count is newer than the pull's start, so the next incremental pull
        (from the watermark minus the overlap) still reads it.
        """
        if len(rows) < self.settings.page_size:
            return True
        return bool(total) and offset + len(rows) >= total

    # -- state ---------------------------------------------------------------------
    def _start(self, request: PullRequest) -> dict[str, Any]:
        since = datetime_to_ms(request.since) if request.since is not None else None
        if since is not None and request.settled and request.since.microsecond % 1000:
            since += 1  # strictly past a settled instant: the next whole millisecond (Fxiaoke's resolution)
        return {
            "v": STATE_VERSION,
            "phase": "main",
            "since": since,
            "tombstones": bool(request.include_deleted),
            "cursor": self._first_cursor(since),
        }

    @staticmethod
    def _first_cursor(since: int | None) -> dict[str, Any]:
        if since is None:
            return {"offset": 0, "after_id": None}
        return {"bound": since, "strict": False, "seen": [], "drain_after": None}

    def _resume(self, request: PullRequest) -> dict[str, Any]:
        state = request.resume or {}
        if state.get("v") != STATE_VERSION or state.get("phase") not in ("main", "tombstones"):
            raise ConnectorError("resume state was not written by this Fxiaoke connector version", system=self.system)
        return dict(state)

    def _phase_filters(self, phase: str) -> list[dict[str, Any]]:
        tomb = self.settings.tombstones
        if tomb.mode == "inline":
            return []
        values = tomb.life_status_values
        single = len(values) == 1
        if phase == "main":
            return [query_filter("life_status", "N" if single else "NIN", *values)]
        return [query_filter("life_status", "EQ" if single else "IN", *values)]

    def _after_phase(self, state: dict[str, Any]) -> dict[str, Any] | None:
        if state["phase"] == "main" and self.settings.tombstones.mode == "separate_query" and state.get("tombstones"):
            return {**state, "phase": "tombstones", "cursor": self._first_cursor(state["since"])}
        return None

    # -- one page --------------------------------------------------------------------
    async def _step(
        self, object_name: str, state: dict[str, Any], fields: list[str] | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        filters = self._phase_filters(state["phase"])
        if state["since"] is None:
            rows, cursor = await self._full_step(object_name, filters, state["cursor"], fields)
        else:
            rows, cursor = await self._since_step(object_name, filters, state["cursor"], fields)
        if cursor is None:
            return rows, self._after_phase(state)
        return rows, {**state, "cursor": cursor}

    async def _full_step(
        self, object_name: str, filters: list[dict[str, Any]], cursor: dict[str, Any], fields: list[str] | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        page_size = self.settings.page_size
        after_id = cursor.get("after_id")
        offset = int(cursor.get("offset") or 0)
        if after_id is not None:
            filters = [*filters, query_filter("_id", "GT", after_id)]
        rows, total = await self.query_counted(object_name, filters, ID_ASC, offset=offset, fields=fields, count=True)
        if self._exhausted(rows, offset, total):
            return rows, None
        next_offset = offset + page_size
        if next_offset > self.settings.offset_wall:
            # The offset wall: continue by key from the last id seen.
            return rows, {"offset": 0, "after_id": str(rows[-1]["_id"])}
        return rows, {"offset": next_offset, "after_id": after_id}

    async def _since_step(
        self, object_name: str, filters: list[dict[str, Any]], cursor: dict[str, Any], fields: list[str] | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        bound = int(cursor["bound"])
        drain_after = cursor.get("drain_after")
        if drain_after is not None:
            rows, total = await self.query_counted(
                object_name,
                [*filters, query_filter("last_modified_time", "EQ", bound), query_filter("_id", "GT", drain_after)],
                ID_ASC,
                fields=fields,
                count=True,
            )
            if not self._exhausted(rows, 0, total):
                return rows, {"bound": bound, "strict": False, "seen": [], "drain_after": str(rows[-1]["_id"])}
            # Every record at ``bound`` is out: continue strictly after it.
            return rows, {"bound": bound, "strict": True, "seen": [], "drain_after": None}

        operator = "GT" if cursor.get("strict") else "GTE"
        rows, total = await self.query_counted(
            object_name, [*filters, query_filter("last_modified_time", operator, bound)], MODIFIED_ASC, fields=fields,
            count=True,
        )
        seen = set(cursor.get("seen") or ())
        fresh = [row for row in rows if not (modified_ms(row) == bound and str(row.get("_id")) in seen)]
        if self._exhausted(rows, 0, total):
            return fresh, None
        last = modified_ms(rows[-1])
        if modified_ms(rows[0]) == last:
            # The whole page is one instant: drain that instant by _id before moving on.
            return fresh, {"bound": last, "strict": False, "seen": [], "drain_after": str(rows[-1]["_id"])}
        at_last = [str(row.get("_id")) for row in rows if modified_ms(row) == last]
        if last == bound:
            at_last = sorted(seen.union(at_last))
        return fresh, {"bound": last, "strict": False, "seen": at_last, "drain_after": None}
