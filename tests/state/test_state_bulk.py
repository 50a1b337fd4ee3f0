"""Batch inserts and updates through the driver (sync_engine.state.bulk) store exactly what the ORM
stores, on SQLite and PostgreSQL; and PostgreSQL's statistics are refreshed when a sync grows the tables."""
from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text

from sync_engine.state import bulk, open_store
from sync_engine.state.models import (
    AuditEvent,
    Link,
    LinkStatus,
    Origin,
    Record,
    Snapshot,
)
from sync_engine.state.models.enums import SnapshotAction
from sync_engine.state.models.pipeline import OutboxWrite
from sync_engine.state.types import NaiveDatetimeError

HUAWEI = "深圳市华为技术有限公司"
SHANGHAI = ZoneInfo("Asia/Shanghai")
AT = datetime(2025, 1, 28, 12, 0, 0, 123456, tzinfo=SHANGHAI)
ON_THE_SECOND = datetime(2025, 1, 28, 4, 0, 0, tzinfo=UTC)


def _record_fields(cid: str, **over) -> dict:
    fields = {"entity": "account", "canonical_id": cid, "values": {"name": HUAWEI, "revenue": Decimal("1.10")},
              "hash": None, "version": 1, "deleted": False, "deleted_at": None, "created_at": AT, "updated_at": AT}
    return {**fields, **over}


def _raw(store, table: str, where: str) -> tuple:
    with store.read() as s:
        return tuple(s.execute(text(f"SELECT * FROM {table} WHERE {where}")).one())


def test_inserted_rows_read_back_as_the_orm_writes_them(store):
    # The same row once through the ORM and once through bulk: stored byte for byte alike.
    # A time exactly on the second too: SQLite keeps fixed-width text, microseconds always written.
    on_the_second = {"deleted": True, "deleted_at": ON_THE_SECOND}
    with store.write() as s:
        s.add(Record(**_record_fields("orm")))
        s.add(Record(**_record_fields("orm-2", **on_the_second)))
    with store.write() as s:
        bulk.insert_rows(s, Record.__table__, [_record_fields("bulk"), _record_fields("bulk-2", **on_the_second)])
    for orm_id, bulk_id in (("orm", "bulk"), ("orm-2", "bulk-2")):
        orm, made = _raw(store, "records", f"canonical_id = '{orm_id}'"), _raw(store, "records", f"canonical_id = '{bulk_id}'")
        assert orm[2:] == made[2:]
    with store.read() as s:
        record = s.get(Record, ("account", "bulk"))
        other = s.get(Record, ("account", "bulk-2"))
    assert record.values == {"name": HUAWEI, "revenue": "1.10"}
    assert record.created_at == AT and record.created_at.tzinfo is not None
    assert record.deleted is False and other.deleted is True
    assert other.deleted_at == ON_THE_SECOND


def test_times_compare_chronologically_with_orm_written_ones(store):
    with store.write() as s:
        s.add(Record(**_record_fields("orm", updated_at=ON_THE_SECOND + timedelta(microseconds=1))))
        s.flush()
        bulk.insert_rows(s, Record.__table__, [_record_fields("bulk", updated_at=ON_THE_SECOND)])
    with store.read() as s:
        found = s.scalars(select(Record.canonical_id).where(Record.updated_at > ON_THE_SECOND)).all()
        before = s.scalars(select(Record.canonical_id).where(Record.updated_at <= ON_THE_SECOND)).all()
    assert found == ["orm"] and before == ["bulk"]


def test_enums_defaults_and_null_json(store):
    with store.write() as s:
        bulk.insert_rows(s, Record.__table__, [_record_fields("c-1")])
        bulk.insert_rows(s, Link.__table__, [
            {"entity": "account", "canonical_id": "c-1", "system": "zoho", "object": "Accounts", "external_id": "z-1",
             "status": LinkStatus.ACTIVE, "created_at": AT, "last_synced_at": None},
        ])
        # AuditEvent: origin is an enum column, api_call a JSON column left NULL.
        bulk.insert_rows(s, AuditEvent.__table__, [
            {"kind": "read", "entity": "account", "canonical_id": "c-1", "origin": Origin.POLL, "details": {"a": 1},
             "api_call": None, "at": AT},
        ])
        # OutboxWrite rows without status, attempts and origin: their Python defaults apply.
        bulk.insert_rows(s, OutboxWrite.__table__, [
            {"op_key": "k-1", "entity": "account", "canonical_id": "c-1", "system": "zoho", "object": "Accounts",
             "action": "create", "values": {"name": HUAWEI}},
        ])
    with store.read() as s:
        link = s.scalars(select(Link)).one()
        event = s.scalars(select(AuditEvent)).one()
        row = s.scalars(select(OutboxWrite)).one()
        api_call_is_null = s.execute(text("SELECT api_call IS NULL FROM audit_events")).scalar()
    assert link.status == LinkStatus.ACTIVE and link.last_synced_at is None
    assert event.origin == Origin.POLL and event.details == {"a": 1} and event.api_call is None and api_call_is_null
    assert (row.status, row.attempts, row.origin) == ("pending", 0, "poll")
    assert row.created_at is not None and row.values == {"name": HUAWEI}


