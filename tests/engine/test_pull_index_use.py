"""An incremental pass looks its re-read records up by key, not by walking every link of the entity.

The already-reconciled check of ``stage_records`` once asked SQLite for links by
``entity = ? AND system = ? AND object = ? AND external_id IN (…)``; without statistics SQLite
chose the (entity, canonical_id, system) index for that and read every link of the entity, so a
no-op pass cost O(links) (1 s at 30,000 accounts). The query plans of the links lookups a pass
makes by external id must use (system, object, external_id).
"""
from __future__ import annotations

from sqlalchemy import event


async def test_links_looked_up_by_external_id_use_the_external_id_index(engine, systems):
    fx = systems["fx"]
    for n in range(30):
        fx.user_create("AccountObj", {"name": f"深圳市测试{n:02d}科技有限公司", "uscc": f"91440300MA5F{n:06d}",
                                      "tel": f"0755-{n}"})
    await engine.run_all()

    statements: list[tuple[str, object]] = []
    sql_engine = engine.rt.store.engine

    def seen(conn, cursor, statement, parameters, context, executemany):
        if not executemany and "FROM links" in statement and "external_id IN" in statement:
            statements.append((statement, parameters))

    event.listen(sql_engine, "before_cursor_execute", seen)
    try:
        await engine.run_all()  # re-reads what the first pass wrote (its echoes): the check runs
    finally:
        event.remove(sql_engine, "before_cursor_execute", seen)
    assert statements, "the pass made no links lookup by external id"
    with sql_engine.connect() as conn:
        for statement, parameters in statements:
            plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters))
            assert "external_id=?" in plan, (statement, plan)
