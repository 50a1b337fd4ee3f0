"""End to end on the real emulators with the shipped channel-sales config.

Fxiaoke, Zoho and Kingdee run in-process on loopback; crmsync runs passes of all flows, as
`crmsync sync` does. Each test leaves the three systems in agreement, so the next one starts clean.
"""
from __future__ import annotations

import time
from decimal import Decimal

import pytest
from sqlalchemy import select

from sync_engine.state.models import Conflict, DeadLetter, Link, Review
from sync_engine.state.models.enums import LinkStatus

from .conftest import World, counts

HUAWEI = "深圳市华为技术有限公司"
HUAWEI_USCC = "914403001922038216"
HENGTONG = "深圳市恒通科技有限公司"
HENGTONG_USCC = "91440300MA5FA2XG7U"
BYTEDANCE = "北京字节跳动科技有限公司"
XINGHE = "杭州星河信息技术有限公司"
BOYUAN = "上海博远软件有限公司"
BOYUAN_USCC = "91310115MA1H7XKX4U"


def seed(world: World) -> dict[str, str]:
    ids: dict[str, str] = {}
    # The dealer master is the ERP's; the partner manager keyed the same dealer into Zoho by hand.
    ids["dealer"] = world.create("erp", "PAEZ_BD_Dealer", {
        "FName": HENGTONG, "F_PAEZ_Level": "2", "F_PAEZ_Region": "华南", "F_PAEZ_TaxNo": HENGTONG_USCC,
        "F_PAEZ_Contact": "陈杰", "F_PAEZ_Phone": "0755-8888 1234", "F_PAEZ_Email": "channel@hengtong.example.cn",
        "F_PAEZ_Manager.FNumber": "0002", "FCreateOrgId.FNumber": "100", "FUseOrgId.FNumber": "100",
        "FDocumentStatus": "C",
    })
    ids["zoho_partner"] = world.create("zoho", "Partners", {
        "Name": "深圳恒通科技", "Unified_Social_Credit_Code": HENGTONG_USCC, "Partner_Tier": "Gold", "Active": True,
        "Region": "华南",
    })
    # 华为 in Fxiaoke and (spelled differently, same 统一社会信用代码) in Zoho.
    ids["fx_huawei"] = world.create("fxiaoke", "AccountObj", {
        "name": HUAWEI, "credit_code__c": HUAWEI_USCC, "tel": "0755-2878 0808", "industry_level1": "technology",
        "url": "https://www.huawei.com/cn/", "address": "深圳市龙岗区坂田华为基地", "owner": ["1001"],
    })
    ids["zoho_huawei"] = world.create("zoho", "Accounts", {
        "Account_Name": "深圳华为技术有限公司", "Unified_Social_Credit_Code": HUAWEI_USCC, "Industry": "Technology",
        "Website": "http://www.huawei.com", "Account_Type": "Customer",
    })
    # 博远 keyed in Fxiaoke with its 统一社会信用代码 and address; later in Zoho by name only.
    ids["fx_boyuan"] = world.create("fxiaoke", "AccountObj", {
        "name": BOYUAN, "credit_code__c": BOYUAN_USCC, "address": "上海市浦东新区张江路 88 号",
        "industry_level1": "technology", "owner": ["1003"],
    })
    time.sleep(1.1)  # the Zoho record is the later one: latest_wins must not let its blanks win
    ids["zoho_boyuan"] = world.create("zoho", "Accounts", {"Account_Name": "上海博远软件", "Industry": "Technology"})
    ids["zoho_acme"] = world.create("zoho", "Accounts", {
        "Account_Name": "Acme Robotics Co., Ltd.", "Industry": "Manufacturing", "Phone": "+1 415 555 0100",
        "Billing_City": "Shanghai", "Partner": ids["zoho_partner"], "Account_Type": "Customer",
    })
    # An extension typed into the phone field: Zoho's phone type refuses it, the others take it.
    ids["fx_xinghe"] = world.create("fxiaoke", "AccountObj", {
        "name": XINGHE, "tel": "0571-8888 6666 转 8001", "industry_level1": "technology", "owner": ["1002"],
    })
    ids["fx_wangwei"] = world.create("fxiaoke", "ContactObj", {
        "name": "王伟", "account_id": ids["fx_huawei"], "job_title": "采购经理", "mobile1": "13800138000",
        "email": "wang.wei@huawei.example.cn", "owner": ["1001"],
    })
    ids["zoho_alice"] = world.create("zoho", "Contacts", {
        "First_Name": "Alice", "Last_Name": "Smith", "Email": "alice.smith@acme.example.com",
        "Account_Name": ids["zoho_acme"], "Title": "Purchasing Manager",
    })
    ids["fx_deal"] = world.create("fxiaoke", "NewOpportunityObj", {
        "name": "华为 - ERP 升级", "account_id": ids["fx_huawei"], "amount": "1280000.00", "sales_stage": "3",
        "probability": "50", "close_date": 1719676800000, "owner": ["1002"], "remark": "含三年维保",
    })
    # A customer only the ERP has, with an audited order.
    ids["erp_bytedance"] = world.create("erp", "BD_Customer", {
        "FName": BYTEDANCE, "FTAXREGISTERCODE": "91110108MA01BCDE2X", "F_PAEZ_Industry": "TECH",
        "FSELLER.FNumber": "0002", "FCreateOrgId.FNumber": "100", "FUseOrgId.FNumber": "100",
        "F_PAEZ_CreditLimit": 2000000.5, "FDocumentStatus": "C",
    })
    customer = world.records("erp", "BD_Customer")[0]["FNumber"]
    ids["erp_order"] = world.create("erp", "SAL_SaleOrder", {
        "FDate": "2024-05-06", "FSaleOrgId.FNumber": "100", "FCustId.FNumber": customer, "FSalerId.FNumber": "0002",
        "FNote": "合同号 HT-2024-0412", "FDocumentStatus": "C",
        "FSaleOrderFinance": {"FSettleCurrId": {"FNumber": "PRE001"}},
        "FSaleOrderEntry": [{"FMaterialId": {"FNumber": "1.01.001"}, "FQty": 4, "FTaxPrice": 68000, "FEntryTaxRate": 13}],
    })
    return ids


