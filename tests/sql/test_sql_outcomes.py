"""Reading the ERP import job's verdicts back; Chinese text through the whole round trip."""
from __future__ import annotations

from datetime import UTC

from sqlalchemy import select

from connectors.base import PullRequest, WriteOp
from connectors.emulation.fakedata import FakeData
from connectors.sql.demo_schema import erp_customer, if_customer, run_erp_import_job, seed_demo

HUAWEI = "深圳市华为技术有限公司"


async def test_erp_rejection_comes_back_as_a_failure_with_the_erps_message(connector, erp):
    seed_demo(erp, customers=2, dealers=0, orders=0)
    valid_tax = FakeData(1).uscc()
    staged = await connector.push("customer", [
        WriteOp("ok-1", "create", {"crm_id": "fx-001", "name": "杭州云启软件有限公司", "tax_no": valid_tax}),
        WriteOp("bad-tax", "create", {"crm_id": "fx-002", "name": "成都博远电子有限公司", "tax_no": "91440300ABC"}),
        WriteOp("no-name", "create", {"crm_id": "fx-003", "city": "Chengdu"}),
    ])
    assert all(r.ok and r.pending for r in staged)
    assert await connector.poll_write_outcomes() == []  # the ERP has not run yet

    report = run_erp_import_job(erp)
    assert (report.accepted, report.rejected) == (1, 2)
    outcomes = {o.key: o for o in await connector.poll_write_outcomes()}
    assert set(outcomes) == {"ok-1", "bad-tax", "no-name"}

    imported = outcomes["ok-1"]
    assert imported.ok and not imported.pending
    assert imported.external_id == "C000003"  # the ERP's own customer number (erp_id column)
    assert imported.modified_at.tzinfo is UTC

    rejected = outcomes["bad-tax"]
    assert not rejected.ok and not rejected.retryable and rejected.code == "ERP_REJECTED"
    assert rejected.message == "统一社会信用代码校验失败：91440300ABC / invalid unified social credit code"
    assert rejected.external_id == "fx-002"
    assert outcomes["no-name"].message == "客户名称不能为空 / customer name is required"

    # Reported once: the next poll acknowledges the previous answer and finds nothing new.
    assert await connector.poll_write_outcomes() == []
    with erp.connect() as conn:
        read_back = conn.execute(select(if_customer.c.crm_id, if_customer.c.crmsync_read_at)).all()
    assert all(at is not None for _, at in read_back)


async def test_outcomes_are_redelivered_until_acknowledged(make_connector, erp):
    first = make_connector()
    await first.push("customer", [WriteOp("k1", "create", {"crm_id": "fx-9", "name": "武汉天成物流有限公司"})])
    run_erp_import_job(erp)
    assert [o.key for o in await first.poll_write_outcomes()] == ["k1"]
    await first.close()  # crash before the engine stored the answer: nothing was acknowledged
    second = make_connector()
    assert [o.key for o in await second.poll_write_outcomes()] == ["k1"]
    await second.acknowledge_write_outcomes()
    assert await second.poll_write_outcomes() == []


async def test_chinese_text_round_trip(connector, erp):
    """CRM → interface table → ERP import → ERP view → crmsync, and ERP lines, unharmed."""
    await connector.push("customer", [WriteOp("hw", "create", {
        "crm_id": "fx-huawei", "name": HUAWEI, "short_name": "华为", "address": "深圳市龙岗区坂田华为基地", "contact": "王伟",
    })])
    with erp.connect() as conn:
        assert conn.execute(select(if_customer.c.name).where(if_customer.c.crm_id == "fx-huawei")).scalar_one() == HUAWEI
    run_erp_import_job(erp)
    (outcome,) = await connector.poll_write_outcomes()
    with erp.connect() as conn:
        assert conn.execute(select(erp_customer.c.name).where(erp_customer.c.cust_no == outcome.external_id)).scalar_one() == HUAWEI
    pulled = [r async for page in connector.pull(PullRequest(object="customer")) for r in page.records]
    (record,) = [r for r in pulled if r.external_id == outcome.external_id]
    assert record.data["name"] == HUAWEI
    assert record.data["address"] == "深圳市龙岗区坂田华为基地"
    assert (await connector.fetch("customer", [outcome.external_id]))[0].data["contact"] == "王伟"
