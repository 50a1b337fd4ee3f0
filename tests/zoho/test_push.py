"""Writes against the emulated org: batching, per-record results in input order, Zoho's codes."""
from __future__ import annotations

from datetime import timezone

from connectors.base import WriteOp

UPSERT = "POST /crm/{version}/{module}/upsert"


def account(i: int, **extra) -> dict:
    return {"Account_Name": f"深圳市星河{i:03d}科技有限公司", "Billing_City": "Shenzhen", **extra}


async def test_upsert_of_250_costs_3_calls_and_one_bad_record_fails_alone(org):
    ops = [WriteOp(key=f"k{i}", action="upsert", data=account(i)) for i in range(250)]
    ops[137].data["Phone"] = "call me maybe"  # a phone Zoho refuses
    async with org.connector() as zoho:
        results = await zoho.push("Accounts", ops)
    assert org.calls(UPSERT) == 3
    assert [r.key for r in results] == [op.key for op in ops], "results in input order"
    failed = [r for r in results if not r.ok]
    assert [(r.key, r.code) for r in failed] == [("k137", "INVALID_DATA")]
    assert "Phone" in failed[0].message
    assert org.snapshot()["by_status"].get(f"{UPSERT} 207") == 1  # the batch holding it: 99 landed
    landed = {r["Account_Name"]: r["id"] for r in org.emu.dump("Accounts")}
    assert len(landed) == 249
    for op, result in zip(ops, results, strict=True):
        if result.ok:
            assert landed[op.data["Account_Name"]] == result.external_id
            assert result.modified_at is not None and result.modified_at.tzinfo == timezone.utc


async def test_upsert_matches_on_duplicate_check_fields(org):
    async with org.connector(duplicate_check_fields={"Accounts": ["Unified_Social_Credit_Code", "Account_Name"]}) as zoho:
        first = await zoho.push("Accounts", [WriteOp("a", "upsert", account(1, Unified_Social_Credit_Code="91440300MA5F00001X"))])
        # Same company, name typed differently: the credit code still finds it.
        second = await zoho.push(
            "Accounts", [WriteOp("b", "upsert", {"Account_Name": "星河科技", "Unified_Social_Credit_Code": "91440300MA5F00001X"},
                                 match_fields=["Unified_Social_Credit_Code"])]
        )
    assert first[0].ok and second[0].ok and first[0].external_id == second[0].external_id
    assert [r["Account_Name"] for r in org.emu.dump("Accounts")] == ["星河科技"]


async def test_custom_module_upserts_on_name(org):
    async with org.connector() as zoho:
        a = await zoho.push("Partners", [WriteOp("p1", "upsert", {"Name": "深圳市华为技术有限公司", "Partner_Tier": "Gold"})])
        b = await zoho.push("Partners", [WriteOp("p2", "upsert", {"Name": "深圳市华为技术有限公司", "Partner_Tier": "Platinum"})])
    assert a[0].external_id == b[0].external_id
    assert org.emu.dump("Partners")[0]["Partner_Tier"] == "Platinum"


async def test_mixed_actions_keep_their_order_and_codes(org):
    async with org.connector() as zoho:
        created = await zoho.push("Accounts", [WriteOp("c1", "create", account(1)), WriteOp("c2", "create", account(2))])
        assert all(r.ok for r in created)
        a, b = (r.external_id for r in created)
        ops = [
            WriteOp("dup", "create", account(1)),  # DUPLICATE_DATA on Account_Name
            WriteOp("nameless", "create", {"Phone": "+86 755 1111 2222"}),  # MANDATORY_NOT_FOUND
            WriteOp("upd", "update", {"Phone": "+86 755 3333 4444"}, external_id=a),
            WriteOp("ghost", "update", {"Phone": "+86 755 0000 0000"}, external_id="5725767999999999999"),
            WriteOp("noid", "update", {"Phone": "+86 755 0000 0001"}),
            WriteOp("del", "delete", external_id=b),
            WriteOp("del-again", "delete", external_id=b),
        ]
        results = await zoho.push("Accounts", ops)
    assert [r.key for r in results] == [op.key for op in ops]
    outcome = {r.key: (r.ok, r.code) for r in results}
    assert outcome == {
        "dup": (False, "DUPLICATE_DATA"),
        "nameless": (False, "MANDATORY_NOT_FOUND"),
        "upd": (True, None),
        "ghost": (False, "INVALID_DATA"),
        "noid": (False, "MANDATORY_NOT_FOUND"),
        "del": (True, None),
        "del-again": (True, None),  # Zoho's INVALID_DATA "record not deleted": gone, as the delete wanted
    }
    dup = next(r for r in results if r.key == "dup")
    assert a in dup.message  # names the record it clashes with
    statuses = org.snapshot()["by_status"]
    assert statuses.get("POST /crm/{version}/{module} 400") == 1  # every insert of that batch failed
    assert statuses.get("PUT /crm/{version}/{module} 207") == 1


