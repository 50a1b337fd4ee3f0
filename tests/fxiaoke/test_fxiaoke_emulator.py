"""The emulator's contract, spoken to with raw HTTP: auth, thirdTraceId, envelope, query
limits, paths, record shapes, two-step delete, throttling and the admin API."""
from __future__ import annotations

import re
import time
import uuid

import httpx
import pytest
from typer.testing import CliRunner

from connectors.fxiaoke.emulator import EmulatorConfig, FxiaokeEmulator
from connectors.fxiaoke.plugin import emulator_main

QUERY = "/cgi/crm/v2/data/query"


class Raw:
    """A bare OpenAPI client: current-style headers, a fresh thirdTraceId per call."""

    def __init__(self, fx) -> None:
        self.fx = fx
        self.http = httpx.Client(base_url=fx.url)
        creds = fx.emu.credentials()
        token = self.post("/oauth2.0/token", {"appId": creds["app_id"], "appSecret": creds["app_secret"],
                                              "permanentCode": creds["permanent_code"], "grantType": "app_secret"})
        self.token_answer = token
        self.headers = {"authorization": f"Bearer {token['accessToken']}", "x-fs-ea": token["ea"], "x-fs-userid": "1000"}

    def post(self, path: str, body: dict, *, trace: str | None = "new", headers: dict | None = None) -> dict:
        params = {} if trace is None else {"thirdTraceId": str(uuid.uuid4()) if trace == "new" else trace}
        response = self.http.post(path, params=params, json=body, headers=headers if headers is not None
                                  else getattr(self, "headers", {}))
        assert response.status_code == 200  # errors are HTTP 200 too
        return response.json()

    def query(self, info: dict, *, object_name: str = "AccountObj", path: str = QUERY, **data) -> dict:
        return self.post(path, {"data": {"dataObjectApiName": object_name, "search_query_info": info, **data}})


@pytest.fixture
def raw(fx):
    client = Raw(fx)
    yield client
    client.http.close()


def test_token_answers_and_reuse_within_the_window(fx, raw):
    answer = raw.token_answer
    assert answer["errorCode"] == 0 and answer["expiresIn"] in (7199, 7200)
    assert set(answer) >= {"accessToken", "expiresIn", "ea", "appId", "openUserId", "traceId", "errorMessage"}
    creds = fx.emu.credentials()
    again = raw.post("/oauth2.0/token", {"appId": creds["app_id"], "appSecret": creds["app_secret"],
                                         "permanentCode": creds["permanent_code"], "grantType": "app_secret"})
    assert again["accessToken"] == answer["accessToken"]  # the same token inside the first 6,600 s
    legacy = raw.post("/cgi/corpAccessToken/get/V2", {"appId": creds["app_id"], "appSecret": creds["app_secret"],
                                                      "permanentCode": creds["permanent_code"]})
    assert legacy["corpId"] == creds["corp_id"] and legacy["corpAccessToken"] != answer["accessToken"]
    bad = raw.post("/oauth2.0/token", {"appId": creds["app_id"], "appSecret": "x", "permanentCode": "y",
                                       "grantType": "app_secret"})
    assert bad["errorCode"] == 20006 and "error_description" in bad
    bad = raw.post("/cgi/corpAccessToken/get/V2", {"appId": creds["app_id"], "appSecret": creds["app_secret"],
                                                   "permanentCode": "y"})
    assert bad["errorCode"] == 20015


def test_short_token_ttl_expires_into_20016(fx):
    fx.switch(token_ttl=1.0)
    client = Raw(fx)
    assert client.query({"limit": 10, "offset": 0})["errorCode"] == 0
    time.sleep(1.1)
    answer = client.query({"limit": 10, "offset": 0})
    assert answer["errorCode"] == 20016
    client.http.close()


