"""The emulator's OpenAPI operations: request bodies in, ``data`` / ``dataId`` out.

Each handler takes (body, acting employee id, auth style) after the gate checks
(thirdTraceId, throttle, auth, quota) passed, and raises :class:`ApiError` for an
answer with a non-zero ``errorCode``. Body shapes follow the reference notes:
``dataObjectApiName`` inside ``data`` for query/get/invalid/delete/recover/changeOwner,
inside ``data.object_data`` for create/update.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .emulator_store import ApiError, Store

MAX_LIMIT = 100
OFFSET_WALL = 10000

#: (body, employee id, auth style) → extra envelope keys (data / dataId)
Handler = Callable[[dict[str, Any], str, str], dict[str, Any]]



def _every_record(_record: dict[str, Any]) -> bool:
    return True


def _not_invalid(record: dict[str, Any]) -> bool:
    return record.get("life_status") != "invalid"

class OpenApiHandlers:
    def __init__(self, store: Store, switch: Callable[[str], Any]) -> None:
        self.store = store
        self.switch = switch

    # -- presentation --------------------------------------------------------------------------------
    def present(
        self, object_name: str, record: dict[str, Any], style: str, *, fields: list[str] | None, include_null: bool
    ) -> dict[str, Any]:
        person = self.store.object_def(object_name).person_fields
        to_open = self.store.employees.to_open
        out: dict[str, Any] = {}
        names = record.keys() if not fields else dict.fromkeys(["_id", *fields]).keys()
        for name in names:
            value = record.get(name)
            if value is None and not include_null:
                continue
            if style == "legacy" and name in person and isinstance(value, list):
                value = [to_open.get(v, v) for v in value]
            out[name] = value
        return out

    def _object_for(self, data: dict[str, Any], custom_path: bool, key: str = "dataObjectApiName") -> str:
        name = data.get(key)
        if not isinstance(name, str) or not name:
            raise ApiError(self.store.codes["param"], f"{key}为必填项", f"{key} is required")
        self.store.object_def(name)
        if self.switch("strict_object_paths") and name.endswith("__c") != custom_path:
            which = "自定义对象(apiName以__c结尾)" if custom_path else "预设对象"
            raise ApiError(self.store.codes["param"], f"该接口只适用于{which}", f"{name} is not served on this path")
        return name

    def _visible(self, filters: list[Any]) -> Callable[[dict[str, Any]], bool]:
        mode = self.switch("invalid_in_query")
        # module-level functions, not lambdas: the table caches query totals per visibility rule
        if mode == "include":
            return _every_record
        if mode == "when_filtered":
            asks = any(isinstance(f, dict) and f.get("field_name") in ("life_status", "is_deleted") for f in filters)
            if asks:
                return _every_record
        return _not_invalid

    # -- handlers --------------------------------------------------------------------------------------
    def handler(self, verb: str, custom: bool) -> Handler:
        def data_of(body: dict[str, Any]) -> dict[str, Any]:
            data = body.get("data")
            if not isinstance(data, dict):
                raise ApiError(self.store.codes["param"], "data为必填项", "body needs a data object")
            return data

        def query(body: dict[str, Any], user: str, style: str) -> dict[str, Any]:
            data = data_of(body)
            name = self._object_for(data, custom)
            info = data.get("search_query_info") or {}
            if not isinstance(info, dict):
                raise ApiError(self.store.codes["param"], "search_query_info格式错误")
            limit, offset = info.get("limit", 20), info.get("offset", 0)
            if not isinstance(limit, int) or not isinstance(offset, int) or limit < 1 or offset < 0:
                raise ApiError(self.store.codes["param"], "limit/offset参数错误", "limit ≥ 1 and offset ≥ 0 integers")
            if limit > MAX_LIMIT:
                if self.switch("limit_over_max") != "clamp":
                    raise ApiError(self.store.codes["param"], "limit最大为100", "limit cannot exceed 100")
                limit = MAX_LIMIT
            if offset > OFFSET_WALL:
                raise ApiError(self.store.codes["offset_out_of_range"], "offset out of range 10000",
                               "offset cannot exceed 10000")
            if offset % limit:
                raise ApiError(self.store.codes["param"], "offset必须是limit的整数倍", "offset must be a multiple of limit")
            filters = info.get("filters") or []
            orders = info.get("orders") or []
            if not isinstance(filters, list) or not isinstance(orders, list):
                raise ApiError(self.store.codes["param"], "filters/orders必须是数组")
            count_total = data.get("find_explicit_total_num", True) is not False
            rows, total = self.store.query(
                name, filters, orders, offset=offset, limit=limit, count_total=count_total,
                visible=self._visible(filters),
            )
            fields = info.get("fieldProjection") if isinstance(info.get("fieldProjection"), list) else None
            include_null = body.get("includeNull") is True
            listed = [self.present(name, r, style, fields=fields, include_null=include_null) for r in rows]
            return {"data": {"dataList": listed, "offset": offset, "limit": limit, "total": total}}

        def get(body: dict[str, Any], user: str, style: str) -> dict[str, Any]:
            data = data_of(body)
            name = self._object_for(data, custom)
            record_id = data.get("objectDataId")
            if not isinstance(record_id, str) or not record_id:
                raise ApiError(self.store.codes["param"], "objectDataId为必填项")
            record = self.store.get(name, record_id)
            include_null = body.get("includeNull") is True
            return {"data": self.present(name, record, style, fields=None, include_null=include_null)}

        def create(body: dict[str, Any], user: str, style: str) -> dict[str, Any]:
            data = data_of(body)
            object_data = data.get("object_data")
            if not isinstance(object_data, dict):
                raise ApiError(self.store.codes["param"], "object_data为必填项")
            name = self._object_for(object_data, custom)
            approval = body.get("triggerApprovalFlow", True) is not False and name in (
                self.switch("approval_flow_objects") or []
            )
            record = self.store.create(
                name, object_data, user=user, by_api=True, keep_times=body.get("hasSpecifyTime") is True,
                life_status="ineffective" if approval else "normal",
            )
            return {"dataId": record["_id"]}

        def update(body: dict[str, Any], user: str, style: str) -> dict[str, Any]:
            data = data_of(body)
            object_data = data.get("object_data")
            if not isinstance(object_data, dict) or not object_data.get("_id"):
                raise ApiError(self.store.codes["param"], "object_data._id为必填项")
            name = self._object_for(object_data, custom)
            self.store.update(name, str(object_data["_id"]), object_data, user=user, by_api=True)
            return {}

        def invalid(body: dict[str, Any], user: str, style: str) -> dict[str, Any]:
            data = data_of(body)
            name = self._object_for(data, custom)
            record_id = data.get("object_data_id")
            if not isinstance(record_id, str) or not record_id:
                raise ApiError(self.store.codes["param"], "object_data_id为必填项")
            self.store.invalidate(name, [record_id], user=user, by_api=True)
            return {}

        def id_list(data: dict[str, Any]) -> list[str]:
            ids = data.get("idList")
            if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
                raise ApiError(self.store.codes["param"], "idList为必填项", "idList must be a non-empty list of ids")
            return ids

        def batch_invalid(body: dict[str, Any], user: str, style: str) -> dict[str, Any]:
            data = data_of(body)
            name = self._object_for(data, True)
            self.store.invalidate(name, id_list(data), user=user, by_api=True)
            return {}

        def delete(body: dict[str, Any], user: str, style: str) -> dict[str, Any]:
            data = data_of(body)
            name = self._object_for(data, custom)
            self.store.delete(name, id_list(data), by_api=True)
            return {}

        def recover(body: dict[str, Any], user: str, style: str) -> dict[str, Any]:
            data = data_of(body)
            name = self._object_for(data, custom)
            self.store.recover(name, id_list(data), user=user, by_api=True)
            return {}

        def change_owner(body: dict[str, Any], user: str, style: str) -> dict[str, Any]:
            data = data_of(body)
            name = self._object_for(data, custom)
            entries = data.get("Data")
            if not isinstance(entries, list) or not entries:
                raise ApiError(self.store.codes["param"], "Data为必填项", "Data must list {objectDataId, ownerId}")
            pairs = []
            for entry in entries:
                if not isinstance(entry, dict) or not entry.get("objectDataId"):
                    raise ApiError(self.store.codes["param"], "objectDataId为必填项")
                pairs.append((str(entry["objectDataId"]), _owner_ids(entry.get("ownerId"))))
            self.store.change_owner(name, pairs, user=user, by_api=True)
            return {}

        handlers = {
            "query": query, "get": get, "create": create, "update": update, "invalid": invalid, "delete": delete,
            "recover": recover, "changeOwner": change_owner, "batch_invalid": batch_invalid,
        }
        return handlers[verb]

    def object_list(self, body: dict[str, Any], user: str, style: str) -> dict[str, Any]:
        active_opportunity = self.switch("opportunity_object")
        objects = []
        for name, definition in self.store.objects.items():
            active = name == active_opportunity if name in ("NewOpportunityObj", "OpportunityObj") else True
            objects.append(
                {
                    "describeApiName": name,
                    "describeDisplayName": definition.label,
                    "defineType": "custom" if definition.custom else "package",
                    "isActive": active,
                }
            )
        return {"data": {"objects": objects}}

    def object_describe(self, body: dict[str, Any], user: str, style: str) -> dict[str, Any]:
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        name = data.get("apiName")
        if not isinstance(name, str) or not name:
            raise ApiError(self.store.codes["param"], "apiName为必填项")
        return {"data": {"describe": self.store.object_def(name).describe()}}


def _owner_ids(value: Any) -> list[str]:
    """ownerId as a list, a single id, or the string "[FSUID_…]" of the official example."""
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, str) and value:
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):
            return [part.strip().strip('"') for part in text[1:-1].split(",") if part.strip()]
        return [text]
    raise ApiError(10006, "ownerId为必填项", "ownerId is required")
