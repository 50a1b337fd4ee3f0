"""schemathesis against the app's own OpenAPI document, in process (ASGI): every route, requests
generated valid and invalid, with and without the ops token → never a 5xx, never an unhandled
exception. Examples are capped and derandomised so that the run is fast and the same every time.

Unsigned fuzz only reaches the verifiers' first checks, so each generated delivery is also sent
*signed*: a test-only middleware signs (APL, ERP), tokens (Zoho) or encrypts and signs (Fxiaoke
open platform) the generated body with the configured secrets, and the fuzz reaches parsing,
hint building and storage.

(schemathesis's own pytest plugin does not work with pytest 9 yet, so each operation's
Hypothesis strategy is driven here directly.)
"""
from __future__ import annotations

import json
import shutil
import textwrap
import time
from collections import Counter
from datetime import timedelta

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from config.loader import parse_config
from connectors.fxiaoke import push_apl, push_open_platform
from connectors.sql.webhook import sign as erp_sign
from sync_engine.runtime import Runtime
from sync_engine.state.db import StateStore
from sync_engine.state.models import Channel
from sync_engine.state.queue import JobQueue
from sync_engine.state.types import utc_now
from webhooks.app import create_app

from .conftest import (
    APL_SECRET,
    CONFIG,
    ERP_SECRET,
    FX_AES_KEY,
    FX_TOKEN,
    ZOHO_CHANNEL,
    ZOHO_TOKEN,
)

