"""Reading K/3 Cloud answers: the ``ResponseStatus`` envelope, in every place it hides.

Writes answer ``{"Result": {"ResponseStatus": {...}}}``. ExecuteBillQuery answers
rows as a list of lists, but its *errors* come back as
``[[{"Result": {"ResponseStatus": {...}}}]]`` - one "row" holding one "value".
Several public clients took that for data; :func:`query_error` exists so this
one never does. ``IsSuccess`` appears as a boolean or as the string ``"false"``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class RowError:
    message: str
    field: str | None = None
    dindex: int | None = None


@dataclass(frozen=True, slots=True)
class RowSuccess:
    id: str | None
    number: str | None
    dindex: int | None


@dataclass(slots=True)
class OperationStatus:
    success: bool
    msg_code: int = 0
    error_code: str | None = None
    errors: list[RowError] = field(default_factory=list)
    successes: list[RowSuccess] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def message(self) -> str:
        if not self.errors:
            return "the ERP reported a failure without a message" if not self.success else ""
        return "; ".join(_describe(e) for e in self.errors[:5]) + (" …" if len(self.errors) > 5 else "")


def _describe(error: RowError) -> str:
    return f"[{error.field}] {error.message}" if error.field else error.message


def truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def parse_status(result: dict[str, Any]) -> OperationStatus | None:
    """``result`` is the object under ``Result`` (it holds ``ResponseStatus``)."""
    raw = result.get("ResponseStatus")
    if not isinstance(raw, dict):
        return None
    errors = [
        RowError(message=str(e.get("Message") or e.get("message") or "").strip() or "error without a message",
                 field=_text(e.get("FieldName")), dindex=_int(e.get("DIndex")))
        for e in raw.get("Errors") or [] if isinstance(e, dict)
    ]
    successes = [
        RowSuccess(id=_text(s.get("Id")), number=_text(s.get("Number")), dindex=_int(s.get("DIndex")))
        for s in raw.get("SuccessEntitys") or [] if isinstance(s, dict)
    ]
    return OperationStatus(
        success=truthy(raw.get("IsSuccess")),
        msg_code=_int(raw.get("MsgCode")) or 0,
        error_code=_text(raw.get("ErrorCode")),
        errors=errors,
        successes=successes,
        result=result,
    )


def status_of(payload: Any) -> OperationStatus | None:
    """The ResponseStatus of any answer shape, or None when there is none (plain query rows)."""
    if isinstance(payload, dict):
        result = payload.get("Result")
        if isinstance(result, dict):
            return parse_status(result)
        return None
    return query_error(payload)


def query_error(payload: Any) -> OperationStatus | None:
    """The error hidden in an ExecuteBillQuery answer shaped ``[[{"Result": …}]]``, if it is one."""
    if isinstance(payload, list) and payload and isinstance(payload[0], list) and payload[0]:
        first = payload[0][0]
        if isinstance(first, dict) and isinstance(first.get("Result"), dict):
            return parse_status(first["Result"])
    return None


def is_session_lost(status: OperationStatus, messages: list[str]) -> bool:
    if status.success:
        return False
    if status.msg_code == 1:
        return True
    return any(marker in error.message for error in status.errors for marker in messages)
