"""One pass of a flow, and syncs triggered by webhooks.

A pass: settle writes a crashed run left in doubt → pull every readable system
since its cursor and stage the changes → reconcile staged changes in batches
(merge, decide writes) and push each batch's writes → advance the cursors of the
systems whose pull completed. Every step commits what it finished, so a crash
anywhere resumes without losing or repeating a record.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator, Sequence

from sqlalchemy import select, update

from connectors.base import ChangeHint
from connectors.errors import AuthError, ConnectorError
from connectors.ratelimit import URGENT, priority
from mapping.references import MissingLink

from . import derive, notified
from . import records as rec
from .context import Report, UnitOfWork
from .pull import commit_cursor, pull_and_stage, stage_records
from .pulls import Pulls
from .push import push_pending, recover_in_doubt
from .records import dead_letter
from .reconcile import readable_systems, reconcile_batch
from .runtime import Runtime
from .state.models import Cursor, Link, Run, SystemState
from .state.models.enums import DeadLetterStage, LinkStatus, RunKind, RunStatus
from .state.models.pipeline import OutboxWrite, StagedChange
from .state.types import utc_now
from .turns import Turn, turns

log = logging.getLogger(__name__)

BATCH_SIZE = 200


class SyncEngine:
    def __init__(self, runtime: Runtime, *, batch_size: int = BATCH_SIZE) -> None:
        self.rt = runtime
        self.batch_size = batch_size

    # -- scheduled / CLI passes -----------------------------------------
    async def run_all(
        self, flows: Sequence[str] | None = None, *, full: bool = False, dry_run: bool = False,
        on_flow: Callable[[str], object] | None = None,
    ) -> list[Report]:
        """Run the flows in dependency order (partners before accounts before contacts and deals).

        Every flow starts reading at once: a later flow's pages are staged while the earlier flows
        merge and write, so a first sync waits on the network about once, not once per flow. A flow
        merges once the flows it depends on have merged, and writes once they have finished (see
        ``turns``), as its references need. If a flow fails, the flows depending on it stop before
        merging (``PrecedingFlowFailed``; what they staged waits for the next pass), the others go
        on, and the first error is raised once all have ended. A dry run holds one
        transaction per flow to the end, so its flows run one after the other. ``on_flow`` is called
        with each flow's name when its turn to merge comes."""
        names = self.rt.flows_in_order(list(flows) if flows else None)
        if dry_run or len(names) < 2:
            reports = []
            for name in names:
                if on_flow is not None:
                    on_flow(name)
                reports.append(await self.run_flow(name, full=full, dry_run=dry_run))
            return reports
        chain = turns(self.rt, names)
        for turn in chain:
            turn.task = asyncio.create_task(self.run_flow(turn.name, full=full, turn=turn, on_turn=on_flow))
        tasks = [turn.task for turn in chain]
        try:
            return [await task for task in tasks]
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()
            raise
        finally:
            # A failed flow's dependents see it and stop (PrecedingFlowFailed, in their run rows).
            await asyncio.gather(*tasks, return_exceptions=True)

    async def run_flow(
        self, flow_name: str, *, full: bool = False, dry_run: bool = False, job_id: int | None = None,
        turn: Turn | None = None, on_turn: Callable[[str], object] | None = None,
    ) -> Report:
        """One pass of a flow. ``turn``: its place in a ``run_all`` (it merges once the flows it depends
        on have merged, and writes once they have finished)."""
        kind = RunKind.FULL if full else RunKind.INCREMENTAL
        with self._recorded_run(flow_name, kind, job_id, dry_run=dry_run) as (uow, report):
            entity = self.rt.flow(flow_name).entity
            if not dry_run:
                await recover_in_doubt(self.rt, uow, report, entity, older_than=self.rt.config.sync.lease * 2)
                await self._collect_write_outcomes(uow, report, flow_name)
            pulled: list[str] = []

            async def pull(system: str) -> None:
                paused, auth_failed = self._gate(uow, system)
                if paused:
                    report.errors.append(f"{system}: paused until {paused.isoformat()}")
                    return
                try:
                    await pull_and_stage(self.rt, uow, report, flow_name, system, full=full, run_id=report.run_id,
                                         on_page=pulls.staged.set)
                    pulled.append(system)
                except ConnectorError as exc:
                    self._system_failed(uow, report, system, exc)
                else:
                    if auth_failed:  # it took our credentials again: the alarm clears without waiting for check_auth
                        self._auth_recovered(uow, system)

            # The systems are read side by side, and what they stage is reconciled while later pages are
            # still on their way (the CPU work of merging fills the network's waits). Staging and
            # reconciling transactions hold no await, so they never interleave.
            pulls = Pulls(self.rt, flow_name, pulled)
            pulls.start(pull)
            try:
                if turn is not None:
                    await turn.may_merge()
                if on_turn is not None:
                    on_turn(flow_name)
                await self._reconcile_all(uow, report, flow_name, dry_run=dry_run, pulls=pulls,
                                          merged=turn.merged if turn is not None else None,
                                          before_push=turn.may_write if turn is not None else None)
            finally:
                await pulls.cancel()
            with uow.tx() as session:
                mapper_objects = {s: self.rt.mappings.mapper(self.rt.flow(flow_name).entity, s).object for s in pulled}
                for system in pulled:
                    commit_cursor(session, system, mapper_objects[system], flow_name)
        return report

    # -- webhook-triggered ------------------------------------------------
    async def sync_hints(self, system: str, hints: Sequence[ChangeHint], *, origin: str = "event", job_id: int | None = None) -> list[Report]:
        """Fetch the current state of the hinted records and reconcile them (webhooks are hints, not data).

        A hint that carries the changed values (Zoho's ``affected_values``) is also evidence of an edit
        that a write of ours may overwrite right after it: kept for the records' merges (see
        ``notified``), and those records are reconciled even when their current version was already."""
        by_flow: dict[str, set[str]] = defaultdict(set)
        notes = []
        for hint in hints:
            flows = self.rt.flows_for(system, hint.object)
            for flow_name in flows:
                by_flow[flow_name].update(hint.ids)
            if flows and hint.values and hint.occurred_at is not None:
                notes.extend((hint.object, rid, values, hint.occurred_at) for rid, values in hint.values.items()
                             if rid in hint.ids)
        noted: set[str] = set()
        if notes:
            with self.rt.store.write() as session:
                notified.store(session, system, notes)
            noted = {str(rid) for _, rid, _, _ in notes}
        reports = []
        with priority(URGENT):
            for flow_name in self.rt.flows_in_order(list(by_flow)):
                reports.append(await self._sync_ids(flow_name, system, sorted(by_flow[flow_name]), origin=origin,
                                                    job_id=job_id, noted=noted))
        return reports

    async def _sync_ids(
        self, flow_name: str, system: str, ids: list[str], *, origin: str, job_id: int | None,
        noted: set[str] = frozenset(),
    ) -> Report:
        kind = RunKind.WEBHOOK if origin == "event" else RunKind.REPLAY if origin == "replay" else RunKind.RECONCILE
        with self._recorded_run(flow_name, kind, job_id) as (uow, report):
            entity = self.rt.flow(flow_name).entity
            mapper = self.rt.mappings.mapper(entity, system)
            fetched_at = utc_now()
            records = await self.rt.connector(system).fetch(mapper.object, ids, mapper.system_fields())
            forced = [r for r in records if r.external_id in noted] if origin != "replay" else []
            with uow.tx() as session:
                staged, skipped = stage_records(
                    session, entity, system, mapper.object, [r for r in records if r.external_id not in noted]
                    if forced else records, origin=origin, run_id=report.run_id,
                    force=origin == "replay", fetched_at=fetched_at,
                )
                if forced:
                    # A notified edit is weighed in the record's merge, even if this version was merged already.
                    stage_records(session, entity, system, mapper.object, forced, origin=origin,
                                  run_id=report.run_id, force=True, fetched_at=fetched_at)
            report.count(system, "read", len(records))
            report.count(system, "skipped", skipped)
            await self._read_counterparts(uow, report, flow_name, system, [r.external_id for r in records], origin)
            await self._reconcile_all(uow, report, flow_name, dry_run=False)
        return report

    async def _read_counterparts(
        self, uow: UnitOfWork, report: Report, flow_name: str, system: str, ids: list[str], origin: str
    ) -> None:
        """Read the same records' current state in the flow's other systems before merging.

        A webhook sync reads one system only; writing its changes into another
        system without looking would overwrite an edit made there since the last
        poll. One fetch per system (100 ids a call) lets the merge see both edits.
        """
        flow = self.rt.flow(flow_name)
        entity = flow.entity
        object = self.rt.mappings.mapper(entity, system).object
        with uow.tx() as session:
            canonical_ids = set(
                session.scalars(
                    select(Link.canonical_id).where(Link.system == system, Link.object == object, Link.external_id.in_(ids))
                )
            )
            others: dict[str, list[str]] = defaultdict(list)
            if canonical_ids:
                for link in session.scalars(
                    select(Link).where(
                        Link.entity == entity, Link.canonical_id.in_(canonical_ids), Link.system != system,
                        Link.status == LinkStatus.ACTIVE,
                    )
                ):
                    if link.system in readable_systems(self.rt, flow_name):
                        others[link.system].append(link.external_id)
        for other, other_ids in others.items():
            mapper = self.rt.mappings.mapper(entity, other)
            fetched_at = utc_now()
            # No ConnectorError handling here on purpose: merging without this system's current state
            # would write the other systems' values over an edit made there that we have not seen.
            # The job fails and is retried; the changes staged so far wait for it (or the next pass).
            records = await self.rt.connector(other).fetch(mapper.object, other_ids, mapper.system_fields())
            with uow.tx() as session:
                _, skipped = stage_records(session, entity, other, mapper.object, records, origin=origin,
                                           run_id=report.run_id, fetched_at=fetched_at)
            report.count(other, "read", len(records))
            report.count(other, "skipped", skipped)

    async def _collect_write_outcomes(self, uow: UnitOfWork, report: Report, flow_name: str) -> None:
        """Systems that apply our writes later (an ERP import job over interface tables) report
        their verdicts afterwards: a rejected row becomes a dead letter with the ERP's message."""
        for system in self.rt.flow(flow_name).systems:
            connector = self.rt.connector(system)
            poll = getattr(connector, "poll_write_outcomes", None)
            if poll is None:
                continue
            try:
                outcomes = await poll()
            except ConnectorError as exc:
                report.errors.append(f"{system}: reading write outcomes failed: {exc}")
                continue
            if not outcomes:
                continue
            with uow.tx() as session:
                rows = {
                    row.op_key: row
                    for row in session.scalars(select(OutboxWrite).where(OutboxWrite.op_key.in_([o.key for o in outcomes])))
                }
                for outcome in outcomes:
                    row = rows.get(outcome.key)
                    if row is None:
                        continue
                    if outcome.ok:
                        self._adopt_erp_id(session, row, outcome.external_id)
                        continue
                    row.status = "failed"
                    row.error = outcome.message
                    dead_letter(
                        session, entity=row.entity, flow=row.flow, system=row.system, object=row.object,
                        external_id=row.external_id, canonical_id=row.canonical_id, stage=DeadLetterStage.PUSH,
                        code=outcome.code, message=outcome.message or "rejected by the ERP",
                        payload={"action": row.action, "values": row.values, "op_key": row.op_key},
                        attempts=row.attempts, run_id=report.run_id,
                    )
                    report.count(system, "dead_letters")

    @staticmethod
    def _adopt_erp_id(session, row: OutboxWrite, erp_id: str | None) -> None:
        """An interface-table create was staged under our key; once imported, the ERP's own id
        is the one its reads will show, so the link moves to it (unless something holds it already)."""
        if row.action != "create" or not erp_id or erp_id == row.external_id:
            return
        if session.scalar(select(Link.id).where(Link.system == row.system, Link.object == row.object,
                                                Link.external_id == str(erp_id))) is not None:
            return
        link = session.scalar(select(Link).where(Link.entity == row.entity, Link.canonical_id == row.canonical_id,
                                                 Link.system == row.system))
        if link is not None:
            link.external_id = str(erp_id)

    # -- reconciliation loop -------------------------------------------
    async def _reconcile_all(
        self, uow: UnitOfWork, report: Report, flow_name: str, *, dry_run: bool, depth: int = 0,
        pulls: Pulls | None = None, merged: Callable[[], None] | None = None,
        before_push: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Reconcile every pending staged change of the flow, then send the writes.

        All batches are matched and merged before anything is sent: on a first sync, a
        company staged from Zoho must find its Fxiaoke twin before crmsync creates a copy of
        that twin in Zoho. So while ``pulls`` are still reading, full batches are reconciled
        as their pages arrive, and nothing is pushed until every pull has ended and every
        staged change is reconciled. Creates into systems whose pull failed (not read this
        pass) wait, for the same reason.
        """
        flow = self.rt.flow(flow_name)
        entity = flow.entity
        systems = readable_systems(self.rt, flow_name)
        with uow.tx() as session:
            # Records and writes waiting for a reference get another chance every pass.
            session.execute(
                update(StagedChange)
                .where(StagedChange.entity == entity, StagedChange.status == "deferred", StagedChange.system.in_(systems))
                .values(status="pending")
            )
            session.execute(
                update(OutboxWrite)
                .where(OutboxWrite.entity == entity, OutboxWrite.status == "deferred")
                .values(status="pending")
            )
        # Systems whose pull failed, known once the pulls have ended (None until then).
        hold_creates: frozenset[str] | None = None if pulls is not None else frozenset()
        for round_ in range(2):
            missing: list[MissingLink] = []
            last_id = 0
            while True:
                if pulls is not None and pulls.ended and hold_creates is None:
                    hold_creates = await pulls.finish(uow, entity)
                    last_id = 0
                reading = pulls is not None and not pulls.ended
                if reading:
                    pulls.staged.clear()  # set again by the next page staged after this read
                # A first sync grows the state tables fast: their query plans need fresh statistics.
                self.rt.store.refresh_statistics()
                with uow.tx() as session:
                    query = (
                        # Plain rows (no ORM objects): what reconcile_batch changes in them it writes back itself.
                        select(*StagedChange.__table__.columns)
                        .where(
                            StagedChange.entity == entity,
                            StagedChange.status == "pending",
                            StagedChange.system.in_(systems),
                            StagedChange.id > last_id,
                        )
                        .order_by(StagedChange.id)
                        .limit(self.batch_size)
                    )
                    if session.get_bind().dialect.name == "postgresql":
                        query = query.with_for_update(skip_locked=True)
                    batch = rec.load_rows(session, query)
                    if reading and len(batch) < self.batch_size:
                        batch = []  # a part batch waits for more pages (fewer, fuller transactions)
                    if batch:
                        last_id = batch[-1].id
                        outcome = reconcile_batch(self.rt, session, report, flow_name, batch, report.run_id,
                                                  hold_creates=hold_creates or frozenset())
                        missing.extend(outcome.missing)
                if not batch:
                    if not reading:
                        break
                    await pulls.more()
                    # Staged rows' ids do not follow the order of staging: reconciled rows are deleted (SQLite
                    # hands their ids out again) and a record read again is restaged in its row. So the scan
                    # starts over; what it finds pending is what was staged since.
                    last_id = 0
                    continue
                # Reconciling is CPU work with no await: between batches (never inside a transaction) the
                # other workers of this process (tasks of one event loop) get their turn, and so do this
                # pass's own pulls. A worker waiting here between its check read and its write would
                # otherwise send an update decided on a read seconds old, over an edit made meanwhile
                # (see push._checked).
                await asyncio.sleep(0)
            pulls = None
            if merged is not None and round_ == 0 and not missing:
                merged()  # nothing of this flow's entity is merged after this (no references to fetch)
            if before_push is not None:
                await before_push()
            await push_pending(self.rt, uow, report, entity, run_id=report.run_id, dry_run=dry_run)
            for other in derive.entities_written_by(self.rt, entity):
                # A won deal's new ERP order, an order's status written back onto its deal: sent now, not next pass.
                await push_pending(self.rt, uow, report, other, run_id=report.run_id, dry_run=dry_run)
            if not missing or round_ == 1 or depth >= 2:
                return
            await self._sync_references(uow, report, missing, dry_run=dry_run, depth=depth)
            with uow.tx() as session:
                session.execute(
                    update(StagedChange)
                    .where(StagedChange.entity == entity, StagedChange.status == "deferred", StagedChange.system.in_(systems))
                    .values(status="pending")
                )

    async def _sync_references(self, uow: UnitOfWork, report: Report, missing: list[MissingLink], *, dry_run: bool, depth: int) -> None:
        """A record points at one not synced yet: fetch that one and sync it first."""
        wanted: dict[tuple[str, str], set[str]] = defaultdict(set)
        for link in missing:
            if link.key:
                continue  # a business number, not a record id: its own flow brings that record in
            wanted[(link.entity, link.system)].add(link.id)
        for (entity, system), ids in wanted.items():
            flows = [
                name for name in self.rt.flows_in_order()
                if self.rt.flow(name).entity == entity and system in readable_systems(self.rt, name)
            ]
            if not flows:
                continue  # nothing syncs that entity from that system: the records stay deferred, then dead-letter
            mapper = self.rt.mappings.mapper(entity, system)
            fetched_at = utc_now()
            try:
                records = await self.rt.connector(system).fetch(mapper.object, sorted(ids), mapper.system_fields())
            except ConnectorError as exc:
                report.errors.append(f"{system}: fetching referenced {entity} failed: {exc}")
                continue
            with uow.tx() as session:
                stage_records(session, entity, system, mapper.object, records, origin="poll", run_id=report.run_id,
                              force=True, fetched_at=fetched_at)
            await self._reconcile_all(uow, report, flows[0], dry_run=dry_run, depth=depth + 1)

    # -- bookkeeping -------------------------------------------------------
    @contextlib.contextmanager
    def _recorded_run(
        self, flow_name: str, kind: RunKind, job_id: int | None, *, dry_run: bool = False
    ) -> Iterator[tuple[UnitOfWork, Report]]:
        """A run row opened before the work and closed after it, failed or not."""
        report = Report(flow=flow_name, kind=kind.value, dry_run=dry_run)
        uow = UnitOfWork(self.rt.store, dry_run=dry_run)
        try:
            report.run_id = self._start_run(uow, flow_name, kind, job_id)
            yield uow, report
            self._finish_run(uow, report)
        except BaseException as exc:
            report.errors.append(f"{type(exc).__name__}: {exc}")
            self._finish_run(uow, report, failed=True)
            raise
        finally:
            uow.close()
            self.rt.metrics.runs.labels(flow_name, kind.value, "failed" if report.errors else "ok").inc()

    def _start_run(self, uow: UnitOfWork, flow_name: str, kind: RunKind, job_id: int | None) -> int:
        with uow.tx() as session:
            run = Run(flow=flow_name, kind=RunKind.DRY_RUN if uow.dry_run else kind,
                      status=RunStatus.RUNNING, stats={}, job_id=job_id)
            session.add(run)
            session.flush()
            return run.id

    def _finish_run(self, uow: UnitOfWork, report: Report, *, failed: bool = False) -> None:
        if report.run_id is None:
            return  # the run row was never written (the state database went away at its start)
        try:
            with uow.tx() as session:
                run = session.get(Run, report.run_id)
                if run is None:
                    return
                run.finished_at = utc_now()
                marks = [
                    c.watermark for c in session.scalars(select(Cursor).where(Cursor.consumer == report.flow))
                ]
                lag = (run.finished_at - min(marks)).total_seconds() if marks and None not in marks else None
                run.stats = {"counts": report.as_dict()["counts"], "lag_seconds": lag}
                run.error = "\n".join(report.errors)[:4000] or None
                if failed:
                    run.status = RunStatus.FAILED
                elif report.errors or report.total("dead_letters") or report.total("review"):
                    run.status = RunStatus.PARTIAL
                else:
                    run.status = RunStatus.SUCCEEDED
        except Exception:  # noqa: BLE001 - bookkeeping must not mask the pass's own outcome
            log.exception("could not record the end of run %s", report.run_id)

    def _gate(self, uow: UnitOfWork, system: str):
        """(paused until, or None; whether the system last refused our credentials)."""
        with uow.tx() as session:
            state = session.get(SystemState, system)
            if state is None:
                return None, False
            paused = state.paused_until if state.paused_until and state.paused_until > utc_now() else None
            return paused, state.auth_state == "failed"

    def _auth_recovered(self, uow: UnitOfWork, system: str) -> None:
        with uow.tx() as session:
            state = session.get(SystemState, system)
            if state is not None and state.auth_state == "failed":
                state.auth_state, state.auth_error = "ok", None

    def _system_failed(self, uow: UnitOfWork, report: Report, system: str, exc: ConnectorError) -> None:
        report.errors.append(f"{system}: {exc}")
        log.warning("pull from %s failed: %s", system, exc)
        with uow.tx() as session:
            state = session.get(SystemState, system) or SystemState(system=system)
            if isinstance(exc, AuthError):
                state.auth_state = "failed"
                state.auth_error = str(exc)
            until = getattr(exc, "until", None)
            if until is not None:
                state.paused_until = until
                state.pause_reason = str(exc)
            session.add(state)