def test_refuses_what_the_orm_refuses(store):
    with pytest.raises(NaiveDatetimeError), store.write() as s:
        bulk.insert_rows(s, Record.__table__, [_record_fields("c-1", created_at=datetime(2025, 1, 1))])
    with pytest.raises(LookupError), store.write() as s:
        bulk.insert_rows(s, Record.__table__, [_record_fields("c-1")])
        bulk.insert_rows(s, Snapshot.__table__, [
            {"entity": "account", "canonical_id": "c-1", "system": "zoho", "values": {}, "hash": "h",
             "last_action": "guessed", "updated_at": AT},
        ])
    with store.read() as s:
        assert s.scalar(select(Record.canonical_id)) is None  # both transactions rolled back


def test_rows_of_different_shapes_go_in_together(store):
    with store.write() as s:
        bulk.insert_rows(s, Record.__table__, [_record_fields("c-1")])
        bulk.insert_rows(s, Snapshot.__table__, [
            {"entity": "account", "canonical_id": "c-1", "system": "fx", "values": {"n": 1}, "hash": "h1",
             "last_action": SnapshotAction.READ, "read_at": AT, "updated_at": AT},
            {"entity": "account", "canonical_id": "c-1", "system": "zoho", "values": {"n": 2}, "hash": "h2",
             "last_action": SnapshotAction.WRITE, "written_at": AT, "last_op_key": "k", "updated_at": AT},
        ])
    with store.read() as s:
        snaps = {snap.system: snap for snap in s.scalars(select(Snapshot))}
    assert snaps["fx"].read_at == AT and snaps["fx"].written_at is None and snaps["fx"].last_op_key is None
    assert snaps["zoho"].written_at == AT and snaps["zoho"].read_at is None and snaps["zoho"].last_op_key == "k"
    assert snaps["zoho"].last_action == SnapshotAction.WRITE


def test_update_rows_by_id(store):
    with store.write() as s:
        bulk.insert_rows(s, OutboxWrite.__table__, [
            {"op_key": f"k-{i}", "entity": "account", "canonical_id": f"c-{i}", "system": "zoho",
             "object": "Accounts", "action": "create", "values": {}, "status": "pending", "attempts": 0}
            for i in range(3)
        ])
    with store.write() as s:
        rows = [dict(r) for r in s.execute(select(OutboxWrite.id, OutboxWrite.op_key)).mappings()]
        changed = [{"id": r["id"], "status": "sent", "attempts": 1, "sent_at": AT} for r in rows[:2]]
        bulk.update_rows(s, OutboxWrite.__table__, "id", ["status", "attempts", "sent_at"], changed)
    with store.read() as s:
        got = {r.op_key: (r.status, r.attempts, r.sent_at) for r in s.scalars(select(OutboxWrite))}
    assert got == {"k-0": ("sent", 1, AT), "k-1": ("sent", 1, AT), "k-2": ("pending", 0, None)}


# -- statistics -------------------------------------------------------------

def test_statistics_are_refreshed_once_the_tables_grow(backend, request):
    if backend == "sqlite":
        store = open_store(request.getfixturevalue("sqlite_url"))
        assert store.refresh_statistics() == []  # nothing to do on SQLite
        store.dispose()
        return
    from sync_engine.state import upgrade

    url = request.getfixturevalue("pg_databases")()
    upgrade(url)
    store = open_store(url)
    try:
        with store.write() as s:
            bulk.insert_rows(s, Record.__table__, [_record_fields(f"c-{i}") for i in range(1200)])
        stale: list[str] = []
        for _ in range(50):  # the server's counters of changed rows arrive within about a second
            store._statistics_checked = float("-inf")
            stale = store.refresh_statistics()
            if stale:
                break
            time.sleep(0.1)
        assert "records" in stale
        with store.read() as s:
            analysed = s.execute(text("SELECT reltuples FROM pg_class WHERE relname = 'records'")).scalar()
        assert analysed == 1200
        # Fresh now: the table has not doubled since, so it is not analysed again; and looks come at most
        # every ANALYZE_EVERY_S seconds.
        with store.write() as s:
            bulk.insert_rows(s, Record.__table__, [_record_fields(f"d-{i}") for i in range(500)])
        time.sleep(1.2)
        store._statistics_checked = float("-inf")
        assert "records" not in store.refresh_statistics()
        assert store.refresh_statistics() == []
    finally:
        store.dispose()
