"""The emulator's own contract: body shapes, FilterString, envelopes, document status, admin API, CLI."""
from __future__ import annotations

import json
from datetime import datetime

import httpx
import pytest
import typer
from typer.testing import CliRunner

from connectors.kingdee.emulator import DEFAULT_CREDENTIALS as CREDS
from connectors.kingdee.emulator_forms import FORMS
from connectors.kingdee.emulator_query import QueryError
from connectors.kingdee.plugin import emulator_main
from connectors.kingdee.protocol import Stub


@pytest.fixture
def session(emu) -> httpx.Client:
    client = httpx.Client(base_url=emu.url, timeout=30)
    answer = client.post(f"/k3cloud/{Stub.VALIDATE_USER.path}",  # lower-case site, as many clients write it
                         json={"acctID": CREDS.acct_id, "username": CREDS.username, "password": CREDS.password,
                               "lcid": 2052})
    assert answer.json()["LoginResultType"] == 1
    assert {"kdservice-sessionid", "ASP.NET_SessionId"} <= set(client.cookies.keys())
    yield client
    client.close()


def query(store, filter: str = "", keys: str = "FNumber", **extra) -> list[list]:
    return store.query({"FormId": "BD_Customer", "FieldKeys": keys, "FilterString": filter, **extra})


def test_login_answer_and_wrong_account(emu):
    answer = httpx.post(f"{emu.url}/K3Cloud/{Stub.LOGIN_BY_APP_SECRET.path}",
                        json={"parameters": json.dumps([CREDS.acct_id, CREDS.username, CREDS.app_id, CREDS.app_secret,
                                                        2052])})
    body = answer.json()
    assert body["LoginResultType"] == 1 and body["IsSuccessByAPI"] is True
    assert body["KDSVCSessionId"] == answer.cookies["kdservice-sessionid"]
    wrong = httpx.post(f"{emu.url}/K3Cloud/{Stub.VALIDATE_USER.path}",
                       json={"parameters": ["nope", CREDS.username, CREDS.password, 2052]})
    assert wrong.json()["LoginResultType"] == -1 and "nope" in wrong.json()["Message"]
    assert "kdservice-sessionid" not in wrong.cookies
    bad_password = httpx.post(f"{emu.url}/K3Cloud/{Stub.VALIDATE_USER.path}",
                              json={"parameters": [CREDS.acct_id, CREDS.username, "x", 2052]}).json()
    assert bad_password["LoginResultType"] == 0


def test_body_shapes_sdk_and_parameters(emu, session):
    emu.store.seed(3, ["BD_Customer"])
    sdk = session.post(f"/K3Cloud/{Stub.EXECUTE_BILL_QUERY.path}",
                       json={"data": json.dumps({"FormId": "BD_Customer", "FieldKeys": "FNumber"})}).json()
    legacy = session.post(f"/K3Cloud/{Stub.EXECUTE_BILL_QUERY.path}",
                          json={"format": 1, "useragent": "ApiClient", "rid": "x", "v": "1.0",
                                "parameters": [{"FormId": "BD_Customer", "FieldKeys": "FNumber"}]}).json()
    assert sdk == legacy and len(sdk) == 3
    saved = session.post(f"/K3Cloud/{Stub.SAVE.path}",
                         json={"parameters": ["BD_Customer", json.dumps({"Model": {
                             "FName": "参数式保存有限公司", "FCreateOrgId": {"FNumber": "100"},
                             "FUseOrgId": {"FNUMBER": "100"}}})]}).json()
    status = saved["Result"]["ResponseStatus"]
    assert status["IsSuccess"] is True and status["SuccessEntitys"][0]["Number"].startswith("CUST")
    assert saved["Result"]["Id"] == status["SuccessEntitys"][0]["Id"]


