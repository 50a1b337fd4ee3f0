"""Turning Zoho's answers into crmsync's typed failures.

Zoho answers API errors with ``{"code", "details", "message", "status": "error"}``;
the token endpoint answers HTTP 200 with ``{"error": ...}``; proxies in between may
answer with HTML. Whatever arrives, the engine gets a typed error with a message a
person can act on, and never a secret.
"""
from __future__ import annotations

import html
import json
import re
from typing import Any

import httpx

from connectors.errors import ConnectorConfigError, ConnectorError, TransientError

SYSTEM = "zoho"

#: Call-level codes that mean the configuration names something that does not exist.
CONFIG_CODES = {"INVALID_MODULE", "INVALID_URL_PATTERN", "NO_PERMISSION", "OAUTH_SCOPE_MISMATCH", "NOT_SUPPORTED",
                "FEATURE_NOT_SUPPORTED", "INVALID_REQUEST_METHOD", "API_NOT_SUPPORTED"}
#: Per-record codes a later retry may get past.
RETRYABLE_RECORD_CODES = {"RECORD_LOCKED", "INTERNAL_ERROR", "TOO_MANY_REQUESTS", "ALREADY_MODIFIED"}


class ZohoApiError(ConnectorError):
    """A call-level error Zoho answered (not retryable): status, code, details kept for callers."""

    def __init__(self, message: str, *, status: int, code: str | None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, code=code, system=SYSTEM)
        self.status = status
        self.details = details or {}


class ZohoConfigError(ConnectorConfigError):
    def __init__(self, message: str, *, status: int, code: str | None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, code=code, system=SYSTEM)
        self.status = status
        self.details = details or {}


def describe_body(response: httpx.Response, limit: int = 160) -> str:
    """A short, safe description of a non-JSON body (the <title> of an HTML page, or its first words)."""
    text = response.text or ""
    match = re.search(r"<title[^>]*>(.*?)</title>", text, re.I | re.S)
    if match:
        snippet = match.group(1)
    else:
        snippet = re.sub(r"<[^>]+>", " ", text)
    snippet = " ".join(html.unescape(snippet).split())
    if len(snippet) > limit:
        snippet = snippet[: limit - 1] + "…"
    kind = response.headers.get("content-type", "no content type").split(";")[0]
    return f"{kind}: {snippet!r}" if snippet else kind


def json_body(response: httpx.Response, endpoint: str) -> Any:
    """Parse a body that must be JSON; a non-JSON body is a transient fault of something in between."""
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
        raise TransientError(
            f"{endpoint} answered HTTP {response.status_code} with a body that is not JSON ({describe_body(response)}); "
            f"a proxy or gateway in front of Zoho may be failing",
            code="BAD_RESPONSE",
            system=SYSTEM,
        ) from exc


def error_fields(payload: Any) -> tuple[str | None, str, dict[str, Any]]:
    """(code, message, details) from a Zoho error envelope, also when wrapped in data/watch lists."""
    if isinstance(payload, dict):
        for key in ("data", "watch"):
            items = payload.get(key)
            if isinstance(items, list) and items and isinstance(items[0], dict) and "code" in items[0]:
                payload = items[0]
                break
        code = payload.get("code")
        message = payload.get("message") or ""
        details = payload.get("details") if isinstance(payload.get("details"), dict) else {}
        return (str(code) if code is not None else None), str(message), details
    return None, "", {}


def api_error(response: httpx.Response, endpoint: str) -> ConnectorError:
    """A non-retryable call-level error (4xx other than 401/429)."""
    try:
        payload = response.json()
    except ValueError:
        return ZohoApiError(
            f"{endpoint} failed with HTTP {response.status_code} and a non-JSON body ({describe_body(response)})",
            status=response.status_code,
            code=None,
        )
    code, message, details = error_fields(payload)
    text = f"{endpoint} failed with HTTP {response.status_code}: {code or 'error'}"
    if message:
        text += f" — {message}"
    if details:
        text += f" {json.dumps(details, ensure_ascii=False, sort_keys=True)[:300]}"
    if code in CONFIG_CODES:
        if code == "OAUTH_SCOPE_MISMATCH":
            text += " (the refresh token lacks a scope this call needs; regenerate it with the scopes in the settings docs)"
        return ZohoConfigError(text, status=response.status_code, code=code, details=details)
    return ZohoApiError(text, status=response.status_code, code=code, details=details)
