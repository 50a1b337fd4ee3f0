"""Three-way, field-by-field merge of one canonical record.

For every field we know three things: the *base* (the value all systems last
agreed on), each system's *snapshot* (the value we last read from or wrote to
that system) and each system's *observation* (the value it holds now). A system
changed a field when its observation differs from its snapshot — so our own
writes coming back (echoes) are not changes, and a change in one system is
never overwritten by a stale value from another.

One system changed a field → its value propagates. Several changed it to
different values → a conflict, settled by the field's policy:

- ``{source_of_truth: X}``: X's value wins when X is among the changers; otherwise
  the latest change among the others wins (X did not take part).
- ``latest_wins``: the change with the newest modified time wins; ties go to the
  system listed first in the flow, so the result never depends on arrival order.
- ``manual``: the field keeps its base value and waits in the review queue; the
  rest of the record still syncs.

A system seen for the first time (just linked by first-sync matching) has no
snapshot: where it disagrees with the base, it and the systems holding the base
are treated as having both changed the field, so the policy decides.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from config.schema import SourceOfTruth

Policy = Any  # "latest_wins" | "manual" | SourceOfTruth
_MISSING = object()


def values_equal(a: Any, b: Any) -> bool:
    """Equality for canonical values: empty string and null are the same "no value"."""
    if a in ("", None) and b in ("", None):
        return True
    return a == b


@dataclass(slots=True)
class Observation:
    """What one system holds now for the record, already mapped to canonical fields.

    Only fields the system's mapping reads are present; a missing field means
    "this system does not say", never "this system cleared it".
    """

    system: str
    values: Mapping[str, Any]
    modified_at: datetime | None = None


@dataclass(slots=True)
class Snapshot:
    values: Mapping[str, Any]
    modified_at: datetime | None = None


@dataclass(slots=True)
class Conflict:
    field: str
    base: Any
    values: dict[str, Any]  # system -> the value it changed the field to
    policy: str
    winner: str | None  # None while waiting for a person (manual)
    value: Any = None
    #: system -> the modified time its change was weighed with (its record's, as read)
    times: dict[str, datetime | None] = field(default_factory=dict)


@dataclass(slots=True)
class MergeResult:
    values: dict[str, Any]
    changed: set[str] = field(default_factory=set)
    #: field -> systems that changed it (for the audit trail)
    changed_by: dict[str, list[str]] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)

    @property
    def held(self) -> list[Conflict]:
        return [c for c in self.conflicts if c.winner is None]


def policy_name(policy: Policy) -> str:
    return f"source_of_truth:{policy.source_of_truth}" if isinstance(policy, SourceOfTruth) else str(policy)


def merge(
    base: Mapping[str, Any],
    snapshots: Mapping[str, Snapshot],
    observations: Sequence[Observation],
    *,
    policy_for: Callable[[str], Policy],
    system_order: Sequence[str],
    frozen: set[str] = frozenset(),
    equal: Callable[[str, Any, Any], bool] = lambda _f, a, b: values_equal(a, b),
    origins: Mapping[str, tuple[str, datetime | None]] | None = None,
    notified: Mapping[str, Mapping[str, tuple[Any, datetime | None]]] | None = None,
) -> MergeResult:
    """Merge ``observations`` into ``base``. Pure: no I/O, no clock.

    ``origins``: field -> (system, modified time) of the change that set the base value, for fields a
    system changed starting from an older value than the base (see below).
    ``notified``: field -> {system: (value, time)}, changes known otherwise than by reading the systems
    now (an edit a notification announced and a write of ours overwrote, with the change that write
    carried: see ``sync_engine.notified``). They take part like observed changes, each with its own time;
    a system's observed change of the field, if any, comes first."""
    origins = origins or {}
    notified = notified or {}
    rank = {name: i for i, name in enumerate(system_order)}
    result = MergeResult(values=dict(base))
    fields = sorted({f for obs in observations for f in obs.values} | set(notified))
    observed = {obs.system: obs for obs in observations}

    for name in fields:
        base_value = base.get(name)
        changes: dict[str, Any] = {}
        times: dict[str, datetime | None] = {}
        for obs in observations:
            if name not in obs.values:
                continue
            snap = snapshots.get(obs.system)
            new = obs.values[name]
            previous = snap.values.get(name, _MISSING) if snap is not None else _MISSING
            if previous is _MISSING:
                # First sight of this field in this system: a change only where it disagrees with the base.
                # A blank seen for the first time is no change: "no value here yet" must never erase the
                # value another system has (twins linked on the first sync, a system added later).
                if name not in base or equal(name, new, base_value):
                    if name not in base and not equal(name, new, None):
                        changes[obs.system] = new
                        times[obs.system] = obs.modified_at
                    continue
                if equal(name, new, None):
                    continue
                changes[obs.system] = new
                times[obs.system] = obs.modified_at
                # The systems that hold the base value took part too (they set it first).
                for holder, holder_snap in snapshots.items():
                    if holder in observed and holder != obs.system:
                        continue
                    if equal(name, base_value, None):
                        continue  # nobody set a value: there is nothing to defend
                    if holder != obs.system and equal(name, holder_snap.values.get(name, _MISSING), base_value):
                        changes.setdefault(holder, base_value)
                        times.setdefault(holder, holder_snap.modified_at)
            elif not equal(name, new, previous):
                changes[obs.system] = new
                times[obs.system] = obs.modified_at
                origin = origins.get(name)
                if (origin is not None and origin[0] != obs.system and name in base
                        and not equal(name, previous, base_value) and not equal(name, new, base_value)):
                    # This system changed the field from a value older than the base: it had not received
                    # the change that set the base (our write was still on its way). The two changes
                    # were concurrent; merged as the only one, the older could undo the newer.
                    changes.setdefault(origin[0], base_value)
                    times.setdefault(origin[0], origin[1])
        for system, (value, at) in notified.get(name, {}).items():
            if system not in changes:
                changes[system] = value
                times[system] = at
        if not changes:
            continue

        distinct: list[Any] = []
        for value in changes.values():
            if not any(equal(name, value, seen) for seen in distinct):
                distinct.append(value)

        if name in frozen:
            # A person is deciding this field: keep the base, keep waiting.
            continue
        if len(distinct) == 1:
            value = distinct[0]
            if not equal(name, value, base_value) or name not in base:
                result.values[name] = value
                result.changed.add(name)
                result.changed_by[name] = sorted(changes, key=lambda s: rank.get(s, 99))
            continue

        policy = policy_for(name)
        conflict = Conflict(field=name, base=base_value, values=dict(changes), policy=policy_name(policy), winner=None,
                            times={s: times.get(s) for s in changes})
        if policy == "manual":
            result.conflicts.append(conflict)
            continue
        winner = None
        if isinstance(policy, SourceOfTruth) and policy.source_of_truth in changes:
            winner = policy.source_of_truth
        if winner is None:
            winner = _latest(changes, times, rank)
        conflict.winner = winner
        conflict.value = changes[winner]
        result.conflicts.append(conflict)
        if not equal(name, changes[winner], base_value):
            result.values[name] = changes[winner]
            result.changed.add(name)
        result.changed_by[name] = [winner]
    return result


def _latest(changes: Mapping[str, Any], times: Mapping[str, datetime | None], rank: Mapping[str, int]) -> str:
    def key(system: str):
        ts = times.get(system)
        # Newest first; unknown times lose to known ones; ties go to the system listed first.
        return (ts is not None, ts.timestamp() if ts else 0.0, -rank.get(system, 99))

    return max(changes, key=key)
