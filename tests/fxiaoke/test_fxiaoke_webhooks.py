"""Change notifications: known-good and tampered vectors for both push styles (signature,
AES decryption, clock window), and the emulator's pushes received end to end."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
import time

import httpx
import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
from pydantic import ValidationError

from connectors.emulation.server import serve_in_thread
from connectors.errors import ConnectorConfigError, WebhookRejected
from connectors.fxiaoke import push_apl, push_open_platform
from connectors.fxiaoke.plugin import plugin
from connectors.fxiaoke.push_apl import AplPushVerifier
from connectors.fxiaoke.push_open_platform import OpenPlatformPushVerifier

# -- the open platform's push: a fixed vector ---------------------------------------------------
TOKEN = "crmsync-test-token"
AES_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"  # base64 of bytes 0..31 without "="
STAMP, NONCE = "1718000000123", "n0nce42"
RECORD = "65f0c3a1b2c3d4e5f6a7b8c9"
INNER = {"MsgType": "event", "Event": "object_data_change", "eventId": "evt-0001", "objectApiName": "AccountObj",
         "dataIds": [RECORD], "action": "update", "timestamp": 1718000000000}
MESSAGE = {"type": "Message", "content": json.dumps(INNER, separators=(",", ":"))}
CONTENT = (
    "4j/AuRx71kQlxVlzbpsMWOi1dwRvH0VW7FR5XyMJsFJXHGfgbYFQ8nOkTBT2dknSDs7pvgStRFSwQ3/MsRUXY4GQZz6hW/WjL9M7Oae3ec8rwG5t95"
    "/VARIE2xxtrgHFbExiMXmoklVJn/RoI9IjkKIPnPpxf8ov5VNhemDpqx/w1zzk72+30LRrw9UGNRvovaBqIoFcQhQgg5pODVN5iotRamTkPLFSZTZ9f"
    "RorvD8+BCRD8jZr5fzOl9ZIr0nDvey4O8GiOePrG73q8gEurmMvdp1KnHt3OSjhOgCaJiCAH/hAP3QCmVNj3wYr4lWPAA0lsq64dRimz42sP6wBPqXr"
    "uuYtaZnqGyWx7WGhbpg74hpRUL5WH4ckFEXvNfkb"
)
SIG = "b0411f93fe856115153b32f4829a9851667b09b2"
NOW = 1718000000.123 + 10  # ten seconds after the push was stamped


def body(**fields: str) -> bytes:
    return json.dumps({"nonce": NONCE, "timeStamp": STAMP, "content": CONTENT, "sig": SIG, **fields}).encode()


def demo_encrypt(message: bytes, key_b64: str, prefix: bytes, suffix: bytes) -> str:
    """The official demo's algorithm, written independently of the module under test."""
    key = base64.b64decode(key_b64 + "=")
    padder = padding.PKCS7(256).padder()  # PKCS#7 to 32-byte blocks
    plain = padder.update(prefix + struct.pack(">I", len(message)) + message + suffix) + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(enc.update(plain) + enc.finalize()).decode()


def test_the_fixed_vector_matches_the_demo_algorithm():
    raw = json.dumps(MESSAGE, separators=(",", ":")).encode()
    assert demo_encrypt(raw, AES_KEY, b"0123456789abcdef", b"FSAID_131a6b2") == CONTENT
    assert hashlib.sha1("".join(sorted([TOKEN, STAMP, NONCE, CONTENT])).encode()).hexdigest() == SIG
    assert push_open_platform.decrypt(CONTENT, AES_KEY) == raw


def test_open_platform_known_good_vector_is_accepted_and_decrypted():
    delivery = OpenPlatformPushVerifier(TOKEN, AES_KEY).verify({}, body(), now=NOW)
    assert delivery.reply_body == "success" and delivery.reply_status == 200
    [hint] = delivery.hints
    assert (hint.object, hint.ids, hint.event) == ("AccountObj", [RECORD], "update")
    assert hint.occurred_at is not None and int(hint.occurred_at.timestamp() * 1000) == 1718000000000
    assert delivery.dedupe_key == "fxiaoke-open:evt-0001"


