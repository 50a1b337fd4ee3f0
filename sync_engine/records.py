"""Small state-store operations the engine repeats: dead letters, audit events,
match keys, snapshots and outbox rows."""
from __future__ import annotations

import bisect
import contextlib
import functools
import os
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Collection, Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import TextClause, delete, func, select, text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from mapping.canonical import canonical_field_equal, canonical_hash

from .matching import Candidate, KeySpec, core_key_field, keys_of, weak_fields
from .merge import values_equal
from .state import bulk
from .state.models import AuditEvent, DeadLetter, Link, Record, Snapshot
from .state.models.enums import DeadLetterStage, Origin, SnapshotAction
from .state.models.pipeline import LINKED_LEN, MatchKey, OutboxWrite
from .state.types import utc_now


class unindexed(ColumnElement):  # lower case: it reads as a function in a where clause
    """A column whose own index must not drive the query (SQLite: ``+column``, a no-op operator).

    Without statistics (no ANALYZE: a state database is never analysed) SQLite guesses that
    an equality on an index's first column finds about ten rows. For ``outbox.status = 'done'``
    that is every write ever made: a query for a batch's records (``canonical_id IN (…)``)
    would walk all of them instead of the record index, and every batch of a first sync would
    cost more than the one before. PostgreSQL keeps statistics and needs no hint."""

    inherit_cache = True
    _traverse_internals: ClassVar = [("column", InternalTraversal.dp_clauseelement)]

    def __init__(self, column: Any) -> None:
        self.column = column
        self.type = column.type


@compiles(unindexed)
def _unindexed(element: unindexed, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.column, **kw)


@compiles(unindexed, "sqlite")
def _unindexed_sqlite(element: unindexed, compiler: Any, **kw: Any) -> str:
    return "+" + compiler.process(element.column, **kw)


def new_canonical_id() -> str:
    """A UUID version 7 (RFC 9562) as 32 hex digits: the creation time in milliseconds, then 74 random bits.

    Time first, so the records a batch creates sort together: each index keyed by canonical id (records,
    links, snapshots, outbox, match keys) takes them at its end, on a few pages, instead of one random
    page each (uuid4). A first sync of 20,000 accounts spent 30 % less time inside SQLite
    (bench/engine.py --sql-time), and the gap grows with the index. The 74 random bits keep ids
    unguessable and unique across workers."""
    value = time.time_ns() // 1_000_000 << 80 | int.from_bytes(os.urandom(10), "big")
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # RFC 9562 variant
    return f"{value:032x}"


def field_equality(model: str) -> Callable[[str, Any, Any], bool]:
    """Equality of one canonical field: null == "" and Decimal scale does not matter."""

    def equal(field: str, a: Any, b: Any) -> bool:
        return values_equal(a, b) or canonical_field_equal(field, a, b, model)

    return equal


#: Value types a hash can be reused for while the very same objects are held (they cannot change in place).
_IMMUTABLE = frozenset({str, int, float, bool, type(None), Decimal})
#: Types whose equal values (of the same type) have one and the same canonical form. Not float
#: (0.0 == -0.0, written differently) nor Decimal (compared by identity only).
_BY_VALUE = frozenset({str, int, bool})


def _same_values(known: Mapping[str, Any], values: Mapping[str, Any]) -> bool:
    if known.keys() != values.keys():
        return False
    for f, v in known.items():
        w = values[f]
        if w is not v and not (type(w) is type(v) and type(v) in _BY_VALUE and w == v):
            return False
    return True


def hash_memo(model: str) -> Callable[[Mapping[str, Any]], str]:
    """``canonical_hash(values, model)``, computed once for mappings of the same keys whose values are
    the very same immutable objects, or equal strings and integers: a record's merged values and the
    snapshot of the read that set them are usually two such dicts, hashed one after the other."""
    seen: list[tuple[dict[str, Any], str]] = []

    def hash_of(values: Mapping[str, Any]) -> str:
        for known, digest in seen:
            if _same_values(known, values):
                return digest
        digest = canonical_hash(values, model)
        if all(type(v) in _IMMUTABLE for v in values.values()):
            seen.append((dict(values), digest))
        return digest

    return hash_of


