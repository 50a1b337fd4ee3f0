"""OAuth 2.0 refresh-token grant against Zoho Accounts, with one refresh at a time.

The access token is cached and refreshed shortly before it expires, and once more
when the API calls it ``INVALID_TOKEN``. Concurrent callers that find the token
stale wait for the single refresh in flight instead of each starting their own
(Zoho keeps at most 30 access tokens per refresh token and deletes the oldest).
With a shared cache (:mod:`connectors.tokens`) the deployment's processes use one token
too: a refresh first looks for the one another process stored.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from connectors.errors import AuthError, RateLimited, TransientError
from connectors.http import ApiClient, RetryPolicy, with_retries
from connectors.secrets import register_secret
from connectors.tokens import SharedToken, TokenSharing

from .errors import SYSTEM, describe_body
from .settings import ZohoSettings

TOKEN_ENDPOINT = "POST /oauth/v2/token"

_TOKEN_ERRORS = {
    "invalid_client": "Zoho Accounts does not know this client (invalid_client): check client_id and client_secret, "
    "and that the client was registered in this data center — a client of accounts.zoho.com does not exist at "
    "accounts.zoho.eu",
    "invalid_code": "Zoho Accounts refused the refresh token (invalid_code): it was revoked, mistyped, or issued "
    "in another data center; generate a new one",
    "invalid_client_secret": "Zoho Accounts refused the client secret (invalid_client_secret)",
    "unauthorized_client": "this client may not use the refresh-token grant (unauthorized_client)",
    "invalid_grant": "Zoho Accounts refused the grant (invalid_grant)",
}


def _lifetime(token: SharedToken) -> float:
    """The life the token had when it was issued (its refresh margin is a share of it)."""
    try:
        return float(token.extra["lifetime"])
    except (KeyError, TypeError, ValueError):
        return token.remaining()


class TokenManager:
    """Holds the current access token and the API domain Zoho said to use."""

    def __init__(
        self,
        settings: ZohoSettings,
        http: ApiClient,
        policy: RetryPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.http = http
        self.policy = policy
        self.clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._api_domain: str | None = None
        self._lock = asyncio.Lock()
        self._margin = settings.token_refresh_margin_seconds
        self.refreshes = 0
        self.last_error: str | None = None
        self.sharing: TokenSharing | None = None

    @property
    def api_domain(self) -> str:
        return self.settings.api_domain or self._api_domain or self.settings.default_api_domain

    def _fresh(self) -> bool:
        return self._token is not None and self.clock() < self._expires_at - self._margin

    async def token(self) -> str:
        if self._fresh():
            return self._token  # type: ignore[return-value]
        return await self.refresh(stale=self._token)

    async def refresh(self, stale: str | None) -> str:
        """Get a new token unless someone already replaced ``stale`` while we waited."""
        async with self._lock:
            if self._token is not None and self._token != stale and self._fresh():
                return self._token
            try:
                if self.sharing is None:
                    self._accept(await self._fetch_payload())
                else:
                    token, fetched = await self.sharing.obtain(
                        self._fetch_shared, refused=stale, usable=lambda t: t.remaining() > self._margin_for(_lifetime(t)),
                    )
                    if not fetched:
                        self._adopt(token)
            except AuthError as exc:
                self.last_error = exc.message
                raise
            self.last_error = None
            return self._token  # type: ignore[return-value]

    async def _fetch_payload(self) -> dict[str, Any]:
        return await with_retries(self._request, self.policy, always=True)  # a token: no data written

    async def _fetch_shared(self) -> SharedToken:
        started = time.time()
        self._accept(await self._fetch_payload())
        lifetime = self._expires_at - self.clock()
        extra = {"api_domain": self._api_domain, "lifetime": lifetime}
        return SharedToken(self._token, started + lifetime, extra)  # type: ignore[arg-type]

    def _adopt(self, token: SharedToken) -> None:
        """Use the token another process fetched, for what is left of its life."""
        remaining = token.remaining()
        self._token = token.value
        register_secret(token.value)
        self._expires_at = self.clock() + remaining
        self._margin = self._margin_for(_lifetime(token))
        domain = token.extra.get("api_domain")
        if isinstance(domain, str) and domain.startswith(("http://", "https://")):
            self._api_domain = domain

    def _margin_for(self, lifetime: float) -> float:
        # A token shorter-lived than the margin would otherwise be refreshed before every call.
        return min(self.settings.token_refresh_margin_seconds, lifetime / 4)

    def invalidate(self) -> None:
        self._token = None
        self._expires_at = 0.0

    async def _request(self) -> dict[str, Any]:
        s = self.settings
        form = {
            "grant_type": "refresh_token",
            "refresh_token": s.refresh_token.get_secret_value(),
            "client_id": s.client_id,
            "client_secret": s.client_secret.get_secret_value(),
        }
        response = await self.http.request("POST", s.token_url, endpoint=TOKEN_ENDPOINT, data=form)
        where = f"{s.token_url} ({s.where()})"
        if response.status_code >= 500:
            raise TransientError(f"Zoho Accounts answered HTTP {response.status_code} at {where}", code="token_endpoint", system=SYSTEM)
        try:
            payload = response.json()
        except ValueError:
            message = f"Zoho Accounts answered HTTP {response.status_code} with a non-JSON body ({describe_body(response)}) at {where}"
            if response.status_code == 200 or response.status_code >= 500 or response.status_code == 429:
                raise TransientError(message, code="token_endpoint", system=SYSTEM) from None
            raise AuthError(message + "; check accounts_url", code="token_endpoint", system=SYSTEM) from None
        if not isinstance(payload, dict):
            raise TransientError(f"Zoho Accounts answered an unexpected body at {where}", code="token_endpoint", system=SYSTEM)
        error = payload.get("error")
        description = str(payload.get("error_description") or "")
        if response.status_code == 429 or (error and "too many requests" in description.lower()):
            # Zoho throttles refreshes (HTTP 400 "Access Denied" / "too many requests"): wait and retry.
            raise RateLimited(f"Zoho Accounts throttled token refreshes at {where}: {description or error}", code=str(error), system=SYSTEM)
        if error or "access_token" not in payload:
            text = _TOKEN_ERRORS.get(str(error), f"Zoho Accounts refused the refresh ({error or 'no access_token in the answer'})")
            if description:
                text += f": {description}"
            raise AuthError(f"{text}. Token endpoint {where}.", code=str(error or "no_access_token"), system=SYSTEM)
        if response.status_code != 200:
            raise AuthError(f"Zoho Accounts answered HTTP {response.status_code} at {where}", code="token_endpoint", system=SYSTEM)
        return payload

    def _accept(self, payload: dict[str, Any]) -> None:
        # Some Zoho services send expires_in in ms and the seconds in expires_in_sec (Zoho SDK v8 handles both).
        if "expires_in_sec" in payload:
            lifetime = float(payload["expires_in_sec"])
        else:
            lifetime = float(payload.get("expires_in") or 3600)
        self._token = str(payload["access_token"])
        register_secret(self._token)  # never logged, whatever message happens to contain it
        self._expires_at = self.clock() + lifetime
        self._margin = self._margin_for(lifetime)
        domain = payload.get("api_domain")
        if isinstance(domain, str) and domain.startswith(("http://", "https://")):
            self._api_domain = domain.rstrip("/")
        self.refreshes += 1

    def status(self) -> dict[str, Any]:
        remaining = max(0.0, self._expires_at - self.clock()) if self._token else 0.0
        return {
            "authorized": self._token is not None and self.last_error is None,
            "token_expires_in_seconds": round(remaining),
            "token_refreshes": self.refreshes,
            "auth_error": self.last_error,
            "accounts_url": self.settings.resolved_accounts_url,
            "api_domain": self.api_domain,
            **(self.sharing.status() if self.sharing else {}),
        }
