"""Field-level checks of records written to the emulator, with Zoho's error bodies.

Each problem becomes ``{"code", "details", "message", "status": "error"}`` with
``api_name`` and ``json_path`` in the details, as the insert/update docs show.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from .emulator_schema import FieldDef, ModuleDef

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^[0-9+\-().\s xX#*/]*$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def error(code: str, message: str, **details: Any) -> dict[str, Any]:
    return {"code": code, "details": details, "message": message, "status": "error"}


def invalid(f: FieldDef, path: str, expected: str | None = None, **extra: Any) -> dict[str, Any]:
    details: dict[str, Any] = {"api_name": f.api_name, "json_path": f"{path}.{f.api_name}"}
    if expected:
        details["expected_data_type"] = expected
    details.update(extra)
    return error("INVALID_DATA", "invalid data", **details)


class Validator:
    """Cleans one record's values for a module; lookups are checked with ``exists``."""

    def __init__(
        self,
        module: ModuleDef,
        *,
        exists: Callable[[str, str], bool],
        is_user: Callable[[str], bool],
        reject_unknown: bool,
        pipeline_required: bool,
    ) -> None:
        self.module = module
        self.exists = exists
        self.is_user = is_user
        self.reject_unknown = reject_unknown
        self.pipeline_required = pipeline_required

    def clean(self, item: Any, index: int, *, creating: bool) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        path = f"$.data[{index}]"
        if not isinstance(item, dict):
            return {}, [error("INVALID_DATA", "invalid data", json_path=path, expected_data_type="jsonobject")]
        values: dict[str, Any] = {}
        errors: list[dict[str, Any]] = []
        for key, raw in item.items():
            if key == "id" or key.startswith("$"):
                continue
            f = self.module.by_name.get(key)
            if f is None:
                if self.reject_unknown:
                    errors.append(error("INVALID_DATA", "invalid data", api_name=key, json_path=f"{path}.{key}"))
                continue
            if f.read_only:
                continue  # Zoho ignores system fields in the body
            if raw is None or raw == "":
                if f.mandatory:
                    errors.append(error("MANDATORY_NOT_FOUND", "required field not found", api_name=f.api_name,
                                        json_path=f"{path}.{f.api_name}"))
                else:
                    values[key] = None
                continue
            value, problem = self._value(f, raw, path)
            if problem:
                errors.append(problem)
            else:
                values[key] = value
        if creating:
            for f in self.module.fields:
                required = f.mandatory or (self.pipeline_required and f.api_name == "Pipeline")
                if required and values.get(f.api_name) in (None, "") and not any(
                    e["details"].get("api_name") == f.api_name for e in errors
                ):
                    errors.append(error("MANDATORY_NOT_FOUND", "required field not found", api_name=f.api_name,
                                        json_path=f"{path}.{f.api_name}"))
        return values, errors

    def _value(self, f: FieldDef, raw: Any, path: str) -> tuple[Any, dict[str, Any] | None]:
        t = f.data_type
        if t in ("text", "textarea", "website", "picklist", "email", "phone"):
            if not isinstance(raw, str):
                if isinstance(raw, (int, float)) and not isinstance(raw, bool) and t in ("text", "phone"):
                    raw = str(raw)
                else:
                    return None, invalid(f, path, "phone" if t == "phone" else "text")
            if f.length and len(raw) > f.length:
                return None, invalid(f, path, t if t != "picklist" else "text", maximum_length=f.length)
            if t == "email" and not _EMAIL.match(raw):
                return None, invalid(f, path, "email")
            if t == "phone" and not _PHONE.match(raw):
                return None, invalid(f, path, "phone")
            return raw, None
        if t == "integer":
            if isinstance(raw, bool):
                return None, invalid(f, path, "integer")
            try:
                number = int(raw) if not isinstance(raw, float) or raw.is_integer() else None
            except (TypeError, ValueError):
                number = None
            if number is None or abs(number) >= 10 ** (f.length or 9):
                return None, invalid(f, path, "integer")
            if f.api_name == "Probability" and not 0 <= number <= 100:
                return None, error("INVALID_DATA", "Given Probability is not valid", api_name=f.api_name,
                                   json_path=f"{path}.{f.api_name}", expected_data_type="integer")
            return number, None
        if t in ("double", "currency", "percent"):
            if isinstance(raw, bool):
                return None, invalid(f, path, "double")
            try:
                number = Decimal(str(raw))
            except (InvalidOperation, ValueError):
                return None, invalid(f, path, "double")
            if not number.is_finite() or abs(number) >= Decimal(10) ** 16:
                return None, invalid(f, path, "double")
            return float(number), None
        if t == "boolean":
            if not isinstance(raw, bool):
                return None, invalid(f, path, "boolean")
            return raw, None
        if t == "date":
            if not isinstance(raw, str) or not _DATE.match(raw):
                return None, invalid(f, path, "date")
            try:
                date.fromisoformat(raw)
            except ValueError:
                return None, invalid(f, path, "date")
            return raw, None
        if t == "datetime":
            try:
                parsed = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
            except ValueError:
                return None, invalid(f, path, "datetime")
            if parsed.tzinfo is None:
                return None, invalid(f, path, "datetime")
            return int(parsed.timestamp()), None
        if t == "multiselectpicklist":
            if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
                return None, invalid(f, path, "jsonarray")
            return list(dict.fromkeys(raw)), None
        if t in ("lookup", "ownerlookup", "userlookup"):
            target = raw.get("id") if isinstance(raw, dict) else raw
            if not isinstance(target, (str, int)) or not str(target).isdigit():
                return None, invalid(f, path, t)
            target = str(target)
            ok = self.is_user(target) if t != "lookup" else self.exists(f.lookup or "", target)
            if not ok:
                return None, invalid(f, path, t)
            return target, None
        if t == "tag":
            if not isinstance(raw, list):
                return None, invalid(f, path, "jsonarray")
            names = [tag.get("name") if isinstance(tag, dict) else tag for tag in raw]
            if not all(isinstance(n, str) and n for n in names):
                return None, invalid(f, path, "jsonarray")
            return list(dict.fromkeys(names)), None
        return raw, None
