"""Reading the ERP import job's verdicts back from the interface tables.

``push()`` answers "staged, pending" because the ERP decides later. The import
job sets the status column to done or error (with its message) and
``processed_at``; :meth:`Outcomes.poll` turns those rows into final
:class:`WriteResult`\\ s: a rejected row becomes ``ok=False`` with the ERP's own
message, which the engine dead-letters.

Each outcome is reported once. crmsync marks a row as read (``read_back_at``)
when it is asked for outcomes the *next* time — by then the engine has stored
the previous answer — so a crash between reading and storing re-reports rows
rather than losing them (at least once; results are keyed by op key, so a
repeat is harmless). :meth:`Outcomes.acknowledge` marks them at once.
"""
from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from connectors.base import WriteResult

from .database import Database
from .keys import MAX_PARAMS
from .tables import WriteModel
from .timeconv import ErpClock
from .verdicts import verdict, verdict_columns
from .writer import Writer


class Outcomes:
    def __init__(self, system: str, db: Database, writer: Writer) -> None:
        self.system = system
        self.db = db
        self.writer = writer
        self.clock: ErpClock = writer.clock
        self._unacknowledged: dict[str, list[str]] = {}  # object → op keys reported by the last poll

    def writable_objects(self) -> list[str]:
        return [name for name, obj in self.writer.catalog.settings.objects.items() if obj.interface is not None]

    async def poll(self, objects: Sequence[str] | None = None, *, limit: int = 1000) -> list[WriteResult]:
        results: list[WriteResult] = []
        while self.writer.displaced:
            results.append(self.writer.displaced.popleft())
        for name in objects or self.writable_objects():
            model = await self.writer.model(name)
            previous = self._unacknowledged.pop(name, [])
            found = await self.db.run(
                f"outcomes:{name}", lambda engine, m=model, p=previous: self._acknowledge_and_read(engine, m, p, limit)
            )
            self.writer.reported.difference_update(previous)
            self._unacknowledged[name] = [r.key for r in found]
            self.writer.reported.update(r.key for r in found)
            results += found
        return results

    async def acknowledge(self) -> None:
        """Mark every outcome returned so far as read, now."""
        pending, self._unacknowledged = self._unacknowledged, {}
        for name, op_keys in pending.items():
            self.writer.reported.difference_update(op_keys)
            model = await self.writer.model(name)
            await self.db.run(
                f"outcomes:{name}", lambda engine, m=model, k=op_keys: self._acknowledge_and_read(engine, m, k, 0)
            )

    @property
    def unacknowledged(self) -> int:
        return sum(len(v) for v in self._unacknowledged.values())

    def _acknowledge_and_read(self, engine: Engine, model: WriteModel, previous: list[str], limit: int) -> list[WriteResult]:
        c = model.controls
        final = model.final_statuses
        with engine.begin() as conn:
            now = self.clock.now_db(c.read_back_at)
            for start in range(0, len(previous), MAX_PARAMS):
                conn.execute(
                    update(model.table)
                    .where(c.op_key.in_(previous[start : start + MAX_PARAMS]), c.status.in_(final), c.read_back_at.is_(None))
                    .values({c.read_back_at.name: now})
                )
            if limit <= 0:
                return []
            stmt = (
                select(*verdict_columns(model))
                .where(c.status.in_(final), c.read_back_at.is_(None), c.op_key.is_not(None))
                .order_by(c.processed_at, *model.key)
                .limit(limit)
            )
            rows = conn.execute(stmt).mappings().all()
        separator = self.writer.catalog.settings.key_separator
        return [verdict(model, row, self.clock, separator) for row in rows]
