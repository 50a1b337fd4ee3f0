"""A local Fxiaoke OpenAPI, faithful to the public contract (reference: fxiaoke-openapi.md).

* Both auth generations: ``/oauth2.0/token`` + Bearer/x-fs-ea/x-fs-userid headers and
  ``/cgi/corpAccessToken/get/V2`` + corpAccessToken/corpId/currentOpenUserId in the body.
  The same token comes back for the first 6,600/7,200 of its life, a new one after;
  an expired or unknown token answers 20016.
* ``thirdTraceId`` (a UUID4, new on every request) is required in the query string.
* Every answer is HTTP 200 with ``errorCode`` / ``errorMessage`` / ``errorDescription`` /
  ``traceId`` and ``data`` or ``dataId``.
* Query: limit ≤ 100, offset a multiple of limit, offset > 10,000 → 10013, ``total`` 0
  when ``find_explicit_total_num`` is false, null fields omitted, preset objects on
  ``/cgi/crm/v2/…`` and ``__c`` objects on ``/cgi/crm/custom/v2/…``.
* Writes: create → ``dataId``; update is partial and cannot change the owner;
  changeOwner; invalid (作废) then delete; recover.
* Per-interface throttle (100 per 20 s by default) answering 30004; a daily quota
  answering 30002; faults shaped like Fxiaoke's (HTTP 200 + errorCode).
* Change pushes in both styles to configured loopback URLs.

Behaviour the docs leave open is a switch (``PATCH /_admin/switches``):

==========================  ===============  ==================================================
switch                      default          meaning
==========================  ===============  ==================================================
rate_limit / rate_period    100 / 20         per-interface limit (calls / seconds, sliding)
token_rate_limit            10               token calls per minute
throttle_code               30004            code for a throttled call (14001 is the other candidate)
daily_quota                 None             calls per Beijing day before 30002
quota_exhausted             False            answer 30002 now
token_ttl                   7200             token life in seconds
invalid_in_query            when_filtered    invalid data in query results: include | exclude |
                                             when_filtered (only if the query filters life_status
                                             or is_deleted)
invalid_sets_is_deleted     True             作废 also sets is_deleted: true
limit_over_max              reject           limit > 100: reject | clamp
strict_object_paths         True             __c objects only on the custom paths and vice versa
require_trace_id            True             refuse calls without a UUID4 thirdTraceId
reject_reused_trace_id      True             refuse a thirdTraceId seen before
update_owner                ignore           owner in update: ignore | reject
unknown_fields              ignore           unknown fields in writes: ignore | reject
push_on_api_writes          False            also push changes made through the API
open_platform_push_url      None             where the open-platform push goes
apl_push_url                None             where the APL-function push goes
admin_delete_mode           invalid          admin delete: invalid (作废) | invalid_then_delete
approval_flow_objects       []               objects whose API creates (triggerApprovalFlow) start
                                             as life_status ineffective
opportunity_object          NewOpportunityObj  the active opportunity object in object/list
codes                       {}               overrides of the emulator's own error codes
clock_offset_seconds        0                the tenant's clock is this far ahead (+) / behind (-)
frozen_time                 None             ISO date-time with offset: every change gets this time
==========================  ===============  ==================================================
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ..emulation.admin import admin_router
from ..emulation.switches import CallLog, EmulatorMiddleware, Switches
from . import push_open_platform
from .emulator_admin import AdminFacade, fxiaoke_admin_router
from .emulator_api import Handler, OpenApiHandlers
from .emulator_push import PushSecrets, PushSender, is_loopback_url
from .emulator_schema import SYSTEM_USER
from .emulator_store import ApiError, Change, Store

BEIJING = ZoneInfo("Asia/Shanghai")
TOKEN_PATH = "/oauth2.0/token"
LEGACY_TOKEN_PATH = "/cgi/corpAccessToken/get/V2"
PRESET = "/cgi/crm/v2"
CUSTOM = "/cgi/crm/custom/v2"
DOCUMENTED_TOKEN_LIFE = 7200.0
SAME_TOKEN_SHARE = 6600.0 / 7200.0


@dataclass
class EmulatorConfig:
    app_id: str = "FSAID_131a6b2"
    app_secret: str = "emulator-app-secret-0000"
    permanent_code: str = "EMULATOR-PERMANENT-CODE"
    ea: str = "fs_emulator"
    corp_id: str = "FSCID_8C2A1E0F5B6D4A3F9E7C1B2D3A4F5E6D"
    seed: int | None = 0
    seed_count: int = 0
    latency_ms: float = 0.0
    error_rate: float = 0.0
    rate_limit: int = 100
    rate_period: float = 20.0
    token_ttl: float = DOCUMENTED_TOKEN_LIFE
    daily_quota: int | None = None
    push_token: str = "emulator-push-token"
    push_aes_key: str = field(default_factory=push_open_platform.new_encoding_aes_key)
    apl_secret: str = "emulator-apl-secret-0123456789"
    open_platform_push_url: str | None = None
    apl_push_url: str | None = None
    opportunity_object: str = "NewOpportunityObj"
    clock: Callable[[], float] = time.time

    def default_switches(self) -> dict[str, Any]:
        return {
            "rate_limit": self.rate_limit,
            "rate_period": self.rate_period,
            "token_rate_limit": 10,
            "throttle_code": 30004,
            "daily_quota": self.daily_quota,
            "quota_exhausted": False,
            "token_ttl": self.token_ttl,
            "invalid_in_query": "when_filtered",
            "invalid_sets_is_deleted": True,
            "limit_over_max": "reject",
            "strict_object_paths": True,
            "require_trace_id": True,
            "reject_reused_trace_id": True,
            "update_owner": "ignore",
            "unknown_fields": "ignore",
            "push_on_api_writes": False,
            "open_platform_push_url": self.open_platform_push_url,
            "apl_push_url": self.apl_push_url,
            "admin_delete_mode": "invalid",
            "approval_flow_objects": [],
            "opportunity_object": self.opportunity_object,
            "admin_user": "1001",
            "codes": {},
        }


@dataclass(slots=True)
class IssuedToken:
    value: str
    style: str  # current | legacy
    issued: float
    expires: float


class FxiaokeEmulator:
    """Everything the emulated tenant knows; ``app`` serves it."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        c = self.config
        if c.open_platform_push_url and not is_loopback_url(c.open_platform_push_url):
            raise ValueError("open_platform_push_url must be a loopback URL")
        if c.apl_push_url and not is_loopback_url(c.apl_push_url):
            raise ValueError("apl_push_url must be a loopback URL")
        push_open_platform.aes_key(c.push_aes_key)
        self.switches = Switches(latency_ms=c.latency_ms, error_rate=c.error_rate, seed=c.seed)
        self.switches.extra.update(c.default_switches())
        self.calls = CallLog()
        # The tenant's clock: the configured one, skewed or frozen by the shared clock switches.
        self.store = Store(
            ea=c.ea, seed=c.seed, clock=c.clock, skew=lambda: self.switches.clock_offset_seconds,
            frozen=lambda: frozen.timestamp() if (frozen := self.switches.frozen()) else None,
        )
        self.push = PushSender(
            PushSecrets(c.push_token, c.push_aes_key, c.apl_secret, c.app_id, c.ea),
            lambda: {"open_platform": self.switch("open_platform_push_url"), "apl": self.switch("apl_push_url")},
        )
        self.store.listen(self._on_change)
        self.handlers = OpenApiHandlers(self.store, self.switch)
        self._lock = threading.Lock()
        self._tokens: dict[str, IssuedToken] = {}
        self._latest: dict[str, IssuedToken] = {}
        self._windows: dict[str, deque[float]] = {}
        #: monotonic times of every call per path: all that arrived, and those let through
        self.arrivals: dict[str, list[float]] = {}
        self.accepted: dict[str, list[float]] = {}
        self.throttled: Counter[str] = Counter()
        self.token_calls: Counter[str] = Counter()
        self.token_overlaps = 0
        self._token_in_flight = 0
        self.answers: Counter[int] = Counter()
        self._trace_seen: set[str] = set()
        self._trace_order: deque[str] = deque()
        self._quota_day: str | None = None
        self.quota_used = 0
        self._trace_serial = 0
        if c.seed_count:
            self.store.seed(c.seed_count, opportunity_object=c.opportunity_object)
        self.app = self._build_app()

    # -- switches -----------------------------------------------------------------------------
    def switch(self, name: str) -> Any:
        return self.switches.extra.get(name)

    def sync_store(self) -> None:
        store = self.store
        store.codes.update(self.switch("codes") or {})
        store.invalid_sets_is_deleted = bool(self.switch("invalid_sets_is_deleted"))
        store.unknown_fields = str(self.switch("unknown_fields"))
        store.update_owner = str(self.switch("update_owner"))

    def _on_change(self, change: Change) -> None:
        if change.by_api and not self.switch("push_on_api_writes"):
            return
        self.push.submit(change)

    # -- envelope -------------------------------------------------------------------------------
    def _trace_id(self) -> str:
        with self._lock:
            self._trace_serial += 1
            serial = self._trace_serial
        return f"E-O.{self.config.ea}.{serial}-{uuid.uuid4().hex[:16]}"

    def ok(self, *, message: str = "OK", **extra: Any) -> JSONResponse:
        self.answers[0] += 1
        return JSONResponse(
            {"errorCode": 0, "errorMessage": message, "errorDescription": "success", "traceId": self._trace_id(),
             **extra}
        )

    def error(self, code: int, message: str, description: str | None = None, **extra: Any) -> JSONResponse:
        self.answers[code] += 1
        return JSONResponse(
            {
                "errorCode": code,
                "errorMessage": message,
                "errorDescription": description or message,
                "traceId": self._trace_id(),
                **extra,
            }
        )

    # -- gate checks ----------------------------------------------------------------------------
    def _check_trace_id(self, request: Request) -> None:
        if not self.switch("require_trace_id"):
            return
        raw = request.query_params.get("thirdTraceId", "")
        try:
            parsed = uuid.UUID(raw)
        except ValueError:
            raise ApiError(self.store.codes["param"], "thirdTraceId为必填项且须为UUID", "thirdTraceId is required") from None
        if parsed.version != 4:
            raise ApiError(self.store.codes["param"], "thirdTraceId须为UUID v4", "thirdTraceId must be a UUID v4")
        if self.switch("reject_reused_trace_id"):
            with self._lock:
                if raw in self._trace_seen:
                    raise ApiError(self.store.codes["param"], "thirdTraceId重复", "thirdTraceId must differ per request")
                self._trace_seen.add(raw)
                self._trace_order.append(raw)
                if len(self._trace_order) > 500_000:
                    self._trace_seen.discard(self._trace_order.popleft())

    def _throttle(self, path: str, limit: int, period: float) -> None:
        now = time.monotonic()
        with self._lock:
            self.arrivals.setdefault(path, []).append(now)
            window = self._windows.setdefault(path, deque())
            while window and window[0] <= now - period:
                window.popleft()
            if len(window) >= limit:
                self.throttled[path] += 1
                code = int(self.switch("throttle_code") or 30004)
                message = "秒频次超限" if code == 30004 else "接口调用超过限制"
                raise ApiError(code, message, f"more than {limit} calls in {period:g} s on {path}")
            window.append(now)
            self.accepted.setdefault(path, []).append(now)

    def _count_quota(self) -> None:
        if self.switch("quota_exhausted"):
            raise ApiError(30002, "当天访问频次超限（0点重新统计）", "daily quota exhausted")
        quota = self.switch("daily_quota")
        today = datetime.fromtimestamp(self.config.clock(), BEIJING).date().isoformat()
        with self._lock:
            if today != self._quota_day:
                self._quota_day, self.quota_used = today, 0
            if quota is not None and self.quota_used >= int(quota):
                raise ApiError(30002, "当天访问频次超限（0点重新统计）", "daily quota exhausted")
            self.quota_used += 1

    def _token(self, value: str | None, style: str) -> IssuedToken:
        with self._lock:
            token = self._tokens.get(value or "")
        if token is None or token.style != style or time.monotonic() >= token.expires:
            raise ApiError(20016, "corpAccessToken不存在或者已经过期", "the cropId,cropAccessToken or authorization is error")
        return token

    def _authenticate(self, request: Request, body: dict[str, Any]) -> tuple[str, str]:
        """(employee id, auth style) of the caller."""
        authorization = request.headers.get("authorization")
        if authorization is not None:
            if not authorization.startswith("Bearer "):
                raise ApiError(20016, "authorization格式错误", "authorization must be 'Bearer <token>'")
            self._token(authorization[len("Bearer "):], "current")
            if request.headers.get("x-fs-ea") != self.config.ea:
                raise ApiError(20017, "企业账号不匹配", "x-fs-ea does not match the token's ea")
            user = request.headers.get("x-fs-userid", "")
            if self.store.employees.resolve(user) != user or user == SYSTEM_USER:
                raise ApiError(self.store.codes["param"], "x-fs-userid不存在", "unknown employee id in x-fs-userid")
            return user, "current"
        corp_token = body.get("corpAccessToken")
        if not corp_token:
            raise ApiError(20017, "corpAccessToken为必填项，不能为空", "no credentials")
        self._token(str(corp_token), "legacy")
        if body.get("corpId") != self.config.corp_id:
            raise ApiError(20017, "corpId未找到", "corpId does not match")
        user = self.store.employees.from_open.get(str(body.get("currentOpenUserId") or ""))
        if user is None:
            raise ApiError(self.store.codes["param"], "currentOpenUserId不存在", "unknown currentOpenUserId")
        return user, "legacy"

    # -- tokens -----------------------------------------------------------------------------------
    def issue_token(self, style: str) -> IssuedToken:
        ttl = float(self.switch("token_ttl") or DOCUMENTED_TOKEN_LIFE)
        now = time.monotonic()
        with self._lock:
            latest = self._latest.get(style)
            if latest is not None and latest.value in self._tokens and now - latest.issued < ttl * SAME_TOKEN_SHARE:
                return latest
            token = IssuedToken(uuid.uuid4().hex.upper(), style, now, now + ttl)
            self._tokens[token.value] = token
            self._latest[style] = token
            return token

    def expire_tokens(self) -> int:
        with self._lock:
            count = len(self._tokens)
            self._tokens.clear()
            self._latest.clear()
            return count

    def _token_answer(self, request: Request, raw: bytes, style: str) -> JSONResponse:
        path = request.url.path
        self.token_calls[style] += 1
        try:
            self._check_trace_id(request)
            body = _json_body(raw, self.store.codes["param"])
            self._throttle(path, int(self.switch("token_rate_limit") or 10), 60.0)
            c = self.config
            if body.get("appId") != c.app_id or body.get("appSecret") != c.app_secret:
                raise ApiError(20006, "appId或appSecret错误", "appId or appSecret is wrong")
            if body.get("permanentCode") != c.permanent_code:
                raise ApiError(20015, "永久授权码错误", "permanentCode is wrong")
            if style == "current" and body.get("grantType") != "app_secret":
                raise ApiError(self.store.codes["param"], "grantType不支持", "grantType must be app_secret")
        except ApiError as exc:
            return self.error(exc.code, exc.message, exc.description, error="invalid_request",
                              error_description=exc.description)
        token = self.issue_token(style)
        expires_in = max(0, round(token.expires - time.monotonic()))
        if style == "current":
            return self.ok(
                message="success",
                openUserId=self.config.corp_id, accessToken=token.value, expiresIn=expires_in, appId=self.config.app_id,
                ea=self.config.ea,
            )
        return self.ok(message="success", corpAccessToken=token.value, corpId=self.config.corp_id,
                       expiresIn=expires_in)

    # -- API calls ----------------------------------------------------------------------------------
    async def api(self, request: Request, handler: Handler) -> JSONResponse:
        path = request.url.path
        try:
            self._check_trace_id(request)
            raw = await request.body()
            body = _json_body(raw, self.store.codes["param"])
            self.sync_store()
            self._throttle(path, int(self.switch("rate_limit") or 100), float(self.switch("rate_period") or 20))
            user, style = self._authenticate(request, body)
            self._count_quota()
            return self.ok(**handler(body, user, style))
        except ApiError as exc:
            return self.error(exc.code, exc.message, exc.description)

    # -- app ------------------------------------------------------------------------------------------
    def _fault(self, kind: str, request: Request) -> Response:
        if kind == "rate_limit":
            code = int(self.switch("throttle_code") or 30004)
            return self.error(code, "秒频次超限", "injected throttle")
        if kind == "timeout":
            return self.error(50009, "服务异常，如:超时", "injected timeout")
        return self.error(-1, "系统繁忙", "injected system error")

    def _build_app(self) -> FastAPI:
        @asynccontextmanager
        async def lifespan(_app: FastAPI):
            yield
            self.push.close()

        app = FastAPI(
            title="Fxiaoke OpenAPI emulator", lifespan=lifespan, docs_url="/_admin/docs",
            openapi_url="/_admin/openapi.json",
        )
        app.state.emulator = self

        def token_route(style: str):
            async def route(request: Request) -> JSONResponse:
                return self._token_answer(request, await request.body(), style)

            return route

        app.add_api_route(TOKEN_PATH, token_route("current"), methods=["POST"])
        app.add_api_route(LEGACY_TOKEN_PATH, token_route("legacy"), methods=["POST"])

        def api_route(handler: Handler):
            async def route(request: Request) -> JSONResponse:
                return await self.api(request, handler)

            return route

        for prefix, custom in ((PRESET, False), (CUSTOM, True)):
            for verb in ("query", "get", "create", "update", "invalid", "delete", "recover", "changeOwner"):
                app.add_api_route(f"{prefix}/data/{verb}", api_route(self.handler(verb, custom)), methods=["POST"])
        # the V1 batch invalidation that custom objects keep (V2 invalidates one id at a time)
        batch = api_route(self.handler("batch_invalid", True))
        app.add_api_route("/cgi/crm/custom/data/invalid", batch, methods=["POST"])
        app.add_api_route(f"{PRESET}/object/list", api_route(self.handlers.object_list), methods=["POST"])
        app.add_api_route(f"{PRESET}/object/describe", api_route(self.handlers.object_describe), methods=["POST"])

        app.include_router(admin_router(AdminFacade(self), self.switches, self.calls))
        app.include_router(fxiaoke_admin_router(self))

        @app.api_route("/{path:path}", methods=["POST"], include_in_schema=False)
        async def unknown(path: str) -> JSONResponse:
            return self.error(10006, "接口不存在", f"no such API /{path}")

        app.add_middleware(
            EmulatorMiddleware,
            switches=self.switches,
            calls=self.calls,
            fault_response=self._fault,
            fault_exempt=(TOKEN_PATH, LEGACY_TOKEN_PATH),
        )
        app.add_middleware(_TokenOverlapProbe, emulator=self)
        return app

    # -- ops ------------------------------------------------------------------------------------------
    def handler(self, verb: str, custom: bool) -> Handler:
        """The operation behind ``/cgi/crm[/custom]/v2/data/<verb>`` (also callable in-process)."""
        return self.handlers.handler(verb, custom)

    def call_times(self) -> dict[str, dict[str, list[float]]]:
        with self._lock:
            return {
                path: {"arrived": list(times), "accepted": list(self.accepted.get(path, []))}
                for path, times in self.arrivals.items()
            }

    def credentials(self) -> dict[str, Any]:
        c = self.config
        return {
            "app_id": c.app_id,
            "app_secret": c.app_secret,
            "permanent_code": c.permanent_code,
            "ea": c.ea,
            "corp_id": c.corp_id,
            "user_id": "1000",
            "open_user_id": self.store.employees.to_open["1000"],
            "push_token": c.push_token,
            "push_encoding_aes_key": c.push_aes_key,
            "apl_secret": c.apl_secret,
        }

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "records": self.store.counts(),
                "tokens_alive": len(self._tokens),
                "token_calls": dict(self.token_calls),
                "token_overlaps": self.token_overlaps,
                "quota_used_today": self.quota_used,
                "throttled": dict(self.throttled),
                "answers_by_code": {str(k): v for k, v in self.answers.items()},
                "accepted_calls": {path: len(times) for path, times in self.accepted.items()},
            }

    def reset(self) -> None:
        self.store.reset()
        self.expire_tokens()
        with self._lock:
            self._windows.clear()
            self.arrivals.clear()
            self.accepted.clear()
            self.throttled.clear()
            self.token_calls.clear()
            self.answers.clear()
            self.token_overlaps = 0
            self.quota_used = 0
        self.push.clear()

    def max_calls_in_window(self, path: str, period: float, *, accepted_only: bool = False) -> int:
        """Most calls that arrived on ``path`` inside any window of ``period`` seconds."""
        with self._lock:
            times = sorted((self.accepted if accepted_only else self.arrivals).get(path, []))
        best, start = 0, 0
        for end, t in enumerate(times):
            while times[start] <= t - period:
                start += 1
            best = max(best, end - start + 1)
        return best


class _TokenOverlapProbe:
    """Counts token calls that overlap another one (the docs forbid concurrent token calls)."""

    def __init__(self, app: ASGIApp, *, emulator: FxiaokeEmulator) -> None:
        self.app = app
        self.emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in (TOKEN_PATH, LEGACY_TOKEN_PATH):
            await self.app(scope, receive, send)
            return
        e = self.emulator
        with e._lock:
            if e._token_in_flight:
                e.token_overlaps += 1
            e._token_in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            with e._lock:
                e._token_in_flight -= 1


def _json_body(raw: bytes, param_code: int) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ApiError(param_code, "请求体不是合法的JSON", "body must be UTF-8 JSON") from None
    if not isinstance(body, dict):
        raise ApiError(param_code, "请求体必须是JSON对象", "body must be a JSON object")
    return body


def create_app(config: EmulatorConfig | None = None, **overrides: Any) -> FastAPI:
    """The emulator's ASGI app; ``app.state.emulator`` is the :class:`FxiaokeEmulator`."""
    if config is None:
        config = EmulatorConfig(**overrides)
    elif overrides:
        raise TypeError("pass either a config or keyword overrides")
    return FxiaokeEmulator(config).app
