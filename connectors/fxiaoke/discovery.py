"""``object/list`` and ``object/describe`` as :class:`ObjectInfo` / :class:`FieldInfo` (``crmsync discover``)."""
from __future__ import annotations

from typing import Any

from ..base import FieldInfo, ObjectInfo
from .client import FxiaokeClient
from .paths import is_custom
from .settings import FxiaokeSettings

#: Field types whose values the system computes.
COMPUTED_TYPES = frozenset({"formula", "count", "quote", "auto_number"})
#: System fields no API write can set (owner is changed through changeOwner, so it stays writable).
SYSTEM_READ_ONLY = frozenset(
    {
        "_id",
        "create_time",
        "created_by",
        "last_modified_time",
        "last_modified_by",
        "version",
        "is_deleted",
        "life_status",
        "lock_status",
        "object_describe_api_name",
        "tenant_id",
    }
)
LOOKUP_TYPES = frozenset({"object_reference", "object_reference_many", "master_detail"})


class Discovery:
    def __init__(self, client: FxiaokeClient, settings: FxiaokeSettings) -> None:
        self.client = client
        self.settings = settings

    async def list_objects(self) -> list[ObjectInfo]:
        answer = await self.client.call(self.settings.paths.object_list, {})
        data = answer.get("data")
        items = data.get("objects") if isinstance(data, dict) else data
        found: list[ObjectInfo] = []
        for item in items or []:
            if not isinstance(item, dict):
                continue
            name = item.get("describeApiName") or item.get("api_name")
            if not name or item.get("isActive") is False:
                continue
            custom = item.get("defineType") == "custom" or is_custom(str(name))
            found.append(ObjectInfo(name=str(name), label=str(item.get("describeDisplayName") or ""), custom=custom))
        return found

    async def describe(self, object_name: str) -> list[FieldInfo]:
        answer = await self.client.call(
            self.settings.paths.object_describe, {"apiName": object_name, "includeDetail": True}
        )
        data = answer.get("data") or {}
        describe = data.get("describe", data) if isinstance(data, dict) else {}
        raw_fields: Any = describe.get("fields") or {}
        fields = raw_fields.values() if isinstance(raw_fields, dict) else raw_fields
        return [_field(f) for f in fields if isinstance(f, dict) and f.get("api_name")]


def _field(raw: dict[str, Any]) -> FieldInfo:
    name = str(raw["api_name"])
    kind = str(raw.get("type") or "")
    options = raw.get("options")
    picklist = None
    if isinstance(options, list) and options:
        picklist = [(str(o.get("value")), str(o.get("label") or "")) for o in options if isinstance(o, dict)]
    read_only = (
        kind in COMPUTED_TYPES
        or name in SYSTEM_READ_ONLY
        or bool(raw.get("is_readonly") or raw.get("is_readOnly"))
    )
    return FieldInfo(
        name=name,
        label=str(raw.get("label") or ""),
        type=kind,
        required=bool(raw.get("is_required")),
        read_only=read_only,
        picklist=picklist,
        lookup_object=str(raw["target_api_name"]) if kind in LOOKUP_TYPES and raw.get("target_api_name") else None,
    )
