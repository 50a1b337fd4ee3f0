"""The durable job queue, kept in the state database's ``jobs`` table.

Guarantees (any number of worker processes on PostgreSQL; one process on SQLite):

* **Dedupe key** — while a job with the key is queued or running, enqueueing the
  key again returns that job's id (a redelivered webhook adds no work). Once it
  finished, the key enqueues a new job. Enforced by a partial unique index and
  ``INSERT … ON CONFLICT DO NOTHING``, so two servers cannot both win.
* **Unique key** — one job per key, whatever its status, for as long as the row is
  kept: a scheduler slot (``sync:partners:2025-03-01T10:00Z``) runs once even when
  two schedulers enqueue it minutes apart.
* **Lock key** — jobs sharing it (one key per record) run one at a time, in enqueue
  order: a job is claimed only when no earlier job of its key is queued or running
  and none is running at all. A partial unique index ("one running job per lock
  key") backs this up against snapshot races between claimers. A job waiting for
  its retry still holds its place, so a record's later work waits behind it; a job
  that ends failed or dead stops blocking.
* **Claim** — ``SELECT … FOR UPDATE SKIP LOCKED`` in (priority desc, run_at, id)
  order on PostgreSQL; ``BEGIN IMMEDIATE`` on SQLite.
* **Lease** — a claim holds the job until ``lease_expires_at``; :meth:`JobQueue.heartbeat`
  extends it, :meth:`JobQueue.rescue_expired` requeues jobs of workers that died
  (``kill -9``).
* **Fencing** — every claim increments ``attempts``; :meth:`complete`, :meth:`fail`
  and :meth:`release` only touch the row if the same worker still holds the same
  attempt, else raise :class:`LeaseLost`. Call :meth:`complete` inside the
  transaction that commits the job's effects (``session=``): a worker that lost its
  lease then rolls its effects back, and each job's effects commit exactly once.

Idle workers sleep in :class:`~sync_engine.state.wakeup.JobWaiter` and are woken
(``NOTIFY`` on PostgreSQL) by enqueues, releases, rescues and by the end of a
job whose record has more work waiting.

Times come from the database clock on PostgreSQL (workers on several hosts may
disagree about the time; the database is the one clock they share) and from
Python on SQLite (same host). Tests may inject a ``clock``.
"""
from __future__ import annotations

import os
import random
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Interval,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .db import StateStore
from .models import PENDING_JOB_STATUSES, Job, JobStatus, Run, RunStatus
from .types import UTCDateTime, utc_now
from .wakeup import announce

DEFAULT_LEASE_SECONDS = 60.0
DEFAULT_MAX_ATTEMPTS = 5
MAX_ERROR_LENGTH = 4000
# Attempts at the insert-or-find loop of enqueue and at a claim that lost a race.
_RACE_RETRIES = 5

_jobs = Job.__table__
_runs = Run.__table__


def _status_in(column: Any, *statuses: JobStatus) -> ColumnElement[bool]:
    """``status IN ('queued', …)`` with the values written into the SQL, not bound.

    psycopg prepares statements it runs often, and PostgreSQL may then use a
    generic plan, which cannot use a partial index (``WHERE status = 'queued'``)
    when the status is a parameter: the claim query then scanned every pending
    job once per queued job (quadratic; a 2,000-job drain took minutes on a
    fresh database instead of seconds). Constants keep every plan on the
    partial indexes.
    """
    values = [literal_column(f"'{JobStatus(s).value}'") for s in statuses]
    return column == values[0] if len(values) == 1 else column.in_(values)


def _is_pending(column: Any) -> ColumnElement[bool]:
    return _status_in(column, *PENDING_JOB_STATUSES)


def _runnable_in_record_order() -> ColumnElement[bool]:
    """No lock key, or: first pending job of its lock key and no job of that key running.

    Both sub-queries are index look-ups (min over ``ix_jobs_lock_key_pending``, the
    small ``uq_jobs_lock_key_running``), so the claim scan stays cheap when it passes
    many jobs waiting behind busy records. Built once: constructing it is costlier
    than running it.
    """
    pending = _jobs.alias("pending")
    running = _jobs.alias("running")
    first_of_key = (
        select(func.min(pending.c.id))
        .where(pending.c.lock_key == _jobs.c.lock_key, _is_pending(pending.c.status))
        .scalar_subquery()
    )
    key_running = exists().where(
        running.c.lock_key == _jobs.c.lock_key, _status_in(running.c.status, JobStatus.RUNNING)
    )
    return or_(_jobs.c.lock_key.is_(None), and_(_jobs.c.id == first_of_key, ~key_running))