def test_third_trace_id_is_required_and_must_be_fresh(raw):
    assert raw.post(QUERY, {}, trace=None)["errorCode"] == 10006
    assert raw.post(QUERY, {}, trace="not-a-uuid")["errorCode"] == 10006
    reused = str(uuid.uuid4())
    assert raw.query({"limit": 10, "offset": 0})["errorCode"] == 0
    raw.post(QUERY, {"data": {"dataObjectApiName": "AccountObj"}}, trace=reused)
    assert raw.post(QUERY, {"data": {"dataObjectApiName": "AccountObj"}}, trace=reused)["errorCode"] == 10006


def test_auth_is_checked_in_both_styles(fx, raw):
    assert raw.post(QUERY, {}, headers={})["errorCode"] == 20017
    assert raw.post(QUERY, {}, headers={**raw.headers, "authorization": "Bearer nope"})["errorCode"] == 20016
    assert raw.post(QUERY, {}, headers={**raw.headers, "authorization": raw.headers["authorization"][7:]})[
        "errorCode"] == 20016
    creds = fx.emu.credentials()
    legacy_token = raw.post("/cgi/corpAccessToken/get/V2", {"appId": creds["app_id"], "appSecret": creds["app_secret"],
                                                            "permanentCode": creds["permanent_code"]})["corpAccessToken"]
    body = {"corpAccessToken": legacy_token, "corpId": creds["corp_id"], "currentOpenUserId": creds["open_user_id"],
            "data": {"dataObjectApiName": "AccountObj", "search_query_info": {"limit": 5, "offset": 0}}}
    assert raw.post(QUERY, body, headers={})["errorCode"] == 0
    # the legacy token is not a Bearer token
    assert raw.post(QUERY, body, headers={**raw.headers, "authorization": f"Bearer {legacy_token}"})["errorCode"] == 20016


def test_envelope_and_record_shapes(fx, raw):
    fx.emu.store.seed(20)
    answer = raw.query({"limit": 5, "offset": 0, "orders": [{"fieldName": "_id", "isAsc": True}]},
                       object_name="NewOpportunityObj", find_explicit_total_num=True)
    assert (answer["errorCode"], answer["errorMessage"], answer["errorDescription"]) == (0, "OK", "success")
    assert re.match(r"^E-O\.fs_emulator\.\d+-[0-9a-f]{16}$", answer["traceId"])
    data = answer["data"]
    assert (data["offset"], data["limit"], data["total"]) == (0, 5, 10)
    deal = data["dataList"][0]
    assert re.fullmatch(r"[0-9a-f]{24}", deal["_id"])
    assert isinstance(deal["owner"], list) and isinstance(deal["amount"], str) and float(deal["amount"]) > 0
    assert isinstance(deal["create_time"], int) and deal["create_time"] > 1_600_000_000_000
    assert isinstance(deal["close_date"], int) and deal["life_status"] == "normal" and deal["version"].isdigit()
    assert deal["is_deleted"] is False and "remark" not in deal  # null fields are left out
    with_nulls = raw.post("/cgi/crm/v2/data/get", {"includeNull": True, "data": {
        "dataObjectApiName": "NewOpportunityObj", "objectDataId": deal["_id"]}})
    assert with_nulls["data"]["_id"] == deal["_id"]
    stages = {r["sales_stage"] for r in raw.query({"limit": 100, "offset": 0},
                                                  object_name="NewOpportunityObj")["data"]["dataList"]}
    assert len(stages) >= 3  # several stages
    names = [r["name"] for r in raw.query({"limit": 20, "offset": 0})["data"]["dataList"]]
    assert any(re.search(r"[\u4e00-\u9fff]", n) for n in names)  # Chinese company names


