"""Fxiaoke's limits as the client enforces them: per-interface windows and the daily quota.

The gateway allows N calls per interface per 20 s, but how it counts is not documented (its
30004 answer reads "秒频次超限", per-second frequency). Two ways to stay inside, per interface:

* ``window`` (default): a sliding window of the last calls, N less a little headroom in any
  20 s (stretched by the same headroom for network jitter between our clock and the
  gateway's). The whole limit is usable: 97 pages of a first sync go out at once, not at
  4.6 a second. If the gateway answers 30004/14001 anyway, it counts more finely than that,
  and the interface falls back to ``paced`` for the connector's lifetime.
* ``paced``: a token bucket sized so that ``burst + rate × period`` stays within the limit
  less the headroom (a bucket refilled at N/20 s would allow N at once *plus* N more during
  the next 20 s). A steady 4.6 calls a second after a burst of 5.

One limiter per connector instance: a backfill and webhook-triggered work share it.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from ..ratelimit import SlidingWindow, TokenBucket

BEIJING = ZoneInfo("Asia/Shanghai")
log = logging.getLogger(__name__)


def window_safe_bucket(limit: int, period: float, *, burst: int, headroom: float, clock=time.monotonic) -> TokenBucket:
    """A bucket that never lets more than ``limit × (1 - headroom)`` calls into any window of ``period`` s."""
    budget = max(1.0, limit * (1 - headroom))
    burst = max(1, min(burst, int(budget) - 1)) if budget >= 2 else 1
    rate = max(budget - burst, 0.5) / period
    return TokenBucket(burst, burst / rate, clock=clock)


def window_limit(limit: int, period: float, *, headroom: float, clock=time.monotonic) -> SlidingWindow:
    """At most ``limit × (1 - headroom)`` calls in any ``period × (1 + headroom)`` s of our clock: the
    gateway, which counts arrivals, then sees no more than the limit in its window as long as the
    network's jitter stays under ``period × headroom`` (0.6 s by default)."""
    return SlidingWindow(max(1, int(limit * (1 - headroom))), period * (1 + headroom), clock=clock)


class EndpointLimiter:
    """One limiter per API path, created on first use (see the module's docstring for the modes)."""

    def __init__(
        self,
        limit_for: Callable[[str], int],
        period: float,
        *,
        burst: int,
        headroom: float,
        mode: str = "window",
        clock=time.monotonic,
    ) -> None:
        if mode not in ("window", "paced"):
            raise ValueError(f"unknown rate-limit mode {mode!r}")
        self._limit_for = limit_for
        self._period = period
        self._burst = burst
        self._headroom = headroom
        self._mode = mode
        self._clock = clock
        self._buckets: dict[str, TokenBucket | SlidingWindow] = {}
        self._paced_after_throttle: set[str] = set()

    def mode(self, path: str) -> str:
        return "paced" if self._mode == "paced" or path in self._paced_after_throttle else "window"

    def bucket(self, path: str) -> TokenBucket | SlidingWindow:
        bucket = self._buckets.get(path)
        if bucket is None:
            if self.mode(path) == "window":
                bucket = window_limit(self._limit_for(path), self._period, headroom=self._headroom, clock=self._clock)
            else:
                bucket = window_safe_bucket(
                    self._limit_for(path), self._period, burst=self._burst, headroom=self._headroom, clock=self._clock
                )
            self._buckets[path] = bucket
        return bucket

    async def acquire(self, path: str) -> None:
        await self.bucket(path).acquire()

    def throttled(self, path: str) -> bool:
        """The gateway refused a call on ``path`` for its rate. In window mode that means it counts
        more finely than a 20 s window: the path is paced from now on (its bucket starts empty, so
        the calls already admitted are the burst). True when this answer changed the mode."""
        if self.mode(path) == "paced":
            return False
        self._paced_after_throttle.add(path)
        old = self._buckets.pop(path, None)
        paced = self.bucket(path)
        if isinstance(paced, TokenBucket):
            paced.drain()
        if old is not None:
            old.hand_over(paced)
        log.warning("Fxiaoke throttled %s inside its documented window: pacing that interface from now on", path)
        return True

    def snapshot(self) -> dict[str, dict[str, object]]:
        return {
            path: {
                "limit": self._limit_for(path),
                "period_seconds": self._period,
                "mode": self.mode(path),
                "available_now": round(bucket.available, 2),
                "sustained_per_second": round(bucket.rate, 3),
                "waited_seconds": round(bucket.waited_seconds, 3),
            }
            for path, bucket in sorted(self._buckets.items())
        }


def next_beijing_midnight(now: datetime) -> datetime:
    """00:00 Asia/Shanghai after ``now`` (timezone-aware), returned in UTC-aware form of that zone."""
    local = now.astimezone(BEIJING)
    tomorrow = (local + timedelta(days=1)).date()
    return datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=BEIJING)


class DailyQuota:
    """Counts calls per Beijing day and holds the pause after a 30002 answer."""

    def __init__(self, quota: int | None, *, now: Callable[[], datetime]) -> None:
        self.quota = quota
        self._now = now
        self._lock = threading.Lock()
        self._day: date | None = None
        self._count = 0
        self.paused_until: datetime | None = None
        self.pause_reason: str | None = None

    def _roll(self) -> None:
        today = self._now().astimezone(BEIJING).date()
        if today != self._day:
            self._day = today
            self._count = 0

    def count_call(self) -> None:
        with self._lock:
            self._roll()
            self._count += 1

    @property
    def used_today(self) -> int:
        with self._lock:
            self._roll()
            return self._count

    def pause(self, reason: str) -> datetime:
        until = next_beijing_midnight(self._now())
        self.paused_until = until
        self.pause_reason = reason
        return until

    def active_pause(self) -> datetime | None:
        if self.paused_until is not None and self._now() >= self.paused_until:
            self.paused_until = None
            self.pause_reason = None
        return self.paused_until

    def snapshot(self) -> dict[str, object]:
        used = self.used_today
        paused = self.active_pause()
        return {
            "day": self._day.isoformat() if self._day else None,
            "used_today": used,
            "quota": self.quota,
            "remaining": max(self.quota - used, 0) if self.quota is not None else None,
            "paused_until": paused.isoformat() if paused else None,
            "pause_reason": self.pause_reason if paused else None,
        }
