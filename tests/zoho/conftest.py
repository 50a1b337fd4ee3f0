"""Fixtures: a fresh emulated Zoho org on a loopback port, and connectors pointed at it."""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from connectors.emulation.server import ThreadedServer
from connectors.zoho.connector import ZohoConnector
from connectors.zoho.emulator import ZohoEmulator
from connectors.zoho.settings import ZohoSettings

#: Backoff short enough for tests, attempts enough that a 50 % fault rate cannot exhaust them.
FAST_RETRIES = {"retry_attempts": 30, "retry_base_seconds": 0.005, "retry_max_seconds": 0.05, "retry_total_seconds": 60}


class Org:
    """An emulated org on a loopback port."""

    def __init__(self, emu: ZohoEmulator, server: ThreadedServer) -> None:
        self.emu = emu
        self.server = server
        self.url = server.url

    def settings(self, **overrides: Any) -> ZohoSettings:
        values: dict[str, Any] = {
            "accounts_url": self.url,
            "client_id": self.emu.tokens.client_id,
            "client_secret": self.emu.tokens.client_secret,
            "refresh_token": self.emu.tokens.refresh_token,
            **FAST_RETRIES,
        }
        values.update(overrides)
        return ZohoSettings(**values)

    def connector(self, **overrides: Any) -> ZohoConnector:
        return ZohoConnector("zoho_test", self.settings(**overrides))

    def snapshot(self) -> dict[str, Any]:
        # The emulator counts a call just after the response went out: let the last count land.
        time.sleep(0.05)
        return self.emu.calls.snapshot()

    def calls(self, route: str) -> int:
        return self.snapshot()["by_route"].get(route, 0)

    def switch(self, **values: Any) -> None:
        self.emu.switches.update(values)


@pytest.fixture
def org() -> Iterator[Org]:
    emu = ZohoEmulator(random_seed=7)
    server = ThreadedServer(emu.app).start()
    emu.base_url = server.url
    try:
        yield Org(emu, server)
    finally:
        emu.watch.stop()
        server.stop()


class Receiver:
    """A tiny loopback webhook receiver that keeps what it was sent."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self.arrived = threading.Event()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        self.headers.append({k.decode(): v.decode() for k, v in scope["headers"]})
        self.arrived.set()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(b) for b in self.bodies]


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    app = Receiver()
    server = ThreadedServer(app).start()
    try:
        yield app, f"{server.url}/webhooks/zoho_test?tenant=acme"
    finally:
        server.stop()


def set_modified(emu: ZohoEmulator, module: str, ids: list[str], epoch: int) -> None:
    """Test set-up only: give records an exact Modified_Time (a real org gets ties from bulk edits)."""
    store = emu.store
    with store.lock:
        ms = store.modules[module]
        for rid in ids:
            rec = ms.records[int(rid)]
            ms.touch(rec, epoch, rec.modified_by)
        store._changed()


def ids_by_modified(emu: ZohoEmulator, module: str) -> list[str]:
    with emu.store.lock:
        return [str(k[1]) for k in emu.store.modules[module].by_mt.keys]


def modified_of(emu: ZohoEmulator, module: str, rid: str) -> int:
    with emu.store.lock:
        return emu.store.modules[module].records[int(rid)].mt


async def pull_all(connector, request) -> tuple[list, list]:
    """All records of a pull, and its pages."""
    records, pages = [], []
    async for page in connector.pull(request):
        pages.append(page)
        records.extend(page.records)
    return records, pages
