"""What the configured names point at: reflected tables turned into read and write models.

Reflection happens once per table (in a worker thread) and every configured
column is resolved here, so a typo in the config is one clear
:class:`ConnectorConfigError` at the first call, not a database error mid-pull.
The write model is also where "interface tables only" is checked against the
real table: it must carry crmsync's control columns, which no ERP base table has.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Column, Index, MetaData, Table, UniqueConstraint
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import NoSuchTableError

from connectors.errors import ConnectorConfigError

from .settings import InterfaceSettings, ObjectSettings, SqlSettings
from .timeconv import ErpClock


def resolve_column(table: Table, name: str, where: str) -> Column:
    """Exact name first, then a unique case-insensitive match (Oracle and PostgreSQL fold unquoted names)."""
    if name in table.c:
        return table.c[name]
    matches = [c for c in table.c if c.name.lower() == name.lower()]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(c.name for c in table.c)
    raise ConnectorConfigError(f"{where}: column {name!r} not found in {table.fullname} (it has: {known})")


@dataclass(slots=True)
class DetailRead:
    name: str
    table: Table
    fields: list[tuple[str, Column]]
    parent_key: list[Column]
    order: list[Column]


@dataclass(slots=True)
class ReadModel:
    """A readable object: its table, the fields it returns and how changes are found."""

    name: str
    table: Table
    fields: list[tuple[str, Column]]
    key: list[Column]
    modified: Column | None
    deleted: Column | None
    settings: ObjectSettings
    clock: ErpClock
    page_size: int
    details: dict[str, DetailRead] = field(default_factory=dict)

    @property
    def hash_mode(self) -> bool:
        return self.modified is None

    @property
    def overlap(self) -> timedelta:
        return timedelta(seconds=self.settings.overlap_seconds)

    def field_subset(self, names: list[str] | tuple[str, ...]) -> list[tuple[str, Column]]:
        """The requested fields (all when empty); unknown names are a config error."""
        if not names:
            return self.fields
        by_name = {n.lower(): (n, c) for n, c in self.fields}
        missing = [n for n in names if n.lower() not in by_name and n not in self.details]
        if missing:
            raise ConnectorConfigError(f"object {self.name!r} has no field(s) {', '.join(missing)}")
        return [by_name[n.lower()] for n in names if n.lower() in by_name]


@dataclass(slots=True)
class Controls:
    status: Column
    message: Column
    processed_at: Column
    batch_id: Column
    op_key: Column
    read_back_at: Column
    staged_at: Column | None
    action: Column | None
    result_id: Column | None
    error_code: Column | None

    def all(self) -> list[Column]:
        return [c for c in (self.status, self.message, self.processed_at, self.batch_id, self.op_key,
                            self.read_back_at, self.staged_at, self.action, self.result_id, self.error_code) if c is not None]


@dataclass(slots=True)
class DetailWrite:
    name: str
    table: Table
    parent_key: list[Column]
    op_key: Column
    batch_id: Column | None
    data_columns: dict[str, Column]


@dataclass(slots=True)
class WriteModel:
    """An interface table and everything crmsync may put into it."""

    name: str
    table: Table
    key: list[Column]
    controls: Controls
    data_columns: dict[str, Column]  # lower-case name → column; excludes control columns
    settings: InterfaceSettings
    native_upsert: bool
    details: dict[str, DetailWrite] = field(default_factory=dict)

    @property
    def final_statuses(self) -> list[Any]:
        return [self.settings.status_values.done, self.settings.status_values.error]

    def data_column(self, name: str) -> Column | None:
        return self.data_columns.get(name.lower())


class Catalog:
    """Reflected tables and resolved models of one system, built on first use."""

    def __init__(self, settings: SqlSettings) -> None:
        self.settings = settings
        self._tables: dict[tuple[str | None, str], Table] = {}
        self._read: dict[str, ReadModel] = {}
        self._write: dict[str, WriteModel] = {}
        self._lock = threading.Lock()  # models are built from worker threads

    def clear(self) -> None:
        with self._lock:
            self._tables.clear()
            self._read.clear()
            self._write.clear()

    # -- tables -----------------------------------------------------------
    def table(self, bind: Engine | Connection, schema: str | None, name: str, where: str) -> Table:
        ident = (schema, name)
        if ident not in self._tables:
            try:
                self._tables[ident] = Table(name, MetaData(schema=schema), autoload_with=bind)
            except NoSuchTableError:
                shown = f"{schema}.{name}" if schema else name
                raise ConnectorConfigError(f"{where}: table or view {shown!r} not found") from None
        return self._tables[ident]

    # -- read side --------------------------------------------------------
    def read_model(self, engine: Engine, name: str) -> ReadModel:
        with self._lock:
            if name not in self._read:
                self._read[name] = self._build_read(engine, name)
            return self._read[name]

    def _build_read(self, engine: Engine, name: str) -> ReadModel:
        obj = self.settings.object(name)
        if obj.table is None:
            raise ConnectorConfigError(f"object {name!r} is write-only: it has no `table` to read")
        where = f"objects.{name}"
        schema = obj.db_schema or self.settings.db_schema
        table = self.table(engine, schema, obj.table, f"{where}.table")
        if obj.columns:
            fields = [(n, resolve_column(table, n, f"{where}.columns")) for n in obj.columns]
        else:
            fields = [(c.name, c) for c in table.c]
        key = [resolve_column(table, n, f"{where}.key") for n in obj.key]
        modified = resolve_column(table, obj.modified_column, f"{where}.modified_column") if obj.modified_column else None
        deleted = resolve_column(table, obj.deleted_column, f"{where}.deleted_column") if obj.deleted_column else None
        details = {}
        for dname, d in obj.details.items():
            dwhere = f"{where}.details.{dname}"
            dtable = self.table(engine, d.db_schema or schema, d.table, f"{dwhere}.table")
            dfields = (
                [(n, resolve_column(dtable, n, f"{dwhere}.columns")) for n in d.columns]
                if d.columns
                else [(c.name, c) for c in dtable.c]
            )
            details[dname] = DetailRead(
                name=dname,
                table=dtable,
                fields=dfields,
                parent_key=[resolve_column(dtable, n, f"{dwhere}.parent_key") for n in d.parent_key],
                order=[resolve_column(dtable, n, f"{dwhere}.key") for n in d.key],
            )
        return ReadModel(
            name=name,
            table=table,
            fields=fields,
            key=key,
            modified=modified,
            deleted=deleted,
            settings=obj,
            clock=ErpClock(obj.timezone or self.settings.timezone, obj.modified_format),
            page_size=obj.page_size or self.settings.page_size,
            details=details,
        )

    # -- write side -------------------------------------------------------
    def write_model(self, engine: Engine, name: str) -> WriteModel:
        with self._lock:
            if name not in self._write:
                self._write[name] = self._build_write(engine, name)
            return self._write[name]

    def _build_write(self, engine: Engine, name: str) -> WriteModel:
        obj = self.settings.object(name)
        iface = obj.interface
        if iface is None:
            raise ConnectorConfigError(
                f"object {name!r} has no interface table, so crmsync will not write it: "
                "writes go to an interface table that the ERP's own import job processes, never to ERP base tables"
            )
        where = f"objects.{name}.interface"
        schema = iface.db_schema or self.settings.db_schema
        table = self.table(engine, schema, iface.table, f"{where}.table")
        cols = iface.columns

        def control(role: str, required: bool = True) -> Column | None:
            column_name = getattr(cols, role)
            if column_name is None:
                return None
            try:
                return resolve_column(table, column_name, f"{where}.columns.{role}")
            except ConnectorConfigError:
                hint = "" if required else f" (set {where}.columns.{role}: null if it has none)"
                raise ConnectorConfigError(
                    f"{where}: {table.fullname} has no control column {column_name!r}{hint}. crmsync writes only "
                    "interface tables carrying its status/op-key/batch columns — is this an ERP base table?"
                ) from None

        controls = Controls(
            status=control("status"),
            message=control("message"),
            processed_at=control("processed_at"),
            batch_id=control("batch_id"),
            op_key=control("op_key"),
            read_back_at=control("read_back_at"),
            staged_at=control("staged_at", False),
            action=control("action", False),
            result_id=control("result_id", False),
            error_code=control("error_code", False),
        )
        control_names = {c.name for c in controls.all()}
        data_columns = {c.name.lower(): c for c in table.c if c.name not in control_names}
        key = [resolve_column(table, n, f"{where}.key") for n in (iface.key or obj.key)]
        details = {}
        for dname, d in iface.details.items():
            dwhere = f"{where}.details.{dname}"
            dtable = self.table(engine, d.db_schema or schema, d.table, f"{dwhere}.table")
            op_key = _find(dtable, cols.op_key)
            if op_key is None:
                raise ConnectorConfigError(
                    f"{dwhere}: {dtable.fullname} has no {cols.op_key!r} column: line interface tables carry the op key "
                    "so the import job can tell which staging of the header the lines belong to"
                )
            batch_id = _find(dtable, cols.batch_id)
            skip = {op_key.name} | ({batch_id.name} if batch_id is not None else set())
            details[dname] = DetailWrite(
                name=dname,
                table=dtable,
                parent_key=[resolve_column(dtable, n, f"{dwhere}.parent_key") for n in d.parent_key],
                op_key=op_key,
                batch_id=batch_id,
                data_columns={c.name.lower(): c for c in dtable.c if c.name not in skip},
            )
        native = self.settings.upsert_strategy == "auto" and _has_unique(table, key)
        return WriteModel(
            name=name,
            table=table,
            key=key,
            controls=controls,
            data_columns=data_columns,
            settings=iface,
            native_upsert=native,
            details=details,
        )


def _find(table: Table, name: str) -> Column | None:
    try:
        return resolve_column(table, name, "")
    except ConnectorConfigError:
        return None


def _has_unique(table: Table, key: list[Column]) -> bool:
    """Whether a primary key, unique constraint or unique index covers exactly the natural key (native upserts need one)."""
    wanted = {c.name for c in key}
    if {c.name for c in table.primary_key.columns} == wanted:
        return True
    for constraint in table.constraints:
        if isinstance(constraint, UniqueConstraint) and {c.name for c in constraint.columns} == wanted:
            return True
    return any(isinstance(i, Index) and i.unique and {c.name for c in i.columns} == wanted for i in table.indexes)