_RUNNABLE_IN_RECORD_ORDER = _runnable_in_record_order()


class LeaseLost(Exception):
    """The job is no longer held by this worker and attempt: its lease expired and it was
    rescued (and maybe re-claimed), or it was released. Roll back the job's effects."""

    def __init__(self, job: ClaimedJob, action: str) -> None:
        super().__init__(
            f"cannot {action} job {job.id} ({job.kind}): worker {job.claimed_by} no longer holds attempt {job.attempt}"
        )
        self.job = job


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter: ``base * factor**(attempt-1)``, capped, plus up to ``jitter`` of it.

    Jitter spreads the retries of jobs that failed together (an outage) so they
    do not come back as one burst.
    """

    base_seconds: float = 10.0
    factor: float = 2.0
    max_seconds: float = 3600.0
    jitter: float = 0.25

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        exponent = max(0, attempt - 1)
        delay = min(self.max_seconds, self.base_seconds * self.factor**exponent)
        if self.jitter > 0:
            delay += (rng or random).uniform(0, delay * self.jitter)
        return delay


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A job this worker holds. ``attempt`` is its claim number (1 on the first run)."""

    id: int
    kind: str
    payload: dict[str, Any]
    attempt: int
    max_attempts: int
    priority: int
    lock_key: str | None
    dedupe_key: str | None
    claimed_by: str
    lease_expires_at: datetime
    run_at: datetime
    created_at: datetime

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts


@dataclass(frozen=True, slots=True)
class FailOutcome:
    """What :meth:`JobQueue.fail` did. ``status`` is queued (will retry at ``retry_at``), failed or dead."""

    status: JobStatus
    attempt: int
    retry_at: datetime | None = None

    @property
    def will_retry(self) -> bool:
        return self.status is JobStatus.QUEUED

    @property
    def needs_dead_letter(self) -> bool:
        return self.status in (JobStatus.FAILED, JobStatus.DEAD)


@dataclass(frozen=True, slots=True)
class RescueReport:
    """Jobs whose lease expired: put back in the queue, or dead when that was their last attempt."""

    requeued: list[int] = field(default_factory=list)
    dead: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class QueueCounts:
    """Queue depth for ops. ``queued`` counts jobs due now; ``scheduled`` those waiting for
    their ``run_at`` (delayed jobs, retries in backoff)."""

    queued: int
    scheduled: int
    running: int
    failed: int
    dead: int
    #: seconds the oldest due job has been waiting since its run_at; None when nothing is due.
    oldest_queued_age_seconds: float | None
    #: {kind: {status: count}} over queued (due and scheduled) and running jobs.
    by_kind: dict[str, dict[str, int]]


