"""ERP-side change notifications: HMAC-SHA256 over timestamp + "." + body."""
from __future__ import annotations

import json

import pytest

from connectors.errors import WebhookRejected
from connectors.sql.demo_schema import demo_settings
from connectors.sql.settings import SqlSettings
from connectors.sql.webhook import SqlWebhookVerifier, sign, signed_headers

NOW = 1_750_000_000.0
SECRET = "whsec-erp-7c1d-0f2e"


def verifier(**overrides) -> SqlWebhookVerifier:
    raw = demo_settings("sqlite://", webhook_secret=SECRET, **overrides)
    return SqlWebhookVerifier("erp", SqlSettings.model_validate(raw))


def body(**fields) -> bytes:
    payload = {"object": "customer", "ids": ["C000001", "C000002"], "event": "update", "event_id": "evt-1"} | fields
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def test_a_signed_notice_becomes_a_change_hint():
    raw = body(ids=["C000001", "C000002", "C000001"])
    delivery = verifier().verify(signed_headers(SECRET, raw, now=NOW), raw, now=NOW + 20)
    (hint,) = delivery.hints
    assert (hint.object, hint.ids, hint.event) == ("customer", ["C000001", "C000002"], "update")
    assert delivery.dedupe_key == "sql:erp:evt-1"
    assert hint.occurred_at.timestamp() == int(NOW)


def test_headers_are_case_insensitive_and_rotation_accepts_the_old_secret():
    raw = body()
    headers = {"x-crmsync-timestamp": str(int(NOW)), "X-CRMSYNC-SIGNATURE": f"v1=deadbeef, {sign('old-secret-5a6b7c8d', int(NOW), raw)}"}
    delivery = verifier(webhook_previous_secret="old-secret-5a6b7c8d").verify(headers, raw, now=NOW)
    assert delivery.hints[0].ids == ["C000001", "C000002"]


@pytest.mark.parametrize(
    ("mutate", "status", "reason"),
    [
        (lambda h, b: (h | {"X-Crmsync-Signature": sign("wrong", h["X-Crmsync-Timestamp"], b)}, b), 401, "does not match"),
        (lambda h, b: (h, b + b" "), 401, "does not match"),  # body changed after signing
        (lambda h, b: ({k: v for k, v in h.items() if k != "X-Crmsync-Signature"}, b), 401, "missing"),
        (lambda h, b: (h | {"X-Crmsync-Timestamp": "yesterday"}, b), 401, "Unix seconds"),
    ],
)
def test_bad_signatures_are_refused(mutate, status, reason):
    raw = body()
    headers, raw = mutate(signed_headers(SECRET, raw, now=NOW), raw)
    with pytest.raises(WebhookRejected) as caught:
        verifier().verify(headers, raw, now=NOW)
    assert caught.value.status == status and reason in caught.value.reason
    assert SECRET not in caught.value.reason


def test_stale_timestamps_are_refused():
    raw = body()
    with pytest.raises(WebhookRejected, match="window") as caught:
        verifier().verify(signed_headers(SECRET, raw, now=NOW - 301), raw, now=NOW)
    assert caught.value.status == 401


@pytest.mark.parametrize(
    ("raw", "status", "reason"),
    [
        (b"{not json", 400, "JSON"),
        (json.dumps([1, 2]).encode(), 400, "JSON object"),
        (body(object="invoice"), 400, "unknown object"),
        (body(ids=[]), 400, "ids"),
        (body(event="merge"), 400, "event"),
        (body(event_id=""), 400, "event_id"),
        (body(ids=[f"C{i}" for i in range(1001)]), 413, "ids"),
        (b" " * 300_000, 413, "larger"),
    ],
)
def test_malformed_notices_are_refused(raw, status, reason):
    with pytest.raises(WebhookRejected) as caught:
        verifier().verify(signed_headers(SECRET, raw, now=NOW), raw, now=NOW)
    assert caught.value.status == status and reason in caught.value.reason


def test_without_a_secret_webhooks_are_off():
    raw = body()
    plain = SqlWebhookVerifier("erp", SqlSettings.model_validate(demo_settings("sqlite://")))
    with pytest.raises(WebhookRejected) as caught:
        plain.verify(signed_headers(SECRET, raw, now=NOW), raw, now=NOW)
    assert caught.value.status == 404
