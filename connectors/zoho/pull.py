"""Reading records: sorted pulls that survive every Zoho paging limit, and fetch by ids.

Zoho's Get Records caps each call at 50 fields and 200 records, allows ``page``
only for the first 2,000 records, and one ``page_token`` sequence only for the first
100,000. A pull therefore:

* asks for the fields in chunks of at most 50 (each chunk also carries
  ``Modified_Time``), walks the chunks' pages in lockstep and merges them by id —
  a record whose chunks disagree is re-read by id (and left for later in the
  same pull when it changed meanwhile, since it now sorts later);
* sorts by ``Modified_Time`` ascending and follows ``next_page_token``;
* when a sequence ends early (100,000 records, an expired or refused token, no
  token past 2,000) starts a new query from the last ``Modified_Time`` delivered,
  skipping the ids already delivered at exactly that second. The same bookkeeping
  makes incremental pulls exact at their inclusive lower bound.

``If-Modified-Since`` is sent one second *before* the bound and the bound is then
applied locally: that is right whether Zoho's filter is inclusive (as Airbyte's
source assumes) or exclusive, and costs at most a few records of overlap.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from connectors.base import Page, PullRequest, SourceRecord

from .client import ZohoClient, ZohoResponse
from .discovery import Catalog
from .errors import ZohoApiError, ZohoConfigError
from .settings import SYSTEM_DUPLICATE_CHECK_FIELDS
from .timefmt import floor_second, format_datetime, parse_datetime

log = logging.getLogger(__name__)

MODIFIED = "Modified_Time"
DISCRETE_LIMIT = 2000
#: Errors that end one page_token sequence; the pull goes on with a new query.
RESTART_CODES = {"PAGINATION_LIMIT_EXCEEDED", "DISCRETE_PAGINATION_LIMIT_EXCEEDED", "EXPIRED_VALUE", "TOKEN_BOUND_DATA_MISMATCH"}
RESUME_VERSION = 1


class PullStalled(ZohoApiError):
    """More records share one Modified_Time than one query can page through."""


def batched(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(slots=True)
class Cursor:
    """How far a pull got: everything before ``bound``, and ``seen`` ids at exactly ``bound``."""

    since: datetime | None
    bound: datetime | None
    seen: set[str] = field(default_factory=set)
    #: ``since`` is strictly past a settled instant (see :attr:`PullRequest.settled`).
    strict: bool = False

    @classmethod
    def start(cls, request: PullRequest) -> Cursor:
        since = None
        strict = False
        if request.since:
            since = request.since.astimezone(timezone.utc)
            # Zoho keeps whole seconds: no record lies strictly between two, so a bound with a fraction
            # (the engine's "strictly after a settled instant") starts at the next whole second.
            strict = bool(request.settled and since.microsecond)
            since = floor_second(since) + timedelta(seconds=1) if since.microsecond else since
        resume = request.resume or {}
        if resume.get("v") == RESUME_VERSION and resume.get("object") == request.object:
            bound = parse_datetime(resume.get("bound"))
            return cls(since=since, bound=bound or since, seen=set(resume.get("seen") or ()), strict=strict)
        return cls(since=since, bound=since, strict=strict)

    def admit(self, record_id: str, modified: datetime | None) -> bool:
        if modified is None:
            return True
        if self.since is not None and modified < self.since:
            return False
        if self.bound is not None:
            if modified < self.bound:
                return False
            if modified == self.bound and record_id in self.seen:
                return False
        return True

    def advance(self, record_id: str, modified: datetime | None) -> None:
        if modified is None:
            return
        if self.bound is None or modified > self.bound:
            self.bound = modified
            self.seen = {record_id}
        elif modified == self.bound:
            self.seen.add(record_id)

    def progress(self) -> tuple[datetime | None, int]:
        return self.bound, len(self.seen)

    def resume(self, object: str, phase: str, **extra: Any) -> dict[str, Any]:
        return {
            "v": RESUME_VERSION,
            "object": object,
            "phase": phase,
            "bound": self.bound.isoformat() if self.bound else None,
            "seen": sorted(self.seen),
            **extra,
        }


@dataclass(slots=True)
class _Batch:
    """One page of a query after its field chunks were merged."""

    records: list[dict[str, Any]]
    more: bool
    server_count: int


class _Query:
    """One sorted query from a lower bound, its field chunks paged in lockstep."""

    def __init__(
        self, puller: Puller, module: str, chunks: list[list[str]], bound: datetime | None, *, strict: bool = False
    ) -> None:
        self.puller = puller
        self.module = module
        self.chunks = chunks
        self.bound = bound
        #: ``bound`` is strictly past a settled instant: nothing at the second before it is wanted.
        self.strict = strict
        self.next: list[dict[str, Any]] = [{"page": 1} for _ in chunks]
        self.count = 0

    def can_continue(self) -> bool:
        settings = self.puller.client.settings
        if self.count >= settings.records_per_query:
            return False
        # Without a token Zoho serves only the first 2,000 records by page number.
        return all("page_token" in n or n["page"] * settings.page_size <= DISCRETE_LIMIT for n in self.next)

    async def fetch(self) -> _Batch:
        settings = self.puller.client.settings
        headers = {}
        if self.bound is not None:
            # A second early unless the bound is strictly past a settled instant: then the inclusive filter
            # (documented; Airbyte's source adds 1 s for the same reason) must not return that instant again.
            early = timedelta(0) if self.strict else timedelta(seconds=1)
            headers["If-Modified-Since"] = format_datetime(self.bound - early)
        calls = []
        for chunk, position in zip(self.chunks, self.next, strict=True):
            params = {
                "fields": ",".join(chunk),
                "per_page": settings.page_size,
                "sort_by": MODIFIED,
                "sort_order": "asc",
                **position,
            }
            calls.append(self.puller.client.call("GET", self.module, params=params, headers=headers))
        responses: list[ZohoResponse] = list(await asyncio.gather(*calls))
        primary = responses[0]
        if primary.empty:
            return _Batch([], False, 0)
        data = list((primary.payload or {}).get("data") or [])
        info = (primary.payload or {}).get("info") or {}
        more = bool(info.get("more_records")) and bool(data)
        for i, response in enumerate(responses):
            info_i = ((response.payload or {}).get("info") or {}) if not response.empty else {}
            token = info_i.get("next_page_token")
            if token:
                self.next[i] = {"page_token": token}
            else:
                self.next[i] = {"page": int(info_i.get("page") or self.next[i].get("page", 1)) + 1}
        self.count += len(data)
        merged = await self.puller.merge_chunks(self.module, self.chunks, data, responses[1:])
        return _Batch(merged, more, len(data))


class Puller:
    def __init__(self, client: ZohoClient, catalog: Catalog) -> None:
        self.client = client
        self.catalog = catalog
        self.restarts = 0
        self.refetched = 0

    # -- field chunks --------------------------------------------------
    async def chunks(self, module: str, fields: Sequence[str]) -> list[list[str]]:
        names = list(dict.fromkeys(f for f in fields if f and f != "id"))
        if not names:
            names = await self.catalog.readable_field_names(module)
            if MODIFIED not in names:
                raise ZohoConfigError(
                    f"module {module!r} has no Modified_Time field, so it cannot be pulled in order", status=400, code=None
                )
        others = [f for f in names if f != MODIFIED]
        size = self.client.settings.fields_per_call - 1  # every chunk carries Modified_Time too
        chunks = [[*part, MODIFIED] for part in batched(others, size)] or [[MODIFIED]]
        return [list(c) for c in chunks]

    # -- pulling -------------------------------------------------------
    async def pull(self, request: PullRequest) -> AsyncIterator[Page]:
        module = request.object
        chunks = await self.chunks(module, request.fields)
        cursor = Cursor.start(request)
        resume = request.resume or {}
        phase = resume.get("phase", "records") if resume.get("v") == RESUME_VERSION else "records"
        if phase == "records":
            async for page in self._records(module, chunks, cursor):
                yield page
        if request.include_deleted and phase != "done":
            start = int(resume.get("deleted_page") or 1) if phase == "deleted" else 1
            async for page in self._deleted(module, cursor, start):
                yield page

    async def _records(self, module: str, chunks: list[list[str]], cursor: Cursor) -> AsyncIterator[Page]:
        query = _Query(self, module, chunks, cursor.bound, strict=cursor.strict and cursor.bound == cursor.since)
        started_at = cursor.progress()
        pending: asyncio.Task[_Batch] | None = asyncio.ensure_future(query.fetch())
        try:
            while pending is not None:
                try:
                    batch = await pending
                except ZohoApiError as exc:
                    pending = None
                    if not _ends_sequence(exc):
                        raise
                    query, started_at = self._restart(module, chunks, cursor, started_at, reason=exc.code)
                    pending = asyncio.ensure_future(query.fetch())
                    continue
                pending = None
                records: list[SourceRecord] = []
                for raw in batch.records:
                    record_id = str(raw.get("id"))
                    modified = parse_datetime(raw.get(MODIFIED))
                    if cursor.admit(record_id, modified):
                        cursor.advance(record_id, modified)
                        records.append(SourceRecord(module, record_id, modified, raw))
                if batch.more:
                    if not query.can_continue():
                        query, started_at = self._restart(module, chunks, cursor, started_at, reason="sequence limit")
                    # Start reading the next page while the caller works on this one.
                    pending = asyncio.ensure_future(query.fetch())
                phase = "records" if batch.more else "deleted"
                yield Page(records, cursor.resume(module, phase, deleted_page=1))
        finally:
            if pending is not None and not pending.done():
                pending.cancel()

    def _restart(
        self, module: str, chunks: list[list[str]], cursor: Cursor, started_at: tuple[datetime | None, int], *, reason: str | None
    ) -> tuple[_Query, tuple[datetime | None, int]]:
        now = cursor.progress()
        if now == started_at:
            raise PullStalled(
                f"{module}: a query ended ({reason}) without getting past Modified_Time "
                f"{cursor.bound.isoformat() if cursor.bound else 'start'} — more records share that second than one "
                f"query can return; pull this module with Bulk Read",
                status=400,
                code=reason,
            )
        self.restarts += 1
        log.info("zoho %s: new query from Modified_Time %s (%s)", module, cursor.bound, reason)
        return _Query(self, module, chunks, cursor.bound), now

    async def _deleted(self, module: str, cursor: Cursor, page: int) -> AsyncIterator[Page]:
        settings = self.client.settings
        headers = {}
        if cursor.since is not None:
            headers["If-Modified-Since"] = format_datetime(cursor.since - timedelta(seconds=1))
        while True:
            params = {"type": "all", "page": page, "per_page": settings.page_size}
            try:
                response = await self.client.call("GET", f"{module}/deleted", params=params, headers=headers)
            except ZohoApiError as exc:
                if exc.code == "DISCRETE_PAGINATION_LIMIT_EXCEEDED":
                    log.warning("zoho %s: deleted-records list stops at page %s (%s)", module, page, exc.message)
                    return
                raise
            if response.empty:
                return
            payload = response.payload or {}
            records = []
            for entry in payload.get("data") or []:
                deleted_at = parse_datetime(entry.get("deleted_time"))
                if cursor.since is not None and deleted_at is not None and deleted_at < cursor.since:
                    continue
                records.append(SourceRecord(module, str(entry.get("id")), deleted_at, _tombstone_data(module, entry),
                                            deleted=True))
            more = bool((payload.get("info") or {}).get("more_records")) and bool(payload.get("data"))
            phase = "deleted" if more else "done"
            yield Page(records, cursor.resume(module, phase, deleted_page=page + 1))
            if not more:
                return
            page += 1

    # -- merging and fetching ------------------------------------------
    async def merge_chunks(
        self, module: str, chunks: list[list[str]], primary: list[dict[str, Any]], others: Sequence[ZohoResponse]
    ) -> list[dict[str, Any]]:
        if not others:
            return primary
        by_id = [
            {str(r.get("id")): r for r in ((o.payload or {}).get("data") or [])} if not o.empty else {} for o in others
        ]
        merged: list[dict[str, Any] | None] = []
        stale: list[str] = []
        for record in primary:
            record_id = str(record.get("id"))
            combined = dict(record)
            for part in by_id:
                other = part.get(record_id)
                if other is None or other.get(MODIFIED) != record.get(MODIFIED):
                    stale.append(record_id)
                    combined = None
                    break
                combined.update(other)
            merged.append(combined)
        if stale:
            # A chunk page missed the record (records shifted between the calls) or shows a newer version.
            # Read all its fields again by id. If it still has the Modified_Time it was sorted by, deliver it
            # here; if it changed, it now sorts later and this same pull meets it again (deleted: a tombstone
            # follows) — delivering the newer version here would break the ascending order the cursor needs.
            self.refetched += len(stale)
            fresh = await self.fetch_raw(module, stale, chunks)
            out = []
            for combined, record in zip(merged, primary, strict=True):
                if combined is None:
                    again = fresh.get(str(record.get("id")))
                    combined = again if again is not None and again.get(MODIFIED) == record.get(MODIFIED) else None
                if combined is not None:
                    out.append(combined)
            return out
        return [m for m in merged if m is not None]

    async def fetch_raw(self, module: str, ids: Sequence[str], chunks: list[list[str]]) -> dict[str, dict[str, Any]]:
        """Current records by id, all chunks merged; ids Zoho does not return are absent."""
        settings = self.client.settings
        groups = list(batched(list(dict.fromkeys(ids)), settings.fetch_batch))
        results = await asyncio.gather(*(self._fetch_group(module, list(g), chunks) for g in groups))
        found: dict[str, dict[str, Any]] = {}
        for part in results:
            found.update(part)
        return found

    async def _fetch_group(self, module: str, ids: list[str], chunks: list[list[str]]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        wanted = ids
        for _ in range(3):
            responses = await asyncio.gather(
                *(
                    self.client.call("GET", module, params={"ids": ",".join(wanted), "fields": ",".join(chunk)})
                    for chunk in chunks
                )
            )
            parts = [
                {str(r.get("id")): r for r in ((resp.payload or {}).get("data") or [])} if not resp.empty else {}
                for resp in responses
            ]
            retry: list[str] = []
            for record_id in wanted:
                pieces = [p.get(record_id) for p in parts]
                if any(p is None for p in pieces):
                    continue  # deleted or unknown (or it vanished between chunk calls)
                stamps = {p.get(MODIFIED) for p in pieces}
                if len(stamps) > 1:
                    retry.append(record_id)
                    continue
                combined: dict[str, Any] = {}
                for p in pieces:
                    combined.update(p)
                found[record_id] = combined
            if not retry:
                break
            wanted = retry
        return found

    async def fetch(self, module: str, ids: Sequence[str], fields: Sequence[str]) -> list[SourceRecord]:
        ids = [str(i) for i in dict.fromkeys(ids) if i]
        if not ids:
            return []
        chunks = await self.chunks(module, fields)
        found = await self.fetch_raw(module, ids, chunks)
        records = [
            SourceRecord(module, record_id, parse_datetime(found[record_id].get(MODIFIED)), found[record_id])
            for record_id in ids
            if record_id in found
        ]
        missing = [i for i in ids if i not in found]
        if missing:
            records.extend(await self._tombstones(module, set(missing)))
        return records

    async def _tombstones(self, module: str, missing: set[str]) -> list[SourceRecord]:
        """Look the missing ids up in the recent deleted-records list."""
        settings = self.client.settings
        since = datetime.now(timezone.utc) - timedelta(hours=settings.deleted_lookback_hours)
        headers = {"If-Modified-Since": format_datetime(since)}
        found: list[SourceRecord] = []
        page = 1
        while missing and page <= DISCRETE_LIMIT // settings.page_size:
            try:
                response = await self.client.call(
                    "GET", f"{module}/deleted", params={"type": "all", "page": page, "per_page": settings.page_size}, headers=headers
                )
            except ZohoApiError as exc:
                log.warning("zoho %s: deleted-records lookup stopped: %s", module, exc.message)
                break
            if response.empty:
                break
            payload = response.payload or {}
            for entry in payload.get("data") or []:
                record_id = str(entry.get("id"))
                if record_id in missing:
                    missing.discard(record_id)
                    found.append(SourceRecord(module, record_id, parse_datetime(entry.get("deleted_time")),
                                              _tombstone_data(module, entry), deleted=True))
            if not (payload.get("info") or {}).get("more_records"):
                break
            page += 1
        return found


def _tombstone_data(module: str, entry: dict[str, Any]) -> dict[str, Any]:
    """A deleted-records entry, with its ``display_name`` also under the module's name field (Account_Name…):
    all that is left to recognise a record deleted before crmsync read it (a create whose answer was lost)."""
    data = dict(entry)
    names = SYSTEM_DUPLICATE_CHECK_FIELDS.get(module) or []
    if names and names[0] != "Email" and entry.get("display_name") not in (None, ""):
        data.setdefault(names[0], entry["display_name"])
    return data


def _ends_sequence(exc: ZohoApiError) -> bool:
    if exc.code in RESTART_CODES:
        return True
    # An unknown or foreign page token is INVALID_DATA naming the page_token parameter.
    return exc.code == "INVALID_DATA" and "page_token" in str(exc.details)


__all__ = ["Puller", "Cursor", "PullStalled"]
