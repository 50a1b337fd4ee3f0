"""Change detection by content hash, for tables and views without a modified column.

The approach of Fxiaoke's DB connector (``sync_obj_record``, erp.md §2.1): read
the whole table in key order, hash each row (with its lines), compare with the
hash kept from the last scan, and report only new and changed rows.

Where the hashes live — a choice made explicit in settings (``hash_state``):
a small table ``crmsync_row_hash`` (name and schema configurable) that crmsync
creates and owns. By default it sits in the ERP connection's database because
that is the only database the connector is guaranteed to reach; ``hash_state.url``
moves it into another database (crmsync's own) when the ERP account must not
create anything. It never shares a name with a configured table (settings check).

A row's new hash is stored only after the engine has taken the page that
reported it (the generator resumes after ``yield`` only once the engine asks
for the next page), so a crash between reading and committing re-reports the
row instead of losing it.

Absence is not deletion: a row missing from a scan may be hidden by a view's
filter, a permission or an archive job. Rows that vanished are reported as
tombstones only with ``detect_deletes_by_absence``, only after a complete,
un-resumed scan, and never when the scan saw nothing or lost more than
``absence_guard_fraction`` of the known rows at once.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime, MetaData, String, Table, delete, insert, inspect, select
from sqlalchemy.engine import Connection, Engine

from connectors.base import Page, PullRequest, SourceRecord
from connectors.errors import ConnectorConfigError, ConnectorError

from .database import Database
from .keys import MAX_PARAMS
from .reader import TOKEN_VERSION, Reader
from .settings import HashStateSettings
from .tables import ReadModel
from .values import content_hash, from_json, to_json

#: Below this many vanished rows the absence guard does not trip (small tables lose rows for real).
ABSENCE_GUARD_MIN_ROWS = 10


def hash_table(settings: HashStateSettings) -> Table:
    return Table(
        settings.table,
        MetaData(schema=settings.db_schema),
        Column("system_name", String(100), primary_key=True, comment="crmsync system name"),
        Column("object_name", String(100), primary_key=True, comment="crmsync object name"),
        Column("row_key", String(400), primary_key=True, comment="row key as crmsync's external id"),
        Column("row_hash", String(64), nullable=False, comment="SHA-256 of the row's values"),
        Column("changed_at", DateTime, nullable=False, comment="UTC time the hash last changed"),
        comment="crmsync: content hash per ERP row, for change detection on tables without a modified column",
        mysql_charset="utf8mb4",
    )


class HashStore:
    """The hash table of one system."""

    def __init__(self, system: str, settings: HashStateSettings, db: Database) -> None:
        self.system = system
        self.settings = settings
        self.db = db
        self.table = hash_table(settings)
        self._ready = False

    async def ensure(self) -> None:
        if not self._ready:
            await self.db.run("hash_state:create", self._ensure)
            self._ready = True

    def _ensure(self, engine: Engine) -> None:
        if self.settings.create:
            self.table.create(engine, checkfirst=True)
            return
        if not inspect(engine).has_table(self.table.name, schema=self.table.schema):
            raise ConnectorConfigError(
                f"hash_state.table {self.table.fullname!r} does not exist and hash_state.create is off", system=self.system
            )

    def _mine(self, object_name: str) -> list[Any]:
        t = self.table.c
        return [t.system_name == self.system, t.object_name == object_name]

    async def load(self, object_name: str, keys: list[str]) -> dict[str, str]:
        def run(engine: Engine) -> dict[str, str]:
            found: dict[str, str] = {}
            t = self.table.c
            with engine.connect() as conn:
                for part in _chunks(keys):
                    stmt = select(t.row_key, t.row_hash).where(*self._mine(object_name), t.row_key.in_(part))
                    found.update({row.row_key: row.row_hash for row in conn.execute(stmt)})
            return found

        return await self.db.run("hash_state:load", run)

    async def save(self, object_name: str, hashes: dict[str, str]) -> None:
        """Replace the hashes of these rows (delete + insert: portable to every dialect, one transaction)."""
        now = datetime.now(UTC).replace(tzinfo=None)
        keys = list(hashes)

        def run(engine: Engine) -> None:
            with engine.begin() as conn:
                self._delete(conn, object_name, keys)
                conn.execute(
                    insert(self.table),
                    [
                        {"system_name": self.system, "object_name": object_name, "row_key": k, "row_hash": h, "changed_at": now}
                        for k, h in hashes.items()
                    ],
                )

        if keys:
            await self.db.run("hash_state:save", run)

    async def remove(self, object_name: str, keys: list[str]) -> None:
        def run(engine: Engine) -> None:
            with engine.begin() as conn:
                self._delete(conn, object_name, keys)

        if keys:
            await self.db.run("hash_state:remove", run)

    def _delete(self, conn: Connection, object_name: str, keys: list[str]) -> None:
        for part in _chunks(keys):
            conn.execute(delete(self.table).where(*self._mine(object_name), self.table.c.row_key.in_(part)))

    async def known_keys(self, object_name: str) -> set[str]:
        def run(engine: Engine) -> set[str]:
            with engine.connect() as conn:
                return set(conn.execute(select(self.table.c.row_key).where(*self._mine(object_name))).scalars())

        return await self.db.run("hash_state:keys", run)


def _chunks(keys: list[str]) -> list[list[str]]:
    return [keys[start : start + MAX_PARAMS] for start in range(0, len(keys), MAX_PARAMS)]


class HashScanner:
    def __init__(self, system: str, reader: Reader, store: HashStore) -> None:
        self.system = system
        self.reader = reader
        self.store = store

    async def pull(self, model: ReadModel, request: PullRequest) -> AsyncIterator[Page]:
        """Scan the table; ``request.since`` does not apply (there is no time to compare with)."""
        await self.store.ensure()
        resumed = request.resume is not None
        if resumed:
            token = request.resume
            if token.get("object") != model.name or token.get("mode") != "hash" or token.get("v") != TOKEN_VERSION:
                raise ConnectorError(f"resume token does not belong to a hash scan of {model.name!r}", system=self.system)
            after_k = [from_json(v) for v in token["k"]] if token["k"] is not None else None
            scan_time = datetime.fromisoformat(token["scan"])
        else:
            after_k, scan_time = None, datetime.now(UTC)
        track_absence = model.settings.detect_deletes_by_absence and request.include_deleted and not resumed
        wanted = {name for name, _ in model.field_subset(tuple(request.fields))} | set(model.details) if request.fields else None
        seen: set[str] = set()
        while True:
            records, last_k, rows = await self.reader.db.run(
                f"scan:{model.name}", lambda engine: self.reader.key_page(engine, model, after_k, model.page_size)
            )
            if rows == 0:
                break
            after_k = last_k
            hashes = {r.external_id: content_hash(r.data) for r in records}
            if track_absence:
                seen.update(hashes)
            stored = await self.store.load(model.name, list(hashes))
            changed = [
                r for r in records
                if stored.get(r.external_id) != hashes[r.external_id] and (request.include_deleted or not r.deleted)
            ]
            if changed:
                for record in changed:
                    # The detection time stands in for the missing modified time: it grows, so
                    # (id, modified) de-duplication downstream never mistakes a new change for an old one.
                    record.modified_at = scan_time
                    if wanted is not None:
                        record.data = {k: v for k, v in record.data.items() if k in wanted}
                resume = {"v": TOKEN_VERSION, "object": model.name, "mode": "hash",
                          "k": [to_json(v) for v in last_k], "scan": scan_time.isoformat()}
                yield Page(records=changed, resume=resume)
                await self.store.save(model.name, {r.external_id: hashes[r.external_id] for r in changed})
            if rows < model.page_size:
                break
        if track_absence:
            async for page in self._vanished(model, seen, scan_time):
                yield page

    async def _vanished(self, model: ReadModel, seen: set[str], scan_time: datetime) -> AsyncIterator[Page]:
        known = await self.store.known_keys(model.name)
        gone = sorted(known - seen)
        if not gone:
            return
        fraction = model.settings.absence_guard_fraction
        if not seen or (len(gone) >= ABSENCE_GUARD_MIN_ROWS and len(gone) > fraction * len(known)):
            raise ConnectorError(
                f"{model.name}: {len(gone)} of {len(known)} known rows vanished in one scan; not reporting them as "
                f"deleted (more than absence_guard_fraction={fraction}). Check the table/view and its filter; "
                "raise the fraction if the deletions are real",
                code="absence_guard",
                system=self.system,
            )
        codec = self.reader.codec(model)
        key_fields = {column.name: name for name, column in model.fields}
        for start in range(0, len(gone), model.page_size):
            chunk = gone[start : start + model.page_size]
            tombstones = []
            for external_id in chunk:
                values = codec.decode(external_id)
                data = {key_fields.get(c.name, c.name): v for c, v in zip(model.key, values, strict=True)}
                tombstones.append(
                    SourceRecord(object=model.name, external_id=external_id, modified_at=scan_time, data=data, deleted=True)
                )
            yield Page(records=tombstones, resume=None)
            await self.store.remove(model.name, chunk)