@pytest.mark.parametrize(("filter", "expected"), [
    ("FNumber = 'C2'", ["C2"]),
    ("fnumber = 'c2'", ["C2"]),  # keys and text compare case-insensitively, like the ERP's collation
    ("FNumber IN ('C1','C3')", ["C1", "C3"]),
    ("FNumber NOT IN ('C1','C3')", ["C2", "C4"]),
    ("FNumber = 'C1' or FNumber = 'C2' and FTEL = '2'", ["C1", "C2"]),
    ("(FNumber = 'C1' or FNumber = 'C2') and FTEL = '1'", ["C1"]),
    ("not (FNumber = 'C1') and FName like '%科技%'", ["C2", "C3", "C4"]),
    ("FModifyDate >= {ts'2024-01-03 00:00:00'}", ["C3", "C4"]),
    ("FModifyDate >= '2024-01-02' and FModifyDate < '2024-01-03 00:00:00'", ["C2"]),
    ("FModifyDate between '2024-01-02' and '2024-01-03 12:00:00'", ["C2", "C3"]),
    ("F_PAEZ_CreditLimit > 100000.5", ["C3", "C4"]),
    ("FGroup.FNumber = '02' and FFAX is null", ["C4"]),
    ("FTEL <> '1' and FDocumentStatus = 'C'", ["C2", "C4"]),
    ("FName = 'O''Brien 科技'", ["C3"]),
])
def test_filter_strings(emu, filter, expected):
    form = FORMS["BD_Customer"]
    names = ["华信电子", "云启科技", "O'Brien 科技", "星河科技"]
    for i, name in enumerate(names, start=1):
        emu.store.apply_model(form, {"FNumber": f"C{i}", "FName": name, "FTEL": "1" if i % 2 else "2",
                                     "F_PAEZ_CreditLimit": i * 50000, "FGroup": {"FNumber": "02" if i == 4 else "01"},
                                     "FCreateOrgId": {"FNumber": "100"}, "FUseOrgId": {"FNumber": "100"}},
                              status="A" if i == 3 else "C",
                              stamp=datetime(2024, 1, i, 10, 0, 0))
    assert sorted(r[0] for r in query(emu.store, filter)) == expected


@pytest.mark.parametrize(("filter", "code", "fragment"), [
    ("FNumber = = 'x'", 4, "附近有语法错误"),
    ("FNumber = 'x' and", 4, "语句意外结束"),
    ("FNoSuchField = 1", 9, "元数据中标识为FNoSuchField的字段不存在"),
    ("FModifyDate >= 'yesterday'", 4, "转换失败"),
    ("F_PAEZ_CreditLimit > 'lots'", 4, "numeric"),
])
def test_filter_errors(emu, filter, code, fragment):
    with pytest.raises(QueryError) as caught:
        query(emu.store, filter)
    assert caught.value.msg_code == code and fragment in caught.value.message


def test_query_errors_arrive_wrapped(emu, session):
    def ask(**data):
        return session.post(f"/K3Cloud/{Stub.EXECUTE_BILL_QUERY.path}", json={"data": data}).json()

    for answer, code in [
        (ask(FormId="BD_Customer", FieldKeys="FNumber", Limit=10001), 8),
        (ask(FormId="BD_Nope", FieldKeys="FNumber"), 4),
        (ask(FieldKeys="FNumber"), 5),
        (ask(FormId="BD_Customer", FieldKeys="FNumber", OrderString="FNoSuch ASC"), 9),
        (ask(FormId="SAL_SaleOrder", FieldKeys="FQty", FilterString="FSaleOrderEntry_FEntryId > 0 and FNoSuch = 1"), 9),
    ]:
        assert isinstance(answer, list) and answer[0][0]["Result"]["ResponseStatus"]["MsgCode"] == code


