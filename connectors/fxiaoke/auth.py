"""Tokens for both auth generations, and how each one is put on a request.

current: ``POST /oauth2.0/token`` {appId, appSecret, permanentCode, grantType: app_secret}
→ accessToken + ea; calls carry ``authorization: Bearer <token>``, ``x-fs-ea`` and
``x-fs-userid`` headers.
legacy: ``POST /cgi/corpAccessToken/get/V2`` {appId, appSecret, permanentCode}
→ corpAccessToken + corpId; calls carry corpAccessToken, corpId and
currentOpenUserId at the top of the JSON body.

The token endpoint is limited to 10 calls a minute and must not be called
concurrently, so one caller fetches while the others wait for its result
(single flight), and a token refused with 20016/20005 is replaced only if no
one replaced it meanwhile. With a shared cache (:mod:`connectors.tokens`) that holds
across processes: a worker started after another takes its token instead of calling.
"""
from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..errors import AuthError, TransientError
from ..secrets import register_secret
from ..tokens import SharedToken, TokenSharing
from . import codes
from .limits import window_safe_bucket
from .settings import FxiaokeSettings

#: The documented token life; the refresh window (6,650–7,200 s) is expressed in it.
TOKEN_LIFETIME = 7200.0


@dataclass(slots=True)
class Token:
    value: str
    #: ea (current) or corpId (legacy)
    tenant: str
    obtained_at: float
    expires_at: float
    refresh_at: float

    def ttl(self, now: float) -> float:
        return self.expires_at - now


PostJson = Callable[[str, dict[str, Any], str], Awaitable[dict[str, Any]]]


