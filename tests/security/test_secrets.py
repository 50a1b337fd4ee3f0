"""Secrets never leave crmsync: syncs that work, records a target rejects (dead letters), wrong
credentials everywhere, forged webhooks — run with distinctive secret values against the three
emulators in process, through the CLI as people run it, in human and JSON log formats at debug
level. None of the values may appear in the logs, CLI output, ``status --json``, the status page,
/status, /metrics, ``history``, ``dlq list|show``, or the dead letters and webhook inbox rows.
"""
from __future__ import annotations

import json
import os
import re
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from connectors.emulation.server import ThreadedServer
from connectors.fxiaoke.emulator import create_app as fxiaoke_app
from connectors.fxiaoke.push_apl import build_push as apl_push
from connectors.kingdee.emulator import create_app as kingdee_app
from connectors.kingdee.emulator_sessions import Credentials
from connectors.zoho.emulator import create_app as zoho_app

SECRETS = {
    "zoho_client_secret": "zcs-LEAKCHECK-1f2e3d4c5b6a",
    "zoho_refresh_token": "1000.zrt-LEAKCHECK-9a8b7c6d5e4f",
    "fx_app_secret": "fxas-LEAKCHECK-5e6f7a8b9c0d",
    "fx_permanent_code": "FXPC-LEAKCHECK-2c3d4e5f6a7b",
    "kd_password": "kdpw-LEAKCHECK-7d8e9f0a1b2c",
    "kd_app_secret": "kdas-LEAKCHECK-3e4f5a6b7c8d",
    "sql_password": "sqlpw-LEAKCHECK-4a5b6c7d8e9f",
    "apl_secret": "aplsec-LEAKCHECK-6b7c8d9e0f1a",
    "sql_webhook_secret": "whsec-LEAKCHECK-8c9d0e1f2a3b",
    "ops_token": "ops-LEAKCHECK-0e1f2a3b4c5d",
    "state_password": "statepw-LEAKCHECK-5f6a7b8c9d0e",
}
WRONG = {  # what a misconfigured deployment sends instead: must not leak either
    "zoho_refresh_token": "1000.zrt-WRONGLEAK-0000aaaa1111",
    "fx_app_secret": "fxas-WRONGLEAK-2222bbbb3333",
    "kd_password": "kdpw-WRONGLEAK-4444cccc5555",
}
#: The token crmsync gave a Zoho watch channel; Zoho sends it back in each callback's body.
ZOHO_CHANNEL, ZOHO_CHANNEL_TOKEN = "1000000068001", "zchan-LEAKCHECK-6d5c4b3a2f1e"
# With a MariaDB at hand (CI), the ERP database refuses the password; otherwise nothing listens on port 1.
_MYSQL = os.environ.get("CRMSYNC_TEST_MYSQL_URL")
SQL_USER_HOST = (
    f"root:{{password}}@{make_url(_MYSQL).host}:{make_url(_MYSQL).port or 3306}" if _MYSQL else "crmsync:{password}@127.0.0.1:1"
)
KD = Credentials(acct_id="65f1c0de2a9b3e", username="crmsync", password=SECRETS["kd_password"],
                 app_id="300123_leakcheck", app_secret=SECRETS["kd_app_secret"])


