"""Zoho Accounts (token endpoint) and the API's throttles, as the emulator applies them.

Token answers follow Zoho Accounts: HTTP 200 with ``access_token``, ``expires_in``,
``api_domain``, ``token_type``, and — the classic trap — HTTP 200 with
``{"error": "invalid_client"}`` for bad credentials. At most 30 access tokens live
per refresh token; the 31st deletes the oldest.

Throttles apply to ``/crm/`` calls only: concurrent calls above the org's limit and
calls above a rate answer 429 ``TOO_MANY_REQUESTS``; an optional 24-hour credit
budget is charged per call and reported in ``X-API-CREDITS-REMAINING`` once half of
it is used.
"""
from __future__ import annotations

import json
import secrets
import threading
import time
from collections import OrderedDict, deque
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connectors.emulation.switches import CallLog, Switches

from .emulator_store import DEFAULT_SWITCHES


def _switch(switches: Switches, name: str) -> Any:
    return switches.extra.get(name, DEFAULT_SWITCHES.get(name))


class TokenRegistry:
    def __init__(self, switches: Switches, *, client_id: str, client_secret: str, refresh_token: str) -> None:
        self.switches = switches
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.lock = threading.Lock()
        self.tokens: OrderedDict[str, float] = OrderedDict()
        self.revoked = False
        self.issued = 0

    def reset(self) -> None:
        with self.lock:
            self.tokens.clear()
            self.revoked = False
            self.issued = 0

    def grant(self, form: dict[str, str], api_domain: str) -> dict[str, Any]:
        """Answer a token request (always HTTP 200, like Zoho Accounts)."""
        grant_type = form.get("grant_type")
        if grant_type not in ("refresh_token", "authorization_code"):
            return {"error": "unsupported_grant_type"}
        if form.get("client_id") != self.client_id:
            return {"error": "invalid_client"}
        if not secrets.compare_digest(form.get("client_secret", ""), self.client_secret):
            return {"error": "invalid_client"}
        if grant_type == "authorization_code":
            return {"error": "invalid_code"}  # grant codes are not emulated: use the refresh token
        if self.revoked or not secrets.compare_digest(form.get("refresh_token", ""), self.refresh_token):
            return {"error": "invalid_code"}
        ttl = int(_switch(self.switches, "token_ttl") or 3600)
        token = f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
        with self.lock:
            self.tokens[token] = time.time() + ttl
            limit = int(_switch(self.switches, "max_tokens_per_refresh_token") or 30)
            while len(self.tokens) > limit:
                self.tokens.popitem(last=False)
            self.issued += 1
        return {"access_token": token, "scope": "ZohoCRM.modules.ALL ZohoCRM.settings.ALL ZohoCRM.notifications.ALL",
                "api_domain": api_domain, "token_type": "Bearer", "expires_in": ttl}

    def revoke(self, token: str) -> bool:
        if secrets.compare_digest(token, self.refresh_token):
            with self.lock:
                self.revoked = True
                self.tokens.clear()
            return True
        with self.lock:
            return self.tokens.pop(token, None) is not None

    def check(self, authorization: str | None) -> str | None:
        """None when the header carries a live token, else Zoho's 401 code."""
        if not authorization:
            return "AUTHENTICATION_FAILURE"
        scheme, _, token = authorization.strip().partition(" ")
        allowed = {"zoho-oauthtoken"} | ({"bearer"} if _switch(self.switches, "accept_bearer") else set())
        if scheme.lower() not in allowed or not token.strip():
            return "AUTHENTICATION_FAILURE"
        with self.lock:
            expiry = self.tokens.get(token.strip())
        if expiry is None or expiry <= time.time():
            return "INVALID_TOKEN"
        return None

    def expire_all(self) -> int:
        with self.lock:
            count = len(self.tokens)
            for token in self.tokens:
                self.tokens[token] = 0.0
            return count


def too_many_requests(message: str, switches: Switches) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    body = json.dumps({"code": "TOO_MANY_REQUESTS", "details": {}, "message": message, "status": "error"}).encode()
    headers = [(b"content-type", b"application/json;charset=UTF-8")]
    retry_after = _switch(switches, "retry_after_seconds")
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    return 429, body, headers


class Throttle:
    """Concurrency, rate and 24-hour credit limits of one org."""

    def __init__(self, switches: Switches) -> None:
        self.switches = switches
        self.in_flight = 0
        self.peak_in_flight = 0
        self._bucket_tokens = 0.0
        self._bucket_at = time.monotonic()
        self._credits: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()
        self.rejected = 0

    def reset(self) -> None:
        with self._lock:
            self._credits.clear()
            self.rejected = 0
            self.peak_in_flight = 0

    def credits_used(self) -> int:
        horizon = time.time() - 86400
        while self._credits and self._credits[0][0] < horizon:
            self._credits.popleft()
        return sum(c for _, c in self._credits)

    def charge(self, cost: int) -> None:
        if cost > 0 and _switch(self.switches, "credits_per_day"):
            with self._lock:
                self._credits.append((time.time(), cost))

    def admit(self) -> str | None:
        """None to let the call in, else why it is refused."""
        limit = _switch(self.switches, "concurrency")
        if limit and self.in_flight >= int(limit):
            return "concurrency limit of the org exceeded"
        rate = _switch(self.switches, "rate_limit")
        if rate:
            now = time.monotonic()
            rate = float(rate)
            self._bucket_tokens = min(rate, self._bucket_tokens + (now - self._bucket_at) * rate)
            self._bucket_at = now
            if self._bucket_tokens < 1:
                return "too many requests per second"
            self._bucket_tokens -= 1
        budget = _switch(self.switches, "credits_per_day")
        if budget:
            with self._lock:
                if self.credits_used() >= int(budget):
                    return "API credits for the 24 hour period are exhausted"
        return None

    def credits_header(self) -> bytes | None:
        budget = _switch(self.switches, "credits_per_day")
        if not budget:
            return None
        with self._lock:
            used = self.credits_used()
        if used * 2 < int(budget) and not _switch(self.switches, "credits_header_always"):
            return None
        return str(max(0, int(budget) - used)).encode()


class ThrottleMiddleware:
    """Outermost layer: in-flight time includes the emulated latency, as on a real server."""

    def __init__(self, app: ASGIApp, *, throttle: Throttle, switches: Switches, calls: CallLog) -> None:
        self.app = app
        self.throttle = throttle
        self.switches = switches
        self.calls = calls

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/crm/"):
            await self.app(scope, receive, send)
            return
        refusal = self.throttle.admit()
        if refusal:
            self.throttle.rejected += 1
            self.calls.add(f"{scope['method']} throttled", 429)
            status, body, headers = too_many_requests(refusal, self.switches)
            credits = self.throttle.credits_header()
            if credits is not None:
                headers.append((b"x-api-credits-remaining", credits))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        self.throttle.charge(1)
        self.throttle.in_flight += 1
        self.throttle.peak_in_flight = max(self.throttle.peak_in_flight, self.throttle.in_flight)

        async def with_credits(message: Message) -> None:
            if message["type"] == "http.response.start":
                value = self.throttle.credits_header()
                if value is not None:
                    message = {**message, "headers": [*message.get("headers", []), (b"x-api-credits-remaining", value)]}
            await send(message)

        try:
            await self.app(scope, receive, with_credits)
        finally:
            self.throttle.in_flight -= 1
