"""``POST /webhooks/{system_name}``: verify, store durably, acknowledge.

Order of checks: unknown system (404) → body size (413) → content type and JSON
(400) → the system's own verification (401 or what the verifier says) → store
the delivery in the inbox and enqueue its job in one transaction → answer what
the sender expects (Fxiaoke wants ``success``). Nothing is stored for a rejected
delivery; a redelivery with the same dedupe key is acknowledged without new work.
"""
from __future__ import annotations

import json
import logging
import time
import unicodedata
from collections.abc import Callable, Mapping
from typing import Annotated, Protocol

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy.exc import SQLAlchemyError

from connectors.base import WebhookDelivery, WebhookVerifier
from connectors.errors import WebhookRejected
from sync_engine.state.errors import StateStoreError
from sync_engine.state.models.base import EXTERNAL_ID_LEN, OBJECT_LEN

from .openapi import WEBHOOK_OPENAPI

log = logging.getLogger(__name__)

#: Headers never stored in the inbox (they may carry credentials).
_SENSITIVE_HEADERS = {"authorization", "cookie", "x-crmsync-signature", "x-zoho-token", "proxy-authorization"}


class Intake(Protocol):
    """What the receiver needs from the engine (the engine implements it on the state database)."""

    def verifier(self, system_name: str) -> WebhookVerifier | None: ...

    def channel_token(self, channel_id: str) -> str | None: ...

    async def accept(self, system_name: str, delivery: WebhookDelivery, headers: Mapping[str, str], body: bytes) -> bool:
        """Store the delivery and enqueue its job in one transaction, committed on return; False when it
        was a duplicate."""


class PayloadTooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _is_json_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _unstorable(delivery: WebhookDelivery) -> str | None:
    """A hint no record could match, that the state database could not even store (PostgreSQL
    refuses NUL in text and JSONB, and lone surrogates in UTF-8): a 400, not a 500."""
    for hint in delivery.hints:
        if len(hint.object) > OBJECT_LEN:
            return f"object name too long (more than {OBJECT_LEN} characters)"
        if any(len(i) > EXTERNAL_ID_LEN for i in hint.ids):
            return f"id too long (more than {EXTERNAL_ID_LEN} characters)"
        if any(_has_control(text) for text in (hint.object, *hint.ids)):
            return "object or id contains a control character"
    if _has_control(delivery.dedupe_key):
        return "event id contains a control character"
    return None


def _has_control(text: str) -> bool:
    # Categories Cc (controls, NUL), Cf (format: bidi overrides), Cs (lone surrogates), Co, Cn.
    return not text.isprintable() or any(unicodedata.category(c).startswith("C") for c in text)


def safe_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in _SENSITIVE_HEADERS}


def webhook_router(
    intake: Intake,
    *,
    max_body_bytes: int,
    count: Callable[[str, str], None],
    observe_ack: Callable[[str, float], None] = lambda _s, _t: None,
    clock: Callable[[], float] = time.time,
) -> APIRouter:
    router = APIRouter(tags=["webhooks"])

    def reject(system: str, status: int, result: str, message: str) -> JSONResponse:
        count(system, result)
        return JSONResponse({"error": message}, status_code=status)

    @router.post(
        "/webhooks/{system_name}",
        summary="Receive a change notification from a system",
        openapi_extra=WEBHOOK_OPENAPI,
        responses={
            200: {"description": "Stored (or a known redelivery) and acknowledged"},
            400: {"description": "Not JSON, or malformed"},
            401: {"description": "Verification failed"},
            404: {"description": "No such system"},
            413: {"description": "Body too large"},
            503: {"description": "The delivery could not be stored (not acknowledged): deliver it again later"},
        },
    )
    async def receive(
        system_name: Annotated[
            str, PathParam(description="A system's name from the configuration's `systems:`.", examples=["zoho"])
        ],
        request: Request,
    ) -> Response:
        started = time.perf_counter()
        if len(system_name) > 100:
            return reject("unknown", 404, "unknown_system", "unknown system")
        verifier = intake.verifier(system_name)
        if verifier is None:
            return reject("unknown", 404, "unknown_system", f"unknown system {system_name!r}")
        try:
            body = await _read_body(request, max_body_bytes)
        except PayloadTooLarge:
            return reject(system_name, 413, "too_large", f"body larger than {max_body_bytes} bytes")
        if not _is_json_type(request.headers.get("content-type", "")):
            return reject(system_name, 400, "bad_content_type", "expected Content-Type: application/json")
        try:
            json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: [[[[…]]]] nested too deep
            return reject(system_name, 400, "bad_json", "body is not valid JSON")
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            delivery = verifier.verify(headers, body, now=clock(), channel_token=intake.channel_token)
        except WebhookRejected as exc:
            log.warning("webhook for %s rejected: %s", system_name, exc.reason)
            return reject(system_name, exc.status, "rejected", exc.reason)
        except (SQLAlchemyError, StateStoreError) as exc:
            # Zoho's channel token is checked against the state database: with the database away the
            # delivery can be neither verified nor stored. Not acknowledged, so the sender delivers it again.
            log.warning("webhook for %s not verified: state database unavailable (%s)", system_name, type(exc).__name__)
            count(system_name, "unavailable")
            return JSONResponse({"error": "state database unavailable; retry later"}, status_code=503,
                                headers={"Retry-After": "5"})
        unstorable = _unstorable(delivery)
        if unstorable:
            log.warning("webhook for %s rejected: %s", system_name, unstorable)
            return reject(system_name, 400, "rejected", unstorable)
        try:
            fresh = await intake.accept(system_name, delivery, safe_headers(headers), body)
        except Exception:  # not stored, so not acknowledged: the sender delivers it again
            log.exception("could not store a webhook for %s", system_name)
            count(system_name, "unavailable")
            return JSONResponse({"error": "could not store the delivery; retry later"}, status_code=503,
                                headers={"Retry-After": "5"})
        count(system_name, "accepted" if fresh else "duplicate")
        observe_ack(system_name, time.perf_counter() - started)
        if isinstance(delivery.reply_body, str):
            return PlainTextResponse(delivery.reply_body, status_code=delivery.reply_status)
        return JSONResponse(delivery.reply_body, status_code=delivery.reply_status)

    return router
