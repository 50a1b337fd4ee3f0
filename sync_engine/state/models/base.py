"""Declarative base shared by every state table."""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Enum, Integer, MetaData, String, inspect
from sqlalchemy.orm import DeclarativeBase, mapped_column

from ..types import JSONType, UTCDateTime, utc_now

# Deterministic constraint names: Alembic can drop and alter what it can name,
# and SQLite batch migrations rebuild tables by these names.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: 64-bit ids on PostgreSQL; SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")

# Column widths, shared so a value that fits one table fits the others.
SYSTEM_LEN = 64
ENTITY_LEN = 64
OBJECT_LEN = 128
EXTERNAL_ID_LEN = 255
CANONICAL_ID_LEN = 64
KEY_LEN = 255
#: a record version's content hash (``pull.version_hash``: 16 bytes, hex)
VERSION_HASH_LEN = 32


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSONType,
        list[Any]: JSONType,
    }

    def __repr__(self) -> str:
        # Primary key only: rows can hold secrets (channel tokens) and customer
        # data that must not end up in logs through a stray repr().
        state = inspect(self)
        key = state.identity if state.identity is not None else "transient"
        return f"<{type(self).__name__} {key}>"


def enum_type(enum_cls: type[StrEnum], name: str) -> Enum:
    """A string column restricted to the enum's values by a CHECK constraint."""
    return Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


def created_at_column():
    return mapped_column(UTCDateTime(), default=utc_now, nullable=False)


def updated_at_column():
    return mapped_column(UTCDateTime(), default=utc_now, onupdate=utc_now, nullable=False)


def system_column(nullable: bool = False):
    return mapped_column(String(SYSTEM_LEN), nullable=nullable)