@pytest.fixture(scope="module")
def ids(world: World) -> dict[str, str]:
    ids = seed(world)
    started = time.monotonic()
    world.first_reports = world.sync()
    world.first_seconds = time.monotonic() - started
    return ids


def links_of(world: World, system: str, external_id: str, entity: str | None = None) -> dict[str, str]:
    """The record's ids in every system it is linked in (ERP ids repeat across forms: name the entity)."""
    with world.runtime().store.read() as session:
        query = select(Link).where(Link.system == system, Link.external_id == external_id)
        if entity:
            query = query.where(Link.entity == entity)
        link = session.scalar(query)
        assert link is not None, f"{system} {external_id} is not linked"
        return {
            other.system: other.external_id
            for other in session.scalars(select(Link).where(Link.entity == link.entity, Link.canonical_id == link.canonical_id,
                                                            Link.status == LinkStatus.ACTIVE))
        }


def test_first_sync_links_twins_and_creates_the_rest(world, ids):
    reports = world.first_reports
    assert all(not r.errors for r in reports), [r.errors for r in reports]
    # 恒通, 华为 and 博远 were keyed twice under different spellings: linked, not duplicated.
    assert sum(counts(reports, "matched").values()) == 3
    # 恒通: ERP dealer ↔ Zoho partner linked, created in Fxiaoke with the dealer's level and manager.
    partner = links_of(world, "erp", ids["dealer"], "partner")
    assert set(partner) == {"erp", "zoho", "fxiaoke"} and partner["zoho"] == ids["zoho_partner"]
    [fx_partner] = world.find("fxiaoke", "PartnerObj", _id=partner["fxiaoke"])
    assert fx_partner["partner_tier__c"] == "gold" and fx_partner["credit_code__c"] == HENGTONG_USCC
    assert fx_partner["owner"] == ["1002"]  # 渠道经理 0002 = 王芳 in every system
    dealer_number = world.find("erp", "PAEZ_BD_Dealer", FID=int(ids["dealer"]))[0]["FNumber"]
    assert world.find("zoho", "Partners", id=ids["zoho_partner"])[0]["ERP_Code"] == dealer_number

    # 华为: one company in all three systems, never a duplicate; the name is the same everywhere.
    huawei = links_of(world, "fxiaoke", ids["fx_huawei"])
    assert huawei["zoho"] == ids["zoho_huawei"]
    names = {
        world.find("fxiaoke", "AccountObj", _id=huawei["fxiaoke"])[0]["name"],
        world.find("zoho", "Accounts", id=huawei["zoho"])[0]["Account_Name"],
        world.find("erp", "BD_Customer", FCUSTID=int(huawei["erp"]))[0]["FName"],
    }
    assert len(names) == 1 and names <= {HUAWEI, "深圳华为技术有限公司"}
    erp_huawei = world.find("erp", "BD_Customer", FCUSTID=int(huawei["erp"]))[0]
    assert erp_huawei["FTAXREGISTERCODE"] == HUAWEI_USCC and erp_huawei["F_PAEZ_Industry"] == "TECH"
    assert erp_huawei["FSELLER"]["FNumber"] == "0001" and erp_huawei["FDocumentStatus"] == "C"
    assert erp_huawei["FWEBSITE"] == "huawei.com"
    assert len([r for r in world.records("zoho", "Accounts") if "华为" in r["Account_Name"]]) == 1
    assert len([r for r in world.records("fxiaoke", "AccountObj") if "华为" in r["name"]]) == 1

    # Acme, keyed in Zoho with its partner: the partner reference is translated per system.
    acme = links_of(world, "zoho", ids["zoho_acme"])
    fx_acme = world.find("fxiaoke", "AccountObj", _id=acme["fxiaoke"])[0]
    assert fx_acme["name"] == "Acme Robotics Co., Ltd." and fx_acme["industry_level1"] == "manufacturing"
    assert fx_acme["partner_id"] == partner["fxiaoke"]
    erp_acme = world.find("erp", "BD_Customer", FCUSTID=int(acme["erp"]))[0]
    assert erp_acme["F_PAEZ_Dealer"]["FNumber"] == dealer_number  # the dealer by its number, not its id

    # 字节跳动 from the ERP: the customer number and credit limit reach Zoho (ERP-owned fields).
    bytedance = links_of(world, "erp", ids["erp_bytedance"], "account")
    zoho_bd = world.find("zoho", "Accounts", id=bytedance["zoho"])[0]
    assert zoho_bd["Account_Name"] == BYTEDANCE and zoho_bd["Credit_Limit"] == 2000000.5
    assert zoho_bd["ERP_Customer_Code"] == world.find("erp", "BD_Customer", FCUSTID=int(ids["erp_bytedance"]))[0]["FNumber"]

    # Contacts and the deal, with their account references translated.
    wang = links_of(world, "fxiaoke", ids["fx_wangwei"])
    zoho_wang = world.find("zoho", "Contacts", id=wang["zoho"])[0]
    assert zoho_wang["Last_Name"] == "王伟" and zoho_wang["Account_Name"]["id"] == huawei["zoho"]
    alice = links_of(world, "zoho", ids["zoho_alice"])
    fx_alice = world.find("fxiaoke", "ContactObj", _id=alice["fxiaoke"])[0]
    assert fx_alice["name"] == "Alice Smith" and fx_alice["account_id"] == acme["fxiaoke"]
    deal = links_of(world, "fxiaoke", ids["fx_deal"])
    zoho_deal = world.find("zoho", "Deals", id=deal["zoho"])[0]
    assert zoho_deal["Deal_Name"] == "华为 - ERP 升级" and zoho_deal["Stage"] == "Proposal/Price Quote"
    assert Decimal(str(zoho_deal["Amount"])) == Decimal("1280000.00") and zoho_deal["Closing_Date"] == "2024-06-30"
    assert zoho_deal["Description"] == "含三年维保"

    # The ERP order reaches both CRMs, on the customer's record there.
    order = links_of(world, "erp", ids["erp_order"], "sales_order")
    erp_order = world.find("erp", "SAL_SaleOrder", FID=int(ids["erp_order"]))[0]
    fx_order = world.find("fxiaoke", "SalesOrderObj", _id=order["fxiaoke"])[0]
    assert fx_order["name"] == erp_order["FBillNo"] and fx_order["account_id"] == bytedance["fxiaoke"]
    assert Decimal(fx_order["order_amount"]) == Decimal("272000.00") and fx_order["remark"] == "合同号 HT-2024-0412"
    zoho_order = world.find("zoho", "Sales_Orders", id=order["zoho"])[0]
    assert zoho_order["Subject"] == erp_order["FBillNo"] and zoho_order["Status"] == "Approved"
    assert zoho_order["Account_Name"]["id"] == bytedance["zoho"] and zoho_order["Order_Date"] == "2024-05-06"
    assert [(i["Quantity"], i["List_Price"]) for i in zoho_order["Ordered_Items"]] == [(4, pytest.approx(60176.99))]
    assert world.first_seconds < 30


