"""Staging writes in interface tables: upserts, transactional batches, re-staging, refusals."""
from __future__ import annotations

import pytest
from sqlalchemy import Column, MetaData, String, Table, func, select

from connectors.base import WriteOp
from connectors.errors import ConnectorConfigError
from connectors.sql.demo_schema import (
    if_customer,
    if_dealer,
    if_sales_order,
    if_sales_order_line,
    local_now,
    run_erp_import_job,
    seed_demo,
)

STRATEGIES = ["auto", "generic"]
#: (strategy, ops, batch size): the native path at full size; the row-by-row generic path smaller, to keep the suite fast.
SIZES = [pytest.param("auto", 1000, 500, id="native-1000"), pytest.param("generic", 200, 100, id="generic-200")]


def customer_op(i: int, **data) -> WriteOp:
    values = {"crm_id": f"crm-{i:05d}", "name": f"客户{i:05d} Customer Ltd.", "city": "Shenzhen", "payment_days": 30}
    return WriteOp(key=f"op-{i:05d}", action="upsert", data={**values, **data})


def rows(engine, table, *columns, where=None):
    stmt = select(*(table.c[c] for c in columns))
    if where is not None:
        stmt = stmt.where(where)
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(stmt)]


def count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


@pytest.mark.parametrize(("strategy", "n", "batch"), SIZES)
async def test_upsert_batch_of_1000_rows(make_connector, erp, strategy, n, batch):
    connector = make_connector(upsert_strategy=strategy, write_batch_size=batch)
    results = await connector.push("customer", [customer_op(i) for i in range(n)])
    assert [r.key for r in results] == [f"op-{i:05d}" for i in range(n)]
    assert all(r.ok and r.pending for r in results)
    assert results[7].external_id == "crm-00007"
    staged = rows(erp, if_customer, "crm_id", "sync_status", "crmsync_op_key", "batch_id", "sync_action", "staged_at")
    assert len(staged) == n
    assert {r[1] for r in staged} == {"PENDING"}
    assert {r[0]: r[2] for r in staged}[f"crm-{n - 1:05d}"] == f"op-{n - 1:05d}"
    assert len({r[3] for r in staged}) == 2  # two transactions
    assert {r[4] for r in staged} == {"upsert"}
    assert abs((local_now() - staged[0][5]).total_seconds()) < 120  # ERP local time, not UTC

    # The same 1,000 again with a change: updated in place, no new rows.
    again = await connector.push("customer", [customer_op(i, city="上海") for i in range(n)])
    assert all(r.ok and r.pending for r in again)
    assert count(erp, if_customer) == n
    assert {r[0] for r in rows(erp, if_customer, "city")} == {"上海"}


@pytest.mark.parametrize(("strategy", "n", "batch"), SIZES)
async def test_batch_failing_midway_leaves_no_partial_rows(make_connector, erp, strategy, n, batch):
    connector = make_connector(upsert_strategy=strategy, write_batch_size=batch)
    bad = batch + batch // 2  # in the middle of the second batch
    ops = [customer_op(i) for i in range(n)]
    ops[bad] = customer_op(bad, payment_days=-5)  # violates the table's CHECK constraint
    results = await connector.push("customer", ops)

    assert all(r.ok and r.pending for r in results[:batch])  # first batch committed
    refused = results[bad]
    assert not refused.ok and not refused.retryable and refused.code == "DB_REFUSED"
    assert "ck_if_customer_payment_days" in refused.message
    innocent = [r for i, r in enumerate(results[batch:], batch) if i != bad]
    assert len(innocent) == batch - 1
    assert all(not r.ok and r.retryable and r.code == "BATCH_ROLLED_BACK" for r in innocent)
    assert f"op-{bad:05d}" in innocent[0].message
    # Not one row of the refused batch reached the table.
    staged = {r[0] for r in rows(erp, if_customer, "crm_id")}
    assert staged == {f"crm-{i:05d}" for i in range(batch)}

    # The innocent ops go through when retried.
    retried = await connector.push("customer", [ops[i] for i in range(batch, n) if i != bad])
    assert all(r.ok for r in retried)
    assert count(erp, if_customer) == n - 1


