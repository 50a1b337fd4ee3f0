"""The state database as the deployment's shared token cache (``connectors.tokens.TokenCache``).

Every process of a deployment (``crmsync serve``, its workers, the scheduler, a one-off
``crmsync sync``) opens the same state database, so that is where they leave tokens for each
other. The rows hold sealed values only; the connectors seal and open them.

The fetch claim is a conditional UPDATE: on PostgreSQL a concurrent UPDATE of the same row waits
for the first and re-checks its WHERE clause, on SQLite writers are serialised, so of several
processes claiming at once exactly one sees its row count be 1.
"""
from __future__ import annotations

import time

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError

from connectors.tokens import CachedToken, TokenCache

from .state.db import StateStore, create_state_engine, is_memory_sqlite
from .state.models import SharedTokenRow

#: SQLite: how long a token-cache write waits for the database's write lock. A dry run holds that
#: lock for its whole pass (it rolls everything back at the end); the connector must not wait the
#: store's usual 30 s for it, so after this it fetches its own token. The engine's own write
#: transactions last milliseconds, so a wait this long means a held lock, not a busy moment.
SQLITE_WAIT_MS = 300


class StateTokenCache(TokenCache):
    def __init__(self, store: StateStore, *, owns_store: bool = False) -> None:
        self.store = store
        self._owns_store = owns_store

    @classmethod
    def for_store(cls, store: StateStore) -> StateTokenCache | None:
        """The cache for the processes sharing ``store``; None for an in-memory database (one process:
        nothing to share, and its single connection must stay the engine's alone)."""
        if not store.is_sqlite:
            return cls(store)  # row locks: the engine's transactions never hold this table
        if is_memory_sqlite(store.url):
            return None
        return cls(StateStore(create_state_engine(store.url, sqlite_busy_timeout_ms=SQLITE_WAIT_MS)), owns_store=True)

    def close(self) -> None:
        if self._owns_store:
            self.store.dispose()

    def get(self, key: str) -> CachedToken | None:
        with self.store.read() as session:
            row = session.get(SharedTokenRow, key)
            if row is None or row.sealed is None or row.expires_at is None:
                return None
            return CachedToken(row.sealed, row.expires_at)

    def put(self, key: str, token: CachedToken, owner: str) -> None:
        self._ensure_row(key)
        with self.store.write() as session:
            session.execute(
                update(SharedTokenRow)
                .where(SharedTokenRow.key == key)
                .values(sealed=token.sealed, expires_at=token.expires_at, fetch_owner=None, fetch_until=None)
            )

    def claim_fetch(self, key: str, owner: str, seconds: float) -> bool:
        self._ensure_row(key)
        now = time.time()
        with self.store.write() as session:
            claimed = session.execute(
                update(SharedTokenRow)
                .where(
                    SharedTokenRow.key == key,
                    or_(SharedTokenRow.fetch_until.is_(None), SharedTokenRow.fetch_until < now,
                        SharedTokenRow.fetch_owner == owner),
                )
                .values(fetch_owner=owner, fetch_until=now + seconds)
                .execution_options(synchronize_session=False)
            )
            return claimed.rowcount == 1

    def release_fetch(self, key: str, owner: str) -> None:
        with self.store.write() as session:
            session.execute(
                update(SharedTokenRow)
                .where(SharedTokenRow.key == key, SharedTokenRow.fetch_owner == owner)
                .values(fetch_owner=None, fetch_until=None)
                .execution_options(synchronize_session=False)
            )

    def _ensure_row(self, key: str) -> None:
        with self.store.read() as session:
            if session.get(SharedTokenRow, key) is not None:
                return
        try:
            with self.store.write() as session:
                session.add(SharedTokenRow(key=key))
        except IntegrityError:
            pass  # another process inserted it first: the row is there, which is all we wanted
