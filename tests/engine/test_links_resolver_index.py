"""A reference (a contact's account id in Fxiaoke) is resolved to a canonical id by system and external
id, without the object. Without statistics SQLite planned that lookup on the (entity, canonical_id, system)
index and read every link of the entity, once per reference: O(links) each, quadratic over a first sync
of contacts. The lookup must use the (system, external_id) index (migration 0006)."""
from __future__ import annotations

from sqlalchemy import event

from sync_engine.links import LinkResolver
from sync_engine.state import migrate
from sync_engine.state.db import StateStore
from sync_engine.state.models import Link, Record


def test_a_reference_is_resolved_through_the_external_id_index(tmp_path):
    store = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    migrate.upgrade(store.engine)
    statements: list[tuple[str, object]] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        if "FROM links" in statement and "external_id" in statement:
            statements.append((statement, parameters))

    with store.write() as session:
        for n in range(200):
            session.add(Record(entity="account", canonical_id=f"c{n:03d}", values={"name": f"深圳市测试{n}有限公司"}))
        session.flush()
        for n in range(200):
            session.add(Link(entity="account", canonical_id=f"c{n:03d}", system="fx", object="AccountObj",
                             external_id=f"fx{n}"))
        session.flush()
        event.listen(store.engine, "before_cursor_execute", seen)
        try:
            resolver = LinkResolver(session)
            assert resolver.to_canonical_id("account", "fx", "fx123") == "c123"
            assert resolver.to_canonical_id("account", "zoho", "fx123") is None
        finally:
            event.remove(store.engine, "before_cursor_execute", seen)
        assert statements
        for statement, parameters in statements:
            plan = " ".join(str(row[-1]) for row in session.connection().exec_driver_sql(
                "EXPLAIN QUERY PLAN " + statement, parameters))
            assert "ix_links_external" in plan, plan
    store.dispose()
