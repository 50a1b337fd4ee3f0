"""Reading: paging, watermarks in ERP local time, ties, concurrent edits, entry lines, wrapped query errors."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from connectors.base import PullRequest, WriteOp
from connectors.errors import ConnectorConfigError, ConnectorError
from connectors.kingdee.emulator_forms import FORMS
from connectors.kingdee.localtime import parse_local
from connectors.kingdee.protocol import Stub

SHANGHAI = ZoneInfo("Asia/Shanghai")


async def pull_all(connector, **request):
    records = []
    async for page in connector.pull(PullRequest(**request)):
        records.extend(page.records)
    return records


def insert_customers_in_one_second(store, count: int, stamp: datetime) -> list[int]:
    form = FORMS["BD_Customer"]
    ids = []
    for i in range(count):
        model = {"FName": f"同秒客户{i:03d}", "FCreateOrgId": {"FNumber": "100"}, "FUseOrgId": {"FNumber": "100"}}
        record = store.apply_model(form, model, status="C", stamp=stamp.replace(microsecond=(i % 1000) * 1000))
        ids.append(record["FCUSTID"])
    return ids


async def test_pages_through_20000_customers(emu, make_connector, recorder_type):
    emu.store.seed(20000, ["BD_Customer"])
    recorder = recorder_type()
    connector = make_connector(transport=recorder)  # default page size 2000
    records = await pull_all(connector, object="customer")
    ids = [r.external_id for r in records]
    assert len(ids) == len(set(ids)) == 20000
    stamps = [r.modified_at for r in records]
    assert stamps == sorted(stamps)
    assert all(s is not None and s.tzinfo is UTC for s in stamps)
    first = records[0]
    assert set(first.data) >= {"FCUSTID", "FNumber", "FName", "FModifyDate", "FGroup.FNumber", "FCreateOrgId.FNumber"}
    queries = recorder.bodies("ExecuteBillQuery")
    assert len(queries) == 11  # ten full pages and the short one that ends the scan
    assert all(q["data"]["Limit"] <= 2001 for q in queries)
    assert queries[0]["data"]["OrderString"] == "FModifyDate ASC,FCUSTID ASC"


async def test_modified_at_converts_erp_local_time_and_since_filters_in_local_time(emu, make_connector, recorder_type):
    created = emu.admin("POST", "/records/BD_Customer",
                        json={"FName": "上海时区测试有限公司", "FCreateOrgId.FNumber": "100", "FUseOrgId.FNumber": "100"}
                        ).json()
    local = parse_local(created["FModifyDate"])
    expected = local.replace(tzinfo=SHANGHAI).astimezone(UTC)
    recorder = recorder_type()
    connector = make_connector(transport=recorder, overlap_seconds=0)
    since = expected - timedelta(seconds=5)
    records = await pull_all(connector, object="customer", since=since)
    assert [r.data["FName"] for r in records] == ["上海时区测试有限公司"]
    assert abs(records[0].modified_at - expected) < timedelta(milliseconds=1)
    sent = recorder.bodies("ExecuteBillQuery")[0]["data"]["FilterString"]
    local_since = (since.astimezone(SHANGHAI)).strftime("%Y-%m-%d %H:%M:%S")
    assert sent == f"FModifyDate >= '{local_since}'"
    # Nothing newer than the record: an incremental pull from after it is empty.
    assert await pull_all(connector, object="customer", since=expected + timedelta(seconds=2)) == []


async def test_overlap_window_and_odbc_literals(emu, make_connector, recorder_type):
    recorder = recorder_type()
    connector = make_connector(transport=recorder, overlap_seconds=120, datetime_literal="odbc")
    since = datetime(2024, 5, 1, 2, 0, 0, 900000, tzinfo=UTC)
    await pull_all(connector, object="customer", since=since)
    # 02:00:00.9 UTC - 120 s = 01:58:00.9 UTC = 09:58:00 in Shanghai, floored to the second.
    assert recorder.bodies("ExecuteBillQuery")[0]["data"]["FilterString"] == "FModifyDate >= {ts'2024-05-01 09:58:00'}"


async def test_many_rows_in_one_second_across_pages(emu, make_connector):
    stamp = datetime(2024, 3, 1, 10, 0, 0)
    ids = insert_customers_in_one_second(emu.store, 45, stamp)
    connector = make_connector(page_size=10)
    records = await pull_all(connector, object="customer", since=datetime(2024, 3, 1, 1, 0, tzinfo=UTC))
    assert sorted(int(r.external_id) for r in records) == sorted(ids)
    assert len(records) == 45  # no duplicates either when nothing changed


async def test_edits_during_a_pull_lose_no_rows(emu, make_connector):
    """Plain StartRow paging would skip rows here: edited rows jump to the end and the rest shift left."""
    emu.store.seed(3000, ["BD_Customer"])
    insert_customers_in_one_second(emu.store, 300, datetime.now(SHANGHAI).replace(tzinfo=None) - timedelta(hours=1))
    everything = set(map(str, emu.store.records["BD_Customer"]))
    connector = make_connector(page_size=250)
    seen: set[str] = set()
    pages = 0
    async for page in connector.pull(PullRequest(object="customer")):
        pages += 1
        seen.update(r.external_id for r in page.records)
        if pages in (2, 5, 11):
            # A user edits rows the pull already passed, including ones in the page's last second.
            for record_id in [r.external_id for r in page.records[:20]] + [page.records[-1].external_id]:
                emu.admin("PATCH", f"/records/BD_Customer/{record_id}", json={"FTEL": f"0755-{pages:04d}"})
    assert everything <= seen


async def test_resume_continues_where_an_interrupted_pull_stopped(emu, make_connector):
    emu.store.seed(700, ["BD_Customer"])
    connector = make_connector(page_size=200)
    first: list[str] = []
    resume = None
    async for page in connector.pull(PullRequest(object="customer")):
        first.extend(r.external_id for r in page.records)
        resume = page.resume
        if len(first) >= 400:
            break
    rest = [r.external_id for r in await pull_all(connector, object="customer", resume=resume)]
    assert len(first) == 400 and len(rest) == 300
    assert set(first) | set(rest) == set(map(str, emu.store.records["BD_Customer"]))


async def test_sales_orders_come_with_their_entry_lines(emu, make_connector):
    emu.store.seed(40, None)  # customers, dealers and 20 orders
    connector = make_connector(page_size=7)  # lines of one page span several line pages
    orders = await pull_all(connector, object="sales_order")
    assert len(orders) == 20
    for order in orders:
        stored = emu.store.records["SAL_SaleOrder"][int(order.external_id)]
        lines = order.data["FSaleOrderEntry"]
        assert [line["FSaleOrderEntry_FEntryId"] for line in lines] == [
            line["FEntryID"] for line in stored["__lines__"]["FSaleOrderEntry"]]
        assert round(sum(line["FAllAmount"] for line in lines), 2) == order.data["FBillAllAmount"]
        assert all(isinstance(line["FMaterialId.FNumber"], str) for line in lines)


async def test_incremental_pull_sees_audits_through_the_approve_date(emu, make_connector):
    emu.store.seed(10, None)
    connector = make_connector()
    pending = next(iter(emu.store.records["SAL_SaleOrder"].values()))
    pending["FDocumentStatus"] = "B"  # submitted, waiting for audit
    since = datetime.now(UTC) - timedelta(seconds=30)
    assert await pull_all(connector, object="sales_order", since=since) == []
    done, failed = emu.store.operate("Audit", "SAL_SaleOrder", {"Ids": str(pending["FID"])})
    assert done and not failed
    records = await pull_all(connector, object="sales_order", since=since)
    assert [r.external_id for r in records] == [str(pending["FID"])]
    assert records[0].data["FDocumentStatus"] == "C"
    assert records[0].modified_at >= since  # the later of FModifyDate and FApproveDate


async def test_wrapped_query_error_is_raised_never_taken_for_data(emu, make_connector):
    connector = make_connector(objects={"customer": {"form_id": "BD_Customer", "fields": ["FName", "FIssueType"]}})
    with pytest.raises(ConnectorConfigError, match="元数据中标识为FIssueType的字段不存在") as caught:
        await pull_all(connector, object="customer")
    assert caught.value.code == "MsgCode 9"
    # What went over the wire really was one "row" holding the error envelope.
    await connector.check()
    ticket = await connector.client.session.current()
    raw = httpx.post(f"{emu.url}/K3Cloud/{Stub.EXECUTE_BILL_QUERY.path}", headers={"Cookie": ticket.cookie_header},
                     json={"data": {"FormId": "BD_Customer", "FieldKeys": "FNumber,FIssueType"}}).json()
    assert isinstance(raw, list) and len(raw) == 1 and len(raw[0]) == 1
    assert raw[0][0]["Result"]["ResponseStatus"]["MsgCode"] == 9


async def test_bad_configured_filter_is_a_clear_error(emu, make_connector):
    connector = make_connector(objects={"customer": {"form_id": "BD_Customer", "filter": "FName = = 'x'"}})
    with pytest.raises(ConnectorError, match="附近有语法错误"):
        await pull_all(connector, object="customer")


async def test_unknown_form_and_unknown_object(emu, make_connector):
    connector = make_connector(objects={"thing": {"form_id": "PAEZ_NoSuchForm", "fields": ["FName"]}})
    with pytest.raises(ConnectorError, match="业务对象“PAEZ_NoSuchForm”不存在"):
        await pull_all(connector, object="thing")
    with pytest.raises(ConnectorConfigError, match="unknown object 'nope'"):
        await pull_all(connector, object="nope")


async def test_fetch_by_ids_returns_known_ones(emu, make_connector):
    emu.store.seed(5, ["BD_Customer"])
    connector = make_connector()
    ids = [str(i) for i in list(emu.store.records["BD_Customer"])[:3]]
    records = await connector.fetch("customer", [*ids, "999999"])
    assert sorted(r.external_id for r in records) == sorted(ids)


async def test_dealers_from_a_custom_form_and_partners_as_a_customer_group(emu, make_connector):
    emu.store.seed(30, None)  # 3 dealers
    connector = make_connector(objects={
        "dealer": {"form_id": "PAEZ_BD_Dealer",
                   "fields": ["FName", "F_PAEZ_Level", "F_PAEZ_Region", "F_PAEZ_Contact", "F_PAEZ_CustId.FNumber"]},
        "partner": {"form_id": "BD_Customer", "filter": "FGroup.FNumber = '02'",
                    "write_defaults": {"FGroup.FNumber": "02"}},
    })
    dealers = await pull_all(connector, object="dealer")
    assert len(dealers) == 3
    assert all(d.data["F_PAEZ_Level"] in {"1", "2", "3", "4"} for d in dealers)
    assert await pull_all(connector, object="partner") == []
    result = await connector.push("partner", [
        WriteOp(key="p1", action="create", data={"FName": "广州市联创渠道伙伴有限公司"})])
    assert result[0].ok, result[0]
    partners = await pull_all(connector, object="partner")
    assert [p.data["FName"] for p in partners] == ["广州市联创渠道伙伴有限公司"]
    assert partners[0].data["FGroup.FNumber"] == "02"
