"""The engine's decisions, over three in-memory systems."""
from __future__ import annotations

from sqlalchemy import func, select

from sync_engine.state.models import DeadLetter, Link, Review


def count(engine, model, *where):
    with engine.rt.store.read() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


async def test_create_propagates_to_the_other_two_systems(engine, systems):
    fx, zoho, erp = systems["fx"], systems["zoho"], systems["erp"]
    fx.user_create("AccountObj", {"name": "深圳市华为技术有限公司", "uscc": "914403007084223151", "tel": "0755-1"})
    report = (await engine.run_all())[0]
    assert report.errors == []
    (z,) = zoho.records("Accounts").values()
    assert z == {"Account_Name": "深圳市华为技术有限公司", "Tax_ID": "914403007084223151", "Phone": "0755-1"}
    (e,) = erp.records("BD_Customer").values()
    assert e["FName"] == "深圳市华为技术有限公司"
    assert count(engine, Link) == 3

    # A second pass changes nothing anywhere: our own writes come back as echoes.
    writes = sum(s.writes.total() for s in systems.values())
    await engine.run_all()
    await engine.run_all()
    assert sum(s.writes.total() for s in systems.values()) == writes


async def test_edit_in_one_system_reaches_the_others_once(engine, systems):
    fx, zoho, erp = systems["fx"], systems["zoho"], systems["erp"]
    rid = fx.user_create("AccountObj", {"name": "恒通科技有限公司", "tel": "1"})
    await engine.run_all()
    (zid,) = zoho.records("Accounts")
    zoho.user_update("Accounts", zid, {"Phone": "2"})
    before = {n: s.writes["update"] for n, s in systems.items()}
    await engine.run_all()
    assert fx.records("AccountObj")[rid]["tel"] == "2"
    assert next(iter(erp.records("BD_Customer").values()))["FTel"] == "2"
    after = {n: s.writes["update"] for n, s in systems.items()}
    assert after == {"fx": before["fx"] + 1, "zoho": before["zoho"], "erp": before["erp"] + 1}
    await engine.run_all()
    assert {n: s.writes["update"] for n, s in systems.items()} == after


async def test_conflicting_edits_latest_wins_and_is_recorded(engine, systems):
    fx, zoho = systems["fx"], systems["zoho"]
    rid = fx.user_create("AccountObj", {"name": "Acme Robotics Co., Ltd.", "tel": "1"})
    await engine.run_all()
    (zid,) = zoho.records("Accounts")
    fx.user_update("AccountObj", rid, {"tel": "fx-phone"})
    zoho.user_update("Accounts", zid, {"Phone": "zoho-phone"})  # later
    await engine.run_all()
    assert fx.records("AccountObj")[rid]["tel"] == "zoho-phone"
    assert zoho.records("Accounts")[zid]["Phone"] == "zoho-phone"
    from sync_engine.state.models import Conflict

    with engine.rt.store.read() as s:
        (conflict,) = s.scalars(select(Conflict)).all()
    assert conflict.field == "phone" and conflict.winner_system == "zoho"


async def test_manual_policy_holds_field_in_review_and_syncs_the_rest(engine, systems):
    fx, zoho = systems["fx"], systems["zoho"]
    rid = fx.user_create("AccountObj", {"name": "Globex", "industry": "retail", "tel": "1"})
    await engine.run_all()
    (zid,) = zoho.records("Accounts")
    fx.user_update("AccountObj", rid, {"industry": "energy", "tel": "9"})
    zoho.user_update("Accounts", zid, {"Industry": "healthcare"})
    await engine.run_all()
    assert zoho.records("Accounts")[zid]["Phone"] == "9"
    assert zoho.records("Accounts")[zid]["Industry"] == "healthcare"
    assert fx.records("AccountObj")[rid]["industry"] == "energy"
    assert count(engine, Review, Review.kind == "conflict") == 1


async def test_first_sync_matches_same_company_in_two_systems(engine, systems):
    fx, zoho = systems["fx"], systems["zoho"]
    fx.user_create("AccountObj", {"name": "深圳市华为技术有限公司", "tel": "1"})
    zoho.user_create("Accounts", {"Account_Name": "华为技术", "Phone": "1"})
    await engine.run_all()
    assert len(zoho.records("Accounts")) == 1
    assert len(fx.records("AccountObj")) == 1
    assert count(engine, Link) == 3  # fx + zoho linked to one record, erp created


async def test_record_rejected_by_target_goes_to_dead_letters_and_rest_continue(engine, systems):
    fx, erp = systems["fx"], systems["erp"]
    erp.settings.required = ["FTaxRegisterCode"]
    fx.user_create("AccountObj", {"name": "No Tax Id Ltd"})
    fx.user_create("AccountObj", {"name": "Has Tax Id Ltd", "uscc": "91440300MA5FAKE123"})
    report = (await engine.run_all())[0]
    assert len(erp.records("BD_Customer")) == 1
    assert report.total("dead_letters") == 1
    with engine.rt.store.read() as s:
        (letter,) = s.scalars(select(DeadLetter)).all()
    assert letter.system == "erp" and letter.code == "MANDATORY_NOT_FOUND"


async def test_delete_propagates(engine, systems):
    fx, zoho, erp = systems["fx"], systems["zoho"], systems["erp"]
    rid = fx.user_create("AccountObj", {"name": "Initech"})
    await engine.run_all()
    fx.user_delete("AccountObj", rid)
    await engine.run_all()
    assert zoho.records("Accounts") == {} and erp.records("BD_Customer") == {}


async def test_source_of_truth_field_written_but_never_read_back(engine, systems):
    fx, zoho, erp = systems["fx"], systems["zoho"], systems["erp"]
    fx.user_create("AccountObj", {"name": "Umbrella", "credit": "100"})
    await engine.run_all()
    (eid,) = erp.records("BD_Customer")
    assert str(erp.records("BD_Customer")[eid]["FCreditLimit"]) == "100"
    erp.user_update("BD_Customer", eid, {"FCreditLimit": "5000.00"})
    await engine.run_all()
    assert str(next(iter(zoho.records("Accounts").values()))["Credit_Limit"]) == "5000.00"


async def test_reference_synced_first(engine, systems):
    fx, zoho = systems["fx"], systems["zoho"]
    aid = fx.user_create("AccountObj", {"name": "Vertex Software Inc."})
    fx.user_create("ContactObj", {"name": "王伟", "email": "wang@vertex.cn", "account_id": aid})
    await engine.run_all(["contacts"])  # the account flow has not run: the contact pulls its account in first
    (contact,) = zoho.records("Contacts").values()
    (zaid,) = zoho.records("Accounts")
    assert contact["Account_Name"] == {"id": zaid}


async def test_dry_run_writes_nothing(engine, systems):
    fx, zoho = systems["fx"], systems["zoho"]
    fx.user_create("AccountObj", {"name": "Dry Run Co"})
    reports = await engine.run_all(dry_run=True)
    assert zoho.records("Accounts") == {} and sum(s.writes.total() for s in systems.values()) == 0
    assert any(p.action == "create" for p in reports[0].planned)
    assert count(engine, Link) == 0
    await engine.run_all()
    assert len(zoho.records("Accounts")) == 1
