"""Odd answers the emulator does not produce on its own, via respx: retries, lost answers, odd shapes."""
from __future__ import annotations

import json

import httpx
import pytest
import respx

from connectors.base import WriteOp
from connectors.errors import AuthError, ConnectorConfigError, ConnectorError
from connectors.kingdee.connector import KingdeeConnector
from connectors.kingdee.protocol import Stub
from connectors.kingdee.settings import KingdeeSettings

BASE = "http://127.0.0.1:9/k3cloud/"  # never reached: respx answers every call


def settings(**overrides) -> KingdeeSettings:
    values = {"server_url": BASE, "acct_id": "acct", "username": "u", "auth": "password", "password": "p",
              "retry": {"attempts": 4, "base_seconds": 0.001, "cap_seconds": 0.005, "total_seconds": 5}}
    values.update(overrides)
    return KingdeeSettings.model_validate(values)


def url(stub: Stub) -> str:
    return f"{BASE}{stub.path}"


LOGIN_OK = httpx.Response(200, json={"LoginResultType": 1, "KDSVCSessionId": "s1", "Message": None},
                          headers=[("Set-Cookie", "kdservice-sessionid=s1; path=/"),
                                   ("Set-Cookie", "ASP.NET_SessionId=a1; path=/")])


def failure(msg_code: int, message: str, wrapped: bool = False):
    body = {"Result": {"ResponseStatus": {"IsSuccess": False, "MsgCode": msg_code, "ErrorCode": 500,
                                          "Errors": [{"FieldName": None, "Message": message, "DIndex": 0}]}}}
    return [[body]] if wrapped else body


@pytest.fixture
async def connector():
    c = KingdeeConnector("erp", settings())
    yield c
    await c.close()


@respx.mock
async def test_call_limit_msgcode_14_is_retried(connector):
    respx.post(url(Stub.VALIDATE_USER)).mock(return_value=LOGIN_OK)
    query = respx.post(url(Stub.EXECUTE_BILL_QUERY)).mock(side_effect=[
        httpx.Response(200, json=failure(14, "接口调用次数超过限制", wrapped=True)),
        httpx.Response(200, json=[[1, "C001"]]),
    ])
    assert await connector.client.query("BD_Customer", ["FCUSTID", "FNumber"]) == [[1, "C001"]]
    assert query.call_count == 2
    assert query.calls[0].request.headers["Cookie"] == "kdservice-sessionid=s1; ASP.NET_SessionId=a1"


@respx.mock
async def test_http_5xx_and_429_on_reads_are_retried(connector):
    respx.post(url(Stub.VALIDATE_USER)).mock(return_value=LOGIN_OK)
    query = respx.post(url(Stub.EXECUTE_BILL_QUERY)).mock(side_effect=[
        httpx.Response(500, text="<html>500</html>"),
        httpx.Response(429, headers={"Retry-After": "0"}),
        httpx.ConnectError("refused"),
        httpx.Response(200, json=[]),
    ])
    assert await connector.client.query("BD_Customer", ["FNumber"]) == []
    assert query.call_count == 4


@respx.mock
async def test_a_create_answered_500_is_not_resent(connector):
    respx.post(url(Stub.VALIDATE_USER)).mock(return_value=LOGIN_OK)
    save = respx.post(url(Stub.BATCH_SAVE)).mock(return_value=httpx.Response(500, text="boom"))
    results = await connector.push("customer", [WriteOp(key=str(i), action="create", data={"FName": f"甲{i}"})
                                                for i in range(2)])
    assert save.call_count == 1
    assert [(r.ok, r.code, r.retryable) for r in results] == [(False, "OUTCOME_UNKNOWN", True)] * 2


@respx.mock
async def test_a_create_refused_before_sending_is_retried(connector):
    respx.post(url(Stub.VALIDATE_USER)).mock(return_value=LOGIN_OK)
    ok = {"Result": {"ResponseStatus": {"IsSuccess": True, "MsgCode": 0, "Errors": [],
                                        "SuccessEntitys": [{"Id": 7, "Number": "CUST7", "DIndex": 0}]}}}
    save = respx.post(url(Stub.SAVE)).mock(side_effect=[httpx.ConnectError("refused"), httpx.Response(200, json=ok)])
    [result] = await connector.push("customer", [WriteOp(key="a", action="create", data={"FName": "甲"})])
    assert save.call_count == 2 and result.ok and result.external_id == "7"


