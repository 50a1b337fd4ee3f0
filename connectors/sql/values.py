"""Database values in JSON (resume tokens) and in content hashes.

A resume token must give back *exactly* the value the database returned (a naive
datetime stays naive, a Decimal stays a Decimal) or the keyset comparison on
resume would shift; so non-JSON types are tagged rather than stringified.
"""
from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

_TAGS = {"$dt": datetime.fromisoformat, "$d": date.fromisoformat, "$t": time.fromisoformat, "$dec": Decimal,
         "$uuid": UUID, "$b": base64.b64decode}


def to_json(value: Any) -> Any:
    """A JSON-safe, reversible form of one database value."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, date):
        return {"$d": value.isoformat()}
    if isinstance(value, time):
        return {"$t": value.isoformat()}
    if isinstance(value, Decimal):
        return {"$dec": str(value)}
    if isinstance(value, UUID):
        return {"$uuid": str(value)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$b": base64.b64encode(bytes(value)).decode("ascii")}
    raise TypeError(f"cannot keep a {type(value).__name__} in a resume token")


def from_json(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        (tag, text), = value.items()
        if tag in _TAGS:
            return _TAGS[tag](text)
    return value


def _hash_default(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


def content_hash(data: Mapping[str, Any]) -> str:
    """SHA-256 of the row's values; key order does not matter, lines (lists) do."""
    text = json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=_hash_default)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
