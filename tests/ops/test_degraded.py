"""Degraded dependencies: the state database unreachable at start and during a run, and one CRM
down for a while, with `crmsync serve` running as in production (workers in a child process)."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import textwrap
import threading
import time
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from connectors.emulation.crmsync_process import CLI, CrmsyncProcess
from connectors.emulation.server import free_port, serve_in_thread
from connectors.emulation.systems import emulator_systems_yaml
from connectors.fxiaoke.emulator import create_app as fxiaoke_app
from connectors.kingdee.emulator import create_app as kingdee_app
from connectors.zoho.emulator import create_app as zoho_app

TOKEN = "degraded-ops-token"


#: One flow over the three systems; the one-CRM-down test splits it in two (see below).
THREE_WAY = "accounts: {entity: account, systems: [zoho, fxiaoke, erp], schedule: {interval: 2s}}"


def config_text(urls: dict[str, str], port: int, state: str, flows: str = THREE_WAY) -> str:
    """``flows``: the ``flows:`` section's entries, one per line."""
    flows = "\n".join(f"          {line}" for line in flows.splitlines())
    return emulator_systems_yaml(zoho=urls["zoho"], fxiaoke=urls["fx"], kingdee=urls["erp"]) + textwrap.dedent(f"""
        state: {{url: "{state}"}}
        server: {{host: 127.0.0.1, port: {port}, ops_token: {TOKEN}}}
        sync: {{lease: 3s}}
        entities:
          account:
            model: Account
            match: {{keys: [name]}}
            systems:
              zoho: {{object: Accounts, fields: {{name: Account_Name, phone: Phone}}}}
              fxiaoke: {{object: AccountObj, fields: {{name: name, phone: tel}}}}
              erp: {{object: BD_Customer, fields: {{name: FName, phone: FTEL}}}}
        flows:
{flows}
        """)


