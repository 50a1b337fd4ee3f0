"""The database handle of an SQL system: engine, threads, timing, and typed errors.

DB-API drivers block, and a customer may bring any of them (pyodbc, oracledb…),
so every statement runs in a worker thread with a synchronous SQLAlchemy engine
rather than needing an asyncio driver per database. The semaphore keeps the
number of busy threads at the pool size.

Driver errors are translated into :mod:`connectors.errors` types here, once, and
their text is scrubbed of the password: the message ends up in logs and in
``/status``.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import SecretStr
from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import DBAPIError, NoSuchModuleError, NoSuchTableError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from connectors.base import CallObserver, NullObserver
from connectors.errors import AuthError, ConnectorConfigError, ConnectorError, TransientError
from connectors.http import CallStats

log = logging.getLogger(__name__)
T = TypeVar("T")

# SQLSTATEs and vendor codes, so that errors are classified by code rather than by text where drivers give one.
_PG_AUTH = {"28P01", "28000"}
_PG_UNKNOWN_DB = {"3D000"}
_PG_CONFIG = {"42P01", "42703", "42601", "42501", "3F000", "42883"}  # no table/column, syntax, privilege, schema
_PG_TRANSIENT = {"40001", "40P01", "55P03", "57014", "57P01", "57P03", "53300"}
_MY_AUTH = {1044, 1045, 1698}
_MY_UNKNOWN_DB = {1049}
_MY_CONFIG = {1054, 1064, 1142, 1146}
_MY_TRANSIENT = {1040, 1205, 1213, 2002, 2003, 2005, 2006, 2013}
_AUTH_WORDS = ("password authentication failed", "no password supplied", "login failed", "ora-01017", "access denied")
_UNREACHABLE_WORDS = ("connection refused", "could not translate host", "timeout expired", "name or service not known",
                      "can't connect", "no route to host", "could not connect", "unable to open database file")


class Database:
    """One system's engine. Created lazily; :meth:`run` is the only way statements are executed."""

    def __init__(
        self,
        system: str,
        url: str,
        password: SecretStr | None,
        *,
        pool_size: int = 4,
        connect_timeout: float = 10.0,
        connect_args: dict[str, Any] | None = None,
        observer: CallObserver | None = None,
        stats: CallStats | None = None,
    ) -> None:
        self.system = system
        self._url: URL = make_url(url)
        self._password = password
        self._pool_size = pool_size
        self._connect_timeout = connect_timeout
        self._connect_args = dict(connect_args or {})
        self.observer = observer or NullObserver()
        self.stats = stats or CallStats()
        self._engine: Engine | None = None
        self._semaphore = asyncio.Semaphore(pool_size)
        self.last_error: str | None = None

    # -- identity ---------------------------------------------------------
    @property
    def dialect(self) -> str:
        return self._url.get_backend_name()

    @property
    def display_url(self) -> str:
        """The URL without its password, safe for messages."""
        return self._url.render_as_string(hide_password=True)

    # -- engine -----------------------------------------------------------
    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = self._create_engine()
        return self._engine

    def _create_engine(self) -> Engine:
        url = self._url
        if self._password is not None:
            url = url.set(password=self._password.get_secret_value())
        backend = url.get_backend_name()
        connect_args = self._default_connect_args(backend) | self._connect_args
        kwargs: dict[str, Any] = {"connect_args": connect_args, "pool_pre_ping": True}
        if backend == "sqlite":
            if url.database in (None, "", ":memory:"):
                kwargs["poolclass"] = StaticPool  # one shared in-memory database, not one per connection
            else:
                kwargs.update(pool_size=self._pool_size, max_overflow=0)
        else:
            kwargs.update(pool_size=self._pool_size, max_overflow=0, pool_recycle=1800)
        if backend in ("mysql", "mariadb") and "charset" not in url.query:
            url = url.update_query_dict({"charset": "utf8mb4"})  # 3-byte utf8 cannot hold every Chinese character
        try:
            engine = create_engine(url, **kwargs)
        except (NoSuchModuleError, ModuleNotFoundError, ImportError) as exc:
            raise ConnectorConfigError(
                f"cannot use {self.display_url}: the database driver is not installed ({exc})", system=self.system
            ) from None
        except (SQLAlchemyError, ValueError, TypeError) as exc:  # bad URL query, bad connect_args
            raise ConnectorConfigError(f"cannot use {self.display_url}: {self.scrub(str(exc))}", system=self.system) from None
        if backend == "sqlite":
            _fix_sqlite_transactions(engine)
        if backend == "postgresql":
            _prefer_custom_plans(engine)
        return engine

    def _default_connect_args(self, backend: str) -> dict[str, Any]:
        seconds = max(1, int(self._connect_timeout))
        if backend == "postgresql":
            return {"connect_timeout": seconds, "application_name": "crmsync"}
        if backend in ("mysql", "mariadb"):
            return {"connect_timeout": seconds}
        if backend == "mssql":
            return {"timeout": seconds}
        if backend == "sqlite":
            return {"timeout": float(self._connect_timeout), "check_same_thread": False}
        return {}

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- running statements ---------------------------------------------
    async def run(self, endpoint: str, fn: Callable[[Engine], T], *, checking: bool = False) -> T:
        """Run ``fn(engine)`` in a worker thread; time it, count it, and translate its errors."""
        engine = self.engine
        started = time.perf_counter()
        status = "error"
        try:
            async with self._semaphore:
                result = await asyncio.to_thread(fn, engine)
            status = "ok"
            return result
        except ConnectorError as exc:
            self.last_error = exc.message
            raise
        except (SQLAlchemyError, OSError) as exc:
            error = self.translate(exc, checking=checking)
            status = type(error).__name__
            self.last_error = error.message
            raise error from None
        finally:
            seconds = time.perf_counter() - started
            self.stats.record(endpoint, status, ok=status == "ok")
            self.observer.on_call(self.system, endpoint, status, seconds)

    # -- errors -----------------------------------------------------------
    def scrub(self, text: str) -> str:
        """Remove the password from a driver message and keep it short."""
        secret = self._password.get_secret_value() if self._password else None
        if secret and len(secret) >= 3:
            text = text.replace(secret, "***")
        lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
        # SQLAlchemy appends the statement and a link to its docs: useful for developers, noise here.
        lines = [line for line in lines if not line.startswith(("[SQL:", "[parameters:", "(Background on"))]
        return " ".join(lines)[:600]

    def driver_message(self, exc: BaseException) -> str:
        orig = getattr(exc, "orig", None) or exc
        if isinstance(getattr(orig, "args", None), tuple) and len(orig.args) >= 2 and isinstance(orig.args[0], int):
            return self.scrub(str(orig.args[1]))  # PyMySQL: (errno, message)
        return self.scrub(str(orig))

    def translate(self, exc: BaseException, *, checking: bool = False) -> ConnectorError:
        where = self.display_url
        message = self.driver_message(exc)
        kind = classify(exc)
        if isinstance(exc, NoSuchTableError):
            return ConnectorConfigError(f"{where}: table or view {exc} not found", system=self.system)
        if kind == "auth":
            return AuthError(f"{where}: the database refused the login: {message}", code="auth", system=self.system)
        if kind == "unknown_database":
            return ConnectorConfigError(f"{where}: the database does not exist: {message}", system=self.system)
        if kind == "unreachable":
            text = f"{where}: cannot reach the database: {message}"
            if checking:
                return ConnectorConfigError(text, code="unreachable", system=self.system)
            return TransientError(text, code="unreachable", system=self.system)
        if kind == "transient":
            return TransientError(f"{where}: {message}", code="db_transient", system=self.system)
        if kind == "config":
            return ConnectorConfigError(f"{where}: {message}", system=self.system)
        return ConnectorError(f"{where}: {message}", code=kind, system=self.system)


