"""Hostile input at ``POST /webhooks/{system}`` through the real app and the real verifiers:
Zoho's channel token, Fxiaoke's two push styles (open platform: SHA-1 signature, AES body, clock
window; APL function: HMAC-SHA256 with a timestamp window) and the ERP/SQL HMAC receiver.

Every rejected delivery gets its status (401/400/413/404) and leaves the inbox and the job queue
exactly as they were; a flood of one valid delivery makes one job.
"""
from __future__ import annotations

import asyncio
import json
import time

import pytest

from connectors.fxiaoke import push_apl, push_open_platform
from connectors.sql.webhook import sign as erp_sign

from .conftest import (
    APL_SECRET,
    BOTH_BACKENDS,
    ERP_SECRET,
    FX_AES_KEY,
    FX_TOKEN,
    MAX_BODY,
    ZOHO_CHANNEL,
    ZOHO_TOKEN,
)

FX_ID = "65f0c3a1b2c3d4e5f6a7b8c9"


# -- valid deliveries of each style ------------------------------------------------------------------
def zoho(**change) -> tuple[dict, bytes]:
    payload = {"channel_id": ZOHO_CHANNEL, "token": ZOHO_TOKEN, "module": "Accounts", "operation": "update",
               "ids": ["3652397000000649013"], "server_time": 1718000000000} | change
    payload = {k: v for k, v in payload.items() if v is not ...}
    return {"content-type": "application/json"}, json.dumps(payload).encode()


def fx_open(*, stamp_ms: int | None = None, event_id: str = "evt-1", ids=(FX_ID,), token: str = FX_TOKEN,
            message: dict | None = None, **envelope) -> tuple[dict, bytes]:
    stamp_ms = stamp_ms if stamp_ms is not None else int(time.time() * 1000)
    message = message or push_open_platform.change_message(
        object_api_name="AccountObj", ids=list(ids), action="update", event_id=event_id, timestamp_ms=stamp_ms, ea="fs")
    push = push_open_platform.build_push(message, token=token, encoding_aes_key=FX_AES_KEY, time_stamp_ms=stamp_ms)
    push = {k: v for k, v in (push | envelope).items() if v is not ...}
    return {"content-type": "application/json"}, json.dumps(push).encode()


def fx_signed_content(content: str, *, stamp_ms: int | None = None) -> tuple[dict, bytes]:
    """A correctly signed envelope around ``content`` (what only the token holder can make)."""
    stamp = str(stamp_ms if stamp_ms is not None else int(time.time() * 1000))
    envelope = {"nonce": "n0nce", "timeStamp": stamp, "content": content,
                "sig": push_open_platform.signature(FX_TOKEN, stamp, "n0nce", content)}
    return {"content-type": "application/json"}, json.dumps(envelope).encode()


def apl(*, stamp_ms: int | None = None, secret: str = APL_SECRET, ids=(FX_ID,), event_id: str = "AccountObj:x:update:1",
        override: dict | None = None) -> tuple[dict, bytes]:
    stamp_ms = stamp_ms if stamp_ms is not None else int(time.time() * 1000)
    headers, body = push_apl.build_push(secret, object_api_name="AccountObj", ids=list(ids), event="update",
                                        timestamp_ms=stamp_ms, event_id=event_id)
    if override:
        body = json.dumps(json.loads(body) | override).encode()
        headers["X-Crmsync-Signature"] = push_apl.sign(secret, str(stamp_ms), body)
    return {k.lower(): v for k, v in headers.items()}, body


def erp(*, now: float | None = None, secret: str = ERP_SECRET, **change) -> tuple[dict, bytes]:
    payload = {"object": "customer", "ids": ["C000123"], "event": "update", "event_id": "erp-evt-1"} | change
    body = json.dumps(payload).encode()  # \u-escaped: a lone surrogate can be sent
    stamp = str(int(now if now is not None else time.time()))
    return ({"content-type": "application/json; charset=utf-8", "x-crmsync-timestamp": stamp,
             "x-crmsync-signature": erp_sign(secret, stamp, body)}, body)


VALID = {"zoho": zoho, "fx_open": fx_open, "fx_apl": apl, "erp_db": erp}
REPLY = {"zoho": "", "fx_open": "success", "fx_apl": "success", "erp_db": '{"ok":true}'}


