"""The three emulators in-process on loopback, and the shipped example config pointed at them.

The config is ``config/examples/channel-sales.yaml`` itself: only the environment variables its
``${VAR:-default}`` credentials read are set, exactly as production would set them.
"""
from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from config.loader import load_config
from config.schema import CrmsyncConfig
from connectors.emulation.server import ThreadedServer
from connectors.fxiaoke.emulator import create_app as fxiaoke_app
from connectors.kingdee.emulator import create_app as kingdee_app
from connectors.zoho.emulator import create_app as zoho_app
from sync_engine.context import Report
from sync_engine.engine import SyncEngine
from sync_engine.runtime import Runtime

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "examples" / "channel-sales.yaml"

#: Calls that change data, per system (everything else reads, logs in or manages channels).
WRITE_MARKERS = {
    "zoho": ("POST /crm/", "PUT /crm/", "DELETE /crm/", "PATCH /crm/"),
    "fxiaoke": ("/data/create", "/data/update", "/data/invalid", "/data/delete", "/data/changeOwner"),
    "erp": ("Save", "Submit", "Audit", "Delete", "Forbid", "Enable", "Operation"),
}
NOT_WRITES = ("/actions/watch", "/coql", "/search", "/oauth", "token", "ExecuteBillQuery", "View", "Login",
              "QueryBusinessInfo", "ValidateUser")


@dataclass
class World:
    urls: dict[str, str]
    env: dict[str, str]
    admin: httpx.Client
    servers: list[ThreadedServer]

    def config(self) -> CrmsyncConfig:
        return load_config(EXAMPLE, environ=self.env)

    # -- acting as a user in each system ---------------------------------
    def create(self, system: str, object: str, data: dict[str, Any]) -> str:
        response = self.admin.post(f"{self.urls[system]}/_admin/records/{object}", json=data)
        assert response.status_code == 200, response.text
        body = response.json()
        return str(body.get("id") or body.get("_id") or body.get("FCUSTID") or body.get("FID"))

    def update(self, system: str, object: str, record_id: str, changes: dict[str, Any]) -> None:
        response = self.admin.patch(f"{self.urls[system]}/_admin/records/{object}/{record_id}", json=changes)
        assert response.status_code == 200, response.text

    def delete(self, system: str, object: str, record_id: str) -> None:
        response = self.admin.delete(f"{self.urls[system]}/_admin/records/{object}/{record_id}")
        assert response.status_code == 200, response.text

    def records(self, system: str, object: str) -> list[dict[str, Any]]:
        response = self.admin.get(f"{self.urls[system]}/_admin/records/{object}")
        assert response.status_code == 200, response.text
        return response.json()

    def find(self, system: str, object: str, **where: Any) -> list[dict[str, Any]]:
        return [r for r in self.records(system, object) if all(r.get(k) == v for k, v in where.items())]

    def writes(self) -> dict[str, int]:
        """Data-changing API calls each emulator has answered so far."""
        out = {}
        for system, url in self.urls.items():
            routes = self.admin.get(f"{url}/_admin/calls").json()["by_route"]
            out[system] = sum(
                n for route, n in routes.items()
                if any(m in route for m in WRITE_MARKERS[system]) and not any(x in route for x in NOT_WRITES)
            )
        return out

    # -- crmsync -----------------------------------------------------------
    def sync(self, flows: list[str] | None = None) -> list[Report]:
        """One `crmsync sync` pass, in a fresh runtime (as the CLI or a worker would run it)."""

        async def go() -> list[Report]:
            runtime = Runtime(self.config(), base_dir=EXAMPLE.parent)
            try:
                async with runtime:
                    return await SyncEngine(runtime).run_all(flows)
            finally:
                runtime.store.dispose()

        return asyncio.run(go())

    def runtime(self) -> Runtime:
        return Runtime(self.config(), base_dir=EXAMPLE.parent)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    state = tmp_path_factory.mktemp("e2e") / "state.db"
    apps = {"zoho": zoho_app(), "fxiaoke": fxiaoke_app(), "erp": kingdee_app()}
    servers = {name: ThreadedServer(app).start() for name, app in apps.items()}
    urls = {name: server.url for name, server in servers.items()}
    env = {
        "ZOHO_ACCOUNTS_URL": urls["zoho"], "ZOHO_API_DOMAIN": urls["zoho"],
        "FXIAOKE_HOST": urls["fxiaoke"], "KINGDEE_URL": urls["erp"] + "/",
        "CRMSYNC_STATE_URL": f"sqlite:///{state}",
    }
    admin = httpx.Client(timeout=30)
    try:
        yield World(urls=urls, env=env, admin=admin, servers=list(servers.values()))
    finally:
        admin.close()
        for server in servers.values():
            server.stop()


def counts(reports: list[Report], counter: str) -> dict[str, int]:
    """Total of one counter per system over the reports of a pass."""
    out: dict[str, int] = {}
    for report in reports:
        for system, c in report.counts.items():
            if c.get(counter):
                out[system] = out.get(system, 0) + c[counter]
    return out
