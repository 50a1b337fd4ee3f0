"""The open platform's signed, encrypted push (开平推送消息), both ends.

Wire format (official demo: FSCallbackController, SigUtils, PKCS7Encoder):
the platform POSTs JSON ``{"nonce", "timeStamp", "content", "sig"}`` where

* ``sig`` = lowercase hex SHA-1 of the four strings token, timeStamp, nonce and
  content, sorted lexicographically and concatenated;
* ``timeStamp`` is epoch milliseconds; the demo rejects more than 500 s of skew;
* ``content`` = base64 of AES-256-CBC(key, iv) over
  ``16 random bytes | 4-byte big-endian length N | N bytes of UTF-8 JSON | (anything)``
  padded PKCS#7 to a multiple of 32 bytes, with ``key = base64(encodingAesKey + "=")``
  (32 bytes) and ``iv = key[:16]``. Bytes after the N-byte message (WeChat-style
  senders append the appId) are ignored;
* the receiver answers ``success`` within 3 s, otherwise the platform retries once.

The decrypted message is ``{"type": "PermanentCode" | "CancelPermanentCode" | "Message", "content": "..."}``.
Record changes are not a documented message type; this module defines the one
the emulator sends (``MsgType: event``, ``Event: object_data_change`` with
``objectApiName``, ``dataIds``, ``action``, ``eventId``, ``timestamp``) and reads
hints liberally from any ``Message`` content that names an object and ids.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import struct
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ..base import ChangeHint, WebhookDelivery, WebhookVerifier
from ..errors import WebhookRejected

BLOCK = 32
CHANGE_EVENT = "object_data_change"
_ACTIONS = {"create": "create", "add": "create", "update": "update", "edit": "update", "recover": "update",
            "invalid": "delete", "delete": "delete", "remove": "delete"}


# -- crypto --------------------------------------------------------------------------------
def aes_key(encoding_aes_key: str) -> bytes:
    if len(encoding_aes_key) != 43:
        raise ValueError("encodingAesKey must be 43 characters")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("encodingAesKey is not base64") from exc
    if len(key) != 32:
        raise ValueError("encodingAesKey must decode to 32 bytes")
    return key


def new_encoding_aes_key() -> str:
    return base64.b64encode(os.urandom(32)).decode("ascii").rstrip("=")


def signature(token: str, time_stamp: str, nonce: str, content: str) -> str:
    return hashlib.sha1("".join(sorted([token, time_stamp, nonce, content])).encode("utf-8")).hexdigest()


def _pkcs7_pad(data: bytes) -> bytes:
    amount = BLOCK - len(data) % BLOCK
    return data + bytes([amount]) * amount


def _pkcs7_unpad(data: bytes) -> bytes:
    if not data:
        raise ValueError("empty plaintext")
    amount = data[-1]
    if amount < 1 or amount > BLOCK or data[-amount:] != bytes([amount]) * amount:
        raise ValueError("bad padding")
    return data[:-amount]


def encrypt(message: bytes, encoding_aes_key: str, *, suffix: bytes = b"", random_prefix: bytes | None = None) -> str:
    key = aes_key(encoding_aes_key)
    prefix = random_prefix if random_prefix is not None else os.urandom(16)
    plain = _pkcs7_pad(prefix + struct.pack(">I", len(message)) + message + suffix)
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode("ascii")


def decrypt(content: str, encoding_aes_key: str) -> bytes:
    key = aes_key(encoding_aes_key)
    try:
        cipher_bytes = base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("content is not base64") from exc
    if not cipher_bytes or len(cipher_bytes) % 16:
        raise ValueError("content is not whole AES blocks")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = _pkcs7_unpad(decryptor.update(cipher_bytes) + decryptor.finalize())
    if len(plain) < 20:
        raise ValueError("plaintext too short")
    (length,) = struct.unpack(">I", plain[16:20])
    if 20 + length > len(plain):
        raise ValueError("declared length exceeds the plaintext")
    return plain[20 : 20 + length]


# -- sending (the emulator) -------------------------------------------------------------------
def change_message(
    *, object_api_name: str, ids: list[str], action: str, event_id: str, timestamp_ms: int, ea: str
) -> dict[str, Any]:
    content = {
        "MsgType": "event",
        "Event": CHANGE_EVENT,
        "eventId": event_id,
        "enterpriseAccount": ea,
        "objectApiName": object_api_name,
        "dataIds": ids,
        "action": action,
        "timestamp": timestamp_ms,
    }
    return {"type": "Message", "content": json.dumps(content, ensure_ascii=False)}


def build_push(
    message: dict[str, Any],
    *,
    token: str,
    encoding_aes_key: str,
    time_stamp_ms: int,
    nonce: str | None = None,
    suffix: bytes = b"",
) -> dict[str, str]:
    """The JSON body the platform POSTs for ``message``."""
    content = encrypt(json.dumps(message, ensure_ascii=False).encode("utf-8"), encoding_aes_key, suffix=suffix)
    stamp = str(time_stamp_ms)
    nonce = nonce or base64.b32encode(os.urandom(10)).decode("ascii").lower()
    return {"nonce": nonce, "timeStamp": stamp, "content": content, "sig": signature(token, stamp, nonce, content)}


# -- receiving -----------------------------------------------------------------------------
class OpenPlatformPushVerifier(WebhookVerifier):
    def __init__(self, token: str, encoding_aes_key: str, *, window_seconds: float = 500.0) -> None:
        if not token:
            raise ValueError("the open-platform token is empty")
        aes_key(encoding_aes_key)  # fail at start-up, not on the first delivery
        self._token = token
        self._key = encoding_aes_key
        self._window = window_seconds

    def verify(
        self,
        headers: Mapping[str, str],
        body: bytes,
        *,
        now: float,
        channel_token: Callable[[str], str | None] = lambda _cid: None,
    ) -> WebhookDelivery:
        envelope = _json_object(body, "body")
        fields = {}
        for name in ("nonce", "timeStamp", "content", "sig"):
            value = envelope.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and name == "timeStamp":
                value = str(value)
            if not isinstance(value, str) or not value:
                raise WebhookRejected(400, f"missing {name}")
            fields[name] = value
        expected = signature(self._token, fields["timeStamp"], fields["nonce"], fields["content"])
        if not hmac.compare_digest(expected, fields["sig"].lower()):
            raise WebhookRejected(401, "bad signature")
        try:
            stamp_ms = int(fields["timeStamp"])
        except ValueError:
            raise WebhookRejected(400, "timeStamp is not epoch milliseconds") from None
        if abs(int(now * 1000) - stamp_ms) > self._window * 1000:  # ints: a huge stamp must not overflow a float
            raise WebhookRejected(401, "timeStamp outside the accepted clock window")
        try:
            plain = decrypt(fields["content"], self._key)
        except ValueError as exc:
            raise WebhookRejected(400, f"content cannot be decrypted: {exc}") from None
        message = _json_object(plain, "decrypted content")
        return WebhookDelivery(
            dedupe_key=_dedupe_key(message, plain),
            hints=hints_from_message(message),
            reply_body="success",
            reply_status=200,
        )


def hints_from_message(message: dict[str, Any]) -> list[ChangeHint]:
    if message.get("type") != "Message":
        return []  # PermanentCode / CancelPermanentCode: nothing for the sync engine
    content = message.get("content")
    if isinstance(content, str):
        try:
            content = json.loads(content)
        except ValueError:
            return []
    if not isinstance(content, dict):
        return []
    object_name = content.get("objectApiName") or content.get("dataObjectApiName") or content.get("apiName")
    ids = content.get("dataIds") or content.get("objectIds") or content.get("ids")
    if ids is None:
        single = content.get("dataId") or content.get("objectDataId")
        ids = [single] if single else []
    if not object_name or not isinstance(ids, list) or not ids:
        return []
    action = str(content.get("action") or content.get("event") or "").lower()
    occurred = content.get("timestamp")
    return [
        ChangeHint(
            object=str(object_name),
            ids=[str(i) for i in ids],
            event=_ACTIONS.get(action, "unknown"),
            occurred_at=_ms(occurred),
        )
    ]


def _dedupe_key(message: dict[str, Any], plain: bytes) -> str:
    content = message.get("content")
    if isinstance(content, str):
        try:
            parsed = json.loads(content)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and parsed.get("eventId"):
            return f"fxiaoke-open:{parsed['eventId']}"
    # The ciphertext differs on each (re)send because of its random prefix; the message does not.
    return "fxiaoke-open:" + hashlib.sha256(plain).hexdigest()


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise WebhookRejected(400, f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise WebhookRejected(400, f"{what} is not a JSON object")
    return value


def _ms(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None
