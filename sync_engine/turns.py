"""The flows of one ``run_all``: when a flow may merge, and when it may write.

Flows run in dependency order (partners, accounts, contacts, deals), all of them reading at once.
A flow merges its records once the flow before it has merged its own (a contact's account must be
linked: it is, once merged, written or not), and writes once the flow before it has finished (the
account's id in Zoho, which the contact's write names, exists once the account's create has
landed). So one flow's merging fills the network waits of the writes of the one before it.

A flow whose pass may change another entity's records (a trigger: a won deal makes an ERP order;
an order's status written back onto its deal) or that shares its entity with the next flow lets
the next flow start merging only when it has finished, as do flows that must fetch records their
references point at (those are merged after the flow's writes).
"""
from __future__ import annotations

import asyncio

from . import derive
from .runtime import Runtime


class PrecedingFlowFailed(RuntimeError):
    """A flow of a ``run_all`` whose predecessor failed: it stops before merging anything."""


class Turn:
    """One flow's place in a ``run_all``, as the flow after it sees it."""

    def __init__(self, name: str, *, early: bool) -> None:
        self.name = name
        self.early = early  # may the next flow merge before this one has written?
        self.task: asyncio.Task | None = None
        self._merged = asyncio.Event()

    def merged(self) -> None:
        """Every record this flow read is merged, and nothing more of its entity will be this pass."""
        if self.early:
            self._merged.set()

    async def until_merged(self) -> None:
        if not self._merged.is_set():
            signal = asyncio.ensure_future(self._merged.wait())
            try:
                await asyncio.wait([signal, self.task], return_when=asyncio.FIRST_COMPLETED)
            finally:
                signal.cancel()
        self._raise_if_failed()

    async def until_finished(self) -> None:
        await asyncio.wait([self.task])
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self.task.done() and (self.task.cancelled() or self.task.exception() is not None):
            raise PrecedingFlowFailed(f"not merged: the pass of flow {self.name!r} before it failed")


def turns(rt: Runtime, names: list[str]) -> list[Turn]:
    """The turns of ``names`` (in dependency order)."""
    out = []
    for name, after in zip(names, [*names[1:], None], strict=True):
        entity = rt.flow(name).entity
        early = after is not None and rt.flow(after).entity != entity and not derive.entities_written_by(rt, entity) \
            and entity not in derive.entities_written_by(rt, rt.flow(after).entity)
        out.append(Turn(name, early=early))
    return out
