"""Turn staged changes into canonical records and decided writes.

For a batch of staged changes (in one transaction): map each to canonical
values, find its canonical record (link, or first-sync matching), merge field by
field with what the other systems last held, record conflicts, update the base
and the source snapshots, and queue in the outbox exactly the writes each other
system needs — only the fields that differ from what that system holds. The
outbox rows commit with the merge, before anything is sent.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mapping.errors import MappingError
from mapping.references import MissingLink, UnresolvedReference

from . import derive, notified as notices, records as rec
from .context import Report
from .links import LinkResolver
from .matching import KeySpec, decide, default_keys, keys_of
from .merge import Observation, Snapshot as MergeSnapshot, merge
from .runtime import Runtime
from .state.models import Conflict, Link, Record, Review, Snapshot
from .state.models.enums import DeadLetterStage, LinkStatus, ReviewKind, ReviewStatus, SnapshotAction
from .state.models.pipeline import OutboxWrite, StagedChange
from .state.types import utc_now

STRONG_NORMALIZERS = {"tax_id", "domain", "email", "phone"}


@dataclass
class BatchOutcome:
    missing: list[MissingLink] = field(default_factory=list)
    touched: int = 0


class BatchCache:
    """Everything one batch reads about its records, fetched in a handful of queries
    instead of a dozen per record; new rows are added here as they are created."""

    def __init__(self, session: Session, entity: str) -> None:
        self.session = session
        self.entity = entity
        self.links_by_ext: dict[tuple[str, str, str], Link] = {}
        self.records: dict[str, Record] = {}
        self.snapshots: dict[str, dict[str, Snapshot]] = defaultdict(dict)
        self.links: dict[str, dict[str, Link]] = defaultdict(dict)
        self.frozen: dict[str, set[str]] = defaultdict(set)
        self.outbox: dict[tuple[str, str, str], list[OutboxWrite]] = defaultdict(list)
        #: (canonical id, system) -> (sent_at, values) of updates we attempted, whose answer was lost, and that
        #: a later plan superseded before they were sent again: they may have landed all the same
        self.superseded_attempts: dict[tuple[str, str], list[tuple[Any, dict[str, Any]]]] = defaultdict(list)
        #: (canonical id, system) -> (done_at, canonical fields) of our writes completed after a read began
        self.late_writes: dict[tuple[str, str], list[tuple[Any, list[str]]]] = defaultdict(list)
        #: reads whose version must not count as seen (they disagreed with a later write of ours)
        self.unsettled: set[int] = set()
        #: systems not read in this pass: creates into them wait (their twin may not be staged yet)
        self.hold_creates: frozenset[str] = frozenset()
        #: canonical records created by this batch (not flushed until its matching is done)
        self.new_records: dict[str, Record] = {}
        self.matcher: rec.MatchIndex | None = None
        #: canonical id -> merged values whose match keys must be rewritten at the end of the batch
        self.rekey: dict[str, dict[str, Any]] = {}
        self.key_fields: set[str] = set()
        #: id(staged change) -> its match keys, computed once for the batch's prefetch
        self.keys: dict[int, dict[str, str]] = {}
        #: (canonical id, system) -> the values of our create in doubt that a record just linked there answers
        self.sent: dict[tuple[str, str], dict[str, Any]] = {}
        #: (canonical id, system) of the links this batch made
        self.linked_now: set[tuple[str, str]] = set()
        #: canonical id -> change notifications that carried values, waiting to be weighed (see notified.py)
        self.notified: dict[str, list] = {}
        #: ids of the notifications weighed for good by this batch (deleted at its end)
        self.notified_done: list[int] = []

    def load_links_of(self, changes: list[StagedChange]) -> None:
        by_object: dict[tuple[str, str], list[str]] = defaultdict(list)
        for change in changes:
            by_object[(change.system, change.object)].append(change.external_id)
        for (system, object), ids in by_object.items():
            for link in self.session.scalars(
                select(Link).where(Link.system == system, Link.object == object, Link.external_id.in_(ids))
            ):
                self.links_by_ext[(system, object, link.external_id)] = link

    def add_link(self, **fields: Any) -> Link:
        # Inserted with the batch's other new rows at its end (rec.batched_inserts).
        now = utc_now()
        link = rec.buffer_of(self.session).add(Link, {**fields, "created_at": now, "last_synced_at": None})
        self.links_by_ext[(link.system, link.object, link.external_id)] = link
        self.links[link.canonical_id][link.system] = link
        self.linked_now.add((link.canonical_id, link.system))
        return link

    def add_record(self, canonical_id: str) -> None:
        # Inserted at the batch's end with its merged values (one INSERT, no UPDATE after it).
        now = utc_now()
        record = rec.buffer_of(self.session).add(Record, {
            "entity": self.entity, "canonical_id": canonical_id, "values": {}, "hash": None, "version": 1,
            "deleted": False, "deleted_at": None, "created_at": now, "updated_at": now,
        })
        self.records[canonical_id] = record
        self.new_records[canonical_id] = record

    def load_records(self, cids: list[str]) -> None:
        wanted = [c for c in cids if c not in self.records]
        entity = self.entity
        if wanted:
            query = select(Record).where(Record.entity == entity, Record.canonical_id.in_(wanted))
            if self.session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update()
            for record in self.session.scalars(query):
                self.records[record.canonical_id] = record
        for snap in self.session.scalars(
            select(Snapshot).where(Snapshot.entity == entity, Snapshot.canonical_id.in_(cids))
        ):
            self.snapshots[snap.canonical_id].setdefault(snap.system, snap)
        for link in self.session.scalars(select(Link).where(Link.entity == entity, Link.canonical_id.in_(cids))):
            self.links[link.canonical_id].setdefault(link.system, link)
        for review in self.session.scalars(
            select(Review).where(
                Review.kind == ReviewKind.CONFLICT, Review.status == ReviewStatus.OPEN,
                Review.entity == entity, Review.canonical_id.in_(cids),
            )
        ):
            field = (review.details or {}).get("field")
            if field:
                self.frozen[review.canonical_id].add(field)
        for row in self.session.scalars(
            select(OutboxWrite).where(
                OutboxWrite.entity == entity, OutboxWrite.canonical_id.in_(cids),
                rec.unindexed(OutboxWrite.status).in_(("pending", "sent", "deferred")),
            )
        ):
            self.outbox[(row.canonical_id, row.system, row.action)].append(row)
        for canonical_id, system, values, sent_at in self.session.connection().execute(
            select(OutboxWrite.canonical_id, OutboxWrite.system, OutboxWrite.values, OutboxWrite.sent_at).where(
                OutboxWrite.entity == entity, OutboxWrite.canonical_id.in_(cids), OutboxWrite.action == "update",
                rec.unindexed(OutboxWrite.status) == "superseded", OutboxWrite.attempts > 0,
                OutboxWrite.sent_at.is_not(None),
            )
        ):
            self.superseded_attempts[(canonical_id, system)].append((sent_at, values or {}))

    def load_late_writes(self, groups: dict[str, list[tuple[StagedChange, Any]]]) -> None:
        """Our writes completed since the earliest of these reads started (see _with_our_later_writes)."""
        started = [c.staged_at for items in groups.values() for c, v in items if v is not None and c.staged_at]
        if not started:
            return
        for cid, system, values, done_at in self.session.connection().execute(
            select(OutboxWrite.canonical_id, OutboxWrite.system, OutboxWrite.values, OutboxWrite.done_at).where(
                OutboxWrite.entity == self.entity, OutboxWrite.canonical_id.in_(list(groups)),
                rec.unindexed(OutboxWrite.status) == "done", OutboxWrite.done_at >= min(started),
            )
        ):
            self.late_writes[(cid, system)].append((done_at, list(values or {})))


#: How long after an attempt a write may still land (a call's timeout and its retries are well within it).
LANDING_WINDOW = timedelta(minutes=5)


def match_specs(rt: Runtime, entity: str) -> list[KeySpec]:
    configured = rt.mappings.match_keys(entity)
    if configured:
        return [KeySpec(f, n or "person_name", (n or "") in STRONG_NORMALIZERS) for f, n in configured]
    model = rt.mappings.models.get(entity, entity)
    return default_keys({"SalesOrder": "sales_order"}.get(model, model.lower()))


def write_targets(rt: Runtime, flow_name: str) -> list[str]:
    flow = rt.flow(flow_name)
    return [s for s in flow.systems if not (flow.direction == "one_way" and s == flow.source)]


def entity_flows(rt: Runtime, flow_name: str) -> list[str]:
    """``flow_name`` first, then the entity's other enabled flows.

    Links, snapshots and the canonical record belong to the entity, not to a flow: once one flow has
    read a version, another flow of the same entity skips it. So when a record changes, every flow of
    its entity plans its writes (Zoho ↔ Fxiaoke and Zoho ↔ ERP as two flows: a Zoho edit reconciled
    by the first also reaches the ERP)."""
    entity = rt.flow(flow_name).entity
    others = [n for n, f in rt.config.flows.items() if n != flow_name and f.enabled and f.entity == entity]
    return [flow_name, *others]


def readable_systems(rt: Runtime, flow_name: str) -> list[str]:
    flow = rt.flow(flow_name)
    return [flow.source] if flow.direction == "one_way" else list(flow.systems)


def reconcile_batch(
    rt: Runtime, session: Session, report: Report, flow_name: str, batch: list[StagedChange], run_id: int | None,
    *, hold_creates: frozenset[str] = frozenset(),
) -> BatchOutcome:
    flow = rt.flow(flow_name)
    entity = flow.entity
    model = rt.mappings.models[entity]
    equal = rec.field_equality(model)
    specs = match_specs(rt, entity)
    resolver = LinkResolver(session)
    outcome = BatchOutcome()
    groups: dict[str, list[tuple[StagedChange, dict[str, Any] | None]]] = defaultdict(list)
    cache = BatchCache(session, entity)
    cache.hold_creates = hold_creates

    with session.no_autoflush, rec.batched_inserts(session):
        cache.load_links_of(batch)
        # The records this batch points at (each contact's account), read in one query per system.
        resolver.prefetch_canonical_ids(
            ref for change in batch if not change.deleted
            for ref in rt.mappings.mapper(entity, change.system).ids_referenced_in(change.data)
        )
        # Map every record first, so the matching index can be read for the whole batch at once.
        # A record whose mapping failed is mapped again in turn below: a reference to a record
        # linked earlier in this batch resolves then, as it would have in a one-by-one loop.
        mapped: dict[int, dict[str, Any] | None] = {}
        #: system -> the match keys of its records not linked yet
        wanted: dict[str, list[dict[str, str]]] = defaultdict(list)
        for change in batch:
            if change.deleted:
                continue
            try:
                values = rt.mappings.mapper(entity, change.system).to_canonical(change.data, resolver)
            except (MappingError, UnresolvedReference):
                continue
            mapped[id(change)] = values
            if (change.system, change.object, change.external_id) not in cache.links_by_ext:
                cache.keys[id(change)] = keys = keys_of(specs, values)
                wanted[change.system].append(keys)
        cache.matcher = rec.MatchIndex(session, entity, specs)
        for system, keys_list in sorted(wanted.items()):
            cache.matcher.prefetch(keys_list, system)
        #: (canonical id, system) of the links this batch made to records that existed before it
        matched_existing: set[tuple[str, str]] = set()
        #: staged changes with nothing left to do (dead-lettered, never synced and deleted)
        dropped: list[StagedChange] = []
        for change in batch:
            mapper = rt.mappings.mapper(entity, change.system)
            link = cache.links_by_ext.get((change.system, change.object, change.external_id))
            if change.deleted:
                if link is not None and link.status == LinkStatus.ACTIVE:
                    groups[link.canonical_id].append((change, None))
                else:
                    dropped.append(change)  # never synced, or already gone: nothing to do
                continue
            try:
                values = mapped[id(change)] if id(change) in mapped else mapper.to_canonical(change.data, resolver)
            except MappingError as exc:
                rec.dead_letter(
                    session, entity=entity, flow=flow_name, system=change.system, object=change.object,
                    external_id=change.external_id, canonical_id=link.canonical_id if link else None,
                    stage=DeadLetterStage.MAP, code=f"mapping.{exc.code}", message=exc.describe(),
                    payload={"record": change.data, "error": exc.as_dict()}, attempts=change.attempts + 1, run_id=run_id,
                )
                report.count(change.system, "dead_letters")
                dropped.append(change)
                continue
            except UnresolvedReference as exc:
                _defer(rt, session, report, flow_name, change, str(exc), run_id, dropped)
                outcome.missing.extend(m for m in exc.missing if m.direction == "read")
                continue

            if link is None:
                cid = _match_or_create(rt, session, report, flow_name, change, values, specs, run_id, cache)
                if cid is None:
                    continue  # waiting in the review queue
                link = cache.add_link(entity=entity, canonical_id=cid, system=change.system, object=change.object,
                                      external_id=change.external_id, status=LinkStatus.ACTIVE)
                resolver.remember(entity, cid, change.system, change.external_id)
                # A create of this record in this system, decided but not sent, is moot now
                # (a record made by this batch has no writes yet): looked up for the whole batch below.
                if cid not in cache.new_records:
                    matched_existing.add((cid, change.system))
            elif link.status != LinkStatus.ACTIVE:
                link.status = LinkStatus.ACTIVE  # the system says it exists again (restored from the recycle bin)
            groups[link.canonical_id].append((change, values))

        _supersede_creates(session, entity, matched_existing, cache)
        session.flush()
        cache.load_records(list(groups))
        cache.notified = notices.load(session, {cid: cache.links[cid] for cid in groups if cid not in cache.new_records})
        cache.key_fields = {s.field for s in specs}
        done: list[StagedChange] = []
        cache.load_late_writes(groups)
        for cid, items in groups.items():
            _reconcile_record(rt, session, report, flow_name, cid, items, run_id, equal, cache)
            outcome.touched += 1
            done.extend(change for change, _ in items)
        if cache.rekey:
            rec.replace_match_keys_many(
                session, entity, specs, cache.rekey, new=cache.new_records,
                # Every link of these records is in the cache (load_records, and the batch's own links).
                linked={cid: cache.links.get(cid, {}).keys() for cid in cache.rekey},
            )
        if cache.notified_done:
            notices.forget(session, cache.notified_done)
        # The batch's staged rows are plain rows (see SyncEngine._reconcile_all): reconciled or dropped ones
        # go in one statement, the others (deferred, waiting for review) are written back.
        table = StagedChange.__table__
        gone = {id(change) for change in [*done, *dropped]}
        rec.save_rows(session, StagedChange, [c for c in batch if id(c) not in gone], ["status", "reason", "attempts"])
        for part in rec.chunks([change.id for change in [*done, *dropped]]):
            session.connection().execute(delete(table).where(table.c.id.in_(part)))
    return outcome


def _supersede_creates(session: Session, entity: str, linked: set[tuple[str, str]], cache: BatchCache) -> None:
    """Creates into a system, decided but not sent, of records this batch just linked there: moot now."""
    cids = sorted({cid for cid, _ in linked})
    for part in rec.chunks(cids):
        for row in session.scalars(select(OutboxWrite).where(
            OutboxWrite.entity == entity, OutboxWrite.canonical_id.in_(part),
            OutboxWrite.action == "create", rec.unindexed(OutboxWrite.status).in_(("pending", "deferred", "sent")),
        )):
            if (row.canonical_id, row.system) not in linked:
                continue
            if row.status == "sent":
                # Our create in doubt: this is most likely the record it made. What we sent is
                # what it held then, so only the fields a user changed since count as its edits
                # (not first-sight disagreements the policy would settle against the user).
                cache.sent[(row.canonical_id, row.system)] = dict(row.values or {})
            row.status = "superseded"


def _defer(
    rt: Runtime, session: Session, report: Report, flow_name: str, change: StagedChange, reason: str, run_id,
    dropped: list[StagedChange],
) -> None:
    change.reason = reason
    if report.kind == "webhook" or change.id in report.deferrals_counted:
        # Every pass retries a deferred record (its parent may have just arrived), but only a scheduled
        # (or replayed) pass counts as a failed attempt, once: a burst of webhook runs, each touching
        # the entity a second apart, would otherwise spend max_attempts before the parent's own poll
        # could bring it in. The flow's schedule spaces the counted attempts out.
        change.status = "deferred"
        report.count(change.system, "deferred")
        return
    report.deferrals_counted.add(change.id)
    change.attempts += 1
    if change.attempts >= rt.config.sync.max_attempts:
        rec.dead_letter(
            session, entity=change.entity, flow=flow_name, system=change.system, object=change.object,
            external_id=change.external_id, canonical_id=None, stage=DeadLetterStage.REFERENCE,
            code="reference.unresolved", message=reason, payload={"record": change.data},
            attempts=change.attempts, run_id=run_id,
        )
        report.count(change.system, "dead_letters")
        dropped.append(change)
    else:
        change.status = "deferred"
        report.count(change.system, "deferred")


def _match_or_create(
    rt: Runtime, session: Session, report: Report, flow_name: str, change: StagedChange,
    values: dict[str, Any], specs: list[KeySpec], run_id, cache: BatchCache,
) -> str | None:
    entity = change.entity
    mine = cache.keys.get(id(change))
    if mine is None:
        # Mapped only now (its reference was linked earlier in this batch): read what it could match.
        mine = keys_of(specs, values)
        cache.matcher.prefetch([mine], change.system)
    found = cache.matcher.candidates(mine, change.system)
    for candidate in found:
        # Links made earlier in this batch are not flushed yet: count them too.
        candidate.systems |= set(cache.links.get(candidate.canonical_id, {}))
    decision = decide(specs, mine, found, system=change.system, min_score=rt.mappings.match_min_score(entity))
    if decision.outcome == "review":
        subject = f"match:{entity}:{change.system}:{change.external_id}"
        existing = session.scalar(select(Review).where(Review.subject_key == subject, Review.status == ReviewStatus.OPEN))
        if existing is None:
            session.add(Review(
                kind=ReviewKind.MATCH, entity=entity, system=change.system, external_id=change.external_id,
                subject_key=subject,
                details={
                    "flow": flow_name, "reason": decision.reason, "values": values,
                    "candidates": [
                        {"canonical_id": c.canonical_id, "score": c.score, "reason": c.reason,
                         "values": (session.get(Record, (entity, c.canonical_id)).values
                                    if session.get(Record, (entity, c.canonical_id)) else {})}
                        for c in decision.candidates
                    ],
                },
            ))
            report.count(change.system, "review")
        change.status = "review"
        change.reason = decision.reason
        return None
    if decision.outcome == "link":
        cid = decision.canonical_id
        report.count(change.system, "matched")
        rec.audit(session, "match", entity=entity, canonical_id=cid, system=change.system, object=change.object,
                  external_id=change.external_id, origin=change.origin, run_id=run_id,
                  details={"reason": decision.reason, "score": decision.candidates[0].score})
        return cid
    cid = rec.new_canonical_id()
    cache.add_record(cid)
    # Later records of this batch (from the other systems) can match this one. Its keys are
    # written with its merged values at the end of the batch (a new record is always re-keyed).
    cache.matcher.add(cid, mine)
    return cid


def _reconcile_record(
    rt: Runtime, session: Session, report: Report, flow_name: str, cid: str,
    items: list[tuple[StagedChange, dict[str, Any] | None]], run_id, equal, cache: BatchCache,
) -> None:
    flow = rt.flow(flow_name)
    entity = flow.entity
    model = rt.mappings.models[entity]
    record = cache.records[cid]
    snapshots = cache.snapshots[cid]
    links = cache.links[cid]
    observations = [
        (c, _with_our_later_writes(cid, c, v, snapshots.get(c.system), cache)) for c, v in items if v is not None
    ]
    deletions = [c for c, v in items if v is None]
    hash_of = rec.hash_memo(model)

    base = dict(record.values)
    for change in deletions:
        _apply_delete(rt, session, report, flow_name, record, change, links, run_id)
    if record.deleted:
        for change, _ in observations:
            link = links.get(change.system)
            if ((cid, change.system) in cache.linked_now and link is not None and link.status == LinkStatus.ACTIVE
                    and any(change.system in write_targets(rt, name) for name in entity_flows(rt, flow_name))):
                # A copy just matched to a record deleted elsewhere (typically our create that landed in
                # doubt and is read only now): the delete reaches it too.
                rec.queue_write(session, entity=entity, canonical_id=cid, system=change.system, object=change.object,
                                action="delete", external_id=change.external_id, values={}, flow=flow_name,
                                origin=change.origin, run_id=run_id)
        return

    frozen = cache.frozen[cid]
    merge_snapshots = {s: MergeSnapshot(snap.values, snap.source_modified_at) for s, snap in snapshots.items()}
    base_values = record.values
    for c, _ in observations:
        if c.system not in merge_snapshots and (cid, c.system) in cache.sent:
            merge_snapshots[c.system] = MergeSnapshot(cache.sent[(cid, c.system)], None)
    for c, v in observations:
        # Our update to that system may have landed before its outcome was recorded (in flight, in doubt,
        # or answered by an error after it landed): read back, its values are our echo, not that system's
        # edit. Taken for an edit, an older value we were still delivering won over a newer one (seen with
        # source_of_truth: the ERP "changed" the address to the value we had just sent it).
        snap = merge_snapshots.get(c.system)
        if snap is None:
            continue
        landing = [row.values or {} for row in cache.outbox.get((cid, c.system, "update"), [])
                   if row.status == "sent" or (row.status == "pending" and row.attempts)]
        # An attempt superseded before it was sent again may have landed too: until a read that started
        # well after it (LANDING_WINDOW: longer than a call and its retries) has been merged, its values
        # read back are ours (the long chaos run: an ERP BatchSave landed, the push failed on the next call,
        # a later edit superseded the update, and the landed address was taken for the ERP's own edit).
        read_started = snapshots[c.system].read_at if c.system in snapshots else None
        landing += [values for sent_at, values in cache.superseded_attempts.get((cid, c.system), [])
                    if read_started is None or read_started < sent_at + LANDING_WINDOW]
        echoed = {f: v[f] for sent in landing for f, w in sent.items() if f in v and equal(f, v[f], w)
                  and not equal(f, v[f], snap.values.get(f))}
        if echoed:
            merge_snapshots[c.system] = MergeSnapshot({**snap.values, **echoed}, snap.modified_at)
    # What we sent in a create in doubt counts here too: a user edited our copy before we linked it,
    # from the value we sent, while another system's later edit set the base. Merged as the only change,
    # the copy's older edit would undo the newer one, without a conflict (policy, review) at all.
    stale = {
        f for c, v in observations if c.system in merge_snapshots for f in v
        if f in base_values and f in merge_snapshots[c.system].values
        and not equal(f, v[f], merge_snapshots[c.system].values[f])
        and not equal(f, merge_snapshots[c.system].values[f], base_values[f]) and not equal(f, v[f], base_values[f])
    }
    notified = None
    if cache.notified.get(cid):
        # Edits a notification announced and a write of ours overwrote since (see notified.py).
        current = {s: dict(snap.values) for s, snap in snapshots.items()}
        for c, v in observations:
            current[c.system] = {**current.get(c.system, {}), **v}
        notified = notices.weigh(rt, session, entity, cid, cache.notified.pop(cid), base=record.values,
                                 current=current, equal=equal, done=cache.notified_done) or None
    result = merge(
        record.values,
        merge_snapshots,
        [Observation(c.system, v, c.modified_at) for c, v in observations],
        policy_for=lambda f: rt.config.conflict_policy(entity, f),
        system_order=flow.systems,
        frozen={f for f in frozen if f},
        equal=equal,
        origins=_origins(session, entity, cid, {f: base_values[f] for f in stale}, equal) if stale else None,
        notified=notified,
    )
    for conflict in result.conflicts:
        review_id = None
        if conflict.winner is None:
            review = Review(
                kind=ReviewKind.CONFLICT, entity=entity, canonical_id=cid,
                subject_key=f"conflict:{entity}:{cid}:{conflict.field}",
                details={"flow": flow_name, "field": conflict.field, "base": conflict.base, "values": conflict.values},
            )
            session.add(review)
            session.flush()
            review_id = review.id
            report.count(next(iter(conflict.values)), "review")
        session.add(Conflict(
            entity=entity, canonical_id=cid, field=conflict.field,
            values={"base": conflict.base, **conflict.values}, policy=conflict.policy,
            winner_system=conflict.winner,
            resolved_value={"value": conflict.value} if conflict.winner else None,
            run_id=run_id, review_id=review_id,
        ))
        report.count(conflict.winner or next(iter(conflict.values)), "conflicts")
        rt.metrics.conflicts.labels(entity, conflict.policy.split(":")[0]).inc()
        rec.audit(session, "conflict", entity=entity, canonical_id=cid, run_id=run_id,
                  details={"field": conflict.field, "base": conflict.base, "values": conflict.values,
                           "policy": conflict.policy, "winner": conflict.winner,
                           "times": {s: t.isoformat() if t else None for s, t in conflict.times.items()}})

    record.values = result.values
    record.hash = hash_of(result.values)
    if result.changed & cache.key_fields or not base:
        cache.rekey[cid] = result.values  # written for the whole batch at its end
    now = utc_now()
    #: field -> the system whose notified edit took part in the merge (audited apart, at its own time)
    notifier = {f: next(iter(sides)) for f, sides in (notified or {}).items()}
    for change, values in observations:
        snapshots[change.system] = rec.save_snapshot(
            session, entity=entity, canonical_id=cid, system=change.system, values=values,
            modified_at=None if id(change) in cache.unsettled else change.modified_at,
            action=SnapshotAction.READ, hash_of=hash_of, existing=snapshots.get(change.system),
            look_up=False, read_started=change.staged_at, source_hash=change.data_hash,
        )
        link = links.get(change.system)
        if link is not None:
            link.last_synced_at = now
        changed_here = {f: [base.get(f), result.values.get(f)] for f in result.changed
                        if change.system in result.changed_by.get(f, []) and notifier.get(f) != change.system}
        if changed_here or not base:
            rec.audit(session, "read", entity=entity, canonical_id=cid, system=change.system, object=change.object,
                      external_id=change.external_id, origin=change.origin, run_id=run_id,
                      details={"changes": changed_here, "modified_at": change.modified_at.isoformat() if change.modified_at else None})
    for f, sides in (notified or {}).items():
        system, (_value, at) = next(iter(sides.items()))
        if f in result.changed and system in result.changed_by.get(f, []):
            # Recorded as that system's change at its own time: the newest change of the field (_origins).
            link = links.get(system)
            rec.audit(session, "read", entity=entity, canonical_id=cid, system=system,
                      object=link.object if link else None, external_id=link.external_id if link else None,
                      origin="event", run_id=run_id,
                      details={"changes": {f: [base.get(f), result.values.get(f)]},
                               "modified_at": at.isoformat() if at else None, "notified": True})
    # A field waiting for a person is written nowhere until the review is settled.
    held = {f for f in frozen if f} | {c.field for c in result.held}
    origin = observations[0][0].origin if observations else "poll"
    _plan_writes(rt, session, flow_name, record, links, origin=origin, run_id=run_id, equal=equal, held=held, cache=cache)
    if rt.triggers:
        derive.after_merge(rt, session, report, record, origin=origin, run_id=run_id, equal=equal)


def _origins(
    session: Session, entity: str, cid: str, wanted: dict[str, Any], equal
) -> dict[str, tuple[str, Any]]:
    """Which system's change set each of these fields to its current (base) value, and its modified
    time: the newest read in the audit trail that changed the field to that value."""
    from datetime import datetime

    from .state.models import AuditEvent

    found: dict[str, tuple[str, Any]] = {}
    for system, details in session.execute(
        select(AuditEvent.system, AuditEvent.details)
        .where(AuditEvent.entity == entity, AuditEvent.canonical_id == cid, AuditEvent.kind == "read")
        .order_by(AuditEvent.id.desc()).limit(200)
    ):
        changes = (details or {}).get("changes") or {}
        for f, value in wanted.items():
            change = changes.get(f)
            if f in found or not isinstance(change, list) or len(change) != 2 or not equal(f, change[1], value):
                continue
            at = (details or {}).get("modified_at")
            found[f] = (system, datetime.fromisoformat(at) if at else None)
        if len(found) == len(wanted):
            break
    return found


def _with_our_later_writes(
    cid: str, change: StagedChange, values: dict[str, Any], snapshot: Snapshot | None, cache: BatchCache
) -> dict[str, Any]:
    """A read started before one of our writes to that system completed may not show the write:
    merged as it is, its older values for the written fields would look like that system's own
    changes and undo the write everywhere (a webhook run and a pass, or two workers, reading and
    writing one record at once). Those fields are taken as we wrote them (the snapshot); the rest
    of the read, a user's edit among it, merges as usual.

    Where the read disagrees with our write, it may also be a user's edit made after the write: the
    read then is not kept as a version seen (see ``_reconcile_record``), so the next read of the
    record is merged in full and brings that edit."""
    if snapshot is None or change.staged_at is None:
        return values
    written = {
        f for done_at, fields in cache.late_writes.get((cid, change.system), [])
        if done_at >= change.staged_at for f in fields
    }
    ours = {f: snapshot.values[f] for f in written if f in values and f in snapshot.values}
    if any(values[f] != v for f, v in ours.items()):
        cache.unsettled.add(id(change))
    return {**values, **ours}


def _plan_writes(
    rt: Runtime, session: Session, flow_name: str, record: Record, links: dict[str, Link], *, origin, run_id, equal,
    held: set[str] = frozenset(), cache: BatchCache | None = None,
) -> None:
    flow = rt.flow(flow_name)
    entity = flow.entity
    cid = record.canonical_id
    if cache is None:
        cache = BatchCache(session, entity)
        cache.records[cid] = record
        cache.load_records([cid])
    snapshots = cache.snapshots[cid]
    planned: set[str] = set()
    for name in entity_flows(rt, flow_name):
        _plan_flow_writes(rt, session, name, record, links, snapshots, planned,
                          origin=origin, run_id=run_id, equal=equal, held=held, cache=cache)


def _plan_flow_writes(
    rt: Runtime, session: Session, flow_name: str, record: Record, links: dict[str, Link], snapshots,
    planned: set[str], *, origin, run_id, equal, held, cache: BatchCache,
) -> None:
    flow = rt.flow(flow_name)
    entity = flow.entity
    cid = record.canonical_id
    create_in = set(flow.create_in or flow.systems)
    values = record.values
    for target in write_targets(rt, flow_name):
        if target in planned:
            continue  # an earlier flow of the entity planned its writes there already
        mapper = rt.mappings.mapper(entity, target)
        desired = {f: values[f] for f in mapper.write_fields if f in values and f not in held}
        link = links.get(target)
        if link is not None and link.status == LinkStatus.ACTIVE:
            planned.add(target)
            current = snapshots[target].values if target in snapshots else {}
            changed = {f: v for f, v in desired.items() if not equal(f, v, current.get(f))}
            if changed:
                for row in cache.outbox.get((cid, target, "update"), []):
                    if row.status in ("pending", "deferred"):
                        row.status = "superseded"  # recomputed from the snapshot: this one says it all
                cache.outbox[(cid, target, "update")].append(
                    rec.queue_write(session, entity=entity, canonical_id=cid, system=target, object=mapper.object,
                                    action="update", external_id=link.external_id, values=changed, flow=flow_name,
                                    origin=origin, run_id=run_id)
                )
        elif link is None and target in create_in and any(v not in (None, "") for v in desired.values()):
            planned.add(target)
            waiting = [r for r in cache.outbox.get((cid, target, "create"), []) if r.status in ("pending", "sent", "deferred")]
            if waiting:
                # A create is already on its way: fold these values into it rather than creating twice.
                if waiting[0].status in ("pending", "deferred"):
                    waiting[0].values = desired
                continue
            row = rec.queue_write(session, entity=entity, canonical_id=cid, system=target, object=mapper.object,
                                  action="create", external_id=None, values=desired, flow=flow_name,
                                  origin=origin, run_id=run_id)
            if target in cache.hold_creates:
                row.status = "deferred"
            cache.outbox[(cid, target, "create")].append(row)


def _apply_delete(
    rt: Runtime, session: Session, report: Report, flow_name: str, record: Record, change: StagedChange,
    links: dict[str, Link], run_id,
) -> None:
    entity = record.entity
    cid = record.canonical_id
    policy = rt.config.delete_policy(entity)
    link = links[change.system]
    link.status = LinkStatus.DELETED
    rec.audit(session, "delete", entity=entity, canonical_id=cid, system=change.system, object=change.object,
              external_id=change.external_id, origin=change.origin, run_id=run_id, details={"policy": policy.policy})
    report.count(change.system, "read")
    if policy.policy == "ignore":
        return
    if policy.policy == "approve":
        subject = f"delete:{entity}:{cid}:{change.system}"
        if session.scalar(select(Review.id).where(Review.subject_key == subject, Review.status == ReviewStatus.OPEN)) is None:
            session.add(Review(kind=ReviewKind.DELETE, entity=entity, canonical_id=cid, system=change.system,
                               external_id=change.external_id, subject_key=subject,
                               details={"flow": flow_name, "values": record.values}))
            report.count(change.system, "review")
        return
    if policy.policy == "deactivate":
        values = dict(record.values)
        values[policy.field] = policy.value
        record.values = values
        return
    # propagate
    record.deleted = True
    record.deleted_at = utc_now()
    # A create decided before the delete and not sent yet would bring the record back in that system.
    for row in session.scalars(select(OutboxWrite).where(
        OutboxWrite.entity == entity, OutboxWrite.canonical_id == cid, OutboxWrite.action == "create",
        rec.unindexed(OutboxWrite.status).in_(("pending", "deferred")),
    )):
        row.status = "superseded"
    targets = {t: name for name in reversed(entity_flows(rt, flow_name)) for t in write_targets(rt, name)}
    for target, target_flow in targets.items():
        other = links.get(target)
        if target == change.system or other is None or other.status != LinkStatus.ACTIVE:
            continue
        rec.queue_write(session, entity=entity, canonical_id=cid, system=target,
                        object=rt.mappings.mapper(entity, target).object, action="delete",
                        external_id=other.external_id, values={}, flow=target_flow, origin=change.origin, run_id=run_id)

