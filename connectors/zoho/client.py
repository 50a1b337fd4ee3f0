"""One Zoho CRM API call: auth header, retries, error typing, credit tracking.

Retried (tenacity, exponential backoff with jitter, ``Retry-After`` honoured):
429 ``TOO_MANY_REQUESTS``, 5xx, timeouts, connection errors, bodies mangled in
transit. Not retried: business 4xx. ``INVALID_TOKEN`` costs one token refresh and
one more try, never more. Creates are not replayed after an ambiguous failure
(5xx, read timeout): Zoho has no idempotency key, so a blind replay could create
the record twice.
"""
from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx

from connectors.base import CallObserver
from connectors.errors import AuthError, QuotaExhausted, RateLimited, TransientError
from connectors.http import ApiClient, RetryPolicy, with_retries

from .auth import TokenManager
from .errors import SYSTEM, api_error, describe_body, error_fields, json_body
from .settings import ZohoSettings

CREDITS_HEADER = "X-API-CREDITS-REMAINING"
_REFRESHABLE = {"INVALID_TOKEN", "AUTHENTICATION_FAILURE"}


@dataclass(slots=True)
class ZohoResponse:
    status: int
    payload: Any  # parsed JSON; None for 204/304
    headers: httpx.Headers

    @property
    def empty(self) -> bool:
        return self.status in (204, 304)


class _AmbiguousWrite(Exception):
    """Raised inside the retry loop to stop replays of a create whose outcome is unknown."""

    def __init__(self, cause: TransientError) -> None:
        super().__init__(cause.message)
        self.cause = cause


def retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


