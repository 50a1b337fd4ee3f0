"""Fixtures: a fresh Fxiaoke emulator on a loopback port per test, and connectors pointed at it."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from connectors.emulation.server import serve_in_thread
from connectors.fxiaoke.connector import FxiaokeConnector
from connectors.fxiaoke.emulator import EmulatorConfig, FxiaokeEmulator
from connectors.fxiaoke.settings import FxiaokeSettings


@dataclass
class Harness:
    emu: FxiaokeEmulator
    url: str

    def settings(self, **overrides: Any) -> FxiaokeSettings:
        creds = self.emu.credentials()
        values: dict[str, Any] = {
            "host": self.url,
            "app_id": creds["app_id"],
            "app_secret": creds["app_secret"],
            "permanent_code": creds["permanent_code"],
            "user_id": creds["user_id"],
            "open_user_id": creds["open_user_id"],
            # Tests must not sit in long backoffs.
            "retry_base_seconds": 0.05,
            "retry_cap_seconds": 0.5,
        }
        values.update(overrides)
        return FxiaokeSettings(**values)

    def connector(self, **overrides: Any) -> FxiaokeConnector:
        wall_clock = overrides.pop("wall_clock", None)
        transport = overrides.pop("transport", None)
        kwargs: dict[str, Any] = {}
        if wall_clock is not None:
            kwargs["wall_clock"] = wall_clock
        if transport is not None:
            kwargs["transport"] = transport
        return FxiaokeConnector("crm_cn", self.settings(**overrides), **kwargs)

    def calls(self, path: str) -> int:
        """Calls the emulator accepted on ``path`` (counted before it answers, unlike the
        middleware's call log, which is written after the response went out)."""
        return len(self.emu.accepted.get(path, []))

    def switch(self, **values: Any) -> None:
        self.emu.switches.update(values)


def start(config: EmulatorConfig | None = None, **switches: Any) -> Iterator[Harness]:
    emu = FxiaokeEmulator(config or EmulatorConfig(seed=7))
    # Every test builds its own connector, each fetching a token; the per-minute token
    # limit is exercised on its own in test_fxiaoke_ratelimit.
    emu.switches.update({"token_rate_limit": 10_000, **switches})
    with serve_in_thread(emu.app) as server:
        yield Harness(emu, server.url)
    emu.push.close()


@pytest.fixture
def fx() -> Iterator[Harness]:
    yield from start()