def new_worker_id(prefix: str = "worker") -> str:
    """Unique per process and start: ``prefix@host:pid:random``. Never reuse one across restarts."""
    return f"{prefix}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class JobQueue:
    """Enqueue, claim, heartbeat, complete, fail, release and rescue jobs.

    Methods that take ``session=`` run inside the caller's transaction (pass a
    session from :meth:`StateStore.write`); without it they commit on their own.
    """

    def __init__(
        self,
        store: StateStore,
        *,
        retry: RetryPolicy | None = None,
        default_max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        clock: Callable[[], datetime] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if default_max_attempts < 1:
            raise ValueError("default_max_attempts must be at least 1")
        self.store = store
        self.retry = retry or RetryPolicy()
        self.default_max_attempts = default_max_attempts
        self._clock = clock
        self._rng = rng or random.Random()
        # The database clock only where there is a real server clock to share.
        self._db_clock = clock is None and store.is_postgres

    # -- producing -------------------------------------------------------

    def enqueue(
        self,
        kind: str,
        payload: Mapping[str, Any] | None = None,
        *,
        lock_key: str | None = None,
        dedupe_key: str | None = None,
        unique_key: str | None = None,
        priority: int = 0,
        run_at: datetime | None = None,
        delay: float | timedelta | None = None,
        max_attempts: int | None = None,
        session: Session | None = None,
    ) -> int:
        """Add a job and return its id — or the id of the job that already holds
        ``dedupe_key`` (queued or running) or ``unique_key`` (any status)."""
        if not kind:
            raise ValueError("a job needs a kind")
        if run_at is not None and delay is not None:
            raise ValueError("give run_at or delay, not both")
        attempts_allowed = self.default_max_attempts if max_attempts is None else max_attempts
        if attempts_allowed < 1:
            raise ValueError("max_attempts must be at least 1")
        if isinstance(delay, timedelta):
            delay = delay.total_seconds()
        when = literal(run_at, UTCDateTime()) if run_at is not None else self._now(seconds=delay or 0.0)
        values = {
            "kind": kind,
            "payload": dict(payload or {}),
            "status": JobStatus.QUEUED,
            "priority": priority,
            "run_at": when,
            "attempts": 0,
            "max_attempts": attempts_allowed,
            "lock_key": lock_key,
            "dedupe_key": dedupe_key,
            "unique_key": unique_key,
            "created_at": self._now(),
        }
        with self._transaction(session) as s:
            for _ in range(_RACE_RETRIES):
                insert = _dialect_insert(s)(_jobs).values(**values).on_conflict_do_nothing().returning(_jobs.c.id)
                job_id = s.execute(insert).scalar_one_or_none()
                if job_id is not None:
                    if run_at is None and not delay:
                        announce(s)
                    return job_id
                existing = self._holder_of(s, dedupe_key, unique_key)
                if existing is not None:
                    return existing
                # The holder finished between our insert and our look-up: its key is free again.
            raise RuntimeError(f"could not enqueue {kind} job: its dedupe key kept changing hands")

    def enqueue_many(
        self,
        kind: str,
        jobs: Sequence[tuple[Mapping[str, Any], str | None]],
        *,
        priority: int = 0,
        session: Session | None = None,
    ) -> list[int]:
        """Add many jobs of one kind, each ``(payload, lock_key)``, in one statement; ids in input order.

        For work without dedupe or unique keys (webhook deliveries, already deduplicated by the
        inbox), so no insert can conflict: the receivers' group commit enqueues a whole batch
        of deliveries in one round trip.
        """
        if not kind:
            raise ValueError("a job needs a kind")
        if not jobs:
            return []
        statement = (
            # Core insert, not the dialect's: SQLAlchemy caches its compiled form (this version
            # caches no postgresql.insert(), so every enqueue pays a fresh compile).
            insert(_jobs)
            .values(kind=kind, status=JobStatus.QUEUED, priority=priority, run_at=self._now(), attempts=0,
                    max_attempts=self.default_max_attempts, created_at=self._now())
            .returning(_jobs.c.id, sort_by_parameter_order=True)
        )
        rows = [{"payload": dict(payload), "lock_key": lock_key} for payload, lock_key in jobs]
        with self._transaction(session) as s:
            ids = list(s.execute(statement, rows).scalars())
            announce(s)
        return ids

    # -- consuming -------------------------------------------------------

    def claim(
        self,
        worker_id: str,
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        kinds: Sequence[str] | None = None,
        limit: int = 1,
    ) -> list[ClaimedJob]:
        """Take up to ``limit`` due jobs, highest priority first, then oldest run_at, then id."""
        if limit < 1:
            return []
        for _ in range(_RACE_RETRIES):
            try:
                with self.store.write() as s:
                    return self._claim(s, worker_id, lease_seconds, kinds, limit)
            except IntegrityError:
                # Another claimer started a job of the same lock key after our snapshot
                # was taken; the running-lock index refused the second one. Look again.
                continue
        return []

    def heartbeat(
        self,
        jobs: Iterable[int | ClaimedJob],
        worker_id: str,
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> set[int]:
        """Extend the leases of these jobs; returns the ids still held (a missing id was rescued: stop it)."""
        ids = [j.id if isinstance(j, ClaimedJob) else int(j) for j in jobs]
        if not ids:
            return set()
        with self.store.write() as s:
            statement = (
                update(_jobs)
                .where(
                    _jobs.c.id.in_(ids),
                    _status_in(_jobs.c.status, JobStatus.RUNNING),
                    _jobs.c.claimed_by == worker_id,
                )
                .values(lease_expires_at=self._now(seconds=lease_seconds), heartbeat_at=self._now())
                .returning(_jobs.c.id)
            )
            return set(s.execute(statement).scalars())

    def complete(
        self, job: ClaimedJob, result: Mapping[str, Any] | None = None, *, session: Session | None = None
    ) -> None:
        """Mark the job done. Raises :class:`LeaseLost` if this worker no longer holds it."""
        self._fenced_update(
            job,
            "complete",
            session,
            wake=job.lock_key is not None,
            status=JobStatus.DONE,
            result=dict(result) if result is not None else None,
            finished_at=self._now(),
            lease_expires_at=None,
        )

    def fail(
        self,
        job: ClaimedJob,
        error: BaseException | str,
        *,
        retryable: bool = True,
        retry_after: float | None = None,
        session: Session | None = None,
    ) -> FailOutcome:
        """Record a failed attempt.

        Retryable: back to the queue after the backoff (at least ``retry_after``
        seconds, e.g. a 429's Retry-After) until ``max_attempts``, then ``dead``.
        Not retryable: ``failed`` at once. Both terminal states are for the
        dead-letter queue (``FailOutcome.needs_dead_letter``).
        """
        message = _error_text(error)
        if not retryable:
            ends_record_turn = job.lock_key is not None
            self._fenced_update(job, "fail", session, wake=ends_record_turn, **self._finish(JobStatus.FAILED, message))
            return FailOutcome(JobStatus.FAILED, job.attempt)
        if job.is_last_attempt:
            ends_record_turn = job.lock_key is not None
            self._fenced_update(job, "fail", session, wake=ends_record_turn, **self._finish(JobStatus.DEAD, message))
            return FailOutcome(JobStatus.DEAD, job.attempt)
        wait = max(self.retry.delay(job.attempt, self._rng), retry_after or 0.0)
        retry_at = self._fenced_update(
            job,
            "fail",
            session,
            returning=_jobs.c.run_at,
            status=JobStatus.QUEUED,
            run_at=self._now(seconds=wait),
            last_error=message,
            claimed_by=None,
            lease_expires_at=None,
            heartbeat_at=None,
        )
        return FailOutcome(JobStatus.QUEUED, job.attempt, retry_at)

    def release(self, job: ClaimedJob, *, session: Session | None = None) -> None:
        """Give the job back unrun (graceful shutdown): queued again, this attempt not counted."""
        self._fenced_update(
            job,
            "release",
            session,
            wake=True,
            status=JobStatus.QUEUED,
            attempts=_jobs.c.attempts - 1,
            claimed_by=None,
            lease_expires_at=None,
            heartbeat_at=None,
            started_at=None,
        )

    def rescue_expired(self) -> RescueReport:
        """Requeue running jobs whose lease expired (their worker died or hung); a job that
        was on its last attempt goes dead instead. Safe to call from every worker."""
        now = self._now()
        last_attempt = _jobs.c.attempts >= _jobs.c.max_attempts
        statement = (
            update(_jobs)
            .where(_status_in(_jobs.c.status, JobStatus.RUNNING), _jobs.c.lease_expires_at < now)
            .values(
                status=case((last_attempt, literal(JobStatus.DEAD.value)), else_=literal(JobStatus.QUEUED.value)),
                last_error=literal("lease expired while held by ") + func.coalesce(_jobs.c.claimed_by, "?"),
                claimed_by=case((last_attempt, _jobs.c.claimed_by), else_=None),
                finished_at=case((last_attempt, now), else_=None),
                lease_expires_at=None,
                heartbeat_at=None,
            )
            .returning(_jobs.c.id, _jobs.c.status, _jobs.c.last_error)
        )
        with self.store.write() as s:
            rows = s.execute(statement).all()
            if rows:
                _abandon_runs(s, rows, now)
            if any(r.status == JobStatus.QUEUED for r in rows):
                announce(s)
        return RescueReport(
            requeued=sorted(r.id for r in rows if r.status == JobStatus.QUEUED),
            dead=sorted(r.id for r in rows if r.status == JobStatus.DEAD),
        )

    # -- ops -------------------------------------------------------------

    def counts(self) -> QueueCounts:
        now = self._now()
        due = _jobs.c.run_at <= now
        with self.store.read() as s:
            by_status = dict(
                s.execute(
                    select(_jobs.c.status, func.count())
                    .where(_status_in(_jobs.c.status, JobStatus.RUNNING, JobStatus.FAILED, JobStatus.DEAD))
                    .group_by(_jobs.c.status)
                ).all()
            )
            queued_due, queued_later, oldest, db_now = s.execute(
                select(
                    func.count().filter(due),
                    func.count().filter(~due),
                    func.min(_jobs.c.run_at).filter(due),
                    now,
                ).where(_status_in(_jobs.c.status, JobStatus.QUEUED))
            ).one()
            by_kind: dict[str, dict[str, int]] = {}
            pending = (
                select(_jobs.c.kind, _jobs.c.status, func.count())
                .where(_is_pending(_jobs.c.status))
                .group_by(_jobs.c.kind, _jobs.c.status)
            )
            for kind, status, n in s.execute(pending):
                by_kind.setdefault(kind, {})[str(status)] = n
        age = None
        if oldest is not None:
            age = max(0.0, (_as_utc(db_now) - _as_utc(oldest)).total_seconds())
        return QueueCounts(
            queued=queued_due,
            scheduled=queued_later,
            running=by_status.get(JobStatus.RUNNING, 0),
            failed=by_status.get(JobStatus.FAILED, 0),
            dead=by_status.get(JobStatus.DEAD, 0),
            oldest_queued_age_seconds=age,
            by_kind=by_kind,
        )

    def get(self, job_id: int) -> Job | None:
        """The job row (detached), for ops and tests."""
        with self.store.read() as s:
            return s.get(Job, job_id)

    def purge_finished(
        self,
        older_than: timedelta,
        *,
        statuses: Sequence[JobStatus] = (JobStatus.DONE,),
        batch_size: int = 5000,
    ) -> int:
        """Delete finished jobs older than ``older_than`` in small batches (keeps the table and
        its indexes small; failed and dead jobs are kept unless asked for)."""
        removed = 0
        while True:
            with self.store.write() as s:
                cutoff = self._now(seconds=-older_than.total_seconds())
                batch = (
                    select(_jobs.c.id)
                    .where(_status_in(_jobs.c.status, *statuses), _jobs.c.finished_at < cutoff)
                    .limit(batch_size)
                    .scalar_subquery()
                )
                deleted = s.execute(delete(_jobs).where(_jobs.c.id.in_(batch))).rowcount or 0
            removed += deleted
            if deleted < batch_size:
                return removed

    # -- internals -------------------------------------------------------

    def _claim(
        self, s: Session, worker_id: str, lease_seconds: float, kinds: Sequence[str] | None, limit: int
    ) -> list[ClaimedJob]:
        now = self._now()
        candidates = (
            select(_jobs.c.id)
            .where(
                _status_in(_jobs.c.status, JobStatus.QUEUED),
                _jobs.c.run_at <= now,
                _RUNNABLE_IN_RECORD_ORDER,
            )
            .order_by(_jobs.c.priority.desc(), _jobs.c.run_at, _jobs.c.id)
            .limit(limit)
        )
        if kinds:
            candidates = candidates.where(_jobs.c.kind.in_(list(kinds)))
        if self.store.is_postgres:
            candidates = candidates.with_for_update(skip_locked=True, of=_jobs)
        ids = list(s.execute(candidates).scalars())
        if not ids:
            return []
        claimed = (
            update(_jobs)
            .where(_jobs.c.id.in_(ids), _status_in(_jobs.c.status, JobStatus.QUEUED))
            .values(
                status=JobStatus.RUNNING,
                claimed_by=worker_id,
                attempts=_jobs.c.attempts + 1,
                lease_expires_at=self._now(seconds=lease_seconds),
                heartbeat_at=now,
                started_at=now,
                finished_at=None,
            )
            .returning(*_jobs.c)
        )
        rows = {row.id: row for row in s.execute(claimed)}
        return [_claimed_job(rows[i]) for i in ids if i in rows]

    def _fenced_update(
        self,
        job: ClaimedJob,
        action: str,
        session: Session | None,
        *,
        returning: Any = None,
        wake: bool = False,
        **values: Any,
    ) -> Any:
        """Update the job only if this worker still holds this attempt of it.

        ``wake``: tell idle workers a job became claimable (a released job, or the
        next job of a record whose current job just ended)."""
        statement = (
            update(_jobs)
            .where(
                _jobs.c.id == job.id,
                _status_in(_jobs.c.status, JobStatus.RUNNING),
                _jobs.c.claimed_by == job.claimed_by,
                _jobs.c.attempts == job.attempt,
            )
            .values(**values)
            .returning(returning if returning is not None else _jobs.c.id)
        )
        with self._transaction(session) as s:
            row = s.execute(statement).one_or_none()
            if row is not None and wake:
                announce(s)
        if row is None:
            raise LeaseLost(job, action)
        return row[0]

    def _finish(self, status: JobStatus, message: str) -> dict[str, Any]:
        return {"status": status, "last_error": message, "finished_at": self._now(), "lease_expires_at": None}

    def _holder_of(self, s: Session, dedupe_key: str | None, unique_key: str | None) -> int | None:
        if unique_key is not None:
            found = s.execute(select(_jobs.c.id).where(_jobs.c.unique_key == unique_key)).scalar_one_or_none()
            if found is not None:
                return found
        if dedupe_key is not None:
            return s.execute(
                select(_jobs.c.id)
                .where(_jobs.c.dedupe_key == dedupe_key, _is_pending(_jobs.c.status))
                .order_by(_jobs.c.id)
                .limit(1)
            ).scalar_one_or_none()
        return None

    def _now(self, *, seconds: float = 0.0) -> ColumnElement[datetime]:
        """Now (plus ``seconds``) as a SQL expression, from the clock this queue trusts."""
        if self._db_clock:
            # statement_timestamp(), not clock_timestamp(): stable within a statement, so
            # PostgreSQL can use it in index conditions.
            expression = func.statement_timestamp(type_=UTCDateTime())
            if seconds:
                expression = expression + literal(timedelta(seconds=seconds), Interval())
            return expression
        moment = (self._clock or utc_now)() + timedelta(seconds=seconds)
        return literal(moment, UTCDateTime())

    @contextmanager
    def _transaction(self, session: Session | None) -> Iterator[Session]:
        if session is not None:
            yield session
        else:
            with self.store.write() as s:
                yield s


def _dialect_insert(session: Session):
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def _claimed_job(row: Any) -> ClaimedJob:
    return ClaimedJob(
        id=row.id,
        kind=row.kind,
        payload=row.payload,
        attempt=row.attempts,
        max_attempts=row.max_attempts,
        priority=row.priority,
        lock_key=row.lock_key,
        dedupe_key=row.dedupe_key,
        claimed_by=row.claimed_by,
        lease_expires_at=row.lease_expires_at,
        run_at=row.run_at,
        created_at=row.created_at,
    )


def _error_text(error: BaseException | str) -> str:
    if isinstance(error, BaseException):
        text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    else:
        text = str(error)
    return text if len(text) <= MAX_ERROR_LENGTH else text[: MAX_ERROR_LENGTH - 1] + "…"


def _as_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=utc_now().tzinfo)


__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "ClaimedJob",
    "FailOutcome",
    "JobQueue",
    "LeaseLost",
    "QueueCounts",
    "RescueReport",
    "RetryPolicy",
    "new_worker_id",
]


def _abandon_runs(session: Session, rescued: Sequence[Any], now: ColumnElement[datetime]) -> None:
    """The runs the rescued jobs' workers left "running" end as failed, saying why: the worker died
    or hung, so nothing else would ever finish them (a retry records a run of its own)."""
    for row in rescued:
        fate = "its last attempt: the job is dead" if row.status == JobStatus.DEAD else "the job was queued again"
        session.execute(
            update(_runs)
            .where(_runs.c.job_id == row.id, _runs.c.status == RunStatus.RUNNING)
            .values(status=RunStatus.FAILED, finished_at=now,
                    error=f"abandoned: {row.last_error or 'lease expired'} (the worker died or hung); {fate}")
        )