class ZohoClient:
    """Calls ``{api_domain}/crm/{version}/...`` for one org."""

    def __init__(
        self,
        settings: ZohoSettings,
        *,
        name: str = SYSTEM,
        observer: CallObserver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.settings = settings
        # Metrics carry the configured system name (e.g. crm_global), not just "zoho".
        self.http = ApiClient(
            name,
            timeout=settings.timeout_seconds,
            concurrency=settings.concurrency,
            observer=observer,
            transport=transport,
            headers={"Accept": "application/json", "User-Agent": "crmsync-zoho/1"},
        )
        self.policy = policy or RetryPolicy(
            attempts=settings.retry_attempts,
            base_seconds=settings.retry_base_seconds,
            cap_seconds=settings.retry_max_seconds,
            total_seconds=settings.retry_total_seconds,
        )
        self.tokens = TokenManager(settings, self.http, self.policy)
        self.credits_remaining: int | None = None
        self.credits_seen_at: float | None = None
        self.retries = 0
        self.throttled = 0
        self.paused_until: datetime | None = None

    async def aclose(self) -> None:
        await self.http.aclose()

    def url(self, path: str) -> str:
        return f"{self.tokens.api_domain}/crm/{self.settings.api_version}/{path.lstrip('/')}"

    def endpoint(self, method: str, path: str) -> str:
        return f"{method} /crm/{self.settings.api_version}/{path.lstrip('/')}"

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
        endpoint: str | None = None,
        replay_safe: bool = True,
    ) -> ZohoResponse:
        """Make the call until it succeeds or fails for good; raise a typed :mod:`connectors.errors` error."""
        label = endpoint or self.endpoint(method, path)
        refreshed = False
        attempts = 0

        async def attempt() -> ZohoResponse:
            nonlocal refreshed, attempts
            attempts += 1
            if attempts > 1:
                self.retries += 1
            while True:
                token = await self.tokens.token()
                request_headers = {"Authorization": f"Zoho-oauthtoken {token}", **(headers or {})}
                try:
                    response = await self.http.request(
                        method, self.url(path), endpoint=label, params=params, json=json, headers=request_headers
                    )
                except TransientError as exc:
                    if not replay_safe and not _surely_unsent(exc):
                        raise _AmbiguousWrite(exc) from exc
                    raise
                self._note_credits(response)
                if response.status_code == 401:
                    code, message, _ = error_fields(_safe_json(response))
                    if code in _REFRESHABLE and not refreshed:
                        refreshed = True
                        await self.tokens.refresh(stale=token)
                        continue
                    raise AuthError(
                        f"{label} was refused (HTTP 401 {code or ''}{': ' + message if message else ''}) "
                        f"even with a fresh token; check the refresh token's scopes and {self.settings.where()}",
                        code=code,
                        system=SYSTEM,
                    )
                try:
                    return self._judge(response, label)
                except TransientError as exc:
                    if not replay_safe and not isinstance(exc, RateLimited):
                        raise _AmbiguousWrite(exc) from exc
                    raise

        try:
            return await with_retries(attempt, self.policy)
        except _AmbiguousWrite as exc:
            raise TransientError(
                f"{exc.cause.message}; the write's outcome is unknown, so it was not replayed automatically",
                code=exc.cause.code,
                system=SYSTEM,
            ) from exc.cause

    def _judge(self, response: httpx.Response, label: str) -> ZohoResponse:
        status = response.status_code
        if status in (204, 304):
            return ZohoResponse(status, None, response.headers)
        if status == 429:
            self.throttled += 1
            code, message, _ = error_fields(_safe_json(response))
            if self.credits_remaining == 0:
                until = datetime.now(timezone.utc) + timedelta(seconds=self.settings.quota_pause_seconds)
                self.paused_until = until
                raise QuotaExhausted(
                    f"{label}: Zoho API credits for the rolling 24 hours are used up ({message or code})",
                    until=until,
                    code=code or "TOO_MANY_REQUESTS",
                    system=SYSTEM,
                )
            raise RateLimited(
                f"{label}: Zoho throttled the call (HTTP 429 {code or ''}{': ' + message if message else ''})",
                retry_after=retry_after_seconds(response.headers.get("Retry-After")),
                code=code or "TOO_MANY_REQUESTS",
                system=SYSTEM,
            )
        if status >= 500:
            code, message, _ = error_fields(_safe_json(response))
            detail = f"{code}: {message}" if code else describe_body(response)
            raise TransientError(f"{label} failed with HTTP {status} ({detail})", code=code or f"HTTP_{status}", system=SYSTEM)
        if 200 <= status < 300:
            return ZohoResponse(status, json_body(response, label), response.headers)
        if status == 400:
            # Batch writes answer 400 when every record failed: per-record results, not a call failure.
            payload = _safe_json(response)
            if isinstance(payload, dict) and isinstance(payload.get("data"), list) and payload["data"] and all(
                isinstance(item, dict) and "status" in item for item in payload["data"]
            ):
                return ZohoResponse(status, payload, response.headers)
        raise api_error(response, label)

    def _note_credits(self, response: httpx.Response) -> None:
        value = response.headers.get(CREDITS_HEADER)
        if value is None:
            return
        try:
            self.credits_remaining = int(value.strip())
            self.credits_seen_at = time.time()
        except ValueError:
            pass

    def status(self) -> dict[str, Any]:
        stats = self.http.stats
        by_endpoint: dict[str, dict[str, int]] = {}
        for (endpoint, status), count in sorted(stats.by_endpoint.items()):
            by_endpoint.setdefault(endpoint, {})[status] = count
        return {
            **self.tokens.status(),
            "api_version": self.settings.api_version,
            "api_calls": stats.total,
            "api_calls_last_hour": stats.last_hour(),
            "calls_by_endpoint": by_endpoint,
            "retries": self.retries,
            "throttled": self.throttled,
            "api_credits_remaining": self.credits_remaining,
            "api_credits_seen_at": self.credits_seen_at,
            "concurrency": self.settings.concurrency,
            "paused_until": self.paused_until.isoformat() if self.paused_until else None,
        }


def _safe_json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _surely_unsent(exc: TransientError) -> bool:
    """A connect failure or pool wait means the request never left: safe to replay even a create."""
    cause = exc.__cause__
    return isinstance(cause, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