class TokenManager:
    """Caches the token, refreshes it inside the documented window, single-flight."""

    def __init__(
        self,
        settings: FxiaokeSettings,
        post_json: PostJson,
        *,
        system: str,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._post_json = post_json
        self._system = system
        self._clock = clock
        self._rng = rng or random.Random()
        self._token: Token | None = None
        self._lock = asyncio.Lock()
        self._bucket = window_safe_bucket(settings.token_calls_per_minute, 60.0, burst=3, headroom=0.03, clock=clock)
        self.fetches = 0
        self.refreshes_on_error = 0
        self.last_error: str | None = None
        self.sharing: TokenSharing | None = None

    # -- public ----------------------------------------------------------------
    @property
    def style(self) -> str:
        return self._settings.auth_style

    async def token(self) -> Token:
        current = self._token
        if current is not None and self._clock() < current.refresh_at:
            return current
        async with self._lock:
            current = self._token
            if current is not None and self._clock() < current.refresh_at:
                return current
            return await self._obtain(refused=current.value if current else None)

    async def replace(self, refused: Token) -> Token:
        """The API refused ``refused`` (20016/20005): get a new one unless someone already did."""
        async with self._lock:
            if self._token is not None and self._token.value != refused.value:
                return self._token
            self.refreshes_on_error += 1
            return await self._obtain(refused=refused.value)

    def invalidate(self) -> None:
        self._token = None

    def apply(self, token: Token, body: dict[str, Any], headers: dict[str, str]) -> None:
        """Put the credentials where this auth style wants them."""
        if self.style == "current":
            headers["authorization"] = f"Bearer {token.value}"
            headers["x-fs-ea"] = token.tenant
            headers["x-fs-userid"] = self._settings.user_id
        else:
            body["corpAccessToken"] = token.value
            body["corpId"] = token.tenant
            body["currentOpenUserId"] = self._settings.open_user_id or ""

    def status(self) -> dict[str, Any]:
        now = self._clock()
        token = self._token
        return {
            "style": self.style,
            "has_token": token is not None,
            "token_expires_in_seconds": round(token.ttl(now), 1) if token else None,
            "token_fetches": self.fetches,
            "refreshes_after_refusal": self.refreshes_on_error,
            "last_error": self.last_error,
            **(self.sharing.status() if self.sharing else {}),
        }

    # -- internals ---------------------------------------------------------------
    async def _obtain(self, refused: str | None) -> Token:
        """A new token: the one another process stored if it is not yet due for refresh, else a fetch."""
        if self.sharing is None:
            return await self._fetch()
        shared, fetched = await self.sharing.obtain(self._fetch_shared, refused=refused, usable=self._usable)
        if not fetched:
            self._adopt(shared)
        return self._token  # type: ignore[return-value]

    async def _fetch_shared(self) -> SharedToken:
        wall = time.time()
        token = await self._fetch()
        expires_in = token.expires_at - token.obtained_at
        return SharedToken(token.value, wall + expires_in, {"tenant": token.tenant, "expires_in": expires_in, "obtained_at": wall})

    def _usable(self, shared: SharedToken) -> bool:
        # Not yet inside the documented refresh window: the refresh falls to whichever process's
        # own (jittered) moment comes first, which then fetches and stores the successor.
        expires_in = float(shared.extra.get("expires_in") or 0.0)
        return shared.remaining() > self._margin_range(expires_in)[1] and bool(shared.extra.get("tenant"))

    def _adopt(self, shared: SharedToken) -> None:
        expires_in = float(shared.extra.get("expires_in") or 0.0)
        age = max(0.0, time.time() - float(shared.extra.get("obtained_at") or time.time()))
        now = self._clock()
        self._token = Token(
            value=shared.value,
            tenant=str(shared.extra["tenant"]),
            obtained_at=now - age,
            expires_at=now + shared.remaining(),
            refresh_at=now + max(self._refresh_delay(expires_in) - age, 0.0),
        )
        register_secret(shared.value)

    def _request(self) -> tuple[str, dict[str, Any]]:
        s = self._settings
        body = {
            "appId": s.app_id,
            "appSecret": s.app_secret.get_secret_value(),
            "permanentCode": s.permanent_code.get_secret_value(),
        }
        if self.style == "current":
            body["grantType"] = "app_secret"
            return s.paths.token, body
        return s.paths.legacy_token, body

    async def _fetch(self) -> Token:
        path, body = self._request()
        await self._bucket.acquire()
        self.fetches += 1
        answer = await self._post_json(path, body, str(uuid.uuid4()))
        code = codes.parse_code(answer.get("errorCode"))
        if code is None:
            raise TransientError("token endpoint answered without errorCode", code="bad_answer", system=self._system)
        if code != 0:
            message = str(answer.get("errorMessage") or answer.get("error_description") or "token request refused")
            self.last_error = f"{code}: {message}"
            if codes.classify(code) is codes.Outcome.RETRY:
                raise TransientError(f"token endpoint busy: {message}", code=str(code), system=self._system)
            raise AuthError(f"token request refused: {message}", code=str(code), system=self._system)
        value = answer.get("accessToken") if self.style == "current" else answer.get("corpAccessToken")
        tenant = answer.get("ea") if self.style == "current" else answer.get("corpId")
        if not value or not tenant:
            raise AuthError("token answer lacks the token or tenant id", code="bad_answer", system=self._system)
        try:
            # 0 is a real answer (the token is at its end), only a missing value means "the usual 2 h"
            raw_expiry = answer.get("expiresIn")
            expires_in = TOKEN_LIFETIME if raw_expiry is None else max(0.0, float(raw_expiry))
        except (TypeError, ValueError):
            expires_in = TOKEN_LIFETIME
        now = self._clock()
        self._token = Token(
            value=str(value),
            tenant=str(tenant),
            obtained_at=now,
            expires_at=now + expires_in,
            refresh_at=now + self._refresh_delay(expires_in),
        )
        register_secret(self._token.value)  # never logged, whatever message happens to contain it
        self.last_error = None
        return self._token

    def _refresh_delay(self, expires_in: float) -> float:
        """Seconds until the proactive refresh.

        The docs want the refresh between 6,650 and 7,200 s of a 7,200 s token's life,
        spread so that several workers do not all refresh at once. ``expiresIn`` is
        what is left of the token, so the age window becomes a window on that;
        shorter-lived tokens (the emulator's ``--token-ttl``) get the same proportions.
        """
        margin = self._rng.uniform(*self._margin_range(expires_in))
        return max(expires_in - margin, 0.0)

    def _margin_range(self, expires_in: float) -> tuple[float, float]:
        """The refresh window as seconds of life left: (latest, earliest) margin before expiry."""
        s = self._settings
        lifetime = max(TOKEN_LIFETIME, expires_in)
        scale = min(1.0, expires_in / TOKEN_LIFETIME)
        return (lifetime - s.token_refresh_max_age_seconds) * scale, (lifetime - s.token_refresh_min_age_seconds) * scale
