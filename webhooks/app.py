"""The HTTP side of crmsync: webhook receivers and ops routes, in one FastAPI app.

Ops routes (everything but ``/webhooks`` and ``/healthz``) require
``Authorization: Bearer <server.ops_token>`` when a token is configured; the
status page also accepts ``?token=`` so a browser can open it.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError

from sync_engine.runtime import Runtime
from sync_engine.service import WebhookIntake
from sync_engine.state import migrate
from sync_engine.state.errors import StateStoreError
from sync_engine.state.queue import JobQueue
from sync_engine.status import collect_status

from .page import render_status_page
from .receiver import webhook_router

UNAUTHORIZED: dict[int | str, dict[str, Any]] = {401: {"description": "server.ops_token is set and was not given"}}
UNAVAILABLE: dict[int | str, dict[str, Any]] = {503: {"description": "The state database cannot be reached"}}

log = logging.getLogger(__name__)


def create_app(
    runtime: Runtime,
    *,
    queue: JobQueue | None = None,
    next_runs: Callable[[], dict[str, str | None]] | None = None,
) -> FastAPI:
    queue = queue or JobQueue(runtime.store)
    intake = WebhookIntake(runtime, queue)
    metrics = runtime.metrics
    token = runtime.config.server.ops_token.get_secret_value() if runtime.config.server.ops_token else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await asyncio.to_thread(intake.close)  # deliveries already received are written before we stop

    app = FastAPI(
        lifespan=lifespan,
        title="crmsync",
        version="0.1.0",
        description="Webhook receivers for Zoho CRM, Fxiaoke and ERP triggers, and the ops routes of crmsync.",
    )
    app.state.runtime = runtime

    async def state_unavailable(request: Request, exc: Exception) -> Response:
        # The state database went away while the process runs (the workers pause and resume on their
        # own): an answer that says so, not a 500 and a traceback.
        log.warning("%s %s: state database unavailable (%s)", request.method, request.url.path, type(exc).__name__)
        message = "state database unavailable; retry later"
        if request.url.path == "/":
            return HTMLResponse(f"<!doctype html><title>crmsync</title><h1>crmsync</h1><p>{message}</p>",
                                status_code=503, headers={"Retry-After": "5", "Refresh": "15"})
        return JSONResponse({"error": message}, status_code=503, headers={"Retry-After": "5"})

    app.add_exception_handler(SQLAlchemyError, state_unavailable)
    app.add_exception_handler(StateStoreError, state_unavailable)
    app.state.queue = queue
    app.state.intake = intake

    # Declared for the OpenAPI document (security scheme); the check below reads the header itself
    # so that the status page can take ?token= too.
    bearer = HTTPBearer(auto_error=False, description="server.ops_token")

    def require_token(request: Request, _credentials: Any = Depends(bearer)) -> None:  # noqa: B008
        if token is None:
            return
        supplied = request.headers.get("authorization", "")
        supplied = supplied[7:] if supplied.lower().startswith("bearer ") else request.query_params.get("token", "")
        if not hmac.compare_digest(supplied.encode(), token.encode()):
            raise HTTPException(401, "ops token required", headers={"WWW-Authenticate": "Bearer"})

    app.include_router(
        webhook_router(
            intake,
            max_body_bytes=runtime.config.server.max_body_bytes,
            count=lambda system, result: metrics.webhooks.labels(system, result).inc(),
            observe_ack=lambda system, seconds: metrics.webhook_ack.labels(system).observe(seconds),
        )
    )

    @app.get("/healthz", tags=["ops"], summary="The process is alive")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], summary="Database reachable, migrations at head, no system refusing our credentials",
             dependencies=[Depends(require_token)], responses={**UNAUTHORIZED, 503: {"description": "Not ready"}})
    def readyz() -> JSONResponse:
        checks: dict[str, Any] = {}
        try:
            runtime.store.check()
            checks["database"] = "ok"
            checks["migrations"] = "ok" if migrate.is_at_head(runtime.store.engine) else "behind"
        except Exception as exc:  # noqa: BLE001 - the answer is the report
            checks["database"] = f"unavailable: {type(exc).__name__}"
        try:
            failed = [s["name"] for s in collect_status(runtime)["systems"] if s["auth_state"] == "failed"]
        except Exception:  # noqa: BLE001
            failed = []
        checks["auth_failed"] = failed
        ready = checks.get("database") == "ok" and checks.get("migrations") == "ok" and not failed
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    def status() -> dict[str, Any]:
        return collect_status(runtime, next_runs=next_runs() if next_runs else None)

    @app.get("/status", tags=["ops"], summary="Per flow and per system health (JSON)", dependencies=[Depends(require_token)],
             responses={**UNAUTHORIZED, **UNAVAILABLE})
    def status_json() -> dict[str, Any]:
        return status()

    @app.get("/", tags=["ops"], summary="Status page for people", response_class=HTMLResponse,
             dependencies=[Depends(require_token)], responses={**UNAUTHORIZED, **UNAVAILABLE})
    def status_page(
        token: Annotated[str | None, Query(description="server.ops_token, for browsers (instead of the header)")] = None,
    ) -> HTMLResponse:
        return HTMLResponse(render_status_page(status()))

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics", dependencies=[Depends(require_token)],
             response_class=Response, responses={**UNAUTHORIZED, **UNAVAILABLE})
    def metrics_route() -> Response:
        counts = queue.counts()
        metrics.queue_depth.labels("queued").set(counts.queued)
        metrics.queue_depth.labels("scheduled").set(counts.scheduled)
        metrics.queue_depth.labels("running").set(counts.running)
        metrics.queue_depth.labels("dead").set(counts.dead)
        metrics.queue_oldest_age.set(counts.oldest_queued_age_seconds or 0)
        for flow in status()["flows"]:
            metrics.dead_letters.labels(flow["name"]).set(flow["dead_letters_open"])
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