@pytest.mark.parametrize(
    ("change", "status", "reason"),
    [
        ({"content": CONTENT[:-8] + "AAAAAAA="}, 401, "bad signature"),  # content tampered
        ({"sig": "0" * 40}, 401, "bad signature"),
        ({"nonce": "other"}, 401, "bad signature"),
        ({"timeStamp": "1718000000124"}, 401, "bad signature"),
        ({"sig": ""}, 400, "missing sig"),
    ],
)
def test_open_platform_tampered_vectors_are_rejected(change, status, reason):
    with pytest.raises(WebhookRejected) as caught:
        OpenPlatformPushVerifier(TOKEN, AES_KEY).verify({}, body(**change), now=NOW)
    assert (caught.value.status, caught.value.reason) == (status, reason)


def test_open_platform_wrong_token_and_clock_window():
    with pytest.raises(WebhookRejected, match="bad signature"):
        OpenPlatformPushVerifier("another-token", AES_KEY).verify({}, body(), now=NOW)
    verifier = OpenPlatformPushVerifier(TOKEN, AES_KEY)
    stamped = int(STAMP) / 1000
    assert verifier.verify({}, body(), now=stamped + 499).hints
    assert verifier.verify({}, body(), now=stamped - 499).hints
    for skew in (501, -501):
        with pytest.raises(WebhookRejected, match="clock window") as caught:
            verifier.verify({}, body(), now=stamped + skew)
        assert caught.value.status == 401


def test_open_platform_signed_but_undecryptable_content_is_a_bad_request():
    other_key = base64.b64encode(bytes(range(100, 132))).decode().rstrip("=")
    with pytest.raises(WebhookRejected) as caught:
        OpenPlatformPushVerifier(TOKEN, other_key).verify({}, body(), now=NOW)
    assert caught.value.status == 400
    garbage = base64.b64encode(b"x" * 48).decode()
    signed = push_open_platform.signature(TOKEN, STAMP, NONCE, garbage)
    with pytest.raises(WebhookRejected) as caught:
        OpenPlatformPushVerifier(TOKEN, AES_KEY).verify({}, body(content=garbage, sig=signed), now=NOW)
    assert caught.value.status == 400
    with pytest.raises(WebhookRejected) as caught:
        OpenPlatformPushVerifier(TOKEN, AES_KEY).verify({}, b"not json", now=NOW)
    assert caught.value.status == 400


def test_open_platform_resends_share_a_dedupe_key_and_other_messages_carry_no_hints():
    verifier = OpenPlatformPushVerifier(TOKEN, AES_KEY)
    plain = {"type": "Message", "content": json.dumps({"MsgType": "event", "objectApiName": "ContactObj",
                                                       "dataIds": ["a1", "a2"], "action": "invalid"})}
    keys = set()
    for suffix in (b"", b"FSAID_131a6b2"):  # with and without the trailing appId
        push = push_open_platform.build_push(plain, token=TOKEN, encoding_aes_key=AES_KEY,
                                             time_stamp_ms=int(NOW * 1000), suffix=suffix)
        delivery = verifier.verify({}, json.dumps(push).encode(), now=NOW)
        keys.add(delivery.dedupe_key)
        assert [(h.object, h.ids, h.event) for h in delivery.hints] == [("ContactObj", ["a1", "a2"], "delete")]
    assert len(keys) == 1
    code = push_open_platform.build_push({"type": "PermanentCode", "content": "FSCOD_x"}, token=TOKEN,
                                         encoding_aes_key=AES_KEY, time_stamp_ms=int(NOW * 1000))
    delivery = verifier.verify({}, json.dumps(code).encode(), now=NOW)
    assert delivery.hints == [] and delivery.reply_body == "success"


# -- the APL-function push ----------------------------------------------------------------------
APL_SECRET = "crmsync-apl-secret-0123456789"
APL_STAMP = "1718000000000"
APL_BODY = (
    '{"version":1,"eventId":"AccountObj:65f0c3a1b2c3d4e5f6a7b8c9:update:1717999999000","objectApiName":"AccountObj",'
    '"ids":["65f0c3a1b2c3d4e5f6a7b8c9"],"event":"update","timestamp":1718000000000,"tenantId":"fs_emulator"}'
).encode()
APL_SIGNATURE = "v1=8e531d22f53aec58bbf10a1f6eeef9f370feb8e54e3a7657fe992da495d92195"
APL_NOW = 1718000000.0 + 5