@respx.mock
async def test_string_booleans_and_dindex_in_a_write_answer(connector):
    respx.post(url(Stub.VALIDATE_USER)).mock(return_value=LOGIN_OK)
    answer = {"Result": {"ResponseStatus": {
        "ErrorCode": "500", "IsSuccess": "false", "MsgCode": "11",
        "Errors": [{"FieldName": "FName", "Message": "名称必录", "DIndex": "1"}],
        "SuccessEntitys": [{"Id": "101", "Number": "C1", "DIndex": "0"}, {"Id": "103", "Number": "C3", "DIndex": 2}],
    }}}
    respx.post(url(Stub.BATCH_SAVE)).mock(return_value=httpx.Response(200, json=answer))
    results = await connector.push("customer", [WriteOp(key=k, action="create", data={"FName": k}) for k in "abc"])
    assert [(r.ok, r.external_id) for r in results] == [(True, "101"), (False, None), (True, "103")]
    assert results[1].code == "MsgCode 11" and results[1].message == "[FName] 名称必录"


@respx.mock
async def test_a_whole_call_error_without_dindex_fails_every_row(connector):
    respx.post(url(Stub.VALIDATE_USER)).mock(return_value=LOGIN_OK)
    answer = {"Result": {"ResponseStatus": {"IsSuccess": False, "MsgCode": 8,
                                            "Errors": [{"FieldName": None, "Message": "参数错误", "DIndex": None}]}}}
    respx.post(url(Stub.BATCH_SAVE)).mock(return_value=httpx.Response(200, json=answer))
    results = await connector.push("customer", [WriteOp(key=k, action="create", data={"FName": k}) for k in "ab"])
    assert [(r.ok, r.message) for r in results] == [(False, "参数错误")] * 2


@respx.mock
async def test_no_permission_is_an_auth_error(connector):
    respx.post(url(Stub.VALIDATE_USER)).mock(return_value=LOGIN_OK)
    respx.post(url(Stub.EXECUTE_BILL_QUERY)).mock(
        return_value=httpx.Response(200, json=failure(2, "没有客户的查看权限", wrapped=True)))
    with pytest.raises(AuthError, match="没有客户的查看权限"):
        await connector.client.query("BD_Customer", ["FNumber"])


@respx.mock
async def test_text_answers_and_bad_shapes_are_clear_errors(connector):
    respx.post(url(Stub.VALIDATE_USER)).mock(return_value=LOGIN_OK)
    query = respx.post(url(Stub.EXECUTE_BILL_QUERY))
    query.mock(return_value=httpx.Response(200, text="response_error: 对象不存在"))
    with pytest.raises(ConnectorError, match="not JSON.*response_error"):
        await connector.client.query("BD_Customer", ["FNumber"])
    query.mock(return_value=httpx.Response(200, json=[[1, 2, 3]]))
    with pytest.raises(ConnectorError, match="rows of 3 values for 2 field keys"):
        await connector.client.query("BD_Customer", ["FNumber", "FName"])
    query.mock(return_value=httpx.Response(200, json={"rows": []}))
    with pytest.raises(ConnectorError, match="unexpected shape"):
        await connector.client.query("BD_Customer", ["FNumber"])


@respx.mock
async def test_wrong_server_url_is_a_config_error(connector):
    respx.post(url(Stub.VALIDATE_USER)).mock(return_value=httpx.Response(404, text="Not Found"))
    with pytest.raises(ConnectorConfigError, match="check server_url"):
        await connector.check()


@respx.mock
async def test_session_id_in_the_login_body_when_cookies_are_stripped(connector):
    respx.post(url(Stub.VALIDATE_USER)).mock(
        return_value=httpx.Response(200, json={"LoginResultType": 1, "KDSVCSessionId": "from-body"}))
    query = respx.post(url(Stub.EXECUTE_BILL_QUERY)).mock(return_value=httpx.Response(200, json=[]))
    await connector.client.query("BD_Customer", ["FNumber"])
    assert query.calls[0].request.headers["Cookie"] == "kdservice-sessionid=from-body"


@respx.mock
async def test_requests_are_utf8_json_in_the_sdk_shape(connector):
    respx.post(url(Stub.VALIDATE_USER)).mock(return_value=LOGIN_OK)
    ok = {"Result": {"ResponseStatus": {"IsSuccess": True, "SuccessEntitys": [{"Id": 1, "DIndex": 0}]}}}
    save = respx.post(url(Stub.SAVE)).mock(return_value=httpx.Response(200, json=ok))
    await connector.push("customer", [WriteOp(key="a", action="create", data={"FName": "深圳市华为技术有限公司"})])
    request = save.calls[0].request
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    assert "深圳市华为技术有限公司".encode() in request.content  # not \\u-escaped
    body = json.loads(request.content)
    assert body["formid"] == "BD_Customer" and body["data"]["Model"]["FName"] == "深圳市华为技术有限公司"
