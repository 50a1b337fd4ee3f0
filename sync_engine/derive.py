"""Triggers: a record reaching a state creates a record of another entity — a won
deal becomes a sales order in the ERP — and the created record reports back.

Firing is once per watched record, ever: a ``trigger_firings`` row (unique per
trigger and record) commits in the same transaction as the new canonical record
and its create write. A second pass, a redelivered webhook or a deal that goes
from won to lost and back cannot make a second order.

``write_back`` keeps the watched record informed: each time the created record
is reconciled (the ERP numbers the order, approves it, totals it), the listed
fields are copied onto the watched record and written to its systems like any
other change. An order keyed in by hand in the ERP for a deal reports back the
same way, through its reference to the deal.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mapping.canonical import canonical_hash, entity_info, from_jsonable, to_jsonable, to_model
from mapping.transforms import TransformError, compile_transform

from . import records as rec
from .context import Report
from .state.models import Link, Record
from .state.models.enums import DeadLetterStage, LinkStatus
from .state.models.pipeline import TriggerFiring
from .state.types import utc_now

log = logging.getLogger(__name__)

#: (fired_at, watched record's values with ``id``) -> value of one canonical field
Builder = Callable[[datetime, Mapping[str, Any]], Any]


@dataclass(frozen=True)
class Trigger:
    name: str
    source: str  # watched entity
    target: str  # created entity
    system: str  # where the created record is made
    match: dict[str, tuple[Any, ...]]
    builders: dict[str, Builder]
    write_back: dict[str, str]  # watched field <- created field

    @property
    def flow_label(self) -> str:
        """What outbox rows, dead letters and metrics name as the 'flow' of this trigger's writes."""
        return f"trigger:{self.name}"


def _builder(spec: Any) -> Builder:
    if isinstance(spec, Mapping) and set(spec) == {"value"}:
        constant = spec["value"]
        return lambda fired_at, record: constant
    if isinstance(spec, str):
        transform = compile_transform(spec)
        return lambda fired_at, record: transform(fired_at, record)
    if isinstance(spec, list):
        items = [{field: _builder(item_spec) for field, item_spec in item.items()} for item in spec]
        return lambda fired_at, record: [
            {field: build(fired_at, record) for field, build in item.items()} for item in items
        ]
    return lambda fired_at, record: spec  # numbers, true/false, null: constants


def compile_triggers(config: Any) -> list[Trigger]:
    """Compile the config's enabled triggers (the config checks have vetted them)."""
    out = []
    for name, spec in (getattr(config, "triggers", None) or {}).items():
        if not spec.enabled:
            continue
        out.append(Trigger(
            name=name,
            source=spec.when.entity,
            target=spec.create.entity,
            system=spec.create.in_,
            match={f: tuple(v) if isinstance(v, list) else (v,) for f, v in spec.when.match.items()},
            builders={f: _builder(v) for f, v in spec.create.values.items()},
            write_back=dict(spec.write_back),
        ))
    return out


def after_merge(
    rt, session: Session, report: Report, record: Record, *, origin: str, run_id: int | None, equal,
) -> None:
    """Called once a record's merged values are final in this transaction."""
    for trigger in rt.triggers:
        if trigger.source == record.entity and not record.deleted and _matches(trigger, record.values, equal):
            _fire(rt, session, report, trigger, record, origin=origin, run_id=run_id)
        if trigger.target == record.entity and trigger.write_back:
            _write_back(rt, session, report, trigger, record, origin=origin, run_id=run_id)


def entities_written_by(rt, entity: str) -> list[str]:
    """Entities whose outbox may get rows when ``entity`` is reconciled (to push them in the same pass)."""
    out = []
    for trigger in rt.triggers:
        if trigger.source == entity:
            out.append(trigger.target)
        if trigger.target == entity and trigger.write_back:
            out.append(trigger.source)
    return sorted(set(out) - {entity})


def _matches(trigger: Trigger, values: Mapping[str, Any], equal) -> bool:
    return all(
        any(equal(field, values.get(field), wanted) for wanted in accepted)
        for field, accepted in trigger.match.items()
    )


def _fire(rt, session: Session, report: Report, trigger: Trigger, record: Record, *, origin: str, run_id) -> None:
    fired = session.scalar(select(TriggerFiring.id).where(
        TriggerFiring.trigger == trigger.name, TriggerFiring.source_id == record.canonical_id))
    if fired is not None:
        return  # once per record, ever (a failed firing waits for `crmsync dlq replay`)
    now = utc_now()
    source_values = {**from_jsonable(rt.mappings.models[trigger.source], record.values), "id": record.canonical_id}
    model = rt.mappings.models[trigger.target]
    try:
        built = {field: build(now, source_values) for field, build in trigger.builders.items()}
        values = to_jsonable(to_model(model, built).model_dump(exclude_none=True, exclude={"id", "provenance"}))
    except (TransformError, ValidationError, ValueError, TypeError) as exc:
        message = f"trigger {trigger.name!r} could not build the {trigger.target}: {_describe(exc)}"
        session.add(TriggerFiring(trigger=trigger.name, source_entity=trigger.source, source_id=record.canonical_id,
                                  target_entity=trigger.target, status="failed", error=message, fired_at=now))
        rec.dead_letter(
            session, entity=trigger.source, flow=trigger.flow_label, system=trigger.system, object=None,
            external_id=None, canonical_id=record.canonical_id, stage=DeadLetterStage.MAP,
            code="trigger.values", message=message, payload={"trigger": trigger.name, "record": record.values},
            attempts=1, run_id=run_id,
        )
        report.count(trigger.system, "dead_letters")
        return
    cid = rec.new_canonical_id()
    session.add(Record(entity=trigger.target, canonical_id=cid, values=values, hash=canonical_hash(values, model)))
    session.add(TriggerFiring(trigger=trigger.name, source_entity=trigger.source, source_id=record.canonical_id,
                              target_entity=trigger.target, target_id=cid, status="created", fired_at=now))
    plan_create(rt, session, trigger, cid, values, origin=origin, run_id=run_id)
    rec.audit(session, "trigger", entity=trigger.target, canonical_id=cid, system=trigger.system, origin=origin,
              run_id=run_id, details={"trigger": trigger.name, "from": {trigger.source: record.canonical_id},
                                      "values": values})
    report.count(trigger.system, "triggered")
    log.info("trigger %s: %s %s → new %s %s in %s", trigger.name, trigger.source, record.canonical_id,
             trigger.target, cid, trigger.system)


