"""A local K/3 Cloud WebAPI (金蝶云星空) for tests, benchmarks and the demo - a simulator, not the ERP.

It follows the wire contract in ``../shared/reference/erp.md`` §1:
``POST /K3Cloud/{stub}.common.kdsvc`` (path case-insensitive, as on IIS), JSON
bodies in the SDK shape (``{"formid", "data"}``, ``data`` as object or JSON
string) and the older ``{"parameters": [...]}`` shape; logins by
``AuthService.ValidateUser`` and ``AuthService.LoginByAppSecret`` that set the
``kdservice-sessionid`` and ``ASP.NET_SessionId`` cookies; every answer HTTP 200
with a ``ResponseStatus`` (ExecuteBillQuery errors wrapped as
``[[{"Result": …}]]``), including the session-lost answer once a session
expires. Behaviour the sources leave open is a run-time switch (see
:data:`connectors.kingdee.emulator_store.SWITCH_DEFAULTS`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ..emulation.admin import admin_router
from ..emulation.switches import CallLog, EmulatorMiddleware, Switches
from .emulator_query import QueryError
from .emulator_sessions import Credentials
from .emulator_store import KingdeeStore, RowFailure, Saved, StoreError
from .protocol import SESSION_LOST_MESSAGE, SITE, MsgCode, Stub

DEFAULT_CREDENTIALS = Credentials(
    acct_id="65f1c0de2a9b3e",
    username="crmsync",
    password="Kd-emulator-2024",
    app_id="300123_emulatorKd3/W+crmsync",
    app_secret="0f6b2d1c9a8e4b7f95c3d2e1a0b9c8d7",
)

_PATHS = {f"/{SITE}/{stub.path}".lower(): f"/{SITE}/{stub.path}" for stub in Stub}
_AUTH_PREFIX = f"/{SITE}/Kingdee.BOS.WebApi.ServicesStub.AuthService"


class CanonicalPath:
    """IIS routes case-insensitively (clients write /k3cloud/ and /K3Cloud/); map paths to one spelling."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            canonical = _PATHS.get(scope["path"].lower())
            if canonical and canonical != scope["path"]:
                scope = {**scope, "path": canonical, "raw_path": canonical.encode()}
        await self.app(scope, receive, send)


@dataclass
class EmulatorState:
    store: KingdeeStore
    switches: Switches
    calls: CallLog
    credentials: Credentials


# -- answers ---------------------------------------------------------------------
def _status(*, errors: list[dict[str, Any]] | None = None, successes: list[dict[str, Any]] | None = None,
            msg_code: int = 0) -> dict[str, Any]:
    errors = errors or []
    return {"ErrorCode": 500 if errors else 0, "IsSuccess": not errors, "Errors": errors,
            "SuccessEntitys": successes or [], "SuccessMessages": [], "MsgCode": msg_code if errors else 0}


def _failure(msg_code: int, message: str, field: str | None = None) -> dict[str, Any]:
    return _status(errors=[{"FieldName": field, "Message": message, "DIndex": 0}], msg_code=msg_code)


def _answer(stub: Stub, status: dict[str, Any], **extra: Any) -> JSONResponse:
    body: Any = {"Result": {"ResponseStatus": status, **extra}}
    if stub == Stub.EXECUTE_BILL_QUERY:
        body = [[body]]  # the query service wraps its errors as one row holding one value
    return JSONResponse(body)


def _rows(saved: list[Saved], failed: list[RowFailure]) -> dict[str, Any]:
    errors = [{"FieldName": e.field, "Message": e.message, "DIndex": f.index} for f in failed for e in f.errors]
    code = failed[0].errors[0].code if failed else 0
    successes = [{"Id": s.pk, "Number": s.number, "DIndex": s.index} for s in saved]
    return _status(errors=errors, successes=successes, msg_code=code)


# -- request bodies ------------------------------------------------------------------
def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise StoreError(MsgCode.PARAMETER, "参数不是有效的JSON字符串") from None
    return value


def _parameters(body: dict[str, Any]) -> list[Any] | None:
    for key, value in body.items():
        if key.lower() == "parameters":
            value = _json(value)
            if not isinstance(value, list):
                raise StoreError(MsgCode.PARAMETER, "parameters必须是数组")
            return value
    return None


