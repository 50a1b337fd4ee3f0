"""Fixtures for the SQL interface-table connector: the same tests on SQLite, PostgreSQL and MariaDB.

PostgreSQL and MariaDB come from ``CRMSYNC_TEST_DATABASE_URL`` / ``CRMSYNC_TEST_MYSQL_URL``
(skipped when unset; CI turns such skips into failures). The tests never touch the
database named in the URL: each session creates one throwaway database per server and
drops it at the end; the demo schema is created there once and emptied before every test.
"""
from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from connectors.sql.connector import SqlConnector
from connectors.sql.demo_schema import clear_demo_data, create_demo_schema, demo_settings
from connectors.sql.settings import SqlSettings

PG_ENV = "CRMSYNC_TEST_DATABASE_URL"
MY_ENV = "CRMSYNC_TEST_MYSQL_URL"


def _throwaway(env: str, kind: str) -> Iterator[str]:
    server = os.environ.get(env)
    if not server:
        pytest.skip(f"{env} is not set")
    url = make_url(server)
    name = f"crmsync_sqlconn_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if kind == "postgresql":
            conn.execute(text(f'CREATE DATABASE "{name}" ENCODING \'UTF8\' TEMPLATE template0'))
        else:
            conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            if kind == "postgresql":
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            else:
                conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    yield from _throwaway(PG_ENV, "postgresql")


@pytest.fixture(scope="session")
def mysql_url() -> Iterator[str]:
    yield from _throwaway(MY_ENV, "mysql")


BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    pytest.param("mariadb", id="mariadb", marks=pytest.mark.mariadb),
]


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'erp.db'}"
    return request.getfixturevalue("pg_url" if request.param == "postgresql" else "mysql_url")


@pytest.fixture(scope="session")
def server_engines() -> Iterator[dict[str, Engine]]:
    """One engine per throwaway server database, its demo schema created once per session."""
    engines: dict[str, Engine] = {}
    yield engines
    for engine in engines.values():
        engine.dispose()  # the throwaway database itself is dropped by pg_url / mysql_url


@pytest.fixture
def erp(db_url, server_engines) -> Iterator[Engine]:
    """The example ERP database with empty tables (view and interface tables included)."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url)
        create_demo_schema(engine)
        yield engine
        engine.dispose()
        return
    if db_url not in server_engines:
        if url.get_backend_name() == "mysql":
            url = url.update_query_dict({"charset": "utf8mb4"})
        server_engines[db_url] = create_engine(url)
        create_demo_schema(server_engines[db_url])  # DDL is slow on MariaDB: once per session
    engine = server_engines[db_url]
    clear_demo_data(engine)
    yield engine


@pytest.fixture
async def make_connector(db_url, erp) -> AsyncIterator[Callable[..., SqlConnector]]:
    """``make_connector(**settings overrides)`` → an SqlConnector on the demo schema; closed at teardown."""
    made: list[SqlConnector] = []

    def make(objects: dict | None = None, **overrides) -> SqlConnector:
        raw = demo_settings(db_url, **overrides)
        for name, changes in (objects or {}).items():
            raw["objects"][name] = {**raw["objects"].get(name, {}), **changes}
        connector = SqlConnector("erp", SqlSettings.model_validate(raw))
        made.append(connector)
        return connector

    yield make
    for connector in made:
        await connector.close()


@pytest.fixture
async def connector(make_connector) -> SqlConnector:
    return make_connector()
