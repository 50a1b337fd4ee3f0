"""One Fxiaoke tenant's OpenAPI, call by call.

Every call: a fresh UUID4 ``thirdTraceId`` in the query string, the credentials
of the configured auth style, a token from the interface's rate-limit bucket,
and a verdict from the body's ``errorCode`` (the HTTP status is 200 for errors
too). Retryable codes and transport failures are retried with jittered
backoff; a refused token is replaced once and the call repeated; 30002 pauses
the whole system until 00:00 Beijing time.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from .. import jsontext
from ..base import CallObserver
from ..errors import (
    AuthError,
    ConnectorConfigError,
    ConnectorError,
    QuotaExhausted,
    RateLimited,
    RecordRejected,
    TransientError,
)
from ..http import ApiClient, RetryPolicy, with_retries
from . import codes
from .auth import Token, TokenManager
from .limits import DailyQuota, EndpointLimiter
from .settings import FxiaokeSettings

log = logging.getLogger("crmsync.connectors.fxiaoke")


def utc_now() -> datetime:
    return datetime.now(UTC)


class Withdrawn(Exception):
    """A call its ``before_send`` stopped at the last moment: nothing was sent."""


class FxiaokeClient:
    def __init__(
        self,
        settings: FxiaokeSettings,
        *,
        system: str,
        observer: CallObserver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        wall_clock: Callable[[], datetime] = utc_now,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.system = system
        self._wall_clock = wall_clock
        self.api = ApiClient(
            system,
            base_url=settings.host,
            timeout=settings.timeout_seconds,
            concurrency=settings.concurrency,
            observer=observer,
            transport=transport,
            headers={"accept": "application/json"},
        )
        self.limiter = EndpointLimiter(
            settings.limit_for,
            settings.rate_limit_period_seconds,
            burst=settings.rate_limit_burst,
            headroom=settings.rate_limit_headroom,
            mode=settings.rate_limit_mode,
            clock=clock,
        )
        self.quota = DailyQuota(settings.daily_quota, now=wall_clock)
        self.tokens = TokenManager(settings, self._post_token, system=system, clock=clock)
        self.retry_policy = RetryPolicy(
            attempts=settings.retry_attempts,
            base_seconds=settings.retry_base_seconds,
            cap_seconds=settings.retry_cap_seconds,
        )
        self.answers_by_code: Counter[int] = Counter()
        self.last_error: dict[str, Any] | None = None

    async def aclose(self) -> None:
        await self.api.aclose()

    # -- calls -----------------------------------------------------------------------
    async def call(
        self, path: str, data: dict[str, Any] | None = None, *,
        before_send: Callable[[], Awaitable[bool]] | None = None, **top: Any,
    ) -> dict[str, Any]:
        """POST ``{"data": data, **top}`` to ``path``; the whole answer when errorCode is 0.

        ``before_send`` is awaited once the call holds its rate-limit permit and a token, right before it
        goes out; False: it does not go out, :class:`Withdrawn` is raised."""
        payload: dict[str, Any] = dict(top)
        if data is not None:
            payload["data"] = data
        return await with_retries(lambda: self._call_once(path, payload, before_send), self.retry_policy)

    async def _call_once(
        self, path: str, payload: dict[str, Any], before_send: Callable[[], Awaitable[bool]] | None = None,
    ) -> dict[str, Any]:
        refreshed = False
        while True:
            self._refuse_while_paused()
            await self.limiter.acquire(path)
            token = await self.tokens.token()
            if before_send is not None and not await before_send():
                raise Withdrawn(path)
            body = dict(payload)
            headers: dict[str, str] = {}
            self.tokens.apply(token, body, headers)
            self.quota.count_call()
            answer = await self._post(path, body, headers)
            code = self._code_of(answer, path)
            outcome = codes.classify(code, extra_retryable=self.settings.extra_retryable_codes)
            if outcome is codes.Outcome.OK:
                return answer
            message = self._message_of(answer)
            self._note_error(path, code, message)
            if code in codes.THROTTLED:
                self.limiter.throttled(path)
            if outcome is codes.Outcome.REFRESH_TOKEN and not refreshed:
                refreshed = True
                await self._replace_token(token)
                continue
            raise self._error_for(outcome, code, message, path)

    async def _replace_token(self, refused: Token) -> None:
        await self.tokens.replace(refused)

    def _error_for(self, outcome: codes.Outcome, code: int, message: str, path: str) -> ConnectorError:
        text = f"{path}: {message}"
        if outcome is codes.Outcome.RETRY:
            if code in codes.THROTTLED:
                return RateLimited(f"throttled on {text}", code=str(code), system=self.system)
            return TransientError(text, code=str(code), system=self.system)
        if outcome is codes.Outcome.REFRESH_TOKEN:
            return AuthError(f"token refused again after a refresh on {text}", code=str(code), system=self.system)
        if outcome is codes.Outcome.QUOTA:
            until = self.quota.pause(f"{code}: {message}")
            log.warning("%s: daily OpenAPI quota exhausted; paused until %s", self.system, until.isoformat())
            return QuotaExhausted(f"daily quota exhausted ({message})", until=until, code=str(code), system=self.system)
        if outcome is codes.Outcome.ACCESS:
            return AuthError(f"no API access: {text}", code=str(code), system=self.system)
        return RecordRejected(message, code=str(code), system=self.system)

    def _refuse_while_paused(self) -> None:
        until = self.quota.active_pause()
        if until is not None:
            raise QuotaExhausted(
                f"paused until {until.isoformat()} ({self.quota.pause_reason})",
                until=until,
                code="30002",
                system=self.system,
            )

    # -- HTTP ------------------------------------------------------------------------
    async def _post_token(self, path: str, body: dict[str, Any], trace_id: str) -> dict[str, Any]:
        return await self._post(path, body, {}, trace_id=trace_id)

    async def _post(
        self, path: str, body: dict[str, Any], headers: dict[str, str], *, trace_id: str | None = None
    ) -> dict[str, Any]:
        response = await self.api.request(
            "POST",
            path,
            endpoint=path,
            params={"thirdTraceId": trace_id or str(uuid.uuid4())},
            content=jsontext.dumps(body),
            headers={**headers, "content-type": "application/json; charset=utf-8"},
        )
        return self._decode(response, path)

    def _decode(self, response: httpx.Response, path: str) -> dict[str, Any]:
        status = response.status_code
        if status in (301, 302, 303, 307, 308):
            raise ConnectorConfigError(
                f"{self.settings.host} redirects {path}: it is not the OpenAPI gateway (use open.fxiaoke.com or "
                "your cloud's open-… host)",
                code=str(status),
                system=self.system,
            )
        if status == 429:
            retry_after = _float_or_none(response.headers.get("retry-after"))
            raise RateLimited(f"HTTP 429 from {path}", retry_after=retry_after, code="429", system=self.system)
        if status >= 500:
            raise TransientError(f"HTTP {status} from {path}", code=str(status), system=self.system)
        if status == 404:
            raise ConnectorConfigError(f"{path} not found on {self.settings.host}", code="404", system=self.system)
        if status != 200:
            raise ConnectorError(f"HTTP {status} from {path}", code=str(status), system=self.system)
        try:
            answer = response.json()
        except ValueError:
            kind = response.headers.get("content-type", "")
            if "html" in kind:
                raise ConnectorConfigError(
                    f"{self.settings.host} answered HTML on {path}: not the OpenAPI gateway",
                    code="not_json",
                    system=self.system,
                ) from None
            raise TransientError(f"unreadable answer from {path}", code="not_json", system=self.system) from None
        if not isinstance(answer, dict):
            raise TransientError(f"unexpected answer shape from {path}", code="bad_answer", system=self.system)
        return answer

    def _code_of(self, answer: dict[str, Any], path: str) -> int:
        code = codes.parse_code(answer.get("errorCode"))
        if code is None:
            raise TransientError(f"answer from {path} has no errorCode", code="bad_answer", system=self.system)
        self.answers_by_code[code] += 1
        return code

    @staticmethod
    def _message_of(answer: dict[str, Any]) -> str:
        for key in ("errorMessage", "errorDescription", "error_description", "error"):
            value = answer.get(key)
            if value:
                return str(value)
        return "no message"

    def _note_error(self, path: str, code: int, message: str) -> None:
        self.last_error = {"path": path, "code": code, "message": message, "at": self._wall_clock().isoformat()}

    # -- ops -------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        last_hour = self.api.stats.last_hour()
        return {
            "host": self.settings.host,
            "auth": self.tokens.status(),
            "http_calls": self.api.stats.total,
            "http_calls_last_hour": last_hour["calls"],
            "http_errors_last_hour": last_hour["errors"],
            "answers_by_error_code": {str(code): n for code, n in sorted(self.answers_by_code.items())},
            "throttled_answers": sum(self.answers_by_code[c] for c in codes.THROTTLED),
            "last_error": self.last_error,
            "daily_quota": self.quota.snapshot(),
            "rate_limits": self.limiter.snapshot(),
        }


def _float_or_none(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
