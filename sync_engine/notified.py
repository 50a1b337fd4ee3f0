"""Edits our writes overwrote, brought back from the notifications that announced them.

No CRM API offers a conditional write. Before an update crmsync reads the target once more and
checks nothing changed (``Connector.push_checked``), then writes; a user's edit of the same field
landing in the tens of ms between that read and the write is overwritten, and no later read shows
it: the record holds our value. A notification that carries the changed values (Zoho's
``affected_values`` with ``server_time``, subscribed with ``notify_affected_values``) is evidence
of that edit which survives the overwrite: webhooks are stored before they are acknowledged, and
the job's hints keep the values (``ChangeHint.values``).

The webhook job stores each notified record's values and time here (:func:`store`), and stages the
record even when its current version was reconciled already. Whenever the record is reconciled,
:func:`weigh` looks at each notified field value V of time T:

- the system holds V now, or the canonical record does: nothing was lost (or it is merged already);
- otherwise, a write of ours of that field must have been on its way to that very record at T
  (decided before T, done after it, give or take ``SKEW`` between the system's clock and ours; an
  edit made before the write's check read would have withdrawn it), and what the system holds now
  must be **our own write** W, that one or one done since (the field's next change, written over
  the edit no read could show any more), and still the canonical value: then V is an edit made
  while our write was on its way, which the write overwrote. It joins the merge as that system's
  change of the field at T, against the change that set W (the audit trail's newest read that
  changed the field to W, and its modified time): the field's policy decides (``latest_wins``: the Zoho user's edit wins when it is newer,
  and then reaches every system, Zoho included, as any change does; nothing changes when our
  write's source change is newer).
- a value some write of ours sent around T is the notification of that write (our echo): skipped.

Duplicated, delayed or reordered notifications change nothing: a value the record already took, a
time outside our write's flight, or a record that moved on since (a newer change merged: W is no
longer the canonical value) all leave the notification without effect. A notification is kept only
while one of our updates of that record is still on its way there (its overwrite may not have
landed yet) and for at most ``RETENTION``; once a merge has weighed it, it is gone.

Only Zoho sends such evidence. Fxiaoke's pushes and the ERP's triggers name ids only, so an edit
there overwritten in that window is still lost (see bench/README.md, "Chaos convergence").
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, tuple_
from sqlalchemy.orm import Session

from mapping.errors import MappingError

from .links import LinkResolver
from .state.models import Link
from .state.models.pipeline import NotifiedChange, OutboxWrite
from .state.types import utc_now

#: How far the system's clock (the notification's time) and ours (the outbox's) may disagree.
SKEW = timedelta(seconds=1)
#: A notification no merge has weighed is dropped after this long.
RETENTION = timedelta(days=1)


def store(session: Session, system: str, notes: Iterable[tuple[str, str, Mapping[str, Any], datetime]]) -> int:
    """Keep (object, id, values, time) notified by ``system``; a redelivery is kept once. Returns how many are new."""
    rows = {(obj, str(rid), when): dict(values) for obj, rid, values, when in notes if values and when is not None}
    session.execute(delete(NotifiedChange).where(NotifiedChange.received_at < utc_now() - RETENTION))
    if not rows:
        return 0
    known = set(session.execute(
        select(NotifiedChange.object, NotifiedChange.external_id, NotifiedChange.occurred_at).where(
            NotifiedChange.system == system,
            tuple_(NotifiedChange.object, NotifiedChange.external_id).in_(sorted({(o, i) for o, i, _ in rows})),
        )
    ).tuples())
    new = [(key, values) for key, values in rows.items() if key not in known]
    for (obj, rid, when), values in new:
        session.add(NotifiedChange(system=system, object=obj, external_id=rid, occurred_at=when, values=values))
    return len(new)


def load(session: Session, links: Mapping[str, Mapping[str, Link]]) -> dict[str, list[NotifiedChange]]:
    """The notifications waiting for these records (canonical id -> its links by system), by canonical id."""
    by_ext = {(link.system, link.object, link.external_id): cid for cid, of in links.items() for link in of.values()}
    if not by_ext:
        return {}
    out: dict[str, list[NotifiedChange]] = {}
    keys = sorted(by_ext)
    for part in (keys[i:i + 500] for i in range(0, len(keys), 500)):
        for row in session.scalars(select(NotifiedChange).where(
            tuple_(NotifiedChange.system, NotifiedChange.object, NotifiedChange.external_id).in_(part)
        )):
            out.setdefault(by_ext[(row.system, row.object, row.external_id)], []).append(row)
    return out


def weigh(
    rt, session: Session, entity: str, cid: str, rows: list[NotifiedChange], *, base: Mapping[str, Any],
    current: Mapping[str, Mapping[str, Any]], equal, done: list[int],
) -> dict[str, dict[str, tuple[Any, datetime | None]]]:
    """The changes these notifications prove our writes overwrote: field -> {system: (value, time)}, the
    notifying system's edit together with the change that set the value our write carried (for the merge
    to settle by policy). ``current``: system -> what it holds now (this batch's read, or its snapshot).
    The ids of the notifications weighed for good are added to ``done``."""
    from .reconcile import _origins

    systems = sorted({row.system for row in rows})
    earliest = min(row.occurred_at for row in rows) - SKEW
    writes = list(session.scalars(select(OutboxWrite).where(
        OutboxWrite.entity == entity, OutboxWrite.canonical_id == cid, OutboxWrite.system.in_(systems),
        OutboxWrite.action == "update", OutboxWrite.status.in_(("done", "sent")),
        (OutboxWrite.status == "sent") | (OutboxWrite.done_at >= earliest),
    )))
    resolver = LinkResolver(session)
    found: dict[str, dict[str, tuple[Any, datetime | None]]] = {}
    when_found: dict[str, datetime] = {}
    for row in sorted(rows, key=lambda r: r.occurred_at):
        at = row.occurred_at
        held = current.get(row.system)
        decided = False
        try:
            notified = rt.mappings.mapper(entity, row.system).to_canonical_partial(row.values, resolver)
        except MappingError:
            notified = {}
        if held is not None:
            for f, value in notified.items():
                if f not in held or f not in base or equal(f, value, held[f]) or equal(f, value, base[f]):
                    continue  # not lost, or merged already
                ours = held[f]
                if not equal(f, ours, base[f]):
                    continue  # the record moved on since: a newer change than our write's is merged
                # From when the write was decided (a resend after a crash sends it again later) to when
                # it was done: an edit before its check read would have withdrawn it.
                flying = [w for w in writes if w.system == row.system and f in (w.values or {})
                          and w.created_at - SKEW <= at and (w.done_at is None or at <= w.done_at + SKEW)]
                if any(equal(f, w.values[f], value) for w in flying):
                    continue  # the notification of a write of ours (two of ours in flight at once)
                if not any(w.status == "done" for w in flying):
                    continue  # no write of ours overwrote it
                # What the record holds is ours: the write that overwrote the edit, or one sent after it
                # (the field's next change, decided without the edit no read could show any more).
                if not any(w.status == "done" and w.done_at + SKEW >= at and equal(f, w.values[f], ours)
                           for w in writes if w.system == row.system and f in (w.values or {})):
                    continue
                origin = _origins(session, entity, cid, {f: ours}, equal).get(f)
                if origin is not None and origin[0] == row.system:
                    continue
                if f in when_found and when_found[f] > at:
                    continue
                found[f] = {row.system: (value, at)}
                if origin is not None:
                    found[f][origin[0]] = (ours, origin[1])
                when_found[f] = at
                decided = True
        # Kept while an update of ours is on its way there: the overwrite may not have landed yet.
        if decided or not any(w.status == "sent" and w.system == row.system for w in writes):
            done.append(row.id)
    return found


def forget(session: Session, ids: list[int]) -> None:
    for i in range(0, len(ids), 500):
        session.execute(delete(NotifiedChange).where(NotifiedChange.id.in_(ids[i:i + 500])))
