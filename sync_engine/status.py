"""What ops see: per flow and per system health, from the state database and the
connectors of this process. Shared by ``GET /status``, the status page and
``crmsync status``. Never contains a secret."""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from .runtime import Runtime
from .state.models import Channel, Conflict, Cursor, DeadLetter, Job, Review, Run, SystemState
from .state.models.enums import DeadLetterStatus, JobStatus, ReviewStatus
from .state.queue import JobQueue
from .state.types import utc_now

LAG_WARNING_SECONDS = 3600


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _moved(counts: dict[str, Any]) -> int:
    return sum(int(c.get(k, 0)) for c in counts.values() if isinstance(c, dict) for k in ("created", "updated", "deleted"))


#: Worst first. ``auth_failed``: every system of the flow (or a one-way flow's source) refuses
#: our credentials, so nothing moves whatever the runs say; ``degraded``: some do, and their share of the work waits.
HEALTH_ORDER = {"auth_failed": 0, "error": 1, "degraded": 2, "warning": 3, "ok": 4}


def _health(flow: Any, refused: dict[str, str], last: Run | None, attention: list[str]) -> str:
    # A one-way flow whose source refuses us moves nothing either, whatever its targets say.
    if refused and (len(refused) == len(set(flow.systems)) or (flow.direction == "one_way" and flow.source in refused)):
        return "auth_failed"
    if last is not None and str(last.status) == "failed":
        return "error"
    if refused:
        return "degraded"
    return "warning" if attention else "ok"


def collect_status(rt: Runtime, *, next_runs: dict[str, str | None] | None = None) -> dict[str, Any]:
    now = utc_now()
    since = now - timedelta(hours=24)
    flows: list[dict[str, Any]] = []
    with rt.store.read() as session:
        jobs_by_flow: dict[str, dict[str, int]] = defaultdict(lambda: {"queued": 0, "running": 0})
        for lock_key, status, n in session.execute(
            select(Job.lock_key, Job.status, func.count())
            .where(Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]), Job.lock_key.like("flow:%"))
            .group_by(Job.lock_key, Job.status)
        ):
            jobs_by_flow[lock_key[5:]][str(status)] = n
        letters = dict(session.execute(
            select(DeadLetter.flow, func.count()).where(DeadLetter.status == DeadLetterStatus.OPEN).group_by(DeadLetter.flow)
        ).all())
        reviews = dict(session.execute(
            select(Review.entity, func.count()).where(Review.status == ReviewStatus.OPEN).group_by(Review.entity)
        ).all())
        conflicts = dict(session.execute(
            select(Conflict.entity, func.count()).where(Conflict.at >= since).group_by(Conflict.entity)
        ).all())
        states = {s.system: s for s in session.scalars(select(SystemState))}
        for name, flow in rt.config.flows.items():
            # Systems of the flow refusing our credentials (the last pull or the scheduled check_auth
            # said so; either clears it once they accept them again).
            refused = {
                s: states[s].auth_error or "credentials refused"
                for s in dict.fromkeys(flow.systems) if s in states and states[s].auth_state == "failed"
            }
            runs = list(session.scalars(
                select(Run).where(Run.flow == name, Run.started_at >= since).order_by(Run.id.desc()).limit(500)
            ))
            last = runs[0] if runs else session.scalar(select(Run).where(Run.flow == name).order_by(Run.id.desc()).limit(1))
            cursors = {c.system: c.watermark for c in session.scalars(select(Cursor).where(Cursor.consumer == name))}
            marks = [cursors.get(s) for s in flow.systems if not (flow.direction == "one_way" and s != flow.source)]
            lag = (now - min(marks)).total_seconds() if marks and None not in marks else None
            series = [
                {"t": _iso(r.finished_at), "moved": _moved((r.stats or {}).get("counts", {})),
                 "lag": (r.stats or {}).get("lag_seconds")}
                for r in reversed(runs) if r.finished_at is not None
            ]
            attention = [f"{s} refuses our credentials: {reason.splitlines()[0][:160] if reason else ''}"
                         for s, reason in refused.items()]
            if last is not None and str(last.status) == "failed":
                attention.append("last run failed")
            finished = next((r for r in runs if r.finished_at is not None), None)
            if finished is not None and finished.error:
                # A system that is down or refusing calls: its work waits while the others' flows go on.
                attention.extend(f"last run: {line[:160]}" for line in dict.fromkeys(finished.error.splitlines()[:3]))
            if letters.get(name):
                attention.append(f"{letters[name]} dead letters")
            if reviews.get(flow.entity):
                attention.append(f"{reviews[flow.entity]} reviews waiting")
            if lag is not None and lag > LAG_WARNING_SECONDS:
                attention.append(f"lag {int(lag)} s")
            flows.append({
                "name": name,
                "entity": flow.entity,
                "systems": flow.systems,
                "enabled": flow.enabled,
                "health": _health(flow, refused, last, attention),
                "attention": attention,
                "auth_failed": refused,
                "last_run": None if last is None else {
                    "id": last.id, "kind": str(last.kind), "status": str(last.status), "started_at": _iso(last.started_at),
                    "finished_at": _iso(last.finished_at), "records_moved": _moved((last.stats or {}).get("counts", {})),
                    "error": last.error,
                },
                "records_moved_24h": sum(p["moved"] for p in series),
                "lag_seconds": lag,
                "cursors": {s: _iso(w) for s, w in cursors.items()},
                "next_run": (next_runs or {}).get(name),
                "jobs": jobs_by_flow.get(name, {"queued": 0, "running": 0}),
                "reviews_open": reviews.get(flow.entity, 0),
                "conflicts_24h": conflicts.get(flow.entity, 0),
                "dead_letters_open": letters.get(name, 0),
                "series": series,
            })
        channels = {c.system: c for c in session.scalars(select(Channel))}
    systems = []
    for name, spec in rt.config.systems.items():
        state = states.get(name)
        connector = rt.connectors.get(name)
        info = dict(connector.status()) if connector is not None else {}
        stats = getattr(getattr(connector, "client", None), "stats", None)
        if stats is not None and "calls_last_hour" not in info:
            hour = stats.last_hour()
            info.setdefault("calls_last_hour", hour["calls"])
            info.setdefault("errors_last_hour", hour["errors"])
        paused = state.paused_until if state and state.paused_until and state.paused_until > now else None
        systems.append({
            "name": name,
            "type": spec.type,
            "auth_state": state.auth_state if state else info.get("auth_state", "unknown"),
            "auth_error": state.auth_error if state else None,
            "paused_until": _iso(paused),
            "pause_reason": state.pause_reason if paused else None,
            "channel_expires_at": _iso(channels[name].expires_at) if name in channels else None,
            **{k: v for k, v in info.items() if k not in ("auth_state",)},
        })
    counts = JobQueue(rt.store).counts()
    flows.sort(key=lambda f: (HEALTH_ORDER[f["health"]], f["name"]))
    return {
        "generated_at": _iso(now),
        "flows": flows,
        "systems": systems,
        "queue": {
            "queued": counts.queued, "scheduled": counts.scheduled, "running": counts.running,
            "failed": counts.failed, "dead": counts.dead, "oldest_queued_age_seconds": counts.oldest_queued_age_seconds,
        },
    }
