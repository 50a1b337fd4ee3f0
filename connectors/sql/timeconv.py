"""ERP time ↔ UTC.

ERP databases mostly keep modified times as naive wall-clock time of the ERP
server (China time for a K3 WISE or U8 on site), sometimes as text or epoch
numbers. crmsync works in aware UTC; this module is the one place that knows how
to go between the two, so a watermark taken from a record converts back to a
bound the database compares correctly.
"""
from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Column, DateTime


def is_aware_column(column: Column | None) -> bool:
    return column is not None and isinstance(column.type, DateTime) and bool(column.type.timezone)


class ErpClock:
    """Converts one object's stored times. ``fmt``: None (native date/time), epoch_s, epoch_ms or a strftime pattern."""

    def __init__(self, zone: str, fmt: str | None = None) -> None:
        self.zone = ZoneInfo(zone)
        self.fmt = fmt

    # -- database → crmsync ----------------------------------------------
    def to_utc(self, value: Any) -> datetime | None:
        """A stored modified time as aware UTC (None stays None)."""
        if value is None:
            return None
        if self.fmt in ("epoch_s", "epoch_ms") and isinstance(value, int | float | Decimal | str):
            seconds = float(value) / (1000 if self.fmt == "epoch_ms" else 1)
            return datetime.fromtimestamp(seconds, UTC)
        if isinstance(value, str):
            value = datetime.strptime(value.strip(), self.fmt) if self.fmt else datetime.fromisoformat(value.strip())
        elif isinstance(value, date) and not isinstance(value, datetime):
            value = datetime.combine(value, time())
        if not isinstance(value, datetime):
            raise TypeError(f"cannot read {value!r} as a time")
        if value.tzinfo is None:
            value = value.replace(tzinfo=self.zone)
        return value.astimezone(UTC)

    def localize(self, value: Any) -> Any:
        """A naive date-time field value made unambiguous (aware, ERP zone); other values unchanged."""
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=self.zone)
        return value

    # -- crmsync → database ----------------------------------------------
    def to_db(self, moment: datetime, column: Column | None = None) -> Any:
        """An aware time as the column stores it. Naive input is taken as UTC (crmsync's convention)."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        if self.fmt == "epoch_s":
            return int(moment.timestamp())  # floor keeps an inclusive bound inclusive
        if self.fmt == "epoch_ms":
            return int(moment.timestamp() * 1000)
        if is_aware_column(column):
            return moment.astimezone(UTC)
        local = moment.astimezone(self.zone).replace(tzinfo=None)
        return local.strftime(self.fmt) if self.fmt else local

    def now_db(self, column: Column | None = None) -> Any:
        """The current time for a column crmsync fills (staged_at, read-back time)."""
        now = datetime.now(UTC)
        if is_aware_column(column):
            return now
        return now.astimezone(self.zone).replace(tzinfo=None, microsecond=0)
