"""The emulated org's data: records, sorted indexes, unique checks, deleted records.

Thread-safe (one re-entrant lock): the API runs on the server's event loop while
``/_admin`` calls, the notifier and tests may come from other threads. Each module
keeps sorted ``(key, id)`` lists for ``id``, ``Created_Time`` and ``Modified_Time``
so that a 250,000-record module pages by ``Modified_Time`` in O(log n) per page and
an update moves one entry.
"""
from __future__ import annotations

import threading
import zlib
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from connectors.emulation.switches import Switches

from .emulator_schema import API_USER, ORG_PREFIX, USERS, ModuleDef, User, build_modules
from .emulator_validate import Validator, error
from .timefmt import parse_offset

RECYCLE_DAYS = 60
PERMANENT_DAYS = 120
SORT_FIELDS = ("id", "Created_Time", "Modified_Time")

#: Default switches of the Zoho emulator (change at run time with PATCH /_admin/switches).
#: Everything the reference marks UNCONFIRMED is one of these.
DEFAULT_SWITCHES: dict[str, Any] = {
    "time_zone": "+05:30",  # the API user's time zone: offset of every datetime served
    # The clock (frozen_time, clock_offset_seconds) is a shared switch: connectors/emulation/switches.py.
    "discrete_page_limit": 2000,  # records reachable with page/per_page
    "page_token_record_limit": 100_000,  # records one page_token sequence may return
    "page_token_mode": "keyset",  # UNCONFIRMED: "keyset" (continues after the last record) or "offset"
    "page_token_ttl_seconds": 86_400,
    "page_tokens_in_v2": False,  # UNCONFIRMED whether /crm/v2 hands out next_page_token
    "if_modified_since_inclusive": True,  # UNCONFIRMED (Airbyte's source assumes inclusive)
    "notify_api_writes": True,  # the docs: notifications fire for any action on the module's records
    "accept_bearer": True,  # UNCONFIRMED: "Authorization: Bearer" accepted besides Zoho-oauthtoken
    "write_success_status": {"insert": 201, "update": 200, "upsert": 200, "delete": 200},  # UNCONFIRMED for update/upsert
    "v2_multi_insert_status": 201,  # old v2 text says 202 for multi-record inserts
    "missing_record_status": 204,  # UNCONFIRMED: GET /{module}/{id} of an unknown id (204 or 400)
    "reject_unknown_fields": False,  # UNCONFIRMED: unknown field names in writes are ignored
    "enforce_unique_on_insert": True,
    "bump_on_noop_update": False,  # UNCONFIRMED: an update that changes nothing keeps Modified_Time
    "pipeline_required": False,  # Deals.Pipeline mandatory when pipelines are enabled
    "retry_after_seconds": None,  # UNCONFIRMED: Zoho documents no Retry-After on 429
    "credits_per_day": None,  # API credits of the rolling 24 h (None: unlimited)
    "credits_header_always": False,  # the header appears once >= 50 % of credits are used
    "max_tokens_per_refresh_token": 30,
    "token_ttl": 3600,
    "concurrency": None,  # concurrent API calls before 429
    "rate_limit": None,  # API calls per second before 429
    "notify_timeout_seconds": 10.0,
    "api_domain": None,  # api_domain in token answers (default: the emulator's own URL)
}


#: System fields rendered from the record's own bookkeeping rather than its values.
_RENDER_KIND = {"Created_Time": "created", "Modified_Time": "modified", "Created_By": "created_by",
                "Modified_By": "modified_by", "Last_Activity_Time": "modified", "Locked__s": "locked"}


def norm(value: Any) -> str:
    return str(value).strip().casefold()


class SortedIndex:
    """A sorted list of ``(key, id)`` tuples."""

    __slots__ = ("keys",)

    def __init__(self) -> None:
        self.keys: list[tuple[int, int]] = []

    def add(self, key: tuple[int, int]) -> None:
        if not self.keys or key > self.keys[-1]:
            self.keys.append(key)  # the common case: new ids and fresh timestamps go last
        else:
            insort(self.keys, key)

    def remove(self, key: tuple[int, int]) -> None:
        i = bisect_left(self.keys, key)
        if i < len(self.keys) and self.keys[i] == key:
            del self.keys[i]


@dataclass(slots=True)
class Rec:
    id: int
    ct: int
    mt: int
    values: dict[str, Any]
    created_by: str
    modified_by: str