def test_paging_and_entry_rows(emu):
    emu.store.seed(20, None)
    headers = emu.store.query({"FormId": "SAL_SaleOrder", "FieldKeys": "FID,FBillNo", "OrderString": "FID"})
    lines = emu.store.query({"FormId": "SAL_SaleOrder", "FieldKeys": "FID,FSaleOrderEntry_FEntryId,FQty",
                             "OrderString": "FID ASC,FSaleOrderEntry_FEntryId DESC"})
    assert len(headers) == 10 and len(lines) == sum(
        len(r["__lines__"]["FSaleOrderEntry"]) for r in emu.store.records["SAL_SaleOrder"].values())
    first = [row for row in lines if row[0] == headers[0][0]]
    assert [row[1] for row in first] == sorted((row[1] for row in first), reverse=True)
    page = emu.store.query({"FormId": "SAL_SaleOrder", "FieldKeys": "FID,FBillNo", "OrderString": "FID",
                            "StartRow": 3, "Limit": 4})
    assert page == headers[3:7]
    assert emu.store.query({"FormId": "SAL_SaleOrder", "FieldKeys": "FID,FBillNo", "TopRowCount": 2}) == headers[:2]


def test_document_status_follows_submit_audit_unaudit(emu, session):
    def op(stub: Stub, ids: str) -> dict:
        return session.post(f"/K3Cloud/{stub.path}", json={"formid": "BD_Customer",
                                                           "data": {"CreateOrgId": 0, "Numbers": [], "Ids": ids}}
                            ).json()["Result"]["ResponseStatus"]

    record = emu.store.apply_model(FORMS["BD_Customer"], {"FName": "状态测试", "FCreateOrgId": {"FNumber": "100"},
                                                          "FUseOrgId": {"FNumber": "100"}})
    pk = str(record["FCUSTID"])
    modified = record["FModifyDate"]
    assert record["FDocumentStatus"] == "A"
    early = op(Stub.AUDIT, pk)
    assert early["IsSuccess"] is False and "不能审核" in early["Errors"][0]["Message"]
    assert op(Stub.SUBMIT, pk)["IsSuccess"] and record["FDocumentStatus"] == "B"
    audited = op(Stub.AUDIT, f"{pk},999999")
    assert [e["DIndex"] for e in audited["Errors"]] == [1] and audited["SuccessEntitys"][0]["DIndex"] == 0
    assert record["FDocumentStatus"] == "C" and record["FApproveDate"] is not None
    assert record["FModifyDate"] == modified  # status changes leave FModifyDate alone by default
    assert "不能删除" in op(Stub.DELETE, pk)["Errors"][0]["Message"]
    emu.admin("PATCH", "/switches", json={"status_bumps_modify_date": True})
    assert op(Stub.UNAUDIT, pk)["IsSuccess"] and record["FDocumentStatus"] == "D"
    assert record["FApproveDate"] is None and record["FModifyDate"] > modified
    assert op(Stub.DELETE, pk)["IsSuccess"] and int(pk) not in emu.store.records["BD_Customer"]


def test_unknown_references_with_and_without_verification(emu, session):
    def save(model: dict, verify: bool) -> dict:
        return session.post(f"/K3Cloud/{Stub.SAVE.path}", json={"formid": "BD_Customer", "data": {
            "IsVerifyBaseDataField": verify, "Model": {"FName": "引用测试", "FCreateOrgId": {"FNumber": "100"},
                                                       "FUseOrgId": {"FNumber": "100"}, **model}}}).json()

    blanked = save({"FGroup": {"FNumber": "NOPE"}}, verify=False)["Result"]
    assert blanked["ResponseStatus"]["IsSuccess"] is True  # silently blanked: why the connector verifies
    assert emu.store.records["BD_Customer"][blanked["Id"]]["FGroup"] is None
    refused = save({"FGroup": {"FNumber": "NOPE"}}, verify=True)["Result"]["ResponseStatus"]
    assert refused["MsgCode"] == 9 and refused["Errors"][0]["FieldName"] == "FGroup"
    required = save({"FUseOrgId": {"FNumber": "999"}}, verify=False)["Result"]["ResponseStatus"]
    assert "必录" in required["Errors"][0]["Message"] and required["Errors"][0]["FieldName"] == "FUseOrgId"
    plain = save({"FGroup": "01"}, verify=True)["Result"]["ResponseStatus"]
    assert plain["MsgCode"] == 8 and "FNumber" in plain["Errors"][0]["Message"]


