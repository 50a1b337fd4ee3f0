"""Structured logging: human lines by default, one JSON object per line on request.

Secret values (every ``SecretStr`` in the loaded config, tokens the connectors
obtain) are registered with :func:`register_secret` and replaced by ``***`` in
every record, whatever logger or formatter produced it.
"""
from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from connectors.secrets import register_secret, registered

REDACTED = "***"
__all__ = ["REDACTED", "log_fields", "redact", "register_secret", "setup_logging"]


def redact(text: str) -> str:
    """``text`` without any registered secret (the config's, and tokens the connectors obtained)."""
    secrets = registered()
    if not secrets or not text:
        return text
    for secret in sorted(secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _redact_value(value):
    """Structured fields may nest (a payload, a list of ids): redact every string inside."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {_redact_value(k): _redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_redact_value(v) for v in value]
    return value


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            record.fields = _redact_value(extra)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            payload.update(fields)
        if record.exc_info:
            payload["exception"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            payload["stack"] = redact(record.stack_info)
        # default=str turns objects into text after the filter ran: redact that text too.
        return redact(json.dumps(_redact_value(payload), ensure_ascii=False, default=lambda o: redact(str(o))))


class HumanFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S")
        line = f"{ts} {record.levelname:<7} {record.name}: {record.getMessage()}"
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict) and fields:
            line += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        if record.exc_info:
            line += "\n" + redact(self.formatException(record.exc_info))
        if record.stack_info:
            line += "\n" + record.stack_info
        return redact(line)


def setup_logging(fmt: str = "human", level: str = "info", stream=None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else HumanFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_crmsync", False):
            root.removeHandler(old)
    handler._crmsync = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "uvicorn.access", "apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def log_fields(**fields) -> dict:
    """``log.info("pulled", extra=log_fields(flow="accounts", records=200))``."""
    return {"fields": fields}