def test_a_blank_in_one_system_never_erases_a_value_from_another(world, ids):
    # Twins linked on the first sync: the later record lacks the tax id and the address. No value is not
    # a change; the value travels to Zoho and the ERP, and Fxiaoke keeps it.
    boyuan = links_of(world, "fxiaoke", ids["fx_boyuan"])
    assert boyuan["zoho"] == ids["zoho_boyuan"]
    fx = world.find("fxiaoke", "AccountObj", _id=ids["fx_boyuan"])[0]
    assert fx["credit_code__c"] == BOYUAN_USCC and fx["address"] == "上海市浦东新区张江路 88 号"
    assert world.find("zoho", "Accounts", id=ids["zoho_boyuan"])[0]["Unified_Social_Credit_Code"] == BOYUAN_USCC
    assert world.find("erp", "BD_Customer", FCUSTID=int(boyuan["erp"]))[0]["FTAXREGISTERCODE"] == BOYUAN_USCC


def test_a_target_that_refuses_a_record_makes_a_dead_letter_with_its_code(world, ids):
    with world.runtime().store.read() as session:
        letters = list(session.scalars(select(DeadLetter).where(DeadLetter.system == "zoho")))
    [letter] = [d for d in letters if XINGHE in str(d.payload)]
    assert letter.code == "INVALID_DATA" and "Phone" in (letter.message or "")
    # The other systems took the record: one refusal does not hold the rest back.
    assert world.find("erp", "BD_Customer", FName=XINGHE)[0]["FTEL"] == "0571-8888 6666 转 8001"
    assert counts(world.first_reports, "dead_letters") == {"zoho": 1}


