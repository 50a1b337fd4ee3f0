"""Writing: BatchSave per-row results, partial updates, sales orders with lines, workflow, deletes, lost answers."""
from __future__ import annotations

import httpx
import pytest

from connectors.base import PullRequest, WriteOp
from connectors.emulation.fakedata import FAMOUS
from connectors.kingdee.emulator_forms import FORMS

CUSTOMER_WORKFLOW = {"form_id": "BD_Customer", "submit": True, "audit": True}


def customer(i: int, **extra) -> dict:
    return {"FName": f"杭州测试客户{i:03d}有限公司", "FTEL": f"0571-{i:04d}", "FGroup.FNumber": "01", **extra}


def stored(emu, form_id: str, external_id: str) -> dict:
    return emu.store.dump_record(FORMS[form_id], emu.store.records[form_id][int(external_id)])


async def test_batch_save_200_with_3_invalid_rows_reports_each_row(emu, make_connector, recorder_type):
    recorder = recorder_type()
    connector = make_connector(transport=recorder)
    ops = [WriteOp(key=f"crm-{i}", action="create", data=customer(i)) for i in range(200)]
    ops[17].data.pop("FName")  # required field missing
    ops[88].data["FGroup.FNumber"] = "99"  # base data that does not exist
    ops[150].data["F_PAEZ_CreditLimit"] = "一百万"  # not a number
    results = await connector.push("customer", ops)

    assert [r.key for r in results] == [op.key for op in ops]
    failed = {i: r for i, r in enumerate(results) if not r.ok}
    assert sorted(failed) == [17, 88, 150]
    assert "FName" in failed[17].message and "必录" in failed[17].message
    assert "“99”" in failed[88].message and failed[88].message.startswith("[FGroup]")
    assert "一百万" in failed[150].message
    assert all(r.code and r.code.startswith("MsgCode") and not r.retryable for r in failed.values())
    saved = [r for r in results if r.ok]
    assert len(saved) == 197 and len({r.external_id for r in saved}) == 197
    assert len(emu.store.records["BD_Customer"]) == 197
    assert stored(emu, "BD_Customer", saved[0].external_id)["FName"] == ops[0].data["FName"]
    # Two BatchSave calls of 100 models; organisation fields came from the config.
    batches = recorder.bodies("BatchSave")
    assert [len(b["data"]["Model"]) for b in batches] == [100, 100]
    model = batches[0]["data"]["Model"][0]
    assert model["FCreateOrgId"] == {"FNumber": "100"} and model["FUseOrgId"] == {"FNumber": "100"}
    assert model["FGroup"] == {"FNumber": "01"} and model["FCUSTID"] == 0
    assert batches[0]["data"]["IsVerifyBaseDataField"] is True


async def test_all_or_nothing_batches_resend_the_innocent_rows(emu, make_connector):
    emu.admin("PATCH", "/switches", json={"batch_all_or_nothing": True})
    connector = make_connector()
    ops = [WriteOp(key=str(i), action="create", data=customer(i)) for i in range(20)]
    ops[3].data["FName"] = ""
    results = await connector.push("customer", ops)
    assert [r.ok for r in results].count(False) == 1 and not results[3].ok
    assert len(emu.store.records["BD_Customer"]) == 19


async def test_partial_update_sends_need_update_fields_and_keeps_other_fields(emu, make_connector, recorder_type):
    recorder = recorder_type()
    connector = make_connector(transport=recorder)
    [created] = await connector.push("customer", [WriteOp(key="a", action="create",
                                                          data=customer(1, FADDRESS="杭州市西湖区文三路1号"))])
    [updated] = await connector.push("customer", [WriteOp(key="a", action="update", external_id=created.external_id,
                                                          data={"FTEL": "0571-88886666", "FModifyDate": "ignored"})])
    assert updated.ok and updated.external_id == created.external_id
    body = recorder.bodies("Save")[-1]["data"]
    assert body["NeedUpDateFields"] == ["FTEL"]
    assert body["Model"] == {"FTEL": "0571-88886666", "FCUSTID": int(created.external_id)}
    record = stored(emu, "BD_Customer", created.external_id)
    assert record["FTEL"] == "0571-88886666"
    assert record["FADDRESS"] == "杭州市西湖区文三路1号" and record["FName"] == customer(1)["FName"]


