"""Zoho access tokens shared through the state database: one token for all processes, not one each.

Zoho Accounts keeps 30 access tokens per refresh token and deletes the oldest, so processes that
each refreshed evicted each other's tokens (the emulator does the same).
"""
from __future__ import annotations

import asyncio

from connectors.base import PullRequest
from sync_engine.state import StateStore, upgrade
from sync_engine.token_cache import StateTokenCache

TOKEN = "POST /oauth/v2/token"


def _processes(org, tmp_path, n: int):
    """n connectors, each with its own engine on one state database, as n processes would have."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(url)
    stores, connectors = [], []
    for i in range(n):
        store = StateStore.open(url)
        connector = org.connector()
        connector.share_tokens(StateTokenCache.for_store(store), owner=f"host:{1000 + i}")
        stores.append(store)
        connectors.append(connector)
    return stores, connectors


async def _close(stores, connectors):
    for connector in connectors:
        await connector.close()
    for store in stores:
        store.dispose()


async def test_processes_started_together_make_one_refresh(org, tmp_path):
    org.emu.seed(5, ["Accounts"])
    stores, zohos = _processes(org, tmp_path, 6)
    try:
        await asyncio.gather(*(z.check() for z in zohos))
        pulled = await asyncio.gather(*(_count(z) for z in zohos))
    finally:
        await _close(stores, zohos)
    assert pulled == [5] * 6
    assert org.calls(TOKEN) == 1
    assert sorted(z.client.tokens.status()["shared_tokens_adopted"] for z in zohos) == [0, 1, 1, 1, 1, 1]


async def test_more_processes_than_zoho_keeps_tokens_for_do_not_evict_each_other(org, tmp_path):
    # Zoho keeps 3 tokens per refresh token here (30 in production): 5 processes each with its own
    # token would invalidate the first two; with the shared one, none is refused.
    org.switch(max_tokens_per_refresh_token=3)
    org.emu.seed(5, ["Accounts"])
    stores, zohos = _processes(org, tmp_path, 5)
    try:
        for z in zohos:  # one after another, as processes start over an hour
            await z.check()
        assert [await _count(z) for z in zohos] == [5] * 5
    finally:
        await _close(stores, zohos)
    assert org.calls(TOKEN) == 1
    assert org.snapshot()["by_status"].get("GET /crm/{version}/{module} 401", 0) == 0


async def test_a_refused_token_is_replaced_once_for_everyone(org, tmp_path):
    org.emu.seed(5, ["Accounts"])
    stores, zohos = _processes(org, tmp_path, 3)
    try:
        for z in zohos:
            await z.check()
        assert org.calls(TOKEN) == 1
        assert org.emu.expire_tokens() == 1  # revoked, or expired early: every process's next call gets 401
        for z in zohos:
            assert await _count(z) == 5
    finally:
        await _close(stores, zohos)
    # The first process to be refused refreshed; the others, refused in turn, took its new token.
    assert org.calls(TOKEN) == 2
    assert sum(z.client.tokens.refreshes for z in zohos) == 2


async def test_without_the_cache_each_process_refreshes(org):
    # The behaviour the cache removes, for contrast (and still the behaviour of an in-memory state).
    zohos = [org.connector() for _ in range(3)]
    try:
        for z in zohos:
            await z.check()
    finally:
        for z in zohos:
            await z.close()
    assert org.calls(TOKEN) == 3


async def _count(zoho) -> int:
    return sum([len(page.records) async for page in zoho.pull(PullRequest("Accounts", fields=["Account_Name"]))])