async def post(service, system: str, headers: dict, body: bytes):
    return await service.client.post(f"/webhooks/{system}", content=body, headers=headers)


async def assert_rejected(service, system: str, headers: dict, body: bytes, status: int, reason: str | None = None):
    before = service.counts()
    response = await post(service, system, headers, body)
    assert response.status_code == status, (response.status_code, response.text)
    if reason is not None:
        assert reason in response.json()["error"], response.text
    assert service.counts() == before, "a rejected delivery changed the inbox or the job queue"
    return response


# -- every style: the valid delivery is stored once; a flood of it makes one job ----------------------
@BOTH_BACKENDS
@pytest.mark.parametrize("system", sorted(VALID))
async def test_a_valid_delivery_is_stored_and_its_replay_is_acknowledged_without_work(service, system):
    headers, body = VALID[system]()
    first = await post(service, system, headers, body)
    assert first.status_code == 200 and first.text == REPLY[system], first.text
    assert service.counts() == (1, 1)
    again = await post(service, system, headers, body)
    assert again.status_code == 200 and service.counts() == (1, 1)


@BOTH_BACKENDS
@pytest.mark.parametrize("system", sorted(VALID))
async def test_a_flood_of_one_delivery_makes_one_job(service, system):
    headers, body = VALID[system]()
    responses = await asyncio.gather(*[post(service, system, headers, body) for _ in range(40)])
    assert [r.status_code for r in responses] == [200] * 40
    assert service.counts() == (1, 1)


async def test_an_open_platform_resend_with_new_ciphertext_is_the_same_delivery(service):
    """The platform re-encrypts on each resend (random prefix): the dedupe key is the message's."""
    stamp = int(time.time() * 1000)
    for _ in range(3):
        headers, body = fx_open(stamp_ms=stamp, event_id="evt-resent")
        assert (await post(service, "fx_open", headers, body)).status_code == 200
    assert service.counts() == (1, 1)


# -- Zoho: channel id and token ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "status", "reason"),
    [
        ({"token": ...}, 401, "channel_id or token missing"),
        ({"channel_id": ...}, 401, "channel_id or token missing"),
        ({"token": "wrong-token"}, 401, "unknown channel or wrong token"),
        ({"token": ZOHO_TOKEN + "x"}, 401, "unknown channel or wrong token"),
        ({"token": ZOHO_TOKEN[:-1]}, 401, "unknown channel or wrong token"),
        ({"token": 12345}, 401, "unknown channel or wrong token"),
        ({"token": "x" * 3000}, 401, "unknown channel or wrong token"),
        ({"channel_id": "1000000068002"}, 401, "unknown channel or wrong token"),  # right token, other channel
        ({"channel_id": "1" * 500}, 401, "malformed channel_id"),
        ({"channel_id": "1000000068001; DROP TABLE channels"}, 401, "malformed channel_id"),
        ({"channel_id": "-1"}, 401, "malformed channel_id"),
        ({"module": ...}, 400, "module missing"),
        ({"ids": "3652397000000649013"}, 400, "ids missing or malformed"),
        ({"ids": ["9" * 300]}, 400, "ids missing or malformed"),
        ({"ids": ["../../etc/passwd"]}, 400, "ids missing or malformed"),
        ({"ids": [{"id": 1}]}, 400, "ids missing or malformed"),
        ({"ids": [str(i) for i in range(10_001)]}, 413, "body larger than"),  # the body limit comes first
    ],
)
async def test_zoho_callbacks_without_the_channel_token_are_refused(service, change, status, reason):
    headers, body = zoho(**change)
    await assert_rejected(service, "zoho", headers, body, status, reason)


def _now_ms() -> int:
    # Read when a case runs, not when the cases are collected (minutes earlier in a full run).
    return int(time.time() * 1000)


def _fx_open_with_moved_stamp():
    # Moved from the stamp that was signed, not from a clock read beside it: a clock read a
    # millisecond earlier, plus one, was that very stamp once in CI, and the push was valid.
    signed = _now_ms()
    return fx_open(stamp_ms=signed, timeStamp=str(signed + 1))


