"""The status page in a real headless Chromium: flows, charts, no console errors.

Chromium comes from Debian's package (installed by .ci/run when missing) and is
driven by Playwright for Python pointed at that binary — no browser download.
"""
from __future__ import annotations

import asyncio
import os
import shutil

import pytest

from connectors.emulation.server import serve_in_thread
from sync_engine.engine import SyncEngine
from sync_engine.runtime import Runtime
from sync_engine.state.db import StateStore
from tests.engine.conftest import THREE_SYSTEMS, make_config, memory_plugin  # noqa: F401 - fixture
from tests.engine.memory import MemorySystem
from webhooks.app import create_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("CI") != "true", reason="Debian's chromium is not installed"
)


def test_status_page_renders_in_chromium(memory_plugin, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    assert CHROMIUM, "chromium must be installed in CI"
    url = f"sqlite:///{tmp_path / 's.db'}"
    config = make_config(THREE_SYSTEMS + "\nserver: {ops_token: page-token-123}\n")
    config.state.url = url
    runtime = Runtime(config, store=StateStore.open(url))

    async def sync() -> None:
        async with runtime:
            fx = MemorySystem.instances["fx"]
            for i in range(5):
                fx.user_create("AccountObj", {"name": f"深圳市测试{i}科技有限公司"})
            await SyncEngine(runtime).run_all()

    asyncio.run(sync())
    try:
        with serve_in_thread(create_app(runtime)) as server, playwright.sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                      "--disable-sync", "--no-first-run", "--disable-quic"],
            )
            page = browser.new_page()
            errors: list[str] = []
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            response = page.goto(f"{server.url}/?token=page-token-123")
            assert response.status == 200
            flows = page.locator("[data-flow]")
            assert flows.count() == 2
            assert sorted(flows.nth(i).get_attribute("data-flow") for i in range(2)) == ["accounts", "contacts"]
            assert page.locator("[data-flow=accounts] svg.chart rect").count() >= 2  # background + a bar
            assert "Systems" in page.inner_text("body")
            assert errors == [], errors
            unauthorised = page.goto(f"{server.url}/")
            assert unauthorised.status == 401
            browser.close()
    finally:
        runtime.store.dispose()
