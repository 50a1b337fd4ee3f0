"""Pulls against the emulated org over loopback HTTP: paging limits, ties, restarts, tombstones."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from connectors.base import PullRequest
from connectors.zoho.pull import PullStalled

from .conftest import ids_by_modified, modified_of, pull_all, set_modified

LIST = "GET /crm/{version}/{module}"


def utc(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


async def test_full_pull_of_5000_crosses_2000_with_page_tokens(org):
    org.emu.seed(5000, ["Accounts"])
    async with org.connector() as zoho:
        records, pages = await pull_all(zoho, PullRequest("Accounts", fields=["Account_Name", "Phone"]))
        ids = [r.external_id for r in records]
        assert len(ids) == 5000 and len(set(ids)) == 5000
        assert set(ids) == set(org.emu.store.snapshot_ids("Accounts"))
        stamps = [r.modified_at for r in records]
        assert stamps == sorted(stamps), "records come in Modified_Time order"
        assert all(r.data["Account_Name"] and r.data["id"] == r.external_id for r in records)
        assert zoho.puller.restarts == 0
    snapshot = org.snapshot()
    # 25 pages of 200; the 11th and later pages were only reachable with page_token.
    assert snapshot["by_status"].get(f"{LIST} 200") == 25
    assert not any(key.endswith(" 400") for key in snapshot["by_status"])


async def test_incremental_pull_returns_exactly_the_changes_with_300_ties_across_a_page_edge(org):
    emu = org.emu
    emu.seed(1500, ["Accounts"])
    ids = emu.store.snapshot_ids("Accounts")
    watermark = emu.store.now() + 100
    iso = lambda epoch: utc(epoch).isoformat()  # noqa: E731

    org.switch(frozen_time=iso(watermark - 1))  # changed just before the watermark: not wanted
    for i, rid in enumerate(ids[:40]):
        emu.admin_update("Accounts", rid, {"Phone": f"+86 755 1000 {i:04d}"})
    org.switch(frozen_time=iso(watermark))  # 300 changes in one second, exactly at the inclusive bound
    tied = ids[100:400]
    for i, rid in enumerate(tied):
        emu.admin_update("Accounts", rid, {"Phone": f"+86 755 2000 {i:04d}"})
    org.switch(frozen_time=iso(watermark + 7))
    later = ids[600:650]
    for i, rid in enumerate(later):
        emu.admin_update("Accounts", rid, {"Description": f"第{i}次回访"})
    created = [emu.admin_create("Accounts", {"Account_Name": f"新客户{i}号有限公司"})["id"] for i in range(10)]
    org.switch(frozen_time=None)

    expected = set(tied) | set(later) | set(created)
    async with org.connector() as zoho:
        request = PullRequest("Accounts", fields=["Account_Name", "Phone", "Description"], since=utc(watermark))
        records, pages = await pull_all(zoho, request)
        got = [r.external_id for r in records if not r.deleted]
        assert len(got) == len(set(got)) == 360
        assert set(got) == expected
        # The ties straddle the first page edge (200 per page).
        first_page_ties = sum(1 for r in pages[0].records if r.modified_at == utc(watermark))
        assert 0 < first_page_ties < 300

        # Resuming after the first page neither repeats it nor loses the rest of the tie.
        resumed, _ = await pull_all(zoho, PullRequest("Accounts", fields=["Phone"], since=utc(watermark), resume=pages[0].resume))
        first = {r.external_id for r in pages[0].records}
        rest = {r.external_id for r in resumed}
        assert not first & rest
        assert first | rest == expected

        # A pull resumed from the last page brings nothing new: ties are not repeated forever.
        again, _ = await pull_all(zoho, PullRequest("Accounts", fields=["Phone"], since=utc(watermark), resume=pages[-1].resume))
        assert again == []


async def test_exclusive_if_modified_since_loses_nothing(org):
    """Whether Zoho's filter is inclusive is not documented: the connector is right either way."""
    org.switch(if_modified_since_inclusive=False)
    emu = org.emu
    emu.seed(300, ["Accounts"])
    ids = emu.store.snapshot_ids("Accounts")
    t = emu.store.now() + 50
    set_modified(emu, "Accounts", ids[:30], t)
    async with org.connector() as zoho:
        records, _ = await pull_all(zoho, PullRequest("Accounts", fields=["Account_Name"], since=utc(t)))
    assert sorted(r.external_id for r in records) == sorted(ids[:30])


