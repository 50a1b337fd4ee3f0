"""Row keys: one external id per row, and the SQL conditions that select or page by key.

Conditions are spelled as plain AND/OR rather than row values (``(a, b) > (x, y)``)
because SQL Server and Oracle have no row-value comparison; the redundant
``first >= x`` term keeps an index range scan for databases that need the hint.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import Column, and_, or_
from sqlalchemy.sql.elements import ColumnElement

#: Bound parameters per IN list: below Oracle's 1,000-item and SQL Server's 2,100-parameter limits.
MAX_PARAMS = 500


class BadKey(ValueError):
    """A key value crmsync cannot use (missing, or containing the separator)."""


class KeyCodec:
    def __init__(self, columns: Sequence[Column], separator: str) -> None:
        self.columns = list(columns)
        self.separator = separator

    @property
    def composite(self) -> bool:
        return len(self.columns) > 1

    def encode(self, values: Sequence[Any]) -> str:
        parts = []
        for column, value in zip(self.columns, values, strict=True):
            if value is None or (isinstance(value, str) and not value.strip()):
                raise BadKey(f"key column {column.name!r} is empty")
            text = str(value)
            if self.composite and self.separator in text:
                raise BadKey(f"key column {column.name!r} value {text!r} contains the key separator {self.separator!r}")
            parts.append(text)
        return self.separator.join(parts)

    def decode(self, external_id: str) -> tuple[Any, ...]:
        parts = external_id.split(self.separator) if self.composite else [external_id]
        if len(parts) != len(self.columns):
            raise BadKey(f"id {external_id!r} does not have {len(self.columns)} parts separated by {self.separator!r}")
        return tuple(_coerce(column, part) for column, part in zip(self.columns, parts, strict=True))

    def row_key(self, row: Any) -> tuple[Any, ...]:
        return tuple(row[c.name] for c in self.columns)

    def equals(self, values: Sequence[Any], columns: Sequence[Column] | None = None) -> ColumnElement[bool]:
        cols = columns or self.columns
        return and_(*(c == v for c, v in zip(cols, values, strict=True)))

    def matches(self, keys: Sequence[Sequence[Any]], columns: Sequence[Column] | None = None) -> ColumnElement[bool]:
        """Rows whose key is one of ``keys`` (keep ``len(keys)`` within :func:`chunks`)."""
        cols = columns or self.columns
        if len(cols) == 1:
            return cols[0].in_([k[0] for k in keys])
        return or_(*(self.equals(k, cols) for k in keys))

    def chunks(self, keys: Sequence[Sequence[Any]]) -> Iterator[Sequence[Sequence[Any]]]:
        size = max(1, MAX_PARAMS // len(self.columns))
        for start in range(0, len(keys), size):
            yield keys[start : start + size]

    def after(self, values: Sequence[Any]) -> ColumnElement[bool]:
        """Rows whose key sorts after ``values`` (lexicographic over the key columns)."""
        terms = []
        for i, column in enumerate(self.columns):
            prefix = [self.columns[j] == values[j] for j in range(i)]
            terms.append(and_(*prefix, column > values[i]))
        return or_(*terms)


def _coerce(column: Column, text: str) -> Any:
    """Give an id part the key column's Python type, so the database compares like with like."""
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        return text
    if python_type is int:
        try:
            return int(text)
        except ValueError:
            raise BadKey(f"id part {text!r} is not a number, but key column {column.name!r} is") from None
    if python_type is Decimal:
        return Decimal(text)
    if python_type is float:
        return float(text)
    return text