async def test_need_update_fields_limits_what_a_model_changes(emu, make_connector):
    """The emulator applies only the listed fields, as the Save doc says (other model keys are ignored)."""
    connector = make_connector()
    [created] = await connector.push("customer", [WriteOp(key="a", action="create", data=customer(2))])
    status = await connector.client.save("BD_Customer", {
        "NeedUpDateFields": ["FTEL"],
        "Model": {"FCUSTID": int(created.external_id), "FTEL": "1", "FName": "不该被改的名字"},
    }, batch=False, creates=False)
    assert status.success
    record = stored(emu, "BD_Customer", created.external_id)
    assert record["FTEL"] == "1" and record["FName"] == customer(2)["FName"]


async def create_audited_customer(connector, name="深圳市华为技术有限公司") -> str:
    [result] = await connector.push("customer", [WriteOp(key="c", action="create", data={"FName": name})])
    assert result.ok, result
    return result.external_id


def order_data(customer_number: str) -> dict:
    return {
        "FDate": "2024-06-18",
        "FCustId.FNumber": customer_number,
        "FNote": "CRM 商机赢单：华南区服务器扩容",
        "FSettleCurrId.FNumber": "PRE001",
        "F_PAEZ_CrmDealId": "deal-8841",
        "FSaleOrderEntry": [
            {"FMaterialId.FNumber": "1.01.001", "FQty": 2, "FTaxPrice": 67800, "FEntryNote": "含上架"},
            {"FMaterialId.FNumber": "1.03.001", "FQty": 1, "FTaxPrice": 11300},
        ],
    }


async def test_sales_order_with_entry_lines_submitted_and_audited(emu, make_connector, recorder_type):
    recorder = recorder_type()
    connector = make_connector(transport=recorder, objects={
        "customer": CUSTOMER_WORKFLOW,
        "sales_order": {"form_id": "SAL_SaleOrder", "submit": True, "audit": True},
    })
    customer_id = await create_audited_customer(connector)
    number = emu.store.records["BD_Customer"][int(customer_id)]["FNumber"]
    [result] = await connector.push("sales_order", [WriteOp(key="deal-8841", action="create", data=order_data(number))])
    assert result.ok, result
    model = recorder.bodies("Save")[-1]["data"]["Model"]
    assert model["FCustId"] == {"FNumber": number} and model["FSaleOrgId"] == {"FNumber": "100"}
    assert model["FSaleOrderFinance"] == {"FSettleCurrId": {"FNumber": "PRE001"}}
    assert model["FSaleOrderEntry"][0] == {"FMaterialId": {"FNumber": "1.01.001"}, "FQty": 2, "FTaxPrice": 67800,
                                           "FEntryNote": "含上架"}
    assert [b["data"]["Ids"] for b in recorder.bodies("Submit")][-1] == result.external_id
    order = stored(emu, "SAL_SaleOrder", result.external_id)
    assert order["FDocumentStatus"] == "C" and order["FApproveDate"]
    assert order["FBillNo"].startswith("XSDD")
    assert order["FBillAllAmount"] == 2 * 67800 + 11300
    assert [line["FQty"] for line in order["FSaleOrderEntry"]] == [2.0, 1.0]
    # And it reads back with its lines.
    [pulled] = await connector.fetch("sales_order", [result.external_id])
    assert pulled.data["FCustId.FName"] == "深圳市华为技术有限公司"
    assert [line["FMaterialId.FNumber"] for line in pulled.data["FSaleOrderEntry"]] == ["1.01.001", "1.03.001"]


async def test_order_for_an_unaudited_customer_fails_on_that_row_only(emu, make_connector):
    connector = make_connector()  # customers saved but not audited
    customer_id = await create_audited_customer(connector, "未审核客户有限公司")
    number = emu.store.records["BD_Customer"][int(customer_id)]["FNumber"]
    emu.store.seed(5, ["BD_Customer"])
    good = next(r["FNumber"] for r in emu.store.records["BD_Customer"].values() if r["FDocumentStatus"] == "C")
    results = await connector.push("sales_order", [
        WriteOp(key="bad", action="create", data=order_data(number)),
        WriteOp(key="good", action="create", data=order_data(good)),
    ])
    assert not results[0].ok and "FCustId" in results[0].message and number in results[0].message
    assert results[1].ok


