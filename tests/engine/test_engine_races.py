"""Races the chaos test (bench/chaos.py) found between users, webhook runs and passes on one record,
replayed here deterministically with the in-memory systems."""
from __future__ import annotations

from connectors.base import ChangeHint


def _synced_company(systems):
    fx = systems["fx"]
    rid = fx.user_create("AccountObj", {"name": "深圳市恒通科技有限公司", "uscc": "91440300MA5F000001", "tel": "0755-1"})
    return rid


async def test_an_edit_made_just_before_our_write_still_syncs(engine, systems):
    """Our write returns the record's new modified time. The record then also holds a user's edit made
    just before the write, which crmsync has not read: that version must not count as already seen."""
    fx, zoho, erp = systems["fx"], systems["zoho"], systems["erp"]
    rid = _synced_company(systems)
    await engine.run_all()
    (zid,) = zoho.records("Accounts")
    fx.user_update("AccountObj", rid, {"tel": "0755-2"})

    real_push = zoho.push

    async def push_after_a_user_edit(object, ops):
        zoho.user_update("Accounts", zid, {"Account_Name": "深圳市恒通科技股份有限公司"})  # lands first
        zoho.push = real_push
        return await real_push(object, ops)

    zoho.push = push_after_a_user_edit
    await engine.sync_hints("fx", [ChangeHint("AccountObj", [rid])])
    assert zoho.records("Accounts")[zid]["Phone"] == "0755-2"

    await engine.run_all()  # the next poll reads the Zoho record again
    assert fx.records("AccountObj")[rid]["name"] == "深圳市恒通科技股份有限公司"
    assert next(iter(erp.records("BD_Customer").values()))["FName"] == "深圳市恒通科技股份有限公司"
