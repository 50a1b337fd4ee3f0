"""Zoho date-time text: ``yyyy-MM-ddTHH:mm:ss±HH:mm`` in the API user's time zone.

Zoho keeps whole seconds, so a watermark is compared at second precision.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone


def parse_datetime(text: str | None) -> datetime | None:
    """Zoho date-time (any offset, or ``Z``) → aware UTC. ``None``/empty stays ``None``."""
    if not text:
        return None
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:  # never sent by Zoho; read it as UTC rather than local time
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def format_datetime(value: datetime, offset: timedelta | None = None) -> str:
    """Aware datetime → Zoho text with an explicit offset (UTC unless ``offset`` given)."""
    if value.tzinfo is None:
        raise ValueError("naive datetimes are ambiguous; pass an aware datetime")
    tz = timezone(offset) if offset is not None else timezone.utc
    local = value.astimezone(tz).replace(microsecond=0)
    return local.isoformat()


def floor_second(value: datetime) -> datetime:
    return value.replace(microsecond=0)


def parse_offset(text: str) -> timedelta:
    """``+05:30`` / ``-08:00`` / ``Z`` → timedelta."""
    text = text.strip()
    if text in ("Z", "z", "UTC", "+00:00", "-00:00"):
        return timedelta(0)
    if len(text) != 6 or text[0] not in "+-" or text[3] != ":":
        raise ValueError(f"{text!r} is not a UTC offset like +05:30 or -08:00")
    hours, minutes = int(text[1:3]), int(text[4:6])
    if hours > 14 or minutes >= 60:
        raise ValueError(f"{text!r} is not a UTC offset like +05:30 or -08:00")
    delta = timedelta(hours=hours, minutes=minutes)
    return -delta if text[0] == "-" else delta