OPS_TOKEN = "hostile-ops-token"
OPERATIONS = [
    ("POST", "/webhooks/{system_name}"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/status"),
    ("GET", "/"),
    ("GET", "/metrics"),
]
#: Operations with parameters or a body, which negative (schema-violating) generation can target.
NEGATIVE = {"/webhooks/{system_name}", "/"}
EXAMPLES = {"/webhooks/{system_name}": 80}
SYSTEMS = ["zoho", "fx_open", "fx_apl", "fx_polled", "erp_db", "erp_polled"]
SIGN_HEADER = b"x-fuzz-sign"


def _signed(system: str, body: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """``body`` as the configured sender of ``system`` would send it."""
    now = time.time()
    if system == "fx_apl":
        stamp = str(int(now * 1000))
        return body, [(b"x-crmsync-timestamp", stamp.encode()),
                      (b"x-crmsync-signature", push_apl.sign(APL_SECRET, stamp, body).encode())]
    if system == "erp_db":
        stamp = str(int(now))
        return body, [(b"x-crmsync-timestamp", stamp.encode()),
                      (b"x-crmsync-signature", erp_sign(ERP_SECRET, stamp, body).encode())]
    if system == "zoho":
        try:
            payload = json.loads(body)
        except ValueError:
            return body, []
        if isinstance(payload, dict):
            body = json.dumps(payload | {"channel_id": ZOHO_CHANNEL, "token": ZOHO_TOKEN}).encode()
        return body, []
    if system == "fx_open":
        message = {"type": "Message", "content": body.decode("utf-8", "replace")}
        push = push_open_platform.build_push(message, token=FX_TOKEN, encoding_aes_key=FX_AES_KEY,
                                             time_stamp_ms=int(now * 1000))
        return json.dumps(push).encode(), []
    return body, []


class SignDeliveries:
    """ASGI middleware (tests only): requests carrying ``X-Fuzz-Sign`` are signed before the app sees them."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        headers = dict(scope.get("headers") or [])
        if scope["type"] != "http" or SIGN_HEADER not in headers or not scope["path"].startswith("/webhooks/"):
            return await self.app(scope, receive, send)
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        body, extra = _signed(scope["path"].split("/")[2], body)
        replaced = {b"content-length", b"x-crmsync-timestamp", b"x-crmsync-signature", SIGN_HEADER}
        scope = dict(scope, headers=[(k, v) for k, v in scope["headers"] if k not in replaced]
                     + extra + [(b"content-length", str(len(body)).encode())])
        delivered = False

        async def replay():
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


@pytest.fixture
def schema(tmp_path, connectors, migrated_sqlite):
    path = tmp_path / "state.db"
    shutil.copyfile(migrated_sqlite, path)
    url = f"sqlite:///{path}"
    config = parse_config(textwrap.dedent(CONFIG), "fuzz.yaml", environ={})
    config.state.url = url
    runtime = Runtime(config, store=StateStore.open(url), connectors=connectors, migrate_on_start=False)
    with runtime.store.write() as s:
        s.add(Channel(system="zoho", channel_id=ZOHO_CHANNEL, token=ZOHO_TOKEN, objects=["Accounts"],
                      expires_at=utc_now() + timedelta(days=1)))
    app = create_app(runtime, queue=JobQueue(runtime.store))
    yield schemathesis.openapi.from_asgi("/openapi.json", SignDeliveries(app))
    runtime.store.dispose()


def test_the_document_describes_every_route_fuzzed_here(schema):
    documented = {(op.method.upper(), op.path) for op in (r.ok() for r in schema.get_all_operations())}
    assert documented == set(OPERATIONS)
    webhook = schema["/webhooks/{system_name}"]["POST"].definition.raw
    assert "application/json" in webhook["requestBody"]["content"]
    assert {p["name"] for p in webhook["parameters"]} >= {"system_name", "X-Crmsync-Timestamp", "X-Crmsync-Signature"}
    body = webhook["requestBody"]["content"]["application/json"]["schema"]["anyOf"]
    assert {b["title"] for b in body} == {"Zoho CRM notification", "Fxiaoke open-platform push",
                                          "Fxiaoke APL function push", "ERP change notice"}
    raw = schema.raw_schema
    assert raw["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path in ("/status", "/metrics", "/readyz", "/"):
        assert raw["paths"][path]["get"]["security"] == [{"HTTPBearer": []}], path
        assert "401" in raw["paths"][path]["get"]["responses"], path
    assert [p["name"] for p in raw["paths"]["/"]["get"]["parameters"]] == ["token"]


def _cases(operation, mode):
    if "system_name" not in operation.path:
        return operation.as_strategy(generation_mode=mode)
    # Mostly configured systems (each with its own verifier), sometimes any name the fuzzer invents.
    named = st.sampled_from(SYSTEMS).flatmap(
        lambda name: operation.as_strategy(generation_mode=mode, path_parameters={"system_name": name}))
    return st.one_of(named, named, named, operation.as_strategy(generation_mode=mode))


@pytest.mark.parametrize(
    ("method", "path", "mode"),
    [(m, p, GenerationMode.POSITIVE) for m, p in OPERATIONS]
    + [(m, p, GenerationMode.NEGATIVE) for m, p in OPERATIONS if p in NEGATIVE],
    ids=lambda v: v.value if isinstance(v, GenerationMode) else v,
)
def test_no_route_answers_with_a_server_error(schema, method, path, mode):
    operation = schema[path][method]
    statuses: Counter[int] = Counter()

    @given(case=_cases(operation, mode))
    @settings(max_examples=EXAMPLES.get(path, 25), derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    def fuzz(case):
        # An unhandled exception in the app propagates out of the in-process call and fails the test.
        plain = case.call_and_validate(checks=[not_a_server_error])
        signed = case.call_and_validate(headers={"Authorization": f"Bearer {OPS_TOKEN}", "X-Fuzz-Sign": "1"},
                                        checks=[not_a_server_error])
        statuses.update([plain.status_code, signed.status_code])

    fuzz()
    assert statuses and max(statuses) < 500
    if path.startswith("/webhooks/") and mode is GenerationMode.POSITIVE:
        # The fuzz got past verification (stored deliveries), not only bounced off it.
        assert statuses[200] > 0 and statuses[401] > 0 and statuses[404] > 0, statuses
    print(method, path, mode.value, sorted(statuses.items()))
