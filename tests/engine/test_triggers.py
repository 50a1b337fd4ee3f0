"""Triggers: a won deal creates one order in the ERP; the order reports back to the deal."""
from __future__ import annotations

import textwrap
from decimal import Decimal

import pytest
from sqlalchemy import select

from config.errors import ConfigError
from config.loader import parse_config
from sync_engine.engine import SyncEngine
from sync_engine.operations import list_dead_letters, replay_dead_letters
from sync_engine.runtime import Runtime
from sync_engine.state.db import StateStore
from sync_engine.state.models.pipeline import TriggerFiring

from .memory import MemorySystem

CONFIG = """
systems:
  fx: {type: memory}
  zoho: {type: memory}
  erp: {type: memory}
entities:
  account:
    model: Account
    systems:
      fx: {object: AccountObj, fields: {name: name, tax_id: uscc}}
      zoho: {object: Accounts, fields: {name: Account_Name, tax_id: Tax_ID}}
      erp: {object: Customers, fields: {name: FName, tax_id: FTaxNo}}
  deal:
    model: Deal
    systems:
      fx:
        object: Opp
        fields:
          name: name
          amount: amount
          stage: stage
          description: remark
          account: {field: account_id, reference: account}
          order_number: {field: order_no, direction: write}
          order_status: {field: order_status, direction: write}
          order_total: {field: order_total, direction: write}
      zoho:
        object: Deals
        fields:
          name: Deal_Name
          amount: Amount
          stage: Stage
          account: {field: Account_Name, reference: account}
          order_number: {field: ERP_Order_No, direction: write}
          order_total: {field: ERP_Order_Amount, direction: write}
  sales_order:
    model: SalesOrder
    systems:
      erp:
        object: Orders
        fields:
          number: bill_no
          status: status
          total_amount: total
          order_date: date
          note: note
          account: {field: cust, reference: account}
          deal: {field: crm_deal, type: text, reference: {entity: deal, id_system: fx}}
      zoho:
        object: Sales_Orders
        fields: {number: Subject, status: Status, total_amount: Grand_Total, deal: {field: Deal_Name, reference: deal}}
flows:
  accounts: {entity: account, systems: [fx, zoho, erp]}
  deals: {entity: deal, systems: [fx, zoho]}
  orders: {entity: sales_order, systems: [erp, zoho], direction: one_way, source: erp}
triggers:
  order_from_won_deal:
    when: {entity: deal, match: {stage: [won, closed_won]}}
    create:
      entity: sales_order
      in: erp
      values:
        deal: record.id
        account: record.account
        total_amount: record.amount
        order_date: ORDER_DATE
        note: "concat('CRM: ', record.name)"
    write_back: {order_number: number, order_status: status, order_total: total_amount}
"""


def config_text(order_date: str = "local_date(value, 'Asia/Shanghai')") -> str:
    return textwrap.dedent(CONFIG).replace("ORDER_DATE", order_date)


@pytest.fixture
async def make_engine(memory_plugin, state_url):
    runtimes = []

    async def make(text: str = config_text()) -> SyncEngine:
        config = parse_config(text, "triggers.yaml", environ={})
        config.state.url = state_url
        runtime = Runtime(config, store=StateStore.open(state_url))
        await runtime.open()
        runtimes.append(runtime)
        return SyncEngine(runtime)

    yield make
    for runtime in runtimes:
        await runtime.close()
        runtime.store.dispose()


@pytest.fixture
def systems(memory_plugin):
    return MemorySystem.instances  # filled as make_engine builds the runtime


def won_deal(fx) -> tuple[str, str]:
    account = fx.user_create("AccountObj", {"name": "深圳市华为技术有限公司", "uscc": "914403001922038216"})
    deal = fx.user_create("Opp", {"name": "华为 - ERP 升级", "amount": "1280000.00", "stage": "proposal",
                                  "account_id": account})
    return account, deal


async def test_a_won_deal_creates_one_order_with_its_values(make_engine, systems):
    engine = await make_engine()
    fx, erp = systems["fx"], systems["erp"]
    _, deal = won_deal(fx)
    await engine.run_all()
    assert erp.records("Orders") == {}  # not won yet
    fx.user_update("Opp", deal, {"stage": "won"})
    await engine.run_all()
    [order] = erp.records("Orders").values()
    [customer] = erp.records("Customers")
    assert order["crm_deal"] == deal and order["cust"] == customer
    assert Decimal(order["total"]) == Decimal("1280000.00") and order["note"] == "CRM: 华为 - ERP 升级"
    assert len(order["date"]) == 10  # a calendar date, today in Shanghai
    for _ in range(2):
        fx.user_update("Opp", deal, {"remark": "again"})
        await engine.run_all()
    fx.user_update("Opp", deal, {"stage": "negotiation"})
    await engine.run_all()
    fx.user_update("Opp", deal, {"stage": "won"})
    await engine.run_all()
    assert len(erp.records("Orders")) == 1  # once per deal, ever


