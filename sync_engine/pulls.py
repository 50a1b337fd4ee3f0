"""A flow pass's pulls, running while the engine reconciles what they have staged.

A pull mostly waits on the network (a page every latency); reconciling is CPU work. Run one
after the other, a first sync spends the sum of both; run side by side, the merging of page
n fills the wait for page n + 1. The engine asks for more (:meth:`Pulls.more`) when it has
reconciled everything staged so far, and learns which systems could not be read once every
pull has ended (:meth:`Pulls.finish`): creates into those wait (see ``engine._reconcile_all``).
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from sqlalchemy import update

from .context import UnitOfWork
from .reconcile import readable_systems
from .runtime import Runtime
from .state.models.pipeline import OutboxWrite


class Pulls:
    def __init__(self, rt: Runtime, flow_name: str, pulled: list[str]) -> None:
        self.rt = rt
        self.flow_name = flow_name
        self.pulled = pulled  # systems whose pull completed, appended by the pulls themselves
        self.staged = asyncio.Event()  # set by every page staged
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, pull: Callable[[str], Awaitable[None]]) -> None:
        self._tasks = [asyncio.create_task(pull(system)) for system in readable_systems(self.rt, self.flow_name)]

    @property
    def ended(self) -> bool:
        return all(task.done() for task in self._tasks)

    async def more(self) -> None:
        """Wait until another page is staged or every pull has ended."""
        if self.staged.is_set() or self.ended:
            return
        page = asyncio.ensure_future(self.staged.wait())
        try:
            await asyncio.wait([page, *(t for t in self._tasks if not t.done())], return_when=asyncio.FIRST_COMPLETED)
        finally:
            page.cancel()

    async def finish(self, uow: UnitOfWork, entity: str) -> frozenset[str]:
        """The systems not read this pass. Creates already planned into them wait for a pass that reads
        them: until then crmsync cannot know whether the record is there already."""
        await asyncio.gather(*self._tasks)  # an unexpected error in a pull surfaces here
        held = frozenset(s for s in readable_systems(self.rt, self.flow_name) if s not in self.pulled)
        if held:
            with uow.tx() as session:
                session.execute(
                    update(OutboxWrite)
                    .where(OutboxWrite.entity == entity, OutboxWrite.status == "pending",
                           OutboxWrite.action == "create", OutboxWrite.system.in_(list(held)))
                    .values(status="deferred")
                )
        return held

    async def cancel(self) -> None:
        """The pass failed: stop the pulls still reading (what they staged stays for the next pass)."""
        for task in self._tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
