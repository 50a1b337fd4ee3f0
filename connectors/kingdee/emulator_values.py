"""Turning Save-model values into stored values, with the ERP's per-field error messages."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from .emulator_forms import BOOL, COMBO, DATE, DATETIME, DECIMAL, INTEGER, MLTEXT, REF, STATUS, TEXT, FieldSpec
from .localtime import parse_local
from .protocol import MsgCode


class RowError(Exception):
    """One problem with one model; ``field`` is the field key the ERP names in ``Errors[].FieldName``."""

    def __init__(self, message: str, field: str | None = None, code: int = MsgCode.VALIDATION_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code


def _name(spec: FieldSpec, line: int | None) -> str:
    prefix = f"第{line}行：" if line else ""
    return f"{prefix}字段“{spec.label}”({spec.key})"


def ref_number(spec: FieldSpec, value: Any, line: int | None) -> str | int | None:
    """The FNumber (or internal id) a base-data reference names; None clears the field."""
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        folded = {str(k).lower(): v for k, v in value.items()}
        for key in ("fnumber", "number"):
            if key in folded:
                number = folded[key]
                return None if number in (None, "") else str(number)
        for key in ("fid", "id", "fmasterid"):
            if key in folded and str(folded[key]).lstrip("-").isdigit():
                return int(folded[key]) or None
        raise RowError(f"{_name(spec, line)}的值必须用编码指定，例如 {{\"FNumber\": \"…\"}}", spec.key, MsgCode.PARAMETER)
    raise RowError(f"{_name(spec, line)}是基础资料，值必须写成 {{\"FNumber\": \"…\"}}", spec.key, MsgCode.PARAMETER)


def scalar(spec: FieldSpec, value: Any, line: int | None) -> Any:
    """A non-reference model value converted for storage (raises :class:`RowError`)."""
    kind = spec.kind
    if value is None or (value == "" and kind not in (TEXT, MLTEXT)):
        return None
    if kind in (TEXT, MLTEXT):
        if kind == MLTEXT and isinstance(value, list):  # [{"Key": 2052, "Value": "…"}]
            texts = [item.get("Value") for item in value if isinstance(item, dict)]
            value = next((t for t in texts if t), "")
        if isinstance(value, (dict, list)):
            raise RowError(f"{_name(spec, line)}的值格式不正确", spec.key, MsgCode.PARAMETER)
        text = str(value)
        if spec.max_len and len(text) > spec.max_len:
            raise RowError(f"{_name(spec, line)}的长度不能超过{spec.max_len}", spec.key)
        return text
    if kind in (DECIMAL, INTEGER):
        if isinstance(value, bool):
            raise RowError(f"{_name(spec, line)}的值“{value}”不是有效的数值", spec.key, MsgCode.PARAMETER)
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            raise RowError(f"{_name(spec, line)}的值“{value}”不是有效的数值", spec.key, MsgCode.PARAMETER) from None
        if not number.is_finite():
            raise RowError(f"{_name(spec, line)}的值“{value}”不是有效的数值", spec.key, MsgCode.PARAMETER)
        return int(number) if kind == INTEGER else number
    if kind in (DATE, DATETIME):
        if isinstance(value, datetime):
            stamp = value.replace(tzinfo=None)
        else:
            try:
                stamp = parse_local(str(value))
            except ValueError:
                raise RowError(f"{_name(spec, line)}的值“{value}”不是有效的日期", spec.key, MsgCode.PARAMETER) from None
        return stamp.replace(hour=0, minute=0, second=0, microsecond=0) if kind == DATE else stamp
    if kind == BOOL:
        if isinstance(value, str):
            return value.strip().lower() in ("true", "1")
        return bool(value)
    if kind == COMBO:
        text = str(value)
        if spec.options and text not in spec.options:
            allowed = "、".join(f"{k}（{v}）" for k, v in spec.options.items())
            raise RowError(f"{_name(spec, line)}的值“{text}”不是有效的选项，可选：{allowed}", spec.key)
        return text
    if kind in (STATUS, REF):
        raise AssertionError("status and reference fields are not scalars")
    return value


def required_missing(spec: FieldSpec, line: int | None) -> RowError:
    return RowError(f"{_name(spec, line)}是必录项", spec.key)


def unknown_reference(spec: FieldSpec, number: Any, line: int | None) -> RowError:
    return RowError(f"{_name(spec, line)}的值“{number}”在系统中不存在，或未审核、已禁用", spec.key,
                    MsgCode.FIELD_NOT_FOUND)