def test_query_limits(fx, raw):
    fx.emu.store.seed(30, ["AccountObj"])
    assert raw.query({"limit": 101, "offset": 0})["errorCode"] == 10006
    assert raw.query({"limit": 20, "offset": 30})["errorCode"] == 10006  # not a multiple of limit
    wall = raw.query({"limit": 100, "offset": 10100})
    assert (wall["errorCode"], wall["errorMessage"], wall["errorDescription"]) == (
        10013, "offset out of range 10000", "offset cannot exceed 10000")
    assert raw.query({"limit": 100, "offset": 10000})["errorCode"] == 0
    quick = raw.query({"limit": 10, "offset": 0}, find_explicit_total_num=False)["data"]
    counted = raw.query({"limit": 10, "offset": 0})["data"]
    assert quick["total"] == 0 and counted["total"] == 30  # find_explicit_total_num defaults to true
    fx.switch(limit_over_max="clamp")
    assert raw.query({"limit": 500, "offset": 0})["data"]["limit"] == 100


def test_filters_orders_and_keyset(fx, raw):
    fx.emu.store.seed(250, ["AccountObj"])
    rows = sorted(fx.emu.store.dump("AccountObj"), key=lambda r: r["_id"])
    page = raw.query({"limit": 100, "offset": 0, "orders": [{"fieldName": "_id", "isAsc": True}],
                      "filters": [{"field_name": "_id", "operator": "GT", "field_values": [rows[99]["_id"]]}]})
    assert [r["_id"] for r in page["data"]["dataList"]] == [r["_id"] for r in rows[100:200]]
    owner = rows[0]["owner"][0]
    mine = raw.query({"limit": 100, "offset": 0, "filters": [
        {"field_name": "owner", "operator": "IN", "field_values": [owner]},
        {"field_name": "account_level", "operator": "EQ", "field_values": ["A"]}]}, find_explicit_total_num=True)
    expected = [r for r in rows if r["owner"] == [owner] and r["account_level"] == "A"]
    assert mine["data"]["total"] == len(expected)
    by_name = raw.query({"limit": 5, "offset": 0, "orders": [{"fieldName": "name", "isAsc": False}]})["data"]["dataList"]
    assert [r["name"] for r in by_name] == sorted((r["name"] for r in rows), reverse=True)[:5]
    bad = raw.query({"limit": 5, "offset": 0, "filters": [{"field_name": "name", "operator": "ABOUT",
                                                           "field_values": ["x"]}]})
    assert bad["errorCode"] == 10006


def test_preset_and_custom_paths_are_separate(fx, raw):
    fx.emu.store.seed(10)
    assert raw.query({"limit": 5, "offset": 0}, object_name="ServiceContract__c")["errorCode"] == 10006
    assert raw.query({"limit": 5, "offset": 0}, object_name="ServiceContract__c",
                     path="/cgi/crm/custom/v2/data/query")["errorCode"] == 0
    assert raw.query({"limit": 5, "offset": 0}, path="/cgi/crm/custom/v2/data/query")["errorCode"] == 10006
    assert raw.post("/cgi/crm/v2/data/frobnicate", {})["errorCode"] == 10006


