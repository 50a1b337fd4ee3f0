"""Pulling from the emulator over loopback: the offset wall, ties on last_modified_time,
token expiry mid-pull, tombstones and both auth styles."""
from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from connectors.base import PullRequest
from connectors.fxiaoke.records import ms_to_datetime

FAST = {"rate_limit_calls": 100_000}


async def pull_all(connector, request: PullRequest):
    records, resumes = [], []
    async for page in connector.pull(request):
        records.extend(page.records)
        resumes.append(page.resume)
    return records, resumes


@pytest.mark.slow
async def test_25000_accounts_come_through_whole_across_the_offset_wall(fx):
    fx.switch(rate_limit=100_000)
    fx.emu.store.seed(25_000, ["AccountObj"])
    expected = {r["_id"] for r in fx.emu.store.dump("AccountObj")}

    async with fx.connector(**FAST) as crm:
        records, resumes = await pull_all(crm, PullRequest(object="AccountObj"))

    ids = [r.external_id for r in records]
    assert len(ids) == 25_000
    assert set(ids) == expected  # nothing lost, nothing repeated
    cursors = [r["cursor"] for r in resumes if r is not None]
    # Offsets went up to the documented 10,000 and then paging switched to _id keys.
    assert max(c.get("offset", 0) for c in cursors) == 10_000
    assert any(c.get("after_id") for c in cursors)
    assert fx.emu.answers.get(10013, 0) == 0
    # 251 offset/keyset pages + the tombstone pass; no call wasted beyond that.
    assert fx.calls("/cgi/crm/v2/data/query") <= 253
    # Values stay raw: owner lists, epoch-ms times, string versions.
    sample = records[0].data
    assert isinstance(sample["owner"], list) and isinstance(sample["last_modified_time"], int)
    assert isinstance(sample["version"], str) and len(records[0].external_id) == 24


def _make_tied(fx, before: int, tied: int, after: int, t: int) -> list[str]:
    ids = []
    for i in range(before):
        ids.append(fx.emu.store.create("AccountObj", {"name": f"先行客户{i}", "owner": ["1001"],
                                                      "create_time": t - 1000 + i, "last_modified_time": t - 1000 + i},
                                       user="1001", by_api=False, keep_times=True)["_id"])
    for i in range(tied):
        ids.append(fx.emu.store.create("AccountObj", {"name": f"批量导入客户{i}", "owner": ["1002"],
                                                      "create_time": t - 5000, "last_modified_time": t},
                                       user="1002", by_api=False, keep_times=True)["_id"])
    for i in range(after):
        ids.append(fx.emu.store.create("AccountObj", {"name": f"后续客户{i}", "owner": ["1003"],
                                                      "create_time": t + 1 + i, "last_modified_time": t + 1 + i},
                                       user="1003", by_api=False, keep_times=True)["_id"])
    return ids


async def test_300_records_sharing_one_modified_time_across_a_page_edge_come_exactly_once(fx):
    t = 1_718_000_000_000
    # 50 before the tie: the 300 tied records start mid-page and span four pages.
    ids = _make_tied(fx, before=50, tied=300, after=50, t=t)

    async with fx.connector() as crm:
        records, resumes = await pull_all(crm, PullRequest(object="AccountObj", since=ms_to_datetime(t - 1000)))

    counts = Counter(r.external_id for r in records)
    assert set(counts) == set(ids)
    assert max(counts.values()) == 1
    assert len(records) == 400
    times = [r.data["last_modified_time"] for r in records]
    assert times == sorted(times)  # modified-time order wherever the API allows it
    # The tie was drained by _id keys, not by an ever-growing offset.
    assert any(r and r["cursor"].get("drain_after") for r in resumes)


async def test_a_pull_resumed_from_a_page_continues_without_gaps_or_repeats(fx):
    t = 1_718_000_000_000
    ids = _make_tied(fx, before=30, tied=250, after=120, t=t)
    since = ms_to_datetime(t - 1000)
    async with fx.connector() as crm:
        first: list = []
        resume = None
        async for page in crm.pull(PullRequest(object="AccountObj", since=since)):
            first.extend(page.records)
            resume = page.resume
            if len(first) >= 200:
                break  # the worker died here; the engine stored this page's resume
        rest, _ = await pull_all(crm, PullRequest(object="AccountObj", since=since, resume=resume))
    got = [r.external_id for r in first + rest]
    assert sorted(got) == sorted(ids)


async def test_incremental_pull_has_an_inclusive_bound_and_sees_edits_made_mid_pull(fx):
    t = 1_718_000_000_000
    ids = _make_tied(fx, before=0, tied=1, after=250, t=t)
    async with fx.connector() as crm:
        seen = []
        edited = False
        async for page in crm.pull(PullRequest(object="AccountObj", since=ms_to_datetime(t))):
            seen.extend(page.records)
            if not edited:
                # A user edits a record already delivered: it must come again, with its new time.
                fx.emu.store.update("AccountObj", ids[0], {"tel": "021-66668888"}, user="1001", by_api=False)
                edited = True
    assert seen[0].external_id == ids[0]  # the record exactly at ``since`` is included
    again = [r for r in seen if r.external_id == ids[0]]
    assert len(again) == 2 and again[1].data["tel"] == "021-66668888"
    assert {r.external_id for r in seen} == set(ids)


