"""Fxiaoke records as :class:`SourceRecord`: values stay exactly as the API sent them
(owner lists, numbers as strings, epoch-ms dates, option values) — the mapping layer
converts them; only the id, the modified time and the tombstone flag are read here."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..base import SourceRecord
from .settings import TombstoneSettings

#: Fields every pull asks for even under a field projection: paging and tombstones need them.
SYSTEM_FIELDS = ("_id", "last_modified_time", "life_status", "is_deleted")


def modified_ms(row: dict[str, Any]) -> int:
    value = row.get("last_modified_time")
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def ms_to_datetime(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def datetime_to_ms(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def is_tombstone(row: dict[str, Any], tombstones: TombstoneSettings) -> bool:
    if tombstones.mode == "off":
        return False
    if row.get("life_status") in tombstones.life_status_values:
        return True
    deleted = row.get("is_deleted")
    return bool(tombstones.honour_is_deleted and (deleted is True or deleted in ("true", "1", 1)))


def to_source_record(object_name: str, row: dict[str, Any], tombstones: TombstoneSettings) -> SourceRecord:
    return SourceRecord(
        object=object_name,
        external_id=str(row.get("_id", "")),
        modified_at=ms_to_datetime(row.get("last_modified_time")),
        data=row,
        deleted=is_tombstone(row, tombstones),
    )


def projection(fields: tuple[str, ...] | list[str]) -> list[str] | None:
    if not fields:
        return None
    wanted = list(dict.fromkeys([*SYSTEM_FIELDS, *fields]))
    return wanted
