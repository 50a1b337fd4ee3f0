"""Reading ERP tables: incremental pulls by modified time, paging through ties, resume, fetch."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, create_engine, insert, update

from connectors.base import PullRequest
from connectors.errors import ConnectorConfigError, ConnectorError
from connectors.sql.connector import SqlConnector
from connectors.sql.demo_schema import erp_customer, seed_demo, touch
from connectors.sql.settings import SqlSettings

T0 = datetime(2025, 3, 1, 10, 0, 0)  # ERP wall-clock time, Asia/Shanghai (UTC+8)


def utc(local: datetime) -> datetime:
    return (local - timedelta(hours=8)).replace(tzinfo=UTC)


async def ids_of(connector, request: PullRequest) -> list[str]:
    return [r.external_id async for page in connector.pull(request) for r in page.records]


async def test_incremental_pull_with_ties_across_page_edges(make_connector, erp):
    # 25 customers: ten share T0, ten share T0+1s, five share T0+2s; pages of 4 cut through every tie group.
    seed_demo(erp, customers=25, dealers=0, orders=0, start=T0, ties=10)
    connector = make_connector(page_size=4)

    pages = [page async for page in connector.pull(PullRequest(object="customer"))]
    ids = [r.external_id for page in pages for r in page.records]
    assert ids == [f"C{i:06d}" for i in range(1, 26)]  # each row exactly once, in (modified, key) order
    assert [len(p.records) for p in pages] == [4, 4, 4, 4, 4, 4, 1]
    assert pages[0].records[0].modified_at == utc(T0)  # naive China time → aware UTC
    assert pages[-1].records[-1].modified_at == utc(T0 + timedelta(seconds=2))
    assert pages[-1].resume is None

    # Page 3 ends inside the T0+1s group: resuming continues right after its last row.
    rest = await ids_of(connector, PullRequest(object="customer", resume=pages[2].resume))
    assert rest == [f"C{i:06d}" for i in range(13, 26)]

    # The ERP edits two older customers; their new time ties with the newest group.
    touch(erp, erp_customer, ["C000003", "C000012"], T0 + timedelta(seconds=2))
    since = utc(T0 + timedelta(seconds=2))  # inclusive: the rows *at* the watermark come again
    changed = await ids_of(connector, PullRequest(object="customer", since=since))
    assert changed == ["C000003", "C000012", "C000021", "C000022", "C000023", "C000024", "C000025"]


async def test_overlap_window_reaches_back_for_late_commits(make_connector, erp):
    seed_demo(erp, customers=25, dealers=0, orders=0, start=T0, ties=10)
    connector = make_connector(page_size=4, objects={"customer": {"overlap_seconds": 1}})
    since = utc(T0 + timedelta(seconds=2))
    ids = await ids_of(connector, PullRequest(object="customer", since=since))
    assert ids == [f"C{i:06d}" for i in range(11, 26)]
    assert len(set(ids)) == len(ids)


async def test_resume_token_of_another_object_is_refused(make_connector, erp):
    seed_demo(erp, customers=10, dealers=0, orders=3, start=T0)
    connector = make_connector(page_size=4)
    first = await anext(aiter(connector.pull(PullRequest(object="customer"))))
    with pytest.raises(ConnectorError, match="resume token"):
        await ids_of(connector, PullRequest(object="sales_order", resume=first.resume))


async def test_text_watermark_null_times_and_composite_keys(make_connector, erp):
    """A home-grown table: modified time stored as text, sometimes NULL, and a two-column key."""
    prices = Table(
        "erp_price", MetaData(),
        Column("material_no", String(20), primary_key=True),
        Column("price_list", String(20), primary_key=True),
        Column("price", Integer),
        Column("upd_time", String(19)),
        mysql_charset="utf8mb4",
    )
    prices.create(erp)
    rows = [
        {"material_no": "M1", "price_list": "PL1", "price": 10, "upd_time": None},
        {"material_no": "M1", "price_list": "PL2", "price": 11, "upd_time": "2025-03-01 10:00:00"},
        {"material_no": "M2", "price_list": "PL1", "price": 12, "upd_time": "2025-03-01 10:00:00"},
        {"material_no": "M0", "price_list": "PL9", "price": 13, "upd_time": None},
        {"material_no": "M3", "price_list": "PL1", "price": 14, "upd_time": "2025-03-01 10:00:05"},
    ]
    with erp.begin() as conn:
        conn.execute(insert(prices), rows)
    try:
        connector = make_connector(page_size=2, objects={"price": {
            "table": "erp_price", "key": ["material_no", "price_list"],
            "modified_column": "upd_time", "modified_format": "%Y-%m-%d %H:%M:%S",
        }})
        full = [r async for page in connector.pull(PullRequest(object="price")) for r in page.records]
        # Rows without a time come first (full pulls only), then by (time, key).
        assert [r.external_id for r in full] == ["M0|PL9", "M1|PL1", "M1|PL2", "M2|PL1", "M3|PL1"]
        assert full[0].modified_at is None and full[1].modified_at is None
        assert full[4].modified_at == utc(datetime(2025, 3, 1, 10, 0, 5))
        since = utc(datetime(2025, 3, 1, 10, 0, 0))
        assert await ids_of(connector, PullRequest(object="price", since=since)) == ["M1|PL2", "M2|PL1", "M3|PL1"]
        fetched = await connector.fetch("price", ["M2|PL1", "M9|PL1", "not-a-composite-id"])
        assert [(r.external_id, r.data["price"]) for r in fetched] == [("M2|PL1", 12)]
    finally:
        prices.drop(erp)


async def test_soft_deleted_rows_are_tombstones(make_connector, erp):
    seed_demo(erp, customers=6, dealers=0, orders=0, start=T0)
    with erp.begin() as conn:
        conn.execute(update(erp_customer).where(erp_customer.c.cust_no == "C000002").values(forbid_status="B"))
    connector = make_connector(objects={"customer": {"deleted_column": "forbid_status", "deleted_values": ["B"]}})
    records = [r async for page in connector.pull(PullRequest(object="customer")) for r in page.records]
    assert [r.external_id for r in records if r.deleted] == ["C000002"]
    live = await ids_of(connector, PullRequest(object="customer", include_deleted=False))
    assert "C000002" not in live and len(live) == 5


async def test_fetch_by_id_with_lines_and_field_subset(connector, erp):
    seed_demo(erp, customers=20, dealers=0, orders=8, start=T0)
    orders = await connector.fetch("sales_order", ["SO0000003", "SO0000001", "SO9999999"])
    assert sorted(r.external_id for r in orders) == ["SO0000001", "SO0000003"]
    for order in orders:
        lines = order.data["lines"]
        assert lines and [line["line_no"] for line in lines] == sorted(line["line_no"] for line in lines)
        assert sum(line["amount"] for line in lines) == order.data["total_amount"]
        assert order.modified_at.tzinfo is UTC
    subset = await connector.fetch("customer", ["C000004"], fields=["name", "city"])
    assert set(subset[0].data) == {"name", "city"}
    with pytest.raises(ConnectorConfigError, match="no field"):
        await connector.fetch("customer", ["C000004"], fields=["no_such_column"])


async def test_filter_is_sql_verbatim_with_percent_and_colon(make_connector, erp):
    seed_demo(erp, customers=40, dealers=0, orders=0, start=T0)
    connector = make_connector(objects={"customer": {
        "filter": "name LIKE '%有限公司%' AND modified_at >= '2000-01-01 00:00:00'",
    }})
    records = [r async for page in connector.pull(PullRequest(object="customer")) for r in page.records]
    with erp.connect() as conn:
        expected = {row.cust_no for row in conn.execute(erp_customer.select()) if "有限公司" in row.name}
    assert {r.external_id for r in records} == expected and expected


async def test_unknown_object_and_write_only_pulls_are_config_errors(make_connector, erp):
    connector = make_connector(objects={
        "sales_order": {"interface": None},
        "order_request": {"key": "crm_order_no", "interface": {"table": "if_sales_order"}},
    })
    with pytest.raises(ConnectorConfigError, match="unknown object"):
        await ids_of(connector, PullRequest(object="invoice"))
    with pytest.raises(ConnectorConfigError, match="write-only"):
        await ids_of(connector, PullRequest(object="order_request"))


@pytest.mark.postgres
async def test_timestamptz_watermark_is_compared_as_an_instant(pg_url):
    """A zone-aware modified column (PostgreSQL timestamptz) is compared in UTC, not as China time."""
    engine = create_engine(pg_url)
    events = Table("erp_event", MetaData(), Column("id", Integer, primary_key=True), Column("changed", DateTime(timezone=True)))
    events.drop(engine, checkfirst=True)
    events.create(engine)
    instants = [datetime(2025, 3, 1, 1, 59, 59, tzinfo=UTC), datetime(2025, 3, 1, 2, 0, tzinfo=UTC),
                datetime(2025, 3, 1, 2, 0, 1, tzinfo=UTC)]
    with engine.begin() as conn:
        conn.execute(insert(events), [{"id": i, "changed": t} for i, t in enumerate(instants, 1)])
    connector = SqlConnector("erp", SqlSettings.model_validate({
        "url": pg_url, "objects": {"event": {"table": "erp_event", "key": "id", "modified_column": "changed"}},
    }))
    try:
        records = [r async for page in connector.pull(PullRequest(object="event", since=instants[1])) for r in page.records]
        assert [(r.external_id, r.modified_at) for r in records] == [("2", instants[1]), ("3", instants[2])]
    finally:
        await connector.close()
        events.drop(engine)
        engine.dispose()