def test_the_next_pass_carries_only_what_the_erp_assigned_then_nothing_moves(world, ids):
    # Customers crmsync created in the ERP got their 客户编码 (and a 0 credit limit) from the ERP's own
    # rules; the next pass reads them back and hands exactly those ERP-owned values to Zoho.
    before = world.writes()
    reports = world.sync()
    assert counts(reports, "created") == {}
    with world.runtime().store.read() as session:
        from sync_engine.state.models.pipeline import OutboxWrite

        updates = list(session.scalars(select(OutboxWrite).where(
            OutboxWrite.run_id.in_([r.run_id for r in reports]), OutboxWrite.action == "update")))
    assert updates and all(u.system == "zoho" and set(u.values) <= {"erp_customer_number", "credit_limit"} for u in updates)
    # Then the systems agree: another pass reads our own writes back as echoes and writes nothing.
    before = world.writes()
    reports = world.sync()
    assert world.writes() == before
    assert counts(reports, "created") == {} and counts(reports, "updated") == {} and counts(reports, "dead_letters") == {}


def test_an_edit_in_one_system_reaches_the_others_once(world, ids):
    acme = links_of(world, "zoho", ids["zoho_acme"])
    world.update("zoho", "Accounts", ids["zoho_acme"], {"Phone": "+86 21 6888 0000", "Billing_Street": "上海市浦东新区世纪大道 88 号"})
    reports = world.sync()
    assert counts(reports, "updated") == {"fxiaoke": 1, "erp": 1}
    fx = world.find("fxiaoke", "AccountObj", _id=acme["fxiaoke"])[0]
    erp = world.find("erp", "BD_Customer", FCUSTID=int(acme["erp"]))[0]
    assert fx["tel"] == erp["FTEL"] == "+86 21 6888 0000"
    assert fx["address"] == erp["FADDRESS"] == "上海市浦东新区世纪大道 88 号"
    before = world.writes()
    world.sync()  # the systems report our writes back: echoes, nothing travels back to Zoho
    assert world.writes() == before


