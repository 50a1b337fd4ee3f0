"""Column types that behave the same on SQLite and PostgreSQL.

* :class:`UTCDateTime` — timezone-aware datetimes in, timezone-aware UTC out.
  PostgreSQL keeps them in ``timestamptz``; SQLite has no timezone type, so
  they are stored as naive UTC text of fixed width, which keeps SQL
  comparisons (``run_at <= :now``) chronological.
* :data:`JSONType` — ``JSON`` on SQLite, ``JSONB`` on PostgreSQL.
* :func:`dumps_json` — the engine-wide JSON serialiser: UTF-8 kept as is (so
  ``深圳市华为技术有限公司`` is readable in the database), Decimal and datetime
  values written as strings instead of crashing a commit.
"""
from __future__ import annotations

import json
from datetime import date, datetime, timezone
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import JSON, DateTime
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from connectors import jsontext

UTC = timezone.utc


def utc_now() -> datetime:
    return datetime.now(UTC)


class NaiveDatetimeError(ValueError):
    """A naive datetime reached the state store: its meaning is ambiguous, so it is refused."""


def as_utc(value: datetime | None) -> datetime | None:
    """A state time in UTC; a naive datetime (or not a datetime at all) is refused."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise NaiveDatetimeError(f"naive datetime {value.isoformat()} given; state times must be timezone-aware")
    return value.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        value = as_utc(value)
        if value is None:
            return None
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# none_as_null: a Python None is SQL NULL (so "IS NULL" finds it), not the JSON text "null".
JSONType = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        # str keeps every digit; a float would turn 0.1 into 0.1000000000000000055…
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (UUID, Enum)):
        return str(value.value if isinstance(value, Enum) else value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    raise TypeError(f"value of type {type(value).__name__} cannot be stored as JSON")


#: what json.dumps(ensure_ascii=False, default=_json_default) builds on every call
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=_json_default)


def dumps_json(value: Any) -> str:
    """orjson, which takes a fraction of the json module's CPU; the json module for what orjson refuses
    (integers beyond 64 bits, keys that are not strings, lone surrogates). The same values either way.

    A text the json module wrote is led by a space (still JSON), so that :func:`loads_json` reads it with
    the json module too: orjson would read an integer beyond 64 bits as a float, losing digits."""
    try:
        return orjson.dumps(value, default=_json_default, option=jsontext.DUMPS_OPTIONS).decode()
    except orjson.JSONEncodeError:
        return " " + _ENCODER.encode(value)


def loads_json(text: str) -> Any:
    """What :func:`dumps_json` wrote, as SQLite keeps it: orjson, but the json module for a text led by
    a space and for what orjson cannot read (NaN). PostgreSQL rewrites JSONB, so the lead is gone from
    what it returns: it reads with :func:`loads_json_exact`. (A text written before orjson came in has
    no lead either; one holding an integer beyond 64 bits would be read as a float. The CRMs send no
    integers that large: Zoho's 19-digit ids are strings.)"""
    if text[:1] != " ":
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass  # the json module reads it or raises its own error
    return json.loads(text)


#: Any JSON text, integers of every size kept: PostgreSQL's, whose JSONB output carries no lead.
loads_json_exact = json.loads
