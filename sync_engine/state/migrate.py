"""Schema migrations of the state database, driven from code (no alembic.ini needed).

``crmsync db upgrade`` and service start call :func:`upgrade`; ``/readyz``
calls :func:`is_at_head`. Every function takes a URL string (or an Engine /
:class:`~sync_engine.state.db.StateStore`) and raises only
:class:`~sync_engine.state.errors.StateStoreError` subclasses for problems a
user can act on.

On PostgreSQL the whole upgrade runs in one transaction under an advisory
lock, so two services starting at once do not race to create tables. On
SQLite foreign keys are switched off while tables are rebuilt (batch mode) and
checked afterwards, as the SQLite documentation prescribes for schema changes.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import text
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from .db import WRITE_OPTION, StateStore, create_state_engine, normalise_url, unavailable_on_connect_error
from .errors import MigrationError
from .models import Base
from .types import UTCDateTime

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: Our own version table, so the state can share a PostgreSQL database with other Alembic users.
VERSION_TABLE = "crmsync_alembic_version"
# pg_advisory_xact_lock key: the bytes of "crmsync" as an integer.
_PG_MIGRATION_LOCK = int.from_bytes(b"crmsync", "big")

Target = str | URL | Engine | StateStore


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest revision this version of crmsync knows."""
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    return ",".join(sorted(heads))


def upgrade(target: Target, revision: str = "head") -> str | None:
    """Migrate the database up to ``revision`` (default: head). Returns the revision reached."""
    return _migrate(target, command.upgrade, revision)


def downgrade(target: Target, revision: str) -> str | None:
    """Migrate down to ``revision`` (``base`` removes every table). Returns the revision reached."""
    return _migrate(target, command.downgrade, revision)


def current(target: Target) -> str | None:
    """The database's revision, or None for an empty (never migrated) database."""
    with _migration_connection(target) as connection:
        try:
            return _current_on(connection)
        finally:
            connection.rollback()


def is_at_head(target: Target) -> bool:
    return current(target) == head()


def schema_drift(target: Target) -> list[Any]:
    """Differences between the models and the migrated database (empty when they agree)."""
    with _migration_connection(target) as connection:
        try:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "version_table": VERSION_TABLE}
            )
            return compare_metadata(context, Base.metadata)
        finally:
            connection.rollback()


def make_revision(target: Target, message: str, *, autogenerate: bool = True, rev_id: str | None = None) -> Path:
    """For developers: write a new revision file comparing the models with a database at head."""
    with _migration_connection(target) as connection:
        try:
            script = command.revision(
                alembic_config(connection), message=message, autogenerate=autogenerate, rev_id=rev_id
            )
        finally:
            connection.rollback()
    assert script is not None and not isinstance(script, list)
    return Path(script.path)


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Autogenerate hook: write plain SQLAlchemy types into revision files, never our Python helpers,
    so an old revision keeps working when the helpers change."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


# -- internals --------------------------------------------------------------


def _migrate(target: Target, step: Callable[..., None], revision: str) -> str | None:
    with _migration_connection(target) as connection:
        try:
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
                step(alembic_config(connection), revision)
        except CommandError as exc:
            raise MigrationError(_explain(exc, revision)) from None
        except DBAPIError as exc:
            reason = " ".join(str(exc.orig).split())
            raise MigrationError(f"migrating the state database to {revision} failed: {reason}") from None
        if connection.dialect.name == "sqlite":
            _check_sqlite_foreign_keys(connection)
        try:
            return _current_on(connection)
        finally:
            connection.rollback()


def _explain(error: CommandError, revision: str) -> str:
    message = str(error)
    if "Can't locate revision" in message or "No such revision" in message:
        return (
            f"{message}. The state database may have been migrated by a newer crmsync "
            f"(this one knows revisions up to {head()}), or {revision!r} is not a revision."
        )
    return f"cannot migrate the state database to {revision}: {message}"


def _current_on(connection: Connection) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    heads = context.get_current_heads()
    return ",".join(sorted(heads)) if heads else None


def _check_sqlite_foreign_keys(connection: Connection) -> None:
    problems = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    connection.rollback()
    if problems:
        raise MigrationError(f"after migration {len(problems)} rows break foreign keys, e.g. {tuple(problems[0])}")


@contextmanager
def _migration_connection(target: Target) -> Iterator[Connection]:
    if isinstance(target, StateStore):
        target = target.engine
    owned = not isinstance(target, Engine)
    engine = create_state_engine(normalise_url(target), poolclass=NullPool) if owned else target
    try:
        with unavailable_on_connect_error(engine.url):
            connection = engine.connect()
        sqlite = engine.dialect.name == "sqlite"
        try:
            if sqlite:
                _sqlite_foreign_keys(connection, on=False)
            # Write transactions (BEGIN IMMEDIATE on SQLite): DDL must not fail halfway on a lock upgrade.
            connection.execution_options(**{WRITE_OPTION: True})
            yield connection
        finally:
            if sqlite:
                if connection.in_transaction():
                    connection.rollback()
                _sqlite_foreign_keys(connection, on=True)
            connection.close()
    finally:
        if owned:
            engine.dispose()


def _sqlite_foreign_keys(connection: Connection, *, on: bool) -> None:
    # Straight to the driver: the pragma is a no-op inside a transaction, and
    # going through SQLAlchemy would begin one first.
    connection.connection.driver_connection.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
