"""ERP local time <-> aware UTC.

K/3 Cloud stores and returns ``FModifyDate`` as a naive local timestamp
(``2024-05-01T09:30:12.347``) in the server's time zone, and filters compare
against naive literals. The connector converts at its edge, so everything
above it sees aware UTC.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_FORMATS = ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S",
            "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d")


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Asia/Shanghai)") from None


def parse_local(value: str) -> datetime:
    """Parse an ERP timestamp string into a naive local datetime. Raises ValueError."""
    text = value.strip()
    try:
        # Fast path (query results are ISO without offset); pages of thousands of rows go through here.
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            return parsed
    except ValueError:
        pass
    # .NET writes up to 7 fractional digits; strptime takes at most 6.
    if "." in text:
        head, _, frac = text.partition(".")
        digits = "".join(ch for ch in frac if ch.isdigit())
        text = f"{head}.{digits[:6]}" if digits else head
    for fmt in _FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise ValueError(f"not an ERP date/time: {value!r}")


def local_to_utc(value: datetime, tz: ZoneInfo) -> datetime:
    if value.tzinfo is not None:
        return value.astimezone(UTC)
    return value.replace(tzinfo=tz).astimezone(UTC)


def utc_to_local(value: datetime, tz: ZoneInfo) -> datetime:
    """Aware (or naive-UTC) datetime -> naive ERP local datetime."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(tz).replace(tzinfo=None)


def floor_second(value: datetime) -> datetime:
    return value.replace(microsecond=0)


def literal(value: datetime) -> str:
    """The naive literal filters compare against, to the second."""
    return value.strftime("%Y-%m-%d %H:%M:%S")


def wire(value: datetime) -> str:
    """How the server writes a datetime in query results: ISO, milliseconds only when non-zero."""
    base = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        return f"{base}.{value.microsecond // 1000:03d}"
    return base


def second_of(value: str | None) -> str | None:
    """The second a wire timestamp falls in, as a filter literal (None stays None)."""
    if value is None or value == "":
        return None
    return literal(floor_second(parse_local(value)))


def minus_seconds(value: datetime, seconds: float) -> datetime:
    return value - timedelta(seconds=seconds)