def apl_headers(**overrides: str) -> dict[str, str]:
    headers = {"X-Crmsync-Timestamp": APL_STAMP, "X-Crmsync-Signature": APL_SIGNATURE,
               "Content-Type": "application/json; charset=utf-8"}
    headers.update(overrides)
    return headers


def test_apl_fixed_vector_is_hmac_sha256_over_timestamp_dot_body():
    mac = hmac.new(APL_SECRET.encode(), APL_STAMP.encode() + b"." + APL_BODY, hashlib.sha256).hexdigest()
    assert APL_SIGNATURE == "v1=" + mac
    headers, built = push_apl.build_push(APL_SECRET, object_api_name="AccountObj", ids=[RECORD], event="update",
                                         timestamp_ms=1718000000000, event_id=f"AccountObj:{RECORD}:update:1717999999000",
                                         tenant_id="fs_emulator")
    assert built == APL_BODY and headers["X-Crmsync-Signature"] == APL_SIGNATURE


def test_apl_known_good_vector_is_accepted_whatever_the_header_case():
    verifier = AplPushVerifier(APL_SECRET)
    for headers in (apl_headers(), {k.lower(): v for k, v in apl_headers().items()}):
        delivery = verifier.verify(headers, APL_BODY, now=APL_NOW)
        [hint] = delivery.hints
        assert (hint.object, hint.ids, hint.event) == ("AccountObj", [RECORD], "update")
        assert delivery.dedupe_key == f"fxiaoke-apl:AccountObj:{RECORD}:update:1717999999000"
        assert delivery.reply_body == "success"


@pytest.mark.parametrize(
    ("headers", "payload", "status"),
    [
        (apl_headers(), APL_BODY.replace(b"65f0c3a1", b"65f0c3a2"), 401),  # body tampered
        (apl_headers(**{"X-Crmsync-Timestamp": "1718000000001"}), APL_BODY, 401),  # timestamp tampered
        (apl_headers(**{"X-Crmsync-Signature": "v1=" + "0" * 64}), APL_BODY, 401),
        (apl_headers(**{"X-Crmsync-Signature": APL_SIGNATURE.replace("v1=", "")}), APL_BODY, 401),
        ({"X-Crmsync-Timestamp": APL_STAMP}, APL_BODY, 401),  # unsigned
    ],
)
def test_apl_tampered_vectors_are_rejected(headers, payload, status):
    with pytest.raises(WebhookRejected) as caught:
        AplPushVerifier(APL_SECRET).verify(headers, payload, now=APL_NOW)
    assert caught.value.status == status


def test_apl_wrong_secret_clock_window_and_malformed_bodies():
    with pytest.raises(WebhookRejected, match="bad signature"):
        AplPushVerifier("another-secret-0123456789").verify(apl_headers(), APL_BODY, now=APL_NOW)
    verifier = AplPushVerifier(APL_SECRET)
    stamped = int(APL_STAMP) / 1000
    assert verifier.verify(apl_headers(), APL_BODY, now=stamped + 299).hints
    with pytest.raises(WebhookRejected, match="clock window"):
        verifier.verify(apl_headers(), APL_BODY, now=stamped + 301)
    with pytest.raises(WebhookRejected, match="clock window"):
        verifier.verify(apl_headers(), APL_BODY, now=stamped - 301)
    for bad in (b"[1, 2]", b"{not json", json.dumps({"objectApiName": "AccountObj", "ids": []}).encode()):
        signed = apl_headers(**{"X-Crmsync-Signature": push_apl.sign(APL_SECRET, APL_STAMP, bad)})
        with pytest.raises(WebhookRejected) as caught:
            verifier.verify(signed, bad, now=APL_NOW)
        assert caught.value.status == 400
    with pytest.raises(ValueError):
        AplPushVerifier("short")