def config_text(urls: dict[str, str], state: str, *, wrong: bool) -> str:
    s = SECRETS | (WRONG if wrong else {})
    return textwrap.dedent(f"""
        state: {{url: "{state}"}}
        server: {{ops_token: {s['ops_token']}}}
        logging: {{format: "${{LOG_FORMAT}}", level: debug}}
        systems:
          zoho:
            type: zoho
            accounts_url: {urls['zoho']}
            api_domain: {urls['zoho']}
            client_id: 1000.LEAKCHECKCLIENT
            client_secret: {s['zoho_client_secret']}
            refresh_token: "{s['zoho_refresh_token']}"
          fxiaoke:
            type: fxiaoke
            host: {urls['fxiaoke']}
            app_id: FSAID_leakcheck
            app_secret: {s['fx_app_secret']}
            permanent_code: {s['fx_permanent_code']}
            notifications: {{style: apl_function, apl_secret: {s['apl_secret']}}}
          erp:
            type: kingdee
            server_url: {urls['erp']}/
            acct_id: "{KD.acct_id}"
            username: {KD.username}
            auth: {'password' if wrong else 'app_secret'}
            password: {s['kd_password']}
            app_id: {KD.app_id}
            app_secret: {s['kd_app_secret']}
          erp_db:
            type: sql
            url: "mysql+pymysql://{SQL_USER_HOST.format(password=s['sql_password'])}/erp"
            connect_timeout_seconds: 2
            webhook_secret: {s['sql_webhook_secret']}
            objects:
              customer:
                table: v_crm_customer
                key: [cust_no]
                modified_column: modified_at
                interface: {{table: crm_customer_if, key: [crm_id]}}
        entities:
          account:
            model: Account
            match: {{keys: [name]}}
            systems:
              fxiaoke: {{object: AccountObj, fields: {{name: name, phone: tel}}}}
              zoho: {{object: Accounts, fields: {{name: Account_Name, phone: Phone}}}}
              erp: {{object: BD_Customer, fields: {{name: FName, phone: FTEL}}}}
              erp_db: {{object: customer, fields: {{name: cust_name, phone: phone}}}}
        flows:
          accounts: {{entity: account, systems: [fxiaoke, zoho, erp]}}
          erp_accounts: {{entity: account, systems: [zoho, erp_db]}}
        """)


@dataclass
class World:
    urls: dict[str, str]
    apps: dict
    tmp: Path
    admin: httpx.Client
    seen: list[str] = field(default_factory=list)  # every text crmsync produced

    def write_config(self, name: str, *, wrong: bool = False) -> Path:
        path = self.tmp / f"{name}.yaml"
        path.write_text(config_text(self.urls, f"sqlite:///{self.tmp / (name + '.db')}", wrong=wrong), encoding="utf-8")
        return path

    def issued_tokens(self) -> set[str]:
        """Access tokens the emulators handed out to crmsync (Zoho access tokens, Fxiaoke corpAccessTokens)."""
        zoho = set(self.apps["zoho"].state.emulator.tokens.tokens)
        fx = set(self.apps["fxiaoke"].state.emulator._tokens)
        return zoho | fx


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    apps = {
        "zoho": zoho_app(client_id="1000.LEAKCHECKCLIENT", client_secret=SECRETS["zoho_client_secret"],
                         refresh_token=SECRETS["zoho_refresh_token"]),
        "fxiaoke": fxiaoke_app(app_id="FSAID_leakcheck", app_secret=SECRETS["fx_app_secret"],
                               permanent_code=SECRETS["fx_permanent_code"], apl_secret=SECRETS["apl_secret"]),
        "erp": kingdee_app(credentials=KD),
    }
    servers = {name: ThreadedServer(app).start() for name, app in apps.items()}
    admin = httpx.Client(timeout=30)
    try:
        yield World({n: s.url for n, s in servers.items()}, apps, tmp_path_factory.mktemp("secrets"), admin)
    finally:
        admin.close()
        for server in servers.values():
            server.stop()


def crmsync(world: World, capsys, monkeypatch, *args: str, log_format: str = "human") -> str:
    """Run the CLI in process as a user would; return everything it printed (stdout + stderr)."""
    from sync_engine import cli

    monkeypatch.setenv("LOG_FORMAT", log_format)
    monkeypatch.setattr(sys, "argv", ["crmsync", *args])
    # Wide consoles: a secret wrapped over two lines would slip past the search.
    from sync_engine import cli_engine, cli_service

    for module in (cli, cli_engine, cli_service):
        for name in ("out", "err"):
            if hasattr(module, name):
                monkeypatch.setattr(getattr(module, name), "width", 2000)
    code = 0
    try:
        cli.main()
    except SystemExit as exc:
        code = exc.code or 0
    finally:
        _drop_crmsync_handlers()
    captured = capsys.readouterr()
    text = captured.out + captured.err
    world.seen.append(text)
    assert "Traceback" not in text, text
    return text if code == 0 else f"exit {code}\n{text}"


