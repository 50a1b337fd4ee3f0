"""Suite-wide rules.

In CI (``CI=true``) a test that needs PostgreSQL or MariaDB must run: a skip of
such a test is turned into a failure, so a missing database cannot pass as green.
"""
from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PG_ENV = "CRMSYNC_TEST_DATABASE_URL"

DB_MARKERS = ("postgres", "mariadb")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    # An expected failure (xfail, with its reason) ran against the database: it is not a skip.
    ran = hasattr(report, "wasxfail")
    if os.environ.get("CI") == "true" and report.skipped and not ran and any(item.get_closest_marker(m) for m in DB_MARKERS):
        report.outcome = "failed"
        report.longrepr = f"{item.nodeid}: database test skipped in CI ({report.longrepr})"


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[Callable[[], str]]:
    """Factory of fresh, empty PostgreSQL databases (SQLAlchemy URLs); all dropped at session end."""
    server = os.environ.get(PG_ENV)
    if not server:
        pytest.skip(f"{PG_ENV} is not set")
    admin_url = make_url(server).set(drivername="postgresql+psycopg", database="postgres")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    created: list[str] = []

    def create() -> str:
        name = f"crmsync_state_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return admin_url.set(database=name).render_as_string(hide_password=False)

    yield create
    with admin.connect() as connection:
        for name in created:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
