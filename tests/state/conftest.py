"""Fixtures for the state store tests: SQLite always, PostgreSQL when CRMSYNC_TEST_DATABASE_URL is set.

PostgreSQL tests never touch the database named in the URL: they create fresh
databases on that server (one migrated database shared by the session, plus one
per test that needs an empty one) and drop them all at the end.
"""
from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from sync_engine.state import JobQueue, RetryPolicy, StateStore, open_store, upgrade
from sync_engine.state.models import Base

PG_ENV = "CRMSYNC_TEST_DATABASE_URL"


class FakeClock:
    """A clock the tests move by hand (retry backoff and leases without sleeping)."""

    def __init__(self) -> None:
        self.now = datetime(2025, 3, 1, 8, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(scope="session")
def pg_migrated_url(pg_databases) -> str:
    url = pg_databases()
    upgrade(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"


def _empty_tables(store: StateStore) -> None:
    names = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with store.write() as s:
        s.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request) -> str:
    return request.param


@pytest.fixture
def store(backend, request) -> Iterator[StateStore]:
    """A migrated, empty state store on each backend."""
    if backend == "sqlite":
        url = request.getfixturevalue("sqlite_url")
        upgrade(url)
        s = open_store(url)
    else:
        s = open_store(request.getfixturevalue("pg_migrated_url"))
        _empty_tables(s)
    yield s
    s.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def queue(store, clock) -> JobQueue:
    """A queue on a hand-moved clock with deterministic backoff (10 s, 20 s, 40 s…)."""
    return JobQueue(store, clock=clock, retry=RetryPolicy(base_seconds=10, factor=2, max_seconds=600, jitter=0))
