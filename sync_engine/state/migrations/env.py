"""Alembic environment of the state database.

Normally run through :mod:`sync_engine.state.migrate`, which hands over an open
connection in ``config.attributes["connection"]``. Developers may also point
it at a URL (``sqlalchemy.url`` main option or ``CRMSYNC_STATE_URL``).
"""
from __future__ import annotations

import os

from alembic import context
from sqlalchemy.pool import NullPool

from sync_engine.state.db import create_state_engine
from sync_engine.state.migrate import VERSION_TABLE, render_item
from sync_engine.state.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(**kwargs) -> None:
    context.configure(
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        compare_type=True,
        render_item=render_item,
        **kwargs,
    )


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("CRMSYNC_STATE_URL")
    if not url:
        raise SystemExit("set sqlalchemy.url or CRMSYNC_STATE_URL to run migrations outside crmsync")
    return url


def run_offline() -> None:
    url = _url()
    _configure(url=url, literal_binds=True, render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


def _run_on(connection) -> None:
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return
    engine = create_state_engine(_url(), poolclass=NullPool, sqlite_foreign_keys=False)
    try:
        with engine.connect() as connection:
            _run_on(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