async def test_sequence_limit_restarts_from_last_modified_time_without_gaps_or_repeats(org):
    """Zoho stops a page_token sequence at 100,000 records; here the emulator's cap is lowered to 1,000."""
    emu = org.emu
    org.switch(page_token_record_limit=1000)
    emu.seed(3000, ["Accounts"])
    ordered = ids_by_modified(emu, "Accounts")
    # 300 records share the Modified_Time of position 850, straddling the cap at 1,000.
    set_modified(emu, "Accounts", ordered[850:1150], modified_of(emu, "Accounts", ordered[850]))
    async with org.connector() as zoho:
        records, _ = await pull_all(zoho, PullRequest("Accounts", fields=["Account_Name"]))
        ids = [r.external_id for r in records]
        assert len(ids) == len(set(ids)) == 3000
        assert zoho.puller.restarts >= 2
    assert org.snapshot()["by_status"].get(f"{LIST} 400", 0) >= 2  # PAGINATION_LIMIT_EXCEEDED seen


async def test_connector_restarts_before_the_limit_when_configured(org):
    org.emu.seed(1000, ["Accounts"])
    async with org.connector(records_per_query=400) as zoho:
        records, _ = await pull_all(zoho, PullRequest("Accounts", fields=["Account_Name"]))
        assert len({r.external_id for r in records}) == len(records) == 1000
        assert zoho.puller.restarts >= 2
    assert org.snapshot()["by_status"].get(f"{LIST} 400", 0) == 0


async def test_more_ties_than_one_sequence_can_hold_is_a_clear_error(org):
    emu = org.emu
    org.switch(page_token_record_limit=200)
    emu.seed(500, ["Accounts"])
    set_modified(emu, "Accounts", emu.store.snapshot_ids("Accounts"), emu.store.now())
    async with org.connector() as zoho:
        with pytest.raises(PullStalled, match="Bulk Read"):
            await pull_all(zoho, PullRequest("Accounts", fields=["Account_Name"]))


async def test_v2_api_without_page_tokens_still_pulls_everything(org):
    org.emu.seed(2600, ["Accounts"])
    async with org.connector(api_version="v2") as zoho:
        records, _ = await pull_all(zoho, PullRequest("Accounts", fields=["Account_Name"]))
        assert len({r.external_id for r in records}) == len(records) == 2600
        assert zoho.puller.restarts >= 1
    routes = org.snapshot()["by_status"]
    assert routes.get(f"{LIST} 400", 0) == 0  # never asked for page 11


async def test_all_fields_are_split_into_chunks_of_50_and_merged_by_id(org):
    org.emu.seed(450, ["Accounts"])
    async with org.connector() as zoho:
        fields = [f.name for f in await zoho.describe("Accounts")]
        assert len(fields) > 50
        records, _ = await pull_all(zoho, PullRequest("Accounts"))
    assert len(records) == 450
    assert all(set(fields) <= set(r.data) for r in records)
    assert org.calls(LIST) == 6  # 3 pages x 2 chunks


