"""Run-time switches every emulator honours, and the ASGI middleware that applies them.

Latency, injected faults and call counting sit in one middleware so every route
gets them without repeating itself. What a fault *looks like* is the emulator's
business (Zoho answers 429 with a JSON body, Fxiaoke answers HTTP 200 with an
``errorCode``), so the emulator passes a ``fault_response`` function.
"""
from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

FAULT_KINDS = ("server_error", "rate_limit", "timeout", "disconnect")


@dataclass
class Switches:
    """Emulator knobs. All can be changed while running through ``PATCH /_admin/switches``."""

    latency_ms: float = 0.0
    #: share of API calls (not token or admin calls) that fail with an injected fault
    error_rate: float = 0.0
    #: which faults ``error_rate`` draws from
    fault_kinds: tuple[str, ...] = ("server_error", "rate_limit")
    #: seconds an injected "timeout" holds the request before answering 504
    timeout_seconds: float = 2.0
    seed: int | None = None
    #: seconds the emulated server's clock runs ahead of (+) or behind (-) this machine's: clock skew
    #: between systems. Shifts every time the emulator stamps (modified, created, deleted times).
    clock_offset_seconds: float = 0.0
    #: ISO date-time with an offset: the server's clock stands still there, so every change gets exactly
    #: this modified time (ties on purpose, or a record committed late with an older time). None: running.
    frozen_time: str | None = None
    extra: dict = field(default_factory=dict)

    def update(self, values: dict) -> None:
        for key, value in values.items():
            if key == "fault_kinds":
                unknown = set(value) - set(FAULT_KINDS)
                if unknown:
                    raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
                value = tuple(value)
            elif key == "clock_offset_seconds":
                value = _offset(value)
            elif key == "frozen_time" and value is not None:
                _instant(value)  # refuse a bad value now rather than on the next write
            if hasattr(self, key) and key != "extra":
                setattr(self, key, value)
            else:
                self.extra[key] = value

    def now(self) -> float:
        """The emulated server's clock (epoch seconds): frozen, or this machine's plus the offset."""
        if self.frozen_time:
            return _instant(self.frozen_time).timestamp()
        return time.time() + self.clock_offset_seconds

    def frozen(self) -> datetime | None:
        """The frozen instant (aware), or None while the clock runs."""
        return _instant(self.frozen_time) if self.frozen_time else None


def _offset(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"clock_offset_seconds must be a number of seconds, not {value!r}")
    return float(value)


def _instant(value: object) -> datetime:
    try:
        instant = datetime.fromisoformat(str(value).strip())
    except ValueError:
        instant = None
    if instant is None or instant.tzinfo is None:
        raise ValueError(f"frozen_time must be an ISO date-time with an offset (2024-05-06T10:00:00+05:30), not {value!r}")
    return instant


class CallLog:
    """Thread-safe counts of calls by route template and status (``/_admin/calls``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_route: Counter[str] = Counter()
        self.by_status: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()

    def add(self, route: str, status: int) -> None:
        with self._lock:
            self.by_route[route] += 1
            self.by_status[f"{route} {status}"] += 1

    def fault(self, kind: str) -> None:
        with self._lock:
            self.faults[kind] += 1

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "total": sum(self.by_route.values()),
                "by_route": dict(self.by_route),
                "by_status": dict(self.by_status),
                "faults": dict(self.faults),
            }

    def reset(self) -> None:
        with self._lock:
            self.by_route.clear()
            self.by_status.clear()
            self.faults.clear()


FaultResponder = Callable[[str, Request], Awaitable[Response] | Response]


class EmulatorMiddleware:
    """Adds latency, injects faults at ``error_rate`` and counts every call by route.

    ``exempt_prefixes`` (``/_admin``) get no latency or faults. ``fault_exempt``
    (token endpoints, by default) get latency but no faults, so a fault rate does
    not turn into an auth failure the real API would not produce.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        switches: Switches,
        calls: CallLog,
        fault_response: FaultResponder,
        exempt_prefixes: tuple[str, ...] = ("/_admin",),
        fault_exempt: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.switches = switches
        self.calls = calls
        self.fault_response = fault_response
        self.exempt_prefixes = exempt_prefixes
        self.fault_exempt = fault_exempt
        self._random = random.Random(switches.seed)

    def _route_name(self, scope: Scope) -> str:
        router = getattr(scope.get("app"), "router", None) or getattr(self.app, "router", None)
        method = scope.get("method", "")
        if router is not None:
            for route in router.routes:
                match, _ = route.matches(scope)
                if match == Match.FULL:
                    return f"{method} {getattr(route, 'path', scope['path'])}"
        return f"{method} {scope['path']}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt_prefixes):
            await self.app(scope, receive, send)
            return
        route = self._route_name(scope)
        status_holder = {"status": 0}

        async def counting_send(message):
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
            await send(message)

        if self.switches.latency_ms:
            await asyncio.sleep(self.switches.latency_ms / 1000)
        faultable = not scope["path"].startswith(self.fault_exempt)
        if faultable and self.switches.error_rate and self._random.random() < self.switches.error_rate:
            kind = self._random.choice(self.switches.fault_kinds)
            self.calls.fault(kind)
            if kind == "disconnect":
                # Close without any answer: the client sees a dropped connection.
                self.calls.add(route, 0)
                raise ConnectionResetError("emulator: injected disconnect")
            if kind == "timeout":
                await asyncio.sleep(self.switches.timeout_seconds)
            request = Request(scope, receive)
            response = self.fault_response(kind, request)
            if asyncio.iscoroutine(response):
                response = await response
            await response(scope, receive, counting_send)
            self.calls.add(route, status_holder["status"])
            return
        try:
            await self.app(scope, receive, counting_send)
        finally:
            self.calls.add(route, status_holder["status"] or 500)