async def test_a_token_expiring_mid_pull_costs_exactly_one_refresh(fx):
    fx.emu.store.seed(1_000, ["AccountObj"])
    async with fx.connector() as crm:
        pulled = []
        pages = 0
        async for page in crm.pull(PullRequest(object="AccountObj")):
            pulled.extend(page.records)
            pages += 1
            if pages == 3:
                fx.emu.expire_tokens()  # the gateway forgets the token: next call answers 20016
        status = crm.status()
    assert len({r.external_id for r in pulled}) == 1_000
    assert fx.emu.token_calls["current"] == 2  # the first token and one refresh
    assert fx.emu.answers[20016] == 1
    assert status["auth"]["refreshes_after_refusal"] == 1


async def test_invalidated_records_come_as_tombstones_and_deleted_ones_vanish(fx):
    fx.emu.store.seed(30, ["AccountObj"])
    rows = fx.emu.store.dump("AccountObj")
    # Seeded records edited recently are stamped at the seed's "now": start after its millisecond (the
    # pull's bound is inclusive), and change the two records after start.
    start = datetime.now(UTC) + timedelta(milliseconds=2)
    await asyncio.sleep(0.02)
    gone, invalid = rows[0]["_id"], rows[1]["_id"]
    fx.emu.store.invalidate("AccountObj", [gone], user="1001", by_api=False)
    fx.emu.store.delete("AccountObj", [gone], by_api=False)
    fx.emu.store.invalidate("AccountObj", [invalid], user="1001", by_api=False)

    async with fx.connector() as crm:
        records, _ = await pull_all(crm, PullRequest(object="AccountObj", since=start))
        everything, _ = await pull_all(crm, PullRequest(object="AccountObj"))
        live_only, _ = await pull_all(crm, PullRequest(object="AccountObj", include_deleted=False))
        fetched = await crm.fetch("AccountObj", [invalid, gone, rows[2]["_id"]])

    assert [(r.external_id, r.deleted) for r in records] == [(invalid, True)]
    assert records[0].data["life_status"] == "invalid"
    assert len(everything) == 29 and sum(r.deleted for r in everything) == 1
    assert len(live_only) == 28 and not any(r.deleted for r in live_only)
    # fetch: the invalid record is a tombstone, the deleted one is simply absent.
    assert [(r.external_id, r.deleted) for r in fetched] == [(invalid, True), (rows[2]["_id"], False)]


async def test_inline_tombstones_when_the_tenant_query_returns_invalid_data(fx):
    fx.switch(invalid_in_query="include")
    fx.emu.store.seed(10, ["AccountObj"])
    victim = fx.emu.store.dump("AccountObj")[3]["_id"]
    fx.emu.store.invalidate("AccountObj", [victim], user="1001", by_api=False)
    async with fx.connector(tombstones={"mode": "inline"}) as crm:
        records, _ = await pull_all(crm, PullRequest(object="AccountObj"))
    assert len(records) == 10
    assert [r.external_id for r in records if r.deleted] == [victim]
    assert fx.calls("/cgi/crm/v2/data/query") == 1


async def test_legacy_auth_pulls_custom_objects_on_the_custom_path_with_open_user_ids(fx):
    fx.emu.store.seed(40)
    async with fx.connector(auth_style="legacy") as crm:
        contracts, _ = await pull_all(crm, PullRequest(object="ServiceContract__c"))
        accounts, _ = await pull_all(crm, PullRequest(object="account", fields=["name", "owner"]))
    assert len(contracts) == 4
    assert all(r.data["owner"][0].startswith("FSUID_") for r in contracts)
    assert isinstance(contracts[0].data["amount__c"], str)
    assert fx.calls("/cgi/crm/custom/v2/data/query") >= 1
    assert fx.emu.token_calls["legacy"] == 1 and fx.emu.token_calls["current"] == 0
    # A field projection still carries what paging and tombstones need, and nothing else.
    assert set(accounts[0].data) <= {"_id", "name", "owner", "last_modified_time", "life_status", "is_deleted"}


async def test_opportunity_alias_follows_the_tenant_setting(fx):
    fx.emu.store.seed(8)
    async with fx.connector(opportunity_object="NewOpportunityObj") as crm:
        deals, _ = await pull_all(crm, PullRequest(object="opportunity"))
        objects = {o.name for o in await crm.list_objects()}
        fields = {f.name: f for f in await crm.describe("opportunity")}
    assert len(deals) == 4 and {d.object for d in deals} == {"opportunity"}
    stages = {d.data["sales_stage"] for d in deals}
    assert stages <= {"1", "2", "3", "4", "5", "6"}  # option values, not labels
    assert "NewOpportunityObj" in objects and "OpportunityObj" not in objects
    assert fields["sales_stage"].picklist and fields["account_id"].lookup_object == "AccountObj"
    assert fields["last_modified_time"].read_only and fields["name"].required


async def test_tokens_are_refreshed_before_they_expire(fx):
    import asyncio

    fx.switch(token_ttl=1.0)  # the emulator's tokens live 1 s instead of 7,200 s
    fx.emu.store.seed(3, ["AccountObj"])
    rid = fx.emu.store.dump("AccountObj")[0]["_id"]
    async with fx.connector(token_calls_per_minute=600) as crm:
        for _ in range(25):
            assert await crm.fetch("AccountObj", [rid])
            await asyncio.sleep(0.1)
    assert fx.emu.answers[20016] == 0  # refreshed inside the window, never refused
    assert fx.emu.token_calls["current"] >= 2
