"""Async rate limiters (token buckets, sliding windows), shared by all work on one system instance.

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
from collections import deque
from collections.abc import Iterator

_priority: contextvars.ContextVar[int] = contextvars.ContextVar("crmsync_priority", default=10)

#: Arrival order across every limiter (a limiter handing its waiters over keeps their places).
_arrivals = itertools.count()

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


class _PriorityGate:
    """Waiters served in priority order, then arrival order, whenever the rule admits a call.

    Subclasses say whether a call may go now (``_take``) and how long until one may (``_delay``)."""

    def __init__(self, *, clock=time.monotonic) -> None:
        self._clock = clock
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._wakeup: asyncio.TimerHandle | None = None
        self.waited_seconds = 0.0

    def _take(self) -> bool:
        raise NotImplementedError

    def _give_back(self) -> None:
        raise NotImplementedError

    def _delay(self) -> float:
        raise NotImplementedError

    async def acquire(self) -> None:
        if not self._waiters and self._take():
            return
        started = self._clock()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (_priority.get(), next(_arrivals), fut))
        self._schedule()
        try:
            await fut
        except asyncio.CancelledError:
            if not fut.done():
                self._waiters = [w for w in self._waiters if w[2] is not fut]
                heapq.heapify(self._waiters)
            elif not fut.cancelled():
                self._give_back()  # granted, then cancelled
            raise
        self.waited_seconds += self._clock() - started

    def _schedule(self) -> None:
        while self._waiters:
            if self._waiters[0][2].done():
                heapq.heappop(self._waiters)
                continue
            if not self._take():
                break
            _, _, fut = heapq.heappop(self._waiters)
            fut.set_result(None)
        if self._waiters and self._wakeup is None:
            self._wakeup = asyncio.get_running_loop().call_later(max(self._delay(), 0.001), self._on_timer)

    def _on_timer(self) -> None:
        self._wakeup = None
        self._schedule()

    def hand_over(self, successor: _PriorityGate) -> None:
        """Move the callers waiting here to ``successor`` (their order kept), which admits them from now on."""
        if self._wakeup is not None:
            self._wakeup.cancel()
            self._wakeup = None
        successor._waiters.extend(self._waiters)
        heapq.heapify(successor._waiters)
        self._waiters = []
        successor.waited_seconds += self.waited_seconds
        if successor._waiters:
            successor._schedule()


class TokenBucket(_PriorityGate):
    """``capacity`` calls per ``period`` seconds, refilled continuously.

    Waiters are served in priority order, then arrival order. ``clock`` is
    injectable for tests.
    """

    def __init__(self, capacity: int, period: float, *, clock=time.monotonic) -> None:
        if capacity <= 0 or period <= 0:
            raise ValueError("capacity and period must be positive")
        super().__init__(clock=clock)
        self.capacity = capacity
        self.period = period
        self._tokens = float(capacity)
        self._updated = clock()

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

    def drain(self) -> None:
        """No call may go until the bucket has refilled by one (after a throttle answer)."""
        self._refill()
        self._tokens = min(self._tokens, 0.0)

    def _take(self) -> bool:
        self._refill()
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def _give_back(self) -> None:
        self._tokens += 1

    def _delay(self) -> float:
        return (1 - self._tokens) / self.rate


class SlidingWindow(_PriorityGate):
    """At most ``limit`` calls in any ``period`` seconds, as a gateway that counts a window does.

    Unlike a token bucket sized to stay inside every window (which must trade its burst for its
    sustained rate), this remembers when its last ``limit`` calls went out and lets the next one go
    as soon as the oldest of them is ``period`` seconds old: the whole limit, at once if need be,
    and the whole limit again every period.
    """

    def __init__(self, limit: int, period: float, *, clock=time.monotonic) -> None:
        if limit <= 0 or period <= 0:
            raise ValueError("limit and period must be positive")
        super().__init__(clock=clock)
        self.capacity = limit
        self.period = period
        self._sent: deque[float] = deque()

    @property
    def rate(self) -> float:
        return self.capacity / self.period

    def _expire(self) -> float:
        now = self._clock()
        while self._sent and self._sent[0] <= now - self.period:
            self._sent.popleft()
        return now

    @property
    def available(self) -> float:
        self._expire()
        return float(self.capacity - len(self._sent))

    def _take(self) -> bool:
        now = self._expire()
        if len(self._sent) < self.capacity:
            self._sent.append(now)
            return True
        return False

    def _give_back(self) -> None:
        if self._sent:
            self._sent.pop()

    def _delay(self) -> float:
        self._expire()
        return self._sent[0] + self.period - self._clock() if self._sent else 0.0
