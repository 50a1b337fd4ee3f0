"""Many rows in, many rows changed: one executemany through the driver, values converted once.

A first sync writes about a dozen rows per record (staged change, record, links, snapshots,
match keys, outbox, audit events). Through ``session.execute(insert(table), rows)`` SQLAlchemy
builds each row's parameters and runs every value through its type's bind processors, which
took more CPU than the database's own work. Here each column's conversion is chosen once per
statement and the rows go to the driver as plain tuples — the values stored are the same:

* JSON columns: :func:`~sync_engine.state.types.dumps_json` (the engine's serialiser), None → NULL;
* :class:`~sync_engine.state.types.UTCDateTime`: aware datetimes in UTC, naive ones refused
  (:class:`~sync_engine.state.types.NaiveDatetimeError`); on SQLite the fixed-width text
  SQLAlchemy writes (``YYYY-MM-DD HH:MM:SS.ffffff``), so comparisons stay chronological;
* enum columns: the member's value (a string not among the values is refused);
* a column a row leaves out takes its Python default (as SQLAlchemy would), else NULL.

Everything runs on the session's connection, inside its transaction.
"""
from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from enum import Enum as PyEnum
from typing import Any

from sqlalchemy import JSON, Enum, Table
from sqlalchemy.orm import Session

from .types import UTC, UTCDateTime, as_utc, dumps_json

Convert = Callable[[Any], Any]


def _json(value: Any) -> Any:
    return None if value is None else dumps_json(value)


_utc = as_utc  # the checks UTCDateTime makes on every bound value


#: The last datetime written and its text: a batch's rows share a few instants (one utc_now() per row
#: or per batch), so most conversions are this lookup. One tuple, replaced whole (safe across threads).
_last_datetime: tuple[Any, str | None] = (None, None)


def _sqlite_datetime(value: datetime | None) -> str | None:
    global _last_datetime
    last = _last_datetime
    if value is last[0] and value is not None:
        return last[1]
    if value is not None and value.tzinfo is UTC and type(value) is datetime:
        # The usual case (utc_now()): "YYYY-MM-DD HH:MM:SS.ffffff+00:00" less the offset.
        text = value.isoformat(" ", "microseconds")[:-6]
        _last_datetime = (value, text)
        return text
    value = _utc(value)
    # SQLAlchemy's SQLite DATETIME storage format: microseconds always written.
    return None if value is None else value.replace(tzinfo=None).isoformat(" ", "microseconds")


def _enum(values: frozenset[str], name: str) -> Convert:
    def convert(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, PyEnum):
            value = value.value
        if value not in values:
            raise LookupError(f"{value!r} is not among the defined enum values of {name}")
        return value

    return convert


def _converter(column: Any, dialect: str) -> Convert | None:
    type_ = column.type
    if isinstance(type_, UTCDateTime):
        return _sqlite_datetime if dialect == "sqlite" else _utc
    if isinstance(type_, JSON):
        return _json
    if isinstance(type_, Enum):
        return _enum(frozenset(type_.enums), type_.name or column.name)
    return None


def _placeholder(column: Any, dialect: str) -> str:
    if dialect == "sqlite":
        return "?"
    if isinstance(column.type, JSON):
        # JSONB on PostgreSQL: the text goes in as text and is cast there.
        return "CAST(%s AS JSONB)"
    return "%s"


def _default(column: Any) -> Callable[[], Any] | None:
    default = column.default
    if default is None:
        return None
    if getattr(default, "is_scalar", False):
        return lambda: default.arg
    if getattr(default, "is_callable", False):
        return lambda: default.arg(None)
    return None


@functools.cache
def _insert_plan(table: Table, columns: tuple[str, ...], dialect: str, quote: Callable[[str], str]) -> tuple[str, list]:
    cols = [table.c[name] for name in columns]
    sql = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(c.name) for c in cols)}) "
        f"VALUES ({', '.join(_placeholder(c, dialect) for c in cols)})"
    )
    return sql, [_converter(c, dialect) for c in cols]


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _run(session: Session, sql: str, params: list[tuple]) -> None:
    session.connection().exec_driver_sql(sql, params)


