"""A thin async client for the K/3 Cloud WebAPI: one method per operation crmsync uses.

Every call goes through :meth:`KingdeeClient.call`, which holds the rules that
are the same for all operations:

* the login session's cookies ride along; an answer saying the session is gone
  (HTTP 200, MsgCode 1 or the session-lost message) triggers one shared re-login
  and exactly one retry of the call;
* transport failures, HTTP 5xx/429 and "call limit" MsgCodes are retried with
  backoff (:func:`connectors.http.with_retries`);
* a *write* whose request may have reached the server but whose answer was lost
  (read timeout, dropped connection, HTTP 500) is never blindly re-sent - that
  could save a record twice. It raises :class:`WriteOutcomeUnknown` and the
  caller checks what landed.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import httpx

from .. import jsontext
from ..base import CallObserver
from ..errors import AuthError, ConnectorConfigError, ConnectorError, RateLimited, TransientError
from ..http import ApiClient, RetryPolicy, with_retries
from ..ratelimit import TokenBucket
from .protocol import MsgCode, Stub
from .responses import OperationStatus, is_session_lost, query_error, status_of
from .session import Session
from .settings import KingdeeSettings

log = logging.getLogger(__name__)

_READ_STUBS = frozenset({Stub.EXECUTE_BILL_QUERY, Stub.VIEW, Stub.QUERY_BUSINESS_INFO})
_AUTH_CODES = frozenset({MsgCode.NO_PERMISSION, MsgCode.LICENCE, MsgCode.ADMIN_LOGIN_FORBIDDEN})
#: Transport failures that prove the request never left (safe to re-send even a create).
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class WriteOutcomeUnknown(ConnectorError):
    """A write was sent but no usable answer came back: it may or may not have been applied."""

    retryable = True


class _SessionLost(Exception):
    def __init__(self, generation: int) -> None:
        super().__init__("login session lost")
        self.generation = generation


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot send {type(value).__name__} to Kingdee")


def encode(body: Any) -> bytes:
    return jsontext.dumps(body, _json_default)


class KingdeeClient:
    def __init__(
        self,
        settings: KingdeeSettings,
        *,
        system: str,
        observer: CallObserver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.system = system
        self.http = ApiClient(
            system,
            base_url=settings.site_url,
            timeout=settings.timeout_seconds,
            concurrency=settings.concurrency,
            observer=observer,
            transport=transport,
        )
        self.policy = RetryPolicy(
            attempts=settings.retry.attempts,
            base_seconds=settings.retry.base_seconds,
            cap_seconds=settings.retry.cap_seconds,
            total_seconds=settings.retry.total_seconds,
        )
        self.session = Session(settings, self.http, self.policy, system)
        self.bucket = TokenBucket(settings.max_calls_per_minute, 60.0) if settings.max_calls_per_minute else None
        self.session_losses = 0

    async def aclose(self) -> None:
        await self.http.aclose()

    # -- the one way to call ----------------------------------------------
    async def call(self, stub: Stub, body: dict[str, Any], *, idempotent: bool = True) -> Any:
        relogged = False
        while True:
            try:
                return await with_retries(lambda: self._attempt(stub, body, idempotent), self.policy)
            except _SessionLost as lost:
                self.session_losses += 1
                if relogged:
                    raise AuthError(
                        f"{stub.op}: the ERP dropped the login session again right after logging in",
                        code="MsgCode 1", system=self.system) from None
                await self.session.relogin(lost.generation)
                relogged = True

    async def _attempt(self, stub: Stub, body: dict[str, Any], idempotent: bool) -> Any:
        ticket = await self.session.current()
        if self.bucket is not None:
            await self.bucket.acquire()
        try:
            response = await self.http.request(
                "POST", stub.path, endpoint=stub.op, content=encode(body),
                headers={"Content-Type": "application/json; charset=utf-8", "Cookie": ticket.cookie_header},
            )
        except TransientError as exc:
            if not idempotent and not isinstance(exc.__cause__, _NOT_SENT):
                raise WriteOutcomeUnknown(f"{stub.op}: {exc.message}; the write may or may not have been applied",
                                          code=exc.code, system=self.system) from exc
            raise
        self._check_http(stub, response, idempotent)
        payload = self._decode(stub, response)
        status = status_of(payload)
        if status is not None and not status.success:
            if is_session_lost(status, self.settings.session_lost_messages):
                raise _SessionLost(ticket.generation)
            if status.msg_code in self.settings.rate_limit_msg_codes and not status.successes:
                raise RateLimited(f"{stub.op}: call limit reached ({status.message})",
                                  code=f"MsgCode {status.msg_code}", system=self.system)
            if status.msg_code in self.settings.transient_msg_codes and stub in _READ_STUBS:
                raise TransientError(f"{stub.op}: {status.message}", code=f"MsgCode {status.msg_code}",
                                     system=self.system)
            if status.msg_code in _AUTH_CODES:
                raise AuthError(f"{stub.op}: {status.message}", code=f"MsgCode {status.msg_code}",
                                system=self.system)
        return payload

    def _check_http(self, stub: Stub, response: httpx.Response, idempotent: bool) -> None:
        code = response.status_code
        if code < 400:
            return
        if code == 429:
            retry_after = response.headers.get("Retry-After")
            raise RateLimited(f"{stub.op} answered HTTP 429", code="429", system=self.system,
                              retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None)
        if code == 503:
            # Refused at the door (app pool down/recycling): nothing was executed.
            raise TransientError(f"{stub.op} answered HTTP 503", code="503", system=self.system)
        if code >= 500:
            if not idempotent:
                raise WriteOutcomeUnknown(f"{stub.op} answered HTTP {code}; the write may or may not have been applied",
                                          code=str(code), system=self.system)
            raise TransientError(f"{stub.op} answered HTTP {code}", code=str(code), system=self.system)
        if code == 404:
            raise ConnectorConfigError(f"{stub.op} not found at {self.settings.site_url} (HTTP 404): check server_url",
                                       code="404", system=self.system)
        raise ConnectorError(f"{stub.op} answered HTTP {code}", code=str(code), system=self.system)

    def _decode(self, stub: Stub, response: httpx.Response) -> Any:
        try:
            return json.loads(response.content)
        except ValueError:
            text = response.text.strip()
            # The official SDK reports server-side failures as text starting "response_error:".
            raise ConnectorError(f"{stub.op} answered with something that is not JSON: {text[:120]!r}",
                                 code="not_json", system=self.system) from None

    # -- reading ----------------------------------------------------------
    async def query(
        self,
        form_id: str,
        field_keys: Sequence[str],
        *,
        filter: str = "",
        order: str = "",
        start_row: int = 0,
        limit: int = 0,
        top: int = 0,
    ) -> list[list[Any]]:
        """ExecuteBillQuery: rows in FieldKeys order. A wrapped error raises, never comes back as a row."""
        data = {"FormId": form_id, "FieldKeys": ",".join(field_keys), "FilterString": filter,
                "OrderString": order, "TopRowCount": top, "StartRow": start_row, "Limit": limit, "SubSystemId": ""}
        payload = await self.call(Stub.EXECUTE_BILL_QUERY, {"data": data})
        failure = query_error(payload) or (status_of(payload) if isinstance(payload, dict) else None)
        if failure is not None:
            raise self._query_failure(form_id, failure)
        if not isinstance(payload, list) or any(not isinstance(row, list) for row in payload):
            raise ConnectorError(f"ExecuteBillQuery on {form_id} answered an unexpected shape", system=self.system)
        width = len(field_keys)
        for row in payload:
            if len(row) != width:
                raise ConnectorError(
                    f"ExecuteBillQuery on {form_id} answered rows of {len(row)} values for {width} field keys",
                    system=self.system)
        return payload

    def _query_failure(self, form_id: str, status: OperationStatus) -> ConnectorError:
        message = f"ExecuteBillQuery on {form_id} failed: {status.message}"
        code = f"MsgCode {status.msg_code}"
        if status.msg_code in (MsgCode.FIELD_NOT_FOUND, MsgCode.FORM_ID_EMPTY):
            return ConnectorConfigError(message, code=code, system=self.system)
        return ConnectorError(message, code=code, system=self.system)

    async def view(self, form_id: str, *, id: str | None = None, number: str | None = None) -> dict[str, Any] | None:
        data = {"CreateOrgId": 0, "Number": number or "", "Id": id or "", "IsSortBySeq": "false"}
        payload = await self.call(Stub.VIEW, {"formid": form_id, "data": data})
        status = status_of(payload)
        if status is not None and not status.success:
            if status.msg_code == MsgCode.DATA_NOT_FOUND:
                return None
            raise ConnectorError(f"View {form_id} failed: {status.message}", code=f"MsgCode {status.msg_code}",
                                 system=self.system)
        result = (payload.get("Result") or {}).get("Result") if isinstance(payload, dict) else None
        return result if isinstance(result, dict) else None

    async def business_info(self, form_id: str) -> dict[str, Any]:
        payload = await self.call(Stub.QUERY_BUSINESS_INFO, {"data": {"FormId": form_id}})
        status = status_of(payload)
        if status is None or not status.success:
            raise ConnectorError(f"QueryBusinessInfo {form_id} failed: {status.message if status else 'no status'}",
                                 system=self.system)
        data = status.result.get("NeedReturnData")
        if not isinstance(data, dict):
            raise ConnectorError(f"QueryBusinessInfo {form_id}: no metadata in the answer", system=self.system)
        return data

    # -- writing ----------------------------------------------------------
    async def save(self, form_id: str, data: dict[str, Any], *, batch: bool, creates: bool) -> OperationStatus:
        """Save (one ``Model``) or BatchSave (a list). ``creates`` marks calls that are unsafe to re-send."""
        stub = Stub.BATCH_SAVE if batch else Stub.SAVE
        payload = await self.call(stub, {"formid": form_id, "data": data}, idempotent=not creates)
        return self._status(stub, form_id, payload)

    async def operate(self, stub: Stub, form_id: str, ids: Sequence[str]) -> OperationStatus:
        """Submit / Audit / UnAudit / Delete by internal ids (Ids win over Numbers on the server)."""
        data = {"CreateOrgId": 0, "Numbers": [], "Ids": ",".join(ids)}
        payload = await self.call(stub, {"formid": form_id, "data": data})
        return self._status(stub, form_id, payload)

    def _status(self, stub: Stub, form_id: str, payload: Any) -> OperationStatus:
        status = status_of(payload)
        if status is None:
            raise ConnectorError(f"{stub.op} {form_id} answered without a ResponseStatus", system=self.system)
        return status
