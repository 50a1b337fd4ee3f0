"""Structured logs: human or JSON, secrets redacted whatever logger produced them."""
from __future__ import annotations

import io
import json
import logging

from sync_engine.logs import log_fields, register_secret, setup_logging


def test_json_logs_are_one_object_per_line_with_fields():
    stream = io.StringIO()
    setup_logging("json", "info", stream=stream)
    logging.getLogger("crmsync.test").info("pulled %d records", 200, extra=log_fields(flow="accounts", system="zoho"))
    record = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert record["message"] == "pulled 200 records"
    assert record["flow"] == "accounts" and record["level"] == "info" and record["logger"] == "crmsync.test"


def test_secrets_are_redacted_in_messages_fields_and_tracebacks():
    stream = io.StringIO()
    setup_logging("json", "info", stream=stream)
    register_secret("zoho-refresh-token-XYZ")
    log = logging.getLogger("crmsync.test")
    log.warning("token refresh failed for zoho-refresh-token-XYZ", extra=log_fields(token="zoho-refresh-token-XYZ"))
    try:
        raise RuntimeError("bad credentials zoho-refresh-token-XYZ")
    except RuntimeError:
        log.exception("failed")
    text = stream.getvalue()
    assert "zoho-refresh-token-XYZ" not in text
    assert text.count("***") >= 3


def test_human_logs_keep_chinese_text():
    stream = io.StringIO()
    setup_logging("human", "info", stream=stream)
    logging.getLogger("crmsync.test").info("matched 深圳市华为技术有限公司")
    assert "matched 深圳市华为技术有限公司" in stream.getvalue()