def dead_letter(
    session: Session,
    *,
    entity: str | None,
    flow: str | None,
    system: str | None,
    object: str | None,
    external_id: str | None,
    canonical_id: str | None,
    stage: DeadLetterStage,
    code: str | None,
    message: str,
    payload: Mapping[str, Any],
    attempts: int = 1,
    run_id: int | None = None,
) -> DeadLetter:
    row = DeadLetter(
        entity=entity,
        flow=flow,
        system=system,
        object=object,
        external_id=external_id,
        canonical_id=canonical_id,
        stage=stage,
        code=code,
        message=message,
        payload=dict(payload),
        attempts=attempts,
        run_id=run_id,
        lock_key=f"{entity}:{system}:{external_id}" if external_id else (f"{entity}:{canonical_id}" if canonical_id else None),
    )
    session.add(row)
    return row


#: session.info key of the rows a batch collects (see :func:`batched_inserts`)
BUFFER = "crmsync_batched_inserts"


class NewRow:
    """A row made during a batch and inserted with its kind at the batch's end. Until then it
    is read and changed like the ORM object it stands for (``status``, ``values``…).

    Its attributes are its ``fields`` dict itself (the instance's ``__dict__``): reading or setting
    one is a plain attribute access, and changes land in ``fields``."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.__dict__ = fields

    @property
    def fields(self) -> dict[str, Any]:
        return self.__dict__


def load_rows(session: Session, query: Any) -> list[NewRow]:
    """The rows of a Core query as plain mutable rows: for batches that read many rows and change
    a few columns (:func:`save_rows` writes them back), without an ORM object each."""
    # On the session's connection: a Core query needs none of the ORM's result handling.
    result = session.connection().execute(query)
    keys = list(result.keys())
    return [NewRow(dict(zip(keys, row))) for row in result.all()]


def save_rows(session: Session, model: Any, rows: list[NewRow], columns: list[str]) -> None:
    """Write ``columns`` of ``rows`` back by id: one executemany UPDATE."""
    bulk.update_rows(session, model.__table__, "id", columns, [r.fields for r in rows])


class Buffer:
    def __init__(self) -> None:
        # Inserted in this order: records first (links and snapshots reference them).
        self.rows: dict[Any, list[dict[str, Any]]] = {Record: [], Link: [], Snapshot: [], OutboxWrite: [], AuditEvent: []}

    def add(self, model: Any, fields: dict[str, Any]) -> NewRow:
        self.rows[model].append(fields)
        return NewRow(fields)

    def write(self, session: Session) -> None:
        for model, rows in self.rows.items():
            bulk.insert_rows(session, model.__table__, rows)


def buffer_of(session: Session) -> Buffer | None:
    return session.info.get(BUFFER)


@contextlib.contextmanager
def batched_inserts(session: Session) -> Iterator[None]:
    """New records, links, snapshots, outbox rows and audit events made inside the block go in with one
    multi-row INSERT per table at its end (same transaction) instead of one ORM object each.
    Nothing inside the block queries them back; it keeps the objects it made."""
    if BUFFER in session.info:
        yield  # an outer block writes them
        return
    buffer = Buffer()
    session.info[BUFFER] = buffer
    try:
        yield
    finally:
        session.info.pop(BUFFER, None)
    buffer.write(session)


def audit(
    session: Session,
    kind: str,
    *,
    entity: str,
    canonical_id: str | None,
    system: str | None = None,
    object: str | None = None,
    external_id: str | None = None,
    origin: str | None = None,
    run_id: int | None = None,
    details: Mapping[str, Any] | None = None,
    api_call: Mapping[str, Any] | None = None,
) -> None:
    row = {
        "kind": kind,
        "entity": entity,
        "canonical_id": canonical_id,
        "system": system,
        "object": object,
        "external_id": external_id,
        "origin": Origin._value2member_map_.get(origin),  # Origin(origin), or None for another value
        "run_id": run_id,
        "details": dict(details or {}),
        "api_call": dict(api_call) if api_call else None,
        "at": utc_now(),
    }
    buffer = buffer_of(session)
    if buffer is not None:
        buffer.add(AuditEvent, row)
    else:
        session.add(AuditEvent(**row))


def linked_text(systems: Collection[str]) -> str:
    """``match_keys.linked`` for a record with links in ``systems``: " a b ", or "" for none.

    The column promises only that the record is linked in each system it names (links are never
    removed), so names that would not fit are left out rather than cut."""
    text = " "
    for system in sorted(systems):
        if " " in system:
            continue  # names are separated by spaces (config keys may hold one: such a name is not listed)
        if len(text) + len(system) + 1 > LINKED_LEN:
            break
        text += system + " "
    return text if text != " " else ""


def linked_filter(dialect: str, system: str) -> ColumnElement[bool] | None:
    """Keys whose ``linked`` does not name ``system`` (a plain substring test: LIKE would read ``_`` as
    a wildcard and, on SQLite, ignore case). None for a name with a space, which the column never lists
    (" a b " would read as the system "a b")."""
    if " " in system:
        return None
    needle = f" {system} "
    position = func.instr(MatchKey.linked, needle) if dialect == "sqlite" else func.strpos(MatchKey.linked, needle)
    return position == 0


def replace_match_keys_many(
    session: Session, entity: str, specs: list[KeySpec], values_by_id: Mapping[str, Mapping[str, Any]],
    *, new: Collection[str] = (), linked: Mapping[str, Collection[str]] | None = None,
) -> None:
    """Re-index the keys of many records: one DELETE per chunk and one multi-row INSERT.
    ``new``: records created in this transaction, which have no keys to delete yet.
    ``linked``: canonical id -> the systems it has links in (any status), for ``match_keys.linked``;
    a record left out gets "" (its namesakes' links are then checked one by one, as before)."""
    ids = [cid for cid in values_by_id if cid not in new]
    keys = MatchKey.__table__
    for part in chunks(ids):
        session.connection().execute(delete(keys).where(keys.c.entity == entity, keys.c.canonical_id.in_(part)))
    linked = linked or {}
    rows = []
    for cid, values in values_by_id.items():
        systems = linked_text(linked.get(cid, ()))
        rows.extend(
            {"entity": entity, "field": field, "value": key[:255], "canonical_id": cid, "linked": systems}
            for field, key in keys_of(specs, values).items()
        )
    bulk.insert_rows(session, MatchKey.__table__, rows)


#: Ids per ``IN (…)`` list: well under every database's limit on bound parameters.
IN_CHUNK = 500


def chunks(items: list, size: int = IN_CHUNK):
    for start in range(0, len(items), size):
        yield items[start : start + size]


#: Name blocks per similar-names statement (SQLite allows 500 terms in a compound SELECT).
SIMILAR_PER_QUERY = 64


@functools.cache
def _similar_names_sql() -> TextClause:
    """The first FUZZY_CANDIDATES keys of each of SIMILAR_PER_QUERY name blocks, one UNION ALL.

    A range, not LIKE: SQLite's LIKE ignores the index (case-insensitive), a range uses it.
    """
    branch = (
        "SELECT {i} AS k, value, canonical_id FROM (SELECT value, canonical_id FROM match_keys"
        " WHERE entity = :entity AND field = :f{i} AND value >= :lo{i} AND value < :hi{i}"
        " ORDER BY value, canonical_id LIMIT {limit}) AS s{i}"
    )
    return text(" UNION ALL ".join(branch.format(i=i, limit=FUZZY_CANDIDATES) for i in range(SIMILAR_PER_QUERY)))


def _keys_of_records_sql(dialect: str, ids: int, fields: int) -> str:
    """The match keys of some records (:func:`bulk.select_rows`). On SQLite through the record index
    by name: without statistics it prefers the primary key (entity first, covering) and reads every
    key of the entity, which makes each batch of a first sync slower than the last (see :class:`unindexed`)."""
    table = "match_keys INDEXED BY ix_match_keys_record" if dialect == "sqlite" else "match_keys"
    return (
        f"SELECT canonical_id, field, value FROM {table} WHERE entity = ?"
        f" AND canonical_id IN ({bulk.placeholders(ids)}) AND field IN ({bulk.placeholders(fields)})"
    )


def _systems_of_records_sql(ids: int) -> str:
    return f"SELECT canonical_id, system FROM links WHERE entity = ? AND canonical_id IN ({bulk.placeholders(ids)})"


class MatchIndex:
    """First-sync matching for a whole batch: what its unlinked records could match is read
    up front in a few queries (not three per record), and the records the batch creates are
    added as they are made, so a later record of the batch matches them just the same.

    Equivalent to querying ``match_keys`` before each record: the exact keys, up to
    :data:`FUZZY_CANDIDATES` similar names (the first by value, as the index returns them),
    each candidate's keys, and the systems it has an active link in.
    """

    def __init__(self, session: Session, entity: str, specs: list[KeySpec]) -> None:
        self.session = session
        self.entity = entity
        self.weak = weak_fields(specs)  # name keys and the cores searched for similar names
        #: the keys a candidate is scored on (matching.decide): not the cores, which only find candidates
        self.scored = sorted({s.field for s in specs})
        #: the keys that are names: a weak key and every core of one (``keys_of`` keys every company name's
        #: core, whether or not its blocks are searched). Namesakes are looked up on these by system.
        self.weak_set = frozenset(self.weak) | {core_key_field(s.field) for s in specs if not s.strong}
        #: name field -> its core, where the core is a function of the name's key alone (a region-stripped
        #: name's core is that key trimmed, see matching.keys_of): records with an equal name key have an
        #: equal core, so looking the name up finds nothing its core does not. Each lookup of a name walks
        #: its namesakes in SQLite (see prefetch), so the redundant one doubled the cost of common names.
        self.core_of = {
            s.field: core_key_field(s.field) for s in specs if not s.strong and s.normalizer == "company_name_no_region"
        }
        #: (field, key) -> ids: strong keys read from the table, and every key of the records this batch created
        self.exact: dict[tuple[str, str], set[str]] = defaultdict(set)
        #: (system, field, key) -> ids: weak keys (names) read from the table for a record of that system
        self.exact_weak: dict[tuple[str | None, str, str], set[str]] = defaultdict(set)
        #: (field, first two characters) -> sorted (value, canonical id), the first FUZZY_CANDIDATES
        self.similar: dict[tuple[str, str], list[tuple[str, str]]] = {}
        self.keys: dict[str, dict[str, str]] = defaultdict(dict)
        self.systems: dict[str, set[str]] = defaultdict(set)
        #: (field, key, canonical id) of the records this batch created
        self.added: list[tuple[str, str, str]] = []

    def prefetch(self, wanted: list[Mapping[str, str]], system: str | None = None) -> None:
        """Read what records of ``system`` with these keys could match.

        Records with an equal *name* that already have a record in ``system`` are left out: they cannot
        take another record of that system on a name (``matching.decide`` skips them unless a strong key is
        equal, and then the strong key finds them). A common name shared by thousands of records would
        otherwise make every batch read them all, and a first sync quadratic in the number of records.
        """
        entity = self.entity
        by_field: dict[str, set[str]] = defaultdict(set)
        prefixes: set[tuple[str, str]] = set()
        core_of = self.core_of
        for mine in wanted:
            for field, value in mine.items():
                core = core_of.get(field)
                if core is not None and core in mine and len(value) < 255:
                    # Found through its core (see core_of). A key of 255 characters or more is stored cut
                    # short, and an equal cut-short key does not mean an equal core: that one is looked up.
                    continue
                by_field[field].add(value[:255])
            for field in self.weak:
                if len(mine.get(field, "")) >= 2:
                    prefixes.add((field, mine[field][:2]))
        ids: set[str] = set()
        dialect = self.session.get_bind().dialect.name
        for field, values in by_field.items():
            weak = field in self.weak_set
            for part in chunks(sorted(values)):
                query = (
                    select(MatchKey.value, MatchKey.canonical_id)
                    .where(MatchKey.entity == entity, MatchKey.field == field, MatchKey.value.in_(part))
                )
                if weak and system is not None:
                    # Every link counts, deleted ones too (as in self.systems below). Most namesakes of a
                    # common name are ruled out by their key's `linked` (read from the key's own index
                    # entry); the rest by their links. The subquery selects an indexed column, not `*`:
                    # SQLite then answers each namesake from the index alone instead of also reading its
                    # link row (a random page of a large table, per namesake).
                    by_column = linked_filter(dialect, system)
                    if by_column is not None:
                        query = query.where(by_column)
                    query = query.where(~select(Link.canonical_id).where(
                        Link.entity == MatchKey.entity, Link.canonical_id == MatchKey.canonical_id, Link.system == system,
                    ).exists())
                for value, cid in self.session.connection().execute(query).all():
                    if weak:
                        self.exact_weak[(system, field, value)].add(cid)
                    else:
                        self.exact[(field, value)].add(cid)
                    ids.add(cid)
        # A block read before is complete: what the batch created since was added to it (see add()).
        blocks = sorted(b for b in prefixes if b not in self.similar)
        for part in chunks(blocks, SIMILAR_PER_QUERY):
            # One statement for many name blocks; padded to a fixed size so it is the same statement every time.
            padded = part + [part[-1]] * (SIMILAR_PER_QUERY - len(part))
            params: dict[str, str] = {"entity": entity}
            for i, (field, prefix) in enumerate(padded):
                params.update({f"f{i}": field, f"lo{i}": prefix, f"hi{i}": prefix + "\U0010ffff"})
            found: dict[int, list[tuple[str, str]]] = defaultdict(list)
            for k, value, cid in self.session.connection().execute(_similar_names_sql(), params).all():
                found[k].append((value, cid))
                ids.add(cid)
            for i, (field, prefix) in enumerate(part):
                # Records this batch created are not in the table yet (written at its end).
                made = [(v, c) for f, v, c in self.added if f == field and v.startswith(prefix)]
                self.similar[(field, prefix)] = sorted(found.get(i, []) + made)[:FUZZY_CANDIDATES]
        for part in chunks(sorted(ids)):
            # Straight to the driver: SQLAlchemy would expand and process the ids one by one each time.
            for cid, field, value in bulk.select_rows(
                self.session, _keys_of_records_sql(dialect, len(part), len(self.scored)), [entity, *part, *self.scored]
            ) if self.scored else ():
                self.keys[cid][field] = value
            # Every link counts, deleted ones too: a record keeps one link per system (a unique key), so
            # one whose copy there was deleted cannot take another record of that system without a person.
            for cid, linked_in in bulk.select_rows(self.session, _systems_of_records_sql(len(part)), [entity, *part]):
                self.systems[cid].add(linked_in)

    def add(self, canonical_id: str, keys: Mapping[str, str]) -> None:
        """A record this batch created: later records of the batch may match it."""
        for field, value in keys.items():
            value = value[:255]
            self.added.append((field, value, canonical_id))
            self.exact[(field, value)].add(canonical_id)
            if field in self.scored:
                self.keys[canonical_id][field] = value
            if field in self.weak and len(value) >= 2:
                similar = self.similar.get((field, value[:2]))
                if similar is not None:
                    bisect.insort(similar, (value, canonical_id))
                    del similar[FUZZY_CANDIDATES:]

    def candidates(self, mine: Mapping[str, str], system: str | None = None) -> list[Candidate]:
        """``system``: the one the record comes from, as given to :meth:`prefetch`."""
        if not mine:
            return []
        ids: set[str] = set()
        for field, value in mine.items():
            ids.update(self.exact.get((field, value[:255]), ()))
            if field in self.weak_set:
                ids.update(self.exact_weak.get((system, field, value[:255]), ()))
        for field in self.weak:
            value = mine.get(field, "")
            if len(value) >= 2:
                ids.update(cid for _, cid in self.similar.get((field, value[:2]), ()))
        # The keys are shared, not copied: a candidate's keys are only read (matching.decide).
        empty: dict[str, str] = {}
        keys, systems = self.keys, self.systems
        return [Candidate(cid, keys.get(cid, empty), set(systems.get(cid, ()))) for cid in sorted(ids)]


#: How many similar-name records a match looks at, at most.
FUZZY_CANDIDATES = 20


def save_snapshot(
    session: Session,
    *,
    entity: str,
    canonical_id: str,
    system: str,
    values: Mapping[str, Any],
    modified_at: datetime | None,
    action: SnapshotAction,
    op_key: str | None = None,
    hash_of: Callable[[Mapping[str, Any]], str],
    existing: Snapshot | None = None,
    look_up: bool = True,
    read_started: datetime | None = None,
    source_hash: str | None = None,
) -> Snapshot:
    """Merge ``values`` into the system's snapshot. ``look_up=False``: the caller knows there is none
    unless it passed ``existing`` (it read them all in one query). ``read_started``: when the read began;
    ``read_at`` keeps the latest start of a read merged (what any write sent before it may show).
    ``source_hash``: the version's content hash (``pull.version_hash``), kept with ``modified_at``."""
    snap = existing if existing is not None or not look_up else session.get(Snapshot, (entity, canonical_id, system))
    now = utc_now()
    merged = {**(snap.values if snap else {}), **values}
    if snap is None:
        fields = {"entity": entity, "canonical_id": canonical_id, "system": system, "values": merged,
                  "hash": hash_of(merged), "source_modified_at": None, "source_hash": None, "read_at": None, "written_at": None,
                  "last_op_key": None, "updated_at": now}
        buffer = buffer_of(session)
        if buffer is not None:
            snap = buffer.add(Snapshot, fields)
        else:
            snap = Snapshot(**fields)
            session.add(snap)
    else:
        snap.values = merged
        snap.hash = hash_of(merged)
    if modified_at is not None:
        snap.source_modified_at = modified_at
        snap.source_hash = source_hash
    snap.last_action = action
    if action == SnapshotAction.READ:
        started = read_started or now
        snap.read_at = started if snap.read_at is None or snap.read_at < started else snap.read_at
    else:
        snap.written_at = now
        snap.last_op_key = op_key
    return snap


def queue_write(
    session: Session,
    *,
    entity: str,
    canonical_id: str,
    system: str,
    object: str,
    action: str,
    external_id: str | None,
    values: Mapping[str, Any],
    flow: str,
    origin: str,
    run_id: int | None,
) -> OutboxWrite:
    fields = {
        "op_key": f"{entity}:{canonical_id}:{system}:{uuid.uuid4().hex[:12]}",
        "entity": entity,
        "canonical_id": canonical_id,
        "system": system,
        "object": object,
        "action": action,
        "external_id": external_id,
        "values": dict(values),
        "status": "pending",
        "attempts": 0,
        "flow": flow,
        "origin": origin,
        "run_id": run_id,
        "created_at": utc_now(),
    }
    buffer = buffer_of(session)
    if buffer is not None:
        return buffer.add(OutboxWrite, fields)
    row = OutboxWrite(**fields)
    session.add(row)
    return row