async def test_partial_entry_update_keeps_lines_not_mentioned(emu, make_connector, recorder_type):
    recorder = recorder_type()
    connector = make_connector(transport=recorder, objects={"customer": CUSTOMER_WORKFLOW,
                                                            "sales_order": {"form_id": "SAL_SaleOrder"}})
    customer_id = await create_audited_customer(connector)
    number = emu.store.records["BD_Customer"][int(customer_id)]["FNumber"]
    [created] = await connector.push("sales_order", [WriteOp(key="o", action="create", data=order_data(number))])
    lines = stored(emu, "SAL_SaleOrder", created.external_id)["FSaleOrderEntry"]
    [updated] = await connector.push("sales_order", [WriteOp(
        key="o", action="update", external_id=created.external_id,
        data={"FSaleOrderEntry": [{"FSaleOrderEntry_FEntryId": lines[0]["FEntryID"], "FQty": 5}]})])
    assert updated.ok, updated
    body = recorder.bodies("Save")[-1]["data"]
    assert body["IsDeleteEntry"] is False
    assert body["NeedUpDateFields"] == ["FSaleOrderEntry", "FQty"]
    after = stored(emu, "SAL_SaleOrder", created.external_id)
    assert [line["FEntryID"] for line in after["FSaleOrderEntry"]] == [line["FEntryID"] for line in lines]
    assert after["FSaleOrderEntry"][0]["FQty"] == 5 and after["FSaleOrderEntry"][0]["FAllAmount"] == 5 * 67800
    assert after["FSaleOrderEntry"][1] == lines[1]
    assert after["FBillAllAmount"] == 5 * 67800 + 11300


async def test_chinese_text_round_trips(emu, make_connector):
    connector = make_connector()
    names = [*FAMOUS, "Ｆｕｌｌ－ｗｉｄｔｈ（中国）有限公司", "O'Brien 贸易（上海）有限公司", "𠮷野家餐饮 🍜 有限公司",
             "台灣積體電路製造股份有限公司"]
    ops = [WriteOp(key=str(i), action="create",
                   data={"FName": name, "FADDRESS": "北京市海淀区中关村大街１号 ‘A座’", "FDescription": "备注：\n换行 & <tag>"})
           for i, name in enumerate(names)]
    results = await connector.push("customer", ops)
    assert all(r.ok for r in results), results
    fetched = {r.external_id: r.data for r in await connector.fetch("customer", [r.external_id for r in results])}
    for result, name in zip(results, names, strict=True):
        data = fetched[result.external_id]
        assert data["FName"] == name
        assert data["FADDRESS"] == "北京市海淀区中关村大街１号 ‘A座’"
        assert data["FDescription"] == "备注：\n换行 & <tag>"
    # A quote inside a filter value is escaped, not an injection.
    [upserted] = await connector.push("customer", [WriteOp(key="u", action="upsert", match_fields=["FName"],
                                                           data={"FName": "O'Brien 贸易（上海）有限公司", "FTEL": "021-1"})])
    assert upserted.ok and upserted.external_id == results[names.index("O'Brien 贸易（上海）有限公司")].external_id


async def test_upsert_by_number_and_ambiguous_matches(emu, make_connector):
    connector = make_connector()
    first = await connector.push("customer", [
        WriteOp(key="1", action="create", data={"FNumber": "C-0001", "FName": "重名公司"}),
        WriteOp(key="2", action="create", data={"FNumber": "C-0002", "FName": "重名公司"}),
    ])
    assert all(r.ok for r in first)
    results = await connector.push("customer", [
        WriteOp(key="a", action="upsert", data={"FNumber": "c-0001", "FTEL": "020-1"}),  # ERP collation: case-insensitive
        WriteOp(key="b", action="upsert", data={"FNumber": "C-0003", "FName": "新公司"}),
        WriteOp(key="c", action="upsert", match_fields=["FName"], data={"FName": "重名公司", "FTEL": "x"}),
    ])
    assert results[0].ok and results[0].external_id == first[0].external_id
    assert stored(emu, "BD_Customer", first[0].external_id)["FTEL"] == "020-1"
    assert results[1].ok and stored(emu, "BD_Customer", results[1].external_id)["FNumber"] == "C-0003"
    assert not results[2].ok and results[2].code == "DUPLICATE_MATCH"


