"""What ``POST /webhooks/{system_name}`` accepts, for the OpenAPI document.

The receiver reads the raw body (it must verify signatures over the exact bytes), so FastAPI
cannot infer a request schema; this describes the four senders' shapes by hand, so that people
and fuzzers (schemathesis) know what a delivery looks like. The verifier of the named system
decides which shape applies; anything else is refused with 400 or 401.
"""
from __future__ import annotations

from typing import Any

_IDS = {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1, "maxLength": 64}}

ZOHO_CALLBACK: dict[str, Any] = {
    "title": "Zoho CRM notification",
    "description": "Sent by Zoho for a watch channel crmsync enabled; `token` is the channel's secret.",
    "type": "object",
    "required": ["channel_id", "token", "module", "ids"],
    "properties": {
        "channel_id": {"type": "string", "pattern": "^[0-9]{1,20}$"},
        "token": {"type": "string", "maxLength": 50},
        "module": {"type": "string", "example": "Accounts"},
        "operation": {"type": "string", "enum": ["insert", "update", "delete"]},
        "ids": {"type": "array", "items": {"type": "string", "pattern": "^[0-9]{1,25}$"}},
        "server_time": {"type": "integer", "minimum": 0},
        "query_params": {"type": "object"},
        "resource_uri": {"type": "string"},
    },
}

FXIAOKE_OPEN_PLATFORM_PUSH: dict[str, Any] = {
    "title": "Fxiaoke open-platform push",
    "description": "sig = sha1(sorted([token, timeStamp, nonce, content])); content is AES-256-CBC with the "
    "encodingAesKey, base64; timeStamp in epoch milliseconds within 500 s of now. crmsync answers `success`.",
    "type": "object",
    "required": ["nonce", "timeStamp", "content", "sig"],
    "properties": {
        "nonce": {"type": "string", "minLength": 1},
        "timeStamp": {"type": "string", "pattern": "^[0-9]{13}$"},
        "content": {"type": "string", "format": "byte"},
        "sig": {"type": "string", "pattern": "^[0-9a-f]{40}$"},
    },
}

FXIAOKE_APL_PUSH: dict[str, Any] = {
    "title": "Fxiaoke APL function push",
    "description": "Signed with X-Crmsync-Signature: v1=hex(HMAC-SHA256(secret, X-Crmsync-Timestamp + '.' + body)), "
    "the timestamp in epoch milliseconds within 300 s of now.",
    "type": "object",
    "required": ["version", "eventId", "objectApiName", "ids", "event", "timestamp"],
    "properties": {
        "version": {"type": "integer", "enum": [1]},
        "eventId": {"type": "string", "minLength": 1, "maxLength": 200},
        "objectApiName": {"type": "string", "minLength": 1, "maxLength": 128, "example": "AccountObj"},
        "ids": _IDS,
        "event": {"type": "string", "enum": ["create", "update", "delete"]},
        "timestamp": {"type": "integer", "minimum": 0},
        "tenantId": {"type": "string"},
    },
}

ERP_NOTICE: dict[str, Any] = {
    "title": "ERP change notice",
    "description": "Signed with X-Crmsync-Signature: v1=hex(HMAC-SHA256(webhook_secret, X-Crmsync-Timestamp + '.' + "
    "body)), the timestamp in Unix seconds within webhook_tolerance_seconds of now.",
    "type": "object",
    "required": ["object", "ids", "event_id"],
    "properties": {
        "object": {"type": "string", "example": "customer"},
        "ids": _IDS,
        "event": {"type": "string", "enum": ["create", "update", "delete", "unknown"]},
        "event_id": {"type": "string", "minLength": 1, "maxLength": 200},
    },
}

WEBHOOK_OPENAPI: dict[str, Any] = {
    "parameters": [
        {
            "name": "X-Crmsync-Timestamp",
            "in": "header",
            "required": False,
            "description": "APL pushes: epoch milliseconds; ERP notices: Unix seconds. Part of the signed message.",
            "schema": {"type": "string", "pattern": "^[0-9]{1,13}$"},
        },
        {
            "name": "X-Crmsync-Signature",
            "in": "header",
            "required": False,
            "description": "`v1=` + lowercase hex HMAC-SHA256 (APL pushes and ERP notices); ERP senders may list "
            "several, comma-separated, during a secret rotation.",
            "schema": {"type": "string", "pattern": "^v1=[0-9a-f]{64}(,v1=[0-9a-f]{64})*$"},
        },
    ],
    "requestBody": {
        "required": True,
        "description": "The sender's JSON notification (at most server.max_body_bytes).",
        "content": {
            "application/json": {
                "schema": {"anyOf": [ZOHO_CALLBACK, FXIAOKE_OPEN_PLATFORM_PUSH, FXIAOKE_APL_PUSH, ERP_NOTICE]}
            }
        },
    },
}