def test_invalid_then_delete_and_recover(fx, raw):
    fx.emu.store.seed(2, ["AccountObj"])
    rid = fx.emu.store.dump("AccountObj")[0]["_id"]
    early = raw.post("/cgi/crm/v2/data/delete", {"data": {"dataObjectApiName": "AccountObj", "idList": [rid]}})
    assert early["errorCode"] == 201112016  # only invalid data can be deleted
    assert raw.post("/cgi/crm/v2/data/invalid", {"data": {"dataObjectApiName": "AccountObj",
                                                          "object_data_id": rid}})["errorCode"] == 0
    row = fx.emu.store.get("AccountObj", rid)
    assert row["life_status"] == "invalid" and row["is_deleted"] is True
    # hidden from plain queries, visible when asked for
    assert rid not in [r["_id"] for r in raw.query({"limit": 100, "offset": 0})["data"]["dataList"]]
    asked = raw.query({"limit": 100, "offset": 0, "filters": [
        {"field_name": "life_status", "operator": "EQ", "field_values": ["invalid"]}]})
    assert [r["_id"] for r in asked["data"]["dataList"]] == [rid]
    update = raw.post("/cgi/crm/v2/data/update", {"data": {"object_data": {
        "_id": rid, "dataObjectApiName": "AccountObj", "tel": "1"}}})
    assert update["errorCode"] == 201112016
    assert raw.post("/cgi/crm/v2/data/recover", {"data": {"dataObjectApiName": "AccountObj",
                                                          "idList": [rid]}})["errorCode"] == 0
    raw.post("/cgi/crm/v2/data/invalid", {"data": {"dataObjectApiName": "AccountObj", "object_data_id": rid}})
    assert raw.post("/cgi/crm/v2/data/delete", {"data": {"dataObjectApiName": "AccountObj",
                                                         "idList": [rid]}})["errorCode"] == 0
    gone = raw.post("/cgi/crm/v2/data/get", {"data": {"dataObjectApiName": "AccountObj", "objectDataId": rid}})
    assert gone["errorCode"] == 201112008


def test_update_cannot_change_the_owner_but_change_owner_can(fx, raw):
    fx.emu.store.seed(1, ["PartnerObj"])
    rid = fx.emu.store.dump("PartnerObj")[0]["_id"]
    raw.post("/cgi/crm/v2/data/update", {"data": {"object_data": {"_id": rid, "dataObjectApiName": "PartnerObj",
                                                                  "owner": ["1009"], "tel": "020-1"}}})
    row = fx.emu.store.get("PartnerObj", rid)
    assert row["tel"] == "020-1" and row["owner"] != ["1009"]
    # the official example writes ownerId as the string "[…]"
    answer = raw.post("/cgi/crm/v2/data/changeOwner", {"data": {"dataObjectApiName": "PartnerObj", "Data": [
        {"objectDataId": rid, "ownerId": f"[{fx.emu.store.employees.to_open['1009']}]"}]}})
    assert answer["errorCode"] == 0 and fx.emu.store.get("PartnerObj", rid)["owner"] == ["1009"]


def test_per_interface_throttle_answers_30004(fx, raw):
    fx.switch(rate_limit=5, rate_period=30)
    answers = [raw.query({"limit": 1, "offset": 0})["errorCode"] for _ in range(8)]
    assert answers == [0] * 5 + [30004] * 3
    # another interface has its own window
    assert raw.post("/cgi/crm/v2/object/list", {})["errorCode"] == 0
    fx.switch(throttle_code=14001)
    assert raw.query({"limit": 1, "offset": 0})["errorCode"] == 14001


def test_daily_quota_and_injected_faults_are_fxiaoke_shaped(fx, raw):
    fx.switch(daily_quota=2)
    codes = [raw.post("/cgi/crm/v2/object/list", {})["errorCode"] for _ in range(3)]
    assert codes == [0, 0, 30002]
    fx.switch(daily_quota=None)
    fx.emu.switches.update({"error_rate": 1.0, "fault_kinds": ["server_error"]})
    assert raw.post("/cgi/crm/v2/object/list", {})["errorCode"] == -1
    fx.emu.switches.update({"fault_kinds": ["rate_limit"]})
    assert raw.post("/cgi/crm/v2/object/list", {})["errorCode"] == 30004


def test_discovery_endpoints(fx, raw):
    listed = raw.post("/cgi/crm/v2/object/list", {})["data"]["objects"]
    by_name = {o["describeApiName"]: o for o in listed}
    assert by_name["ServiceContract__c"]["defineType"] == "custom" and by_name["AccountObj"]["defineType"] == "package"
    assert by_name["NewOpportunityObj"]["isActive"] and not by_name["OpportunityObj"]["isActive"]
    described = raw.post("/cgi/crm/v2/object/describe", {"data": {"apiName": "ContactObj", "includeDetail": True}})
    fields = described["data"]["describe"]["fields"]
    assert fields["account_id"]["type"] == "object_reference" and fields["account_id"]["target_api_name"] == "AccountObj"
    assert fields["owner"]["type"] == "employee"


