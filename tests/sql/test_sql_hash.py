"""Change detection by content hash on a table without a modified column (erp_dealer)."""
from __future__ import annotations

import pytest
from sqlalchemy import create_engine, delete, insert, inspect, text, update

from connectors.base import PullRequest
from connectors.errors import ConnectorError
from connectors.sql.demo_schema import erp_dealer, seed_demo


async def scan(connector, **kw) -> list:
    return [r async for page in connector.pull(PullRequest(object="dealer", **kw)) for r in page.records]


async def test_reports_only_new_and_changed_rows(make_connector, erp):
    seed_demo(erp, customers=0, dealers=23, orders=0)
    connector = make_connector(page_size=5)

    first = await scan(connector)
    assert len(first) == 23 and not any(r.deleted for r in first)
    assert all(r.modified_at is not None and r.modified_at.tzinfo is not None for r in first)
    assert await scan(connector) == []  # nothing changed, nothing reported

    with erp.begin() as conn:
        conn.execute(update(erp_dealer).where(erp_dealer.c.dealer_code == "D00004").values(tier="platinum", name="深圳市华为技术有限公司"))
        conn.execute(update(erp_dealer).where(erp_dealer.c.dealer_code == "D00017").values(phone="+86 755 0000 0000"))
        conn.execute(insert(erp_dealer).values(dealer_code="D00100", name="杭州新锐贸易有限公司", tier="silver"))
        conn.execute(delete(erp_dealer).where(erp_dealer.c.dealer_code == "D00009"))
    changed = await scan(connector)
    assert sorted(r.external_id for r in changed) == ["D00004", "D00017", "D00100"]
    assert {r.external_id: r.data["name"] for r in changed}["D00004"] == "深圳市华为技术有限公司"
    # The vanished D00009 is not reported: absence is not a delete unless configured.
    assert await scan(connector) == []
    # The hashes live in the table named in settings.
    assert inspect(erp).has_table("crmsync_row_hash")


async def test_absence_reported_as_delete_only_when_enabled(make_connector, erp):
    seed_demo(erp, customers=0, dealers=12, orders=0)
    connector = make_connector(page_size=5, objects={"dealer": {"detect_deletes_by_absence": True}})
    assert len(await scan(connector)) == 12
    with erp.begin() as conn:
        conn.execute(delete(erp_dealer).where(erp_dealer.c.dealer_code.in_(["D00002", "D00011"])))
    gone = await scan(connector)
    assert [(r.external_id, r.deleted) for r in gone] == [("D00002", True), ("D00011", True)]
    assert gone[0].data == {"dealer_code": "D00002"}
    assert await scan(connector) == []  # reported once
    # A row coming back is new again.
    with erp.begin() as conn:
        conn.execute(insert(erp_dealer).values(dealer_code="D00002", name="回来了 Back Again Ltd.", tier="gold"))
    assert [(r.external_id, r.deleted) for r in await scan(connector)] == [("D00002", False)]


async def test_absence_guard_refuses_mass_disappearance(make_connector, erp):
    seed_demo(erp, customers=0, dealers=30, orders=0)
    connector = make_connector(objects={"dealer": {"detect_deletes_by_absence": True}})
    await scan(connector)
    with erp.begin() as conn:
        conn.execute(delete(erp_dealer).where(erp_dealer.c.dealer_code > "D00010"))
    with pytest.raises(ConnectorError, match="vanished"):
        await scan(connector)


async def test_hash_saved_only_after_the_engine_took_the_page(make_connector, erp):
    seed_demo(erp, customers=0, dealers=10, orders=0)
    connector = make_connector(page_size=4)
    pages = connector.pull(PullRequest(object="dealer"))
    first = await anext(pages)
    await pages.aclose()  # the consumer stopped (crash, shutdown) before asking for more
    assert len(first.records) == 4
    # Nothing was acknowledged, so everything is still new.
    assert len(await scan(connector)) == 10
    # A resumed scan continues after the page's last key.
    resumed = await scan(connector, resume=first.resume)
    assert resumed == []  # all hashes stored by the complete scan above


async def test_hash_table_in_a_separate_database(make_connector, erp, tmp_path):
    seed_demo(erp, customers=0, dealers=5, orders=0)
    state_url = f"sqlite:///{tmp_path / 'crmsync_state.db'}"
    connector = make_connector(hash_state={"url": state_url, "table": "erp_hashes"})
    assert len(await scan(connector)) == 5
    assert not inspect(erp).has_table("erp_hashes")
    assert await scan(connector) == []
    state = create_engine(state_url)
    with state.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM erp_hashes")).scalar_one() == 5
    state.dispose()
