"""Async token buckets, shared by all work on one system instance.

Work triggered by webhooks goes first: callers inside :func:`priority` jump the
queue of waiters, so a backfill never starves near-real-time changes.
"""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import heapq
import itertools
import time
from collections.abc import Iterator

_priority: contextvars.ContextVar[int] = contextvars.ContextVar("crmsync_priority", default=10)

#: Priority of webhook-triggered work (lower runs first).
URGENT = 0
#: Priority of scheduled and backfill work.
NORMAL = 10


@contextlib.contextmanager
def priority(level: int) -> Iterator[None]:
    token = _priority.set(level)
    try:
        yield
    finally:
        _priority.reset(token)


class TokenBucket:
    """``capacity`` calls per ``period`` seconds, refilled continuously.

    Waiters are served in priority order, then arrival order. ``clock`` is
    injectable for tests.
    """

    def __init__(self, capacity: int, period: float, *, clock=time.monotonic) -> None:
        if capacity <= 0 or period <= 0:
            raise ValueError("capacity and period must be positive")
        self.capacity = capacity
        self.period = period
        self._clock = clock
        self._tokens = float(capacity)
        self._updated = clock()
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._wakeup: asyncio.TimerHandle | None = None
        self.waited_seconds = 0.0

    @property
    def rate(self) -> float:
        return self.capacity / self.period

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    @property
    def available(self) -> float:
        self._refill()
        return self._tokens

    async def acquire(self) -> None:
        self._refill()
        if not self._waiters and self._tokens >= 1:
            self._tokens -= 1
            return
        started = self._clock()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (_priority.get(), next(self._seq), fut))
        self._schedule()
        try:
            await fut
        except asyncio.CancelledError:
            if not fut.done():
                self._waiters = [w for w in self._waiters if w[2] is not fut]
                heapq.heapify(self._waiters)
            elif not fut.cancelled():
                self._tokens += 1  # granted, then cancelled: give it back
            raise
        self.waited_seconds += self._clock() - started

    def _schedule(self) -> None:
        self._refill()
        while self._waiters and self._tokens >= 1:
            _, _, fut = heapq.heappop(self._waiters)
            if fut.done():
                continue
            self._tokens -= 1
            fut.set_result(None)
        if self._waiters and self._wakeup is None:
            delay = (1 - self._tokens) / self.rate
            self._wakeup = asyncio.get_running_loop().call_later(max(delay, 0.001), self._on_timer)

    def _on_timer(self) -> None:
        self._wakeup = None
        self._schedule()
