"""The outbox is sent in id order through an index: no round of a first sync reads and sorts every
pending row to take its next chunk (issue #9: that made sending O(n²) in the number of writes)."""
from __future__ import annotations

from sqlalchemy import event

from connectors.emulation.fakedata import FakeData


async def test_sending_the_outbox_in_id_order_sorts_nothing(engine, systems):
    fx = systems["fx"]
    fake = FakeData(seed=5)
    for i in range(40):
        c = fake.company()
        fx.user_create("AccountObj", {"name": f"{c.name} {i}", "uscc": c.tax_id, "tel": c.phone})
    picks: list[tuple[str, tuple]] = []

    def collect(conn, cursor, statement, parameters, context, executemany) -> None:
        flat = " ".join(statement.split())
        if flat.startswith("SELECT") and "FROM outbox" in flat and "ORDER BY outbox.id" in flat and "LIMIT" in flat:
            picks.append((statement, tuple(parameters)))

    store_engine = engine.rt.store.engine
    event.listen(store_engine, "before_cursor_execute", collect)
    try:
        report = await engine.run_flow("accounts")
    finally:
        event.remove(store_engine, "before_cursor_execute", collect)
    assert not report.errors
    assert len(systems["zoho"].records("Accounts")) == 40
    assert picks, "the outbox was never read in id order"
    with store_engine.connect() as connection:
        for statement, parameters in picks:
            plan = " | ".join(row[3] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters))
            assert "TEMP B-TREE" not in plan, plan
            assert "USING INDEX" in plan or "USING COVERING INDEX" in plan or "PRIMARY KEY" in plan, plan