def classify(exc: BaseException) -> str:
    """auth | unknown_database | unreachable | transient | config | record | db_error."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).lower()
    sqlstate = getattr(orig, "sqlstate", None)
    args = getattr(orig, "args", None)
    errno = args[0] if isinstance(args, tuple) and args and isinstance(args[0], int) else None  # PyMySQL: (errno, msg)
    if sqlstate in _PG_AUTH or errno in _MY_AUTH or any(w in text for w in _AUTH_WORDS) or (
        "role " in text and "does not exist" in text
    ):
        return "auth"
    if sqlstate in _PG_UNKNOWN_DB or errno in _MY_UNKNOWN_DB or ("database" in text and "does not exist" in text):
        return "unknown_database"
    if isinstance(exc, OSError) or any(w in text for w in _UNREACHABLE_WORDS) or errno in (2002, 2003, 2005):
        return "unreachable"
    if sqlstate in _PG_TRANSIENT or errno in _MY_TRANSIENT or getattr(exc, "connection_invalidated", False):
        return "transient"
    if "database is locked" in text or "deadlock" in text:
        return "transient"
    if sqlstate in _PG_CONFIG or errno in _MY_CONFIG or "no such table" in text or "no such column" in text:
        return "config"
    if isinstance(exc, DBAPIError) and exc.statement is not None:
        return "record"  # the statement ran and the database refused its data
    return "db_error"


def _fix_sqlite_transactions(engine: Engine) -> None:
    """Let SQLAlchemy, not pysqlite, issue BEGIN: pysqlite's own handling breaks SAVEPOINTs.

    This is the recipe from SQLAlchemy's SQLite dialect documentation ("Serializable
    isolation / Savepoints / Transactional DDL").
    """

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):  # pragma: no cover - trivial
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection):  # pragma: no cover - trivial
        connection.exec_driver_sql("BEGIN")


def _prefer_custom_plans(engine: Engine) -> None:
    """Plan each statement for its actual key values.

    psycopg prepares a statement after a few runs, and PostgreSQL may then switch to a
    generic plan costed on stale statistics — e.g. of an interface table that was empty
    at the last ANALYZE — and seq-scan a 50,000-row table for every 500-key lookup.
    Older servers without ``plan_cache_mode`` (< 12) simply keep their default.
    """

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):  # pragma: no cover - trivial
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET plan_cache_mode = force_custom_plan")
            dbapi_connection.commit()
        except Exception:  # noqa: BLE001 - an old server or a pooler that forbids SET: keep going
            dbapi_connection.rollback()
