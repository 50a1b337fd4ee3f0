"""Engines and transactions for the state database (SQLite or PostgreSQL).

SQLite gets WAL mode (readers never wait for the writer), foreign keys,
a busy timeout, and ``BEGIN IMMEDIATE`` for write transactions: a writer takes
the write lock when it starts instead of failing with ``database is locked``
halfway through when a read lock cannot be upgraded.

PostgreSQL goes through psycopg 3; ``postgresql://`` and ``postgres://`` URLs
are rewritten to ``postgresql+psycopg://``.
"""
from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from .errors import StateStoreConfigError, StateStoreUnavailable
from .types import dumps_json, loads_json, loads_json_exact

log = logging.getLogger(__name__)

DEFAULT_URL = "sqlite:///crmsync.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000
POSTGRES_CONNECT_TIMEOUT_S = 10

# Execution option that marks a connection as opened for writing (SQLite: BEGIN IMMEDIATE).
WRITE_OPTION = "crmsync_write"
_PG_DRIVERS = {"postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2"}
_SQLITE_DRIVERS = {"sqlite", "sqlite+pysqlite"}


def normalise_url(url: str | URL) -> URL:
    """Parse a state URL, pick psycopg 3 for PostgreSQL, refuse other databases."""
    if isinstance(url, str):
        if not url.strip():
            raise StateStoreConfigError("the state database URL is empty")
        try:
            url = make_url(url.strip())
        except ArgumentError:
            raise StateStoreConfigError(
                "the state database URL is not valid; expected e.g. sqlite:///crmsync.db "
                "or postgresql://user@host:5432/crmsync"
            ) from None
    driver = url.drivername
    if driver in _PG_DRIVERS:
        return url.set(drivername="postgresql+psycopg")
    if driver in _SQLITE_DRIVERS:
        return url.set(drivername="sqlite")
    raise StateStoreConfigError(
        f"crmsync keeps its state in SQLite or PostgreSQL, not {driver!r} "
        f"(URL {safe_url(url)}); use sqlite:///path.db or postgresql://user@host/db"
    )