def replay(rt, session: Session, report: Report, trigger: Trigger, entity: str, canonical_id: str) -> None:
    """A dead letter of a trigger, replayed: build the record again, or send its create again."""
    if entity == trigger.source:
        session.execute(delete(TriggerFiring).where(
            TriggerFiring.trigger == trigger.name, TriggerFiring.source_id == canonical_id,
            TriggerFiring.status == "failed"))
        record = session.get(Record, (entity, canonical_id))
        equal = rec.field_equality(rt.mappings.models[entity])
        if record is not None and not record.deleted and _matches(trigger, record.values, equal):
            _fire(rt, session, report, trigger, record, origin="replay", run_id=None)
        return
    record = session.get(Record, (entity, canonical_id))
    linked = session.scalar(select(Link.id).where(
        Link.entity == entity, Link.canonical_id == canonical_id, Link.system == trigger.system))
    if record is not None and linked is None:
        plan_create(rt, session, trigger, canonical_id, record.values, origin="replay", run_id=None)


def plan_create(rt, session: Session, trigger: Trigger, cid: str, values: Mapping[str, Any], *, origin: str, run_id) -> None:
    """Queue the create of a triggered record in its system (again, when a failed one is replayed)."""
    mapper = rt.mappings.mapper(trigger.target, trigger.system)
    desired = {f: v for f, v in values.items() if f in mapper.write_fields}
    rec.queue_write(session, entity=trigger.target, canonical_id=cid, system=trigger.system, object=mapper.object,
                    action="create", external_id=None, values=desired, flow=trigger.flow_label,
                    origin=origin, run_id=run_id)


def trigger_named(rt, flow_label: str | None) -> Trigger | None:
    for trigger in rt.triggers:
        if trigger.flow_label == flow_label:
            return trigger
    return None


def _write_back(rt, session: Session, report: Report, trigger: Trigger, created: Record, *, origin: str, run_id) -> None:
    source_id = session.scalar(select(TriggerFiring.source_id).where(
        TriggerFiring.trigger == trigger.name, TriggerFiring.target_id == created.canonical_id))
    # An order keyed in by hand in the ERP for a deal reports back through its reference.
    if source_id is None:
        source_id = _referenced(rt, trigger, created)
    if source_id is None:
        return
    query = select(Record).where(Record.entity == trigger.source, Record.canonical_id == source_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    watched = session.scalar(query)
    if watched is None or watched.deleted:
        return
    model = rt.mappings.models[trigger.source]
    equal = rec.field_equality(model)
    changes = {
        field: created.values.get(source_field)
        for field, source_field in trigger.write_back.items()
        if not equal(field, watched.values.get(field), created.values.get(source_field))
    }
    if not changes:
        return
    before = {f: watched.values.get(f) for f in changes}
    watched.values = {**watched.values, **changes}
    watched.hash = canonical_hash(watched.values, model)
    rec.audit(session, "write_back", entity=trigger.source, canonical_id=source_id, origin=origin, run_id=run_id,
              details={"trigger": trigger.name, "from": {trigger.target: created.canonical_id},
                       "changes": {f: [before[f], v] for f, v in changes.items()}})
    from .reconcile import _plan_writes  # noqa: PLC0415 - reconcile calls into this module

    links = {link.system: link for link in session.scalars(
        select(Link).where(Link.entity == trigger.source, Link.canonical_id == source_id,
                           Link.status == LinkStatus.ACTIVE))}
    for flow_name in rt.flows_in_order():
        if rt.flow(flow_name).entity == trigger.source:
            _plan_writes(rt, session, flow_name, watched, links, origin=origin, run_id=run_id, equal=equal)
    report.count(trigger.system, "written_back")


def _referenced(rt, trigger: Trigger, created: Record) -> str | None:
    """The watched record a created-entity record points at (an order keyed in by hand for a deal)."""
    fields = entity_info(rt.mappings.models[trigger.target]).fields
    refs = [name for name, spec in fields.items() if spec.reference == trigger.source]
    if len(refs) != 1:
        return None
    value = created.values.get(refs[0])
    return str(value) if value else None


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
    return str(exc)
