"""Staging writes in interface tables — never in ERP base tables.

Why never base tables: an ERP's own save path runs field rules, entity
services, plugins and operation validation (Kingdee: saving without the
``BusinessInfo`` "does not load the save operation's validation rules and plugin
events", erp.md §2.4); a row inserted behind its back skips all of that, can
break ledgers and numbering, and is unsupported by the vendor. Schemas of
packaged ERPs also change with every release. So crmsync only *stages* rows in
an interface table the customer's ERP-side import job consumes, and the job
decides — with the ERP's own logic — what to import. The settings refuse a
write target that crmsync also reads, the write model refuses a table without
crmsync's control columns, and :class:`Writer` only ever builds statements
against a :class:`~connectors.sql.tables.WriteModel`.

Each batch of ``write_batch_size`` ops is one transaction: it lands whole or not
at all. When the database refuses a batch, the batch is replayed op by op
inside savepoints of a transaction that is then rolled back, only to find out
*which* op was refused; that op fails for good with the database's message and
the others fail as retryable, so nothing half-written ever reaches the ERP.

A row staged again before the import job took it keeps one row per natural key:
the new op replaces the old one's ``op_key``, and the old op is reported as
``SUPERSEDED`` (ok: its values travel on with the new op).
"""
from __future__ import annotations

import logging
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Column, Date, DateTime, delete, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from connectors.base import WriteOp, WriteResult
from connectors.errors import ConnectorError

from .database import Database, classify
from .keys import BadKey, KeyCodec
from .tables import Catalog, DetailWrite, WriteModel
from .timeconv import ErpClock
from .upsert import NATIVE_DIALECTS, native_upsert
from .verdicts import is_final, verdict, verdict_columns

log = logging.getLogger(__name__)
ACTIONS = ("create", "update", "upsert", "delete")


