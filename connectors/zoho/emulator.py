"""A local emulator of the Zoho CRM REST API (v2 … v8) and Zoho Accounts.

Serves what crmsync (and Airbyte's Zoho source, for the comparison bench) use:

* ``POST /oauth/v2/token`` (refresh grant; query string or form body) and ``/revoke``;
* ``/crm/{version}/org`` (organisation and edition);
* ``/crm/{version}/{module}`` list, get, insert, update, upsert, delete, ``/deleted``,
  ``/actions/count``; ``/settings/modules``, ``/settings/fields``; ``/actions/watch``;

with Zoho's status codes, error bodies and limits (50 fields, 200 per page, 2,000
records without ``page_token``, 100,000 per token sequence, 100 records per write),
digit-string ids, date-times in the org's time-zone offset, notification callbacks
to registered channels, and the shared ``/_admin`` API. Behaviour the reference
marks UNCONFIRMED is a switch (:data:`connectors.zoho.emulator_store.DEFAULT_SWITCHES`);
the clock switches (``clock_offset_seconds``, ``frozen_time``) are shared by every emulator
(``connectors/emulation/README.md``).

Run it with ``crmsync emulator zoho --port 8555`` or in-process::

    emu = ZohoEmulator(seed=100)
    with serve_in_thread(emu.app) as server: ...
"""
from __future__ import annotations

import json
import re
import time
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, HTTPException, Request
from starlette.responses import Response
from starlette.routing import Match

from connectors.emulation.admin import admin_router
from connectors.emulation.switches import CallLog, EmulatorMiddleware, Switches

from .emulator_auth import Throttle, ThrottleMiddleware, TokenRegistry
from .emulator_paging import PageTokens, TokenState
from .emulator_schema import UI_USER
from .emulator_seed import Seeder
from .emulator_store import DEFAULT_SWITCHES, SORT_FIELDS, ZohoStore
from .emulator_validate import error
from .emulator_watch import WatchRegistry

VERSIONS = {"v2", "v2.1", "v3", "v4", "v5", "v6", "v7", "v8"}
MAX_FIELDS = 50
MAX_PER_PAGE = 200
MAX_WRITE = 100
MAX_IDS = 100
JSON_TYPE = "application/json;charset=UTF-8"

DEFAULT_CLIENT_ID = "1000.CRMSYNCEMULATOR0000000000000"
DEFAULT_CLIENT_SECRET = "emulator-client-secret"
DEFAULT_REFRESH_TOKEN = "1000.emulator.refresh-token"


class Reply(Exception):
    """Answer the request with this status and Zoho-shaped body."""

    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def respond(status: int, body: Any = None, headers: dict[str, str] | None = None) -> Response:
    if body is None:
        return Response(status_code=status, headers=headers)
    content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(content, status_code=status, media_type=JSON_TYPE, headers=headers)


def bad(code: str, message: str, status: int = 400, **details: Any) -> Reply:
    return Reply(status, error(code, message, **details))