def _drop_crmsync_handlers() -> None:
    """The CLI's log handler writes to this run's captured stderr, which closes with the test."""
    import logging

    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not getattr(h, "_crmsync", False)]


def assert_no_secret(texts: list[str], extra: set[str] = frozenset()) -> None:
    everything = "\n".join(texts)
    for name, value in list(SECRETS.items()) + list(WRONG.items()) + [("issued token", t) for t in extra]:
        assert value not in everything, f"{name} leaked: …{everything[max(0, everything.find(value) - 200):][:400]}…"


def _state_rows(config: Path) -> list[str]:
    """Every row of the state database as stored (dead letters, the webhook inbox, jobs, runs, audit
    history, records, …) except the channel table, which must keep Zoho's channel tokens to check
    callbacks with."""
    from sqlalchemy import create_engine

    from sync_engine.state.models import Base, Channel

    engine = create_engine(f"sqlite:///{config.with_suffix('.db')}")
    with engine.connect() as c:
        tables = [t for t in Base.metadata.sorted_tables if t is not Channel.__table__]
        rows = [json.dumps([str(v) for v in row], ensure_ascii=False) for table in tables for row in c.execute(select(table))]
    engine.dispose()
    return rows


def test_syncs_and_dead_letters_leak_no_secret(world, capsys, monkeypatch):
    config = world.write_config("working")
    world.admin.post(f"{world.urls['fxiaoke']}/_admin/records/AccountObj", json={"name": "深圳市华为技术有限公司", "tel": "0755-1"})
    # Too long for Zoho's Account_Name (200 characters): Zoho rejects it, the record becomes a dead letter.
    world.admin.post(f"{world.urls['fxiaoke']}/_admin/records/AccountObj", json={"name": "超长公司名" * 60, "tel": "0755-2"})

    texts = [crmsync(world, capsys, monkeypatch, "sync", str(config), "--flow", "accounts", log_format=fmt)
             for fmt in ("human", "json")]
    status = crmsync(world, capsys, monkeypatch, "status", str(config), "--json")
    texts += [status, crmsync(world, capsys, monkeypatch, "status", str(config))]
    dlq = crmsync(world, capsys, monkeypatch, "dlq", "list", str(config))
    texts.append(dlq)
    letter_ids = re.findall(r"^\s*│?\s*(\d+)\s", dlq, flags=re.MULTILINE)
    assert letter_ids, f"expected a dead letter for the over-long name:\n{dlq}"
    texts += [crmsync(world, capsys, monkeypatch, "dlq", "show", str(config), letter_ids[0])]
    zoho_records = world.admin.get(f"{world.urls['zoho']}/_admin/records/Accounts").json()
    synced = next(r for r in zoho_records if r.get("Account_Name") == "深圳市华为技术有限公司")
    texts.append(crmsync(world, capsys, monkeypatch, "history", str(config), "account", str(synced["id"])))
    texts += _state_rows(config)

    tokens = world.issued_tokens()
    assert tokens, "the emulators issued no access token: the sync did not log in"
    assert_no_secret(texts, tokens)
    # Tokens obtained at run time are redacted from logs like the configured secrets are.
    from connectors.secrets import registered
    from sync_engine.logs import redact

    assert tokens <= registered()
    assert all(redact(f"Authorization: Zoho-oauthtoken {t}") == "Authorization: Zoho-oauthtoken ***" for t in tokens)


def test_wrong_credentials_leak_no_secret(world, capsys, monkeypatch):
    config = world.write_config("wrong", wrong=True)
    texts = [crmsync(world, capsys, monkeypatch, "sync", str(config), log_format=fmt) for fmt in ("human", "json")]
    joined = "\n".join(texts).lower()
    # Each refusal is reported (so the test saw the failure paths), with no secret in it.
    for system in ("zoho", "fxiaoke", "erp", "erp_db"):
        assert system in joined
    assert "auth" in joined or "credential" in joined or "refused" in joined
    assert '"level": "warning"' in texts[1], "the JSON run logged no warning about the refusals"
    texts += [crmsync(world, capsys, monkeypatch, "status", str(config), "--json"),
              crmsync(world, capsys, monkeypatch, "status", str(config)),
              crmsync(world, capsys, monkeypatch, "dlq", "list", str(config))]
    texts += _state_rows(config)
    assert_no_secret(texts)


