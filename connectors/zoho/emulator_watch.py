"""Notification channels of the emulator (``/actions/watch``) and the callback sender.

A subscription is one (channel, module) pair, as Zoho lists them. Changes are
POSTed with the documented payload (``server_time``, ``query_params``, ``module``,
``resource_uri`` — always ``/crm/v2/`` as Zoho sends it — ``ids``,
``affected_fields``, ``operation``, ``channel_id``, ``token``) from one background
thread, in order, to loopback URLs only.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from .emulator_store import Event, ZohoStore
from .emulator_validate import error

log = logging.getLogger(__name__)

OPS = {"create": "insert", "edit": "update", "delete": "delete"}
DEFAULT_EXPIRY = 3600
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


@dataclass
class Subscription:
    channel_id: str
    module: str
    events: set[str]  # create | edit | delete
    notify_url: str
    token: str | None
    expiry: int
    return_affected_field_values: bool = False
    notify_on_related_action: bool = True
    notification_condition: list[Any] | None = None
    fields: set[str] = field(default_factory=set)  # field_selection of notification_condition


def _condition_fields(condition: Any) -> set[str]:
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            f = node.get("field")
            if isinstance(f, dict) and f.get("api_name"):
                found.add(f["api_name"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(condition)
    return found


class WatchRegistry:
    def __init__(self, store: ZohoStore, base_url: Callable[[], str]) -> None:
        self.store = store
        self.base_url = base_url
        self.lock = threading.Lock()
        self.subs: dict[tuple[str, str], Subscription] = {}
        self.deliveries: deque[dict[str, Any]] = deque(maxlen=1000)
        self._queue: queue.Queue[tuple[Subscription, Event, int] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._client: httpx.Client | None = None

    # -- API -------------------------------------------------------------
    def _max_seconds(self, version: float) -> int:
        return 86400 if version < 4 else 7 * 86400

    def _resource(self, module: str, version: str) -> dict[str, str]:
        mdef = self.store.modules_def[module]
        return {"resource_uri": f"{self.base_url()}/crm/{version}/{module}", "resource_id": mdef.id, "resource_name": module}

    def _parse(self, item: Any, i: int, version: str, *, partial: bool) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """Validate one watch item; returns (clean, error)."""
        path = f"$.watch[{i}]"
        if not isinstance(item, dict):
            return None, error("INVALID_DATA", "invalid data", json_path=path)
        channel_id = item.get("channel_id")
        if channel_id in (None, ""):
            return None, error("MANDATORY_NOT_FOUND", "required field not found", api_name="channel_id", json_path=f"{path}.channel_id")
        if isinstance(channel_id, bool) or not str(channel_id).isdigit() or len(str(channel_id)) > 19:
            return None, error("INVALID_DATA", "invalid data", api_name="channel_id", json_path=f"{path}.channel_id", expected_data_type="long")
        clean: dict[str, Any] = {"channel_id": str(int(channel_id))}
        events = item.get("events")
        if events is None and not partial:
            return None, error("MANDATORY_NOT_FOUND", "required field not found", api_name="events", json_path=f"{path}.events")
        if events is not None:
            if not isinstance(events, list) or not events:
                return None, error("INVALID_DATA", "invalid data", api_name="events", json_path=f"{path}.events")
            by_module: dict[str, set[str]] = {}
            for event in events:
                module, _, op = str(event).rpartition(".")
                if module not in self.store.modules_def:
                    return None, error("INVALID_MODULE", "the module name given seems to be invalid", api_name="events",
                                       json_path=f"{path}.events", module=module)
                if op not in ("create", "edit", "delete", "all"):
                    return None, error("INVALID_DATA", "invalid data", api_name="events", json_path=f"{path}.events")
                by_module.setdefault(module, set()).update(OPS if op == "all" else {op})
            clean["events"] = by_module
        url = item.get("notify_url")
        if url is None and not partial:
            return None, error("MANDATORY_NOT_FOUND", "required field not found", api_name="notify_url", json_path=f"{path}.notify_url")
        if url is not None:
            parts = urlsplit(str(url))
            if parts.scheme not in ("http", "https") or not parts.netloc:
                return None, error("INVALID_DATA", "invalid data", api_name="notify_url", json_path=f"{path}.notify_url")
            clean["notify_url"] = str(url)
        if "token" in item:
            token = item["token"]
            if token is not None and (not isinstance(token, str) or len(token) > 50):
                return None, error("INVALID_DATA", "invalid data", api_name="token", json_path=f"{path}.token", maximum_length=50)
            clean["token"] = token
        now = int(time.time())
        if item.get("channel_expiry") is not None:
            try:
                when = datetime.fromisoformat(str(item["channel_expiry"]).replace("Z", "+00:00"))
                if when.tzinfo is None:
                    raise ValueError
            except ValueError:
                return None, error("INVALID_DATA", "invalid data", api_name="channel_expiry", json_path=f"{path}.channel_expiry",
                                   expected_data_type="datetime")
            expiry = int(when.timestamp())
            if expiry <= now:
                return None, error("INVALID_DATA", "invalid data", api_name="channel_expiry", json_path=f"{path}.channel_expiry")
            if expiry > now + self._max_seconds(float(version[1:])):
                expiry = now + DEFAULT_EXPIRY  # Zoho: longer than allowed falls back to one hour
            clean["expiry"] = expiry
        elif not partial:
            clean["expiry"] = now + DEFAULT_EXPIRY
        for key in ("return_affected_field_values", "notify_on_related_action"):
            if key in item:
                clean[key] = bool(item[key])
        if "notification_condition" in item:
            clean["notification_condition"] = item["notification_condition"]
        if item.get("_delete_events") is not None:
            clean["_delete_events"] = bool(item["_delete_events"])
        return clean, None

    def _event_details(self, subs: list[Subscription], version: str) -> list[dict[str, Any]]:
        return [
            {"channel_expiry": self.store.fmt(s.expiry), **self._resource(s.module, version), "channel_id": s.channel_id}
            for s in subs
        ]

    def subscribe(self, items: Any, version: str, *, replace: bool) -> tuple[int, dict[str, Any]]:
        """POST (enable, or re-enable to renew) and PUT (replace a channel's details)."""
        if not isinstance(items, list) or not items:
            return 400, {"watch": [error("MANDATORY_NOT_FOUND", "required field not found", api_name="watch")]}
        answers, ok = [], 0
        with self.lock:
            for i, item in enumerate(items):
                clean, problem = self._parse(item, i, version, partial=False)
                if problem:
                    answers.append(problem)
                    continue
                cid = clean["channel_id"]
                if replace:
                    for key in [k for k in self.subs if k[0] == cid]:
                        del self.subs[key]
                subs = []
                for module, ops in clean["events"].items():
                    old = self.subs.get((cid, module))
                    sub = Subscription(
                        channel_id=cid, module=module, events=set(ops), notify_url=clean["notify_url"],
                        token=clean.get("token", old.token if old else None), expiry=clean["expiry"],
                        return_affected_field_values=clean.get("return_affected_field_values", False),
                        notify_on_related_action=clean.get("notify_on_related_action", True),
                        notification_condition=clean.get("notification_condition"),
                        fields=_condition_fields(clean.get("notification_condition")),
                    )
                    self.subs[(cid, module)] = sub
                    subs.append(sub)
                ok += 1
                answers.append({"code": "SUCCESS", "details": {"events": self._event_details(subs, version)},
                                "message": "Successfully subscribed for actions-watch of the given module", "status": "success"})
        status = (200 if replace else 201) if ok == len(items) else (207 if ok else 400)
        return status, {"watch": answers}

    def patch(self, items: Any, version: str) -> tuple[int, dict[str, Any]]:
        if not isinstance(items, list) or not items:
            return 400, {"watch": [error("MANDATORY_NOT_FOUND", "required field not found", api_name="watch")]}
        answers, ok = [], 0
        with self.lock:
            for i, item in enumerate(items):
                clean, problem = self._parse(item, i, version, partial=True)
                if problem:
                    answers.append(problem)
                    continue
                cid = clean["channel_id"]
                existing = [s for k, s in self.subs.items() if k[0] == cid]
                if not existing:
                    answers.append(error("NOT_SUBSCRIBED", "the channel is not subscribed", channel_id=cid))
                    continue
                if clean.get("_delete_events"):
                    for module, ops in (clean.get("events") or {}).items():
                        sub = self.subs.get((cid, module))
                        if sub:
                            sub.events -= ops
                            if not sub.events:
                                del self.subs[(cid, module)]
                    ok += 1
                    answers.append({"code": "SUCCESS", "details": {"channel_id": cid},
                                    "message": "Successfully removed the subscribe details", "status": "success"})
                    continue
                touched = []
                for module, ops in (clean.get("events") or {m.module: set() for m in existing}).items():
                    sub = self.subs.get((cid, module))
                    if sub is None:
                        template = existing[0]
                        sub = Subscription(cid, module, set(), template.notify_url, template.token, template.expiry)
                        self.subs[(cid, module)] = sub
                    sub.events |= ops
                    touched.append(sub)
                for sub in [s for k, s in self.subs.items() if k[0] == cid]:
                    sub.notify_url = clean.get("notify_url", sub.notify_url)
                    sub.token = clean.get("token", sub.token)
                    sub.expiry = clean.get("expiry", sub.expiry)
                    for key in ("return_affected_field_values", "notify_on_related_action"):
                        if key in clean:
                            setattr(sub, key, clean[key])
                    if "notification_condition" in clean:
                        sub.notification_condition = clean["notification_condition"]
                        sub.fields = _condition_fields(clean["notification_condition"])
                ok += 1
                answers.append({"code": "SUCCESS", "details": {"events": self._event_details(touched, version)},
                                "message": "Successfully updated the subscribe details", "status": "success"})
        status = 200 if ok == len(items) else (207 if ok else 400)
        return status, {"watch": answers}

    def list(self, version: str, channel_id: str | None, module: str | None, page: int, per_page: int) -> tuple[int, dict[str, Any] | None]:
        now = int(time.time())
        with self.lock:
            subs = [
                s for s in self.subs.values()
                if s.expiry > now and (channel_id is None or s.channel_id == channel_id) and (module is None or s.module == module)
            ]
        if not subs:
            return 204, None
        start = (page - 1) * per_page
        chosen = subs[start : start + per_page]
        items = [
            {
                "notify_on_related_action": s.notify_on_related_action,
                "channel_expiry": self.store.fmt(s.expiry),
                "return_affected_field_values": s.return_affected_field_values,
                **self._resource(s.module, version),
                "notify_url": s.notify_url,
                "fields": None,
                "notification_condition": s.notification_condition,
                "channel_id": s.channel_id,
                "events": sorted(f"{s.module}.{op}" for op in s.events),
                "token": s.token,
            }
            for s in chosen
        ]
        return 200, {"watch": items, "info": {"per_page": per_page, "count": len(items), "page": page,
                                                 "more_records": start + per_page < len(subs)}}

    def disable(self, channel_ids: list[str], version: str) -> tuple[int, dict[str, Any]]:
        answers, ok, bad = [], 0, 0
        with self.lock:
            for cid in channel_ids:
                keys = [k for k in self.subs if k[0] == cid]
                if not keys:
                    bad += 1
                    answers.append(error("NOT_SUBSCRIBED", "the channel is not subscribed", channel_id=cid))
                    continue
                for key in keys:
                    sub = self.subs.pop(key)
                    ok += 1
                    resource = self._resource(sub.module, version)
                    answers.append({"code": "SUCCESS", "details": {"resource_uri": resource["resource_uri"],
                                    "resource_id": resource["resource_id"], "channel_id": cid},
                                    "message": "Successfully un-subscribed from actions-watch", "status": "success"})
        status = 200 if not bad else (207 if ok else 400)
        return status, {"watch": answers}

    def channel_tokens(self) -> dict[str, str | None]:
        with self.lock:
            return {s.channel_id: s.token for s in self.subs.values()}

    def expire_all(self) -> int:
        with self.lock:
            for sub in self.subs.values():
                sub.expiry = int(time.time()) - 1
            return len(self.subs)

    def clear(self) -> None:
        with self.lock:
            self.subs.clear()
        self.deliveries.clear()

    # -- delivery ----------------------------------------------------------
    def on_events(self, events: list[Event]) -> None:
        """The store's sink: queue a callback per matching subscription."""
        if not events:
            return
        notify_api = bool(self.store.switch("notify_api_writes"))
        now = int(time.time())
        server_time = int(time.time() * 1000)
        with self.lock:
            subs = list(self.subs.values())
        for event in events:
            if event.source == "api" and not notify_api:
                continue
            op = {"insert": "create", "update": "edit", "delete": "delete"}[event.operation]
            for sub in subs:
                if sub.module != event.module or op not in sub.events or sub.expiry <= now:
                    continue
                to_send = event
                if event.operation == "update" and sub.fields:
                    # notification_condition: only changes of the selected fields are news to this channel.
                    ids = [i for i in event.ids if sub.fields & set(event.affected.get(i, {}))]
                    if not ids:
                        continue
                    to_send = Event(event.module, event.operation, ids, event.affected, event.source)
                self._ensure_thread()
                self._queue.put((sub, to_send, server_time))

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="zoho-emulator-notifier", daemon=True)
            self._thread.start()

    def payload(self, sub: Subscription, event: Event, server_time: int) -> dict[str, Any]:
        body: dict[str, Any] = {"server_time": server_time}
        if event.operation == "update" and sub.return_affected_field_values:
            body["affected_values"] = [{"record_id": i, "values": event.affected.get(i, {})} for i in event.ids]
        body.update({
            "query_params": dict(parse_qsl(urlsplit(sub.notify_url).query)),
            "module": event.module,
            "resource_uri": f"{self.base_url()}/crm/v2/{event.module}",
            "ids": list(event.ids),
            "affected_fields": [{i: sorted(event.affected.get(i, {}))} for i in event.ids] if event.operation == "update" else [],
            "operation": event.operation,
            "channel_id": sub.channel_id,
            "token": sub.token,
        })
        return body

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            sub, event, server_time = job
            record: dict[str, Any] = {"channel_id": sub.channel_id, "module": event.module, "operation": event.operation,
                                      "ids": list(event.ids), "notify_url": sub.notify_url,
                                      "at": datetime.now(timezone.utc).isoformat(), "status": None, "error": None}
            host = urlsplit(sub.notify_url).hostname or ""
            if host not in LOOPBACK:
                record["error"] = "not delivered: the emulator only calls loopback URLs"
            else:
                try:
                    if self._client is None:
                        self._client = httpx.Client(timeout=float(self.store.switch("notify_timeout_seconds") or 10))
                    response = self._client.post(sub.notify_url, json=self.payload(sub, event, server_time))
                    record["status"] = response.status_code
                except httpx.HTTPError as exc:
                    record["error"] = f"{type(exc).__name__}: {exc}"
            self.deliveries.append(record)
            self._queue.task_done()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._queue.unfinished_tasks

    def stop(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=5)
        if self._client is not None:
            self._client.close()
            self._client = None
