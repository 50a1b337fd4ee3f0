"""crmsync as a service: webhook intake, job workers, the scheduler.

Everything goes through the job queue in the state database: the receivers and
the scheduler only enqueue; workers (in this process or in ``crmsync worker``
processes on other hosts) do the work. Dedupe and unique keys make a redelivered
webhook or a slot seen by two schedulers one job; lock keys keep one record's
jobs in order.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from datetime import UTC, timedelta
from typing import Any

from sqlalchemy import select, update

from connectors.base import ChangeHint
from connectors.errors import AuthError, ConnectorError

from .engine import SyncEngine
from .intake import WEBHOOK_PRIORITY, WebhookIntake, hint_of  # noqa: F401 - part of this module's interface
from .leases import LeaseKeeper
from .logs import register_secret
from .operations import replay_dead_letters
from .records import dead_letter
from .runtime import Runtime
from .state.inbox import mark_processed
from .state.models import Channel, Run, SystemState
from .state.models.enums import DeadLetterStage, InboxStatus, RunStatus
from .state.queue import ClaimedJob, JobQueue, LeaseLost, new_worker_id
from .state.types import utc_now

log = logging.getLogger(__name__)

FLOW_PRIORITY = 0


def enqueue_flow(queue: JobQueue, flow: str, *, full: bool = False, slot: str | None = None, session=None) -> int:
    """One pass of ``flow``. A pass already waiting covers new changes too, so it is not queued twice."""
    return queue.enqueue(
        "flow_pass",
        {"flow": flow, "full": full},
        lock_key=f"flow:{flow}",
        dedupe_key=f"flow:{flow}:{'full' if full else 'incremental'}",
        unique_key=f"slot:{flow}:{'full' if full else 'inc'}:{slot}" if slot else None,
        priority=FLOW_PRIORITY,
        session=session,
    )


class Worker:
    """Claims jobs and runs them, with a heartbeat, until told to stop.

    Graceful stop: no new claims; the running job may finish within the grace
    period, else it is released (back to the queue, attempt not counted).
    """

    def __init__(
        self, runtime: Runtime, engine: SyncEngine, queue: JobQueue, *, name: str = "worker", poll_seconds: float = 0.2,
        webhook_batch: int = 50,
    ) -> None:
        self.rt = runtime
        self.engine = engine
        self.queue = queue
        self.id = new_worker_id(name)
        self.poll_seconds = poll_seconds
        self.stopping = asyncio.Event()
        self.lease = max(self.rt.config.sync.lease.total_seconds(), 1.0)
        self.done = 0
        #: webhook jobs handled together at most (a burst of deliveries becomes one pass)
        self.webhook_batch = webhook_batch
        self.leases = LeaseKeeper(queue, self.id, self.lease)

    async def run(self) -> None:
        self.leases.start()
        try:
            await self._claim_loop()
        finally:
            self.leases.stop()

    async def _claim_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                jobs = await asyncio.to_thread(self.queue.claim, self.id, lease_seconds=self.lease)
            except Exception:
                log.exception("claiming jobs failed; retrying")
                await self._sleep(2.0)
                continue
            if not jobs:
                await self._sleep(self.poll_seconds)
                continue
            for job in jobs:
                if job.kind == "webhook":
                    batch = [job, *await self._more_webhooks()]
                    if len(batch) == 1:
                        await self._supervise(batch, self.execute(job))
                    else:
                        await self._supervise(batch, self._execute_webhooks(batch))
                else:
                    await self._supervise([job], self.execute(job))

    async def _more_webhooks(self) -> list[ClaimedJob]:
        """Webhook jobs waiting right now, taken together: one fetch per system and one reconcile
        pass for a whole burst of deliveries instead of one each (lock keys still keep any one
        record's jobs apart and in order)."""
        if self.webhook_batch <= 1:
            return []
        try:
            return await asyncio.to_thread(
                self.queue.claim, self.id, lease_seconds=self.lease, kinds=["webhook"], limit=self.webhook_batch - 1
            )
        except Exception:  # noqa: BLE001 - the ones we have are enough to go on with
            return []

    async def _execute_webhooks(self, jobs: list[ClaimedJob]) -> None:
        by_system: dict[str, list[ChangeHint]] = {}
        for job in jobs:
            for h in job.payload["hints"]:
                by_system.setdefault(job.payload["system"], []).append(hint_of(h))
        for system, hints in by_system.items():
            await self.engine.sync_hints(system, hints, job_id=jobs[0].id)
        inbox_ids = [job.payload["inbox_id"] for job in jobs if job.payload.get("inbox_id")]
        if inbox_ids:
            with self.rt.store.write() as session:
                for inbox_id in inbox_ids:
                    mark_processed(session, inbox_id, InboxStatus.PROCESSED)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)

    async def _supervise(self, jobs: list[ClaimedJob], work) -> None:
        """Run ``work`` for ``jobs`` while the lease keeper's thread holds their leases.

        Some were taken over (our lease ran out): stop, and let the rest be retried too. Stopping
        (SIGTERM) past the grace period: give them back. A failure: each job records it."""
        ids = [j.id for j in jobs]
        self.leases.hold(ids)
        if any(j.attempt > 1 for j in jobs):
            await asyncio.to_thread(self._close_abandoned_runs, ids)
        task = asyncio.create_task(work)
        lost: set[int] = set()
        try:
            try:
                while not task.done():
                    await asyncio.wait({task}, timeout=min(1.0, self.lease / 3))
                    lost = self.leases.lost(ids)
                    if lost and not task.done():
                        log.warning("jobs %s were taken over by another worker; stopping them here", sorted(lost))
                        task.cancel()
                        break
            except asyncio.CancelledError:
                task.cancel()  # this worker is being stopped: stop the work; its jobs are given back below
            try:
                result = await task
            except asyncio.CancelledError:
                for job in jobs:
                    if job.id not in lost:
                        await asyncio.to_thread(self._release, job)
                if not lost:
                    raise
                return
            except Exception as exc:  # noqa: BLE001 - every failure is recorded on the job
                for job in jobs:
                    await asyncio.to_thread(self._fail, job, exc)
                return
            for job in jobs:
                try:
                    await asyncio.to_thread(self.queue.complete, job, result if len(jobs) == 1 else {"batched_with": len(jobs)})
                    self.done += 1
                except LeaseLost:
                    log.warning("job %s finished after its lease was lost", job.id)
        finally:
            self.leases.drop(ids)

    def _close_abandoned_runs(self, job_ids: list[int]) -> None:
        """A run record left open by a worker that died mid-job (SIGKILL, lost host) is closed when
        the job is taken up again, so the status page does not show it running for ever."""
        with self.rt.store.write() as session:
            session.execute(
                update(Run)
                .where(Run.job_id.in_(job_ids), Run.status == RunStatus.RUNNING)
                .values(status=RunStatus.FAILED, finished_at=utc_now(),
                        error="the worker running it stopped before the end (its lease expired); the job was retried")
            )

    def _release(self, job: ClaimedJob) -> None:
        with contextlib.suppress(LeaseLost):
            self.queue.release(job)

    def _fail(self, job: ClaimedJob, exc: Exception) -> None:
        # A system's failure (outage, throttling, even a refused token being rotated) may pass, so it is
        # retried up to the job's maximum; a programming or data error would only fail the same way again.
        retryable = isinstance(exc, ConnectorError) or not isinstance(exc, (KeyError, ValueError, TypeError))
        message = f"{type(exc).__name__}: {exc}"
        log.warning("job %s (%s) failed: %s", job.id, job.kind, message)
        try:
            outcome = self.queue.fail(job, message, retryable=retryable)
        except LeaseLost:
            return
        if outcome.needs_dead_letter:
            with self.rt.store.write() as session:
                payload = dict(job.payload)
                dead_letter(
                    session, entity=None, flow=payload.get("flow"), system=payload.get("system"), object=None,
                    external_id=None, canonical_id=None, stage=DeadLetterStage.PULL, code=f"job.{job.kind}",
                    message=message, payload=payload, attempts=job.attempt,
                )

    async def execute(self, job: ClaimedJob) -> dict[str, Any]:
        payload = job.payload
        if job.kind == "flow_pass":
            report = await self.engine.run_flow(payload["flow"], full=bool(payload.get("full")), job_id=job.id)
            return {"counts": report.as_dict()["counts"], "errors": report.errors}
        if job.kind == "webhook":
            hints = [hint_of(h) for h in payload["hints"]]
            reports = await self.engine.sync_hints(payload["system"], hints, job_id=job.id)
            if payload.get("inbox_id"):
                with self.rt.store.write() as session:
                    mark_processed(session, payload["inbox_id"], InboxStatus.PROCESSED)
            return {"flows": [r.flow for r in reports], "errors": [e for r in reports for e in r.errors]}
        if job.kind == "replay":
            reports = await replay_dead_letters(self.engine, list(payload["dead_letter_ids"]))
            return {"replayed": len(reports)}
        if job.kind == "renew_channels":
            return await renew_channels(self.rt, payload.get("notify_base"))
        if job.kind == "check_auth":
            return await check_auth(self.rt)
        raise ValueError(f"unknown job kind {job.kind!r}")