@dataclass(slots=True)
class Deleted:
    id: int
    deleted_time: int
    kind: str  # recycle | permanent
    display_name: str | None
    deleted_by: str | None
    created_by: str | None


@dataclass(slots=True)
class View:
    """A contiguous slice ``keys[lo:hi]`` read ascending or descending."""

    keys: list[tuple[int, int]]
    lo: int
    hi: int
    desc: bool

    def __len__(self) -> int:
        return max(0, self.hi - self.lo)

    def page(self, offset: int, n: int) -> tuple[list[tuple[int, int]], bool]:
        if self.desc:
            end = self.hi - offset
            start = max(self.lo, end - n)
            return (self.keys[start:end][::-1] if end > start else []), start > self.lo
        start = self.lo + offset
        end = min(self.hi, start + n)
        return (self.keys[start:end] if end > start else []), end < self.hi

    def offset_after(self, last: tuple[int, int]) -> int:
        if self.desc:
            return self.hi - bisect_left(self.keys, tuple(last), self.lo, self.hi)
        return bisect_right(self.keys, tuple(last), self.lo, self.hi) - self.lo


@dataclass
class Event:
    """A change the notifier tells watch channels about."""

    module: str
    operation: str  # insert | update | delete
    ids: list[str]
    affected: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> changed field values
    source: str = "api"  # api | admin


class ModuleStore:
    def __init__(self, mdef: ModuleDef) -> None:
        self.mdef = mdef
        self.records: dict[int, Rec] = {}
        self.by_id = SortedIndex()
        self.by_ct = SortedIndex()
        self.by_mt = SortedIndex()
        unique_fields = [f.api_name for f in mdef.fields if f.unique]
        self.unique: dict[str, dict[str, int]] = {name: {} for name in unique_fields}
        # Duplicate-check fields that are not unique (Contacts.Email) still find matches for upsert.
        self.lookup_fields = [f for f in mdef.duplicate_check if f not in self.unique]
        self.matches: dict[str, dict[str, list[int]]] = {name: {} for name in self.lookup_fields}
        self.deleted: list[Deleted] = []

    def index(self, rec: Rec) -> None:
        self.records[rec.id] = rec
        self.by_id.add((rec.id, rec.id))
        self.by_ct.add((rec.ct, rec.id))
        self.by_mt.add((rec.mt, rec.id))
        self._index_values(rec.id, rec.values)

    def unindex(self, rec: Rec) -> None:
        self.records.pop(rec.id, None)
        self.by_id.remove((rec.id, rec.id))
        self.by_ct.remove((rec.ct, rec.id))
        self.by_mt.remove((rec.mt, rec.id))
        self._unindex_values(rec.id, rec.values)

    def _index_values(self, rid: int, values: dict[str, Any]) -> None:
        for name, idx in self.unique.items():
            if values.get(name) not in (None, ""):
                idx[norm(values[name])] = rid
        for name, multi in self.matches.items():
            if values.get(name) not in (None, ""):
                multi.setdefault(norm(values[name]), []).append(rid)

    def _unindex_values(self, rid: int, values: dict[str, Any]) -> None:
        for name, idx in self.unique.items():
            if values.get(name) not in (None, "") and idx.get(norm(values[name])) == rid:
                del idx[norm(values[name])]
        for name, multi in self.matches.items():
            if values.get(name) not in (None, ""):
                ids = multi.get(norm(values[name]), [])
                if rid in ids:
                    ids.remove(rid)
                if not ids:
                    multi.pop(norm(values[name]), None)

    def touch(self, rec: Rec, mt: int, user: str) -> None:
        self.by_mt.remove((rec.mt, rec.id))
        rec.mt = mt
        rec.modified_by = user
        self.by_mt.add((rec.mt, rec.id))

    def find(self, field_name: str, value: Any) -> int | None:
        if value in (None, ""):
            return None
        if field_name in self.unique:
            return self.unique[field_name].get(norm(value))
        if field_name in self.matches:
            ids = self.matches[field_name].get(norm(value))
            return min(ids) if ids else None
        key = norm(value)  # any other field: a scan (Zoho only allows unique fields here anyway)
        for rec in self.records.values():
            if rec.values.get(field_name) not in (None, "") and norm(rec.values[field_name]) == key:
                return rec.id
        return None


