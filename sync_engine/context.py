"""What one pass of the engine carries around: the run, its counters, and the
unit of work that makes a dry run write nothing."""
from __future__ import annotations

import contextlib
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from .state.db import StateStore

#: Counter names, in the order the summary table shows them.
COUNTERS = ("read", "skipped", "created", "updated", "deleted", "matched", "conflicts", "review", "dead_letters", "deferred", "triggered", "written_back")
#: Counters shown only by passes that moved them (most configs have no triggers).
OPTIONAL_COUNTERS = frozenset({"triggered", "written_back"})


@dataclass(slots=True)
class PlannedWrite:
    """A write a dry run would have made (kept by dry runs only: they print them)."""

    flow: str
    system: str
    action: str  # create | update | delete
    canonical_id: str
    external_id: str | None
    changes: dict[str, tuple[Any, Any]]  # field -> (old, new)


@dataclass
class Report:
    flow: str
    kind: str
    dry_run: bool = False
    run_id: int | None = None
    counts: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    planned: list[PlannedWrite] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: staged changes whose deferral this pass already counted as an attempt (see reconcile._defer)
    deferrals_counted: set[int] = field(default_factory=set)

    def count(self, system: str, counter: str, n: int = 1) -> None:
        if n:
            self.counts[system][counter] += n

    def total(self, counter: str) -> int:
        return sum(c[counter] for c in self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "flow": self.flow,
            "kind": self.kind,
            "dry_run": self.dry_run,
            "run_id": self.run_id,
            "counts": {s: dict(c) for s, c in self.counts.items()},
            "errors": self.errors,
        }


class UnitOfWork:
    """Transactions for one pass.

    Normally each ``tx()`` is its own committed write transaction. In a dry run
    everything happens inside one outer transaction that is rolled back at the
    end, so the pass can read its own (pretend) writes and leaves nothing behind.
    """

    def __init__(self, store: StateStore, *, dry_run: bool = False) -> None:
        self.store = store
        self.dry_run = dry_run
        self._session: Session | None = None
        if dry_run:
            self._session = store.session(write=True)
            self._session.begin()

    @contextlib.contextmanager
    def tx(self) -> Iterator[Session]:
        if self._session is None:
            with self.store.write() as session:
                yield session
            return
        nested = self._session.begin_nested()
        try:
            yield self._session
        except BaseException:
            nested.rollback()
            raise
        else:
            nested.commit()

    def close(self) -> None:
        if self._session is not None:
            self._session.rollback()
            self._session.close()
            self._session = None