async def check_auth(rt: Runtime) -> dict[str, Any]:
    """One cheap authenticated call per system: refreshes tokens due for it, and records whether
    each system accepts our credentials (``/readyz`` and the status page read it), so a refused
    credential shows before a sync needs it, and a fixed one clears the alarm without a sync."""
    result: dict[str, list[str]] = {"ok": [], "failed": [], "unavailable": []}
    for name, connector in rt.connectors.items():
        try:
            await connector.check()
        except AuthError as exc:
            outcome, error = "failed", str(exc)
        except ConnectorError as exc:  # an outage says nothing about the credentials
            log.warning("credential check of %s could not reach it: %s", name, exc)
            result["unavailable"].append(name)
            continue
        else:
            outcome, error = "ok", None
        result[outcome].append(name)
        with rt.store.write() as session:
            state = session.get(SystemState, name) or SystemState(system=name)
            state.auth_state, state.auth_error = outcome, error
            session.add(state)
    return result


async def renew_channels(rt: Runtime, notify_base: str | None) -> dict[str, Any]:
    """Enable or renew push channels (Zoho watch) for systems that support them."""
    import secrets

    renewed = []
    base = (notify_base or rt.config.server.base_url).rstrip("/")
    for name, connector in rt.connectors.items():
        if not connector.supports_notifications:
            continue
        objects = sorted({
            rt.mappings.mapper(flow.entity, name).object
            for flow in rt.config.flows.values() if flow.enabled and flow.webhooks and name in flow.systems
        })
        if not objects:
            continue
        with rt.store.read() as session:
            channel = session.scalar(select(Channel).where(Channel.system == name))
        if channel is not None and channel.expires_at - utc_now() > timedelta(hours=6) and sorted(channel.objects) == objects:
            continue
        channel_id = channel.channel_id if channel is not None else str(secrets.randbelow(10**15) + 10**15)
        token = secrets.token_urlsafe(24)[:32]
        register_secret(token)  # the channel's credential: never shown in logs or stored bodies
        expires = utc_now() + timedelta(days=1)
        result = await connector.enable_notifications(objects, f"{base}/webhooks/{name}", channel_id, token, expires)
        with rt.store.write() as session:
            row = session.scalar(select(Channel).where(Channel.channel_id == result.channel_id))
            if row is None:
                row = Channel(system=name, channel_id=result.channel_id, token=result.token, objects=objects,
                              expires_at=result.expires_at)
                session.add(row)
            else:
                row.token, row.objects, row.expires_at = result.token, objects, result.expires_at
        renewed.append(name)
    return {"renewed": renewed}


