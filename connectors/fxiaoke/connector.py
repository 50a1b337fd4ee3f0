"""The Fxiaoke connector: the engine's view of one tenant."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

import httpx

from ..base import (
    CallObserver,
    Connector,
    FieldInfo,
    Limits,
    ObjectInfo,
    Page,
    PullRequest,
    SourceRecord,
    WriteCheck,
    WriteOp,
    WriteResult,
)
from ..errors import AuthError, RecordRejected
from ..tokens import TokenCache, TokenSharing
from .client import FxiaokeClient, utc_now
from .discovery import Discovery
from .paging import Puller
from .paths import Endpoints
from .records import to_source_record
from .settings import FxiaokeSettings
from .writes import Writer

#: Friendly names the config may use instead of API names.
ALIASES = {"account": "AccountObj", "contact": "ContactObj", "partner": "PartnerObj", "sales_order": "SalesOrderObj"}


class FxiaokeConnector(Connector):
    type: ClassVar[str] = "fxiaoke"

    def __init__(
        self,
        name: str,
        settings: FxiaokeSettings,
        *,
        observer: CallObserver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        wall_clock: Callable[[], datetime] = utc_now,
    ) -> None:
        super().__init__(name)
        self.settings = settings
        self.client = FxiaokeClient(
            settings, system=name, observer=observer, transport=transport, wall_clock=wall_clock
        )
        self.endpoints = Endpoints(settings.paths, system=name)
        self.puller = Puller(self.client, self.endpoints, settings, system=name)
        self.writer = Writer(self.client, self.endpoints, self.puller, settings, system=name)
        self.discovery = Discovery(self.client, settings)

    # -- life cycle ----------------------------------------------------------------------
    async def close(self) -> None:
        await self.client.aclose()

    def share_tokens(self, cache: TokenCache, owner: str) -> None:
        s = self.settings
        path = s.paths.token if s.auth_style == "current" else s.paths.legacy_token
        identity = (s.host, path, s.app_id, s.app_secret.get_secret_value(), s.permanent_code.get_secret_value())
        self.client.tokens.sharing = TokenSharing(cache, owner, self.type, identity)

    async def check(self) -> None:
        try:
            await self.client.tokens.token()
            await self.client.call(self.settings.paths.object_list, {})
        except RecordRejected as exc:
            raise AuthError(f"credentials accepted but the API refused a call: {exc.message}", code=exc.code,
                            system=self.name) from exc

    @property
    def limits(self) -> Limits:
        return Limits(
            page_size=self.settings.page_size,
            write_batch=1,
            fetch_batch=1,
            concurrency=self.settings.write_concurrency,
        )

    def resolve(self, object_name: str) -> str:
        """API name for ``object_name`` (aliases: account, contact, partner, sales_order, opportunity)."""
        key = object_name.strip()
        if key.lower() == "opportunity":
            return self.settings.opportunity_object
        return self.endpoints.check_name(ALIASES.get(key.lower(), key))

    # -- reading -------------------------------------------------------------------------
    def timestamp_resolution(self, object: str) -> timedelta:
        """``last_modified_time`` is epoch milliseconds."""
        return timedelta(milliseconds=1)

    async def pull(self, request: PullRequest) -> AsyncIterator[Page]:
        async for page in self.puller.pages(self.resolve(request.object), request):
            yield page

    async def fetch(self, object: str, ids: Sequence[str], fields: Sequence[str] = ()) -> list[SourceRecord]:
        api_name = self.resolve(object)
        wanted = list(dict.fromkeys(str(i) for i in ids if i))
        path = self.endpoints.data(api_name, "get")
        not_found = set(self.settings.not_found_codes)
        slots = asyncio.Semaphore(self.settings.fetch_concurrency)

        async def one(record_id: str) -> dict[str, Any] | None:
            async with slots:
                try:
                    answer = await self.client.call(path, {"dataObjectApiName": api_name, "objectDataId": record_id})
                except RecordRejected as exc:
                    if exc.code is not None and exc.code.lstrip("-").isdigit() and int(exc.code) in not_found:
                        return None
                    raise
            data = answer.get("data")
            return data if isinstance(data, dict) and data.get("_id") else None

        rows = await asyncio.gather(*(one(i) for i in wanted))
        return [to_source_record(object, row, self.settings.tombstones) for row in rows if row is not None]

    # -- writing -------------------------------------------------------------------------
    async def push(self, object: str, ops: Sequence[WriteOp]) -> list[WriteResult]:
        return await self.writer.push(self.resolve(object), ops)

    async def push_checked(self, object: str, ops: Sequence[WriteOp], check: WriteCheck) -> list[WriteResult]:
        return await self.writer.push(self.resolve(object), ops, check)

    # -- discovery -----------------------------------------------------------------------
    async def list_objects(self) -> list[ObjectInfo]:
        return await self.discovery.list_objects()

    async def describe(self, object: str) -> list[FieldInfo]:
        return await self.discovery.describe(self.resolve(object))

    # -- ops -----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        status = self.client.status()
        paused = status["daily_quota"]["paused_until"]
        return {
            "type": self.type,
            "auth_style": self.settings.auth_style,
            "paused": paused is not None,
            "paused_until": paused,
            **status,
        }