class CuttableProxy:
    """A TCP proxy to PostgreSQL that the test can cut (every connection dropped, new ones refused)
    and restore: the state database becomes unreachable without touching the shared server."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def cut(self) -> None:
        if self._listener is not None:
            # shutdown() first: close() alone does not wake the thread blocked in accept(), which would
            # let one more connection through after the cut.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


@pytest.fixture
def pg_url():
    server = os.environ.get("CRMSYNC_TEST_DATABASE_URL")
    if not server:
        pytest.skip("CRMSYNC_TEST_DATABASE_URL is not set")
    admin_url = make_url(server).set(drivername="postgresql+psycopg", database="postgres")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"crmsync_degraded_{uuid.uuid4().hex[:8]}"
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextlib.contextmanager
def three_systems():
    with serve_in_thread(zoho_app()) as zoho, serve_in_thread(fxiaoke_app()) as fx, serve_in_thread(kingdee_app()) as erp:
        yield {"zoho": zoho.url, "fx": fx.url, "erp": erp.url}


@contextlib.contextmanager
def serving(config, port: int):
    with CrmsyncProcess(["serve", str(config), "--workers", "2"], port=port) as server:
        yield server, server.lines


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def _get(url: str):
    try:
        response = httpx.get(url, headers={"authorization": f"Bearer {TOKEN}"}, timeout=5)
    except httpx.HTTPError:
        return None
    return response if response.status_code == 200 else None


def phones(url: str, object: str, name_field: str, phone_field: str) -> dict[str, str]:
    return {r.get(name_field): r.get(phone_field) for r in httpx.get(f"{url}/_admin/records/{object}", timeout=10).json()}


def fx_phones(urls):
    return phones(urls["fx"], "AccountObj", "name", "tel")


def erp_phones(urls):
    return phones(urls["erp"], "BD_Customer", "FName", "FTEL")


@pytest.mark.parametrize("command", [["sync"], ["serve"], ["worker"], ["status", "--json"]])
def test_state_database_unreachable_at_start_is_a_clear_error(tmp_path, command):
    closed = free_port()  # nothing listens there
    with three_systems() as urls:
        config = tmp_path / "c.yaml"
        config.write_text(config_text(urls, free_port(), f"postgresql+psycopg://postgres@127.0.0.1:{closed}/crmsync"),
                          encoding="utf-8")
        done = subprocess.run([*CLI, command[0], str(config), *command[1:]], check=False, capture_output=True,
                              text=True, timeout=60)
    assert done.returncode != 0
    assert "state database unavailable" in done.stderr and f"127.0.0.1:{closed}" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def _post_zoho_callback(port: int):
    """A Zoho notification to the running receiver (its channel token can only be checked in the state database)."""
    body = {"channel_id": "1000000068001", "token": "any-token", "module": "Accounts", "operation": "update",
            "ids": ["3652397000000649013"], "server_time": int(time.time() * 1000)}
    return httpx.post(f"http://127.0.0.1:{port}/webhooks/zoho", json=body, timeout=30)


def _status_code(url: str) -> int | None:
    try:
        return httpx.get(url, headers={"authorization": f"Bearer {TOKEN}"}, timeout=30).status_code
    except httpx.HTTPError:
        return None


@pytest.mark.postgres
@pytest.mark.timeout(600)
def test_state_database_lost_during_a_run_workers_pause_and_resume(tmp_path, pg_url):
    proxy = CuttableProxy((pg_url.host or "127.0.0.1", pg_url.port or 5432))
    state = pg_url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    with three_systems() as urls:
        admin = httpx.Client(timeout=30)
        created = admin.post(f"{urls['zoho']}/_admin/records/Accounts",
                             json={"Account_Name": "深圳市华为技术有限公司", "Phone": "0755-0001"}).json()
        zoho_id = str(created.get("id") or created.get("details", {}).get("id"))
        port = free_port()
        config = tmp_path / "c.yaml"
        config.write_text(config_text(urls, port, state), encoding="utf-8")
        with serving(config, port) as (server, output):
            wait_for(lambda: fx_phones(urls).get("深圳市华为技术有限公司") == "0755-0001", 180, "the first sync")
            proxy.cut()
            try:
                # Users carry on while crmsync cannot reach its database.
                admin.patch(f"{urls['zoho']}/_admin/records/Accounts/{zoho_id}", json={"Phone": "0755-0002"})
                admin.post(f"{urls['zoho']}/_admin/records/Accounts",
                           json={"Account_Name": "北京字节跳动科技有限公司", "Phone": "010-0003"})
                # The workers run into the outage (they log it and retry) ...
                wait_for(lambda: "claiming jobs failed" in "".join(output), 120,
                         "the workers to run into the lost database")
                # ... and the HTTP side says so: not ready, status and webhooks 503 (a sender retries), never a 500.
                assert wait_for(lambda: _status_code(f"http://127.0.0.1:{port}/readyz") == 503, 60, "readyz to fail")
                assert _status_code(f"http://127.0.0.1:{port}/status") == 503
                refused = _post_zoho_callback(port)
                assert refused.status_code == 503 and "state database unavailable" in refused.text, refused.text
                assert server.poll() is None, "serve died with its database away"
                assert fx_phones(urls).get("深圳市华为技术有限公司") == "0755-0001"  # nothing moved meanwhile
            finally:
                proxy.restore()
            wait_for(lambda: fx_phones(urls).get("深圳市华为技术有限公司") == "0755-0002"
                     and erp_phones(urls).get("北京字节跳动科技有限公司") == "010-0003", 300,
                     "the changes made during the outage to arrive")
            assert wait_for(lambda: _get(f"http://127.0.0.1:{port}/readyz"), 60, "ready again after the database came back")
            assert _status_code(f"http://127.0.0.1:{port}/status") == 200
        proxy.cut()
        assert sorted(r["name"] for r in httpx.get(f"{urls['fx']}/_admin/records/AccountObj").json()) == [
            "北京字节跳动科技有限公司", "深圳市华为技术有限公司"]  # nothing twice
    log = "".join(output)
    assert server.returncode == 0, log[-3000:]
    assert "Exception in ASGI application" not in log, log[-3000:]  # no request ended in an unhandled error


@pytest.mark.postgres
@pytest.mark.timeout(600)
def test_one_crm_down_waits_while_the_others_flow_and_status_shows_it(tmp_path, pg_url):
    state = pg_url.render_as_string(hide_password=False)
    with three_systems() as urls:
        admin = httpx.Client(timeout=30)
        created = admin.post(f"{urls['zoho']}/_admin/records/Accounts",
                             json={"Account_Name": "深圳市华为技术有限公司", "Phone": "0755-0001"}).json()
        zoho_id = str(created.get("id") or created.get("details", {}).get("id"))
        port = free_port()
        config = tmp_path / "c.yaml"
        config.write_text(config_text(urls, port, state), encoding="utf-8")
        with serving(config, port) as (server, output):
            wait_for(lambda: fx_phones(urls).get("深圳市华为技术有限公司") == "0755-0001"
                     and erp_phones(urls).get("深圳市华为技术有限公司") == "0755-0001", 180, "the first sync")
            # Fxiaoke fails every call for a while: errors, and connections dropped.
            admin.patch(f"{urls['fx']}/_admin/switches", json={"error_rate": 1.0, "fault_kinds": ["server_error", "disconnect"]})
            admin.patch(f"{urls['zoho']}/_admin/records/Accounts/{zoho_id}", json={"Phone": "0755-0002"})
            wait_for(lambda: erp_phones(urls).get("深圳市华为技术有限公司") == "0755-0002", 180,
                     "the Zoho edit to reach the ERP while Fxiaoke is down")
            assert fx_phones(urls).get("深圳市华为技术有限公司") == "0755-0001"

            def fxiaoke_reported():
                status = _get(f"http://127.0.0.1:{port}/status")
                flow = status.json()["flows"][0] if status else {}
                return flow if any("fxiaoke" in a for a in flow.get("attention", [])) else None

            flow = wait_for(fxiaoke_reported, 120, "the status to show Fxiaoke failing")
            assert any(a.startswith("last run:") and "fxiaoke" in a for a in flow["attention"]), flow["attention"]
            # Only Fxiaoke is named: Zoho and the ERP answer.
            assert not any(a.startswith("last run:") and ("zoho" in a or "erp" in a) and "fxiaoke" not in a
                           for a in flow["attention"]), flow["attention"]
            cli = subprocess.run([*CLI, "status", str(config), "--json"], check=False, capture_output=True, text=True,
                                 timeout=120)
            assert cli.returncode == 0 and "fxiaoke" in cli.stdout, cli.stderr

            admin.patch(f"{urls['fx']}/_admin/switches", json={"error_rate": 0.0})
            wait_for(lambda: fx_phones(urls).get("深圳市华为技术有限公司") == "0755-0002", 180,
                     "Fxiaoke to catch up once it answers again")
    assert server.returncode == 0, "".join(output)[-3000:]
    assert "Traceback" not in "".join(output), "".join(output)[-3000:]


@pytest.mark.postgres
async def test_http_routes_answer_503_while_the_state_database_is_away_and_nothing_is_lost(pg_url):
    """The app in process over a state database that goes away: every route that needs the database
    answers 503 (a webhook sender delivers again later), none raises; the same deliveries sent again
    once it is back are stored, once each."""
    from config.loader import parse_config
    from sync_engine.runtime import Runtime
    from sync_engine.state import migrate
    from sync_engine.state.db import StateStore
    from sync_engine.state.models import Channel, InboxEntry
    from sync_engine.state.types import utc_now
    from tests.security.conftest import CONFIG, ZOHO_CHANNEL, ZOHO_TOKEN
    from tests.security.test_webhooks_hostile import VALID
    from webhooks.app import create_app

    proxy = CuttableProxy((pg_url.host or "127.0.0.1", pg_url.port or 5432))
    url = pg_url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    migrate.upgrade(url)
    config = parse_config(textwrap.dedent(CONFIG), "degraded.yaml", environ={})
    config.state.url = url
    runtime = Runtime(config, store=StateStore.open(url), migrate_on_start=False)
    with runtime.store.write() as session:
        session.add(Channel(system="zoho", channel_id=ZOHO_CHANNEL, token=ZOHO_TOKEN, objects=["Accounts"],
                            expires_at=utc_now() + timedelta(days=1)))
    auth = {"authorization": "Bearer hostile-ops-token"}
    deliveries = {system: make() for system, make in VALID.items()}
    # raise_app_exceptions (the default): an unhandled exception fails the test instead of becoming a 500.
    transport = httpx.ASGITransport(app=create_app(runtime))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://crmsync.test") as client:
            assert (await client.get("/status", headers=auth)).status_code == 200
            proxy.cut()
            assert (await client.get("/healthz")).status_code == 200  # the process itself is fine
            for path in ("/readyz", "/status", "/", "/metrics"):
                response = await client.get(path, headers=auth)
                assert response.status_code == 503, (path, response.status_code, response.text)
            assert "state database unavailable" in (await client.get("/", headers=auth)).text
            for system, (headers, body) in deliveries.items():
                response = await client.post(f"/webhooks/{system}", content=body, headers=headers)
                assert response.status_code == 503, (system, response.text)
                assert response.headers["retry-after"] == "5"
            proxy.restore()
            # The senders deliver again: each stored once, and the ops routes answer again.
            for system, (headers, body) in deliveries.items():
                for _ in range(2):
                    response = await client.post(f"/webhooks/{system}", content=body, headers=headers)
                    assert response.status_code == 200, (system, response.text)
            for path in ("/readyz", "/status", "/", "/metrics"):
                assert (await client.get(path, headers=auth)).status_code == 200, path
            metrics = (await client.get("/metrics", headers=auth)).text
            assert 'crmsync_webhook_deliveries_total{result="unavailable",system="zoho"} 1.0' in metrics
        with runtime.store.read() as session:
            assert sorted(e.system for e in session.query(InboxEntry)) == sorted(VALID)
    finally:
        proxy.cut()
        runtime.store.dispose()
