"""Reading ERP tables and views: incremental pulls by modified time, and fetch by id.

Incremental pulls follow the rules in ``sync-lessons.md`` §2.4:

* the lower bound is inclusive (``modified >= since``), widened by the object's
  ``overlap_seconds`` for ERP transactions that commit late with an older time;
* pages are keyset-paged on ``ORDER BY modified, key`` — never OFFSET, which
  rescans skipped rows and loses or repeats rows when the table changes
  between pages — so rows tying on the modified time across a page edge are
  neither lost nor repeated: each (key, modified) is returned once per pull;
* ``Page.resume`` holds the last (modified, key) so a resumed pull continues
  right after it.

Rows whose modified column is NULL can never match ``>= since``: they are read
on full pulls only (``since`` = None), in a first phase ordered by key.
"""
from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Column, DateTime, and_, or_, select, text
from sqlalchemy.engine import Connection, Engine

from connectors.base import Page, PullRequest, SourceRecord
from connectors.errors import ConnectorError

from .database import Database
from .keys import BadKey, KeyCodec
from .tables import Catalog, ReadModel
from .values import from_json, to_json
from .verdicts import flag_matches

log = logging.getLogger(__name__)
TOKEN_VERSION = 1
#: What SQLAlchemy's text() would read as a bind parameter (its own pattern).
_BIND_LIKE = re.compile(r"(?<![:\w\x5c]):(\w+)(?!:)")


def _naive_datetime(column: Column) -> bool:
    return isinstance(column.type, DateTime) and not column.type.timezone


