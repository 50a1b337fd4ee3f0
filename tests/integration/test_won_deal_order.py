"""A won deal becomes one ERP sales order; the order's status and totals come back to the deal.

The shipped channel-sales config and its trigger `order_from_won_deal`, on the three emulators.
"""
from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from sync_engine.state.models import AuditEvent, Link
from sync_engine.state.models.pipeline import TriggerFiring

from .conftest import World, counts

HUAWEI = "深圳市华为技术有限公司"
HUAWEI_USCC = "914403001922038216"
DEAL = "华为 - 数据中心扩容"


@pytest.fixture(scope="module")
def ids(world: World) -> dict[str, str]:
    ids = {
        "fx_account": world.create("fxiaoke", "AccountObj", {
            "name": HUAWEI, "credit_code__c": HUAWEI_USCC, "industry_level1": "technology", "owner": ["1001"],
        }),
    }
    ids["fx_deal"] = world.create("fxiaoke", "NewOpportunityObj", {
        "name": DEAL, "account_id": ids["fx_account"], "amount": "1130000.00", "sales_stage": "4",
        "probability": "80", "close_date": 1719676800000, "owner": ["1002"],
    })
    world.sync()
    world.sync()  # the ERP's customer number (客户编码) reaches the canonical account
    return ids


def orders_for(world: World, fx_deal: str) -> list[dict]:
    return world.find("erp", "SAL_SaleOrder", F_PAEZ_CrmDealId=fx_deal)


def test_a_deal_not_won_makes_no_order(world, ids):
    assert orders_for(world, ids["fx_deal"]) == []


def test_winning_the_deal_creates_one_order_in_the_erp(world, ids):
    world.update("fxiaoke", "NewOpportunityObj", ids["fx_deal"], {"sales_stage": "5", "probability": "100"})
    reports = world.sync(["deals"])
    assert counts(reports, "triggered") == {"erp": 1}
    [order] = orders_for(world, ids["fx_deal"])
    [customer] = world.find("erp", "BD_Customer", FName=HUAWEI)  # created by the accounts flow
    assert order["FCustId"]["FNumber"] == customer["FNumber"]
    assert order["FSalerId"]["FNumber"] == "0002"  # the deal's owner, through the users value map
    assert order["FBillNo"].startswith("XSDD")  # numbered by the ERP
    assert "CRM 商机: " + DEAL in order["FNote"]
    # One line for the won amount: the ERP's tax-inclusive total equals the deal's amount to the cent.
    assert Decimal(str(order["FBillAllAmount"])) == Decimal("1130000.00")
    with world.runtime().store.read() as session:
        [firing] = session.scalars(select(TriggerFiring)).all()
        assert firing.trigger == "order_from_won_deal" and firing.status == "created"
        link = session.scalar(select(Link).where(Link.entity == "sales_order", Link.system == "erp",
                                                  Link.canonical_id == firing.target_id))
        assert link is not None and link.external_id == str(order["FID"])
        assert session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.kind == "trigger")) == 1


def test_the_order_status_and_total_reach_the_deal_and_the_crms(world, ids):
    [order] = orders_for(world, ids["fx_deal"])
    world.update("erp", "SAL_SaleOrder", str(order["FID"]), {"FDocumentStatus": "C"})  # finance approves it
    world.sync()
    deal = world.find("fxiaoke", "NewOpportunityObj", _id=ids["fx_deal"])[0]
    assert deal["erp_order_no__c"] == order["FBillNo"]
    assert deal["erp_order_status__c"] == "approved"
    assert Decimal(str(deal["erp_order_amount__c"])) == Decimal("1130000.00")
    [zoho_deal] = world.find("zoho", "Deals", Deal_Name=DEAL)
    assert zoho_deal["ERP_Order_No"] == order["FBillNo"] and zoho_deal["ERP_Order_Status"] == "Approved"
    assert Decimal(str(zoho_deal["ERP_Order_Amount"])) == Decimal("1130000.00")
    # The order itself is copied to both CRMs by the sales_orders flow, linked to the deal.
    [fx_order] = world.find("fxiaoke", "SalesOrderObj", name=order["FBillNo"])
    assert fx_order["new_opportunity_id"] == ids["fx_deal"]
    [zoho_order] = world.find("zoho", "Sales_Orders", Subject=order["FBillNo"])
    assert zoho_order["Status"] == "Approved"


def test_winning_the_deal_again_makes_no_second_order_and_then_nothing_moves(world, ids):
    world.update("fxiaoke", "NewOpportunityObj", ids["fx_deal"], {"sales_stage": "4"})
    world.sync(["deals"])
    world.update("fxiaoke", "NewOpportunityObj", ids["fx_deal"], {"sales_stage": "5"})
    reports = world.sync()
    assert counts(reports, "triggered") == {}
    assert len(orders_for(world, ids["fx_deal"])) == 1
    # Zoho sets Probability from the Stage itself: that change of its own may need one more pass to settle.
    world.sync()
    before = world.writes()
    reports = world.sync()  # our writes come back as echoes
    with world.runtime().store.read() as session:
        from sync_engine.state.models.pipeline import OutboxWrite
        rows = [(r.entity, r.system, r.action, r.values, r.flow) for r in session.scalars(select(OutboxWrite).where(
            OutboxWrite.run_id.in_([r.run_id for r in reports])))]
    assert world.writes() == before, rows


def test_a_changed_total_in_the_erp_is_written_back(world, ids):
    [order] = orders_for(world, ids["fx_deal"])
    # The sales office adds the real products to the order.
    world.update("erp", "SAL_SaleOrder", str(order["FID"]), {"FSaleOrderEntry": [
        {"FMaterialId": {"FNumber": "1.01.001"}, "FQty": 10, "FTaxPrice": 68000, "FEntryTaxRate": 13},
    ]})
    [order] = orders_for(world, ids["fx_deal"])
    total = Decimal(str(order["FBillAllAmount"]))
    assert total != Decimal("1130000.00")
    reports = world.sync(["sales_orders"])
    assert counts(reports, "written_back") == {"erp": 1}
    deal = world.find("fxiaoke", "NewOpportunityObj", _id=ids["fx_deal"])[0]
    assert Decimal(str(deal["erp_order_amount__c"])) == total
    [zoho_deal] = world.find("zoho", "Deals", Deal_Name=DEAL)
    assert Decimal(str(zoho_deal["ERP_Order_Amount"])) == total
