"""Paging ExecuteBillQuery by a watermark without losing rows to concurrent edits.

Plain ``StartRow`` paging over ``FModifyDate >= x`` skips a row whenever a row
before the current offset is edited mid-pull (it jumps to the end and every row
behind it shifts left by one). So the offset here is kept *relative to a moving
bound*: after each page the lower bound moves up to the second of the last row
seen, and ``StartRow`` only counts the rows already taken from that second. One
extra row is requested before the offset and must be the last row taken; if it
is not, rows of that second changed under us and the second is re-read from its
start (duplicates are fine: the engine de-duplicates by id and modified time).

The bound is floored to the second because the server stores milliseconds while
filters compare literals; ``>=`` a whole second never misses a row of it.
"""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from . import filters
from .client import KingdeeClient
from .localtime import parse_local, second_of

log = logging.getLogger(__name__)

#: Re-reads of one second before giving up verification (a row being saved in a loop would otherwise stall us).
MAX_RESTARTS = 3


@dataclass(slots=True)
class ScanState:
    bound: str | None = None  # filter literal 'yyyy-MM-dd HH:mm:ss'; None = no lower bound
    consumed: int = 0  # rows already taken at or after the bound, in query order
    last_id: str | None = None
    restarts: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any] | None) -> ScanState:
        if not raw:
            return cls()
        return cls(bound=raw.get("bound"), consumed=int(raw.get("consumed") or 0), last_id=raw.get("last_id"),
                   restarts=int(raw.get("restarts") or 0))


class WatermarkScan:
    def __init__(
        self,
        client: KingdeeClient,
        *,
        form_id: str,
        keys: Sequence[str],
        watermark: str,
        id_field: str,
        base_filter: str | None,
        page_size: int,
        literal_style: Literal["quoted", "odbc"],
    ) -> None:
        self.client = client
        self.form_id = form_id
        self.keys = list(keys)
        self.watermark = watermark
        self.id_field = id_field
        self.base_filter = base_filter
        self.page_size = page_size
        self.literal_style = literal_style
        lowered = [k.lower() for k in self.keys]
        self._wm_index = lowered.index(watermark.lower())
        self._id_index = lowered.index(id_field.lower())

    def _filter(self, bound: str | None) -> str:
        lower = filters.at_or_after(self.watermark, parse_local(bound), self.literal_style) if bound else None
        return filters.all_of([self.base_filter, lower])

    async def pages(self, state: ScanState) -> AsyncIterator[tuple[list[list[Any]], ScanState]]:
        order = filters.order_by(self.watermark, self.id_field)
        while True:
            overlap = 1 if state.consumed else 0
            limit = self.page_size + overlap
            rows = await self.client.query(
                self.form_id, self.keys, filter=self._filter(state.bound), order=order,
                start_row=state.consumed - overlap, limit=limit,
            )
            full = len(rows) == limit
            if overlap:
                if rows and str(rows[0][self._id_index]) == state.last_id:
                    rows = rows[1:]
                elif state.restarts < MAX_RESTARTS:
                    log.info("%s: rows at %s changed during the pull; re-reading that second",
                             self.form_id, state.bound)
                    state = ScanState(bound=state.bound, consumed=0, last_id=None, restarts=state.restarts + 1)
                    continue
                else:
                    log.warning("%s: rows at %s keep changing; continuing without verification",
                                self.form_id, state.bound)
            state = self._advance(state, rows)
            yield rows, state
            if not full:
                return

    def _advance(self, state: ScanState, rows: list[list[Any]]) -> ScanState:
        if not rows:
            return state
        last = rows[-1]
        group = second_of(last[self._wm_index])
        last_id = str(last[self._id_index])
        if group is None or group == state.bound:
            return ScanState(bound=state.bound, consumed=state.consumed + len(rows), last_id=last_id)
        in_group = sum(1 for row in rows if second_of(row[self._wm_index]) == group)
        return ScanState(bound=group, consumed=in_group, last_id=last_id)