def test_view_and_business_info(emu, session):
    emu.store.seed(4, None)
    order = next(iter(emu.store.records["SAL_SaleOrder"].values()))
    view = session.post(f"/K3Cloud/{Stub.VIEW.path}", json={"formid": "SAL_SaleOrder", "data": {
        "CreateOrgId": 0, "Number": order["FBillNo"], "Id": "", "IsSortBySeq": "false"}}).json()["Result"]
    assert view["ResponseStatus"]["IsSuccess"] is True
    bill = view["Result"]
    assert bill["Id"] == order["FID"] and bill["BillNo"] == order["FBillNo"]
    assert bill["CustId"]["Number"] and bill["CustId"]["Name"][0]["Key"] == 2052
    assert len(bill["SaleOrderEntry"]) == len(order["__lines__"]["FSaleOrderEntry"])
    assert bill["SaleOrderFinance"][0]["BillAllAmount"] == float(order["FBillAllAmount"])
    missing = session.post(f"/K3Cloud/{Stub.VIEW.path}", json={"formid": "SAL_SaleOrder", "data": {"Number": "X"}})
    assert missing.json()["Result"]["ResponseStatus"]["MsgCode"] == 10
    info = session.post(f"/K3Cloud/{Stub.QUERY_BUSINESS_INFO.path}", json={"data": {"FormId": "BD_Customer"}}).json()
    meta = info["Result"]["NeedReturnData"]
    fields = {f["Key"]: f for e in meta["Entrys"] for f in e["Fields"]}
    assert meta["Id"] == "BD_Customer" and fields["FName"]["MustInput"] == 1
    assert fields["FGroup"]["LookUpObjectFormId"] == "BD_CustomerGroup"


def test_admin_api(emu):
    assert "BD_Customer" in emu.admin("GET", "/objects").json()
    created = emu.admin("POST", "/seed", json={"count": 10}).json()["created"]
    assert created == {"BD_Customer": 10, "PAEZ_BD_Dealer": 1, "SAL_SaleOrder": 5}
    assert emu.admin("POST", "/seed", json={"count": 2, "objects": ["PAEZ_BD_Dealer"]}).json()["created"] == {
        "PAEZ_BD_Dealer": 2}
    record = emu.admin("POST", "/records/BD_Customer", json={
        "FName": "管理接口客户", "FCreateOrgId.FNumber": "100", "FUseOrgId.FNumber": "100"}).json()
    assert record["FNumber"].startswith("CUST") and record["FCreateOrgId"]["FNumber"] == "100"
    updated = emu.admin("PATCH", f"/records/BD_Customer/{record['FCUSTID']}",
                        json={"FTEL": "020-1234", "FDocumentStatus": "C"}).json()
    assert updated["FTEL"] == "020-1234" and updated["FDocumentStatus"] == "C"
    assert updated["FModifyDate"] > record["FModifyDate"]
    dump = emu.admin("GET", "/records/SAL_SaleOrder").json()
    assert len(dump) == 5 and dump[0]["FSaleOrderEntry"][0]["FMaterialId"]["FNumber"]
    bad = emu.http.post("/records/BD_Customer", json={"FTEL": "1"})
    assert bad.status_code == 400 and "必录" in json.dumps(bad.json(), ensure_ascii=False)
    assert emu.http.delete("/records/BD_Customer/1").status_code == 404
    emu.admin("DELETE", f"/records/BD_Customer/{record['FCUSTID']}")
    assert emu.http.post("/seed", json={"count": 1, "objects": ["BD_MATERIAL"]}).status_code == 400
    switches = emu.admin("PATCH", "/switches", json={"session_ttl": 5, "latency_ms": 1}).json()
    assert switches["session_ttl"] == 5 and switches["batch_all_or_nothing"] is False


