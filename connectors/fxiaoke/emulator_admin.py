"""The emulator's admin side: the shared ``/_admin`` store protocol over this tenant, and
``/_admin/fxiaoke/…`` extras (credentials, push log, call times, state)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException

from .emulator_store import ApiError

if TYPE_CHECKING:
    from .emulator import FxiaokeEmulator


class AdminFacade:
    """The shared /_admin API over this emulator (AdminStore protocol)."""

    def __init__(self, emulator: FxiaokeEmulator) -> None:
        self.e = emulator

    def object_names(self) -> list[str]:
        return list(self.e.store.objects)

    def seed(self, count: int, objects: list[str] | None = None) -> dict[str, int]:
        return self.e.store.seed(count, objects, opportunity_object=str(self.e.switch("opportunity_object")))

    def admin_create(self, object: str, data: dict[str, Any]) -> dict[str, Any]:
        self.e.sync_store()
        try:
            user = str(self.e.switch("admin_user"))
            return self.e.store.create(object, data, user=user, by_api=False, keep_times=True)
        except ApiError as exc:
            raise HTTPException(400, f"{exc.code}: {exc.message}") from None

    def admin_update(self, object: str, record_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        self.e.sync_store()
        if self.e.store.tables[object].get(record_id) is None:
            raise KeyError(record_id)
        try:
            return self.e.store.update(
                object, record_id, changes, user=str(self.e.switch("admin_user")), by_api=False, keep_times=True
            )
        except ApiError as exc:
            raise HTTPException(400, f"{exc.code}: {exc.message}") from None

    def admin_delete(self, object: str, record_id: str) -> None:
        store = self.e.store
        record = store.tables[object].get(record_id)
        if record is None:
            raise KeyError(record_id)
        user = str(self.e.switch("admin_user"))
        if record.get("life_status") != "invalid":
            store.invalidate(object, [record_id], user=user, by_api=False)
            if self.e.switch("admin_delete_mode") != "invalid_then_delete":
                return
        store.delete(object, [record_id], by_api=False)

    def dump(self, object: str) -> list[dict[str, Any]]:
        return self.e.store.dump(object)

    def reset(self) -> None:
        self.e.reset()

    def expire_tokens(self) -> int:
        return self.e.expire_tokens()


def fxiaoke_admin_router(emulator: FxiaokeEmulator) -> APIRouter:
    router = APIRouter(prefix="/_admin/fxiaoke", tags=["emulator admin"])

    @router.get("/credentials")
    def credentials() -> dict[str, Any]:
        return emulator.credentials()

    @router.get("/pushes")
    def pushes() -> list[dict[str, Any]]:
        return emulator.push.log()

    @router.delete("/pushes")
    def clear_pushes() -> dict[str, Any]:
        emulator.push.clear()
        return {"ok": True}

    @router.post("/pushes/wait")
    def wait_pushes(timeout: float = 10.0) -> dict[str, Any]:
        return {"idle": emulator.push.wait_idle(timeout)}

    @router.get("/call-times")
    def call_times() -> dict[str, dict[str, list[float]]]:
        """Monotonic arrival times per path (``arrived``) and of the calls let through (``accepted``)."""
        return emulator.call_times()

    @router.get("/state")
    def state() -> dict[str, Any]:
        return emulator.snapshot()

    return router
