"""Registered secrets are redacted from every part of a log record, in both formats: nested
structured fields, objects rendered with str(), tracebacks and their causes, stack info."""
from __future__ import annotations

import io
import json
import logging

import pytest

from sync_engine.logs import log_fields, register_secret, setup_logging

SECRET = "redact-me-LEAKCHECK-7e8f9a0b"
QUOTED = 'pa"ss\\word-LEAKCHECK-1c2d'  # JSON would escape it: must be redacted before encoding


class Credentials:
    def __str__(self) -> str:
        return f"Credentials(secret={SECRET})"


@pytest.fixture
def logs():
    register_secret(SECRET)
    register_secret(QUOTED)
    stream = io.StringIO()
    yield stream
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not getattr(h, "_crmsync", False)]


def emit_everything(log: logging.Logger) -> None:
    log.warning("nested", extra=log_fields(body={"token": SECRET, "items": [SECRET, {"deep": (SECRET,)}]}, ids=[SECRET]))
    log.warning("object field", extra=log_fields(creds=Credentials()))
    log.warning("quoted %s", QUOTED, extra=log_fields(password=QUOTED))
    log.warning("mapping arg %r", {"k": SECRET})
    log.warning("with stack", stack_info=True, extra=log_fields(note=f"at {SECRET}"))
    try:
        try:
            raise KeyError(SECRET)
        except KeyError as inner:
            raise RuntimeError(f"login failed for {SECRET}") from inner
    except RuntimeError:
        log.exception("failed")


@pytest.mark.parametrize("fmt", ["json", "human"])
def test_no_part_of_a_record_shows_a_registered_secret(logs, fmt):
    setup_logging(fmt, "debug", stream=logs)
    emit_everything(logging.getLogger("crmsync.test"))
    text = logs.getvalue()
    assert SECRET not in text and QUOTED not in text
    assert json.dumps(QUOTED)[1:-1] not in text  # nor its JSON-escaped form
    assert text.count("***") >= 8
    if fmt == "json":
        lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        assert len(lines) == 6
        assert lines[0]["body"] == {"token": "***", "items": ["***", {"deep": ["***"]}]}
        assert lines[1]["creds"] == "Credentials(secret=***)"
        assert "stack" in lines[4] and "exception" in lines[5]