def test_injected_faults_look_like_kingdee(emu, session):
    emu.admin("PATCH", "/switches", json={"error_rate": 1.0, "fault_kinds": ["rate_limit"]})
    limited = session.post(f"/K3Cloud/{Stub.EXECUTE_BILL_QUERY.path}",
                           json={"data": {"FormId": "BD_Customer", "FieldKeys": "FNumber"}})
    assert limited.status_code == 200 and limited.json()[0][0]["Result"]["ResponseStatus"]["MsgCode"] == 14
    emu.admin("PATCH", "/switches", json={"rate_limit_fault": "http429"})
    assert session.post(f"/K3Cloud/{Stub.SAVE.path}", json={}).status_code == 429
    emu.admin("PATCH", "/switches", json={"fault_kinds": ["server_error"]})
    assert session.post(f"/K3Cloud/{Stub.SAVE.path}", json={}).status_code == 500
    # Logins are never faulted: a fault rate must not look like bad credentials.
    login = session.post(f"/K3Cloud/{Stub.VALIDATE_USER.path}",
                         json={"parameters": [CREDS.acct_id, CREDS.username, CREDS.password, 2052]})
    assert login.json()["LoginResultType"] == 1
    routes = emu.admin("GET", "/calls").json()["by_route"]
    assert any(route.endswith(f"{Stub.SAVE.path}") for route in routes)


def test_emulator_command_prints_the_credentials(monkeypatch):
    started = {}
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: started.update(kw, app=app))
    app = typer.Typer()
    app.command()(emulator_main)
    result = CliRunner().invoke(app, ["--port", "18765", "--seed", "5", "--latency-ms", "20", "--session-ttl", "60",
                                      "--acct-id", "acct-x", "--username", "集成用户", "--password", "pw-1",
                                      "--app-id", "app-1", "--app-secret", "sec-1"])
    assert result.exit_code == 0, result.output
    for value in ("acct-x", "集成用户", "pw-1", "app-1", "sec-1", "127.0.0.1:18765"):
        assert value in result.output
    assert started["host"] == "127.0.0.1" and started["port"] == 18765
    state = started["app"].state.kingdee
    assert state.switches.latency_ms == 20 and len(state.store.records["BD_Customer"]) == 5
    bad = CliRunner().invoke(app, ["--port", "1", "--error-rate", "2"])
    assert bad.exit_code != 0 and "between 0 and 1" in bad.output


def test_batch_save_cap_refuses_a_larger_batch_whole(emu, session):
    """``max_batch_save`` lets a bench prove the connector never sends more models per BatchSave than allowed."""
    emu.admin("PATCH", "/switches", json={"max_batch_save": 2})

    def batch(names: list[str]) -> dict:
        models = [{"FName": n, "FCreateOrgId": {"FNumber": "100"}, "FUseOrgId": {"FNumber": "100"}} for n in names]
        return session.post(f"/K3Cloud/{Stub.BATCH_SAVE.path}",
                            json={"formid": "BD_Customer", "data": json.dumps({"Model": models})}).json()

    refused = batch(["上限一有限公司", "上限二有限公司", "上限三有限公司"])["Result"]["ResponseStatus"]
    assert refused["IsSuccess"] is False and refused["MsgCode"] == 8
    assert "最多 2" in refused["Errors"][0]["Message"]
    assert query(emu.store, "FName like '上限%'") == []  # nothing of the refused batch was saved
    accepted = batch(["上限一有限公司", "上限二有限公司"])["Result"]["ResponseStatus"]
    assert accepted["IsSuccess"] is True and len(accepted["SuccessEntitys"]) == 2