async def test_header_and_lines_land_together_or_not_at_all(connector, erp):
    seed_demo(erp, customers=3, dealers=0, orders=0)
    good = WriteOp(key="deal-1", action="create", data={
        "crm_order_no": "DEAL-1", "cust_no": "C000001", "currency": "CNY",
        "lines": [{"line_no": 1, "material_no": "M00001", "qty": 2, "price": 99.5},
                  {"line_no": 2, "material_no": "M00002", "qty": 1, "price": 1000}],
    })
    bad = WriteOp(key="deal-2", action="create", data={
        "crm_order_no": "DEAL-2", "cust_no": "C000002",
        "lines": [{"line_no": 1, "material_no": "M00001", "qty": 1, "price": 1}, {"line_no": 2, "material_no": "M9", "qty": 0, "price": 1}],
    })
    results = await connector.push("sales_order", [good, bad])
    assert results[0].ok is False and results[0].code == "BATCH_ROLLED_BACK"
    assert results[1].code == "DB_REFUSED" and "ck_if_sales_order_line_qty" in results[1].message
    assert count(erp, if_sales_order) == 0 and count(erp, if_sales_order_line) == 0

    assert (await connector.push("sales_order", [good]))[0].pending
    lines = rows(erp, if_sales_order_line, "crm_order_no", "line_no", "crmsync_op_key", "batch_id")
    assert [(r[0], r[1], r[2]) for r in lines] == [("DEAL-1", 1, "deal-1"), ("DEAL-1", 2, "deal-1")]
    assert lines[0][3] and lines[0][3] == rows(erp, if_sales_order, "batch_id")[0][0]
    # Staging the order again replaces its lines as a whole.
    again = WriteOp(key="deal-1b", action="update", data={"crm_order_no": "DEAL-1", "cust_no": "C000001",
                                                          "lines": [{"line_no": 1, "material_no": "M00003", "qty": 5, "price": 10}]})
    await connector.push("sales_order", [again])
    assert rows(erp, if_sales_order_line, "line_no", "material_no", "crmsync_op_key") == [(1, "M00003", "deal-1b")]


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_restaging_merges_while_pending_and_clears_after_processing(make_connector, erp, strategy):
    connector = make_connector(upsert_strategy=strategy)
    key = if_customer.c.crm_id == "crm-1"
    await connector.push("customer", [WriteOp("a", "upsert", {"crm_id": "crm-1", "name": "甲公司", "city": "Beijing", "phone": "123"})])
    await connector.push("customer", [WriteOp("b", "update", {"crm_id": "crm-1", "name": "甲有限公司"})])
    # B has not been imported yet: A's city and phone travel on with it.
    assert rows(erp, if_customer, "name", "city", "phone", "crmsync_op_key", where=key) == [("甲有限公司", "Beijing", "123", "b")]
    outcomes = await connector.poll_write_outcomes(["customer"])
    assert [(o.key, o.ok, o.code) for o in outcomes] == [("a", True, "SUPERSEDED")]

    run_erp_import_job(erp)
    done = await connector.poll_write_outcomes(["customer"])
    assert [(o.key, o.ok) for o in done] == [("b", True)]
    erp_id = done[0].external_id

    # Processed rows are not merged: a new partial op never re-imports stale values.
    await connector.push("customer", [WriteOp("c", "update", {"crm_id": "crm-1", "name": "甲集团有限公司"})])
    staged = rows(erp, if_customer, "name", "city", "phone", "sync_status", "processed_at", "crmsync_read_at", "erp_id", where=key)
    assert staged == [("甲集团有限公司", None, None, "PENDING", None, None, erp_id)]
    assert [o.key for o in await connector.poll_write_outcomes(["customer"])] == []  # c is still pending


async def test_same_key_twice_in_one_push(connector, erp):
    results = await connector.push("customer", [
        WriteOp("first", "upsert", {"crm_id": "crm-7", "name": "乙公司", "city": "Wuhan"}),
        WriteOp("second", "upsert", {"crm_id": "crm-7", "phone": "+86 27 1234 5678"}),
    ])
    assert (results[0].ok, results[0].pending, results[0].code) == (True, False, "SUPERSEDED")
    assert results[1].ok and results[1].pending
    assert rows(erp, if_customer, "name", "city", "phone", "crmsync_op_key") == [("乙公司", "Wuhan", "+86 27 1234 5678", "second")]