# -- Fxiaoke open platform: SHA-1 signature, AES content, 500 s clock window -----------------------------
def _fx_cases():
    return [
        ("forged signature", lambda: fx_open(sig="0" * 40), 401, "bad signature"),
        ("missing signature", lambda: fx_open(sig=...), 400, "missing sig"),
        ("missing nonce", lambda: fx_open(nonce=...), 400, "missing nonce"),
        ("missing content", lambda: fx_open(content=...), 400, "missing content"),
        ("empty timeStamp", lambda: fx_open(timeStamp=""), 400, "missing timeStamp"),
        ("signed with another token", lambda: fx_open(token="someone-elses-token"), 401, "bad signature"),
        ("content swapped", lambda: fx_open(content=json.loads(fx_open(event_id="other")[1])["content"]), 401, "bad signature"),
        ("timeStamp moved", _fx_open_with_moved_stamp, 401, "bad signature"),
        ("replayed 10 minutes later", lambda: fx_open(stamp_ms=_now_ms() - 600_000), 401, "clock window"),
        ("replayed a day later", lambda: fx_open(stamp_ms=_now_ms() - 86_400_000), 401, "clock window"),
        ("stamped in the future", lambda: fx_open(stamp_ms=_now_ms() + 600_000), 401, "clock window"),
        ("stamped in seconds", lambda: fx_open(stamp_ms=_now_ms() // 1000), 401, "clock window"),
        ("signed stamp of 400 digits", lambda: fx_open(stamp_ms=10**400), 401, "clock window"),
        ("timeStamp not a number", _signed_bad_stamp, 400, "epoch milliseconds"),
        ("content not base64", lambda: fx_signed_content("not base64 at all!"), 400, "cannot be decrypted"),
        ("content not whole blocks", lambda: fx_signed_content("QUJD"), 400, "cannot be decrypted"),
        ("content under another key", lambda: fx_signed_content(push_open_platform.encrypt(
            b'{"type":"Message"}', push_open_platform.new_encoding_aes_key())), 400, "cannot be decrypted"),
        ("decrypted content not JSON", lambda: fx_signed_content(push_open_platform.encrypt(b"<xml/>", FX_AES_KEY)),
         400, "decrypted content is not JSON"),
        ("decrypted content a list", lambda: fx_signed_content(push_open_platform.encrypt(b"[1,2]", FX_AES_KEY)),
         400, "decrypted content is not a JSON object"),
        ("envelope a list", lambda: ({"content-type": "application/json"}, b"[]"), 400, "not a JSON object"),
        ("sig a number", lambda: fx_open(sig=12345), 400, "missing sig"),
    ]


def _signed_bad_stamp() -> tuple[dict, bytes]:
    content = push_open_platform.encrypt(b'{"type":"Message"}', FX_AES_KEY)
    envelope = {"nonce": "n", "timeStamp": "yesterday", "content": content,
                "sig": push_open_platform.signature(FX_TOKEN, "yesterday", "n", content)}
    return {"content-type": "application/json"}, json.dumps(envelope).encode()


@pytest.mark.parametrize(("name", "make", "status", "reason"), _fx_cases(), ids=[c[0] for c in _fx_cases()])
async def test_open_platform_pushes_that_fail_verification_are_refused(service, name, make, status, reason):
    headers, body = make()
    await assert_rejected(service, "fx_open", headers, body, status, reason)


async def test_an_open_platform_push_inside_the_window_is_accepted_at_its_edges(service):
    for i, offset in enumerate((-490_000, 490_000)):
        headers, body = fx_open(stamp_ms=_now_ms() + offset, event_id=f"edge-{i}")
        assert (await post(service, "fx_open", headers, body)).status_code == 200
    assert service.counts() == (2, 2)


async def test_open_platform_system_messages_are_acknowledged_without_work_for_the_engine(service):
    """PermanentCode / CancelPermanentCode carry no record change: stored (audit), nothing to sync."""
    headers, body = fx_open(message={"type": "CancelPermanentCode", "content": "{}"})
    response = await post(service, "fx_open", headers, body)
    assert response.status_code == 200 and response.text == "success"


# -- Fxiaoke APL function: HMAC-SHA256 over timestamp + "." + body, 300 s window -------------------------
def _apl_cases():

    def without(header):
        headers, body = apl()
        headers.pop(header)
        return headers, body

    def tampered():
        headers, body = apl()
        return headers, body.replace(FX_ID.encode(), b"65f0c3a1b2c3d4e5f6a7b8ca")

    def scheme(value):
        headers, body = apl()
        headers["x-crmsync-signature"] = value
        return headers, body

    return [
        ("no signature", lambda: without("x-crmsync-signature"), 401, "missing"),
        ("no timestamp", lambda: without("x-crmsync-timestamp"), 401, "missing"),
        ("wrong secret", lambda: apl(secret="not-the-shared-secret-0000"), 401, "bad signature"),
        ("body tampered", tampered, 401, "bad signature"),
        ("signature of another scheme", lambda: scheme("v0=" + apl()[0]["x-crmsync-signature"][3:]), 401, "bad signature"),
        ("signature truncated", lambda: scheme(apl()[0]["x-crmsync-signature"][:-2]), 401, "bad signature"),
        ("signature not hex", lambda: scheme("v1=" + "zz" * 32), 401, "bad signature"),
        ("replayed 10 minutes later", lambda: apl(stamp_ms=_now_ms() - 600_000), 401, "clock window"),
        ("stamped in the future", lambda: apl(stamp_ms=_now_ms() + 600_000), 401, "clock window"),
        ("stamped in seconds", lambda: apl(stamp_ms=_now_ms() // 1000), 401, "clock window"),
        ("signed stamp of 400 digits", lambda: apl(stamp_ms=10**400), 401, "clock window"),
        ("no ids", lambda: apl(ids=()), 400, "non-empty ids"),
        ("ids not a list", lambda: apl(override={"ids": {"a": 1}}), 400, "non-empty ids"),
        ("no object", lambda: apl(override={"objectApiName": None}), 400, "objectApiName"),
        ("very long id", lambda: apl(ids=("6" * 9000,)), 413, "body larger than"),
        ("id longer than any system id", lambda: apl(ids=("6" * 300,)), 400, "too long"),
        ("object name longer than any object", lambda: apl(override={"objectApiName": "O" * 300}), 400, "too long"),
    ]


@pytest.mark.parametrize(("name", "make", "status", "reason"), _apl_cases(), ids=[c[0] for c in _apl_cases()])
async def test_apl_pushes_that_fail_verification_are_refused(service, name, make, status, reason):
    headers, body = make()
    await assert_rejected(service, "fx_apl", headers, body, status, reason)


# -- ERP / SQL: HMAC-SHA256, Unix seconds, secret rotation ------------------------------------------------
def _erp_cases():

    def header(name, value):
        headers, body = erp()
        headers[name] = value
        return headers, body

    def tampered():
        headers, body = erp()
        return headers, body.replace(b"C000123", b"C000124")

    return [
        ("no signature", lambda: header("x-crmsync-signature", ""), 401, "missing"),
        ("wrong secret", lambda: erp(secret="guessed-secret"), 401, "does not match"),
        ("body tampered", tampered, 401, "does not match"),
        ("many wrong signatures", lambda: header("x-crmsync-signature", ",".join(["v1=" + "0" * 64] * 50)), 401,
         "does not match"),
        ("replayed 10 minutes later", lambda: erp(now=time.time() - 600), 401, "outside the accepted window"),
        ("stamped in the future", lambda: erp(now=time.time() + 600), 401, "outside the accepted window"),
        ("timestamp in milliseconds", lambda: header("x-crmsync-timestamp", str(int(time.time() * 1000))), 401,
         "outside the accepted window"),
        ("timestamp negative", lambda: header("x-crmsync-timestamp", "-5"), 401, "Unix seconds"),
        ("timestamp huge", lambda: header("x-crmsync-timestamp", "9" * 400), 401, "outside the accepted window"),
        ("unknown object", lambda: erp(object="payroll"), 400, "unknown object"),
        ("ids empty", lambda: erp(ids=[]), 400, "non-empty list"),
        ("too many ids", lambda: erp(ids=[f"C{i:06d}" for i in range(51)]), 413, "more than 50 ids"),
        ("unknown event", lambda: erp(event="truncate"), 400, "event must be one of"),
        ("event_id too long", lambda: erp(event_id="e" * 201), 400, "event_id"),
        ("id longer than any system id", lambda: erp(ids=["C" * 300]), 400, "too long"),
    ]


@pytest.mark.parametrize(("name", "make", "status", "reason"), _erp_cases(), ids=[c[0] for c in _erp_cases()])
async def test_erp_notices_that_fail_verification_are_refused(service, name, make, status, reason):
    headers, body = make()
    await assert_rejected(service, "erp_db", headers, body, status, reason)


# -- the receiver's own checks, for every system -------------------------------------------------------------
@pytest.mark.parametrize("system", sorted(VALID))
async def test_bodies_over_the_limit_are_refused_declared_or_streamed(service, system):
    headers, _ = VALID[system]()
    big = b'{"pad": "' + b"x" * (MAX_BODY + 10) + b'"}'
    await assert_rejected(service, system, headers, big, 413, "body larger than")

    async def chunks():  # no Content-Length: the limit must hold while reading
        for _ in range(10):
            yield b" " * 1000
        yield b"{}"

    before = service.counts()
    response = await service.client.post(f"/webhooks/{system}", content=chunks(), headers=headers)
    assert response.status_code == 413 and service.counts() == before


CONTENT_TYPES = ["text/plain", "application/x-www-form-urlencoded", "application/xml", "", "application/jsonp",
                 "multipart/form-data; boundary=x", "text/json"]
NOT_JSON = {
    "empty": b"", "broken": b"{not json", "not-utf8": b"\xff\xfe{}", "two-documents": b"{}" * 3,
    "nan-unclosed": b'{"a": NaN', "chinese-unclosed": '{"名": "华为"'.encode(),
    # Nested deeper than the parser's recursion limit, yet under the body limit.
    "nested-arrays": b"[" * 2000 + b"]" * 2000, "nested-objects": b'{"a":' * 1000 + b"1" + b"}" * 1000,
}


@pytest.mark.parametrize("system", sorted(VALID))
async def test_wrong_content_types_are_refused(service, system):
    headers, body = VALID[system]()
    for content_type in CONTENT_TYPES:
        wrong = {k: v for k, v in headers.items() if k != "content-type"} | {"content-type": content_type}
        await assert_rejected(service, system, wrong, body, 400, "Content-Type")


@pytest.mark.parametrize("system", sorted(VALID))
async def test_invalid_json_is_refused(service, system):
    headers, _ = VALID[system]()
    for name, body in NOT_JSON.items():
        response = await post(service, system, headers, body)
        assert response.status_code == 400, (name, response.status_code, response.text)
    assert service.counts() == (0, 0)


@pytest.mark.parametrize(
    "path",
    ["/webhooks/nosuchsystem", "/webhooks/" + "s" * 5000, "/webhooks/%00", "/webhooks/..%2F..%2Fstatus",
     "/webhooks/深圳", "/webhooks/ZOHO", "/webhooks/zoho%20"],
)
async def test_unknown_systems_are_404(service, path):
    headers, body = zoho()
    before = service.counts()
    response = await service.client.post(path, content=body, headers=headers)
    assert response.status_code == 404, response.text
    assert service.counts() == before


@pytest.mark.parametrize("system", ["fx_polled", "erp_polled"])
async def test_systems_without_notifications_refuse_deliveries(service, system):
    """A system configured for polling only has no receiver: 404, not a 500 or a stored delivery."""
    headers, body = apl() if system == "fx_polled" else erp()
    await assert_rejected(service, system, headers, body, 404)


async def test_other_methods_are_not_allowed(service):
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        response = await service.client.request(method, "/webhooks/zoho")
        assert response.status_code == 405, method
    assert service.counts() == (0, 0)


async def test_rejections_are_counted_and_echo_no_secret(service):
    texts = []
    for make, system in ((lambda: zoho(token="wrong"), "zoho"), (lambda: fx_open(sig="0" * 40), "fx_open"),
                         (lambda: apl(secret="x" * 20), "fx_apl"), (lambda: erp(secret="nope"), "erp_db")):
        headers, body = make()
        texts.append((await post(service, system, headers, body)).text)
    metrics = await service.client.get("/metrics", headers={"authorization": "Bearer hostile-ops-token"})
    for system in ("zoho", "fx_open", "fx_apl", "erp_db"):
        assert f'crmsync_webhook_deliveries_total{{result="rejected",system="{system}"}} 1.0' in metrics.text
    everything = "\n".join(texts) + metrics.text
    for secret in (ZOHO_TOKEN, FX_TOKEN, FX_AES_KEY, APL_SECRET, ERP_SECRET):
        assert secret not in everything


@BOTH_BACKENDS
@pytest.mark.parametrize("system", sorted(VALID))
async def test_stored_deliveries_keep_no_credential(service, system):
    """Zoho puts the channel token in the body: the inbox keeps the delivery (for tracing) without it,
    and no other stored row (inbox headers, job payload) carries any of the secrets either."""
    from sqlalchemy import select

    from config.secrets import iter_secrets
    from sync_engine.logs import register_secret
    from sync_engine.state.models import InboxEntry, Job

    for secret in iter_secrets(service.runtime.config):  # what `crmsync serve` does on start
        register_secret(secret)
    headers, body = VALID[system]()
    assert (await post(service, system, headers | {"x-forwarded-note": APL_SECRET}, body)).status_code == 200
    with service.runtime.store.read() as s:
        entry = s.scalars(select(InboxEntry)).one()
        stored = json.dumps([entry.body, entry.headers, [j.payload for j in s.scalars(select(Job))]], ensure_ascii=False)
    for secret in (ZOHO_TOKEN, FX_TOKEN, FX_AES_KEY, APL_SECRET, ERP_SECRET):
        assert secret not in stored, stored
        assert json.dumps(secret)[1:-1] not in stored, stored  # nor JSON-escaped (Ω in the Zoho token)
    if system == "zoho":
        kept = json.loads(entry.body)
        assert kept["token"] == "***" and kept["ids"] == ["3652397000000649013"] and kept["channel_id"] == ZOHO_CHANNEL


@BOTH_BACKENDS
async def test_the_longest_acceptable_ids_are_stored_on_every_backend(service):
    """255-character ids (the column's size) pass, and their job's lock key still fits its column."""
    headers, body = apl(ids=("6" * 255,), event_id="long-1")
    assert (await post(service, "fx_apl", headers, body)).status_code == 200
    headers, body = erp(ids=["C" * 255], event_id="long-2")
    assert (await post(service, "erp_db", headers, body)).status_code == 200
    headers, body = apl(ids=("6" * 256,), event_id="long-3")
    await assert_rejected(service, "fx_apl", headers, body, 400, "id too long")
    assert service.counts() == (2, 2)


@BOTH_BACKENDS
@pytest.mark.parametrize("system", ["fx_apl", "erp_db"])
async def test_control_characters_in_ids_are_refused(service, system):
    """PostgreSQL text and JSONB cannot hold NUL: an id carrying one must be a 400, not a 500."""
    for i, bad in enumerate(["C\u0000123", "C\u0001", "C\n1", "\u202eC1", "C\ud800"]):
        headers, body = (apl(override={"ids": [bad], "eventId": f"ctl-{i}"}) if system == "fx_apl"
                         else erp(ids=[bad], event_id=f"ctl-{i}"))
        await assert_rejected(service, system, headers, body, 400, "control character")


@BOTH_BACKENDS
async def test_control_characters_in_event_ids_are_refused(service):
    headers, body = apl(override={"eventId": "evt\u0000nul"})
    await assert_rejected(service, "fx_apl", headers, body, 400, "control character")
    headers, body = apl(ids=("65f0c3a1b2c3d4e5f6a7b8c9", "深圳华为"), event_id="unicode-ids-are-fine")
    assert (await post(service, "fx_apl", headers, body)).status_code == 200


@pytest.mark.parametrize(("system", "window_ms"), [("fx_open", 500_000), ("fx_apl", 300_000)])
async def test_an_accepted_fxiaoke_push_replayed_after_its_clock_window_is_refused(service, system, window_ms):
    """The very bytes of a push accepted at the edge of its clock window, sent again once the window has
    passed: refused (401), and nothing more is stored than the one delivery."""
    stamp = _now_ms() - window_ms + 2_500  # accepted now, outside the window 2.5 s from now
    headers, body = fx_open(stamp_ms=stamp, event_id="replayed") if system == "fx_open" else apl(
        stamp_ms=stamp, event_id="AccountObj:x:update:replayed")
    assert (await post(service, system, headers, body)).status_code == 200
    assert service.counts() == (1, 1)
    deadline = time.monotonic() + 30
    while True:  # inside the window a replay is the known delivery (200); past it, a refusal
        response = await post(service, system, headers, body)
        if response.status_code != 200 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert response.status_code == 401 and "clock window" in response.json()["error"], response.text
    assert service.counts() == (1, 1)
