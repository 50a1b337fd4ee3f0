"""The emulator's change pushes: both styles, POSTed from a background thread.

* open_platform — the signed, encrypted ``{nonce, timeStamp, content, sig}`` body
  (:mod:`.push_open_platform`); a reply other than ``success`` is retried once,
  as the platform does.
* apl — the body and HMAC headers of ``apl_push_function.groovy`` (:mod:`.push_apl`),
  sent once (the function's own Fx.http retry is not emulated).

Targets must be loopback URLs: the emulator never calls beyond this machine.
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from . import push_apl, push_open_platform
from .emulator_store import Change

log = logging.getLogger("crmsync.emulator.fxiaoke.push")

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
APL_EVENTS = {"create": "create", "update": "update", "recover": "update", "invalid": "delete", "delete": "delete"}


def is_loopback_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and (parts.hostname or "") in LOOPBACK_HOSTS


@dataclass(slots=True)
class PushSecrets:
    token: str
    encoding_aes_key: str
    apl_secret: str
    app_id: str
    ea: str


@dataclass(slots=True)
class Delivery:
    style: str
    url: str
    event_id: str
    object: str
    ids: list[str]
    action: str
    attempts: int = 0
    status: int | None = None
    reply: str | None = None
    error: str | None = None
    at: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        return {
            "style": self.style,
            "url": self.url,
            "event_id": self.event_id,
            "object": self.object,
            "ids": self.ids,
            "action": self.action,
            "attempts": self.attempts,
            "status": self.status,
            "reply": self.reply,
            "error": self.error,
            "ok": self.status == 200 and (self.reply or "").strip() == "success",
        }


class PushSender:
    def __init__(
        self, secrets: PushSecrets, targets: Callable[[], dict[str, str | None]], *, timeout: float = 3.0
    ) -> None:
        self.secrets = secrets
        self._targets = targets
        self._timeout = timeout
        self._queue: queue.Queue[Change | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.deliveries: list[Delivery] = []
        self._pending = 0

    # -- feeding ------------------------------------------------------------------------------
    def submit(self, change: Change) -> None:
        targets = self._targets()
        if not any(targets.values()):
            return
        with self._lock:
            self._pending += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="fxiaoke-emulator-push", daemon=True)
                self._thread.start()
        self._queue.put(change)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every submitted change was delivered (tests, demo)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self._pending == 0:
                    return True
            time.sleep(0.01)
        return False

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=5)

    def log(self) -> list[dict[str, Any]]:
        with self._lock:
            return [d.as_dict() for d in self.deliveries]

    def clear(self) -> None:
        with self._lock:
            self.deliveries.clear()

    # -- sending --------------------------------------------------------------------------------
    def _run(self) -> None:
        with httpx.Client(timeout=self._timeout) as http:
            while True:
                change = self._queue.get()
                if change is None:
                    return
                try:
                    for style, url in self._targets().items():
                        if url:
                            self._deliver(http, style, url, change)
                except Exception:  # pragma: no cover - a push bug must not kill the emulator
                    log.exception("push delivery failed")
                finally:
                    with self._lock:
                        self._pending -= 1

    def _deliver(self, http: httpx.Client, style: str, url: str, change: Change) -> None:
        event_id = f"{change.object}:{','.join(change.ids)}:{change.action}:{change.at_ms}"
        delivery = Delivery(style, url, event_id, change.object, list(change.ids), change.action)
        with self._lock:
            self.deliveries.append(delivery)
        if not is_loopback_url(url):
            delivery.error = "refused: push targets must be loopback URLs"
            return
        tries = 2 if style == "open_platform" else 1
        for _ in range(tries):
            delivery.attempts += 1
            headers, body = self._request(style, change, event_id)
            try:
                response = http.post(url, content=body, headers=headers)
                delivery.status, delivery.reply, delivery.error = response.status_code, response.text[:200], None
            except httpx.HTTPError as exc:
                delivery.error = type(exc).__name__
                continue
            if response.status_code == 200 and response.text.strip() == "success":
                return

    def _request(self, style: str, change: Change, event_id: str) -> tuple[dict[str, str], bytes]:
        now_ms = int(time.time() * 1000)
        s = self.secrets
        if style == "open_platform":
            message = push_open_platform.change_message(
                object_api_name=change.object,
                ids=list(change.ids),
                action=change.action,
                event_id=event_id,
                timestamp_ms=change.at_ms,
                ea=s.ea,
            )
            body = push_open_platform.build_push(
                message,
                token=s.token,
                encoding_aes_key=s.encoding_aes_key,
                time_stamp_ms=now_ms,
                nonce=uuid.uuid4().hex[:16],
                suffix=s.app_id.encode("utf-8"),
            )
            return {"Content-Type": "application/json; charset=utf-8"}, json.dumps(body).encode("utf-8")
        return push_apl.build_push(
            s.apl_secret,
            object_api_name=change.object,
            ids=list(change.ids),
            event=APL_EVENTS.get(change.action, "update"),
            timestamp_ms=now_ms,
            event_id=event_id,
            tenant_id=s.ea,
        )
