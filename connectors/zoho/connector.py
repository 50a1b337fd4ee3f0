"""The Zoho CRM connector: the :class:`connectors.base.Connector` the engine talks to."""
from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, ClassVar

import httpx

from connectors.base import (
    CallObserver,
    Connector,
    FieldInfo,
    Limits,
    NotificationChannel,
    ObjectInfo,
    Page,
    PullRequest,
    SourceRecord,
    WriteCheck,
    WriteOp,
    WriteResult,
)
from connectors.errors import ConnectorError
from connectors.http import RetryPolicy
from connectors.tokens import TokenCache, TokenSharing

from .client import ZohoClient
from .discovery import Catalog
from .errors import ZohoApiError
from .pull import MODIFIED, Puller
from .push import Pusher
from .settings import ZohoSettings
from .watch import Watcher


class ZohoConnector(Connector):
    type: ClassVar[str] = "zoho"
    supports_notifications: ClassVar[bool] = True

    def __init__(
        self,
        name: str,
        settings: ZohoSettings,
        *,
        observer: CallObserver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        super().__init__(name)
        self.settings = settings
        self.client = ZohoClient(settings, name=name, observer=observer, transport=transport, policy=retry_policy)
        self.catalog = Catalog(self.client)
        self.puller = Puller(self.client, self.catalog)
        self.pusher = Pusher(self.client, self.catalog)
        self.watcher = Watcher(self.client)
        self._notify_urls: dict[str, str] = {}

    async def close(self) -> None:
        await self.client.aclose()

    def share_tokens(self, cache: TokenCache, owner: str) -> None:
        s = self.settings
        # Everything that decides which token Zoho Accounts hands out: the data center's token URL,
        # the client and the refresh token (a token of one is refused with another).
        identity = (s.token_url, s.client_id, s.client_secret.get_secret_value(), s.refresh_token.get_secret_value())
        self.client.tokens.sharing = TokenSharing(cache, owner, self.type, identity)

    async def check(self) -> None:
        """A token (refreshed, or the live one another process left in the shared cache) and one metadata
        call: proves credentials, data center and scopes."""
        await self.client.tokens.refresh(stale=None)
        self.catalog.forget()
        await self.catalog.modules()

    @property
    def limits(self) -> Limits:
        s = self.settings
        return Limits(page_size=s.page_size, write_batch=s.write_batch, fetch_batch=s.fetch_batch, concurrency=s.concurrency)

    # -- reading -------------------------------------------------------
    def pull(self, request: PullRequest) -> AsyncIterator[Page]:
        return self.puller.pull(request)

    async def fetch(self, object: str, ids: Sequence[str], fields: Sequence[str] = ()) -> list[SourceRecord]:
        return await self.puller.fetch(object, ids, fields)

    # -- writing -------------------------------------------------------
    async def push(self, object: str, ops: Sequence[WriteOp]) -> list[WriteResult]:
        return await self._gone_is_deleted(object, ops, await self.pusher.push(object, ops))

    async def push_checked(self, object: str, ops: Sequence[WriteOp], check: WriteCheck) -> list[WriteResult]:
        return await self._gone_is_deleted(object, ops, await self.pusher.push(object, ops, check))

    async def _gone_is_deleted(self, module: str, ops: Sequence[WriteOp], results: list[WriteResult]) -> list[WriteResult]:
        """Zoho answers the delete of a record already deleted with INVALID_DATA "record not deleted" — as it
        answers a delete sent again after its first answer was lost (a timeout, a crash). The record being
        gone is what the delete wanted: looked up to be sure, it is a success."""
        failed = [i for i, (op, r) in enumerate(zip(ops, results, strict=True))
                  if op.action == "delete" and op.external_id and not r.ok and r.code == "INVALID_DATA"]
        if not failed:
            return results
        try:
            live = await self.puller.fetch_raw(module, [str(ops[i].external_id) for i in failed],
                                               await self.puller.chunks(module, [MODIFIED]))
        except ConnectorError:
            return results  # not known: the failures stand
        out = list(results)
        for i in failed:
            if str(ops[i].external_id) not in live:
                out[i] = WriteResult(key=ops[i].key, ok=True, external_id=str(ops[i].external_id))
        return out

    # -- discovery -----------------------------------------------------
    async def list_objects(self) -> list[ObjectInfo]:
        return await self.catalog.list_objects()

    async def describe(self, object: str) -> list[FieldInfo]:
        return await self.catalog.describe(object)

    # -- notifications -------------------------------------------------
    async def enable_notifications(
        self, objects: Sequence[str], notify_url: str, channel_id: str, token: str, expires_at: datetime
    ) -> NotificationChannel:
        """Enable (or re-enable, which renews) a channel. Empty ``channel_id``/``token`` are generated."""
        channel = await self.watcher.enable(objects, notify_url, channel_id or None, token or None, expires_at)
        self._notify_urls[channel.channel_id] = notify_url
        return channel

    async def renew_notifications(
        self, channel: NotificationChannel, notify_url: str | None = None, expires_at: datetime | None = None
    ) -> NotificationChannel:
        """Extend a channel before ``channel.expires_at`` (called by the scheduler)."""
        url = notify_url or self._notify_urls.get(channel.channel_id)
        if url is None:
            current = await self.watcher.list(channel.channel_id)
            url = next((c.get("notify_url") for c in current if c.get("notify_url")), None)
            if url is None:
                # The channel is gone (expired or disabled): nothing to extend.
                raise ZohoApiError(
                    f"notification channel {channel.channel_id} no longer exists; enable it again",
                    status=404,
                    code="NOT_SUBSCRIBED",
                )
        renewed = await self.watcher.renew(channel, url, expires_at)
        self._notify_urls[channel.channel_id] = url
        return renewed

    async def disable_notifications(self, channel_id: str) -> None:
        await self.watcher.disable(channel_id)
        self._notify_urls.pop(channel_id, None)

    # -- ops -----------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return {
            "system": self.name,
            "type": self.type,
            "data_center": self.settings.data_center,
            "environment": self.settings.environment,
            **self.client.status(),
            "pull_restarts": self.puller.restarts,
            "records_refetched": self.puller.refetched,
        }
