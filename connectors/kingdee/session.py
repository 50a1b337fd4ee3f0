"""Login and the cookie session it opens.

K/3 Cloud logs a user in with ``AuthService.ValidateUser`` (password) or
``AuthService.LoginByAppSecret`` (third-party authorisation) and answers with
``LoginResultType`` plus the cookies ``kdservice-sessionid`` and
``ASP.NET_SessionId``, which every later call sends back. When the server drops
the session it says so with HTTP 200; callers then ask :meth:`Session.relogin`,
which logs in once for everybody that saw the same stale session (single-flight).
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass

from ..errors import AuthError, ConnectorConfigError, ConnectorError, TransientError
from ..http import ApiClient, RetryPolicy, with_retries
from ..secrets import register_secret
from .protocol import SESSION_COOKIES, LoginResultType, Stub
from .settings import KingdeeSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SessionTicket:
    """The cookies of one login, and which login it was (for single-flight re-login)."""

    generation: int
    cookie_header: str


def login_request(settings: KingdeeSettings) -> tuple[Stub, dict]:
    """The stub and body of a login call, per the configured auth mode and body style."""
    if settings.auth == "password":
        password = settings.password.get_secret_value() if settings.password else ""
        if settings.login_parameters == "named":
            body = {"acctID": settings.acct_id, "username": settings.username, "password": password,
                    "lcid": settings.lcid}
        else:
            body = {"parameters": [settings.acct_id, settings.username, password, settings.lcid]}
        return Stub.VALIDATE_USER, body
    secret = settings.app_secret.get_secret_value() if settings.app_secret else ""
    return Stub.LOGIN_BY_APP_SECRET, {
        "parameters": [settings.acct_id, settings.username, settings.app_id, secret, settings.lcid]
    }


class Session:
    """The current login of one connector, shared by all its concurrent calls."""

    def __init__(self, settings: KingdeeSettings, http: ApiClient, policy: RetryPolicy, system: str) -> None:
        self._settings = settings
        self._http = http
        self._policy = policy
        self._system = system
        self._lock = asyncio.Lock()
        self._ticket: SessionTicket | None = None
        self._generation = 0
        self.logins = 0
        self.logged_in_at: float | None = None
        self.last_error: str | None = None

    @property
    def active(self) -> bool:
        return self._ticket is not None

    async def current(self) -> SessionTicket:
        ticket = self._ticket
        if ticket is not None:
            return ticket
        async with self._lock:
            if self._ticket is None:
                await self._login()
            assert self._ticket is not None
            return self._ticket

    async def relogin(self, stale_generation: int) -> SessionTicket:
        """Log in again unless someone already replaced the session ``stale_generation`` named."""
        async with self._lock:
            if self._ticket is None or self._ticket.generation == stale_generation:
                log.info("%s: login session lost; logging in again", self._system)
                await self._login()
            assert self._ticket is not None
            return self._ticket

    def forget(self) -> None:
        self._ticket = None

    async def _login(self) -> None:
        stub, body = login_request(self._settings)
        try:
            response = await with_retries(lambda: self._post(stub, body), self._policy, always=True)  # a login: no data
        except ConnectorError as exc:
            self.last_error = exc.message
            raise
        cookies = {name: response.cookies.get(name) for name in SESSION_COOKIES if response.cookies.get(name)}
        payload = self._json(response)
        result = payload.get("LoginResultType") if isinstance(payload, dict) else None
        if result != LoginResultType.SUCCESS:
            message = (payload.get("Message") if isinstance(payload, dict) else None) or "login refused"
            self.last_error = f"login refused (LoginResultType={result}): {message}"
            raise AuthError(self.last_error, code=f"LoginResultType {result}", system=self._system)
        if not cookies:
            # Some gateways strip Set-Cookie; the session id is also in the body.
            session_id = payload.get("KDSVCSessionId") or (payload.get("Context") or {}).get("SessionId")
            if not session_id:
                self.last_error = "login succeeded but the server sent no session cookie"
                raise AuthError(self.last_error, system=self._system)
            cookies = {SESSION_COOKIES[0]: str(session_id)}
        for value in cookies.values():
            register_secret(str(value))  # a session id is a credential: never logged
        self._generation += 1
        header = "; ".join(f"{name}={value}" for name, value in cookies.items())
        self._ticket = SessionTicket(generation=self._generation, cookie_header=header)
        self.logins += 1
        self.logged_in_at = time.time()
        self.last_error = None

    async def _post(self, stub: Stub, body: dict):
        response = await self._http.request(
            "POST", stub.path, endpoint=stub.op, content=json.dumps(body, ensure_ascii=False).encode("utf-8"),
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientError(f"{stub.op} answered HTTP {response.status_code}", code=str(response.status_code),
                                 system=self._system)
        if response.status_code == 404:
            raise ConnectorConfigError(
                f"{stub.op} not found at {self._settings.site_url} (HTTP 404): check server_url",
                code="404", system=self._system)
        if response.status_code >= 400:
            raise AuthError(f"{stub.op} answered HTTP {response.status_code}", code=str(response.status_code),
                            system=self._system)
        return response

    def _json(self, response) -> dict:
        try:
            payload = json.loads(response.content)
        except ValueError:
            raise ConnectorError(
                f"login answer is not JSON (is server_url the K/3 Cloud site? got {response.text[:80]!r})",
                system=self._system) from None
        if not isinstance(payload, dict):
            raise ConnectorError("login answer has an unexpected shape", system=self._system)
        return payload
