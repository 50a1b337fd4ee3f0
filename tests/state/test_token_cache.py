"""The shared token cache in the state database: sealed rows, one fetch claim at a time, on both backends."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest
from sqlalchemy import select

from connectors.tokens import FETCH_LEASE_SECONDS, SharedToken, TokenCache, TokenSharing
from sync_engine.state import StateStore, upgrade
from sync_engine.state.models import SharedTokenRow
from sync_engine.token_cache import StateTokenCache

IDENTITY = ("https://accounts.zoho.com.cn/oauth/v2/token", "1000.CLIENT", "client-secret", "1000.refresh.token")
TOKEN_VALUE = "1000.deadbeefdeadbeefdeadbeefdeadbeef.cafebabecafebabecafebabecafebabe"


def _token(value: str = TOKEN_VALUE, seconds: float = 3600) -> SharedToken:
    return SharedToken(value, time.time() + seconds, {"api_domain": "https://www.zohoapis.com.cn", "note": "深圳市华为技术有限公司"})


def test_claim_is_exclusive_until_released_stored_or_expired(store):
    cache = StateTokenCache(store)
    assert cache.get("zoho:k") is None
    assert cache.claim_fetch("zoho:k", "worker-a", 30)
    assert not cache.claim_fetch("zoho:k", "worker-b", 30), "a live claim of another process"
    assert cache.claim_fetch("zoho:k", "worker-a", 30), "the holder may renew its own claim"
    cache.release_fetch("zoho:k", "worker-b")  # not b's to release: nothing changes
    assert not cache.claim_fetch("zoho:k", "worker-b", 30)
    cache.release_fetch("zoho:k", "worker-a")
    assert cache.claim_fetch("zoho:k", "worker-b", 0.2)
    time.sleep(0.3)
    assert cache.claim_fetch("zoho:k", "worker-c", 30), "an expired claim (a crashed fetcher) is taken over"


def test_put_stores_the_sealed_token_and_ends_the_claim(store):
    cache = StateTokenCache(store)
    sharing = TokenSharing(cache, "worker-a", "zoho", IDENTITY)
    assert cache.claim_fetch(sharing.key, "worker-a", 30)
    cache.put(sharing.key, sharing.seal(_token()), "worker-a")
    assert cache.claim_fetch(sharing.key, "worker-b", 30), "storing the token ended a's claim"
    with store.read() as session:
        row = session.scalars(select(SharedTokenRow)).one()
    # Neither the token nor any credential is readable from the database.
    for secret in (TOKEN_VALUE, *IDENTITY[1:]):
        assert secret not in row.sealed and secret not in row.key
    opened = sharing.open(cache.get(sharing.key))
    assert opened.value == TOKEN_VALUE and opened.extra["note"] == "深圳市华为技术有限公司"


def test_other_credentials_cannot_open_a_stored_token(store):
    cache = StateTokenCache(store)
    ours = TokenSharing(cache, "worker-a", "zoho", IDENTITY)
    cache.put(ours.key, ours.seal(_token()), "worker-a")
    theirs = TokenSharing(cache, "worker-b", "zoho", (*IDENTITY[:3], "1000.another.refresh"))
    assert theirs.key != ours.key
    # Even pointed at our row, their key does not open it: a damaged or foreign value is as good as absent.
    assert theirs.open(cache.get(ours.key)) is None


def test_many_processes_claiming_at_once_one_wins(backend, request, tmp_path):
    # Each thread opens its own engine, as separate processes would: the claim is decided by the database.
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'tokens.db'}"
        upgrade(url)
    else:
        url = request.getfixturevalue("pg_databases")()
        upgrade(url)
    stores = [StateStore.open(url) for _ in range(8)]
    barrier = threading.Barrier(len(stores))
    wins: list[str] = []

    def claim(i: int) -> None:
        barrier.wait()
        if StateTokenCache(stores[i]).claim_fetch("fxiaoke:k", f"worker-{i}", 30):
            wins.append(f"worker-{i}")

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.dispose()
    assert len(wins) == 1, wins


class BrokenCache(TokenCache):
    def get(self, *args):
        raise ConnectionError("state database unreachable")

    put = claim_fetch = release_fetch = get


async def test_a_broken_cache_costs_nothing_but_the_saving():
    sharing = TokenSharing(BrokenCache(), "worker-a", "zoho", IDENTITY)
    fetched = []

    async def fetch() -> SharedToken:
        fetched.append(1)
        return _token()

    token, here = await sharing.obtain(fetch)
    assert (token.value, here, len(fetched)) == (TOKEN_VALUE, True, 1)
    assert "unreachable" in sharing.status()["token_cache_error"]


async def test_waiters_take_the_claimants_token_and_a_failed_fetch_hands_the_claim_on(store):
    cache = StateTokenCache(store)
    first = TokenSharing(cache, "worker-a", "zoho", IDENTITY)
    second = TokenSharing(cache, "worker-b", "zoho", IDENTITY)
    release = asyncio.Event()
    calls: list[str] = []

    async def slow_fetch() -> SharedToken:
        calls.append("a")
        await release.wait()
        return _token()

    async def other_fetch() -> SharedToken:
        calls.append("b")
        return _token("1000.other")

    a = asyncio.create_task(first.obtain(slow_fetch))
    await asyncio.sleep(0.05)
    b = asyncio.create_task(second.obtain(other_fetch))
    await asyncio.sleep(0.3)
    assert calls == ["a"], "b waits for a's fetch instead of making its own"
    release.set()
    (token_a, here_a), (token_b, here_b) = await a, await b
    assert (here_a, here_b) == (True, False) and token_a.value == token_b.value == TOKEN_VALUE

    # A fetch that fails releases the claim at once: the next process fetches without waiting out the lease.
    async def failing() -> SharedToken:
        raise RuntimeError("token endpoint refused")

    with pytest.raises(RuntimeError):
        await first.obtain(failing, refused=TOKEN_VALUE)
    started = time.monotonic()
    token, here = await second.obtain(other_fetch, refused=TOKEN_VALUE)
    assert here and token.value == "1000.other" and time.monotonic() - started < FETCH_LEASE_SECONDS / 4


async def test_memory_databases_share_nothing_and_a_held_sqlite_lock_costs_a_second(tmp_path):
    memory = StateStore.open("sqlite://")
    assert StateTokenCache.for_store(memory) is None, "one process: nothing to share"
    memory.dispose()
    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(url)
    store = StateStore.open(url)
    cache = StateTokenCache.for_store(store)
    # A dry run holds SQLite's write lock for its whole pass: a token fetched inside it must not wait 30 s.
    dry_run = store.session(write=True)
    dry_run.execute(select(SharedTokenRow)).all()
    try:
        sharing = TokenSharing(cache, "worker-a", "zoho", IDENTITY)

        async def fetch() -> SharedToken:
            return _token()

        started = time.monotonic()
        token, here = await sharing.obtain(fetch)
        assert here and token.value == TOKEN_VALUE
        assert time.monotonic() - started < 5
    finally:
        dry_run.rollback()
        dry_run.close()
        cache.close()
        store.dispose()