async def test_ops_routes_and_failing_webhooks_leak_no_secret(world, tmp_path):
    """The app with the working config after a sync: status JSON, page, metrics, readyz, and forged,
    stale and valid webhooks; the JSON and human logs of all of it."""
    import io
    import time

    from config.loader import load_config
    from config.secrets import iter_secrets
    from connectors.sql.webhook import sign as erp_sign
    from sync_engine.engine import SyncEngine
    from sync_engine.logs import register_secret, setup_logging
    from sync_engine.runtime import Runtime
    from sync_engine.state.models import Channel
    from sync_engine.state.types import utc_now
    from webhooks.app import create_app

    config_path = world.write_config("ops")
    texts: list[str] = []
    for fmt in ("human", "json"):
        stream = io.StringIO()
        config = load_config(config_path, environ={"LOG_FORMAT": fmt})
        for secret in iter_secrets(config):  # what `crmsync serve` does on start
            register_secret(secret)
        setup_logging(fmt, "debug", stream=stream)
        try:
            runtime = Runtime(config, base_dir=config_path.parent)
            async with runtime:
                await SyncEngine(runtime).run_flow("accounts")
                app = create_app(runtime)
                async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
                    auth = {"authorization": f"Bearer {SECRETS['ops_token']}"}
                    for path in ("/status", "/", "/metrics", "/readyz", "/openapi.json"):
                        texts.append((await client.get(path, headers=auth)).text)
                    texts.append((await client.get(f"/?token={SECRETS['ops_token']}")).text)
                    now_ms = int(time.time() * 1000)
                    for secret, stamp in ((SECRETS["apl_secret"], now_ms), ("x" * 20, now_ms),
                                          (SECRETS["apl_secret"], now_ms - 3_600_000)):
                        headers, body = apl_push(secret, object_api_name="AccountObj", ids=["65f0c3a1b2c3d4e5f6a7b8c9"],
                                                 event="update", timestamp_ms=stamp, event_id=f"e-{stamp}-{secret[:3]}")
                        texts.append((await client.post("/webhooks/fxiaoke", content=body, headers=headers)).text)
                    # Zoho's callback carries the channel's token in its body: answered, stored without it.
                    with runtime.store.write() as s:
                        if s.scalar(select(Channel).where(Channel.channel_id == ZOHO_CHANNEL)) is None:
                            s.add(Channel(system="zoho", channel_id=ZOHO_CHANNEL, token=ZOHO_CHANNEL_TOKEN,
                                          objects=["Accounts"], expires_at=utc_now() + timedelta(days=1)))
                    for token in (ZOHO_CHANNEL_TOKEN, "wrong-" + ZOHO_CHANNEL_TOKEN):
                        callback = {"channel_id": ZOHO_CHANNEL, "token": token, "module": "Accounts",
                                    "operation": "update", "ids": ["3652397000000649013"], "server_time": now_ms}
                        reply = await client.post("/webhooks/zoho", json=callback)
                        texts.append(reply.text)
                        assert reply.status_code == (200 if token == ZOHO_CHANNEL_TOKEN else 401), reply.text
                    body = b'{"object": "customer", "ids": ["C1"], "event_id": "x"}'
                    for secret in (SECRETS["sql_webhook_secret"], "guess"):
                        stamp = str(int(time.time()))
                        headers = {"content-type": "application/json", "x-crmsync-timestamp": stamp,
                                   "x-crmsync-signature": erp_sign(secret, stamp, body)}
                        texts.append((await client.post("/webhooks/erp_db", content=body, headers=headers)).text)
            runtime.store.dispose()
        finally:
            _drop_crmsync_handlers()
        texts.append(stream.getvalue())
    assert any("rejected" in t for t in texts), "the forged webhooks were not logged"
    rows = _state_rows(config_path)
    assert any(ZOHO_CHANNEL in r for r in rows), "the Zoho callback was not stored in the inbox"
    texts += rows
    assert_no_secret(texts, world.issued_tokens() | {ZOHO_CHANNEL_TOKEN, "wrong-" + ZOHO_CHANNEL_TOKEN})