async def test_deal_with_lookup_and_chinese_text_round_trips(org):
    async with org.connector() as zoho:
        (acct,) = await zoho.push("Accounts", [WriteOp("a", "create", {"Account_Name": "阿里巴巴（中国）有限公司"})])
        deal = {"Deal_Name": "阿里巴巴 - 年度维保", "Stage": "Negotiation/Review", "Amount": 1280000.5,
                "Closing_Date": "2025-12-31", "Account_Name": {"id": acct.external_id}}
        (result,) = await zoho.push("Deals", [WriteOp("d", "create", deal)])
        bad = await zoho.push("Deals", [WriteOp("x", "create", {**deal, "Deal_Name": "x", "Account_Name": {"id": "5725767999999999999"}})])
        (fetched,) = await zoho.fetch("Deals", [result.external_id], ["Deal_Name", "Account_Name", "Probability", "Amount"])
    assert result.ok
    assert fetched.data["Account_Name"] == {"name": "阿里巴巴（中国）有限公司", "id": acct.external_id}
    assert fetched.data["Deal_Name"] == "阿里巴巴 - 年度维保" and fetched.data["Probability"] == 90
    assert bad[0].code == "INVALID_DATA" and "Account_Name" in bad[0].message


async def test_writes_go_in_batches_of_at_most_100(org):
    ops = [WriteOp(f"v{i}", "create", {"Vendor_Name": f"Vendor {i} Ltd."}) for i in range(205)]
    async with org.connector(write_parallelism=3) as zoho:
        results = await zoho.push("Vendors", ops)
        ids = [r.external_id for r in results]
        deletes = [WriteOp(f"d{i}", "delete", external_id=rid) for i, rid in enumerate(ids)]
        removed = await zoho.push("Vendors", deletes)
    assert all(r.ok for r in results) and all(r.ok for r in removed)
    assert org.calls("POST /crm/{version}/{module}") == 3
    assert org.calls("DELETE /crm/{version}/{module}") == 3
    assert org.emu.dump("Vendors") == []


async def test_a_checked_batch_of_updates_is_checked_when_its_turn_comes(org):
    """push_checked (issue #10): the caller's last look runs for each batch of updates once that batch holds
    its place among the parallel batches, right before it is sent, not when the push starts. An edit made
    while a batch waited is what its check sees; the update it withdraws is not sent, the others are."""
    from connectors.base import WITHDRAWN

    async with org.connector(write_batch=2, write_parallelism=1) as zoho:
        made = await zoho.push("Accounts", [WriteOp(f"c{i}", "create", account(i, Phone=f"0755-{i}")) for i in range(4)])
        ids = [r.external_id for r in made]
        updates = [WriteOp(f"u{i}", "update", {"Phone": f"020-{i}"}, external_id=rid) for i, rid in enumerate(ids)]

        def phones() -> list[str]:
            held = {r["id"]: r["Phone"] for r in org.emu.dump("Accounts")}
            return [held[rid] for rid in ids]

        seen: list[tuple[list[str], list[str]]] = []

        async def check(ops):
            seen.append(([op.key for op in ops], phones()))
            if len(seen) == 1:
                org.emu.admin_update("Accounts", ids[3], {"Phone": "0755-99999"})  # while the second batch waits
            return {op.key for op in ops if phones()[ids.index(op.external_id)] == "0755-99999"}

        results = await zoho.push_checked("Accounts", updates, check)
    assert [(r.key, r.ok, r.code) for r in results] == [
        ("u0", True, None), ("u1", True, None), ("u2", True, None), ("u3", False, WITHDRAWN)]
    assert seen == [(["u0", "u1"], ["0755-0", "0755-1", "0755-2", "0755-3"]),
                    (["u2", "u3"], ["020-0", "020-1", "0755-2", "0755-99999"])]
    assert phones() == ["020-0", "020-1", "020-2", "0755-99999"]


async def test_deleting_a_record_already_deleted_is_a_success(org):
    """A delete sent again after its first answer was lost (a timeout, a killed worker) meets Zoho's
    INVALID_DATA "record not deleted": 16 dead letters in a long chaos run for records that were gone, as
    meant. Looked up and gone, it is a success."""
    async with org.connector() as zoho:
        made = await zoho.push("Accounts", [WriteOp(f"c{i}", "create", account(i)) for i in range(2)])
        gone, kept = (r.external_id for r in made)
        [first] = await zoho.push("Accounts", [WriteOp("d1", "delete", external_id=gone)])
        again = await zoho.push("Accounts", [WriteOp("d2", "delete", external_id=gone),
                                             WriteOp("d3", "delete", external_id=kept)])
    assert first.ok
    assert [(r.key, r.ok, r.external_id) for r in again] == [("d2", True, gone), ("d3", True, kept)]
    assert org.emu.dump("Accounts") == []