def test_the_same_field_edited_in_two_systems_is_a_conflict_settled_by_policy(world, ids):
    huawei = links_of(world, "fxiaoke", ids["fx_huawei"])
    world.update("fxiaoke", "AccountObj", ids["fx_huawei"], {"tel": "0755-1111 0000", "industry_level1": "manufacturing"})
    time.sleep(1.1)  # Zoho's modified times have whole seconds: the Zoho edit is the later one
    world.update("zoho", "Accounts", huawei["zoho"], {"Phone": "0755-2222 0000", "Industry": "Healthcare"})
    world.sync()
    with world.runtime().store.read() as session:
        conflicts = {c.field: c for c in session.scalars(select(Conflict))}
        reviews = list(session.scalars(select(Review).where(Review.kind == "conflict")))
    # phone: latest_wins → Zoho's later edit everywhere.
    assert conflicts["phone"].policy.startswith("latest_wins") and conflicts["phone"].winner_system == "zoho"
    assert world.find("fxiaoke", "AccountObj", _id=huawei["fxiaoke"])[0]["tel"] == "0755-2222 0000"
    assert world.find("erp", "BD_Customer", FCUSTID=int(huawei["erp"]))[0]["FTEL"] == "0755-2222 0000"
    # industry: manual → held for a person, both values shown; each system keeps its own meanwhile.
    assert conflicts["industry"].winner_system is None
    [review] = [r for r in reviews if r.details["field"] == "industry"]
    assert review.details["values"] == {"fxiaoke": "manufacturing", "zoho": "healthcare"}
    assert world.find("erp", "BD_Customer", FCUSTID=int(huawei["erp"]))[0]["F_PAEZ_Industry"] == "TECH"


def test_a_delete_follows_the_entity_policy(world, ids):
    alice = links_of(world, "zoho", ids["zoho_alice"])
    world.delete("zoho", "Contacts", ids["zoho_alice"])  # to the recycle bin: Zoho lists it as deleted
    reports = world.sync()
    assert counts(reports, "deleted") == {"fxiaoke": 1}  # contacts: propagate
    # Gone from Fxiaoke: invalidated (作废), then deleted, as the API requires.
    assert [r for r in world.find("fxiaoke", "ContactObj", _id=alice["fxiaoke"]) if r["life_status"] != "invalid"] == []
    # Accounts deactivate instead: the company stays where it is, marked inactive where a status is kept.
    acme = links_of(world, "zoho", ids["zoho_acme"])
    world.delete("fxiaoke", "AccountObj", acme["fxiaoke"])
    world.sync()
    [zoho_acme] = world.find("zoho", "Accounts", id=acme["zoho"])
    assert zoho_acme["Account_Type"] == "Other"  # canonical status inactive
    assert world.find("erp", "BD_Customer", FCUSTID=int(acme["erp"]))
    assert not [r for r in world.records("fxiaoke", "AccountObj") if r["name"] == "Acme Robotics Co., Ltd."
                and r["life_status"] != "invalid"]  # not re-created where it was deleted
    before = world.writes()
    world.sync()
    assert world.writes() == before


def test_each_new_run_takes_the_token_an_earlier_run_left(world, ids):
    # Every `crmsync sync` above ran in a fresh runtime, as separate processes do: only the first fetched
    # tokens; the others took them from the state database (Zoho keeps 30 per refresh token and evicts
    # the oldest; Fxiaoke allows 10 token calls a minute).
    def token_calls() -> dict[str, int]:
        zoho = world.admin.get(f"{world.urls['zoho']}/_admin/calls").json()["by_route"]
        fx = world.admin.get(f"{world.urls['fxiaoke']}/_admin/calls").json()["by_route"]
        return {"zoho": zoho.get("POST /oauth/v2/token", 0), "fxiaoke": sum(n for r, n in fx.items() if "token" in r.lower())}

    assert token_calls() == {"zoho": 1, "fxiaoke": 1}
    world.sync()
    assert token_calls() == {"zoho": 1, "fxiaoke": 1}
