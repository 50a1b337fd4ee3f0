"""Writing ExecuteBillQuery ``FilterString`` / ``OrderString`` safely.

Nearly all real clients pass a SQL-like string (``FNumber = 'C001' and
FModifyDate >= '2024-01-01 00:00:00'``) rather than the documented array form,
so crmsync does too. Values are always quoted here, never pasted raw: a
customer number containing a quote must not break (or widen) the filter.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Literal

from .localtime import literal as datetime_text


def quote(value: object) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def number(value: object) -> str:
    """An integer id literal; anything else is refused (ids come from the ERP itself)."""
    text = str(value).strip()
    if not text.lstrip("-").isdigit():
        raise ValueError(f"not an integer id: {value!r}")
    return text


def datetime_literal(value: datetime, style: Literal["quoted", "odbc"]) -> str:
    text = datetime_text(value)
    return "{ts'" + text + "'}" if style == "odbc" else quote(text)


def at_or_after(field: str, local: datetime, style: Literal["quoted", "odbc"]) -> str:
    return f"{field} >= {datetime_literal(local, style)}"


def in_list(field: str, values: Sequence[object], *, numeric: bool = False) -> str:
    rendered = ",".join(number(v) if numeric else quote(v) for v in values)
    return f"{field} IN ({rendered})"


def equals(field: str, value: object) -> str:
    return f"{field} = {quote(value)}"


def all_of(parts: Iterable[str | None]) -> str:
    kept = [p.strip() for p in parts if p and p.strip()]
    if len(kept) <= 1:
        return kept[0] if kept else ""
    return " and ".join(f"({p})" for p in kept)


def any_of(parts: Iterable[str]) -> str:
    kept = [p for p in parts if p]
    if len(kept) <= 1:
        return kept[0] if kept else ""
    return " or ".join(f"({p})" for p in kept)


def order_by(*fields: str) -> str:
    return ",".join(f"{f} ASC" for f in fields)