def test_admin_api(fx):
    with httpx.Client(base_url=fx.url) as admin:
        created = admin.post("/_admin/seed", json={"count": 12}).json()["created"]
        assert created["AccountObj"] == 12 and created["ContactObj"] == 12 and created["PartnerObj"] == 1
        assert len(admin.get("/_admin/records/AccountObj").json()) == 12
        row = admin.post("/_admin/records/PartnerObj", json={"name": "武汉博远制造有限公司"}).json()
        assert row["owner"] == ["1001"]
        assert admin.patch(f"/_admin/records/PartnerObj/{'f' * 24}", json={"tel": "1"}).status_code == 404
        assert admin.post("/_admin/records/ContactObj", json={"name": "无客户"}).status_code == 400
        assert admin.get("/_admin/records/NoSuchObj").status_code == 404
        Raw(fx)  # one token
        assert admin.post("/_admin/expire-tokens").json()["expired"] == 1
        assert admin.get("/_admin/calls").json()["total"] >= 1
        state = admin.get("/_admin/fxiaoke/state").json()
        assert state["records"]["AccountObj"] == 12
        assert admin.post("/_admin/reset").json() == {"ok": True}
        assert admin.get("/_admin/records/AccountObj").json() == []


def test_the_store_holds_100k_records_and_pages_them_by_index():
    emu = FxiaokeEmulator(EmulatorConfig(seed=3))
    base = 1_700_000_000_000
    # Plain records (the fake-data generator is not what is measured here); times collide in pairs.
    emu.store.load("AccountObj", [
        {"_id": f"{i * 7919 % 100_000:024x}", "name": f"客户{i}", "owner": ["1001"], "life_status": "normal",
         "is_deleted": False, "version": "1", "create_time": base, "last_modified_time": base + i // 2}
        for i in range(100_000)])
    query = emu.handler("query", False)
    after = None
    started = time.perf_counter()
    for _ in range(20):
        filters = [{"field_name": "_id", "operator": "GT", "field_values": [after]}] if after else []
        rows = query({"data": {"dataObjectApiName": "AccountObj", "find_explicit_total_num": False,
                               "search_query_info": {"limit": 100, "offset": 0, "filters": filters,
                                                     "orders": [{"fieldName": "_id", "isAsc": True}]}}},
                     "1000", "current")["data"]["dataList"]
        after = rows[-1]["_id"]
    assert (time.perf_counter() - started) / 20 < 0.05  # index-driven, not a scan of 100k
    newest = query({"data": {"dataObjectApiName": "AccountObj", "find_explicit_total_num": False,
                             "search_query_info": {"limit": 3, "offset": 0, "orders": [
                                 {"fieldName": "last_modified_time", "isAsc": False}]}}}, "1000", "current")
    times = [r["last_modified_time"] for r in newest["data"]["dataList"]]
    assert times == sorted(times, reverse=True)


def test_cli_refuses_non_loopback_hosts_and_bad_input():
    import typer

    app = typer.Typer()
    app.command()(emulator_main)
    runner = CliRunner()
    result = runner.invoke(app, ["--port", "8123", "--host", "0.0.0.0", "--app-id", "FSAID_1",
                                 "--app-secret", "s", "--permanent-code", "p"])
    assert result.exit_code == 2 and "loopback" in result.output
    result = runner.invoke(app, ["--port", "8123", "--app-id", "FSAID_1", "--app-secret", "s",
                                 "--permanent-code", "p", "--push-url", "http://203.0.113.5/hook"])
    assert result.exit_code == 2 and "loopback" in result.output
    result = runner.invoke(app, ["--port", "8123"])
    assert result.exit_code == 2 and "--app-id" in result.output
