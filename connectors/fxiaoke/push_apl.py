"""The change push a tenant sends from an APL function (``apl_push_function.groovy``).

Fxiaoke has no documented record-change webhook, but a workflow can run an APL
function on create/edit/invalidate, and APL can call any URL with ``Fx.http``.
crmsync defines that call (version 1):

``POST <crmsync>/webhooks/<system>`` with headers

* ``Content-Type: application/json; charset=utf-8``
* ``X-Crmsync-Timestamp``: epoch milliseconds when the function ran
* ``X-Crmsync-Signature``: ``v1=`` + lowercase hex HMAC-SHA256, key = the shared
  secret (UTF-8), message = the timestamp header value + ``"."`` + the raw body bytes
* ``X-Crmsync-Event-Id``: the body's ``eventId`` (informational)

and the UTF-8 JSON body::

    {"version": 1, "eventId": "AccountObj:65f…:update:1718000000000",
     "objectApiName": "AccountObj", "ids": ["65f…"], "event": "create" | "update" | "delete",
     "timestamp": 1718000000000, "tenantId": "…"}

The receiver accepts the delivery when the signature matches and the timestamp
is within the clock window (300 s by default: APL's ``DateTime.now()`` is
minute-precise), and answers ``success``. ``eventId`` is the dedupe key; the
function builds it from the record's id and ``last_modified_time``, so a re-run
for the same change has the same id.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from ..base import ChangeHint, WebhookDelivery, WebhookVerifier
from ..errors import WebhookRejected

TIMESTAMP_HEADER = "x-crmsync-timestamp"
SIGNATURE_HEADER = "x-crmsync-signature"
EVENT_ID_HEADER = "x-crmsync-event-id"
SCHEME = "v1"
EVENTS = {"create": "create", "update": "update", "delete": "delete", "invalid": "delete", "recover": "update"}


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return f"{SCHEME}={mac.hexdigest()}"


def build_push(
    secret: str,
    *,
    object_api_name: str,
    ids: list[str],
    event: str,
    timestamp_ms: int,
    event_id: str,
    tenant_id: str = "",
) -> tuple[dict[str, str], bytes]:
    """Headers and body exactly as the APL function sends them (the emulator uses this)."""
    body = json.dumps(
        {
            "version": 1,
            "eventId": event_id,
            "objectApiName": object_api_name,
            "ids": ids,
            "event": event,
            "timestamp": timestamp_ms,
            "tenantId": tenant_id,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")
    stamp = str(timestamp_ms)
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "X-Crmsync-Timestamp": stamp,
        "X-Crmsync-Signature": sign(secret, stamp, body),
        "X-Crmsync-Event-Id": event_id,
    }
    return headers, body


class AplPushVerifier(WebhookVerifier):
    def __init__(self, secret: str, *, window_seconds: float = 300.0) -> None:
        if len(secret) < 16:
            raise ValueError("the APL push secret must be at least 16 characters")
        self._secret = secret
        self._window = window_seconds

    def verify(
        self,
        headers: Mapping[str, str],
        body: bytes,
        *,
        now: float,
        channel_token: Callable[[str], str | None] = lambda _cid: None,
    ) -> WebhookDelivery:
        lowered = {str(k).lower(): str(v) for k, v in headers.items()}
        stamp = lowered.get(TIMESTAMP_HEADER, "").strip()
        given = lowered.get(SIGNATURE_HEADER, "").strip()
        if not stamp or not given:
            raise WebhookRejected(401, "missing X-Crmsync-Timestamp or X-Crmsync-Signature")
        if not hmac.compare_digest(sign(self._secret, stamp, body), given.lower()):
            raise WebhookRejected(401, "bad signature")
        try:
            stamp_ms = int(stamp)
        except ValueError:
            raise WebhookRejected(400, "X-Crmsync-Timestamp is not epoch milliseconds") from None
        if abs(int(now * 1000) - stamp_ms) > self._window * 1000:  # ints: a huge stamp must not overflow a float
            raise WebhookRejected(401, "timestamp outside the accepted clock window")
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise WebhookRejected(400, "body is not JSON") from None
        if not isinstance(payload, dict):
            raise WebhookRejected(400, "body is not a JSON object")
        return WebhookDelivery(
            dedupe_key=f"fxiaoke-apl:{_event_id(payload, body)}",
            hints=[_hint(payload)],
            reply_body="success",
            reply_status=200,
        )


def _hint(payload: dict[str, Any]) -> ChangeHint:
    object_name = payload.get("objectApiName")
    ids = payload.get("ids")
    if isinstance(ids, str):
        ids = [ids]
    if not isinstance(object_name, str) or not object_name or not isinstance(ids, list) or not ids:
        raise WebhookRejected(400, "body needs objectApiName and a non-empty ids list")
    event = EVENTS.get(str(payload.get("event", "")).lower(), "unknown")
    occurred = None
    try:
        occurred = datetime.fromtimestamp(int(payload["timestamp"]) / 1000, UTC)
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        pass
    return ChangeHint(object=object_name, ids=[str(i) for i in ids], event=event, occurred_at=occurred)


def _event_id(payload: dict[str, Any], body: bytes) -> str:
    event_id = payload.get("eventId")
    if isinstance(event_id, str) and event_id:
        return event_id
    return hashlib.sha256(body).hexdigest()
