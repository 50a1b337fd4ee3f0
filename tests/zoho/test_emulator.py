"""The emulator keeps Zoho's contract: paths, auth, limits, status codes and error bodies."""
from __future__ import annotations

import time

import httpx
import pytest

from connectors.emulation.server import serve_in_thread
from connectors.zoho.emulator import ZohoEmulator


@pytest.fixture
def api(org):
    token = org.emu.tokens.grant({"grant_type": "refresh_token", **org.emu.credentials()}, org.url)["access_token"]
    with httpx.Client(base_url=org.url, headers={"Authorization": f"Zoho-oauthtoken {token}"}) as client:
        yield client


def error_of(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["code"]


def test_token_endpoint_answers_like_zoho_accounts(org):
    creds = org.emu.credentials()
    with httpx.Client(base_url=org.url) as client:
        form = client.post("/oauth/v2/token", data={"grant_type": "refresh_token", **creds}).json()
        query = client.post("/oauth/v2/token", params={"grant_type": "refresh_token", **creds}).json()
        wrong_client = client.post("/oauth/v2/token", data={"grant_type": "refresh_token", **creds, "client_id": "1000.NOPE"})
        wrong_refresh = client.post("/oauth/v2/token", data={"grant_type": "refresh_token", **creds, "refresh_token": "1000.x"})
    for answer in (form, query):
        assert set(answer) >= {"access_token", "expires_in", "api_domain", "token_type"}
        assert answer["expires_in"] == 3600 and answer["api_domain"] == org.url and answer["access_token"].startswith("1000.")
    assert wrong_client.status_code == 200 and wrong_client.json() == {"error": "invalid_client"}
    assert wrong_refresh.status_code == 200 and wrong_refresh.json() == {"error": "invalid_code"}


def test_at_most_30_access_tokens_per_refresh_token(org):
    creds = {"grant_type": "refresh_token", **org.emu.credentials()}
    tokens = [org.emu.tokens.grant(creds, org.url)["access_token"] for _ in range(31)]
    assert org.emu.tokens.check(f"Zoho-oauthtoken {tokens[0]}") == "INVALID_TOKEN"  # the oldest was deleted
    assert org.emu.tokens.check(f"Zoho-oauthtoken {tokens[-1]}") is None


def test_auth_errors(org, api):
    with httpx.Client(base_url=org.url) as anonymous:
        assert error_of(anonymous.get("/crm/v8/Accounts", params={"fields": "Account_Name"})) == (401, "AUTHENTICATION_FAILURE")
        r = anonymous.get("/crm/v8/Accounts", params={"fields": "Account_Name"}, headers={"Authorization": "Zoho-oauthtoken 1000.dead"})
        assert r.json() == {"code": "INVALID_TOKEN", "details": {}, "message": "invalid oauth token", "status": "error"}
    bearer = api.headers["Authorization"].replace("Zoho-oauthtoken", "Bearer")
    assert api.get("/crm/v8/Accounts", params={"fields": "Account_Name"}, headers={"Authorization": bearer}).status_code == 204
    org.switch(accept_bearer=False)
    assert error_of(api.get("/crm/v8/Accounts", params={"fields": "Account_Name"}, headers={"Authorization": bearer})) == (
        401, "AUTHENTICATION_FAILURE")
    org.emu.expire_tokens()
    assert error_of(api.get("/crm/v8/Accounts", params={"fields": "Account_Name"})) == (401, "INVALID_TOKEN")


def test_get_records_limits_and_errors(org, api):
    org.emu.seed(2500, ["Accounts"])
    assert error_of(api.get("/crm/v8/Accounts")) == (400, "REQUIRED_PARAM_MISSING")
    many = ",".join(f"Field_{i}" for i in range(51))
    r = api.get("/crm/v8/Accounts", params={"fields": many})
    assert error_of(r) == (400, "LIMIT_EXCEEDED") and r.json()["message"] == "Fields limit exceeded."
    r = api.get("/crm/v8/Accounts", params={"fields": "Account_Name", "page": 11})
    assert r.status_code == 400 and r.json() == {
        "code": "DISCRETE_PAGINATION_LIMIT_EXCEEDED", "details": {"limit": 2000},
        "message": "You can only get the first 2000 records without using page_token param", "status": "error"}
    first = api.get("/crm/v8/Accounts", params={"fields": "Account_Name", "page": 10}).json()
    info = first["info"]
    assert set(info) == {"call", "per_page", "next_page_token", "count", "sort_by", "page", "previous_page_token",
                         "page_token_expiry", "sort_order", "email", "more_records"}
    assert info["page"] == 10 and info["count"] == 200 and info["more_records"] and info["next_page_token"]
    token = info["next_page_token"]
    nxt = api.get("/crm/v8/Accounts", params={"fields": "Account_Name", "page_token": token}).json()
    assert nxt["info"]["page"] == 11 and nxt["info"]["count"] == 200
    assert not {r["id"] for r in nxt["data"]} & {r["id"] for r in first["data"]}
    assert error_of(api.get("/crm/v8/Accounts", params={"fields": "Account_Name", "page_token": token, "page": 2})) == (
        400, "AMBIGUITY_DURING_PROCESSING")
    assert error_of(api.get("/crm/v8/Accounts", params={"fields": "Phone", "page_token": token})) == (400, "TOKEN_BOUND_DATA_MISMATCH")
    assert error_of(api.get("/crm/v8/Accounts", params={"fields": "Account_Name", "page_token": "c8582e7c7"})) == (400, "INVALID_DATA")
    org.emu.page_tokens.expire_all()
    assert error_of(api.get("/crm/v8/Accounts", params={"fields": "Account_Name", "page_token": token})) == (400, "EXPIRED_VALUE")
    assert error_of(api.get("/crm/v8/Accounts", params={"fields": "Account_Name", "sort_by": "Account_Name"})) == (400, "INVALID_DATA")
    assert error_of(api.get("/crm/v8/Leeds", params={"fields": "Last_Name"})) == (400, "INVALID_MODULE")
    assert error_of(api.get("/crm/v9/Accounts", params={"fields": "Last_Name"})) == (404, "INVALID_URL_PATTERN")
    assert error_of(api.get("/crm/v8/Accounts/actions/nope")) == (404, "INVALID_URL_PATTERN")
    assert error_of(api.patch("/crm/v8/Accounts", json={})) == (405, "INVALID_REQUEST_METHOD")
    assert api.get("/crm/v8/Accounts/actions/count").json() == {"count": "2500"}


def test_records_look_like_zoho_records(org, api):
    org.switch(time_zone="+05:30")
    org.emu.seed(30, ["Partners", "Accounts", "Contacts", "Deals"])
    deals = api.get("/crm/v8/Deals", params={"fields": "Deal_Name,Stage,Amount,Account_Name,Owner,Modified_Time,Closing_Date"}).json()
    stages = {d["Stage"] for d in deals["data"]}
    assert len(stages) >= 4
    one = deals["data"][0]
    assert one["id"].isdigit() and len(one["id"]) == 19
    assert one["Modified_Time"].endswith("+05:30") and set(one["Owner"]) == {"id", "name", "email"}
    accounts = api.get("/crm/v8/Accounts", params={"fields": "Account_Name,Unified_Social_Credit_Code,Email"}).json()["data"]
    assert any(not a["Account_Name"].isascii() for a in accounts) and any(a["Account_Name"].isascii() for a in accounts)
    assert all("Email" not in a for a in accounts), "fields a module does not have are left out"
    single = api.get(f"/crm/v8/Deals/{one['id']}").json()["data"][0]
    assert single["Deal_Name"] == one["Deal_Name"] and "Probability" in single
    assert api.get("/crm/v8/Deals/5725767999999999999").status_code == 204


def test_if_modified_since_and_sorting(org, api):
    org.emu.seed(50, ["Accounts"])
    newest = api.get("/crm/v8/Accounts", params={"fields": "Modified_Time", "sort_by": "Modified_Time", "sort_order": "desc",
                                                 "per_page": 1}).json()["data"][0]["Modified_Time"]
    r = api.get("/crm/v8/Accounts", params={"fields": "Modified_Time"}, headers={"If-Modified-Since": newest})
    assert r.status_code == 200 and [d["Modified_Time"] for d in r.json()["data"]] == [newest]  # inclusive
    org.switch(if_modified_since_inclusive=False)
    assert api.get("/crm/v8/Accounts", params={"fields": "Modified_Time"}, headers={"If-Modified-Since": newest}).status_code == 304
    asc = api.get("/crm/v8/Accounts", params={"fields": "Modified_Time", "sort_by": "Modified_Time", "sort_order": "asc"}).json()
    stamps = [d["Modified_Time"] for d in asc["data"]]
    assert stamps == sorted(stamps)


def test_writes_statuses_and_bodies(org, api):
    too_many = {"data": [{"Vendor_Name": f"V{i}"} for i in range(101)]}
    assert error_of(api.post("/crm/v8/Vendors", json=too_many)) == (400, "LIMIT_EXCEEDED")
    assert error_of(api.post("/crm/v8/Vendors", json={"records": []})) == (400, "MANDATORY_NOT_FOUND")
    created = api.post("/crm/v8/Vendors", json={"data": [{"Vendor_Name": "恒通物流有限公司"}, {"Vendor_Name": "Acme Ltd."}]})
    assert created.status_code == 201
    item = created.json()["data"][0]
    assert item["code"] == "SUCCESS" and item["message"] == "record added" and item["status"] == "success"
    assert set(item["details"]) >= {"Modified_Time", "Modified_By", "Created_Time", "id", "Created_By"}
    mixed = api.post("/crm/v8/Vendors", json={"data": [{"Vendor_Name": "New Co"}, {"Vendor_Name": "acme ltd."}]})
    assert mixed.status_code == 207
    dup = mixed.json()["data"][1]
    assert dup["code"] == "DUPLICATE_DATA" and dup["details"]["api_name"] == "Vendor_Name"
    assert dup["details"]["json_path"] == "$.data[1].Vendor_Name"
    assert dup["details"]["duplicate_record"]["id"] == created.json()["data"][1]["details"]["id"]
    failed = api.post("/crm/v8/Vendors", json={"data": [{"Email": "x@example.com"}]})
    assert failed.status_code == 400 and failed.json()["data"][0]["code"] == "MANDATORY_NOT_FOUND"
    upsert = api.post("/crm/v8/Vendors/upsert", json={"data": [{"Vendor_Name": "New Co", "Phone": "123"}, {"Vendor_Name": "Third"}]})
    assert [(d["action"], d["duplicate_field"]) for d in upsert.json()["data"]] == [("update", "Vendor_Name"), ("insert", None)]
    bad_key = api.post("/crm/v8/Vendors/upsert", json={"data": [{"Vendor_Name": "x"}], "duplicate_check_fields": ["Phone"]})
    assert error_of(bad_key) == (400, "INVALID_DATA")
    vid = item["details"]["id"]
    deleted = api.delete("/crm/v8/Vendors", params={"ids": f"{vid},5725767999999999999"})
    assert deleted.status_code == 207
    assert deleted.json()["data"][0] == {"code": "SUCCESS", "details": {"id": vid}, "message": "record deleted", "status": "success"}
    assert deleted.json()["data"][1]["message"] == "record not deleted"
    gone = api.get("/crm/v8/Vendors/deleted", params={"type": "recycle"}).json()
    entry = gone["data"][0]
    assert set(entry) == {"deleted_by", "id", "display_name", "type", "created_by", "deleted_time"}
    assert entry["id"] == vid and entry["display_name"] == "恒通物流有限公司" and entry["type"] == "recycle"
    assert api.get("/crm/v8/Vendors/deleted", params={"type": "permanent"}).status_code == 204


def test_metadata_is_complete_enough_for_airbyte_and_discover(org, api):
    modules = api.get("/crm/v8/settings/modules").json()["modules"]
    assert {m["api_name"] for m in modules} >= {"Accounts", "Contacts", "Deals", "Vendors", "Partners"}
    partners = next(m for m in modules if m["api_name"] == "Partners")
    assert partners["generated_type"] == "custom" and partners["module_name"].startswith("CustomModule")
    assert api.get("/crm/v8/settings/modules/Deals").json()["modules"][0]["api_name"] == "Deals"
    fields = api.get("/crm/v8/settings/fields", params={"module": "Deals"}).json()["fields"]
    for f in fields:  # the keys Airbyte's FieldMeta requires
        assert {"json_type", "length", "api_name", "data_type", "decimal_place", "system_mandatory", "display_label",
                "pick_list_values"} <= set(f)
    stage = next(f for f in fields if f["api_name"] == "Stage")
    assert stage["system_mandatory"] and "Closed Won" in [v["actual_value"] for v in stage["pick_list_values"]]
    assert error_of(api.get("/crm/v8/settings/fields")) == (400, "REQUIRED_PARAM_MISSING")


def test_v2_paths_for_older_clients(org, api):
    org.emu.seed(2100, ["Accounts"])
    r = api.get("/crm/v2/Accounts", params={"page": 1})  # v2: fields optional
    assert r.status_code == 200 and len(r.json()["data"][0]) > 50
    assert "next_page_token" not in r.json()["info"]
    assert error_of(api.get("/crm/v2/Accounts", params={"page": 11})) == (400, "DISCRETE_PAGINATION_LIMIT_EXCEEDED")
    assert api.get("/crm/v2/settings/modules").status_code == 200


def test_offset_page_tokens_switch(org, api):
    org.switch(page_token_mode="offset")
    org.emu.seed(450, ["Accounts"])
    params = {"fields": "Account_Name", "sort_by": "id", "sort_order": "asc"}
    first = api.get("/crm/v8/Accounts", params=params).json()
    second = api.get("/crm/v8/Accounts", params={**params, "page_token": first["info"]["next_page_token"]}).json()
    third = api.get("/crm/v8/Accounts", params={**params, "page_token": second["info"]["next_page_token"]}).json()
    ids = [r["id"] for p in (first, second, third) for r in p["data"]]
    assert len(ids) == len(set(ids)) == 450 and ids == sorted(ids)


def test_watch_api_bodies(org, api):
    body = {"watch": [{"channel_id": 1000000068001, "events": ["Accounts.all", "Deals.edit"], "notify_url": "http://127.0.0.1:9/hook",
                       "token": "TOKEN_FOR_VERIFICATION_OF_1000000068001"}]}
    r = api.post("/crm/v8/actions/watch", json=body)
    assert r.status_code == 201
    item = r.json()["watch"][0]
    assert item["message"] == "Successfully subscribed for actions-watch of the given module"
    assert [e["resource_name"] for e in item["details"]["events"]] == ["Accounts", "Deals"]
    too_long = {"watch": [{**body["watch"][0], "token": "x" * 51}]}
    assert api.post("/crm/v8/actions/watch", json=too_long).json()["watch"][0]["code"] == "INVALID_DATA"
    listed = api.get("/crm/v8/actions/watch").json()["watch"]
    assert sorted(listed[0]["events"]) == ["Accounts.create", "Accounts.delete", "Accounts.edit"]
    off = api.delete("/crm/v8/actions/watch", params={"channel_ids": "1000000068001"}).json()["watch"]
    assert {w["message"] for w in off} == {"Successfully un-subscribed from actions-watch"}
    assert api.get("/crm/v8/actions/watch").status_code == 204


def test_429_bodies_and_credit_header(org, api):
    org.switch(credits_per_day=4)
    assert "x-api-credits-remaining" not in api.get("/crm/v8/settings/modules").headers
    assert api.get("/crm/v8/settings/modules").headers["x-api-credits-remaining"] == "2"
    api.get("/crm/v8/settings/modules")
    api.get("/crm/v8/settings/modules")
    r = api.get("/crm/v8/settings/modules")
    assert r.status_code == 429 and r.json()["code"] == "TOO_MANY_REQUESTS" and "retry-after" not in r.headers


def test_a_module_of_250000_records_pages_quickly():
    emu = ZohoEmulator()
    base = emu.store.now() - 10 * 86400
    rows = [({"Account_Name": f"Company {i}"}, base, base + i // 3, "5725767000000411001") for i in range(250_000)]
    emu.store.add_seeded("Accounts", rows)
    with serve_in_thread(emu.app) as server:
        token = emu.tokens.grant({"grant_type": "refresh_token", **emu.credentials()}, server.url)["access_token"]
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Zoho-oauthtoken {token}"}) as client:
            params = {"fields": "Account_Name,Modified_Time", "sort_by": "Modified_Time", "sort_order": "asc"}
            since = emu.store.fmt(base + 80_000)
            started = time.perf_counter()
            page = client.get("/crm/v8/Accounts", params=params, headers={"If-Modified-Since": since}).json()
            for _ in range(5):
                page = client.get("/crm/v8/Accounts", params={**params, "page_token": page["info"]["next_page_token"]},
                                  headers={"If-Modified-Since": since}).json()
            elapsed = time.perf_counter() - started
            assert page["info"]["count"] == 200 and page["data"][0]["Modified_Time"] >= since
            # An update moves one index entry, and the record becomes the newest.
            rid = page["data"][0]["id"]
            assert client.put(f"/crm/v8/Accounts/{rid}", json={"data": [{"Phone": "+86 10 1234 5678"}]}).status_code == 200
            last = client.get("/crm/v8/Accounts", params={**params, "sort_order": "desc", "per_page": 1}).json()["data"][0]
            assert last["id"] == rid
    assert elapsed < 3.0


def test_org_details_name_the_edition_the_throttle_enforces(org, api):
    """Airbyte's source reads license_details.paid_type from /crm/v2/org to size its metadata calls."""
    answer = api.get("/crm/v2/org")
    assert answer.status_code == 200
    (details,) = answer.json()["org"]
    assert {"id", "company_name", "time_zone", "currency", "iso_code", "license_details"} <= set(details)
    assert details["license_details"]["paid"] is True
    assert details["license_details"]["paid_type"] == "enterprise"  # no concurrency limit set: the default edition
    org.switch(concurrency=10)
    assert api.get("/crm/v8/org").json()["org"][0]["license_details"]["paid_type"] == "standard"
    org.switch(concurrency=5)
    free = api.get("/crm/v8/org").json()["org"][0]["license_details"]
    assert free["paid"] is False and free["paid_type"] is None
    org.switch(edition="ultimate")
    assert api.get("/crm/v8/org").json()["org"][0]["license_details"]["paid_type"] == "ultimate"
    assert error_of(httpx.get(f"{org.url}/crm/v2/org")) == (401, "AUTHENTICATION_FAILURE")
