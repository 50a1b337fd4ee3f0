"""Migrations from empty to head and back, on SQLite and PostgreSQL, and their error messages."""
from __future__ import annotations

import socket
import threading

import pytest
from sqlalchemy import create_engine, inspect, text

from sync_engine.state import (
    MigrationError,
    StateStoreConfigError,
    StateStoreUnavailable,
    current,
    downgrade,
    head,
    is_at_head,
    normalise_url,
    open_store,
    upgrade,
)
from sync_engine.state.migrate import MIGRATIONS_DIR, VERSION_TABLE, schema_drift
from sync_engine.state.models import Base

APP_TABLES = {t.name for t in Base.metadata.sorted_tables}


def _tables(url: str) -> set[str]:
    engine = create_engine(normalise_url(url))
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _empty_to_head_and_back(url: str) -> None:
    assert current(url) is None
    assert not is_at_head(url)

    assert upgrade(url) == head()
    assert current(url) == head()
    assert is_at_head(url)
    assert APP_TABLES <= _tables(url)
    assert schema_drift(url) == [], "the models and the migrations disagree"
    assert upgrade(url) == head(), "a second upgrade is a no-op"

    assert downgrade(url, "base") is None
    assert current(url) is None
    assert not is_at_head(url)
    assert _tables(url) & APP_TABLES == set()

    assert upgrade(url) == head(), "base -> head works again after a downgrade"
    assert is_at_head(url)


def test_sqlite_empty_to_head_and_back(sqlite_url):
    _empty_to_head_and_back(sqlite_url)


@pytest.mark.postgres
def test_postgres_empty_to_head_and_back(pg_databases):
    _empty_to_head_and_back(pg_databases())


@pytest.mark.postgres
def test_postgres_concurrent_upgrades_do_not_race(pg_databases):
    """Two services starting at once: the advisory lock lets one migrate, the other finds head."""
    url = pg_databases()
    results, errors = [], []

    def run():
        try:
            results.append(upgrade(url))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert results == [head()] * 3


def test_shipped_migration_files_are_found():
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()
    assert any(MIGRATIONS_DIR.joinpath("versions").glob("0001_*.py"))


def test_version_table_is_our_own(sqlite_url):
    upgrade(sqlite_url)
    assert VERSION_TABLE in _tables(sqlite_url)
    assert "alembic_version" not in _tables(sqlite_url), "must not collide with another app's Alembic"


def test_database_from_a_newer_crmsync_is_a_clear_error(sqlite_url):
    upgrade(sqlite_url)
    engine = create_engine(sqlite_url)
    with engine.begin() as connection:
        connection.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))
    engine.dispose()
    assert current(sqlite_url) == "9999"
    assert not is_at_head(sqlite_url)
    with pytest.raises(MigrationError) as info:
        upgrade(sqlite_url)
    assert "9999" in str(info.value)
    assert "newer crmsync" in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_postgres_is_a_typed_error_without_the_password():
    url = f"postgresql://crm:s3cr3t-pw@127.0.0.1:{_closed_port()}/crmsync"
    for call in (upgrade, current, is_at_head, open_store):
        with pytest.raises(StateStoreUnavailable) as info:
            call(url)
        message = str(info.value)
        assert "s3cr3t-pw" not in message
        assert "cannot reach the state database postgresql+psycopg://crm:***@127.0.0.1" in message
        assert "refused" in message.lower()
        assert info.value.__suppress_context__, "the CLI prints the message, not a chained traceback"


def test_missing_sqlite_directory_is_a_typed_error(tmp_path):
    with pytest.raises(StateStoreUnavailable, match="does not exist"):
        upgrade(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'state.db'}")


@pytest.mark.parametrize(
    "url, driver",
    [
        ("postgresql://u@h/db", "postgresql+psycopg"),
        ("postgres://u@h/db", "postgresql+psycopg"),
        ("postgresql+psycopg2://u@h/db", "postgresql+psycopg"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg"),
        ("sqlite:///crmsync.db", "sqlite"),
    ],
)
def test_urls_are_normalised(url, driver):
    assert normalise_url(url).drivername == driver


@pytest.mark.parametrize("url", ["mysql+pymysql://root:pw@127.0.0.1/x", "", "not a url"])
def test_unsupported_urls_are_config_errors(url):
    with pytest.raises(StateStoreConfigError) as info:
        normalise_url(url)
    assert ":pw@" not in str(info.value)


def _keys_get_their_records_links(url: str) -> None:
    """0007 adds match_keys.linked, filled from each record's links (every status; not a system whose name
    holds a space, as the engine writes it), and keeps every key; its downgrade keeps them too. On SQLite
    the table becomes WITHOUT ROWID."""
    assert upgrade(url, "0006") == "0006"
    engine = create_engine(normalise_url(url))
    now = "2026-11-27 10:00:00"
    try:
        with engine.begin() as conn:
            for cid in ("c1", "c2", "c3"):
                conn.execute(text(
                    "INSERT INTO records (entity, canonical_id, \"values\", version, deleted, created_at, updated_at)"
                    " VALUES ('account', :cid, '{}', 1, false, :now, :now)"), {"cid": cid, "now": now})
            for cid, system, status in (("c1", "fx", "active"), ("c1", "zoho", "deleted"), ("c2", "zoho", "active"),
                                        ("c2", "my erp", "active")):
                conn.execute(text(
                    "INSERT INTO links (entity, canonical_id, system, object, external_id, status, created_at)"
                    " VALUES ('account', :cid, :system, 'Accounts', :ext, :status, :now)"),
                    {"cid": cid, "system": system, "ext": f"{system}-{cid}", "status": status, "now": now})
            for cid, value in (("c1", "华为技术"), ("c2", "华为技术"), ("c3", "星河电子")):
                conn.execute(text(
                    "INSERT INTO match_keys (entity, field, value, canonical_id) VALUES ('account', 'name#core', :v, :cid)"
                ), {"v": value, "cid": cid})
        assert upgrade(url) == head()
        assert schema_drift(url) == []
        with engine.connect() as conn:
            rows = dict(conn.execute(text("SELECT canonical_id, linked FROM match_keys")).all())
            assert rows == {"c1": " fx zoho ", "c2": " zoho ", "c3": ""}
            if engine.dialect.name == "sqlite":
                sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'match_keys'")).scalar_one()
                assert "WITHOUT ROWID" in sql
        assert downgrade(url, "0006") == "0006"
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM match_keys")).scalar_one() == 3
            assert "linked" not in {c["name"] for c in inspect(conn).get_columns("match_keys")}
    finally:
        engine.dispose()


def test_sqlite_match_keys_get_their_records_links(sqlite_url):
    _keys_get_their_records_links(sqlite_url)


@pytest.mark.postgres
def test_postgres_match_keys_get_their_records_links(pg_databases):
    _keys_get_their_records_links(pg_databases())
