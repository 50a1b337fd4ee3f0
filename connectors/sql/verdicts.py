"""One interface-table row's ERP verdict as a final :class:`WriteResult`.

Shared by the outcome poll and by the writer, which reports a verdict nobody has
read yet before it re-stages the row over it.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import Column

from connectors.base import WriteResult

from .keys import BadKey, KeyCodec
from .tables import WriteModel
from .timeconv import ErpClock


def flag_matches(value: Any, flags: Any) -> bool:
    """Compare a flag/status column with configured values across drivers (1 / True / '1')."""

    def norm(v: Any) -> str:
        return str(int(v)) if isinstance(v, bool) else str(v).strip()

    return value is not None and norm(value) in {norm(f) for f in flags}


def verdict_columns(model: WriteModel) -> list[Column]:
    c = model.controls
    optional = [col for col in (c.result_id, c.error_code) if col is not None]
    return [*model.key, c.op_key, c.status, c.message, c.processed_at, c.read_back_at, *optional]


def is_final(model: WriteModel, status: Any) -> bool:
    return flag_matches(status, model.final_statuses)


def verdict(model: WriteModel, row: Any, clock: ErpClock, separator: str) -> WriteResult:
    """``row`` holds :func:`verdict_columns` of a row whose status is done or error."""
    c = model.controls
    codec = KeyCodec(model.key, separator)
    try:
        natural_key = codec.encode(codec.row_key(row))
    except BadKey:
        natural_key = None
    processed = row[c.processed_at.name]
    processed_at = clock.to_utc(processed) if processed is not None else None
    if flag_matches(row[c.status.name], [model.settings.status_values.done]):
        result_id = row[c.result_id.name] if c.result_id is not None else None
        return WriteResult(
            key=row[c.op_key.name],
            ok=True,
            external_id=str(result_id) if result_id not in (None, "") else natural_key,
            modified_at=processed_at,
        )
    code = row[c.error_code.name] if c.error_code is not None else None
    return WriteResult(
        key=row[c.op_key.name],
        ok=False,
        external_id=natural_key,
        modified_at=processed_at,
        code=str(code) if code not in (None, "") else "ERP_REJECTED",
        message=row[c.message.name] or "rejected by the ERP import job without a message",
        retryable=False,
    )
