"""The Kingdee K/3 Cloud connector: the engine's view of one data centre."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any

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
from ..errors import ConnectorConfigError
from . import discovery, filters
from .client import KingdeeClient
from .localtime import floor_second, literal, minus_seconds, utc_to_local, zone
from .objects import EntrySpec, ObjectSpec
from .paging import ScanState, WatermarkScan
from .settings import KingdeeSettings
from .writes import Writer


class KingdeeConnector(Connector):
    type = "kingdee"

    def __init__(
        self,
        name: str,
        settings: KingdeeSettings,
        *,
        observer: CallObserver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(name)
        self.settings = settings
        self.tz = zone(settings.timezone)
        self.client = KingdeeClient(settings, system=name, observer=observer, transport=transport)
        self.specs = {obj: ObjectSpec(obj, form, settings, self.tz) for obj, form in settings.objects.items()}

    async def close(self) -> None:
        await self.client.aclose()

    async def check(self) -> None:
        self.client.session.forget()
        await self.client.session.current()

    @property
    def limits(self) -> Limits:
        s = self.settings
        return Limits(page_size=s.page_size, write_batch=s.write_batch, fetch_batch=s.fetch_batch,
                      concurrency=s.concurrency)

    def spec(self, object: str) -> ObjectSpec:
        found = self.specs.get(object)
        if found is None:
            by_form = [s for s in self.specs.values() if s.form_id == object]
            if len(by_form) == 1:
                return by_form[0]
            raise ConnectorConfigError(
                f"unknown object {object!r}; configured: {', '.join(sorted(self.specs))}", system=self.name)
        return found

    # -- reading -----------------------------------------------------------
    def visibility_lag(self, object: str) -> timedelta:
        return timedelta(seconds=self.settings.overlap_seconds)

    async def pull(self, request: PullRequest) -> AsyncIterator[Page]:
        spec = self.spec(request.object)
        keys = spec.header_keys(request.fields)
        entries = spec.entries_for(request.fields)
        since = None
        if request.since is not None:
            look_back = 0.0 if request.settled else self.settings.overlap_seconds  # settled: waited out already
            local = utc_to_local(minus_seconds(request.since, look_back), self.tz)
            since = literal(floor_second(local))
        # A full pull reads everything once; an incremental one scans each watermark field.
        scans = spec.watermarks if since else spec.watermarks[:1]
        resume = request.resume or {}
        # A resume point only applies to the same pull (same lower bound); anything else starts over.
        resumable = bool(resume) and resume.get("since") == since and isinstance(resume.get("state"), dict)
        first = min(int(resume.get("scan", 0)), len(scans) - 1) if resumable else 0
        for index in range(first, len(scans)):
            state = ScanState.from_json(resume["state"]) if resumable and index == first else ScanState(bound=since)
            scan = WatermarkScan(
                self.client, form_id=spec.form_id, keys=keys, watermark=scans[index], id_field=spec.id_field,
                base_filter=spec.form.filter, page_size=self.settings.page_size,
                literal_style=self.settings.datetime_literal,
            )
            async for rows, state in scan.pages(state):
                if not rows:
                    continue
                records = await self._records(request.object, spec, keys, rows, entries)
                yield Page(records=records, resume={"scan": index, "since": since, "state": state.to_json()})

    async def fetch(self, object: str, ids: Sequence[str], fields: Sequence[str] = ()) -> list[SourceRecord]:
        spec = self.spec(object)
        keys = spec.header_keys(fields)
        entries = spec.entries_for(fields)
        out: list[SourceRecord] = []
        wanted = list(dict.fromkeys(str(i) for i in ids))
        for start in range(0, len(wanted), self.settings.fetch_batch):
            chunk = wanted[start:start + self.settings.fetch_batch]
            clause = filters.in_list(spec.id_field, chunk, numeric=all(i.lstrip("-").isdigit() for i in chunk))
            rows = await self.client.query(spec.form_id, keys, filter=filters.all_of([spec.form.filter, clause]),
                                           order=filters.order_by(spec.id_field))
            out.extend(await self._records(object, spec, keys, rows, entries))
        return out

    async def _records(self, object: str, spec: ObjectSpec, keys: list[str], rows: list[list[Any]],
                       entries: list[EntrySpec]) -> list[SourceRecord]:
        datas = [spec.row_data(keys, row) for row in rows]
        for entry in entries:
            lines = await self._lines(spec, entry, [spec.external_id(d) for d in datas])
            for data in datas:
                data[entry.key] = lines.get(spec.external_id(data), [])
        return [SourceRecord(object=object, external_id=spec.external_id(d), modified_at=spec.modified_at(d), data=d)
                for d in datas]

    async def _lines(self, spec: ObjectSpec, entry: EntrySpec, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Entry rows of these headers, read in their own query so header paging never splits an order."""
        keys = [spec.id_field, *entry.query_keys()]
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        size = self.settings.page_size
        for start in range(0, len(ids), self.settings.fetch_batch):
            chunk = ids[start:start + self.settings.fetch_batch]
            clause = filters.in_list(spec.id_field, chunk, numeric=all(i.lstrip("-").isdigit() for i in chunk))
            row_start = 0
            while True:
                rows = await self.client.query(spec.form_id, keys, filter=clause,
                                               order=filters.order_by(spec.id_field, entry.query_id),
                                               start_row=row_start, limit=size)
                for row in rows:
                    if row[1] in (None, "", 0):
                        continue  # a header without lines comes back as one row of nulls
                    out[str(row[0])].append(dict(zip(keys[1:], row[1:], strict=True)))
                if len(rows) < size:
                    break
                row_start += size
        return out

    # -- writing -----------------------------------------------------------
    async def push(self, object: str, ops: Sequence[WriteOp]) -> list[WriteResult]:
        if not ops:
            return []
        return await Writer(self.client, self.spec(object)).push(ops)

    async def push_checked(self, object: str, ops: Sequence[WriteOp], check: WriteCheck) -> list[WriteResult]:
        if not ops:
            return []
        return await Writer(self.client, self.spec(object)).push(ops, check)

    # -- discovery ---------------------------------------------------------
    async def list_objects(self) -> list[ObjectInfo]:
        return discovery.list_objects(self.specs)

    async def describe(self, object: str) -> list[FieldInfo]:
        return await discovery.describe(self.client, self.spec(object),
                                        use_business_info=self.settings.describe_from_business_info)

    # -- ops -----------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        session = self.client.session
        stats = self.client.http.stats
        bucket = self.client.bucket
        return {
            "type": self.type,
            "server": self.settings.site_url,
            "auth": self.settings.auth,
            "authenticated": session.active,
            "logins": session.logins,
            "session_losses": self.client.session_losses,
            "last_login_at": session.logged_in_at,
            "last_error": session.last_error,
            "calls_total": stats.total,
            "calls_last_hour": stats.last_hour(),
            "rate_limit": None if bucket is None else {
                "max_calls_per_minute": self.settings.max_calls_per_minute,
                "waited_seconds": round(bucket.waited_seconds, 3),
            },
        }