async def test_a_record_changed_between_chunk_calls_is_delivered_once_in_its_new_version(org):
    emu = org.emu
    emu.seed(450, ["Accounts"])
    async with org.connector() as zoho:
        real_call = zoho.client.call
        primary_done = asyncio.Event()
        changed: dict[str, str] = {}

        async def racing_call(method, path, **kw):
            params = kw.get("params") or {}
            if method == "GET" and path == "Accounts" and params.get("page") == 1 and "ids" not in params:
                if params["fields"].startswith("Owner"):
                    response = await real_call(method, path, **kw)
                    target = response.payload["data"][5]["id"]
                    changed[target] = "+86 10 8888 0000"
                    await asyncio.to_thread(emu.admin_update, "Accounts", target, {"Phone": changed[target]})
                    primary_done.set()
                    return response
                await primary_done.wait()
            return await real_call(method, path, **kw)

        zoho.client.call = racing_call  # type: ignore[method-assign]
        records, _ = await pull_all(zoho, PullRequest("Accounts"))
        (target,) = changed
        copies = [r for r in records if r.external_id == target]
        assert len(copies) == 1 and copies[0].data["Phone"] == changed[target]
        assert len({r.external_id for r in records}) == len(records) == 450
        assert zoho.puller.refetched >= 1
        stamps = [r.modified_at for r in records]
        assert stamps == sorted(stamps)


async def test_deleted_records_come_as_tombstones(org):
    emu = org.emu
    emu.seed(300, ["Accounts"])
    since = utc(emu.store.now() - 1)
    doomed = emu.store.snapshot_ids("Accounts")[:5]
    for rid in doomed:
        emu.admin_delete("Accounts", rid)
    async with org.connector() as zoho:
        records, _ = await pull_all(zoho, PullRequest("Accounts", fields=["Account_Name"], since=since))
        tombstones = [r for r in records if r.deleted]
        assert sorted(r.external_id for r in tombstones) == sorted(doomed)
        assert all(r.modified_at and r.modified_at >= since and r.data["type"] == "recycle" for r in tombstones)
        without, _ = await pull_all(zoho, PullRequest("Accounts", fields=["Account_Name"], since=since, include_deleted=False))
        assert not any(r.deleted for r in without)


async def test_fetch_by_ids_uses_100_per_call_and_reports_deleted_ids(org):
    emu = org.emu
    emu.seed(300, ["Accounts"])
    ids = emu.store.snapshot_ids("Accounts")
    gone = ids[0]
    emu.admin_delete("Accounts", gone)
    wanted = ids[:251] + ["5725767999999999999"]
    async with org.connector() as zoho:
        org.emu.calls.reset()
        records = await zoho.fetch("Accounts", wanted, fields=["Account_Name", "Modified_Time"])
    live = [r for r in records if not r.deleted]
    assert sorted(r.external_id for r in live) == sorted(ids[1:251])
    assert [r.external_id for r in records if r.deleted] == [gone]
    assert org.calls(LIST) == 3
    assert org.calls("GET /crm/{version}/{module}/deleted") == 1


async def test_datetimes_follow_the_org_offset_and_come_back_as_utc(org):
    org.switch(time_zone="-08:00")
    org.emu.seed(5, ["Deals"])
    async with org.connector() as zoho:
        records, _ = await pull_all(zoho, PullRequest("Deals", fields=["Deal_Name", "Stage", "Account_Name", "Owner"]))
    for r in records:
        assert r.data["Modified_Time"].endswith("-08:00")
        assert r.modified_at.tzinfo == timezone.utc
        assert r.modified_at == datetime.fromisoformat(r.data["Modified_Time"])
        assert r.data["id"].isdigit() and len(r.data["id"]) == 19
        assert set(r.data["Owner"]) == {"id", "name", "email"}
        assert r.data["Account_Name"] is None or set(r.data["Account_Name"]) == {"id", "name"}


async def test_empty_module_and_nothing_modified(org):
    async with org.connector() as zoho:
        records, _ = await pull_all(zoho, PullRequest("Vendors", fields=["Vendor_Name"]))
        assert records == []
        org.emu.seed(3, ["Vendors"])
        later = datetime.now(timezone.utc) + timedelta(hours=1)
        records, _ = await pull_all(zoho, PullRequest("Vendors", fields=["Vendor_Name"], since=later))
        assert records == []
    statuses = org.snapshot()["by_status"]
    assert statuses.get(f"{LIST} 204") == 1 and statuses.get(f"{LIST} 304") == 1
