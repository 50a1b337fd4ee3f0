"""OAuth against the emulated Zoho Accounts: one refresh at a time, INVALID_TOKEN once, clear errors."""
from __future__ import annotations

import asyncio
import json

import pytest

from connectors.base import PullRequest
from connectors.errors import AuthError


TOKEN = "POST /oauth/v2/token"


async def test_expired_token_mid_pull_costs_exactly_one_refresh(org):
    org.emu.seed(1200, ["Accounts"])
    async with org.connector() as zoho:
        seen = 0
        pages = 0
        async for page in zoho.pull(PullRequest("Accounts")):  # all fields: two chunk calls per page, at once
            pages += 1
            seen += len(page.records)
            if pages == 2:
                assert org.emu.expire_tokens() == 1
        assert seen == 1200
        assert zoho.client.tokens.refreshes == 2
    assert org.calls(TOKEN) == 2
    assert org.snapshot()["by_status"].get("GET /crm/{version}/{module} 401", 0) >= 1


async def test_concurrent_first_calls_share_one_refresh(org):
    org.emu.seed(50, ["Accounts"])
    ids = org.emu.store.snapshot_ids("Accounts")
    async with org.connector() as zoho:
        await asyncio.gather(*(zoho.fetch("Accounts", [rid], ["Account_Name"]) for rid in ids[:20]))
    assert org.calls(TOKEN) == 1


async def test_token_is_refreshed_before_it_expires(org):
    org.emu.seed(5, ["Accounts"])
    async with org.connector(token_refresh_margin_seconds=300) as zoho:
        now = [1000.0]
        zoho.client.tokens.clock = lambda: now[0]
        await zoho.fetch("Accounts", org.emu.store.snapshot_ids("Accounts")[:1], ["Account_Name"])
        now[0] += 3600 - 301  # still fresh
        await zoho.fetch("Accounts", org.emu.store.snapshot_ids("Accounts")[:1], ["Account_Name"])
        assert org.calls(TOKEN) == 1
        now[0] += 2  # inside the margin: refresh first, no 401 round trip
        await zoho.fetch("Accounts", org.emu.store.snapshot_ids("Accounts")[:1], ["Account_Name"])
        assert org.calls(TOKEN) == 2
    assert org.snapshot()["by_status"].get("GET /crm/{version}/{module} 401", 0) == 0


async def test_short_lived_tokens_are_not_refreshed_on_every_call(org):
    org.switch(token_ttl=60)
    org.emu.seed(5, ["Accounts"])
    async with org.connector() as zoho:  # margin 300 s > lifetime 60 s
        for _ in range(5):
            await zoho.fetch("Accounts", org.emu.store.snapshot_ids("Accounts")[:1], ["Account_Name"])
    assert org.calls(TOKEN) == 1


async def test_wrong_client_secret_names_data_center_and_accounts_url(org):
    async with org.connector(client_secret="not-the-secret") as zoho:
        with pytest.raises(AuthError) as caught:
            await zoho.check()
    message = str(caught.value)
    assert "invalid_client" in message and "data center 'us'" in message and org.url in message
    assert "not-the-secret" not in message
    assert caught.value.code == "invalid_client"
    assert org.calls(TOKEN) == 1, "refused credentials are not retried"


async def test_revoked_refresh_token_is_invalid_code(org):
    org.emu.tokens.revoke(org.emu.tokens.refresh_token)
    async with org.connector() as zoho:
        with pytest.raises(AuthError, match="invalid_code"):
            await zoho.fetch("Accounts", ["5725767000000000001"], ["Account_Name"])
        status = zoho.status()
    assert status["authorized"] is False and "invalid_code" in status["auth_error"]
    assert org.emu.tokens.refresh_token not in json.dumps(status)
    assert org.emu.tokens.client_secret not in json.dumps(status)


async def test_check_proves_credentials_and_status_has_no_secrets(org):
    async with org.connector() as zoho:
        await zoho.check()
        status = zoho.status()
    assert status["authorized"] is True and status["api_domain"] == org.url
    text = json.dumps(status)
    for secret in (org.emu.tokens.client_secret, org.emu.tokens.refresh_token):
        assert secret not in text
