"""Notification channels: enable -> change -> callback -> verify -> renew -> disable."""
from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from connectors.base import WriteOp
from connectors.errors import WebhookRejected
from connectors.zoho.webhook import ZohoWebhookVerifier


def wait_for(receiver, count: int, timeout: float = 5.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while len(receiver.bodies) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return receiver.payloads()


async def test_enable_change_callback_verify_renew_disable(org, receiver):
    app, url = receiver
    org.emu.seed(20, ["Accounts"])
    target = org.emu.store.snapshot_ids("Accounts")[3]
    verifier = ZohoWebhookVerifier("zoho_test")
    now = datetime.now(timezone.utc)
    async with org.connector() as zoho:
        channel = await zoho.enable_notifications(["Accounts", "Deals"], url, channel_id="", token="", expires_at=now + timedelta(hours=2))
        assert channel.channel_id.isdigit() and 20 <= len(channel.token) <= 50
        assert timedelta(hours=1, minutes=55) < channel.expires_at - now <= timedelta(hours=2)
        tokens = {channel.channel_id: channel.token}

        org.emu.admin_update("Accounts", target, {"Phone": "+86 20 8888 6666"})  # a user edits in the CRM
        (payload,) = wait_for(app, 1)
        assert payload["operation"] == "update" and payload["ids"] == [target] and payload["module"] == "Accounts"
        assert payload["channel_id"] == channel.channel_id and payload["query_params"] == {"tenant": "acme"}
        assert payload["resource_uri"].endswith("/crm/v2/Accounts")
        assert set(payload) >= {"server_time", "query_params", "module", "resource_uri", "ids", "affected_fields",
                                "operation", "channel_id", "token"}
        # Subscribed with return_affected_field_values (default): the edit's new values and Zoho's time come along.
        assert payload["affected_values"] == [{"record_id": target, "values": {"Phone": "+86 20 8888 6666"}}]
        delivery = verifier.verify(app.headers[0], app.bodies[0], now=time.time(), channel_token=tokens.get)
        (hint,) = delivery.hints
        assert (hint.object, hint.ids, hint.event) == ("Accounts", [target], "update")
        assert hint.values == {target: {"Phone": "+86 20 8888 6666"}}
        assert hint.occurred_at == datetime.fromtimestamp(payload["server_time"] / 1000, tz=UTC)
        assert delivery.dedupe_key.startswith(f"zoho:{channel.channel_id}:")

        renewed = await zoho.renew_notifications(channel, expires_at=now + timedelta(hours=20))
        assert renewed.expires_at > channel.expires_at + timedelta(hours=17)
        assert renewed.token == channel.token
        (listed,) = [c for c in await zoho.watcher.list(channel.channel_id) if c["resource_name"] == "Accounts"]
        assert listed["notify_url"] == url and listed["token"] == channel.token

        results = await zoho.push("Deals", [WriteOp("d", "create", {"Deal_Name": "华为 - 服务器采购", "Stage": "Qualification"})])
        payloads = wait_for(app, 2)
        assert payloads[1]["operation"] == "insert" and payloads[1]["ids"] == [results[0].external_id]
        assert verifier.verify(app.headers[1], app.bodies[1], now=time.time(), channel_token=tokens.get).hints[0].event == "create"

        await zoho.disable_notifications(channel.channel_id)
        assert await zoho.watcher.list(channel.channel_id) == []
        org.emu.admin_delete("Accounts", target)
        time.sleep(0.3)
        assert len(app.bodies) == 2, "a disabled channel is silent"
        await zoho.disable_notifications(channel.channel_id)  # idempotent


async def test_affected_values_can_be_turned_off(org, receiver):
    app, url = receiver
    org.emu.seed(5, ["Accounts"])
    target = org.emu.store.snapshot_ids("Accounts")[0]
    async with org.connector(notify_affected_values=False) as zoho:
        channel = await zoho.enable_notifications(["Accounts"], url, "", "", datetime.now(UTC) + timedelta(hours=1))
        (listed,) = await zoho.watcher.list(channel.channel_id)
        assert listed["return_affected_field_values"] is False
    org.emu.admin_update("Accounts", target, {"Phone": "+86 20 8888 7777"})
    (payload,) = wait_for(app, 1)
    assert "affected_values" not in payload
    hint = ZohoWebhookVerifier().verify({}, app.bodies[0], now=time.time(), channel_token={channel.channel_id: channel.token}.get).hints[0]
    assert hint.ids == [target] and hint.values is None


def test_verifier_keeps_the_documented_affected_values():
    """The callback of the API reference (update, return_affected_field_values: true): its values reach the hint;
    entries for records the callback does not name, or not shaped as documented, are left out."""
    body = (b'{"server_time":1718115953625,"affected_values":[{"record_id":"5725767000003000010","values":{"Mobile":"123456789"}},'
            b'{"record_id":"99","values":{"Mobile":"1"}},{"record_id":"5725767000003000010","values":"x"}],'
            b'"query_params":{},"module":"Leads","resource_uri":"https://www.zohoapis.com/crm/v2/Leads",'
            b'"ids":["5725767000003000010"],"affected_fields":[{"5725767000003000010":["Mobile"]}],'
            b'"operation":"update","channel_id":"1000000068001","token":"TOKEN"}')
    (hint,) = ZohoWebhookVerifier().verify({}, body, now=0, channel_token={"1000000068001": "TOKEN"}.get).hints
    assert hint.values == {"5725767000003000010": {"Mobile": "123456789"}}
    assert hint.occurred_at == datetime(2024, 6, 11, 14, 25, 53, 625000, tzinfo=UTC)


async def test_delete_notification_and_affected_values(org, receiver):
    app, url = receiver
    org.emu.seed(5, ["Partners"])
    rid = org.emu.store.snapshot_ids("Partners")[0]
    async with org.connector() as zoho:
        channel = await zoho.enable_notifications(["Partners"], url, "1000000068001", "TOKEN_FOR_VERIFICATION_OF_1000000068001",
                                                  datetime.now(timezone.utc) + timedelta(hours=1))
    org.emu.admin_delete("Partners", rid)
    (payload,) = wait_for(app, 1)
    assert payload["operation"] == "delete" and payload["ids"] == [rid] and payload["token"] == channel.token
    hint = ZohoWebhookVerifier().verify({}, app.bodies[0], now=time.time(), channel_token={channel.channel_id: channel.token}.get).hints[0]
    assert hint.event == "delete"


async def test_channel_expiry_is_clamped_to_what_zoho_grants(org, receiver):
    _, url = receiver
    far = datetime.now(timezone.utc) + timedelta(days=30)
    async with org.connector(watch_channel_hours=168) as zoho:
        week = await zoho.enable_notifications(["Accounts"], url, "", "", far)
    async with org.connector(api_version="v3", watch_channel_hours=168) as zoho:
        day = await zoho.enable_notifications(["Accounts"], url, "", "", far)
    now = datetime.now(timezone.utc)
    # Asking Zoho for more than its maximum silently gives one hour; clamping keeps the long lifetime.
    assert timedelta(days=6, hours=23) < week.expires_at - now <= timedelta(days=7)
    assert timedelta(hours=23) < day.expires_at - now <= timedelta(days=1)


def test_verifier_rejects_forgeries():
    verifier = ZohoWebhookVerifier()
    tokens = {"1000000068001": "s3cret-token"}.get
    good = b'{"server_time":1718117126473,"module":"Accounts","ids":["5725767000003000064"],"operation":"insert",' \
           b'"channel_id":"1000000068001","token":"s3cret-token","query_params":{},"affected_fields":[]}'
    assert verifier.verify({}, good, now=0, channel_token=tokens).hints[0].ids == ["5725767000003000064"]
    cases = {
        good.replace(b"s3cret-token", b"s3cret-tokeN"): 401,
        good.replace(b"1000000068001", b"1000000068002"): 401,
        good.replace(b'"token":"s3cret-token",', b""): 401,
        b"not json": 400,
        b"[1,2]": 400,
        good.replace(b'"ids":["5725767000003000064"]', b'"ids":"5725767000003000064"'): 400,
        good.replace(b'"ids":["5725767000003000064"]', b'"ids":["1 OR 1=1"]'): 400,
    }
    for body, status in cases.items():
        with pytest.raises(WebhookRejected) as caught:
            verifier.verify({}, body, now=0, channel_token=tokens)
        assert caught.value.status == status, body
    # Redeliveries of one change share the dedupe key.
    assert verifier.verify({}, good, now=0, channel_token=tokens).dedupe_key == verifier.verify({}, good, now=1, channel_token=tokens).dedupe_key