def insert_rows(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT ``rows`` (dicts of column values) into ``table``: one executemany."""
    if not rows:
        return
    names = dict.fromkeys(rows[0])
    keys = names.keys()
    uniform = True
    for row in rows:
        if row.keys() != keys:  # a C-level set comparison: the usual batch has one shape
            uniform = False
            names.update(dict.fromkeys(row))
    # Columns no row names but that have a Python default are filled in, as SQLAlchemy would.
    defaults = {c.name: d for c in table.columns if c.name not in names and (d := _default(c)) is not None}
    columns = (*names, *defaults)
    dialect = _dialect(session)
    sql, converters = _insert_plan(table, columns, dialect, _quote_fn(session))
    if uniform:
        params = _uniform_params(rows, tuple(names), converters, list(defaults.values()))
    else:
        missing = {c.name: _default(c) for c in table.columns if c.name in names}
        params = []
        for row in rows:
            values = []
            for name, convert in zip(columns, converters):
                if name in row:
                    value = row[name]
                else:
                    make = defaults.get(name) or missing.get(name)
                    value = make() if make is not None else None
                values.append(convert(value) if convert is not None else value)
            params.append(tuple(values))
    _run(session, sql, params)


def _uniform_params(
    rows: Sequence[Mapping[str, Any]], names: tuple[str, ...], converters: list, defaults: list[Callable[[], Any]]
) -> list[tuple]:
    """Rows that all name the same columns: the values taken in one C call per row, only the columns
    that need a conversion converted (the same values as the general loop in :func:`insert_rows`)."""
    take = operator.itemgetter(*names)
    convert = [(i, c) for i, c in enumerate(converters[: len(names)]) if c is not None]
    convert_defaults = converters[len(names):]
    params = []
    for row in rows:
        values = list(take(row)) if len(names) > 1 else [take(row)]
        for i, c in convert:
            values[i] = c(values[i])
        for make, c in zip(defaults, convert_defaults):
            value = make()
            values.append(c(value) if c is not None else value)
        params.append(tuple(values))
    return params


@functools.cache
def _update_plan(
    table: Table, key: str, columns: tuple[str, ...], dialect: str, quote: Callable[[str], str]
) -> tuple[str, list, Convert | None]:
    cols = [table.c[name] for name in columns]
    key_col = table.c[key]
    sets = ", ".join(f"{quote(c.name)} = {_placeholder(c, dialect)}" for c in cols)
    sql = f"UPDATE {quote(table.name)} SET {sets} WHERE {quote(key_col.name)} = {_placeholder(key_col, dialect)}"
    return sql, [_converter(c, dialect) for c in cols], _converter(key_col, dialect)


def update_rows(
    session: Session, table: Table, key: str, columns: Iterable[str], rows: Sequence[Mapping[str, Any]]
) -> None:
    """UPDATE ``columns`` of each row (a mapping holding them and ``key``) by ``key``: one executemany."""
    if not rows:
        return
    columns = tuple(columns)
    sql, converters, convert_key = _update_plan(table, key, columns, _dialect(session), _quote_fn(session))
    params = []
    for row in rows:
        values = [
            convert(row.get(name)) if convert is not None else row.get(name)
            for name, convert in zip(columns, converters)
        ]
        values.append(convert_key(row[key]) if convert_key is not None else row[key])
        params.append(tuple(values))
    _run(session, sql, params)


@functools.lru_cache(maxsize=256)
def _driver_sql(sql: str, dialect: str) -> str:
    return sql if dialect == "sqlite" else sql.replace("?", "%s")


def placeholders(n: int) -> str:
    """``?, ?, …`` for an ``IN (…)`` list of ``n`` values in :func:`select_rows`'s SQL."""
    return ", ".join("?" * n)


def select_rows(session: Session, sql: str, params: Sequence[Any]) -> Sequence[Any]:
    """Rows of ``sql`` (``?`` placeholders, values that need no conversion), on the
    session's connection: for lookups with long ``IN (…)`` lists, which SQLAlchemy would expand and
    process value by value on every execution."""
    result = session.connection().exec_driver_sql(_driver_sql(sql, _dialect(session)), tuple(params))
    return result.all()


def _quote_fn(session: Session) -> Callable[[str], str]:
    return session.get_bind().dialect.identifier_preparer.quote