class Scheduler:
    """APScheduler 3 in the event loop. It only enqueues; the unique key of each slot
    makes two schedulers (two ``serve`` processes) enqueue it once."""

    def __init__(self, runtime: Runtime, queue: JobQueue) -> None:
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        self.rt = runtime
        self.queue = queue
        self.scheduler = AsyncIOScheduler(timezone="UTC")

    def start(self) -> None:
        from datetime import datetime

        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        def trigger(spec):
            if spec.cron:
                return CronTrigger.from_crontab(spec.cron, timezone=spec.timezone)
            # Anchored at the epoch so every scheduler process fires at the same instants.
            return IntervalTrigger(seconds=spec.interval.total_seconds(), timezone="UTC",
                                   start_date=datetime(1970, 1, 1, tzinfo=UTC))

        for name, flow in self.rt.config.flows.items():
            if not flow.enabled:
                continue
            if flow.schedule is not None:
                self.scheduler.add_job(self._slot, trigger(flow.schedule), args=[name, False], id=f"sync:{name}",
                                       misfire_grace_time=60, coalesce=True, max_instances=1)
            if flow.reconcile is not None:
                self.scheduler.add_job(self._slot, trigger(flow.reconcile), args=[name, True], id=f"reconcile:{name}",
                                       misfire_grace_time=600, coalesce=True, max_instances=1)
        if any(c.supports_notifications for c in self.rt.connectors.values()):
            self.scheduler.add_job(self._renew, IntervalTrigger(hours=1, timezone="UTC"), id="renew_channels",
                                   next_run_time=datetime.now(UTC))
        # Token refresh and credential check: every system, at start and then every 30 minutes.
        self.scheduler.add_job(self._check_auth, IntervalTrigger(minutes=30, timezone="UTC"), id="check_auth",
                               next_run_time=datetime.now(UTC))
        self.scheduler.add_job(self._rescue, IntervalTrigger(seconds=max(self.rt.config.sync.lease.total_seconds() / 2, 1)),
                               id="rescue")
        self.scheduler.start()

    def next_runs(self) -> dict[str, str | None]:
        out = {}
        for job in self.scheduler.get_jobs():
            if job.id.startswith("sync:"):
                out[job.id[5:]] = job.next_run_time.isoformat() if job.next_run_time else None
        return out

    async def _slot(self, flow: str, full: bool) -> None:
        spec = self.rt.config.flows[flow].reconcile if full else self.rt.config.flows[flow].schedule
        with _stopping_is_no_failure():
            await asyncio.to_thread(enqueue_flow, self.queue, flow, full=full, slot=slot_name(spec))

    async def _renew(self) -> None:
        with _stopping_is_no_failure():
            await asyncio.to_thread(self.queue.enqueue, "renew_channels", {}, dedupe_key="renew_channels", priority=5)

    async def _check_auth(self) -> None:
        with _stopping_is_no_failure():
            await asyncio.to_thread(self.queue.enqueue, "check_auth", {}, dedupe_key="check_auth", priority=5)

    async def _rescue(self) -> None:
        try:
            report = await asyncio.to_thread(self.queue.rescue_expired)
        except asyncio.CancelledError:
            log.info("rescuing expired jobs: cut short, the process is stopping")
            return
        except Exception:
            log.exception("rescuing expired jobs failed")
            return
        if report.requeued or report.dead:
            log.warning("rescued jobs of dead workers: requeued %s, dead %s", report.requeued, report.dead)

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)


@contextlib.contextmanager
def _stopping_is_no_failure():
    """A scheduled job cancelled because the process is stopping (asyncio.run cancels the tasks left):
    apscheduler logs whatever its job raises as the job's failure, with a traceback. Stopping is not
    one; the job ends there (whatever it was enqueuing is enqueued by the next slot or process)."""
    try:
        yield
    except asyncio.CancelledError:
        log.info("scheduled job cut short: the process is stopping")


def slot_name(spec, now=None) -> str:
    """The scheduled time a firing belongs to — the same in every scheduler process.

    Intervals are aligned to the epoch (every process fires at the same instants);
    a cron slot is the fire time at or just before now.
    """
    from datetime import datetime

    now = now or datetime.now(UTC)
    if spec.interval is not None:
        step = spec.interval.total_seconds()
        return datetime.fromtimestamp((now.timestamp() + 0.5) // step * step, UTC).isoformat(timespec="seconds")
    from apscheduler.triggers.cron import CronTrigger

    trigger = CronTrigger.from_crontab(spec.cron, timezone=spec.timezone)
    fire = trigger.get_next_fire_time(None, now - timedelta(seconds=59))
    return (fire or now).astimezone(UTC).isoformat(timespec="seconds")


def install_stop_handlers(stop) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop)
