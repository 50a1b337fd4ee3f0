"""Zoho notification channels (``/actions/watch``): enable, renew, list, disable.

A channel watches ``{module}.all`` for the configured modules and POSTs the ids of
changed records to our webhook URL together with the channel's token, which we
generate per channel and check on every callback. Channels expire (default 1 hour,
at most 1 day in v2-v3 and 7 days from v4; asking for more silently gives 1 hour),
so the requested expiry is clamped and the scheduler renews before it passes.
"""
from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from connectors.base import NotificationChannel

from .client import ZohoClient
from .errors import ZohoApiError, error_fields
from .timefmt import format_datetime, parse_datetime

MAX_TOKEN_LENGTH = 50


def new_channel_token() -> str:
    """43 URL-safe characters (256 bits): under Zoho's 50-character limit."""
    return secrets.token_urlsafe(32)


def new_channel_id() -> str:
    """Zoho channel ids are longs; 13 random digits, never starting with 0."""
    return str(secrets.randbelow(9 * 10**12) + 10**12)


class Watcher:
    def __init__(self, client: ZohoClient) -> None:
        self.client = client

    def _expiry(self, expires_at: datetime | None) -> datetime:
        settings = self.client.settings
        now = datetime.now(timezone.utc)
        longest = now + timedelta(hours=min(settings.watch_channel_hours, settings.max_channel_hours)) - timedelta(minutes=1)
        wanted = expires_at.astimezone(timezone.utc) if expires_at else longest
        return min(wanted, longest)

    def _body(self, channel_id: str, objects: Sequence[str], notify_url: str, token: str, expiry: datetime) -> dict[str, Any]:
        return {
            "watch": [
                {
                    "channel_id": int(channel_id),
                    "events": [f"{module}.all" for module in objects],
                    "notify_url": notify_url,
                    "token": token,
                    "channel_expiry": format_datetime(expiry),
                    # The engine re-reads the records, but a callback with the changed values is evidence of
                    # an edit our write may overwrite right after it (see ZohoSettings.notify_affected_values).
                    "return_affected_field_values": bool(self.client.settings.notify_affected_values),
                    "notify_on_related_action": False,
                }
            ]
        }

    async def enable(
        self, objects: Sequence[str], notify_url: str, channel_id: str | None = None, token: str | None = None,
        expires_at: datetime | None = None,
    ) -> NotificationChannel:
        """Subscribe (or re-subscribe, which renews) ``channel_id`` to every change of ``objects``."""
        channel_id = channel_id or new_channel_id()
        token = token or new_channel_token()
        _check(channel_id, token, objects)
        expiry = self._expiry(expires_at)
        response = await self.client.call("POST", "actions/watch", json=self._body(channel_id, objects, notify_url, token, expiry))
        return _channel(response.payload, channel_id, token, objects, expiry, "enable")

    async def renew(
        self, channel: NotificationChannel, notify_url: str, expires_at: datetime | None = None
    ) -> NotificationChannel:
        """Push the channel's expiry out (PATCH keeps whatever else the channel has)."""
        expiry = self._expiry(expires_at)
        body = self._body(channel.channel_id, channel.objects, notify_url, channel.token, expiry)
        response = await self.client.call("PATCH", "actions/watch", json=body)
        return _channel(response.payload, channel.channel_id, channel.token, channel.objects, expiry, "renew")

    async def list(self, channel_id: str | None = None) -> list[dict[str, Any]]:
        params = {"channel_id": channel_id} if channel_id else None
        response = await self.client.call("GET", "actions/watch", params=params)
        if response.empty:
            return []
        return list((response.payload or {}).get("watch") or [])

    async def disable(self, channel_id: str) -> None:
        try:
            response = await self.client.call("DELETE", "actions/watch", params={"channel_ids": channel_id})
        except ZohoApiError as exc:
            if exc.code == "NOT_SUBSCRIBED":
                return
            raise
        for item in (response.payload or {}).get("watch") or []:
            if isinstance(item, dict) and item.get("status") == "error" and item.get("code") != "NOT_SUBSCRIBED":
                code, message, _ = error_fields(item)
                raise ZohoApiError(f"disabling channel {channel_id} failed: {code} {message}", status=response.status, code=code)


def _check(channel_id: str, token: str, objects: Sequence[str]) -> None:
    if not channel_id.isdigit():
        raise ValueError(f"Zoho channel ids are numbers, got {channel_id!r}")
    if len(token) > MAX_TOKEN_LENGTH:
        raise ValueError(f"Zoho channel tokens are at most {MAX_TOKEN_LENGTH} characters")
    if not objects:
        raise ValueError("a notification channel needs at least one module")


def _channel(
    payload: Any, channel_id: str, token: str, objects: Sequence[str], expiry: datetime, what: str
) -> NotificationChannel:
    items = (payload or {}).get("watch") if isinstance(payload, dict) else None
    if not isinstance(items, list) or not items:
        raise ZohoApiError(f"Zoho answered the channel {what} without a watch result", status=200, code="BAD_RESPONSE")
    expiries: list[datetime] = []
    for item in items:
        if not isinstance(item, dict) or str(item.get("status", "")).lower() != "success":
            code, message, details = error_fields(item if isinstance(item, dict) else {})
            raise ZohoApiError(
                f"Zoho refused to {what} notification channel {channel_id}: {code} {message} {details or ''}".strip(),
                status=200,
                code=code,
                details=details,
            )
        for event in (item.get("details") or {}).get("events") or []:
            when = parse_datetime(event.get("channel_expiry")) if isinstance(event, dict) else None
            if when:
                expiries.append(when)
    # Zoho may grant less than we asked for (1 hour when it thinks the request too long): trust its answer.
    return NotificationChannel(channel_id=channel_id, token=token, objects=list(objects), expires_at=min(expiries, default=expiry))


__all__ = ["Watcher", "new_channel_id", "new_channel_token"]
