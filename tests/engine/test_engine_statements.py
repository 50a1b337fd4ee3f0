"""A first sync costs a few SQL statements per batch, not one or more per record (issue #9, engine
throughput): the state database is read and written in bulk, whatever the number of records."""
from __future__ import annotations

from collections import Counter

from sqlalchemy import event, select

from connectors.emulation.fakedata import FakeData
from sync_engine.state.models import Link, Record


async def _first_sync(engine, systems, n: int) -> Counter:
    fx, zoho = systems["fx"], systems["zoho"]
    fake = FakeData(seed=11)
    for i in range(n):
        c = fake.company()
        fx.user_create("AccountObj", {"name": f"{c.name} {i}", "uscc": c.tax_id, "tel": c.phone})
        if i % 10 == 0:  # a tenth already in Zoho: matched and linked, not created again
            zoho.user_create("Accounts", {"Account_Name": f"{c.name} {i}", "Tax_ID": c.tax_id, "Phone": c.phone})
    statements: Counter = Counter()

    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        statements[" ".join(statement.split()[:3])] += 1

    event.listen(engine.rt.store.engine, "before_cursor_execute", count)
    try:
        report = await engine.run_flow("accounts")
    finally:
        event.remove(engine.rt.store.engine, "before_cursor_execute", count)
    assert not report.errors
    return statements


async def test_a_first_sync_costs_statements_per_batch_not_per_record(engine, systems):
    n = 600
    statements = await _first_sync(engine, systems, n)
    fx, zoho, erp = systems["fx"], systems["zoho"], systems["erp"]

    # It did the whole job: every account in the other two systems, once, all linked.
    assert len(zoho.records("Accounts")) == n and len(erp.records("BD_Customer")) == n
    assert zoho.writes["create"] == n - n // 10 and erp.writes["create"] == n and not fx.writes["create"]
    with engine.rt.store.read() as s:
        assert len(s.scalars(select(Record.canonical_id)).all()) == n
        assert len(s.scalars(select(Link.id)).all()) == 3 * n

    # 600 records read, 1,140 created, 60 matched: about 250 statements (the code before read each created
    # record back once per target and each matched record's pending creates: about 1,440 here).
    total = sum(statements.values())
    assert total < 0.5 * n, statements.most_common(8)


async def test_references_of_a_batch_are_read_together_not_one_by_one(engine, systems):
    """600 contacts of 600 accounts: resolving each contact's account when it is read (Fxiaoke id →
    canonical) and when it is written (canonical → Zoho id) costs a query per batch, not per contact."""
    n = 600
    await _first_sync(engine, systems, n)
    fx, zoho = systems["fx"], systems["zoho"]
    for i, account in enumerate(list(fx.records("AccountObj"))):
        fx.user_create("ContactObj", {"name": f"联系人{i}", "email": f"c{i}@example.cn", "account_id": account})
    lookups: Counter = Counter()

    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        words = statement.split()
        if words[0].upper() == "SELECT" and "links" in words[words.index("FROM") + 1:][:1]:
            lookups["links"] += 1

    event.listen(engine.rt.store.engine, "before_cursor_execute", count)
    try:
        report = await engine.run_flow("contacts")
    finally:
        event.remove(engine.rt.store.engine, "before_cursor_execute", count)
    assert not report.errors and report.total("deferred") == 0
    contacts = list(zoho.records("Contacts").values())
    assert len(contacts) == n
    assert {c["Account_Name"]["id"] for c in contacts} == set(zoho.records("Accounts"))
    # Before: ~2 link queries per contact (1,200+ here).
    assert lookups["links"] < 0.1 * n, lookups
