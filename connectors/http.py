"""Shared HTTP plumbing for the API connectors: timing, counting and retrying calls.

Each connector decides *what* is retryable for its system (Fxiaoke answers every
error with HTTP 200, Zoho uses 429/5xx); this module only provides the mechanics:
an instrumented ``httpx.AsyncClient`` with a concurrency cap, and a tenacity
policy that honours ``Retry-After`` and caps the total wait.
"""
from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
)

from . import jsontext
from .base import CallObserver, NullObserver
from .errors import RateLimited, TransientError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, capped, for transient failures."""

    attempts: int = 6
    base_seconds: float = 0.5
    cap_seconds: float = 30.0
    total_seconds: float = 300.0
    #: Retry-After values above this are not waited out inline: the job is rescheduled instead.
    max_retry_after: float = 120.0

    def wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return min(float(retry_after), self.max_retry_after)
        ceiling = min(self.cap_seconds, self.base_seconds * (2 ** (state.attempt_number - 1)))
        return random.uniform(ceiling / 2, ceiling)


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, TransientError) and not (
        isinstance(exc, RateLimited) and exc.retry_after is not None and exc.retry_after > 120
    )


#: Set by :func:`single_attempt`: calls made meanwhile are not replayed after a transient failure.
_SINGLE_ATTEMPT: ContextVar[bool] = ContextVar("crmsync_single_attempt", default=False)


@contextlib.contextmanager
def single_attempt() -> Iterator[None]:
    """Calls made inside are tried once: a transient failure goes back to the caller at once.

    For writes that are only right at the moment they were checked (an update sent right after
    reading the target again): a retry seconds later, after a backoff, could overwrite what a user
    wrote meanwhile. The caller decides again (reads again) before it sends once more."""
    token = _SINGLE_ATTEMPT.set(True)
    try:
        yield
    finally:
        _SINGLE_ATTEMPT.reset(token)


@contextlib.contextmanager
def retried() -> Iterator[None]:
    """Undoes :func:`single_attempt` for the calls made inside: for reads made on the way to a write
    (the check right before an update), which overwrite nothing when replayed."""
    token = _SINGLE_ATTEMPT.set(False)
    try:
        yield
    finally:
        _SINGLE_ATTEMPT.reset(token)


async def with_retries(fn: Callable[[], Awaitable[T]], policy: RetryPolicy, *, always: bool = False) -> T:
    """Run ``fn`` until it succeeds, raises a non-transient error, or the policy gives up.

    The last :class:`TransientError` is re-raised as is, so callers see a typed failure. Inside
    :func:`single_attempt` ``fn`` runs once, unless ``always`` (a token or login request: it writes
    no data, replaying it overwrites nothing).
    """
    if _SINGLE_ATTEMPT.get() and not always:
        return await fn()
    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.attempts) | stop_after_delay(policy.total_seconds),
        wait=policy.wait,
        retry=retry_if_exception(_is_retryable),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await fn()
    raise AssertionError("unreachable")  # pragma: no cover


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        # A JSON number when a double carries it exactly (amounts up to 15 significant
        # digits); beyond that, text, rather than silently rounding money.
        if value.is_finite() and len(value.as_tuple().digits) <= 15:
            return float(value)
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps_json(value: Any) -> bytes:
    """JSON as the CRMs expect it: UTF-8 (Chinese kept as is), Decimal and dates handled."""
    return jsontext.dumps(value, _json_default)


class CallStats:
    """Counts calls by endpoint and status, and keeps an hour of history for ``/status``."""

    def __init__(self) -> None:
        self.by_endpoint: Counter[tuple[str, str]] = Counter()
        self._recent: deque[tuple[float, bool]] = deque()

    def record(self, endpoint: str, status: str, ok: bool) -> None:
        self.by_endpoint[(endpoint, status)] += 1
        now = time.monotonic()
        self._recent.append((now, ok))
        while self._recent and self._recent[0][0] < now - 3600:
            self._recent.popleft()

    @property
    def total(self) -> int:
        return sum(self.by_endpoint.values())

    def last_hour(self) -> dict[str, int]:
        now = time.monotonic()
        recent = [ok for ts, ok in self._recent if ts >= now - 3600]
        return {"calls": len(recent), "errors": sum(1 for ok in recent if not ok)}


#: How long an idle pooled connection is reused. httpx's default (5 s) equals the keep-alive timeout of
#: uvicorn, Apache and Node servers: a connection idle just under 5 s was taken from the pool, and if the
#: event loop then spent a moment on other work (a reconcile batch), the server closed it as the request
#: went out: a ReadError, and for a create an outcome unknown (in doubt until recovery looks for it; seen
#: in bench/initial_sync.py: 100 accounts in doubt in 6 runs of 11 on a slow day). Well under 5 s leaves
#: a margin; a new connection costs a handshake on loopback or a few on a WAN.
KEEPALIVE_EXPIRY_SECONDS = 2.0


class ApiClient:
    """An ``httpx.AsyncClient`` that caps concurrency and times and counts every call.

    ``transport`` lets tests plug in respx or an in-process ASGI app.
    """

    def __init__(
        self,
        system: str,
        *,
        base_url: str = "",
        timeout: float = 30.0,
        concurrency: int = 10,
        observer: CallObserver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.system = system
        self.observer = observer or NullObserver()
        self.stats = CallStats()
        self._semaphore = asyncio.Semaphore(concurrency)
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            transport=transport,
            headers=headers,
            limits=httpx.Limits(max_connections=max(concurrency, 1) * 2, max_keepalive_connections=max(concurrency, 1),
                                keepalive_expiry=KEEPALIVE_EXPIRY_SECONDS),
        )

    @property
    def cookies(self) -> httpx.Cookies:
        return self._client.cookies

    async def request(self, method: str, url: str, *, endpoint: str, **kwargs: Any) -> httpx.Response:
        """One attempt. Transport failures become :class:`TransientError`; HTTP statuses are the caller's to judge."""
        if "json" in kwargs:
            # httpx's own encoder refuses Decimal; ours keeps amounts exact.
            body = kwargs.pop("json")
            headers = dict(kwargs.pop("headers", None) or {})
            headers.setdefault("Content-Type", "application/json; charset=utf-8")
            kwargs["content"] = dumps_json(body)
            kwargs["headers"] = headers
        started = time.perf_counter()
        status = "error"
        try:
            async with self._semaphore:
                response = await self._client.request(method, url, **kwargs)
            status = str(response.status_code)
            return response
        except httpx.TimeoutException as exc:
            status = "timeout"
            raise TransientError(f"timed out calling {endpoint}", code="timeout", system=self.system) from exc
        except httpx.TransportError as exc:
            status = "connection_error"
            raise TransientError(
                f"could not reach {endpoint}: {type(exc).__name__}", code="connection_error", system=self.system
            ) from exc
        finally:
            seconds = time.perf_counter() - started
            self.stats.record(endpoint, status, ok=status.startswith("2"))
            self.observer.on_call(self.system, endpoint, status, seconds)

    async def aclose(self) -> None:
        await self._client.aclose()
