"""The ``/_admin`` API every emulator serves, over a store the emulator implements.

Tests, benchmarks and the demo use it to seed data, change records "as a user"
(which bumps the modified time and fires the system's notifications), dump what
a system holds, read call counts and flip fault switches while running.
"""
from __future__ import annotations

from typing import Any, Protocol

from fastapi import APIRouter, Body, HTTPException

from .switches import CallLog, Switches


class AdminStore(Protocol):
    def object_names(self) -> list[str]: ...
    def seed(self, count: int, objects: list[str] | None = None) -> dict[str, int]: ...
    def admin_create(self, object: str, data: dict[str, Any]) -> dict[str, Any]: ...
    def admin_update(self, object: str, record_id: str, changes: dict[str, Any]) -> dict[str, Any]: ...
    def admin_delete(self, object: str, record_id: str) -> None: ...
    def dump(self, object: str) -> list[dict[str, Any]]: ...
    def reset(self) -> None: ...
    def expire_tokens(self) -> int: ...


def admin_router(store: AdminStore, switches: Switches, calls: CallLog) -> APIRouter:
    router = APIRouter(prefix="/_admin", tags=["emulator admin"])

    def _known(object: str) -> None:
        if object not in store.object_names():
            raise HTTPException(404, f"unknown object {object!r}; known: {store.object_names()}")

    @router.get("/calls")
    def get_calls() -> dict:
        return calls.snapshot()

    @router.post("/calls/reset")
    def reset_calls() -> dict:
        calls.reset()
        return {"ok": True}

    @router.post("/reset")
    def reset() -> dict:
        store.reset()
        calls.reset()
        return {"ok": True}

    @router.post("/seed")
    def seed(count: int = Body(..., embed=True), objects: list[str] | None = Body(None, embed=True)) -> dict:
        for name in objects or []:
            _known(name)
        return {"created": store.seed(count, objects)}

    @router.get("/objects")
    def objects() -> list[str]:
        return store.object_names()

    @router.get("/records/{object}")
    def dump(object: str) -> list[dict]:
        _known(object)
        return store.dump(object)

    @router.post("/records/{object}")
    def create(object: str, data: dict = Body(...)) -> dict:
        _known(object)
        return store.admin_create(object, data)

    @router.patch("/records/{object}/{record_id}")
    def update(object: str, record_id: str, changes: dict = Body(...)) -> dict:
        _known(object)
        try:
            return store.admin_update(object, record_id, changes)
        except KeyError:
            raise HTTPException(404, f"no {object} record {record_id}") from None

    @router.delete("/records/{object}/{record_id}")
    def delete(object: str, record_id: str) -> dict:
        _known(object)
        try:
            store.admin_delete(object, record_id)
        except KeyError:
            raise HTTPException(404, f"no {object} record {record_id}") from None
        return {"ok": True}

    @router.get("/switches")
    def get_switches() -> dict:
        return {
            "latency_ms": switches.latency_ms,
            "error_rate": switches.error_rate,
            "fault_kinds": list(switches.fault_kinds),
            "timeout_seconds": switches.timeout_seconds,
            "clock_offset_seconds": switches.clock_offset_seconds,
            "frozen_time": switches.frozen_time,
            **switches.extra,
        }

    @router.patch("/switches")
    def set_switches(values: dict = Body(...)) -> dict:
        try:
            switches.update(values)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        return get_switches()

    @router.post("/expire-tokens")
    def expire_tokens() -> dict:
        return {"expired": store.expire_tokens()}

    return router