class Reader:
    def __init__(self, system: str, db: Database, catalog: Catalog) -> None:
        self.system = system
        self.db = db
        self.catalog = catalog

    async def model(self, name: str) -> ReadModel:
        return await self.db.run("reflect", lambda engine: self.catalog.read_model(engine, name))

    def codec(self, model: ReadModel) -> KeyCodec:
        return KeyCodec(model.key, self.catalog.settings.key_separator)

    # -- pull by modified time --------------------------------------------
    async def pull_modified(self, model: ReadModel, request: PullRequest) -> AsyncIterator[Page]:
        state = self._start_state(model, request)
        fields = model.field_subset(tuple(request.fields))
        while True:
            records, rows, last = await self.db.run(
                f"pull:{model.name}", lambda engine: self._modified_page(engine, model, fields, state, request)
            )
            finished_phase = rows < model.page_size
            if last is not None:
                state["m"], state["k"] = last
            if finished_phase and state["phase"] == "nulls":
                state.update(phase="dated", m=None, k=None)
                finished_phase = False
            if records:
                yield Page(records=records, resume=None if finished_phase else dict(state))
            if finished_phase:
                return

    def _start_state(self, model: ReadModel, request: PullRequest) -> dict[str, Any]:
        if request.resume:
            token = request.resume
            if token.get("object") != model.name or token.get("mode") != "modified" or token.get("v") != TOKEN_VERSION:
                raise ConnectorError(
                    f"resume token does not belong to a modified-time pull of {model.name!r}", system=self.system
                )
            return dict(token)
        lower = None
        if request.since is not None:
            look_back = timedelta(0) if request.settled else model.overlap  # settled: waited out already
            lower = to_json(model.clock.to_db(request.since - look_back, model.modified))
        return {
            "v": TOKEN_VERSION,
            "object": model.name,
            "mode": "modified",
            "phase": "nulls" if request.since is None else "dated",
            "lower": lower,
            "m": None,
            "k": None,
        }

    def _modified_page(
        self, engine: Engine, model: ReadModel, fields: list[tuple[str, Column]], state: dict[str, Any], request: PullRequest
    ) -> tuple[list[SourceRecord], int, tuple[Any, Any] | None]:
        codec = self.codec(model)
        modified = model.modified
        assert modified is not None
        after_k = [from_json(v) for v in state["k"]] if state["k"] is not None else None
        conditions = self._base_conditions(model)
        if state["phase"] == "nulls":
            conditions.append(modified.is_(None))
            if after_k is not None:
                conditions.append(codec.after(after_k))
            order = list(model.key)
        else:
            lower = from_json(state["lower"])
            conditions.append(modified >= lower if lower is not None else modified.is_not(None))
            if state["m"] is not None:
                after_m = from_json(state["m"])
                conditions.append(modified >= after_m)
                conditions.append(or_(modified > after_m, and_(modified == after_m, codec.after(after_k))))
            order = [modified, *model.key]
        stmt = (
            select(*self._select_columns(model, fields))
            .where(*conditions)
            .order_by(*order)
            .limit(model.page_size)
        )
        with engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
            records = self.build_records(conn, model, rows, fields, include_deleted=request.include_deleted)
        last = None
        if rows:
            tail = rows[-1]
            last = (to_json(tail[modified.name]), [to_json(v) for v in codec.row_key(tail)])
        return records, len(rows), last

    # -- reading rows in key order (hash scans) ----------------------------
    def key_page(
        self, engine: Engine, model: ReadModel, after_k: Sequence[Any] | None, limit: int
    ) -> tuple[list[SourceRecord], list[Any] | None, int]:
        """One page of rows in key order after ``after_k``: records (tombstones included), last key, rows read."""
        codec = self.codec(model)
        conditions = self._base_conditions(model)
        if after_k is not None:
            conditions.append(codec.after(after_k))
        stmt = select(*self._select_columns(model, model.fields)).where(*conditions).order_by(*model.key).limit(limit)
        with engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
            records = self.build_records(conn, model, rows, model.fields, include_deleted=True)
        return records, (list(codec.row_key(rows[-1])) if rows else None), len(rows)

    # -- fetch by id --------------------------------------------------------
    async def fetch(self, model: ReadModel, ids: Sequence[str], fields: Sequence[str]) -> list[SourceRecord]:
        codec = self.codec(model)
        keys = []
        for external_id in dict.fromkeys(ids):
            try:
                keys.append(codec.decode(external_id))
            except BadKey as exc:
                log.info("%s: ignoring id %r of %s: %s", self.system, external_id, model.name, exc)
        chosen = model.field_subset(tuple(fields))
        batch = self.catalog.settings.fetch_batch_size
        records: list[SourceRecord] = []
        for start in range(0, len(keys), batch):
            part = keys[start : start + batch]
            records += await self.db.run(
                f"fetch:{model.name}", lambda engine, part=part: self._fetch_keys(engine, model, chosen, part)
            )
        return records

    def _fetch_keys(
        self, engine: Engine, model: ReadModel, fields: list[tuple[str, Column]], keys: Sequence[tuple[Any, ...]]
    ) -> list[SourceRecord]:
        codec = self.codec(model)
        out: list[SourceRecord] = []
        with engine.connect() as conn:
            for chunk in codec.chunks(keys):
                stmt = select(*self._select_columns(model, fields)).where(
                    *self._base_conditions(model), codec.matches(chunk)
                )
                rows = conn.execute(stmt).mappings().all()
                out += self.build_records(conn, model, rows, fields, include_deleted=True)
        return out

    # -- shared -------------------------------------------------------------
    @staticmethod
    def _base_conditions(model: ReadModel) -> list[Any]:
        if model.settings.filter:
            # The integrator's SQL goes in verbatim: ':word' is escaped so it is not taken for a bind
            # parameter, and SQLAlchemy doubles '%' for drivers that need it. text(), not a Boolean
            # literal column, so dialects without a boolean type (SQL Server, Oracle) add no "= 1".
            return [text("(" + _BIND_LIKE.sub(r"\\:\1", model.settings.filter) + ")")]
        return []

    @staticmethod
    def _select_columns(model: ReadModel, fields: list[tuple[str, Column]]) -> list[Column]:
        columns: dict[str, Column] = {}
        for column in [*(c for _, c in fields), *model.key, model.modified, model.deleted]:
            if column is not None:
                columns.setdefault(column.name, column)
        return list(columns.values())

    def build_records(
        self,
        conn: Connection,
        model: ReadModel,
        rows: Sequence[Any],
        fields: list[tuple[str, Column]],
        *,
        include_deleted: bool,
    ) -> list[SourceRecord]:
        codec = self.codec(model)
        clock = model.clock
        lines = self._details(conn, model, rows) if model.details else {}
        # Only zone-less date-time columns need converting; deciding that once per page, not per value.
        columns = [(name, column.name) for name, column in fields]
        timed = [name for name, column in fields if _naive_datetime(column)]
        records = []
        for row in rows:
            key = codec.row_key(row)
            deleted = model.deleted is not None and flag_matches(row[model.deleted.name], model.settings.deleted_values)
            if deleted and not include_deleted:
                continue
            data = {name: row[column] for name, column in columns}
            for name in timed:
                data[name] = clock.localize(data[name])
            for detail_name, by_parent in lines.items():
                data[detail_name] = by_parent.get(tuple(key), [])
            try:
                external_id = codec.encode(key)
            except BadKey as exc:
                log.warning("%s: skipping a %s row with an unusable key: %s", self.system, model.name, exc)
                continue
            records.append(
                SourceRecord(
                    object=model.name,
                    external_id=external_id,
                    modified_at=self._modified_at(model, row),
                    data=data,
                    deleted=deleted,
                )
            )
        return records

    def _modified_at(self, model: ReadModel, row: Any) -> datetime | None:
        if model.modified is None:
            return None
        try:
            return model.clock.to_utc(row[model.modified.name])
        except (ValueError, TypeError) as exc:
            log.warning("%s: %s row has an unreadable modified time: %s", self.system, model.name, exc)
            return None

    def _details(self, conn: Connection, model: ReadModel, rows: Sequence[Any]) -> dict[str, dict[tuple, list[dict]]]:
        codec = self.codec(model)
        parents = list(dict.fromkeys(tuple(codec.row_key(r)) for r in rows))
        found: dict[str, dict[tuple, list[dict]]] = {}
        for name, detail in model.details.items():
            by_parent: dict[tuple, list[dict]] = {}
            columns = {c.name: c for c in [*detail.parent_key, *(c for _, c in detail.fields)]}
            for chunk in codec.chunks(parents):
                stmt = (
                    select(*columns.values())
                    .where(codec.matches(chunk, detail.parent_key))
                    .order_by(*detail.parent_key, *detail.order)
                )
                for line in conn.execute(stmt).mappings():
                    parent = tuple(line[c.name] for c in detail.parent_key)
                    by_parent.setdefault(parent, []).append(
                        {fname: model.clock.localize(line[col.name]) for fname, col in detail.fields}
                    )
            found[name] = by_parent
        return found
