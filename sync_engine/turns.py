"""The flows of one ``run_all``: when a flow may merge, and when it may write.

Every flow starts reading at once. A flow depends on the earlier flows (in dependency order) whose
entity its own references, directly or not (a contact's account, a deal's partner), on a flow of
its own entity, and on a flow that a trigger ties it to (a won deal makes an ERP order; the order's
status is written back onto the deal). It merges its records once those flows have merged theirs
(a contact's account has its canonical id once merged, written or not), and writes once they have
finished (the account's Zoho id, which the contact's write names, exists once its create has
landed). So one flow's merging fills the network waits of the writes it depends on, and flows that
depend on each other in no way (contacts and deals both pointing at accounts only) write side by
side.

A flow waits for a dependency to finish before merging, not just to merge, when the two share their
entity or a trigger ties them (the dependency's writes may change the records this one merges), or
when the dependency must fetch records its references point at (merged after its own writes).
"""
from __future__ import annotations

import asyncio

from . import derive
from .runtime import Runtime


class PrecedingFlowFailed(RuntimeError):
    """A flow of a ``run_all`` whose dependency failed: it stops before merging anything."""


class Turn:
    """One flow's place in a ``run_all``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.task: asyncio.Task | None = None
        #: (flow it depends on, whether its being merged is enough to merge this one)
        self.depends_on: list[tuple[Turn, bool]] = []
        self._merged = asyncio.Event()

    def merged(self) -> None:
        """Every record this flow read is merged, and nothing more of its entity will be this pass."""
        self._merged.set()

    async def may_merge(self) -> None:
        for turn, early in self.depends_on:
            if early and not turn._merged.is_set():
                signal = asyncio.ensure_future(turn._merged.wait())
                try:
                    await asyncio.wait([signal, turn.task], return_when=asyncio.FIRST_COMPLETED)
                finally:
                    signal.cancel()
            elif not early:
                await asyncio.wait([turn.task])
            turn._raise_if_failed()

    async def may_write(self) -> None:
        for turn, _ in self.depends_on:
            await asyncio.wait([turn.task])
            turn._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self.task.done() and (self.task.cancelled() or self.task.exception() is not None):
            raise PrecedingFlowFailed(f"not merged: the pass of flow {self.name!r}, which it depends on, failed")


def turns(rt: Runtime, names: list[str]) -> list[Turn]:
    """The turns of ``names`` (in dependency order), each with the earlier ones it depends on."""
    entity = {name: rt.flow(name).entity for name in names}
    reach: dict[str, set[str]] = {}

    def referenced(e: str) -> set[str]:  # every entity ``e`` points at, directly or through others
        if e not in reach:
            reach[e] = set()
            for ref in rt.mappings.references_of(e):
                reach[e] |= {ref, *referenced(ref)}
        return reach[e]

    out: list[Turn] = []
    for name in names:
        turn = Turn(name)
        mine = entity[name]
        for earlier in out:
            theirs = entity[earlier.name]
            tied = theirs == mine or mine in derive.entities_written_by(rt, theirs) \
                or theirs in derive.entities_written_by(rt, mine)
            if tied or theirs in referenced(mine):
                turn.depends_on.append((earlier, not tied))
        out.append(turn)
    return out