def _form_and_data(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    params = _parameters(body)
    if params is not None:
        form_id = str(params[0]) if len(params) > 1 else ""
        data = _json(params[-1]) if params else None
    else:
        folded = {k.lower(): v for k, v in body.items()}
        form_id = str(folded.get("formid") or "")
        data = _json(folded.get("data"))
    if not isinstance(data, dict):
        raise StoreError(MsgCode.PARAMETER, "参数data格式不正确")
    if not form_id:
        form_id = str(next((v for k, v in data.items() if k.lower() == "formid"), "") or "")
    return form_id, data


def _login_args(stub: Stub, body: dict[str, Any]) -> dict[str, Any]:
    params = _parameters(body)
    if params is not None:
        if stub == Stub.VALIDATE_USER:
            names = ("acct", "username", "password", "lcid")
        else:
            names = ("acct", "username", "app_id", "app_secret", "lcid")
        return dict(zip(names, params, strict=False))
    folded = {k.lower(): v for k, v in body.items()}
    return {"acct": folded.get("acctid"), "username": folded.get("username"), "password": folded.get("password"),
            "app_id": folded.get("appid"), "app_secret": folded.get("appsecret"), "lcid": folded.get("lcid")}


# -- the app -------------------------------------------------------------------------
def create_app(
    *,
    credentials: Credentials = DEFAULT_CREDENTIALS,
    seed: int | None = 0,
    seed_count: int = 0,
    latency_ms: float = 0.0,
    error_rate: float = 0.0,
    session_ttl: float = 1800.0,
    timezone: str = "Asia/Shanghai",
) -> FastAPI:
    """The emulator app; ``app.state.kingdee`` (:class:`EmulatorState`) gives tests the store and switches."""
    switches = Switches(latency_ms=latency_ms, error_rate=error_rate, seed=seed)
    switches.extra["session_ttl"] = session_ttl
    calls = CallLog()
    store = KingdeeStore(credentials, switches, timezone=timezone)
    if seed_count:
        store.seed(seed_count)
    state = EmulatorState(store=store, switches=switches, calls=calls, credentials=credentials)

    app = FastAPI(title="Kingdee K/3 Cloud WebAPI emulator", docs_url="/_admin/docs", openapi_url="/_admin/openapi.json")
    app.state.kingdee = state
    app.include_router(admin_router(store, switches, calls))

    def fault(kind: str, request: Request) -> Response:
        is_query = request.url.path.endswith(Stub.EXECUTE_BILL_QUERY.path)
        if kind == "rate_limit":
            if store.switch("rate_limit_fault") == "http429":
                return PlainTextResponse("Too Many Requests", status_code=429, headers={"Retry-After": "1"})
            return _answer(Stub.EXECUTE_BILL_QUERY if is_query else Stub.SAVE,
                           _failure(MsgCode.CALL_LIMIT, "接口调用次数超过限制，请稍后再试"))
        if kind == "timeout":
            return PlainTextResponse("Gateway Timeout", status_code=504)
        return HTMLResponse("<html><body><h2>500 - 内部服务器错误。</h2></body></html>", status_code=500)

    for stub in Stub:
        app.add_api_route(f"/{SITE}/{stub.path}", _handler(state, stub), methods=["POST"], name=stub.op,
                          include_in_schema=False)

    app.add_middleware(EmulatorMiddleware, switches=switches, calls=calls, fault_response=fault,
                       fault_exempt=(_AUTH_PREFIX,))
    app.add_middleware(CanonicalPath)  # outermost: call counts see canonical routes
    return app


def _handler(state: EmulatorState, stub: Stub):
    store = state.store

    async def handle(request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw.decode("utf-8-sig")) if raw.strip() else {}
        except (UnicodeDecodeError, ValueError):
            return PlainTextResponse("Unexpected character encountered while parsing value.", status_code=500)
        if not isinstance(body, dict):
            return PlainTextResponse("Cannot deserialize the current JSON array into the request object.",
                                     status_code=500)
        try:
            if stub in (Stub.VALIDATE_USER, Stub.LOGIN_BY_APP_SECRET):
                answer, session = store.login(stub.op, _login_args(stub, body))
                response = JSONResponse(answer)
                if session is not None:
                    response.set_cookie("kdservice-sessionid", session.session_id, path="/", httponly=True)
                    response.set_cookie("ASP.NET_SessionId", session.aspnet_id, path="/", httponly=True)
                return response
            if stub == Stub.LOGOUT:
                store.logout(dict(request.cookies))
                return JSONResponse(True)
            if not store.session_valid(dict(request.cookies)):
                return _answer(stub, _failure(MsgCode.CONTEXT_LOST, SESSION_LOST_MESSAGE))
            return _dispatch(store, stub, body)
        except (StoreError, QueryError) as exc:
            return _answer(stub, _failure(exc.msg_code, exc.message))

    return handle


def _dispatch(store: KingdeeStore, stub: Stub, body: dict[str, Any]) -> Response:
    form_id, data = _form_and_data(body)
    if stub == Stub.EXECUTE_BILL_QUERY:
        if form_id and not any(k.lower() == "formid" for k in data):
            data = {**data, "FormId": form_id}
        return JSONResponse(store.query(data))
    if stub in (Stub.SAVE, Stub.BATCH_SAVE):
        saved, failed = store.save(form_id, data, batch=stub == Stub.BATCH_SAVE)
        first = saved[0] if saved else None
        return _answer(stub, _rows(saved, failed), Id=first.pk if first else "", Number=first.number if first else "",
                       NeedReturnData=[{} for _ in saved])
    if stub in (Stub.SUBMIT, Stub.AUDIT, Stub.UNAUDIT, Stub.DELETE):
        done, failed = store.operate(stub.op, form_id, data)
        return _answer(stub, _rows(done, failed))
    if stub == Stub.VIEW:
        return _answer(stub, _status(), Result=store.view(form_id, data))
    if stub == Stub.QUERY_BUSINESS_INFO:
        return _answer(stub, _status(), NeedReturnData=store.business_info(form_id))
    raise StoreError(MsgCode.OPERATION_EMPTY, f"不支持的操作 {stub.op}")


def print_banner(host: str, port: int, credentials: Credentials, echo=print) -> None:
    """What a developer needs to point crmsync at this emulator (its own test credentials, nothing else)."""
    echo(f"Kingdee K/3 Cloud WebAPI emulator (a simulator, not the ERP) on http://{host}:{port}/{SITE}/")
    echo("Accepted credentials:")
    echo(f"  acct_id:    {credentials.acct_id}")
    echo(f"  username:   {credentials.username}")
    echo(f"  password:   {credentials.password}      (auth: password  -> AuthService.ValidateUser)")
    echo(f"  app_id:     {credentials.app_id}")
    echo(f"  app_secret: {credentials.app_secret}      (auth: app_secret -> AuthService.LoginByAppSecret)")
    echo(f"Admin API: http://{host}:{port}/_admin/ (seed, records, switches, expire-tokens)")
