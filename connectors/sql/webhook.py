"""Change notifications from the ERP side (a trigger-fed outbox job, an ERP plugin, a script).

An ERP database cannot call crmsync by itself, so the customer's side posts a
small JSON notice when rows change; crmsync then fetches the rows (notices are
hints, never data). Contract, for whoever writes the sender:

``POST <crmsync>/webhooks/<system name>`` with

* body (UTF-8 JSON): ``{"object": "customer", "ids": ["C000123", …], "event": "create"|"update"|"delete",
  "event_id": "<unique per notice, reused on retries>"}`` — ``ids`` are crmsync external ids
  (composite keys joined with ``key_separator``), at most ``webhook_max_ids``;
* header ``X-Crmsync-Timestamp``: Unix time in seconds when the notice was signed;
* header ``X-Crmsync-Signature``: ``v1=`` + lowercase hex HMAC-SHA256, keyed with
  ``webhook_secret``, of the bytes ``<timestamp> + "." + <raw body>``. During a secret
  rotation the sender may send several, separated by commas: ``v1=…,v1=…``.

Refused: no secret configured (404), missing/invalid signature or a timestamp
more than ``webhook_tolerance_seconds`` away from now (401), a body over
``webhook_max_body_bytes`` or with too many ids (413), malformed JSON or an
unknown object/event (400). The dedupe key is the ``event_id``.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from connectors.base import ChangeHint, WebhookDelivery, WebhookVerifier
from connectors.errors import WebhookRejected

from .settings import SqlSettings

TIMESTAMP_HEADER = "x-crmsync-timestamp"
SIGNATURE_HEADER = "x-crmsync-signature"
EVENTS = ("create", "update", "delete", "unknown")


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The ``X-Crmsync-Signature`` value for a body (for senders and tests)."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def signed_headers(secret: str, body: bytes, *, now: float) -> dict[str, str]:
    timestamp = str(int(now))
    return {"X-Crmsync-Timestamp": timestamp, "X-Crmsync-Signature": sign(secret, timestamp, body),
            "Content-Type": "application/json; charset=utf-8"}


class SqlWebhookVerifier(WebhookVerifier):
    def __init__(self, system: str, settings: SqlSettings) -> None:
        self.system = system
        self.settings = settings
        self._secrets = [s.get_secret_value() for s in (settings.webhook_secret, settings.webhook_previous_secret) if s]

    def verify(
        self,
        headers: Mapping[str, str],
        body: bytes,
        *,
        now: float,
        channel_token: Callable[[str], str | None] = lambda _cid: None,
    ) -> WebhookDelivery:
        if not self._secrets:
            raise WebhookRejected(404, "webhooks are not enabled for this system (no webhook_secret)")
        if len(body) > self.settings.webhook_max_body_bytes:
            raise WebhookRejected(413, f"body larger than {self.settings.webhook_max_body_bytes} bytes")
        lower = {k.lower(): v for k, v in headers.items()}
        timestamp = lower.get(TIMESTAMP_HEADER, "").strip()
        signatures = [s.strip() for s in lower.get(SIGNATURE_HEADER, "").split(",") if s.strip()]
        if not timestamp or not signatures:
            raise WebhookRejected(401, "missing X-Crmsync-Timestamp or X-Crmsync-Signature header")
        if not timestamp.isascii() or not timestamp.isdigit():
            raise WebhookRejected(401, "X-Crmsync-Timestamp is not Unix seconds")
        # Compared as integers: a 400-digit value would overflow float arithmetic.
        if abs(int(now) - int(timestamp)) > self.settings.webhook_tolerance_seconds:
            raise WebhookRejected(401, "timestamp outside the accepted window (replay or clock skew)")
        expected = [sign(secret, timestamp, body) for secret in self._secrets]
        if not any(hmac.compare_digest(given, wanted) for given in signatures for wanted in expected):
            raise WebhookRejected(401, "signature does not match")
        return self._parse(body, int(timestamp))

    def _parse(self, body: bytes, timestamp: int) -> WebhookDelivery:
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise WebhookRejected(400, "body is not UTF-8 JSON") from None
        if not isinstance(payload, dict):
            raise WebhookRejected(400, "body must be a JSON object")
        obj, ids, event, event_id = (payload.get(k) for k in ("object", "ids", "event", "event_id"))
        if obj not in self.settings.objects:
            raise WebhookRejected(400, "unknown object")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str | int) and str(i).strip() for i in ids):
            raise WebhookRejected(400, "ids must be a non-empty list of ids")
        if len(ids) > self.settings.webhook_max_ids:
            raise WebhookRejected(413, f"more than {self.settings.webhook_max_ids} ids")
        event = event or "update"
        if event not in EVENTS:
            raise WebhookRejected(400, f"event must be one of {', '.join(EVENTS)}")
        if not isinstance(event_id, str | int) or not str(event_id).strip() or len(str(event_id)) > 200:
            raise WebhookRejected(400, "event_id must be a non-empty string of at most 200 characters")
        hint = ChangeHint(
            object=obj,
            ids=[str(i) for i in dict.fromkeys(ids)],
            event=event,
            occurred_at=datetime.fromtimestamp(timestamp, UTC),
        )
        return WebhookDelivery(dedupe_key=f"sql:{self.system}:{event_id}", hints=[hint], reply_body={"ok": True})
