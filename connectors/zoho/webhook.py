"""Checking Zoho notification callbacks.

Zoho signs nothing: a callback carries the ``channel_id`` and the ``token`` we gave
the channel. The verifier looks the channel's token up and compares in constant
time. The callback names ids, and the engine fetches the records; on a channel with
``return_affected_field_values`` an update also carries the new values of the fields it
changed, kept with the hint as evidence of that edit (``ChangeHint.values``).
"""
from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from connectors.base import ChangeHint, WebhookDelivery, WebhookVerifier
from connectors.errors import WebhookRejected

_EVENTS = {"insert": "create", "create": "create", "update": "update", "edit": "update", "delete": "delete"}
MAX_IDS = 10_000


class ZohoWebhookVerifier(WebhookVerifier):
    def __init__(self, system: str = "zoho", modules: set[str] | None = None) -> None:
        self.system = system
        self.modules = modules

    def verify(
        self,
        headers: Mapping[str, str],
        body: bytes,
        *,
        now: float,
        channel_token: Callable[[str], str | None] = lambda _cid: None,
    ) -> WebhookDelivery:
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise WebhookRejected(400, "body is not JSON") from None
        if not isinstance(payload, dict):
            raise WebhookRejected(400, "body is not a JSON object")
        channel_id = payload.get("channel_id")
        token = payload.get("token")
        if channel_id is None or token is None:
            raise WebhookRejected(401, "channel_id or token missing")
        channel_id = str(channel_id)
        if not channel_id.isdigit() or len(channel_id) > 20:
            raise WebhookRejected(401, "malformed channel_id")
        expected = channel_token(channel_id)
        # Compare even when the channel is unknown, so timing does not tell which channels exist.
        reference = expected if expected is not None else "\x00" * 43
        if not isinstance(token, str) or not hmac.compare_digest(token.encode(), reference.encode()) or expected is None:
            raise WebhookRejected(401, "unknown channel or wrong token")
        module = payload.get("module")
        ids = payload.get("ids")
        if not isinstance(module, str) or not module:
            raise WebhookRejected(400, "module missing")
        if self.modules is not None and module not in self.modules:
            raise WebhookRejected(400, "module not watched")
        if not isinstance(ids, list) or not all(isinstance(i, (str, int)) for i in ids) or len(ids) > MAX_IDS:
            raise WebhookRejected(400, "ids missing or malformed")
        ids = [str(i) for i in ids]
        if any(not i.isdigit() or len(i) > 25 for i in ids):
            raise WebhookRejected(400, "ids missing or malformed")
        operation = str(payload.get("operation") or "")
        occurred = _server_time(payload.get("server_time"))
        fingerprint = hashlib.sha256(
            json.dumps([module, operation, sorted(ids), payload.get("server_time")], sort_keys=True).encode()
        ).hexdigest()[:32]
        event = _EVENTS.get(operation, "unknown")
        values = _affected_values(payload.get("affected_values"), ids) if event == "update" and occurred else None
        return WebhookDelivery(
            dedupe_key=f"zoho:{channel_id}:{fingerprint}",
            hints=[ChangeHint(object=module, ids=ids, event=event, occurred_at=occurred, values=values or None)],
            reply_body="",
            reply_status=200,
        )


    def stored_body(self, body: bytes) -> str:
        """The callback without its channel ``token`` (a credential: anyone holding it can post callbacks)."""
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return super().stored_body(body)
        if isinstance(payload, dict) and "token" in payload:
            payload["token"] = REDACTED
            return json.dumps(payload, ensure_ascii=False)
        return super().stored_body(body)


#: What replaces a credential in a stored body (the logs' marker).
REDACTED = "***"


def _affected_values(value: Any, ids: list[str]) -> dict[str, dict[str, Any]]:
    """``affected_values`` (channels subscribed with ``return_affected_field_values``): record id -> the
    new values of the fields the change touched, in the API's shape. Entries naming a record the callback
    does not list, or not shaped as documented, are left out (the callback is still a valid hint)."""
    out: dict[str, dict[str, Any]] = {}
    if not isinstance(value, list):
        return out
    wanted = set(ids)
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("values"), dict):
            continue
        rid = str(item.get("record_id", ""))
        if rid in wanted and item["values"]:
            out.setdefault(rid, {}).update(item["values"])
    return out


def _server_time(value: Any) -> datetime | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return datetime.fromtimestamp(value / 1000, tz=timezone.utc)
    return None