async def test_an_unread_erp_verdict_is_reported_before_the_row_is_restaged(connector, erp):
    await connector.push("customer", [WriteOp("v1", "create", {"crm_id": "crm-8", "name": "丙公司", "tax_no": "bad"})])
    run_erp_import_job(erp)  # rejects v1; nobody polls before the next change arrives
    await connector.push("customer", [WriteOp("v2", "update", {"crm_id": "crm-8", "name": "丙公司", "tax_no": None})])
    (outcome,) = await connector.poll_write_outcomes(["customer"])
    assert (outcome.key, outcome.ok, outcome.code) == ("v1", False, "ERP_REJECTED")
    assert "统一社会信用代码" in outcome.message
    run_erp_import_job(erp)
    assert [(o.key, o.ok) for o in await connector.poll_write_outcomes(["customer"])] == [("v2", True)]


async def test_ops_merged_into_a_refused_op_fail_with_it(connector, erp):
    results = await connector.push("customer", [
        WriteOp("early", "upsert", {"crm_id": "crm-9", "name": "丁公司"}),
        WriteOp("late", "upsert", {"crm_id": "crm-9", "payment_days": -1}),
    ])
    assert [(r.key, r.ok, r.code) for r in results] == [("early", False, "DB_REFUSED"), ("late", False, "DB_REFUSED")]
    assert count(erp, if_customer) == 0


async def test_bad_ops_fail_alone_with_clear_codes(connector, erp):
    results = await connector.push("customer", [
        WriteOp("unknown", "upsert", {"crm_id": "x1", "colour": "red"}),
        WriteOp("reserved", "upsert", {"crm_id": "x2", "sync_status": "DONE"}),
        WriteOp("no-key", "upsert", {"name": "无键公司"}),
        WriteOp("fine", "upsert", {"crm_id": "x4", "name": "好公司"}),
        WriteOp("nested", "upsert", {"crm_id": "x5", "name": {"zh": "嵌套"}}),
    ])
    assert [(r.key, r.ok, r.code) for r in results] == [
        ("unknown", False, "UNKNOWN_FIELD"), ("reserved", False, "RESERVED_FIELD"), ("no-key", False, "MISSING_KEY"),
        ("fine", True, None), ("nested", False, "INVALID_VALUE"),
    ]
    assert rows(erp, if_customer, "crm_id") == [("x4",)]
    lines = await connector.push("sales_order", [WriteOp("l", "create", {"crm_order_no": "D1", "lines": "not a list"})])
    assert lines[0].code == "INVALID_LINES"


async def test_delete_is_staged_for_the_erp_with_the_key_from_the_external_id(connector, erp):
    result = (await connector.push("dealer", [WriteOp("del-1", "delete", external_id="D00042")]))[0]
    assert result.ok and result.pending and result.external_id == "D00042"
    assert rows(erp, if_dealer, "dealer_code", "sync_action", "name") == [("D00042", "delete", None)]


async def test_objects_without_interface_table_are_never_written(make_connector, erp):
    connector = make_connector(objects={"dealer": {"interface": None}})
    with pytest.raises(ConnectorConfigError, match="never to ERP base tables"):
        await connector.push("dealer", [WriteOp("x", "upsert", {"dealer_code": "D1", "name": "n"})])


async def test_a_table_without_control_columns_is_refused_as_interface(make_connector, erp):
    material = Table("erp_material", MetaData(), Column("material_no", String(20), primary_key=True), Column("name", String(50)))
    material.create(erp)
    try:
        connector = make_connector(objects={"material": {"key": "material_no", "interface": {"table": "erp_material"}}})
        with pytest.raises(ConnectorConfigError, match="is this an ERP base table"):
            await connector.push("material", [WriteOp("m", "upsert", {"material_no": "M1", "name": "x"})])
        assert count(erp, material) == 0
    finally:
        material.drop(erp)
