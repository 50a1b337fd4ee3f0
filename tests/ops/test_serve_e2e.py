"""End to end through a running `crmsync serve`: a change made in Zoho fires Zoho's
notification at our webhook, and the change reaches Fxiaoke and the ERP."""
from __future__ import annotations

import os
import subprocess
import textwrap
import time

import httpx
import pytest

from connectors.emulation.crmsync_process import CLI, CrmsyncProcess
from connectors.emulation.server import free_port, serve_in_thread
from connectors.emulation.systems import emulator_systems_yaml
from connectors.fxiaoke.emulator import create_app as fxiaoke_app
from connectors.kingdee.emulator import create_app as kingdee_app
from connectors.zoho.emulator import create_app as zoho_app



def config_text(zoho: str, fx: str, erp: str, port: int, state: str) -> str:
    return emulator_systems_yaml(zoho=zoho, fxiaoke=fx, kingdee=erp) + textwrap.dedent(f"""
        state: {{url: "{state}"}}
        server: {{host: 127.0.0.1, port: {port}, public_url: "http://127.0.0.1:{port}", ops_token: e2e-ops-token}}
        sync: {{lease: 5s}}
        entities:
          account:
            model: Account
            match: {{keys: [name]}}
            systems:
              zoho: {{object: Accounts, fields: {{name: Account_Name, phone: Phone}}}}
              fxiaoke: {{object: AccountObj, fields: {{name: name, phone: tel}}}}
              erp: {{object: BD_Customer, fields: {{name: FName, phone: FTEL}}}}
        flows:
          accounts: {{entity: account, systems: [zoho, fxiaoke, erp], webhooks: true}}
        """)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def test_zoho_change_reaches_fxiaoke_and_erp_through_serve(tmp_path):
    with serve_in_thread(zoho_app()) as zoho, serve_in_thread(fxiaoke_app()) as fx, serve_in_thread(kingdee_app()) as erp:
        admin = httpx.Client(timeout=10)
        created = admin.post(f"{zoho.url}/_admin/records/Accounts",
                             json={"Account_Name": "深圳市华为技术有限公司", "Phone": "0755-0001"}).json()
        zoho_id = str(created.get("id") or created.get("details", {}).get("id"))
        port = free_port()
        config = tmp_path / "e2e.yaml"
        config.write_text(config_text(zoho.url, fx.url, erp.url, port, f"sqlite:///{tmp_path / 'state.db'}"), encoding="utf-8")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        first = subprocess.run([*CLI, "sync", str(config)], capture_output=True, text=True, timeout=120, env=env)
        assert first.returncode == 0, first.stdout + first.stderr

        def erp_phone(expected):
            rows = admin.get(f"{erp.url}/_admin/records/BD_Customer").json()
            return any(r.get("FName") == "深圳市华为技术有限公司" and r.get("FTEL") == expected for r in rows)

        def fx_phone(expected):
            rows = admin.get(f"{fx.url}/_admin/records/AccountObj").json()
            return any(r.get("name") == "深圳市华为技术有限公司" and r.get("tel") == expected for r in rows)

        assert erp_phone("0755-0001") and fx_phone("0755-0001")
        with CrmsyncProcess(["serve", str(config), "--workers", "2"], port=port, stop_timeout=40) as server:
            # The scheduler registers the Zoho watch channel at start; then a user edits the record in Zoho.
            status = lambda: _get(f"http://127.0.0.1:{port}/status", token="e2e-ops-token")  # noqa: E731
            wait_for(lambda: (s := status()) and any(x["channel_expires_at"] for x in s.json()["systems"]), 30,
                     "the Zoho watch channel")
            admin.patch(f"{zoho.url}/_admin/records/Accounts/{zoho_id}", json={"Phone": "0755-9999"})
            wait_for(lambda: erp_phone("0755-9999") and fx_phone("0755-9999"), 40, "the change to reach Fxiaoke and the ERP")
            metrics = _get(f"http://127.0.0.1:{port}/metrics", token="e2e-ops-token").text
            assert 'crmsync_webhook_deliveries_total{result="accepted",system="zoho"}' in metrics
        output = server.output
        assert server.returncode == 0, output
        assert "Traceback" not in output, output


def _get(url: str, token: str | None = None):
    try:
        response = httpx.get(url, headers={"authorization": f"Bearer {token}"} if token else {}, timeout=5)
    except httpx.HTTPError:
        return None
    return response if response.status_code == 200 else None
