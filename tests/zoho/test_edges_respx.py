"""Odd answers on the wire, mocked with respx (no network): empty statuses, broken bodies, proxies, timeouts."""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import httpx
import pytest
import respx

from connectors.base import PullRequest, WriteOp
from connectors.errors import AuthError, TransientError
from connectors.zoho.connector import ZohoConnector
from connectors.zoho.errors import ZohoApiError
from connectors.zoho.settings import ZohoSettings

ACCOUNTS = "https://accounts.zoho.eu/oauth/v2/token"
API = "https://www.zohoapis.eu/crm/v8"
TOKEN_OK = {"access_token": "1000.aaaa.bbbb", "expires_in": 3600, "api_domain": "https://www.zohoapis.eu", "token_type": "Bearer"}
FIELDS = ["Account_Name"]


def connector(**overrides) -> ZohoConnector:
    values = {"data_center": "eu", "client_id": "1000.ABC", "client_secret": "shh-secret", "refresh_token": "1000.r.t",
              "retry_attempts": 3, "retry_base_seconds": 0.01, "retry_max_seconds": 0.02, **overrides}
    return ZohoConnector("zoho_eu", ZohoSettings(**values))


def page(records: list[dict], more: bool = False, token: str | None = None) -> dict:
    return {"data": records, "info": {"per_page": 200, "count": len(records), "page": 1, "more_records": more,
                                      "next_page_token": token, "sort_by": "Modified_Time", "sort_order": "asc"}}


async def collect(zoho, request):
    return [r async for p in zoho.pull(request) for r in p.records]


@respx.mock
async def test_304_not_modified_is_an_empty_pull():
    respx.post(ACCOUNTS).respond(200, json=TOKEN_OK)
    route = respx.get(f"{API}/Accounts").respond(304)
    respx.get(f"{API}/Accounts/deleted").respond(304)
    async with connector() as zoho:
        since = datetime(2024, 5, 1, 8, 0, tzinfo=timezone.utc)
        assert await collect(zoho, PullRequest("Accounts", fields=FIELDS, since=since)) == []
    sent = route.calls[0].request
    # One second before the inclusive bound, with an explicit offset.
    assert sent.headers["If-Modified-Since"] == "2024-05-01T07:59:59+00:00"
    assert sent.headers["Authorization"] == "Zoho-oauthtoken 1000.aaaa.bbbb"
    assert route.call_count == 1


@respx.mock
async def test_204_no_content_is_an_empty_pull():
    respx.post(ACCOUNTS).respond(200, json=TOKEN_OK)
    respx.get(f"{API}/Accounts").respond(204)
    respx.get(f"{API}/Accounts/deleted").respond(204)
    async with connector() as zoho:
        assert await collect(zoho, PullRequest("Accounts", fields=FIELDS)) == []


@respx.mock
async def test_malformed_json_is_retried_then_reported():
    respx.post(ACCOUNTS).respond(200, json=TOKEN_OK)
    good = page([{"id": "1", "Account_Name": "恒通贸易", "Modified_Time": "2024-05-01T10:00:00+05:30"}])
    route = respx.get(f"{API}/Accounts").mock(
        side_effect=[httpx.Response(200, content=b'{"data": [{"id": "1", "Acc'), httpx.Response(200, json=good)]
    )
    respx.get(f"{API}/Accounts/deleted").respond(204)
    async with connector() as zoho:
        records = await collect(zoho, PullRequest("Accounts", fields=FIELDS))
        assert [r.data["Account_Name"] for r in records] == ["恒通贸易"]
        assert records[0].modified_at == datetime(2024, 5, 1, 4, 30, tzinfo=timezone.utc)
    assert route.call_count == 2

    respx.get(f"{API}/Deals").respond(200, content=b"{not json", headers={"content-type": "application/json"})
    async with connector() as zoho:
        with pytest.raises(TransientError, match="not JSON"):
            await collect(zoho, PullRequest("Deals", fields=["Deal_Name"]))


@respx.mock
async def test_html_error_page_from_a_proxy():
    respx.post(ACCOUNTS).respond(200, json=TOKEN_OK)
    html = "<html><head><title>502 Bad Gateway</title></head><body><center>nginx</center></body></html>"
    gateway = respx.get(f"{API}/Accounts").respond(502, text=html, headers={"content-type": "text/html"})
    async with connector() as zoho:
        with pytest.raises(TransientError) as caught:
            await collect(zoho, PullRequest("Accounts", fields=FIELDS))
    assert "502 Bad Gateway" in str(caught.value) and "HTTP 502" in str(caught.value)
    assert gateway.call_count == 3  # retried up to retry_attempts

    waf = "<html><head><title>Access Denied</title></head><body>Request blocked by policy</body></html>"
    blocked = respx.get(f"{API}/Deals").respond(403, text=waf, headers={"content-type": "text/html"})
    async with connector() as zoho:
        with pytest.raises(ZohoApiError) as caught:
            await collect(zoho, PullRequest("Deals", fields=["Deal_Name"]))
    assert "Access Denied" in str(caught.value) and caught.value.status == 403
    assert blocked.call_count == 1  # a 4xx is not retried