async def test_the_order_reports_back_to_the_deal_in_every_crm(make_engine, systems):
    engine = await make_engine()
    fx, zoho, erp = systems["fx"], systems["zoho"], systems["erp"]
    _, deal = won_deal(fx)
    fx.user_update("Opp", deal, {"stage": "won"})
    await engine.run_all()
    [(order_id, _)] = erp.records("Orders").items()
    erp.user_update("Orders", order_id, {"bill_no": "XSDD000042", "status": "approved", "total": "1290000.00"})
    reports = await engine.run_all()
    assert sum(r.counts.get("erp", {}).get("written_back", 0) for r in reports) == 1
    fx_deal = fx.records("Opp")[deal]
    assert (fx_deal["order_no"], fx_deal["order_status"], Decimal(fx_deal["order_total"])) == (
        "XSDD000042", "approved", Decimal("1290000.00"))
    [zoho_deal] = zoho.records("Deals").values()
    assert zoho_deal["ERP_Order_No"] == "XSDD000042" and Decimal(zoho_deal["ERP_Order_Amount"]) == Decimal("1290000.00")
    [zoho_order] = zoho.records("Sales_Orders").values()
    assert zoho_order["Subject"] == "XSDD000042"
    writes = (dict(fx.writes), dict(zoho.writes), dict(erp.writes))
    await engine.run_all()  # echoes only
    assert (dict(fx.writes), dict(zoho.writes), dict(erp.writes)) == writes


async def test_an_order_keyed_in_by_hand_reports_back_through_its_reference(make_engine, systems):
    engine = await make_engine()
    fx, erp = systems["fx"], systems["erp"]
    _, deal = won_deal(fx)
    await engine.run_all()
    erp.user_create("Orders", {"bill_no": "XSDD000077", "status": "draft", "total": "500.00", "crm_deal": deal})
    await engine.run_all()
    assert fx.records("Opp")[deal]["order_no"] == "XSDD000077"


async def test_values_that_cannot_be_built_make_one_dead_letter_and_replay_fires_again(make_engine, systems):
    engine = await make_engine(config_text(order_date="to_date(record.description)"))
    fx, erp = systems["fx"], systems["erp"]
    _, deal = won_deal(fx)
    fx.user_update("Opp", deal, {"stage": "won", "remark": "下周签约"})
    await engine.run_all()
    fx.user_update("Opp", deal, {"amount": "1300000.00"})
    await engine.run_all()  # not tried again on every pass: one dead letter, waiting for a person
    [letter] = list_dead_letters(engine)
    assert letter.code == "trigger.values" and "order_from_won_deal" in letter.message
    assert "下周签约" in letter.message or "date" in letter.message
    assert erp.records("Orders") == {}
    fx.user_update("Opp", deal, {"remark": "2024-06-30"})  # the rep fixes the deal
    await engine.run_all()
    assert erp.records("Orders") == {}
    await replay_dead_letters(engine, [letter.id])
    [order] = erp.records("Orders").values()
    assert order["date"] == "2024-06-30"
    with engine.rt.store.read() as session:
        [firing] = session.scalars(select(TriggerFiring)).all()
        assert firing.status == "created"


async def test_an_order_the_erp_rejects_is_a_dead_letter_and_replays(make_engine, systems):
    engine = await make_engine()
    fx, erp = systems["fx"], systems["erp"]
    _, deal = won_deal(fx)
    await engine.run_all()
    erp.settings.required = ["bill_no"]  # this ERP wants the number from outside
    fx.user_update("Opp", deal, {"stage": "won"})
    await engine.run_all()
    [letter] = [d for d in list_dead_letters(engine) if d.entity == "sales_order"]
    assert letter.flow == "trigger:order_from_won_deal" and letter.code == "MANDATORY_NOT_FOUND"
    assert erp.records("Orders") == {}
    erp.settings.required = []
    await replay_dead_letters(engine, [letter.id])
    assert len(erp.records("Orders")) == 1
    await engine.run_all()
    assert len(erp.records("Orders")) == 1


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("match: {stage: [won, closed_won]}", "match: {stag: won}", "triggers.order_from_won_deal.when.match.stag: unknown field of deal 'stag'"),
        ("      in: erp", "      in: zoho_eu", "triggers.order_from_won_deal.create.in: unknown system mapped for 'sales_order' 'zoho_eu'"),
        ("        total_amount: record.amount", "        total_amount: round(record.amount", "triggers.order_from_won_deal.create.values.total_amount: bad expression"),
        ("        total_amount: record.amount", "        totl_amount: record.amount", "create.values.totl_amount: unknown field of sales_order 'totl_amount'"),
        ("order_total: total_amount}", "order_total: grand_total}", "write_back.order_total: unknown field of sales_order 'grand_total'"),
        ("    when: {entity: deal,", "    when: {entity: deals,", "triggers.order_from_won_deal.when.entity: unknown entity 'deals'"),
    ],
)
def test_bad_triggers_are_located_errors(old, new, expected):
    text = config_text()
    assert old in text
    with pytest.raises(ConfigError) as info:
        parse_config(text.replace(old, new), "triggers.yaml", environ={})
    messages = [issue.format() for issue in info.value.issues]
    assert any(expected in m and m.startswith("triggers.yaml:") for m in messages), messages
