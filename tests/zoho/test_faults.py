"""Throttling and faults from the emulated org: retried, slowed down, never lost."""
from __future__ import annotations

import pytest

from connectors.base import PullRequest
from connectors.errors import QuotaExhausted
from connectors.zoho.errors import ZohoConfigError

from .conftest import pull_all


async def test_429_storm_slows_the_pull_but_it_completes(org):
    org.emu.seed(2000, ["Accounts"])
    async with org.connector() as zoho:
        calm, _ = await pull_all(zoho, PullRequest("Accounts", fields=["Account_Name"]))
        calm_calls = zoho.client.http.stats.total
        org.switch(error_rate=0.5, fault_kinds=["rate_limit"])
        stormy, _ = await pull_all(zoho, PullRequest("Accounts", fields=["Account_Name"]))
        storm_calls = zoho.client.http.stats.total - calm_calls
        status = zoho.status()
    assert sorted(r.external_id for r in stormy) == sorted(r.external_id for r in calm)
    assert len(stormy) == 2000
    faults = org.snapshot()["faults"].get("rate_limit", 0)
    assert faults >= 5 and status["throttled"] == faults and status["retries"] == faults
    # Every refused call was made again after a backoff: slower, and nothing lost.
    assert storm_calls == calm_calls - 1 + faults  # the calm pull also fetched the token


async def test_server_errors_and_dropped_connections_are_retried(org):
    org.emu.seed(1000, ["Accounts"])
    org.switch(error_rate=0.3, fault_kinds=["server_error", "disconnect"])
    async with org.connector() as zoho:
        records, _ = await pull_all(zoho, PullRequest("Accounts", fields=["Account_Name"]))
        assert zoho.status()["retries"] >= 1
    assert len({r.external_id for r in records}) == 1000


async def test_org_concurrency_limit_answers_429_and_the_connector_copes(org):
    org.emu.seed(1000, ["Accounts"])
    org.switch(concurrency=2, latency_ms=20)
    ids = org.emu.store.snapshot_ids("Accounts")
    async with org.connector(concurrency=10) as zoho:
        records = await zoho.fetch("Accounts", ids, ["Account_Name"])
        assert zoho.status()["throttled"] >= 1
    assert len(records) == 1000
    assert org.emu.throttle.rejected >= 1


async def test_credits_remaining_is_reported_and_exhaustion_pauses(org):
    org.emu.seed(10, ["Accounts"])
    org.switch(credits_per_day=20)
    rid = org.emu.store.snapshot_ids("Accounts")[0]
    async with org.connector() as zoho:
        for _ in range(12):
            await zoho.fetch("Accounts", [rid], ["Account_Name"])
        assert zoho.status()["api_credits_remaining"] == 8
        with pytest.raises(QuotaExhausted) as caught:
            for _ in range(20):
                await zoho.fetch("Accounts", [rid], ["Account_Name"])
        assert zoho.status()["api_credits_remaining"] == 0
        assert zoho.status()["paused_until"] is not None
    assert caught.value.until is not None


async def test_business_errors_are_not_retried(org):
    async with org.connector() as zoho:
        with pytest.raises(ZohoConfigError, match="INVALID_MODULE"):
            await zoho.fetch("Leads_Typo", ["5725767000000000001"], ["Last_Name"])
    assert org.calls("GET /crm/{version}/{module}") == 1
