"""Login by both methods, cookies, session loss and single-flight re-login."""
from __future__ import annotations

import asyncio

import httpx
import pytest

from connectors.base import PullRequest
from connectors.errors import AuthError
from connectors.kingdee.emulator import DEFAULT_CREDENTIALS as CREDS
from connectors.kingdee.protocol import SESSION_LOST_MESSAGE, Stub


async def test_login_by_password_validate_user(emu, make_connector, recorder_type):
    recorder = recorder_type()
    connector = make_connector(auth="password", password=CREDS.password, app_id=None, app_secret=None,
                               transport=recorder)
    await connector.check()
    assert emu.store.logins == {"ValidateUser": 1, "LoginByAppSecret": 0}
    assert recorder.bodies("ValidateUser") == [{"parameters": [CREDS.acct_id, CREDS.username, CREDS.password, 2052]}]
    # Both session cookies are kept and sent back.
    ticket = await connector.client.session.current()
    assert "kdservice-sessionid=" in ticket.cookie_header and "ASP.NET_SessionId=" in ticket.cookie_header
    records = await connector.fetch("customer", ["1"])
    assert records == []
    assert emu.logins() == 1


async def test_login_by_password_named_body(emu, make_connector, recorder_type):
    recorder = recorder_type()
    connector = make_connector(auth="password", password=CREDS.password, login_parameters="named",
                               transport=recorder)
    await connector.check()
    assert recorder.bodies("ValidateUser")[0] == {"acctID": CREDS.acct_id, "username": CREDS.username,
                                                  "password": CREDS.password, "lcid": 2052}
    assert emu.store.logins["ValidateUser"] == 1


async def test_login_by_app_secret(emu, make_connector, recorder_type):
    recorder = recorder_type()
    connector = make_connector(transport=recorder)
    await connector.check()
    assert emu.store.logins == {"ValidateUser": 0, "LoginByAppSecret": 1}
    assert recorder.bodies("LoginByAppSecret") == [
        {"parameters": [CREDS.acct_id, CREDS.username, CREDS.app_id, CREDS.app_secret, 2052]}]
    emu.store.seed(3, ["BD_Customer"])
    pages = [page async for page in connector.pull(PullRequest(object="customer"))]
    assert sum(len(p.records) for p in pages) == 3


async def test_wrong_password_is_an_auth_error_without_the_secret(emu, make_connector):
    connector = make_connector(auth="password", password="not-the-password")
    with pytest.raises(AuthError) as caught:
        await connector.check()
    assert "用户名或密码错误" in str(caught.value)
    assert "not-the-password" not in str(caught.value)
    assert connector.status()["authenticated"] is False
    assert "LoginResultType=0" in connector.status()["last_error"]


async def test_wrong_app_secret_is_an_auth_error(emu, make_connector):
    connector = make_connector(app_secret="wrong-secret")
    with pytest.raises(AuthError, match="LoginResultType=-1"):
        await connector.check()


async def test_call_without_session_gets_the_session_lost_answer(emu):
    url = f"{emu.url}/K3Cloud/{Stub.EXECUTE_BILL_QUERY.path}"
    answer = httpx.post(url, json={"data": {"FormId": "BD_Customer", "FieldKeys": "FNumber"}}).json()
    status = answer[0][0]["Result"]["ResponseStatus"]
    assert status["IsSuccess"] is False and status["MsgCode"] == 1
    assert status["Errors"][0]["Message"] == SESSION_LOST_MESSAGE
    save = httpx.post(f"{emu.url}/K3Cloud/{Stub.SAVE.path}", json={"formid": "BD_Customer", "data": {"Model": {}}})
    assert save.status_code == 200
    assert save.json()["Result"]["ResponseStatus"]["MsgCode"] == 1


async def test_session_lost_mid_pull_is_recovered_with_exactly_one_relogin(emu, make_connector):
    emu.store.seed(5000, ["BD_Customer"])
    connector = make_connector(page_size=1000)
    seen: list[str] = []
    pages = 0
    async for page in connector.pull(PullRequest(object="customer")):
        pages += 1
        seen.extend(r.external_id for r in page.records)
        if pages == 2:
            expired = emu.admin("POST", "/expire-tokens").json()["expired"]
            assert expired == 1
    assert len(seen) == len(set(seen)) == 5000
    assert emu.logins() == 2  # the first login and exactly one re-login
    assert connector.client.session_losses == 1
    assert connector.status()["logins"] == 2


async def test_concurrent_calls_after_session_loss_share_one_relogin(emu, make_connector):
    emu.store.seed(50, ["BD_Customer"])
    connector = make_connector()
    await connector.check()
    ids = [str(r[0]) for r in await connector.client.query("BD_Customer", ["FCUSTID"])]
    emu.store.expire_tokens()
    results = await asyncio.gather(*(connector.fetch("customer", ids[i::8]) for i in range(8)))
    assert sum(len(r) for r in results) == 50
    assert emu.logins() == 2
    assert connector.client.session_losses == 8  # every call saw the loss; one of them logged in


async def test_idle_session_expires_after_session_ttl(emu, make_connector):
    emu.admin("PATCH", "/switches", json={"session_ttl": 0.2})
    connector = make_connector()
    await connector.check()
    await asyncio.sleep(0.35)
    assert await connector.fetch("customer", ["100001"]) == []
    assert emu.logins() == 2


async def test_session_lost_again_after_relogin_is_an_auth_error(emu, make_connector):
    emu.admin("PATCH", "/switches", json={"session_ttl": 1e-9})  # every session is gone before it is used
    connector = make_connector()
    with pytest.raises(AuthError, match="again right after logging in"):
        await connector.fetch("customer", ["100001"])
    assert emu.logins() == 2
