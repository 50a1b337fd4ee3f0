"""errorCode classification and the client's reactions, including edges the emulator does
not produce (respx): HTML from the wrong host, redirects, 5xx, dropped connections."""
from __future__ import annotations

import httpx
import pytest
import respx

from connectors.base import PullRequest
from connectors.errors import AuthError, ConnectorConfigError, RecordRejected, TransientError
from connectors.fxiaoke import codes
from connectors.fxiaoke.connector import FxiaokeConnector
from connectors.fxiaoke.settings import FxiaokeSettings

HOST = "https://open.fxiaoke.com"
TOKEN = {"errorCode": 0, "errorMessage": "success", "accessToken": "T1", "expiresIn": 7200, "ea": "fs1",
         "appId": "FSAID_1", "openUserId": "FSCID_1", "traceId": "E-O.1"}
EMPTY_PAGE = {"errorCode": 0, "errorMessage": "OK", "errorDescription": "success",
              "data": {"dataList": [], "offset": 0, "limit": 100, "total": 0}}


def connector(**overrides) -> FxiaokeConnector:
    settings = FxiaokeSettings(app_id="FSAID_1", app_secret="top-secret-value", permanent_code="PC-secret",
                               retry_base_seconds=0.01, retry_cap_seconds=0.05, **overrides)
    return FxiaokeConnector("crm_cn", settings)


def fail(code: int, message: str = "x") -> httpx.Response:
    return httpx.Response(200, json={"errorCode": code, "errorMessage": message, "errorDescription": message})


async def pull(crm):
    return [r async for page in crm.pull(PullRequest(object="AccountObj", include_deleted=False)) for r in page.records]


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (0, codes.Outcome.OK), (-1, codes.Outcome.RETRY), (-2, codes.Outcome.RETRY), (50009, codes.Outcome.RETRY),
        (30004, codes.Outcome.RETRY), (14001, codes.Outcome.RETRY), (20016, codes.Outcome.REFRESH_TOKEN),
        (20005, codes.Outcome.REFRESH_TOKEN), (30002, codes.Outcome.QUOTA), (30003, codes.Outcome.ACCESS),
        (20021, codes.Outcome.ACCESS), (201112011, codes.Outcome.PERMANENT), (10006, codes.Outcome.PERMANENT),
        (20006, codes.Outcome.PERMANENT), (20015, codes.Outcome.PERMANENT), (987654, codes.Outcome.PERMANENT),
    ],
)
def test_classification(code, outcome):
    assert codes.classify(code) is outcome


def test_extra_retryable_codes_and_code_parsing():
    assert codes.classify(320001400, extra_retryable=[320001400]) is codes.Outcome.RETRY
    assert codes.parse_code("30004") == 30004 and codes.parse_code(True) is None and codes.parse_code("x") is None


@respx.mock(base_url=HOST, assert_all_called=False)
async def test_system_busy_and_timeouts_are_retried_with_backoff(respx_mock):
    respx_mock.post("/oauth2.0/token").respond(json=TOKEN)
    query = respx_mock.post("/cgi/crm/v2/data/query").mock(side_effect=[
        fail(-1, "系统繁忙"), fail(50009, "服务异常，如:超时"), httpx.Response(502), httpx.ConnectError("reset"),
        httpx.Response(200, json=EMPTY_PAGE),
    ])
    async with connector() as crm:
        assert await pull(crm) == []
    assert query.call_count == 5


@respx.mock(base_url=HOST, assert_all_called=False)
async def test_retryable_failures_that_outlast_the_policy_surface_as_transient(respx_mock):
    respx_mock.post("/oauth2.0/token").respond(json=TOKEN)
    respx_mock.post("/cgi/crm/v2/data/query").mock(return_value=fail(-2, "系统错误"))
    async with connector(retry_attempts=3) as crm:
        with pytest.raises(TransientError) as caught:
            await pull(crm)
    assert caught.value.code == "-2" and caught.value.retryable


@respx.mock(base_url=HOST, assert_all_called=False)
async def test_a_token_refused_twice_is_an_auth_error_after_exactly_one_refresh(respx_mock):
    token = respx_mock.post("/oauth2.0/token").respond(json=TOKEN)
    respx_mock.post("/cgi/crm/v2/data/query").mock(return_value=fail(20016, "corpAccessToken不存在或者已经过期"))
    async with connector() as crm:
        with pytest.raises(AuthError) as caught:
            await pull(crm)
    assert caught.value.code == "20016"
    assert token.call_count == 2


@respx.mock(base_url=HOST, assert_all_called=False)
async def test_bad_credentials_are_auth_errors_without_secrets_in_them(respx_mock):
    respx_mock.post("/oauth2.0/token").mock(return_value=httpx.Response(200, json={
        "errorCode": 20006, "errorMessage": "appId或appSecret错误", "error": "invalid_client"}))
    async with connector() as crm:
        with pytest.raises(AuthError) as caught:
            await crm.check()
        text = str(caught.value) + repr(crm.status())
    assert caught.value.code == "20006"
    assert "top-secret-value" not in text and "PC-secret" not in text


@respx.mock(base_url=HOST, assert_all_called=False)
async def test_no_api_access_is_an_auth_error_and_validation_is_a_record_rejection(respx_mock):
    respx_mock.post("/oauth2.0/token").respond(json=TOKEN)
    route = respx_mock.post("/cgi/crm/v2/data/query")
    route.mock(return_value=fail(30003, "客户没有购买openapi配额"))
    async with connector() as crm:
        with pytest.raises(AuthError):
            await pull(crm)
        route.mock(return_value=fail(10013, "offset out of range 10000"))
        with pytest.raises(RecordRejected) as caught:
            await pull(crm)
    assert caught.value.code == "10013"


@respx.mock(base_url="https://portal.example.cn", assert_all_called=False)
async def test_the_web_host_is_refused_in_settings_and_html_or_redirects_are_config_errors(respx_mock):
    with pytest.raises(ValueError, match="not the API gateway"):
        FxiaokeSettings(host="https://www.fxiaoke.com", app_id="a", app_secret="b", permanent_code="c")
    # A host that is not the gateway (a company portal, a proxy's login page) redirects or answers HTML.
    respx_mock.post("/oauth2.0/token").respond(302, headers={"location": "https://portal.example.cn/login"})
    async with connector(host="https://portal.example.cn/") as crm:
        with pytest.raises(ConnectorConfigError, match="not the OpenAPI gateway"):
            await crm.check()
    respx_mock.post("/oauth2.0/token").respond(200, html="<html>纷享销客</html>")
    async with connector(host="https://portal.example.cn/") as crm:
        with pytest.raises(ConnectorConfigError, match="HTML"):
            await crm.check()


@respx.mock(base_url=HOST, assert_all_called=False)
async def test_error_code_may_come_as_a_string(respx_mock):
    respx_mock.post("/oauth2.0/token").respond(json={**TOKEN, "errorCode": "0"})
    respx_mock.post("/cgi/crm/v2/data/query").respond(json={**EMPTY_PAGE, "errorCode": "0"})
    async with connector() as crm:
        assert await pull(crm) == []


async def test_injected_faults_are_absorbed_on_a_real_pull(fx):
    fx.emu.store.seed(600, ["AccountObj"])
    fx.switch(rate_limit=10_000)
    fx.emu.switches.update({"error_rate": 0.3, "fault_kinds": ["server_error", "rate_limit"]})
    async with fx.connector(rate_limit_calls=10_000, retry_attempts=10) as crm:
        records = await pull(crm)
    assert len({r.external_id for r in records}) == 600
    assert sum(fx.emu.calls.snapshot()["faults"].values()) > 0