class RowInvalid(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(slots=True)
class Staged:
    """One op, checked and translated into interface-table columns."""

    index: int
    op: WriteOp
    external_id: str
    key: tuple[Any, ...]
    values: dict[str, Any]  # column name → value, key columns included
    lines: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # only details the op carries


@dataclass(slots=True)
class BatchRefused:
    """The database refused a batch; ``culprits`` maps op index → the database's message, found by the replay."""

    culprits: dict[int, str]
    message: str


class Writer:
    def __init__(self, system: str, db: Database, catalog: Catalog) -> None:
        self.system = system
        self.db = db
        self.catalog = catalog
        self.clock = ErpClock(catalog.settings.timezone)
        #: Final results of ops whose interface row was re-staged before anyone read them
        #: (superseded while pending, or an unread ERP verdict); reported by poll_write_outcomes.
        self.displaced: deque[WriteResult] = deque()
        #: Op keys whose verdict the outcome poll returned but has not yet marked read (not reported twice).
        self.reported: set[str] = set()

    async def model(self, name: str) -> WriteModel:
        return await self.db.run("reflect", lambda engine: self.catalog.write_model(engine, name))

    # -- push -----------------------------------------------------------------
    async def push(self, object_name: str, ops: Sequence[WriteOp]) -> list[WriteResult]:
        model = await self.model(object_name)  # raises for objects without an interface table
        results: list[WriteResult | None] = [None] * len(ops)
        staged: dict[str, Staged] = {}
        merged_into: dict[int, list[int]] = {}  # index of the op that carries others' values → their indexes
        for index, op in enumerate(ops):
            try:
                row = self._prepare(model, index, op)
            except RowInvalid as exc:
                results[index] = WriteResult(key=op.key, ok=False, code=exc.code, message=exc.message, external_id=op.external_id)
                continue
            earlier = staged.pop(row.external_id, None)
            if earlier is not None:
                row = _merge(earlier, row)
                merged_into[row.index] = [*merged_into.pop(earlier.index, []), earlier.index]
                results[earlier.index] = _superseded(earlier.op.key, row.op.key, row.external_id)
            staged[row.external_id] = row
        rows = sorted(staged.values(), key=lambda s: s.index)
        size = self.catalog.settings.write_batch_size
        committed = False
        for start in range(0, len(rows), size):
            batch = rows[start : start + size]
            batch_id = _batch_id()
            try:
                outcome = await self.db.run(
                    f"stage:{object_name}", lambda engine, b=batch, bid=batch_id: self._stage(engine, model, b, bid)
                )
            except ConnectorError as exc:
                if not committed:
                    raise  # nothing staged yet: the whole call failed (auth, outage)
                for later in rows[start:]:
                    results[later.index] = WriteResult(
                        key=later.op.key, ok=False, code="NOT_STAGED", retryable=True, external_id=later.external_id,
                        message=f"not staged: {exc.message}",
                    )
                break
            if isinstance(outcome, BatchRefused):
                self._report_refused(batch, outcome, results)
                continue
            committed = True
            self.displaced.extend(outcome)
            for row in batch:
                results[row.index] = WriteResult(
                    key=row.op.key, ok=True, pending=True, external_id=row.external_id,
                    message=f"staged in {model.table.name} batch {batch_id}",
                )
        for carrier, merged in merged_into.items():
            failed = results[carrier]
            if failed is not None and not failed.ok:  # the values of merged ops were not staged either
                for index in merged:
                    results[index] = replace(failed, key=ops[index].key)
        return [r for r in results if r is not None]

    def _report_refused(self, batch: list[Staged], refused: BatchRefused, results: list[WriteResult | None]) -> None:
        blamed = ", ".join(batch_op.op.key for batch_op in batch if batch_op.index in refused.culprits) or "none found"
        for row in batch:
            if row.index in refused.culprits:
                results[row.index] = WriteResult(
                    key=row.op.key, ok=False, code="DB_REFUSED", message=refused.culprits[row.index],
                    external_id=row.external_id,
                )
            else:
                results[row.index] = WriteResult(
                    key=row.op.key, ok=False, code="BATCH_ROLLED_BACK", retryable=True, external_id=row.external_id,
                    message=f"not staged: its batch was rolled back (refused op(s): {blamed}): {refused.message}",
                )

    # -- checking one op --------------------------------------------------------
    def _prepare(self, model: WriteModel, index: int, op: WriteOp) -> Staged:
        if op.action not in ACTIONS:
            raise RowInvalid("UNSUPPORTED", f"unknown action {op.action!r}")
        if op.action == "delete" and model.controls.action is None:
            raise RowInvalid(
                "UNSUPPORTED", f"{model.table.name} has no action column, so a delete cannot be staged for the ERP"
            )
        control_names = {c.name.lower() for c in model.controls.all()}
        values: dict[str, Any] = {}
        lines: dict[str, list[dict[str, Any]]] = {}
        for name, value in op.data.items():
            if name in model.details:
                lines[name] = self._lines(model.details[name], name, value)
                continue
            column = model.data_column(name)
            if column is None:
                if name.lower() in control_names:
                    raise RowInvalid("RESERVED_FIELD", f"{name!r} is an interface control column; crmsync sets it")
                raise RowInvalid("UNKNOWN_FIELD", f"{model.table.name} has no column {name!r}")
            values[column.name] = self._db_value(column, value)
        codec = KeyCodec(model.key, self.catalog.settings.key_separator)
        if any(values.get(c.name) in (None, "") for c in model.key):
            values.update(self._key_from_external_id(model, codec, op))
        try:
            key = tuple(values.get(c.name) for c in model.key)
            external_id = codec.encode(key)
        except BadKey as exc:
            raise RowInvalid("MISSING_KEY", f"natural key of {model.table.name}: {exc}") from None
        if op.action == "delete":
            values = {c.name: values[c.name] for c in model.key}
            lines = {}
        return Staged(index=index, op=op, external_id=external_id, key=key, values=values, lines=lines)

    def _key_from_external_id(self, model: WriteModel, codec: KeyCodec, op: WriteOp) -> dict[str, Any]:
        """The natural key from the op's external id — only when the interface key *is* the read key."""
        read_key = [k.lower() for k in self.catalog.settings.objects[model.name].key]
        if not op.external_id or [c.name.lower() for c in model.key] != read_key:
            return {}
        try:
            return dict(zip((c.name for c in model.key), codec.decode(op.external_id), strict=True))
        except BadKey as exc:
            raise RowInvalid("MISSING_KEY", str(exc)) from None

    def _lines(self, detail: DetailWrite, name: str, value: Any) -> list[dict[str, Any]]:
        if not isinstance(value, list) or not all(isinstance(line, dict) for line in value):
            raise RowInvalid("INVALID_LINES", f"{name!r} must be a list of line records")
        parent = {c.name.lower() for c in detail.parent_key}
        out = []
        for number, line in enumerate(value, 1):
            row = {}
            for field_name, field_value in line.items():
                column = detail.data_columns.get(field_name.lower())
                if column is None:
                    raise RowInvalid("UNKNOWN_FIELD", f"{name}[{number}]: {detail.table.name} has no column {field_name!r}")
                if column.name.lower() not in parent:
                    row[column.name] = self._db_value(column, field_value)
            out.append(row)
        return out

    def _db_value(self, column: Column, value: Any) -> Any:
        if isinstance(value, datetime) and isinstance(column.type, DateTime):
            return self.clock.to_db(value, column)
        if isinstance(value, datetime) and isinstance(column.type, Date):
            return value.astimezone(self.clock.zone).date() if value.tzinfo else value.date()
        if isinstance(value, date | datetime) or not isinstance(value, dict | list):
            return value
        raise RowInvalid("INVALID_VALUE", f"column {column.name!r} cannot hold a {type(value).__name__}")

    # -- one transaction --------------------------------------------------------
    def _stage(self, engine: Engine, model: WriteModel, batch: list[Staged], batch_id: str) -> list[WriteResult] | BatchRefused:
        try:
            with engine.begin() as conn:
                return self._write(conn, model, batch, batch_id)
        except DBAPIError as exc:
            if classify(exc) not in ("record", "db_error", "config"):
                raise  # connection, auth, deadlock: the caller turns it into a typed error
            message = self.db.driver_message(exc)
            log.info("%s: batch %s of %s refused (%s); finding the op(s) responsible", self.system, batch_id, model.name, message)
            return BatchRefused(culprits=self._find_culprits(engine, model, batch, batch_id), message=message)

    def _find_culprits(self, engine: Engine, model: WriteModel, batch: list[Staged], batch_id: str) -> dict[int, str]:
        """Replay the batch in savepoints of a transaction that is always rolled back, halving failing parts.

        Halves are replayed in order and kept when they succeed, so each op sees what the ops
        before it did — as in the real batch — and one bad op costs about 2·log2(n) statements.
        """
        culprits: dict[int, str] = {}

        def replay(part: list[Staged]) -> None:
            savepoint = conn.begin_nested()
            try:
                self._write(conn, model, part, batch_id)
                savepoint.commit()
                return
            except DBAPIError as exc:
                savepoint.rollback()
                if classify(exc) not in ("record", "db_error", "config"):
                    return  # a lock or connection hiccup during the replay says nothing about the op
                if len(part) == 1:
                    culprits[part[0].index] = self.db.driver_message(exc)
                    return
            middle = len(part) // 2
            replay(part[:middle])
            replay(part[middle:])

        with engine.connect() as conn:
            transaction = conn.begin()
            try:
                replay(batch)
            finally:
                transaction.rollback()
        return culprits

    def _write(self, conn: Connection, model: WriteModel, batch: list[Staged], batch_id: str) -> list[WriteResult]:
        codec = KeyCodec(model.key, self.catalog.settings.key_separator)
        existing = self._existing(conn, model, codec, batch)
        controls = model.controls
        now = self.clock.now_db(controls.staged_at)
        common = {
            controls.status.name: model.settings.status_values.pending,
            controls.message.name: None,
            controls.processed_at.name: None,
            controls.batch_id.name: batch_id,
            controls.read_back_at.name: None,
        }
        if controls.staged_at is not None:
            common[controls.staged_at.name] = now
        if controls.error_code is not None:
            common[controls.error_code.name] = None

        def full_row(row: Staged) -> dict[str, Any]:
            extra = {controls.op_key.name: row.op.key}
            if controls.action is not None:
                extra[controls.action.name] = row.op.action
            return {**row.values, **common, **extra}

        use_native = model.native_upsert and self.db.dialect in NATIVE_DIALECTS
        if use_native:
            self._native(conn, model, batch, full_row)
        else:
            self._generic(conn, model, batch, full_row, existing)
        self._replace_lines(conn, model, codec, batch, batch_id)
        displaced = []
        op_key, status = controls.op_key.name, controls.status.name
        for row in batch:
            old = existing.get(row.external_id)
            if old is None or not old[op_key] or old[op_key] == row.op.key:
                continue
            if not is_final(model, old[status]):
                displaced.append(_superseded(old[op_key], row.op.key, row.external_id))
            elif old[controls.read_back_at.name] is None and old[op_key] not in self.reported:
                # The ERP's verdict on the previous op was never read: report it before it is overwritten.
                displaced.append(verdict(model, old, self.clock, self.catalog.settings.key_separator))
        return displaced

    def _existing(self, conn: Connection, model: WriteModel, codec: KeyCodec, batch: list[Staged]) -> dict[str, Any]:
        """external id → the staged row already there for that key (its verdict columns)."""
        found: dict[str, Any] = {}
        for chunk in codec.chunks([row.key for row in batch]):
            for row in conn.execute(select(*verdict_columns(model)).where(codec.matches(chunk))).mappings():
                try:
                    found[codec.encode(codec.row_key(row))] = row
                except BadKey:
                    continue
        return found

    def _clearable(self, model: WriteModel, mentioned: set[str]) -> list[Column]:
        keys = {c.name for c in model.key}
        return [c for c in model.data_columns.values() if c.name not in mentioned and c.name not in keys and c.nullable]

    def _native(self, conn: Connection, model: WriteModel, batch: list[Staged], full_row) -> None:
        groups: dict[frozenset[str], list[dict[str, Any]]] = {}
        for row in batch:
            values = full_row(row)
            groups.setdefault(frozenset(values), []).append(values)
        keys = {c.name for c in model.key}
        for columns, params in groups.items():
            stmt = native_upsert(
                self.db.dialect,
                model.table,
                model.key,
                set_columns=sorted(columns - keys),
                clear_when_final=self._clearable(model, set(columns)),
                status=model.controls.status,
                final_statuses=model.final_statuses,
            )
            conn.execute(stmt, params)

    def _generic(self, conn: Connection, model: WriteModel, batch: list[Staged], full_row, existing) -> None:
        """Select-then-update inside the batch's transaction, for dialects without a native upsert."""
        codec = KeyCodec(model.key, self.catalog.settings.key_separator)
        for row in batch:
            values = full_row(row)
            old = existing.get(row.external_id)
            if old is None:
                conn.execute(insert(model.table).values(values))
                continue
            if is_final(model, old[model.controls.status.name]):
                values.update({c.name: None for c in self._clearable(model, set(values))})
            changes = {k: v for k, v in values.items() if k not in {c.name for c in model.key}}
            conn.execute(update(model.table).where(codec.equals(row.key)).values(changes))

    def _replace_lines(self, conn: Connection, model: WriteModel, codec: KeyCodec, batch: list[Staged], batch_id: str) -> None:
        for name, detail in model.details.items():
            carrying = [row for row in batch if name in row.lines]
            if not carrying:
                continue  # lines not sent: the staged ones stay as they are
            for chunk in codec.chunks([row.key for row in carrying]):
                conn.execute(delete(detail.table).where(codec.matches(chunk, detail.parent_key)))
            groups: dict[frozenset[str], list[dict[str, Any]]] = {}
            for row in carrying:
                parent = {c.name: v for c, v in zip(detail.parent_key, row.key, strict=True)}
                for line in row.lines[name]:
                    values = {**line, **parent, detail.op_key.name: row.op.key}
                    if detail.batch_id is not None:
                        values[detail.batch_id.name] = batch_id
                    groups.setdefault(frozenset(values), []).append(values)
            for params in groups.values():
                conn.execute(insert(detail.table), params)


def _merge(earlier: Staged, later: Staged) -> Staged:
    """Two ops for one key in one push: stage one row that carries both (the later wins per field)."""
    if later.op.action == "delete":
        return later
    later.values = {**earlier.values, **later.values}
    later.lines = {**earlier.lines, **later.lines}
    return later


def _superseded(old_key: str, new_key: str, external_id: str) -> WriteResult:
    return WriteResult(
        key=old_key, ok=True, code="SUPERSEDED", external_id=external_id,
        message=f"replaced by op {new_key} for the same key before the ERP imported it; that op carries its values",
    )


def _batch_id() -> str:
    return f"crmsync-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