class ZohoStore:
    def __init__(self, switches: Switches, *, sink: Callable[[list[Event]], None] | None = None) -> None:
        self.switches = switches
        self.sink = sink or (lambda events: None)
        self.lock = threading.RLock()
        self.modules_def = build_modules()
        self.users = {u.id: u for u in USERS}
        self.modules: dict[str, ModuleStore] = {}
        self.version = 0
        self._serial = 0
        self._view_cache: dict[tuple, list[tuple[int, int]]] = {}
        self._tz: tuple[str, timezone] | None = None
        self.reset()

    # -- basics ----------------------------------------------------------
    def reset(self) -> None:
        with self.lock:
            self.modules = {name: ModuleStore(mdef) for name, mdef in self.modules_def.items()}
            self._serial = 524_000
            self.version += 1
            self._view_cache.clear()

    def switch(self, name: str) -> Any:
        return self.switches.extra.get(name, DEFAULT_SWITCHES.get(name))

    @property
    def offset(self) -> timedelta:
        return self.tz.utcoffset(None)  # type: ignore[return-value]

    @property
    def tz(self) -> timezone:
        text = str(self.switch("time_zone") or "+00:00")
        if self._tz is None or self._tz[0] != text:
            self._tz = (text, timezone(parse_offset(text)))
        return self._tz[1]

    def now(self) -> int:
        """The org's clock in whole seconds (Zoho keeps no fractions): frozen or skewed by the switches."""
        return int(self.switches.now())

    def fmt(self, epoch: int | None) -> str | None:
        if epoch is None:
            return None
        return datetime.fromtimestamp(epoch, tz=self.tz).isoformat()

    def new_id(self) -> int:
        self._serial += 1 + (self._serial * 7919) % 5  # not consecutive, like Zoho's
        return int(f"{ORG_PREFIX}{self._serial:012d}")

    def module(self, name: str) -> ModuleStore | None:
        return self.modules.get(name)

    def exists(self, module: str, rid: str) -> bool:
        store = self.modules.get(module)
        return store is not None and rid.isdigit() and int(rid) in store.records

    def _changed(self) -> None:
        self.version += 1
        self._view_cache.clear()

    def validator(self, store: ModuleStore) -> Validator:
        return Validator(
            store.mdef,
            exists=self.exists,
            is_user=lambda uid: uid in self.users,
            reject_unknown=bool(self.switch("reject_unknown_fields")),
            pipeline_required=bool(self.switch("pipeline_required")),
        )

    # -- rendering -------------------------------------------------------
    def user_ref(self, uid: str | None, with_email: bool = True) -> dict[str, str] | None:
        user = self.users.get(uid or "")
        if user is None:
            return None
        ref = user.lookup()
        if not with_email:
            ref.pop("email")
        return ref

    def display_name(self, module: str, rid: int) -> str | None:
        store = self.modules.get(module)
        rec = store.records.get(rid) if store else None
        if rec is None:
            return None
        value = rec.values.get(store.mdef.primary)  # type: ignore[union-attr]
        return None if value is None else str(value)

    def render(self, store: ModuleStore, rec: Rec, fields: Iterable[str] | None) -> dict[str, Any]:
        """A record as the API shows it: lookups as {name, id}, owners with email, datetimes in the org's offset."""
        mdef = store.mdef
        names = [f.api_name for f in mdef.fields] if fields is None else [n for n in fields if n in mdef.by_name]
        tz = self.tz
        values = rec.values
        out: dict[str, Any] = {}
        for name in names:
            kind = _RENDER_KIND.get(name) or mdef.by_name[name].data_type
            if kind == "created":
                out[name] = datetime.fromtimestamp(rec.ct, tz=tz).isoformat()
            elif kind == "modified":
                out[name] = datetime.fromtimestamp(rec.mt, tz=tz).isoformat()
            elif kind == "created_by":
                out[name] = self.user_ref(rec.created_by)
            elif kind == "modified_by":
                out[name] = self.user_ref(rec.modified_by)
            elif kind == "locked":
                out[name] = False
            else:
                value = values.get(name)
                if value is None:
                    out[name] = [] if kind == "tag" else None
                elif kind == "lookup":
                    label = self.display_name(mdef.by_name[name].lookup or "", int(value))
                    out[name] = {"name": label, "id": value} if label is not None else None
                elif kind in ("ownerlookup", "userlookup"):
                    out[name] = self.user_ref(value)
                elif kind == "datetime":
                    out[name] = datetime.fromtimestamp(value, tz=tz).isoformat()
                elif kind == "tag":
                    out[name] = [{"name": t, "id": f"{ORG_PREFIX}{zlib.crc32(t.encode()):012d}"} for t in value]
                elif kind == "multiselectpicklist":
                    out[name] = list(value)
                else:
                    out[name] = value
        out["id"] = str(rec.id)
        return out

    def success_details(self, rec: Rec) -> dict[str, Any]:
        return {
            "Modified_Time": self.fmt(rec.mt),
            "Modified_By": self.user_ref(rec.modified_by, with_email=False),
            "Created_Time": self.fmt(rec.ct),
            "id": str(rec.id),
            "Created_By": self.user_ref(rec.created_by, with_email=False),
            "$approval_state": "approved",
        }

    # -- reading ---------------------------------------------------------
    def view(self, module: str, *, sort_by: str, desc: bool, ims: int | None, ids: list[int] | None) -> View:
        """The ordered records a list call walks (call with the lock held)."""
        store = self.modules[module]
        inclusive = bool(self.switch("if_modified_since_inclusive"))
        floor = None if ims is None else (ims if inclusive else ims + 1)
        index = {"id": store.by_id, "Created_Time": store.by_ct, "Modified_Time": store.by_mt}[sort_by]
        if ids is not None:
            keys = sorted(
                self._sort_key(store.records[i], sort_by)
                for i in dict.fromkeys(ids)
                if i in store.records and (floor is None or store.records[i].mt >= floor)
            )
            return View(keys, 0, len(keys), desc)
        if floor is None:
            return View(index.keys, 0, len(index.keys), desc)
        if sort_by == "Modified_Time":
            return View(index.keys, bisect_left(index.keys, (floor, -1)), len(index.keys), desc)
        cache_key = (module, sort_by, floor, self.version)
        keys = self._view_cache.get(cache_key)
        if keys is None:
            keys = [k for k in index.keys if store.records[k[1]].mt >= floor]
            if len(self._view_cache) > 32:
                self._view_cache.clear()
            self._view_cache[cache_key] = keys
        return View(keys, 0, len(keys), desc)

    @staticmethod
    def _sort_key(rec: Rec, sort_by: str) -> tuple[int, int]:
        return {"id": (rec.id, rec.id), "Created_Time": (rec.ct, rec.id), "Modified_Time": (rec.mt, rec.id)}[sort_by]

    def deleted_list(self, module: str, kind: str, ims: int | None) -> list[Deleted]:
        """Newest first, retention applied (recycle bin 60 days, permanent 120)."""
        store = self.modules[module]
        now = self.now()
        inclusive = bool(self.switch("if_modified_since_inclusive"))
        out = []
        for entry in reversed(store.deleted):
            limit = RECYCLE_DAYS if entry.kind == "recycle" else PERMANENT_DAYS
            if entry.deleted_time < now - limit * 86400:
                continue
            if kind != "all" and entry.kind != kind:
                continue
            if ims is not None and (entry.deleted_time < ims or (not inclusive and entry.deleted_time == ims)):
                continue
            out.append(entry)
        return out

    def render_deleted(self, entry: Deleted) -> dict[str, Any]:
        permanent = entry.kind == "permanent"
        return {
            "deleted_by": None if permanent else self.user_ref(entry.deleted_by, with_email=False),
            "id": str(entry.id),
            "display_name": None if permanent else entry.display_name,
            "type": entry.kind,
            "created_by": None if permanent else self.user_ref(entry.created_by, with_email=False),
            "deleted_time": self.fmt(entry.deleted_time),
        }

    # -- writing ---------------------------------------------------------
    def _duplicate(self, store: ModuleStore, values: dict[str, Any], path: str, skip: int | None) -> dict[str, Any] | None:
        if not self.switch("enforce_unique_on_insert"):
            return None
        for name, idx in store.unique.items():
            value = values.get(name)
            if value in (None, ""):
                continue
            other = idx.get(norm(value))
            if other is not None and other != skip:
                owner = store.records[other].values.get("Owner")
                return error(
                    "DUPLICATE_DATA",
                    "duplicate data",
                    api_name=name,
                    json_path=f"{path}.{name}",
                    duplicate_record={
                        "id": str(other),
                        "module": {"api_name": store.mdef.api_name, "id": store.mdef.id},
                        "Owner": self.user_ref(owner, with_email=False),
                    },
                    more_records=False,
                )
        return None

    def _derive(self, store: ModuleStore, values: dict[str, Any], before: dict[str, Any], explicit: dict[str, Any]) -> None:
        """Fields Zoho computes: contact full name, deal probability by stage and expected revenue."""
        name = store.mdef.api_name
        if name == "Contacts":
            first, last = values.get("First_Name"), values.get("Last_Name")
            values["Full_Name"] = " ".join(str(p) for p in (first, last) if p) or None
        if name == "Deals":
            from .emulator_schema import DEAL_STAGES

            if "Stage" in explicit and "Probability" not in explicit and values.get("Stage") != before.get("Stage"):
                values["Probability"] = dict(DEAL_STAGES).get(values.get("Stage"), values.get("Probability"))
            amount, probability = values.get("Amount"), values.get("Probability")
            values["Expected_Revenue"] = (
                round(float(amount) * float(probability) / 100, 2) if amount is not None and probability is not None else None
            )

    def _create(self, store: ModuleStore, values: dict[str, Any], user: User, now: int) -> Rec:
        values.setdefault("Owner", user.id)
        if values.get("Owner") is None:
            values["Owner"] = user.id
        self._derive(store, values, {}, dict(values))
        clean = {k: v for k, v in values.items() if v is not None}
        rec = Rec(self.new_id(), now, now, clean, user.id, user.id)
        store.index(rec)
        return rec

    def _apply(self, store: ModuleStore, rec: Rec, changes: dict[str, Any], user: User, now: int) -> dict[str, Any]:
        """Apply changes to a record; returns the fields whose value really changed."""
        before = dict(rec.values)
        merged = {**rec.values, **changes}
        self._derive(store, merged, before, changes)
        changed = {k: merged.get(k) for k in set(merged) | set(before) if merged.get(k) != before.get(k)}
        if not changed and not self.switch("bump_on_noop_update"):
            return {}
        store._unindex_values(rec.id, rec.values)
        rec.values = {k: v for k, v in merged.items() if v is not None}
        store._index_values(rec.id, rec.values)
        store.touch(rec, max(now, rec.mt), user.id)
        return changed

    def _affected(self, store: ModuleStore, rec: Rec, changed: dict[str, Any]) -> dict[str, Any]:
        """Changed fields as the API would show them (for notification affected_values)."""
        rendered = self.render(store, rec, list(changed))
        rendered.pop("id", None)
        return rendered

    def insert(self, module: str, items: list[Any], user: User, source: str = "api") -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        events: list[Event] = []
        with self.lock:
            store = self.modules[module]
            validator = self.validator(store)
            now = self.now()
            created: list[str] = []
            for i, item in enumerate(items):
                values, errors = validator.clean(item, i, creating=True)
                problem = _first(errors) or self._duplicate(store, values, f"$.data[{i}]", None)
                if problem:
                    results.append(problem)
                    continue
                rec = self._create(store, values, user, now)
                created.append(str(rec.id))
                results.append({"code": "SUCCESS", "details": self.success_details(rec), "message": "record added", "status": "success"})
            if created:
                self._changed()
                events.append(Event(module, "insert", created, source=source))
        self.sink(events)
        return results

    def update(self, module: str, items: list[Any], user: User, source: str = "api") -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        with self.lock:
            store = self.modules[module]
            validator = self.validator(store)
            now = self.now()
            affected: dict[str, dict[str, Any]] = {}
            for i, item in enumerate(items):
                path = f"$.data[{i}]"
                rid = item.get("id") if isinstance(item, dict) else None
                if rid in (None, ""):
                    results.append(error("MANDATORY_NOT_FOUND", "required field not found", api_name="id", json_path=f"{path}.id"))
                    continue
                rec = store.records.get(int(rid)) if str(rid).isdigit() else None
                if rec is None:
                    results.append(error("INVALID_DATA", "the id given seems to be invalid", api_name="id", json_path=f"{path}.id"))
                    continue
                values, errors = validator.clean(item, i, creating=False)
                problem = _first(errors) or self._duplicate(store, {**rec.values, **values}, path, rec.id)
                if problem:
                    results.append(problem)
                    continue
                changed = self._apply(store, rec, values, user, now)
                if changed:
                    affected[str(rec.id)] = self._affected(store, rec, changed)
                results.append({"code": "SUCCESS", "details": self.success_details(rec), "message": "record updated", "status": "success"})
            if affected:
                self._changed()
        self.sink([Event(module, "update", list(affected), affected, source=source)] if affected else [])
        return results

    def upsert(self, module: str, items: list[Any], match_fields: list[str], user: User) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        with self.lock:
            store = self.modules[module]
            validator = self.validator(store)
            now = self.now()
            created: list[str] = []
            affected: dict[str, dict[str, Any]] = {}
            for i, item in enumerate(items):
                path = f"$.data[{i}]"
                existing: Rec | None = None
                matched_on = None
                if isinstance(item, dict):
                    for name in match_fields:
                        rid = store.find(name, item.get(name))
                        if rid is not None:
                            existing, matched_on = store.records[rid], name
                            break
                values, errors = validator.clean(item, i, creating=existing is None)
                base = {**existing.values, **values} if existing else values
                problem = _first(errors) or self._duplicate(store, base, path, existing.id if existing else None)
                if problem:
                    results.append(problem)
                    continue
                if existing is None:
                    rec = self._create(store, values, user, now)
                    created.append(str(rec.id))
                    action, message = "insert", "record added"
                else:
                    rec = existing
                    changed = self._apply(store, rec, values, user, now)
                    if changed:
                        affected[str(rec.id)] = self._affected(store, rec, changed)
                    action, message = "update", "record updated"
                results.append({"code": "SUCCESS", "duplicate_field": matched_on, "action": action,
                                "details": self.success_details(rec), "message": message, "status": "success"})
            if created or affected:
                self._changed()
        events = []
        if created:
            events.append(Event(module, "insert", created))
        if affected:
            events.append(Event(module, "update", list(affected), affected))
        self.sink(events)
        return results

    def delete(self, module: str, ids: list[str], user: User, source: str = "api", kind: str = "recycle") -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        gone: list[str] = []
        with self.lock:
            store = self.modules[module]
            now = self.now()
            for rid in ids:
                rec = store.records.get(int(rid)) if rid.isdigit() else None
                if rec is None:
                    results.append(error("INVALID_DATA", "record not deleted", id=rid))
                    continue
                display = rec.values.get(store.mdef.primary)
                store.unindex(rec)
                store.deleted.append(Deleted(rec.id, now, kind, None if display is None else str(display), user.id, rec.created_by))
                gone.append(rid)
                results.append({"code": "SUCCESS", "details": {"id": rid}, "message": "record deleted", "status": "success"})
            if gone:
                self._changed()
        self.sink([Event(module, "delete", gone, source=source)] if gone else [])
        return results

    def add_seeded(self, module: str, rows: list[tuple[dict[str, Any], int, int, str]]) -> list[Rec]:
        """Load seed rows ``(values, created, modified, owner)`` in bulk (seeding notifies nobody).

        Indexes are appended to and sorted once, so 250,000 records load in seconds.
        """
        with self.lock:
            store = self.modules[module]
            recs = []
            for values, created, modified, owner in rows:
                values = dict(values)
                values.setdefault("Owner", owner)
                self._derive(store, values, {}, dict(values))
                clean = {k: v for k, v in values.items() if v is not None}
                rec = Rec(self.new_id(), created, modified, clean, owner, owner)
                store.records[rec.id] = rec
                store._index_values(rec.id, rec.values)
                store.by_id.keys.append((rec.id, rec.id))
                store.by_ct.keys.append((rec.ct, rec.id))
                store.by_mt.keys.append((rec.mt, rec.id))
                recs.append(rec)
            store.by_id.keys.sort()
            store.by_ct.keys.sort()
            store.by_mt.keys.sort()
            self._changed()
            return recs

    def snapshot_ids(self, module: str) -> list[str]:
        with self.lock:
            return [str(k[1]) for k in self.modules[module].by_id.keys]

    def api_user(self) -> User:
        return API_USER


def _first(errors: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not errors:
        return None
    if len(errors) == 1:
        return errors[0]
    return error("MULTIPLE_OR_MULTI_ERRORS", "multiple errors occurred", errors=errors)
