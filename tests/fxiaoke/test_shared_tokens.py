"""Fxiaoke tokens shared through the state database.

The token endpoint takes 10 calls a minute and none concurrently. Every crmsync process used to
fetch its own token, so the eleventh worker started within a minute was refused until the window
passed (bench/workers.py ran into it). With the shared cache, processes that start together make
one call between them, whatever their number.
"""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sync_engine.state import StateStore, upgrade
from sync_engine.token_cache import StateTokenCache

ROOT = Path(__file__).resolve().parents[2]


def _settings_json(fx) -> str:
    s = fx.settings()
    values = s.model_dump(mode="json", include={"host", "app_id", "user_id", "retry_base_seconds", "retry_cap_seconds"})
    values["app_secret"] = s.app_secret.get_secret_value()
    values["permanent_code"] = s.permanent_code.get_secret_value()
    return json.dumps(values)


def _run_processes(fx, state_url: str, n: int) -> list[dict]:
    start_at = time.time() + 4.0  # every process imported and connected before the common start
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.fxiaoke.token_process", _settings_json(fx), state_url, f"proc-{i}", str(start_at)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(n)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


@pytest.mark.postgres
def test_processes_starting_together_on_postgres_make_one_token_call(fx, pg_databases):
    # Documented limit made tighter than the crowd: 2 token calls a minute, 6 processes at once.
    fx.switch(token_rate_limit=2)
    url = pg_databases()
    upgrade(url)
    results = _run_processes(fx, url, 6)
    assert all(r["ok"] for r in results), results
    assert sorted(r["fetches"] for r in results) == [0, 0, 0, 0, 0, 1]
    assert fx.emu.token_calls["current"] == 1
    assert fx.emu.token_overlaps == 0 and fx.emu.throttled.get("/oauth2.0/token", 0) == 0


def test_processes_starting_together_on_sqlite_make_one_token_call(fx, tmp_path):
    fx.switch(token_rate_limit=2)
    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(url)
    results = _run_processes(fx, url, 4)
    assert all(r["ok"] for r in results), results
    assert fx.emu.token_calls["current"] == 1


async def test_a_refused_token_is_replaced_once_and_the_others_take_the_new_one(fx, tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(url)
    stores = [StateStore.open(url) for _ in range(3)]
    crms = [fx.connector() for _ in stores]
    for i, (store, crm) in enumerate(zip(stores, crms)):
        crm.share_tokens(StateTokenCache.for_store(store), f"host:{i}")
    try:
        for crm in crms:
            await crm.check()
        assert fx.emu.token_calls["current"] == 1
        first = crms[0].client.tokens._token.value
        assert {crm.client.tokens._token.value for crm in crms} == {first}
        fx.emu.expire_tokens()  # 20016 for everyone's next call
        for crm in crms:
            await crm.check()
        assert fx.emu.token_calls["current"] == 2
        second = crms[0].client.tokens._token.value
        assert second != first and {crm.client.tokens._token.value for crm in crms} == {second}
    finally:
        for crm in crms:
            await crm.close()
        for store in stores:
            store.dispose()


async def test_an_adopted_token_is_refreshed_in_the_documented_window(fx, tmp_path):
    # A token of 100 s: its refresh window (age 6,650-7,200 of 7,200) is ages 92.4-100 s. A process that
    # adopts it at age ~0 refreshes inside that window of the token's own life, not of its adoption.
    fx.switch(token_ttl=100)
    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(url)
    a_store, b_store = StateStore.open(url), StateStore.open(url)
    a, b = fx.connector(), fx.connector()
    a.share_tokens(StateTokenCache.for_store(a_store), "host:a")
    b.share_tokens(StateTokenCache.for_store(b_store), "host:b")
    try:
        await a.check()
        await asyncio.sleep(0.5)
        await b.check()
        ta, tb = a.client.tokens._token, b.client.tokens._token
        assert ta.value == tb.value and b.client.tokens.status()["token_fetches"] == 0
        assert 92.4 - 0.6 <= tb.refresh_at - tb.obtained_at <= 100.0
        assert abs((tb.expires_at - tb.obtained_at) - 100.0) < 1.0
    finally:
        await a.close()
        await b.close()
        a_store.dispose()
        b_store.dispose()
