"""Module and field metadata (``/settings/modules``, ``/settings/fields``).

Powers ``crmsync discover`` and tells the connector which fields a pull reads when a
mapping names none, and whether a module is custom (its upsert key is ``Name``).
Answers are cached per connector; :meth:`Catalog.forget` drops them after a schema change.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from connectors.base import FieldInfo, ObjectInfo

from .client import ZohoClient
from .errors import ZohoConfigError

#: Field types Zoho only returns when one record is fetched by id (get-records docs).
SINGLE_RECORD_TYPES = {"subform", "multiselectlookup", "multi_module_lookup"}


@dataclass(slots=True)
class ModuleMeta:
    api_name: str
    label: str
    custom: bool
    raw: dict[str, Any] = field(default_factory=dict)


class Catalog:
    def __init__(self, client: ZohoClient) -> None:
        self.client = client
        self._modules: dict[str, ModuleMeta] | None = None
        self._fields: dict[str, list[dict[str, Any]]] = {}
        self._lock = asyncio.Lock()

    def forget(self) -> None:
        self._modules = None
        self._fields.clear()

    async def modules(self) -> dict[str, ModuleMeta]:
        if self._modules is None:
            async with self._lock:
                if self._modules is None:
                    response = await self.client.call("GET", "settings/modules")
                    items = (response.payload or {}).get("modules", []) if not response.empty else []
                    self._modules = {
                        m["api_name"]: ModuleMeta(
                            api_name=m["api_name"],
                            label=m.get("plural_label") or m.get("module_name") or m["api_name"],
                            custom=m.get("generated_type") == "custom",
                            raw=m,
                        )
                        for m in items
                        if isinstance(m, dict) and m.get("api_name") and m.get("api_supported", True)
                    }
        return self._modules

    async def module(self, name: str) -> ModuleMeta:
        modules = await self.modules()
        if name not in modules:
            known = ", ".join(sorted(modules)) or "none"
            raise ZohoConfigError(
                f"Zoho CRM has no API-accessible module {name!r} (modules are named by API name; known: {known})",
                status=400,
                code="INVALID_MODULE",
            )
        return modules[name]

    async def is_custom(self, name: str) -> bool:
        return (await self.module(name)).custom

    async def fields(self, module: str) -> list[dict[str, Any]]:
        if module not in self._fields:
            response = await self.client.call(
                "GET", "settings/fields", params={"module": module}, endpoint=self.client.endpoint("GET", "settings/fields")
            )
            # Zoho answers 204 for modules whose metadata it will not give out.
            self._fields[module] = [] if response.empty else list((response.payload or {}).get("fields", []))
        return self._fields[module]

    async def readable_field_names(self, module: str) -> list[str]:
        """Fields a list call can return: every field but the ones only single-record reads carry."""
        names = [
            f["api_name"]
            for f in await self.fields(module)
            if f.get("api_name") and f.get("data_type") not in SINGLE_RECORD_TYPES
        ]
        if not names:
            raise ZohoConfigError(
                f"Zoho CRM gave no field metadata for module {module!r}; name the fields in the mapping", status=204, code=None
            )
        return names

    # -- the Connector interface ----------------------------------------
    async def list_objects(self) -> list[ObjectInfo]:
        return [ObjectInfo(name=m.api_name, label=m.label, custom=m.custom) for m in (await self.modules()).values()]

    async def describe(self, module: str) -> list[FieldInfo]:
        await self.module(module)
        return [to_field_info(f) for f in await self.fields(module)]


def to_field_info(meta: dict[str, Any]) -> FieldInfo:
    picklist = None
    values = meta.get("pick_list_values")
    if isinstance(values, list) and values:
        picklist = [
            (str(v.get("actual_value", v.get("display_value", ""))), str(v.get("display_value", v.get("actual_value", ""))))
            for v in values
            if isinstance(v, dict)
        ]
    lookup = meta.get("lookup") or {}
    lookup_module = None
    if isinstance(lookup, dict) and isinstance(lookup.get("module"), dict):
        lookup_module = lookup["module"].get("api_name")
    if meta.get("data_type") in ("ownerlookup", "userlookup"):
        lookup_module = lookup_module or "users"
    read_only = bool(meta.get("read_only") or meta.get("field_read_only"))
    return FieldInfo(
        name=meta["api_name"],
        label=meta.get("display_label") or meta.get("field_label") or meta["api_name"],
        type=str(meta.get("data_type") or ""),
        required=bool(meta.get("system_mandatory")),
        read_only=read_only,
        picklist=picklist,
        lookup_object=lookup_module,
    )


__all__ = ["Catalog", "ModuleMeta", "to_field_info"]