async def test_duplicate_number_is_a_row_error(emu, make_connector):
    connector = make_connector()
    results = await connector.push("customer", [
        WriteOp(key="1", action="create", data={"FNumber": "DUP-1", "FName": "甲公司"}),
        WriteOp(key="2", action="create", data={"FNumber": "dup-1", "FName": "乙公司"}),
    ])
    assert results[0].ok and not results[1].ok and "已被使用" in results[1].message


async def test_updates_of_audited_records(emu, make_connector):
    plain = make_connector(objects={"customer": CUSTOMER_WORKFLOW})
    customer_id = await create_audited_customer(plain)
    [refused] = await plain.push("customer", [WriteOp(key="x", action="update", external_id=customer_id,
                                                      data={"FTEL": "1"})])
    assert not refused.ok and "不允许修改" in refused.message and refused.code == "MsgCode 12"
    unaudit = make_connector(objects={"customer": {**CUSTOMER_WORKFLOW, "unaudit_before_update": True}})
    [done] = await unaudit.push("customer", [WriteOp(key="x", action="update", external_id=customer_id,
                                                     data={"FTEL": "2"})])
    assert done.ok, done
    record = stored(emu, "BD_Customer", customer_id)
    assert record["FTEL"] == "2" and record["FDocumentStatus"] == "C"


async def test_submit_failure_is_reported_on_the_saved_record(emu, make_connector):
    connector = make_connector(objects={"customer": CUSTOMER_WORKFLOW})
    customer_id = await create_audited_customer(connector)
    emu.admin("PATCH", "/switches", json={"edit_audited": True})
    [result] = await connector.push("customer", [WriteOp(key="x", action="update", external_id=customer_id,
                                                         data={"FTEL": "3"})])
    assert not result.ok and result.external_id == customer_id
    assert result.code.startswith("Submit") and "Submit failed" in result.message and "已审核" in result.message


async def test_deletes(emu, make_connector):
    connector = make_connector()
    created = await connector.push("customer", [WriteOp(key=str(i), action="create", data=customer(i))
                                                for i in range(3)])
    ids = [r.external_id for r in created]
    emu.store.operate("Submit", "BD_Customer", {"Ids": ids[2]})
    emu.store.operate("Audit", "BD_Customer", {"Ids": ids[2]})
    results = await connector.push("customer", [
        WriteOp(key="a", action="delete", external_id=ids[0]),
        WriteOp(key="gone", action="delete", external_id="987654"),  # already gone: fine
        WriteOp(key="audited", action="delete", external_id=ids[2]),
        WriteOp(key="noid", action="delete"),
    ])
    assert [r.ok for r in results] == [True, True, False, False]
    assert "已审核" in results[2].message and results[3].code == "MISSING_ID"
    assert int(ids[0]) not in emu.store.records["BD_Customer"]
    forced = make_connector(objects={"customer": {"form_id": "BD_Customer", "unaudit_before_delete": True}})
    [deleted] = await forced.push("customer", [WriteOp(key="audited", action="delete", external_id=ids[2])])
    assert deleted.ok and int(ids[2]) not in emu.store.records["BD_Customer"]


async def test_lost_answer_to_a_create_is_reconciled_not_duplicated(emu, make_connector, recorder_type):
    lost = {"count": 0}

    async def lose_first_batch(op: str, body: dict, response: httpx.Response) -> httpx.Response:
        if op == "BatchSave" and lost["count"] == 0:
            lost["count"] += 1  # the server saved the rows, but the answer never arrives
            raise httpx.ReadTimeout("read timed out")
        return response

    recorder = recorder_type(hook=lose_first_batch)
    connector = make_connector(transport=recorder,
                               objects={"customer": {"form_id": "BD_Customer", "match_field": "F_PAEZ_CrmId"}})
    ops = [WriteOp(key=f"crm-{i}", action="create", data=customer(i, F_PAEZ_CrmId=f"crm-{i}")) for i in range(4)]
    results = await connector.push("customer", ops)
    assert all(r.ok for r in results), results
    assert len(emu.store.records["BD_Customer"]) == 4  # nothing saved twice
    assert len(recorder.bodies("BatchSave")) == 1  # found by F_PAEZ_CrmId, not re-sent
    by_crm = {r["F_PAEZ_CrmId"]: str(pk) for pk, r in emu.store.records["BD_Customer"].items()}
    assert [r.external_id for r in results] == [by_crm[f"crm-{i}"] for i in range(4)]