class ZohoEmulator:
    """The emulated org: its data, tokens, channels, switches and the ASGI app serving them.

    Implements :class:`connectors.emulation.admin.AdminStore` for the shared ``/_admin`` API.
    """

    def __init__(
        self,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        refresh_token: str = DEFAULT_REFRESH_TOKEN,
        seed: int = 0,
        random_seed: int | None = 0,
        latency_ms: float = 0.0,
        error_rate: float = 0.0,
        rate_limit: float | None = None,
        concurrency: int | None = None,
        token_ttl: int = 3600,
        time_zone: str = "+05:30",
        switches: dict[str, Any] | None = None,
    ) -> None:
        self.switches = Switches(latency_ms=latency_ms, error_rate=error_rate, seed=random_seed)
        self.switches.extra.update(
            {"token_ttl": token_ttl, "time_zone": time_zone, "rate_limit": rate_limit, "concurrency": concurrency}
        )
        if switches:
            self.switches.update(switches)
        self.calls = CallLog()
        self.base_url = ""  # learnt from the first request unless set (api_domain in token answers)
        self.store = ZohoStore(self.switches)
        self.watch = WatchRegistry(self.store, lambda: self.api_domain)
        self.store.sink = self.watch.on_events  # record changes fire the channels' callbacks
        self.tokens = TokenRegistry(self.switches, client_id=client_id, client_secret=client_secret, refresh_token=refresh_token)
        self.page_tokens = PageTokens()
        self.throttle = Throttle(self.switches)
        self.random_seed = random_seed
        self.seeder = Seeder(self.store, random_seed)
        if seed:
            self.seeder.seed(seed)
        self.app = build_app(self)

    @property
    def api_domain(self) -> str:
        return str(self.store.switch("api_domain") or self.base_url or "http://127.0.0.1")

    def credentials(self) -> dict[str, str]:
        return {"client_id": self.tokens.client_id, "client_secret": self.tokens.client_secret,
                "refresh_token": self.tokens.refresh_token}

    # -- AdminStore --------------------------------------------------------
    def object_names(self) -> list[str]:
        return list(self.store.modules)

    def seed(self, count: int, objects: list[str] | None = None) -> dict[str, int]:
        return self.seeder.seed(count, objects)

    def _admin_result(self, result: dict[str, Any], module: str) -> dict[str, Any]:
        if result.get("status") != "success":
            raise HTTPException(400, result)
        rid = int(result["details"]["id"])
        with self.store.lock:
            store = self.store.modules[module]
            return self.store.render(store, store.records[rid], None)

    def admin_create(self, object: str, data: dict[str, Any]) -> dict[str, Any]:
        return self._admin_result(self.store.insert(object, [data], UI_USER, source="admin")[0], object)

    def admin_update(self, object: str, record_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        if not self.store.exists(object, record_id):
            raise KeyError(record_id)
        return self._admin_result(self.store.update(object, [{**changes, "id": record_id}], UI_USER, source="admin")[0], object)

    def admin_delete(self, object: str, record_id: str) -> None:
        if not self.store.exists(object, record_id):
            raise KeyError(record_id)
        self.store.delete(object, [record_id], UI_USER, source="admin")

    def dump(self, object: str) -> list[dict[str, Any]]:
        with self.store.lock:
            store = self.store.modules[object]
            return [self.store.render(store, store.records[k[1]], None) for k in store.by_id.keys]

    def reset(self) -> None:
        self.store.reset()
        self.watch.clear()
        self.tokens.reset()
        self.page_tokens.clear()
        self.throttle.reset()
        self.seeder = Seeder(self.store, self.random_seed)

    def expire_tokens(self) -> int:
        return self.tokens.expire_all()


# ---------------------------------------------------------------------------
# request helpers


def _version(version: str) -> float:
    if version not in VERSIONS:
        raise bad("INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one", 404)
    return float(version[1:])


def _ims(request: Request) -> int | None:
    value = request.headers.get("if-modified-since")
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise bad("INVALID_DATA", "invalid data", param_name="If-Modified-Since", expected_data_type="datetime") from None
    if when.tzinfo is None:
        raise bad("INVALID_DATA", "invalid data", param_name="If-Modified-Since", expected_data_type="datetime")
    return int(when.timestamp())


def _int_param(request: Request, name: str, default: int, low: int = 1) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not re.fullmatch(r"\d+", raw) or int(raw) < low:
        raise bad("INVALID_DATA", "invalid data", param_name=name, expected_data_type="integer")
    return int(raw)


async def _json(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise bad("INVALID_DATA", "the input data is not a valid JSON") from None


def build_app(emu: ZohoEmulator) -> FastAPI:
    app = FastAPI(title="Zoho CRM emulator (crmsync)", docs_url="/_admin/docs", openapi_url="/_admin/openapi.json", redoc_url=None)
    app.state.emulator = emu
    store = emu.store

    @app.exception_handler(Reply)
    async def _reply(_request: Request, exc: Reply) -> Response:
        return respond(exc.status, exc.body, exc.headers)

    def learn_base_url(request: Request) -> None:
        if not emu.base_url:
            emu.base_url = str(request.base_url).rstrip("/")

    def authorize(request: Request, version: str) -> float:
        learn_base_url(request)
        number = _version(version)
        problem = emu.tokens.check(request.headers.get("authorization"))
        if problem == "AUTHENTICATION_FAILURE":
            raise bad("AUTHENTICATION_FAILURE", "Authentication failed", 401)
        if problem == "INVALID_TOKEN":
            raise bad("INVALID_TOKEN", "invalid oauth token", 401)
        return number

    def known(module: str) -> None:
        if module not in store.modules:
            raise bad("INVALID_MODULE", "the module name given seems to be invalid")

    # -- Zoho Accounts ------------------------------------------------------
    @app.post("/oauth/v2/token")
    async def token(request: Request) -> Response:
        learn_base_url(request)
        form = dict(request.query_params)
        body = await request.body()
        if body:
            form.update(parse_qsl(body.decode("utf-8", "replace")))
        return respond(200, emu.tokens.grant(form, emu.api_domain))

    @app.post("/oauth/v2/token/revoke")
    async def revoke(request: Request) -> Response:
        form = dict(request.query_params)
        body = await request.body()
        if body:
            form.update(parse_qsl(body.decode("utf-8", "replace")))
        emu.tokens.revoke(form.get("token", ""))
        return respond(200, {"status": "success"})

    # -- metadata -----------------------------------------------------------
    @app.get("/crm/{version}/settings/modules")
    async def modules(version: str, request: Request) -> Response:
        authorize(request, version)
        return respond(200, {"modules": [m.metadata() for m in store.modules_def.values()]})

    @app.get("/crm/{version}/settings/modules/{api_name}")
    async def module_meta(version: str, api_name: str, request: Request) -> Response:
        authorize(request, version)
        known(api_name)
        return respond(200, {"modules": [store.modules_def[api_name].metadata()]})

    @app.get("/crm/{version}/settings/fields")
    async def fields(version: str, request: Request) -> Response:
        authorize(request, version)
        module = request.query_params.get("module")
        if not module:
            raise bad("REQUIRED_PARAM_MISSING", "One of the expected parameters is missing", param_name="module")
        known(module)
        mdef = store.modules_def[module]
        ids = {name: m.id for name, m in store.modules_def.items()}
        return respond(200, {"fields": [f.metadata(mdef.id, ids) for f in mdef.fields]})

    @app.get("/crm/{version}/org")
    async def org(version: str, request: Request) -> Response:
        authorize(request, version)
        return respond(200, {"org": [_org_details(emu)]})

    # -- notifications --------------------------------------------------------
    @app.post("/crm/{version}/actions/watch")
    async def watch_enable(version: str, request: Request) -> Response:
        authorize(request, version)
        body = await _json(request)
        status, answer = emu.watch.subscribe((body or {}).get("watch") if isinstance(body, dict) else None, version, replace=False)
        return respond(status, answer)

    @app.put("/crm/{version}/actions/watch")
    async def watch_replace(version: str, request: Request) -> Response:
        authorize(request, version)
        body = await _json(request)
        status, answer = emu.watch.subscribe((body or {}).get("watch") if isinstance(body, dict) else None, version, replace=True)
        return respond(status, answer)

    @app.patch("/crm/{version}/actions/watch")
    async def watch_patch(version: str, request: Request) -> Response:
        authorize(request, version)
        body = await _json(request)
        status, answer = emu.watch.patch((body or {}).get("watch") if isinstance(body, dict) else None, version)
        return respond(status, answer)

    @app.get("/crm/{version}/actions/watch")
    async def watch_list(version: str, request: Request) -> Response:
        authorize(request, version)
        q = request.query_params
        status, answer = emu.watch.list(
            version, q.get("channel_id"), q.get("module"), _int_param(request, "page", 1),
            min(_int_param(request, "per_page", 200), MAX_PER_PAGE),
        )
        return respond(status, answer)

    @app.delete("/crm/{version}/actions/watch")
    async def watch_disable(version: str, request: Request) -> Response:
        authorize(request, version)
        raw = request.query_params.get("channel_ids")
        if not raw:
            raise bad("REQUIRED_PARAM_MISSING", "One of the expected parameters is missing", param_name="channel_ids")
        status, answer = emu.watch.disable([c.strip() for c in raw.split(",") if c.strip()], version)
        return respond(status, answer)

    # -- records ------------------------------------------------------------
    @app.get("/crm/{version}/{module}/actions/count")
    async def count(version: str, module: str, request: Request) -> Response:
        authorize(request, version)
        known(module)
        with store.lock:
            total = len(store.modules[module].records)
        return respond(200, {"count": str(total)})

    @app.get("/crm/{version}/{module}/deleted")
    async def deleted(version: str, module: str, request: Request) -> Response:
        authorize(request, version)
        known(module)
        emu.throttle.charge(1)  # the deleted-records list costs 2 credits
        kind = request.query_params.get("type", "all")
        if kind not in ("all", "recycle", "permanent"):
            raise bad("INVALID_DATA", "invalid data", param_name="type", supported_values=["all", "recycle", "permanent"])
        page = _int_param(request, "page", 1)
        per_page = min(_int_param(request, "per_page", MAX_PER_PAGE), MAX_PER_PAGE)
        ims = _ims(request)
        with store.lock:
            entries = store.deleted_list(module, kind, ims)
            chosen = entries[(page - 1) * per_page : page * per_page]
            data = [store.render_deleted(e) for e in chosen]
        if not data:
            return respond(304 if ims is not None and page == 1 else 204)
        more = page * per_page < len(entries)
        return respond(200, {"data": data, "info": {"per_page": per_page, "count": len(data), "page": page, "more_records": more}})

    @app.post("/crm/{version}/{module}/upsert")
    async def upsert(version: str, module: str, request: Request) -> Response:
        authorize(request, version)
        known(module)
        body = await _json(request)
        items = _write_items(body, emu)
        mdef = store.modules_def[module]
        allowed = list(dict.fromkeys([*mdef.duplicate_check, *(f.api_name for f in mdef.fields if f.unique)]))
        requested = body.get("duplicate_check_fields") if isinstance(body, dict) else None
        if requested is None:
            match = allowed
        elif not isinstance(requested, list) or not requested or not all(isinstance(f, str) and f in allowed for f in requested):
            raise bad("INVALID_DATA", "invalid data", api_name="duplicate_check_fields", supported_values=allowed)
        else:
            match = requested
        results = store.upsert(module, items, match, store.api_user())
        return _write_reply(results, emu, "upsert", version, len(items))

    @app.get("/crm/{version}/{module}/{record_id}")
    async def get_one(version: str, module: str, record_id: str, request: Request) -> Response:
        number = authorize(request, version)
        known(module)
        names = _fields(request, number, required=False)
        with store.lock:
            ms = store.modules[module]
            rec = ms.records.get(int(record_id)) if record_id.isdigit() else None
            data = store.render(ms, rec, names) if rec else None
        if data is None:
            if int(store.switch("missing_record_status") or 204) == 400:
                raise bad("INVALID_DATA", "the id given seems to be invalid", api_name="id")
            return respond(204)
        return respond(200, {"data": [data]})

    @app.put("/crm/{version}/{module}/{record_id}")
    async def update_one(version: str, module: str, record_id: str, request: Request) -> Response:
        authorize(request, version)
        known(module)
        items = _write_items(await _json(request), emu)
        if items and isinstance(items[0], dict):
            items = [{**items[0], "id": record_id}, *items[1:]]
        results = store.update(module, items[:1], store.api_user())
        return _write_reply(results, emu, "update", version, 1)

    @app.delete("/crm/{version}/{module}/{record_id}")
    async def delete_one(version: str, module: str, record_id: str, request: Request) -> Response:
        authorize(request, version)
        known(module)
        results = store.delete(module, [record_id], store.api_user())
        return _write_reply(results, emu, "delete", version, 1)

    @app.get("/crm/{version}/{module}")
    async def list_records(version: str, module: str, request: Request) -> Response:
        number = authorize(request, version)
        known(module)
        return _list(emu, request, version, number, module)

    @app.post("/crm/{version}/{module}")
    async def insert(version: str, module: str, request: Request) -> Response:
        authorize(request, version)
        known(module)
        items = _write_items(await _json(request), emu)
        results = store.insert(module, items, store.api_user())
        return _write_reply(results, emu, "insert", version, len(items))

    @app.put("/crm/{version}/{module}")
    async def update(version: str, module: str, request: Request) -> Response:
        authorize(request, version)
        known(module)
        items = _write_items(await _json(request), emu)
        results = store.update(module, items, store.api_user())
        return _write_reply(results, emu, "update", version, len(items))

    @app.delete("/crm/{version}/{module}")
    async def delete(version: str, module: str, request: Request) -> Response:
        authorize(request, version)
        known(module)
        raw = request.query_params.get("ids")
        if not raw:
            raise bad("REQUIRED_PARAM_MISSING", "One of the expected parameters is missing", param_name="ids")
        ids = [i.strip() for i in raw.split(",") if i.strip()]
        if len(ids) > MAX_WRITE:
            raise bad("LIMIT_EXCEEDED", "limit exceeded", limit=MAX_WRITE, param_name="ids")
        results = store.delete(module, ids, store.api_user())
        return _write_reply(results, emu, "delete", version, len(ids))

    # -- admin --------------------------------------------------------------
    app.include_router(admin_router(emu, emu.switches, emu.calls))

    @app.get("/_admin/deliveries", tags=["emulator admin"])
    def deliveries(wait: float = 0.0) -> list[dict]:
        if wait:
            emu.watch.wait_idle(min(wait, 30.0))
        return list(emu.watch.deliveries)

    @app.get("/_admin/channels", tags=["emulator admin"])
    def channels() -> list[dict]:
        return [{"channel_id": s.channel_id, "module": s.module, "events": sorted(s.events), "notify_url": s.notify_url,
                 "expires": store.fmt(s.expiry)} for s in emu.watch.subs.values()]

    @app.post("/_admin/expire-channels", tags=["emulator admin"])
    def expire_channels() -> dict:
        return {"expired": emu.watch.expire_all()}

    @app.post("/_admin/expire-page-tokens", tags=["emulator admin"])
    def expire_page_tokens() -> dict:
        emu.page_tokens.expire_all()
        return {"ok": True}

    @app.get("/_admin/stats", tags=["emulator admin"])
    def stats() -> dict:
        return {"tokens_issued": emu.tokens.issued, "throttled": emu.throttle.rejected,
                "peak_in_flight": emu.throttle.peak_in_flight, "credits_used": emu.throttle.credits_used(),
                "records": {m: len(s.records) for m, s in store.modules.items()}}

    # -- anything else ------------------------------------------------------
    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"], include_in_schema=False)
    async def unknown(path: str, request: Request) -> Response:
        scope = dict(request.scope)
        for route in app.router.routes:
            if getattr(route, "name", "") == "unknown":
                continue
            match, _ = route.matches(scope)
            if match == Match.PARTIAL:
                return respond(405, error("INVALID_REQUEST_METHOD", "The http request method type is not a valid one"))
        return respond(404, error("INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one"))

    def fault(kind: str, _request: Request) -> Response:
        if kind == "rate_limit":
            from .emulator_auth import too_many_requests

            status, body, headers = too_many_requests("too many requests", emu.switches)
            return Response(body, status_code=status, headers={k.decode(): v.decode() for k, v in headers})
        if kind == "timeout":
            # What a gateway in front of Zoho answers when the backend does not: an HTML page.
            return Response("<html><head><title>504 Gateway Time-out</title></head><body>504 Gateway Time-out</body></html>",
                            status_code=504, media_type="text/html")
        return respond(500, error("INTERNAL_ERROR", "Internal Server Error"))

    app.add_middleware(EmulatorMiddleware, switches=emu.switches, calls=emu.calls, fault_response=fault,
                       fault_exempt=("/oauth",))
    app.add_middleware(ThrottleMiddleware, throttle=emu.throttle, switches=emu.switches, calls=emu.calls)
    return app


#: Concurrency limit per edition (reference §4): the org answer names the edition the throttle enforces.
EDITION_BY_CONCURRENCY = {5: "free", 10: "standard", 15: "professional", 20: "enterprise", 25: "ultimate"}


def _org_details(emu: ZohoEmulator) -> dict[str, Any]:
    """``GET /org`` (Get Organization Data): the keys Zoho documents, for a paid org whose edition
    matches the emulated concurrency limit (clients such as Airbyte's source size their metadata
    calls from ``license_details``). The ``edition`` switch overrides it."""
    concurrency = emu.switches.extra.get("concurrency")
    edition = emu.store.switch("edition") or EDITION_BY_CONCURRENCY.get(int(concurrency or 20), "enterprise")
    offset = str(emu.store.switch("time_zone") or "+05:30")
    return {
        "id": "5725767000000021001", "company_name": "Zylker 深圳", "alias": None, "primary_email": "admin@zylker.example.com",
        "primary_zuid": "5725767000000411001", "zgid": "60010001", "domain_name": "org60010001", "website": "www.zylker.example.com",
        "phone": "+86 755 2878 0000", "mobile": None, "fax": None, "employee_count": "200", "description": None,
        "street": "科技园南路 8 号", "city": "深圳", "state": "广东", "zip": "518057", "country": "China", "country_code": "CN",
        "time_zone": "Asia/Shanghai" if offset == "+08:00" else "Asia/Kolkata", "currency": "Chinese Yuan Renminbi - CNY",
        "currency_symbol": "¥", "iso_code": "CNY", "currency_locale": "zh_CN", "mc_status": False,
        "gapps_enabled": False, "translation_enabled": True, "privacy_settings": False, "zia_portal_id": None,
        "photo_id": None,
        "license_details": {"paid": edition != "free", "paid_type": None if edition == "free" else edition,
                            "paid_expiry": None, "trial_type": None, "trial_expiry": None,
                            "users_license_purchased": 10},
    }


def _fields(request: Request, version: float, *, required: bool) -> list[str] | None:
    raw = request.query_params.get("fields")
    if raw is None or not raw.strip():
        if required and version >= 3:
            raise bad("REQUIRED_PARAM_MISSING", "One of the expected parameters is missing", param_name="fields")
        return None
    names = list(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    if len(names) > MAX_FIELDS:
        raise bad("LIMIT_EXCEEDED", "Fields limit exceeded.", limit=MAX_FIELDS, param_name="fields")
    return names


def _write_items(body: Any, emu: ZohoEmulator) -> list[Any]:
    if not isinstance(body, dict) or "data" not in body:
        raise bad("MANDATORY_NOT_FOUND", "required field not found", api_name="data", json_path="$.data")
    items = body["data"]
    if not isinstance(items, list):
        raise bad("INVALID_DATA", "invalid data", api_name="data", json_path="$.data", expected_data_type="jsonarray")
    if not items:
        raise bad("MANDATORY_NOT_FOUND", "required field not found", api_name="data", json_path="$.data")
    if len(items) > MAX_WRITE:
        raise bad("LIMIT_EXCEEDED", "limit exceeded", limit=MAX_WRITE, api_name="data", json_path="$.data")
    # Insert/update/upsert cost one credit per 10 records.
    emu.throttle.charge((len(items) + 9) // 10 - 1)
    return items


def _write_reply(results: list[dict[str, Any]], emu: ZohoEmulator, action: str, version: str, count: int) -> Response:
    ok = sum(1 for r in results if r.get("status") == "success")
    if ok == len(results):
        statuses = emu.store.switch("write_success_status") or DEFAULT_SWITCHES["write_success_status"]
        status = int(statuses.get(action, 200))
        if action == "insert" and version == "v2" and count > 1:
            status = int(emu.store.switch("v2_multi_insert_status") or 201)
    else:
        status = 207 if ok else 400
    return respond(status, {"data": results})


def _list(emu: ZohoEmulator, request: Request, version: str, number: float, module: str) -> Response:
    store = emu.store
    q = request.query_params
    ids_raw = q.get("ids")
    ids: list[int] | None = None
    if ids_raw:
        parts = [p.strip() for p in ids_raw.split(",") if p.strip()]
        if len(parts) > MAX_IDS:
            raise bad("LIMIT_EXCEEDED", "limit exceeded", limit=MAX_IDS, param_name="ids")
        if not all(p.isdigit() for p in parts):
            raise bad("INVALID_DATA", "invalid data", param_name="ids")
        ids = [int(p) for p in parts]
    names = _fields(request, number, required=ids is None)
    page_token = q.get("page_token")
    if page_token and q.get("page"):
        raise bad("AMBIGUITY_DURING_PROCESSING", "You cannot use both cvid and sort_by, and page and page_token",
                  ambiguity_due_to=["page", "page_token"])
    if q.get("cvid") and q.get("sort_by"):
        raise bad("AMBIGUITY_DURING_PROCESSING", "You cannot use both cvid and sort_by, and page and page_token",
                  ambiguity_due_to=["cvid", "sort_by"])
    sort_by = q.get("sort_by") or "id"
    if sort_by not in SORT_FIELDS:
        raise bad("INVALID_DATA", "invalid data", param_name="sort_by", supported_values=list(SORT_FIELDS))
    sort_order = q.get("sort_order") or "desc"
    if sort_order not in ("asc", "desc"):
        raise bad("INVALID_DATA", "invalid data", param_name="sort_order", supported_values=["asc", "desc"])
    per_page = min(_int_param(request, "per_page", MAX_PER_PAGE), MAX_PER_PAGE)
    page = _int_param(request, "page", 1)
    ims = _ims(request)
    signature = (version, module, tuple(names or ()), sort_by, sort_order, per_page, ims, tuple(ids or ()),
                 q.get("cvid"), q.get("converted"), q.get("approved"))
    keyset = store.switch("page_token_mode") == "keyset"
    cap = int(store.switch("page_token_record_limit") or 100_000)
    discrete = int(store.switch("discrete_page_limit") or 2000)
    with store.lock:
        view = store.view(module, sort_by=sort_by, desc=sort_order == "desc", ims=ims, ids=ids)
        if page_token:
            state = emu.page_tokens.get(page_token)
            if state is None:
                raise bad("INVALID_DATA", "invalid data", param_name="page_token")
            if emu.page_tokens.expired(state):
                raise bad("EXPIRED_VALUE", "The token given has expired.", param_name="page_token")
            if state.signature != signature:
                raise bad("TOKEN_BOUND_DATA_MISMATCH", "The page_token is bound to different parameters",
                          param_name="page_token")
            if state.served >= cap:
                raise bad("PAGINATION_LIMIT_EXCEEDED",
                          f"You can only get up to first {cap} records using page_token param.", limit=cap)
            offset = view.offset_after(state.last) if keyset and state.last else state.offset
            served = state.served
            size = min(per_page, cap - served)
        else:
            offset = (page - 1) * per_page
            if offset >= discrete:
                raise bad("DISCRETE_PAGINATION_LIMIT_EXCEEDED",
                          f"You can only get the first {discrete} records without using page_token param", limit=discrete)
            served = offset
            size = min(per_page, discrete - offset)
        keys, more = view.page(offset, size)
        ms = store.modules[module]
        data = [store.render(ms, ms.records[k[1]], names) for k in keys]
    if not data:
        return respond(304 if ims is not None and not page_token and page == 1 else 204)
    info: dict[str, Any] = {
        "call": False, "per_page": per_page, "next_page_token": None, "count": len(data), "sort_by": sort_by,
        "page": served // per_page + 1, "previous_page_token": page_token, "page_token_expiry": None,
        "sort_order": sort_order, "email": False, "more_records": more,
    }
    tokens_offered = version != "v2" or bool(store.switch("page_tokens_in_v2"))
    if more and tokens_offered:
        ttl = float(store.switch("page_token_ttl_seconds") or 86400)
        info["next_page_token"] = emu.page_tokens.issue(
            TokenState(signature, offset + len(data), keys[-1], served + len(data), time.time() + ttl)
        )
        info["page_token_expiry"] = store.fmt(int(time.time() + ttl))
    if version == "v2":
        info = {k: info[k] for k in ("per_page", "count", "page", "more_records", "next_page_token") if k in info}
        if not tokens_offered:
            info.pop("next_page_token")
    return respond(200, {"data": data, "info": info})


def create_app(**kwargs: Any) -> FastAPI:
    """The ASGI app of a new emulated org (``app.state.emulator`` is the :class:`ZohoEmulator`)."""
    return ZohoEmulator(**kwargs).app