# -- settings and plugin wiring -------------------------------------------------------------------
def test_the_plugin_builds_the_verifier_the_settings_choose():
    base = {"app_id": "FSAID_1", "app_secret": "s", "permanent_code": "p"}
    op = plugin.settings_model.model_validate(
        {**base, "notifications": {"style": "open_platform", "token": TOKEN, "encoding_aes_key": AES_KEY}})
    assert isinstance(plugin.webhook_verifier("crm_cn", op), OpenPlatformPushVerifier)
    apl = plugin.settings_model.model_validate(
        {**base, "notifications": {"style": "apl_function", "apl_secret": APL_SECRET}})
    assert isinstance(plugin.webhook_verifier("crm_cn", apl), AplPushVerifier)
    with pytest.raises(ConnectorConfigError, match="no change notifications"):
        plugin.webhook_verifier("crm_cn", plugin.settings_model.model_validate(base))
    with pytest.raises(ValidationError, match="encoding_aes_key"):
        plugin.settings_model.model_validate({**base, "notifications": {"style": "open_platform", "token": "t",
                                                                        "encoding_aes_key": "short"}})
    with pytest.raises(ValidationError, match="apl_secret"):
        plugin.settings_model.model_validate({**base, "notifications": {"style": "apl_function"}})


# -- the emulator's pushes, received over loopback --------------------------------------------------
def receiver(verifier):
    app = FastAPI()
    got: list = []
    rejected: list = []

    @app.post("/hook")
    async def hook(request: Request) -> PlainTextResponse:
        try:
            delivery = verifier.verify(request.headers, await request.body(), now=time.time())
        except WebhookRejected as exc:
            rejected.append(exc.reason)
            return PlainTextResponse(exc.reason, status_code=exc.status)
        got.append(delivery)
        return PlainTextResponse(str(delivery.reply_body), status_code=delivery.reply_status)

    return app, got, rejected


def test_the_emulator_pushes_both_styles_on_user_changes(fx):
    creds = fx.emu.credentials()
    open_app, open_got, open_rejected = receiver(
        OpenPlatformPushVerifier(creds["push_token"], creds["push_encoding_aes_key"]))
    apl_app, apl_got, apl_rejected = receiver(AplPushVerifier(creds["apl_secret"]))
    fx.emu.store.seed(3, ["AccountObj"])
    rid = fx.emu.store.dump("AccountObj")[0]["_id"]
    with serve_in_thread(open_app) as open_srv, serve_in_thread(apl_app) as apl_srv:
        fx.switch(open_platform_push_url=f"{open_srv.url}/hook", apl_push_url=f"{apl_srv.url}/hook")
        with httpx.Client(base_url=fx.url) as admin:
            assert admin.patch(f"/_admin/records/AccountObj/{rid}", json={"tel": "010-62345678"}).status_code == 200
            made = admin.post("/_admin/records/ContactObj", json={"name": "赵敏", "account_id": rid}).json()
            assert admin.delete(f"/_admin/records/AccountObj/{rid}").status_code == 200  # a user's 作废
            assert admin.post("/_admin/fxiaoke/pushes/wait").json() == {"idle": True}
            log = admin.get("/_admin/fxiaoke/pushes").json()
    assert not open_rejected and not apl_rejected
    expected = [("AccountObj", [rid], "update"), ("ContactObj", [made["_id"]], "create"), ("AccountObj", [rid], "delete")]
    for got in (open_got, apl_got):
        assert [(d.hints[0].object, d.hints[0].ids, d.hints[0].event) for d in got] == expected
        assert len({d.dedupe_key for d in got}) == 3
    assert len(log) == 6 and all(entry["ok"] for entry in log)


def test_api_writes_push_only_when_switched_on(fx):
    app, got, _ = receiver(AplPushVerifier(fx.emu.credentials()["apl_secret"]))
    with serve_in_thread(app) as srv:
        fx.switch(apl_push_url=f"{srv.url}/hook")
        fx.emu.store.create("PartnerObj", {"name": "南京金桥物流有限公司"}, user="1000", by_api=True)
        assert fx.emu.push.wait_idle()
        assert got == []
        fx.switch(push_on_api_writes=True)
        fx.emu.store.create("PartnerObj", {"name": "苏州天成精密机械有限公司"}, user="1000", by_api=True)
        assert fx.emu.push.wait_idle()
    assert len(got) == 1 and got[0].hints[0].event == "create"


def test_push_targets_must_be_loopback(fx):
    fx.switch(apl_push_url="http://203.0.113.10/hook")
    fx.emu.store.create("PartnerObj", {"name": "西安宏达能源有限公司"}, user="1000", by_api=False)
    assert fx.emu.push.wait_idle()
    [entry] = fx.emu.push.log()
    assert entry["error"].startswith("refused") and entry["attempts"] == 0