def safe_url(url: str | URL) -> str:
    """The URL with its password masked, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True) if isinstance(url, str) else url.render_as_string(
            hide_password=True
        )
    except ArgumentError:
        return "<unparseable URL>"


def is_memory_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def create_state_engine(
    url: str | URL,
    *,
    echo: bool = False,
    sqlite_foreign_keys: bool = True,
    sqlite_busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
    **engine_kwargs: Any,
) -> Engine:
    """An Engine configured for the state store. Extra keyword arguments go to ``create_engine``."""
    url = normalise_url(url)
    common: dict[str, Any] = {"echo": echo, "json_serializer": dumps_json}
    if url.get_backend_name() == "sqlite":
        common["json_deserializer"] = loads_json
        return _sqlite_engine(url, common | engine_kwargs, sqlite_foreign_keys, sqlite_busy_timeout_ms)
    common["json_deserializer"] = loads_json_exact
    connect_args = {"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S, "application_name": "crmsync"}
    connect_args |= engine_kwargs.pop("connect_args", {})
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args, **(common | engine_kwargs))


def _sqlite_engine(url: URL, kwargs: dict[str, Any], foreign_keys: bool, busy_timeout_ms: int) -> Engine:
    memory = is_memory_sqlite(url)
    if memory:
        # One connection shared by all sessions, or every session would see its own empty database.
        kwargs.setdefault("poolclass", StaticPool)
        kwargs.setdefault("connect_args", {"check_same_thread": False})
    else:
        _check_sqlite_directory(url)
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN itself (pysqlite's
        # own implicit BEGIN cannot be IMMEDIATE and skips DDL).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                # Durable at checkpoints, never corrupt: the documented WAL pairing.
                cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _check_sqlite_directory(url: URL) -> None:
    directory = os.path.dirname(os.path.abspath(url.database or ""))
    if not os.path.isdir(directory):
        raise StateStoreUnavailable(
            f"cannot open the SQLite state database {url.database}: directory {directory} does not exist"
        )


def describe_connect_error(url: URL, error: BaseException) -> str:
    """One line saying why the database could not be reached, without the password."""
    orig = getattr(error, "orig", None) or error
    reason = " ".join(str(orig).split()) or type(orig).__name__
    if url.password:
        reason = reason.replace(str(url.password), "***")
    reason = re.sub(r"password=\S+", "password=***", reason)
    return f"cannot reach the state database {safe_url(url)}: {reason}"


@contextmanager
def unavailable_on_connect_error(url: URL) -> Iterator[None]:
    """Turn a driver error while connecting into :class:`StateStoreUnavailable` (no traceback chain)."""
    try:
        yield
    except DBAPIError as exc:
        raise StateStoreUnavailable(describe_connect_error(url, exc)) from None


#: Tables the engine reads by lists of keys (``IN (…)`` of a batch's ids): their plans need statistics.
ANALYZED_TABLES = ("records", "links", "snapshots", "match_keys", "outbox", "staged_changes", "audit_events")
#: Stale: at least ANALYZE_MIN_ROWS rows and more than ANALYZE_GROWTH times the rows the last ANALYZE
#: counted (or never analysed). Growth, not changes: a table of steady size (webhook updates, staged rows
#: coming and going) keeps its plans; one that doubled during a first sync needs new ones.
ANALYZE_MIN_ROWS, ANALYZE_GROWTH = 1000, 2.0
#: Seconds between two looks at the statistics (one cheap query) from one process.
ANALYZE_EVERY_S = 2.0


class StateStore:
    """The state database: an engine plus read and write transactions.

    Use :meth:`write` for anything that changes rows (on SQLite it takes the
    write lock up front) and :meth:`read` for queries. Both commit on success
    and roll back on an exception; objects stay usable after the block
    (``expire_on_commit=False``).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.url: URL = engine.url
        self.dialect: str = engine.dialect.name
        self._reader = sessionmaker(bind=engine, expire_on_commit=False)
        self._writer = sessionmaker(bind=engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False)
        self._statistics_checked = -ANALYZE_EVERY_S
        self._statistics_failed = False

    @classmethod
    def open(cls, url: str | URL = DEFAULT_URL, *, check: bool = True, **engine_kwargs: Any) -> StateStore:
        """Create the engine and (by default) prove the database answers: raises :class:`StateStoreUnavailable`."""
        store = cls(create_state_engine(url, **engine_kwargs))
        if check:
            try:
                store.check()
            except StateStoreUnavailable:
                store.dispose()
                raise
        return store

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    def check(self) -> None:
        with unavailable_on_connect_error(self.url), self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    @contextmanager
    def write(self) -> Iterator[Session]:
        with self._writer.begin() as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._reader.begin() as session:
            yield session

    def session(self, *, write: bool = False) -> Session:
        """A plain Session for callers managing their own transaction (remember ``write=True`` on SQLite)."""
        return (self._writer if write else self._reader)()

    def refresh_statistics(self, tables: tuple[str, ...] = ANALYZED_TABLES) -> list[str]:
        """PostgreSQL: ANALYZE the state tables whose statistics are missing or stale; the names analysed.

        A first sync fills empty tables with many thousand rows within minutes. Until they are
        analysed (autovacuum may be late, or off), the planner takes them for nearly empty and
        answers a batch's ``IN (…)`` list by walking the whole table for the index's first columns:
        every batch then costs more than the one before. A table is analysed again each time it has
        doubled (ANALYZE_GROWTH), so a first sync of N records analyses each about log2(N / 1000) times. Checked at most every ANALYZE_EVERY_S
        seconds; ``SKIP_LOCKED``: never waits for another process analysing the same table.
        Failures (say, not the tables' owner) are logged once and turn this off: only speed is lost.
        """
        now = time.monotonic()
        if not self.is_postgres or self._statistics_failed or now - self._statistics_checked < ANALYZE_EVERY_S:
            return []
        self._statistics_checked = now
        try:
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                stale = [
                    name for name, live, counted in connection.execute(
                        text(
                            "SELECT s.relname, s.n_live_tup, greatest(c.reltuples, 0)"
                            " FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid"
                            " WHERE s.schemaname = current_schema() AND s.relname = ANY(:tables)"
                        ),
                        {"tables": list(tables)},
                    )
                    if live >= ANALYZE_MIN_ROWS and live > ANALYZE_GROWTH * counted
                ]
                if stale:
                    quote = self.engine.dialect.identifier_preparer.quote
                    connection.exec_driver_sql(f"ANALYZE (SKIP_LOCKED) {', '.join(quote(t) for t in sorted(stale))}")
                return sorted(stale)
        except DBAPIError as exc:
            self._statistics_failed = True
            log.warning("not refreshing the state tables' statistics: %s", " ".join(str(exc.orig or exc).split()))
            return []

    def dispose(self) -> None:
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"<StateStore {safe_url(self.url)}>"


def open_store(url: str | URL = DEFAULT_URL, *, check: bool = True, **engine_kwargs: Any) -> StateStore:
    return StateStore.open(url, check=check, **engine_kwargs)
