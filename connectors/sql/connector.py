"""The SQL interface-table connector: ERP tables and views in, interface tables out.

Reads: per object a table or view, incrementally by a modified-at column
(:mod:`.reader`) or, without one, by content hash (:mod:`.hashing`).
Writes: staged in the object's interface table only (:mod:`.writer`); the ERP's
import job sets each row's status, and :meth:`SqlConnector.poll_write_outcomes`
reads the verdicts back (:mod:`.outcomes`).
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from datetime import timedelta
from typing import Any

from sqlalchemy import literal, select
from sqlalchemy.engine import Engine

from connectors.base import (
    CallObserver,
    Connector,
    FieldInfo,
    Limits,
    ObjectInfo,
    Page,
    PullRequest,
    SourceRecord,
    WriteOp,
    WriteResult,
)
from connectors.http import CallStats

from .database import Database
from .discovery import Discovery
from .hashing import HashScanner, HashStore
from .outcomes import Outcomes
from .reader import Reader
from .settings import SqlSettings
from .tables import Catalog
from .writer import Writer


class SqlConnector(Connector):
    """One ERP database. Never writes a table other than the configured interface tables."""

    type = "sql"

    def __init__(self, name: str, settings: SqlSettings, observer: CallObserver | None = None) -> None:
        super().__init__(name)
        self.settings = settings
        self.stats = CallStats()
        self.db = Database(
            name,
            settings.url,
            settings.password,
            pool_size=settings.pool_size,
            connect_timeout=settings.connect_timeout_seconds,
            connect_args=settings.connect_args,
            observer=observer,
            stats=self.stats,
        )
        hs = settings.hash_state
        self.hash_db = self.db if hs.url is None else Database(
            name, hs.url, hs.password, pool_size=2, connect_timeout=settings.connect_timeout_seconds,
            observer=observer, stats=self.stats,
        )
        self.catalog = Catalog(settings)
        self.reader = Reader(name, self.db, self.catalog)
        self.hash_store = HashStore(name, hs, self.hash_db)
        self.scanner = HashScanner(name, self.reader, self.hash_store)
        self.writer = Writer(name, self.db, self.catalog)
        self.outcomes = Outcomes(name, self.db, self.writer)
        self.discovery = Discovery(self.db, self.catalog)

    # -- life cycle ---------------------------------------------------------
    async def close(self) -> None:
        self.db.dispose()
        if self.hash_db is not self.db:
            self.hash_db.dispose()
        self.catalog.clear()

    async def check(self) -> None:
        """One trivial query, then every configured table, column and interface table is resolved.

        Bad credentials raise :class:`AuthError`; an unreachable server, a missing
        database, table or column raise :class:`ConnectorConfigError`. Messages show
        the URL without its password.
        """
        await self.db.run("check", _ping, checking=True)
        for name, obj in self.settings.objects.items():
            if obj.table:
                await self.db.run("check", lambda engine, n=name: self.catalog.read_model(engine, n), checking=True)
            if obj.interface:
                await self.db.run("check", lambda engine, n=name: self.catalog.write_model(engine, n), checking=True)
        if any(obj.table and not obj.modified_column for obj in self.settings.objects.values()):
            if self.hash_db is not self.db:
                await self.hash_db.run("check", _ping, checking=True)
            await self.hash_store.ensure()

    @property
    def limits(self) -> Limits:
        s = self.settings
        return Limits(page_size=s.page_size, write_batch=s.write_batch_size, fetch_batch=s.fetch_batch_size,
                      concurrency=s.pool_size)

    # -- reading --------------------------------------------------------------
    def visibility_lag(self, object: str) -> timedelta:
        configured = self.settings.objects.get(object)
        return timedelta(seconds=configured.overlap_seconds) if configured is not None else timedelta(0)

    def timestamp_resolution(self, object: str) -> timedelta:
        configured = self.settings.objects.get(object)
        return timedelta(seconds=configured.modified_resolution()) if configured is not None else timedelta(seconds=1)

    async def pull(self, request: PullRequest) -> AsyncIterator[Page]:
        model = await self.reader.model(request.object)
        pages = self.scanner.pull(model, request) if model.hash_mode else self.reader.pull_modified(model, request)
        async with aclosing(pages):  # a consumer that stops early closes the inner scan too (no hash saved)
            async for page in pages:
                yield page

    async def fetch(self, object: str, ids: Sequence[str], fields: Sequence[str] = ()) -> list[SourceRecord]:
        model = await self.reader.model(object)
        return await self.reader.fetch(model, ids, fields)

    # -- writing --------------------------------------------------------------
    async def push(self, object: str, ops: Sequence[WriteOp]) -> list[WriteResult]:
        """Stage the ops in the object's interface table, in transactional batches.

        Staged ops come back ``ok=True, pending=True`` with the natural key as
        ``external_id``; their final outcome comes from :meth:`poll_write_outcomes`.
        An object without an interface table raises :class:`ConnectorConfigError`:
        crmsync never writes ERP base tables.
        """
        return await self.writer.push(object, ops)

    async def poll_write_outcomes(self, objects: Sequence[str] | None = None, *, limit: int = 1000) -> list[WriteResult]:
        """Final results of staged ops the ERP import job has processed since the last call.

        Imported rows: ``ok=True`` with the ERP's id (``result_id`` column) or the natural key.
        Rejected rows: ``ok=False``, ``code`` ERP_REJECTED (or the ERP's code), ``message`` the
        ERP's message. Ops replaced before the ERP took them: ``ok=True, code=SUPERSEDED``.
        Calling again acknowledges the previous answer (see :mod:`connectors.sql.outcomes`).
        """
        return await self.outcomes.poll(objects, limit=limit)

    async def acknowledge_write_outcomes(self) -> None:
        """Mark the outcomes returned by the last poll as read now, rather than at the next poll."""
        await self.outcomes.acknowledge()

    # -- discovery ------------------------------------------------------------
    async def list_objects(self) -> list[ObjectInfo]:
        return await self.discovery.list_objects()

    async def describe(self, object: str) -> list[FieldInfo]:
        return await self.discovery.describe(object)

    # -- ops ------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "database": self.db.display_url,
            "dialect": self.db.dialect,
            "calls": self.stats.last_hour(),
            "last_error": self.db.last_error,
            "objects": {
                name: {
                    "read": obj.table,
                    "change_detection": "modified_column" if obj.modified_column else ("hash" if obj.table else None),
                    "interface": obj.interface.table if obj.interface else None,
                }
                for name, obj in self.settings.objects.items()
            },
            "outcomes_awaiting_acknowledgement": self.outcomes.unacknowledged,
            "displaced_outcomes_not_reported": len(self.writer.displaced),
        }


def _ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(select(literal(1))).scalar_one()
