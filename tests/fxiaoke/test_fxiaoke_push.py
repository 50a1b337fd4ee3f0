"""Writing through the emulator: create, partial update, changeOwner, invalid → delete,
upsert, per-record failures and the request shapes on the wire."""
from __future__ import annotations

import json
import uuid

import httpx
import pytest

from connectors.base import WriteOp
from connectors.errors import AuthError


class Recorder(httpx.AsyncBaseTransport):
    """Forwards to the real transport and keeps every request (to check the wire format)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append(request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def bodies(self, path: str) -> list[dict]:
        return [json.loads(r.content) for r in self.requests if r.url.path == path]


async def test_create_update_change_owner_invalid_delete(fx):
    store = fx.emu.store
    async with fx.connector() as crm:
        [created] = await crm.push("AccountObj", [WriteOp(key="k1", action="create", data={
            "name": "深圳市华为技术有限公司", "owner": ["1002"], "account_level": "A", "tel": "0755-28780808"})])
        assert created.ok and len(created.external_id) == 24
        rid = created.external_id
        row = store.get("AccountObj", rid)
        assert row["name"] == "深圳市华为技术有限公司" and row["owner"] == ["1002"] and row["version"] == "1"

        # Partial update: only tel changes, other fields stay.
        [updated] = await crm.push("AccountObj", [WriteOp(key="k2", action="update", external_id=rid,
                                                          data={"tel": "0755-00000000"})])
        assert updated.ok
        row = store.get("AccountObj", rid)
        assert (row["tel"], row["account_level"], row["owner"], row["version"]) == ("0755-00000000", "A", ["1002"], "2")
        assert fx.calls("/cgi/crm/v2/data/changeOwner") == 0

        # An owner change is split off into changeOwner (update alone would silently ignore it).
        [moved] = await crm.push("AccountObj", [WriteOp(key="k3", action="update", external_id=rid,
                                                        data={"remark": "转交华南大区", "owner": ["1005"]})])
        assert moved.ok
        row = store.get("AccountObj", rid)
        assert row["owner"] == ["1005"] and row["remark"] == "转交华南大区"
        assert fx.calls("/cgi/crm/v2/data/update") == 2 and fx.calls("/cgi/crm/v2/data/changeOwner") == 1

        # Owner only: no update call at all.
        [owner_only] = await crm.push("AccountObj", [WriteOp(key="k4", action="update", external_id=rid,
                                                             data={"owner": "1006"})])
        assert owner_only.ok and store.get("AccountObj", rid)["owner"] == ["1006"]
        assert fx.calls("/cgi/crm/v2/data/update") == 2

        # Delete = invalid (作废) then delete; a second delete is already done.
        [deleted] = await crm.push("AccountObj", [WriteOp(key="k5", action="delete", external_id=rid)])
        assert deleted.ok and store.tables["AccountObj"].get(rid) is None
        assert fx.calls("/cgi/crm/v2/data/invalid") == 1 and fx.calls("/cgi/crm/v2/data/delete") == 1
        [again] = await crm.push("AccountObj", [WriteOp(key="k6", action="delete", external_id=rid)])
        assert again.ok and fx.calls("/cgi/crm/v2/data/delete") == 1


async def test_delete_of_an_already_invalidated_record_goes_straight_to_delete(fx):
    fx.emu.store.seed(3, ["AccountObj"])
    rid = fx.emu.store.dump("AccountObj")[0]["_id"]
    fx.emu.store.invalidate("AccountObj", [rid], user="1001", by_api=False)  # a user's 作废
    async with fx.connector() as crm:
        [result] = await crm.push("AccountObj", [WriteOp(key="d", action="delete", external_id=rid)])
    assert result.ok and fx.emu.store.tables["AccountObj"].get(rid) is None


async def test_per_record_failures_carry_the_system_code_and_do_not_stop_the_batch(fx):
    fx.emu.store.seed(2, ["AccountObj"])
    account = fx.emu.store.dump("AccountObj")[0]["_id"]
    async with fx.connector() as crm:
        results = await crm.push("ContactObj", [
            WriteOp(key="good", action="create", data={"name": "王芳", "account_id": account, "owner": ["1001"]}),
            WriteOp(key="lookup", action="create", data={"name": "李娜", "account_id": "5f323dd6d97520000155369f",
                                                         "owner": ["1001"]}),
            WriteOp(key="required", action="create", data={"owner": ["1001"], "account_id": account}),
            WriteOp(key="missing", action="update", external_id="0" * 24, data={"name": "无此人"}),
            WriteOp(key="noid", action="update", data={"name": "没有id"}),
        ])
    by_key = {r.key: r for r in results}
    assert [r.key for r in results] == ["good", "lookup", "required", "missing", "noid"]
    assert by_key["good"].ok
    assert (by_key["lookup"].ok, by_key["lookup"].code) == (False, "201112011")
    assert "关联关系不存在" in by_key["lookup"].message and not by_key["lookup"].retryable
    assert by_key["required"].code == "201112001"
    assert by_key["missing"].code == "201112008"
    assert by_key["noid"].code == "MISSING_ID"


async def test_option_labels_instead_of_values_are_rejected_per_record(fx):
    async with fx.connector() as crm:
        [label] = await crm.push("AccountObj", [WriteOp(key="a", action="create", data={
            "name": "上海恒通科技有限公司", "account_level": "A类", "owner": ["1001"]})])
    assert not label.ok and label.code == "201112001" and "选项值" in label.message


async def test_upsert_matches_on_fields_then_creates_or_updates(fx):
    async with fx.connector() as crm:
        ops = [WriteOp(key="u1", action="upsert", match_fields=["credit_code__c"],
                       data={"name": "杭州云启软件有限公司", "credit_code__c": "91330100MA2B3C4D5E", "owner": ["1001"]})]
        [first] = await crm.push("AccountObj", ops)
        ops[0].data["tel"] = "0571-88886666"
        [second] = await crm.push("AccountObj", ops)
    assert first.ok and second.ok and first.external_id == second.external_id
    assert fx.emu.store.get("AccountObj", first.external_id)["tel"] == "0571-88886666"
    assert len(fx.emu.store.dump("AccountObj")) == 1


async def test_custom_objects_use_the_custom_paths(fx):
    fx.emu.store.seed(1, ["AccountObj"])
    account = fx.emu.store.dump("AccountObj")[0]["_id"]
    async with fx.connector() as crm:
        [made] = await crm.push("ServiceContract__c", [WriteOp(key="c", action="create", data={
            "name": "年度维保合同", "account_id__c": account, "amount__c": "120000.00", "start_date__c": 1717200000000,
            "status__c": "active", "owner": ["1001"]})])
        [gone] = await crm.push("ServiceContract__c", [WriteOp(key="d", action="delete", external_id=made.external_id)])
    assert made.ok and gone.ok
    assert fx.calls("/cgi/crm/custom/v2/data/create") == 1
    assert fx.calls("/cgi/crm/custom/v2/data/invalid") == 1 and fx.calls("/cgi/crm/custom/v2/data/delete") == 1
    assert fx.calls("/cgi/crm/v2/data/create") == 0


async def test_wire_format_trace_ids_flags_and_both_auth_styles(fx):
    recorder = Recorder()
    async with fx.connector(transport=recorder, trigger_approval_flow=False,
                            objects={"PartnerObj": {"trigger_workflow": False,
                                                    "option_info": {"isDuplicateSearch": True}}}) as crm:
        await crm.push("AccountObj", [WriteOp(key="a", action="create", data={"name": "北京字节跳动科技有限公司"})])
        await crm.push("PartnerObj", [WriteOp(key="p", action="create", data={"name": "广州鼎盛贸易有限公司"})])
    trace_ids = [r.url.params["thirdTraceId"] for r in recorder.requests]
    assert len(set(trace_ids)) == len(trace_ids) == 3
    assert all(uuid.UUID(t).version == 4 for t in trace_ids)
    account_call = next(r for r in recorder.requests if r.url.path == "/cgi/crm/v2/data/create")
    assert account_call.headers["authorization"].startswith("Bearer ")
    assert account_call.headers["x-fs-ea"] == fx.emu.config.ea and account_call.headers["x-fs-userid"] == "1000"
    account_body, partner_body = recorder.bodies("/cgi/crm/v2/data/create")
    assert (account_body["triggerWorkFlow"], account_body["triggerApprovalFlow"]) == (True, False)
    assert account_body["data"]["object_data"]["dataObjectApiName"] == "AccountObj"
    assert "corpAccessToken" not in account_body
    assert partner_body["triggerWorkFlow"] is False
    assert partner_body["data"]["optionInfo"] == {"isDuplicateSearch": True}
    token_body = recorder.bodies("/oauth2.0/token")[0]
    assert token_body["grantType"] == "app_secret"

    legacy = Recorder()
    async with fx.connector(auth_style="legacy", transport=legacy) as crm:
        fx.emu.store.seed(1, ["AccountObj"])
        rid = fx.emu.store.dump("AccountObj")[0]["_id"]
        [moved] = await crm.push("AccountObj", [WriteOp(key="m", action="update", external_id=rid,
                                                        data={"owner": [fx.emu.credentials()["open_user_id"]]})])
    assert moved.ok and fx.emu.store.get("AccountObj", rid)["owner"] == ["1000"]
    body = legacy.bodies("/cgi/crm/v2/data/changeOwner")[0]
    assert body["corpId"] == fx.emu.config.corp_id and body["currentOpenUserId"].startswith("FSUID_")
    assert body["data"]["Data"] == [{"objectDataId": rid, "ownerId": [fx.emu.credentials()["open_user_id"]]}]
    assert "authorization" not in legacy.requests[-1].headers


async def test_bad_credentials_raise_auth_error_before_any_write(fx):
    async with fx.connector(app_secret="wrong-secret") as crm:
        with pytest.raises(AuthError) as caught:
            await crm.push("AccountObj", [WriteOp(key="a", action="create", data={"name": "某公司"})])
        assert caught.value.code == "20006"
        assert "wrong-secret" not in json.dumps(crm.status(), ensure_ascii=False)
    async with fx.connector(permanent_code="nope") as crm:
        with pytest.raises(AuthError) as caught:
            await crm.check()
        assert caught.value.code == "20015"


async def test_ops_on_one_record_apply_in_order_and_the_bracket_owner_format_works(fx):
    fx.emu.store.seed(1, ["AccountObj"])
    rid = fx.emu.store.dump("AccountObj")[0]["_id"]
    ops = [WriteOp(key=str(i), action="update", external_id=rid, data={"remark": f"第{i}次"}) for i in range(6)]
    ops.append(WriteOp(key="owner", action="update", external_id=rid, data={"owner": ["1004"]}))
    async with fx.connector(write_concurrency=8, change_owner_id_format="bracket_string") as crm:
        results = await crm.push("AccountObj", ops)
    assert all(r.ok for r in results)
    row = fx.emu.store.get("AccountObj", rid)
    assert row["remark"] == "第5次" and row["owner"] == ["1004"]


async def test_a_checked_update_is_checked_when_its_turn_comes_and_a_withdrawn_one_is_not_sent(fx):
    """push_checked (issue #10): the caller's last look at a record runs once its update holds its write
    slot, not when the batch starts. With one slot, the check of the second update comes after the first
    update landed; the user's edit made while it waited is what the check sees, and the update it
    withdraws is never sent."""
    from connectors.base import WITHDRAWN

    store = fx.emu.store
    async with fx.connector(write_concurrency=1) as crm:
        made = await crm.push("AccountObj", [
            WriteOp(key=f"c{i}", action="create", data={"name": f"深圳市恒通{i}科技有限公司", "tel": f"0755-{i}"})
            for i in range(3)])
        ids = [r.external_id for r in made]
        updates = [WriteOp(key=f"u{i}", action="update", external_id=rid, data={"tel": f"020-{i}"})
                   for i, rid in enumerate(ids)]
        seen: list[tuple[str, list[str]]] = []

        async def check(ops):
            (op,) = ops  # one call per record: one check per update
            seen.append((op.key, [store.get("AccountObj", rid)["tel"] for rid in ids]))
            if op.key == "u0":
                store.update("AccountObj", ids[1], {"tel": "0755-user"}, user="1000", by_api=False)  # while u1 waits
            # as the engine does: withdraw an update whose record changed since it was decided
            return {op.key} if store.get("AccountObj", op.external_id)["tel"] == "0755-user" else set()

        results = await crm.push_checked("AccountObj", updates, check)
    assert [(r.key, r.ok, r.code) for r in results] == [("u0", True, None), ("u1", False, WITHDRAWN), ("u2", True, None)]
    assert seen == [("u0", ["0755-0", "0755-1", "0755-2"]),
                    ("u1", ["020-0", "0755-user", "0755-2"]),
                    ("u2", ["020-0", "0755-user", "0755-2"])]
    assert [store.get("AccountObj", rid)["tel"] for rid in ids] == ["020-0", "0755-user", "020-2"]
    assert fx.calls("/cgi/crm/v2/data/update") == 2
