"""``crmsync discover`` for SQL systems: objects and fields from SQLAlchemy inspection.

Field names are column names (what a mapping refers to); labels are column
comments where the database keeps them (ERP schemas often carry the Chinese
field name there). A field is writable only if the object's interface table
has the column; everything else of the read table is read-only.
"""
from __future__ import annotations

from sqlalchemy import Column, inspect
from sqlalchemy.engine import Engine

from connectors.base import FieldInfo, ObjectInfo
from connectors.errors import ConnectorConfigError

from .database import Database
from .tables import Catalog, ReadModel, WriteModel


class Discovery:
    def __init__(self, db: Database, catalog: Catalog) -> None:
        self.db = db
        self.catalog = catalog
        self.settings = catalog.settings

    async def list_objects(self) -> list[ObjectInfo]:
        found = [ObjectInfo(name=name, label=obj.label or obj.table or obj.interface.table)  # type: ignore[union-attr]
                 for name, obj in self.settings.objects.items()]
        if self.settings.discover_unconfigured_tables:
            configured = {o.table for o in self.settings.objects.values()} | {
                o.interface.table for o in self.settings.objects.values() if o.interface
            }
            for table in await self.db.run("discover", self._table_names):
                if table not in configured and table not in self.settings.objects:
                    found.append(ObjectInfo(name=table, label=table, custom=True))
        return found

    def _table_names(self, engine: Engine) -> list[str]:
        inspector = inspect(engine)
        schema = self.settings.db_schema
        return sorted(set(inspector.get_table_names(schema=schema)) | set(inspector.get_view_names(schema=schema)))

    async def describe(self, name: str) -> list[FieldInfo]:
        if name in self.settings.objects:
            return await self.db.run("describe", lambda engine: self._describe_object(engine, name))
        if self.settings.discover_unconfigured_tables:
            return await self.db.run("describe", lambda engine: self._describe_table(engine, name))
        raise ConnectorConfigError(f"unknown object {name!r} (configured: {', '.join(sorted(self.settings.objects))})")

    def _describe_object(self, engine: Engine, name: str) -> list[FieldInfo]:
        obj = self.settings.objects[name]
        read: ReadModel | None = self.catalog.read_model(engine, name) if obj.table else None
        write: WriteModel | None = self.catalog.write_model(engine, name) if obj.interface else None
        fields: dict[str, FieldInfo] = {}
        lookups = self._lookups(read) if read else {}
        write_keys = {c.name.lower() for c in write.key} if write else set()
        if read:
            read_keys = {c.name for c in read.key}
            for field_name, column in read.fields:
                staged = write.data_column(field_name) if write else None
                info = self._info(engine, field_name, column, read_only=staged is None,
                                  key=column.name in read_keys or field_name.lower() in write_keys,
                                  lookup=lookups.get(column.name))
                if not info.label and staged is not None:
                    info.label = staged.comment or ""  # views rarely carry comments; the interface table may
                fields[field_name.lower()] = info
            for detail in read.details:
                fields[detail.lower()] = FieldInfo(name=detail, label="lines", type="lines",
                                                   read_only=not (write and detail in write.details))
        if write:
            for column in write.data_columns.values():
                if column.name.lower() not in fields:
                    fields[column.name.lower()] = self._info(engine, column.name, column, read_only=False,
                                                             key=column.name.lower() in write_keys, lookup=None)
            for detail in write.details:
                fields.setdefault(detail.lower(), FieldInfo(name=detail, label="lines", type="lines"))
        return list(fields.values())

    def _describe_table(self, engine: Engine, table_name: str) -> list[FieldInfo]:
        table = self.catalog.table(engine, self.settings.db_schema, table_name, f"table {table_name!r}")
        return [self._info(engine, c.name, c, read_only=True, key=c.primary_key, lookup=None) for c in table.c]

    def _lookups(self, read: ReadModel) -> dict[str, str]:
        """Foreign keys of the read table that point at another configured object's table."""
        by_table = {obj.table.lower(): name for name, obj in self.settings.objects.items() if obj.table}
        found = {}
        for fk in read.table.foreign_keys:
            target = by_table.get(fk.column.table.name.lower())
            if target:
                found[fk.parent.name] = target
        return found

    @staticmethod
    def _info(engine: Engine, name: str, column: Column, *, read_only: bool, key: bool, lookup: str | None) -> FieldInfo:
        try:
            type_name = column.type.compile(dialect=engine.dialect)
        except Exception:  # noqa: BLE001 - exotic vendor types: the class name will do
            type_name = type(column.type).__name__
        required = key or (not column.nullable and column.server_default is None and not read_only)
        return FieldInfo(
            name=name,
            label=column.comment or "",
            type=type_name.lower(),
            required=required,
            read_only=read_only,
            lookup_object=lookup,
        )
