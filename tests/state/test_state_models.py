"""Round trips and constraints of the state tables, on SQLite and PostgreSQL."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, OperationalError, StatementError
from sqlalchemy.orm.exc import StaleDataError

from sync_engine.state import open_store, upgrade, values_hash
from sync_engine.state.models import (
    AuditEvent,
    Channel,
    Cursor,
    InboxEntry,
    Job,
    Link,
    LinkStatus,
    Origin,
    Record,
    Snapshot,
)
from sync_engine.state.types import NaiveDatetimeError

HUAWEI = "深圳市华为技术有限公司"
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _record(store, canonical_id="c-1", **values):
    with store.write() as s:
        s.add(Record(entity="account", canonical_id=canonical_id, values=values or {"name": HUAWEI}))


def test_aware_datetimes_round_trip_as_utc(store):
    beijing_noon = datetime(2025, 1, 28, 12, 0, 0, 123456, tzinfo=SHANGHAI)
    _record(store)
    with store.write() as s:
        s.add(
            Snapshot(
                entity="account",
                canonical_id="c-1",
                system="fxiaoke",
                values={"name": HUAWEI},
                hash=values_hash({"name": HUAWEI}),
                source_modified_at=beijing_noon,
            )
        )
    with store.read() as s:
        snap = s.get(Snapshot, ("account", "c-1", "fxiaoke"))
        got = snap.source_modified_at
        # a SQL comparison on the column is chronological, whatever the input zone was
        later = s.scalar(
            select(Snapshot.system).where(
                Snapshot.source_modified_at > datetime(2025, 1, 28, 3, 59, tzinfo=timezone.utc)
            )
        )
    assert got == beijing_noon
    assert got.tzinfo is not None and got.utcoffset() == timedelta(0)
    assert got.hour == 4 and got.microsecond == 123456
    assert later == "fxiaoke"


def test_naive_datetimes_are_refused(store):
    _record(store)
    with pytest.raises(StatementError) as info:
        with store.write() as s:
            s.add(Link(entity="account", canonical_id="c-1", system="zoho", object="Accounts",
                       external_id="1", last_synced_at=datetime(2025, 1, 1, 12, 0)))
    assert isinstance(info.value.orig, NaiveDatetimeError)


def test_chinese_text_round_trips(store):
    values = {"name": HUAWEI, "address": "广东省深圳市龙岗区坂田华为基地", "amount": Decimal("1234567.89")}
    _record(store, **values)
    with store.write() as s:
        s.add(Link(entity="account", canonical_id="c-1", system="kingdee", object="BD_Customer",
                   external_id="客户-0001"))
        s.add(InboxEntry(system="zoho", dedupe_key="投递-1", headers={"x-来源": "zoho"}, body=f'{{"name": "{HUAWEI}"}}'))
    with store.read() as s:
        record = s.get(Record, ("account", "c-1"))
        link = s.scalar(select(Link).where(Link.external_id == "客户-0001"))
        inbox = s.scalar(select(InboxEntry))
        # the JSON is stored as readable UTF-8, not \\u escapes
        raw = s.scalar(text("SELECT CAST(\"values\" AS TEXT) FROM records"))
    assert record.values == {**values, "amount": "1234567.89"}, "Decimal is stored as its exact string"
    assert link.canonical_id == "c-1"
    assert inbox.headers == {"x-来源": "zoho"} and HUAWEI in inbox.body
    assert HUAWEI in raw
    assert values_hash(values) == values_hash(record.values), "hash is the same before and after storage"


def test_link_uniqueness_is_enforced(store):
    _record(store, "c-1")
    _record(store, "c-2")
    with store.write() as s:
        s.add(Link(entity="account", canonical_id="c-1", system="zoho", object="Accounts", external_id="4711"))
    # the same Zoho record cannot be bound to a second canonical record
    with pytest.raises(IntegrityError):
        with store.write() as s:
            s.add(Link(entity="account", canonical_id="c-2", system="zoho", object="Accounts", external_id="4711"))
    # a canonical record has at most one record per system
    with pytest.raises(IntegrityError):
        with store.write() as s:
            s.add(Link(entity="account", canonical_id="c-1", system="zoho", object="Accounts", external_id="4712"))
    # the same id in another object or system is a different record
    with store.write() as s:

        s.add(Link(entity="account", canonical_id="c-2", system="fxiaoke", object="AccountObj", external_id="4711"))
    with store.read() as s:
        assert s.scalar(select(Link.status).where(Link.canonical_id == "c-1")) is LinkStatus.ACTIVE
        assert len(s.scalars(select(Link)).all()) == 2


def test_link_needs_its_canonical_record(store):
    with pytest.raises(IntegrityError):
        with store.write() as s:
            s.add(Link(entity="account", canonical_id="missing", system="zoho", object="Accounts", external_id="1"))


def test_record_version_guards_concurrent_merges(store):
    _record(store)
    first = store.session(write=False)
    second = store.session(write=False)
    try:
        a = first.get(Record, ("account", "c-1"))
        b = second.get(Record, ("account", "c-1"))
        assert a.version == b.version == 1
        # end the read transactions; objects stay loaded (expire_on_commit=False), as in a
        # merge that fetches from the APIs between reading the base and writing it back
        first.commit()
        second.commit()
        a.values = {"name": HUAWEI, "tier": "金牌"}
        first.commit()
        b.values = {"name": HUAWEI, "tier": "银牌"}
        with pytest.raises(StaleDataError):
            second.commit()
    finally:
        first.close()
        second.close()
    with store.read() as s:
        record = s.get(Record, ("account", "c-1"))
    assert record.values["tier"] == "金牌" and record.version == 2


def test_channel_token_is_compared_in_constant_time_and_never_shown(store):
    with store.write() as s:
        s.add(Channel(system="zoho", channel_id="1000000068001", token="tok-9f8e7d6c5b4a", objects=["Accounts"],
                      expires_at=datetime(2025, 3, 1, tzinfo=timezone.utc)))
    with store.read() as s:
        channel = s.scalar(select(Channel))
    assert channel.token_matches("tok-9f8e7d6c5b4a")
    assert not channel.token_matches("tok-9f8e7d6c5b4b")
    assert not channel.token_matches(None)
    assert "tok-" not in repr(channel)
    assert "1000000068001" in repr(channel)


def test_repr_of_rows_shows_only_the_key(store):
    _record(store, name=HUAWEI)
    with store.read() as s:
        record = s.get(Record, ("account", "c-1"))
    assert repr(record) == "<Record ('account', 'c-1')>"
    assert HUAWEI not in repr(record)


def test_none_in_json_columns_is_sql_null(store):
    with store.write() as s:
        s.add(Job(kind="sync", payload={}, run_at=datetime.now(timezone.utc), result=None))
        s.add(Cursor(system="zoho", object="Accounts", consumer="accounts-flow",
                     watermark=datetime(2025, 1, 1, 0, 0, 1, tzinfo=timezone.utc),
                     tiebreak={"ids": ["4711", "4712"]}, resume=None))
    with store.read() as s:
        assert s.scalar(select(Job.id).where(Job.result.is_(None))) is not None
        cursor = s.get(Cursor, ("zoho", "Accounts", "accounts-flow"))
    assert cursor.tiebreak == {"ids": ["4711", "4712"]} and cursor.resume is None


def test_audit_event_enum_is_checked(store):
    with store.write() as s:
        s.add(AuditEvent(entity="account", canonical_id="c-1", kind="write", system="zoho",
                         origin=Origin.EVENT, details={"before": {"name": "华为"}, "after": {"name": HUAWEI}}))
    with store.read() as s:
        assert s.scalar(select(AuditEvent.origin)) is Origin.EVENT
    with pytest.raises(IntegrityError):
        with store.write() as s:
            s.execute(text("INSERT INTO audit_events (at, entity, kind, origin, details) "
                           "VALUES (:at, 'account', 'write', 'gossip', '{}')"),
                      {"at": "2025-01-01 00:00:00.000000"})


def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_url):
    upgrade(sqlite_url)
    store = open_store(sqlite_url)
    with store.read() as s:
        assert s.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert s.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert s.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    store.dispose()


def test_sqlite_write_transactions_take_the_lock_up_front(sqlite_url):
    """BEGIN IMMEDIATE: a second writer waits at BEGIN (here: times out), readers go on."""
    upgrade(sqlite_url)
    store = open_store(sqlite_url, sqlite_busy_timeout_ms=200)
    outcome = {}

    def second_writer():
        try:
            with store.write() as s:
                s.execute(text("SELECT 1"))
            outcome["writer"] = "ran"
        except OperationalError as exc:
            outcome["writer"] = str(exc.orig)

    with store.write() as s:
        s.execute(text("SELECT 1"))  # no write yet, but the lock is already ours
        thread = threading.Thread(target=second_writer)
        thread.start()
        thread.join()
        with store.read() as r:
            outcome["reader"] = r.execute(text("SELECT count(*) FROM jobs")).scalar()
    store.dispose()
    assert outcome == {"writer": "database is locked", "reader": 0}