async def test_lost_answer_without_a_match_value_is_a_retryable_unknown(emu, make_connector, recorder_type):
    async def lose(op: str, body: dict, response: httpx.Response) -> httpx.Response:
        if op == "BatchSave":
            raise httpx.RemoteProtocolError("server disconnected")
        return response

    connector = make_connector(transport=recorder_type(hook=lose))
    results = await connector.push("customer", [WriteOp(key=str(i), action="create", data=customer(i)) for i in range(2)])
    assert [(r.ok, r.code, r.retryable) for r in results] == [(False, "OUTCOME_UNKNOWN", True)] * 2


async def test_pushed_records_show_up_in_the_next_incremental_pull(emu, make_connector):
    connector = make_connector()
    emu.store.seed(20, ["BD_Customer"])
    before = [r async for page in connector.pull(PullRequest(object="customer")) for r in page.records]
    since = max(r.modified_at for r in before)
    [new] = await connector.push("customer", [WriteOp(key="n", action="create", data=customer(9))])
    after = [r async for page in connector.pull(PullRequest(object="customer", since=since)) for r in page.records]
    assert new.external_id in {r.external_id for r in after}


@pytest.mark.parametrize("fault", ["rate_limit", "server_error"])
async def test_injected_faults_on_reads_are_retried(emu, make_connector, fault):
    emu.store.seed(30, ["BD_Customer"])
    retry = {"attempts": 12, "base_seconds": 0.001, "cap_seconds": 0.01, "total_seconds": 10}
    connector = make_connector(page_size=3, retry=retry)
    await connector.check()
    emu.admin("PATCH", "/switches", json={"error_rate": 0.5, "fault_kinds": [fault]})
    records = [r async for page in connector.pull(PullRequest(object="customer")) for r in page.records]
    emu.admin("PATCH", "/switches", json={"error_rate": 0})
    assert len({r.external_id for r in records}) == 30
    assert emu.state.calls.snapshot()["faults"].get(fault, 0) >= 1


async def test_checked_updates_are_checked_after_the_creates_before_them_and_before_their_unaudit(
        emu, make_connector, recorder_type):
    """push_checked (issue #10): the caller's last look at the records runs right before the update calls,
    after the creates the push sends first, and before the un-audit (an update withdrawn then leaves the
    record audited, untouched); the other update is sent."""
    from connectors.base import WITHDRAWN

    recorder = recorder_type()
    connector = make_connector(transport=recorder,
                               objects={"customer": {**CUSTOMER_WORKFLOW, "unaudit_before_update": True}})
    first = await create_audited_customer(connector)
    second = await create_audited_customer(connector, "深圳市腾讯计算机系统有限公司")
    recorder.requests.clear()
    checked: list[tuple[list[str], list[str]]] = []

    async def check(ops):
        checked.append(([op.key for op in ops], [name for name, _ in recorder.requests]))
        return {"u1"}

    results = await connector.push_checked("customer", [
        WriteOp(key="c", action="create", data=customer(7)),
        WriteOp(key="u1", action="update", external_id=first, data={"FTEL": "0571-1111"}),
        WriteOp(key="u2", action="update", external_id=second, data={"FTEL": "0571-2222"}),
    ], check)
    assert [(r.key, r.ok, r.code) for r in results] == [("c", True, None), ("u1", False, WITHDRAWN), ("u2", True, None)]
    (keys, before), = checked
    assert keys == ["u1", "u2"] and "Save" in before and "UnAudit" not in before
    assert [body["data"]["Ids"] for body in recorder.bodies("UnAudit")] == [second]
    assert stored(emu, "BD_Customer", first)["FTEL"] != "0571-1111"
    assert stored(emu, "BD_Customer", first)["FDocumentStatus"] == "C"
    assert stored(emu, "BD_Customer", second)["FTEL"] == "0571-2222"
