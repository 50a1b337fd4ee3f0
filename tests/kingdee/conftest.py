"""Fixtures for the Kingdee tests: the emulator on real loopback HTTP, connectors pointed at it.

The emulator is a simulator of the documented K/3 Cloud WebAPI contract, not the
ERP itself; contract facts and open questions are in ``../shared/reference/erp.md``.
"""
from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from connectors.emulation.server import serve_in_thread
from connectors.kingdee.connector import KingdeeConnector
from connectors.kingdee.emulator import DEFAULT_CREDENTIALS, EmulatorState, create_app
from connectors.kingdee.emulator_store import SWITCH_DEFAULTS, KingdeeStore
from connectors.kingdee.settings import KingdeeSettings

CREDS = DEFAULT_CREDENTIALS
FAST_RETRY = {"attempts": 4, "base_seconds": 0.01, "cap_seconds": 0.05, "total_seconds": 10}


@dataclass
class Emulator:
    url: str
    state: EmulatorState

    @property
    def store(self) -> KingdeeStore:
        return self.state.store

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=f"{self.url}/_admin", timeout=30)

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.http.request(method, path, **kwargs)
        response.raise_for_status()
        return response

    def logins(self) -> int:
        return sum(self.store.logins.values())

    def calls_to(self, op: str) -> int:
        suffix = f".{op}.common.kdsvc"
        return sum(n for route, n in self.state.calls.snapshot()["by_route"].items() if route.endswith(suffix))

    def reset(self) -> None:
        self.store.reset()
        self.store.expire_tokens()
        self.store.sessions.reset_counts()
        self.state.calls.reset()
        switches = self.state.switches
        switches.latency_ms = 0
        switches.error_rate = 0
        switches.fault_kinds = ("server_error", "rate_limit")
        switches.extra.update(SWITCH_DEFAULTS)


@pytest.fixture(scope="module")
def emulator_server():
    app = create_app(seed=11)
    with serve_in_thread(app) as server:
        emulator = Emulator(server.url, app.state.kingdee)
        yield emulator
        emulator.http.close()


@pytest.fixture
def emu(emulator_server: Emulator) -> Emulator:
    emulator_server.reset()
    return emulator_server


def settings_for(url: str, **overrides: Any) -> KingdeeSettings:
    values: dict[str, Any] = {
        "server_url": url,
        "acct_id": CREDS.acct_id,
        "username": CREDS.username,
        "auth": "app_secret",
        "app_id": CREDS.app_id,
        "app_secret": CREDS.app_secret,
        "retry": FAST_RETRY,
    }
    values.update(overrides)
    return KingdeeSettings.model_validate(values)


@pytest.fixture
async def make_connector(emu: Emulator):
    """``make_connector(**settings_overrides, transport=None)`` -> an open connector on the emulator."""
    made: list[KingdeeConnector] = []

    def make(transport: httpx.AsyncBaseTransport | None = None, **overrides: Any) -> KingdeeConnector:
        connector = KingdeeConnector("erp", settings_for(emu.url, **overrides), transport=transport)
        made.append(connector)
        return connector

    yield make
    for connector in made:
        await connector.close()


@dataclass
class Recorder(httpx.AsyncBaseTransport):
    """Forwards to the emulator and keeps (operation, JSON body) of each request; ``hook`` may interfere."""

    hook: Callable[[str, dict[str, Any], httpx.Response], Awaitable[httpx.Response]] | None = None
    requests: list[tuple[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        op = request.url.path.rsplit("/", 1)[-1].removesuffix(".common.kdsvc").rsplit(".", 1)[-1]
        body = json.loads(request.content or b"{}")
        self.requests.append((op, body))
        response = await self.inner.handle_async_request(request)
        if self.hook is not None:
            await response.aread()
            return await self.hook(op, body, response)
        return response

    def bodies(self, op: str) -> list[Any]:
        return [body for name, body in self.requests if name == op]

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
def recorder_type() -> type[Recorder]:
    return Recorder


@pytest.fixture
def settings_factory(emu: Emulator) -> Callable[..., KingdeeSettings]:
    return lambda **overrides: settings_for(emu.url, **overrides)