def test_a_state_database_refusing_its_password_leaks_it_nowhere(world, capsys, monkeypatch):
    config = world.write_config("state")
    text = config.read_text(encoding="utf-8").replace(
        f"sqlite:///{world.tmp / 'state.db'}",
        f"postgresql+psycopg://crmsync:{SECRETS['state_password']}@127.0.0.1:1/crmsync")
    config.write_text(text, encoding="utf-8")
    outputs = [crmsync(world, capsys, monkeypatch, *args, log_format=fmt) for args in
               (("status", str(config)), ("sync", str(config)), ("db", "upgrade", str(config)),
                ("dlq", "list", str(config))) for fmt in ("human", "json")]
    assert all(o.startswith("exit ") and "state database" in o for o in outputs), outputs
    assert_no_secret(outputs)


@pytest.mark.postgres
async def test_a_state_database_lost_mid_run_leaks_its_password_nowhere(world, pg_databases):
    """The state database (reached with a password) goes away while crmsync runs: the failing pass, the
    ops routes and a webhook answered 503, logged in both formats, and the pass after it comes back."""
    import io
    import logging
    import time

    from sqlalchemy.engine import make_url as parse_url

    from config.loader import load_config
    from config.secrets import iter_secrets
    from connectors.fxiaoke.push_apl import build_push
    from sync_engine.engine import SyncEngine
    from sync_engine.logs import register_secret, setup_logging
    from sync_engine.runtime import Runtime
    from tests.ops.test_degraded import CuttableProxy
    from webhooks.app import create_app

    server = parse_url(pg_databases())
    proxy = CuttableProxy((server.host or "127.0.0.1", server.port or 5432))
    # The test server trusts loopback connections, so any password gets in: it only has to stay secret.
    state = server.set(host="127.0.0.1", port=proxy.port, password=SECRETS["state_password"])
    config_path = world.write_config("pglost")
    config_path.write_text(config_path.read_text(encoding="utf-8").replace(
        f"sqlite:///{world.tmp / 'pglost.db'}", state.render_as_string(hide_password=False)), encoding="utf-8")
    texts: list[str] = []
    try:
        for fmt in ("human", "json"):
            stream = io.StringIO()
            config = load_config(config_path, environ={"LOG_FORMAT": fmt})
            for secret in iter_secrets(config):  # what `crmsync serve` does on start
                register_secret(secret)
            setup_logging(fmt, "debug", stream=stream)
            try:
                runtime = Runtime(config, base_dir=config_path.parent)
                async with runtime:
                    await SyncEngine(runtime).run_flow("accounts")
                    app = create_app(runtime)
                    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
                        auth = {"authorization": f"Bearer {SECRETS['ops_token']}"}
                        proxy.cut()
                        try:
                            await SyncEngine(runtime).run_flow("accounts")
                        except Exception:  # what a worker does with a failed job: log it, traceback and all
                            logging.getLogger("crmsync.worker").exception("job failed")
                        else:
                            raise AssertionError("a pass with the state database away did not fail")
                        for path in ("/readyz", "/status", "/", "/metrics"):
                            response = await client.get(path, headers=auth)
                            assert response.status_code == 503, (path, response.text)
                            texts.append(response.text)
                        headers, body = build_push(SECRETS["apl_secret"], object_api_name="AccountObj",
                                                   ids=["65f0c3a1b2c3d4e5f6a7b8c9"], event="update",
                                                   timestamp_ms=int(time.time() * 1000), event_id=f"lost-{fmt}")
                        response = await client.post("/webhooks/fxiaoke", content=body, headers=headers)
                        assert response.status_code == 503, response.text
                        texts.append(response.text)
                        proxy.restore()
                        await SyncEngine(runtime).run_flow("accounts")
                        texts.append((await client.get("/status", headers=auth)).text)
                runtime.store.dispose()
            finally:
                _drop_crmsync_handlers()
            log = stream.getvalue()
            assert "Connection refused" in log or "unavailable" in log, log[-2000:]  # the outage was logged
            texts.append(log)
    finally:
        proxy.cut()
    assert_no_secret(texts, world.issued_tokens())