@respx.mock
async def test_timeouts_are_retried_but_a_create_is_never_replayed():
    respx.post(ACCOUNTS).respond(200, json=TOKEN_OK)
    slow = respx.get(f"{API}/Accounts").mock(side_effect=httpx.ReadTimeout("read timed out"))
    async with connector() as zoho:
        with pytest.raises(TransientError) as caught:
            await collect(zoho, PullRequest("Accounts", fields=FIELDS))
    assert caught.value.code == "timeout" and slow.call_count == 3

    insert = respx.post(f"{API}/Accounts").mock(side_effect=httpx.ReadTimeout("read timed out"))
    async with connector() as zoho:
        with pytest.raises(TransientError, match="not replayed"):
            await zoho.push("Accounts", [WriteOp("a", "create", {"Account_Name": "博远软件"})])
    assert insert.call_count == 1

    upsert = respx.post(f"{API}/Accounts/upsert").mock(side_effect=[
        httpx.ReadTimeout("read timed out"),
        httpx.Response(200, json={"data": [{"code": "SUCCESS", "action": "insert", "duplicate_field": None, "status": "success",
                                            "message": "record added", "details": {"id": "42", "Modified_Time": "2024-05-01T10:00:00-08:00"}}]}),
    ])
    async with connector() as zoho:
        (result,) = await zoho.push("Accounts", [WriteOp("a", "upsert", {"Account_Name": "博远软件"})])
    assert result.ok and result.external_id == "42" and upsert.call_count == 2
    assert json.loads(upsert.calls[0].request.content)["duplicate_check_fields"] == ["Account_Name"]


@respx.mock
async def test_token_endpoint_invalid_client_names_data_center_and_accounts_url():
    respx.post(ACCOUNTS).respond(200, json={"error": "invalid_client"})  # Zoho Accounts: HTTP 200 with an error key
    async with connector() as zoho:
        with pytest.raises(AuthError) as caught:
            await collect(zoho, PullRequest("Accounts", fields=FIELDS))
    message = str(caught.value)
    assert "invalid_client" in message
    assert "data center 'eu'" in message and "https://accounts.zoho.eu" in message
    assert "shh-secret" not in message and "1000.r.t" not in message


@respx.mock
async def test_retry_after_is_honoured():
    respx.post(ACCOUNTS).respond(200, json=TOKEN_OK)
    throttled = {"code": "TOO_MANY_REQUESTS", "details": {}, "message": "concurrency limit exceeded", "status": "error"}
    route = respx.get(f"{API}/Accounts").mock(side_effect=[
        httpx.Response(429, json=throttled, headers={"Retry-After": "1"}),
        httpx.Response(200, json=page([{"id": "7", "Account_Name": "x", "Modified_Time": "2024-05-01T10:00:00+08:00"}])),
    ])
    respx.get(f"{API}/Accounts/deleted").respond(204)
    async with connector() as zoho:
        started = time.perf_counter()
        records = await collect(zoho, PullRequest("Accounts", fields=FIELDS))
        waited = time.perf_counter() - started
    assert len(records) == 1 and route.call_count == 2
    assert waited >= 0.95, "waited as long as Retry-After said, not the 10 ms backoff"


@respx.mock
async def test_invalid_token_refreshes_once_and_only_once():
    token = respx.post(ACCOUNTS).respond(200, json=TOKEN_OK)
    dead = {"code": "INVALID_TOKEN", "details": {}, "message": "invalid oauth token", "status": "error"}
    route = respx.get(f"{API}/Accounts").respond(401, json=dead)
    async with connector() as zoho:
        with pytest.raises(AuthError, match="INVALID_TOKEN"):
            await collect(zoho, PullRequest("Accounts", fields=FIELDS))
    assert token.call_count == 2 and route.call_count == 2


@respx.mock
async def test_hosts_follow_data_center_environment_and_token_answer():
    token = respx.post("https://accounts.zoho.com.cn/oauth/v2/token").respond(
        200, json={"access_token": "1000.x.y", "expires_in": 3600, "token_type": "Bearer"})
    sandbox = respx.get("https://sandbox.zohoapis.com.cn/crm/v8/Accounts").respond(204)
    respx.get("https://sandbox.zohoapis.com.cn/crm/v8/Accounts/deleted").respond(204)
    async with connector(data_center="cn", environment="sandbox") as zoho:
        await collect(zoho, PullRequest("Accounts", fields=FIELDS))
    assert token.call_count == 1 and sandbox.call_count == 1
    form = dict(httpx.QueryParams(token.calls[0].request.content.decode()))
    assert form["grant_type"] == "refresh_token" and form["client_id"] == "1000.ABC"

    respx.post(ACCOUNTS).respond(200, json={**TOKEN_OK, "api_domain": "https://crm.example-proxy.internal"})
    proxied = respx.get("https://zoho-proxy.example.internal/crm/v8/Accounts").respond(204)
    respx.get("https://zoho-proxy.example.internal/crm/v8/Accounts/deleted").respond(204)
    async with connector(api_domain="https://zoho-proxy.example.internal") as zoho:
        await collect(zoho, PullRequest("Accounts", fields=FIELDS))
    assert proxied.call_count == 1, "an explicit api_domain wins over the token answer"
