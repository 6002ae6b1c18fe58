"""The FastAPI application: routers, error mapping, body limit, audit log, and the dispatcher's lifetime.

The server writes everything private to its owner (umask 077: files 0600, folders 0700) while
it runs. The audit log (``ALLOCATOR_AUDIT_LOG``, default ``DATA_DIR/audit.log``) gets one JSON
line per call that needs a key: time, key id (null when none was valid), method, route, plan
id, status code.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from allocator.api.intake import TooLarge
from allocator.api.routes import manage, plans, regions, risk, solve, system, ui
from allocator.api.schemas import ErrorOut, PlanRequest
from allocator.api.settings import Settings
from allocator.api.store import open_store
from allocator.api.submission import Gate
from allocator.api.worker import Dispatcher, scrub, where_raised
from allocator.errors import InputError, InputMismatch, Issue
from allocator.version import __version__

log = logging.getLogger("allocator.api")
UNAUDITED = ("/v1/health", "/v1/backends", "/metrics", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/ui")

DESCRIPTION = """Plans poverty-alleviation money, packages and projects over HTTP.

Submit a scenario to `POST /v1/plans` (202 with a plan id), poll `GET /v1/plans/{id}`,
then read `/summary` and `/tables/{name}`. During the plan's years, upload a progress record
to `POST /v1/plans/{id}/progress` (plan against actual, households to watch) and re-plan the
remaining years with `POST /v1/plans/{id}/replan`. Every call but `/v1/health` and `/v1/backends`
needs `Authorization: Bearer KEY`; a key sees only its own region's plans. Bad input is
answered 422 with each problem's file, row, column and expected value. `GET /ui` is a web page
for planners doing all this from a browser (`?lang=zh` for Chinese).
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service for ``settings`` (default: read from ``ALLOCATOR_*`` environment variables)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        umask = os.umask(0o077)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        settings.data_dir.chmod(0o700)
        store = open_store(settings.database_url())
        dispatcher = Dispatcher(store, settings)
        app.state.settings, app.state.store, app.state.dispatcher = settings, store, dispatcher
        app.state.intake = Gate(settings.intake_workers, settings.intake_queue, "uploads")
        app.state.monitoring = Gate(settings.sync_workers, settings.progress_queue, "progress uploads")
        app.state.reports = anyio.CapacityLimiter(settings.sync_workers)  # report renderings at once
        app.state.audit = _audit_log(settings)
        dispatcher.start()
        try:
            yield
        finally:
            await run_in_threadpool(dispatcher.stop)
            for handler in app.state.audit.handlers:
                handler.close()
            os.umask(umask)

    app = FastAPI(title="allocator", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  docs_url="/docs", openapi_url="/openapi.json")
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(Audit)
    app.add_middleware(ContainErrors)
    app.add_exception_handler(InputError, _input_error)
    app.add_exception_handler(InputMismatch, _input_mismatch)
    app.add_exception_handler(RequestValidationError, _request_error)
    app.add_exception_handler(TooLarge, _too_large)
    app.add_exception_handler(405, _method_not_allowed)
    for module in (plans, manage, risk, solve, regions, system, ui):
        app.include_router(module.router)
    app.include_router(system.metrics_router)
    app.openapi = lambda: _openapi(app)
    return app


async def _input_error(request: Request, error: InputError) -> JSONResponse:
    """Bad input: 422 with every problem, as the command line lists them, server paths taken
    out (nothing is logged: the problems quote the data)."""
    issues = [issue.to_dict() for issue in error.issues]
    settings = getattr(request.app.state, "settings", None)
    body = ErrorOut(detail=f"{len(error.issues)} problem(s) in the input",
                    issues=scrub(issues, settings.data_dir) if settings else issues, truncated=error.truncated)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=422)


async def _input_mismatch(request: Request, error: InputMismatch) -> JSONResponse:
    """Inputs that do not belong together (a record of another plan): 409, naming both fingerprints."""
    body = ErrorOut(detail="the inputs do not belong together", issues=[issue.to_dict() for issue in error.issues],
                    truncated=error.truncated)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=409)


async def _request_error(request: Request, error: RequestValidationError) -> JSONResponse:
    """A malformed query, header or path: 422 in the same shape as bad input."""
    issues = [Issue("request", err["msg"], key=".".join(map(str, err["loc"]))) for err in error.errors()[:20]]
    return await _input_error(request, InputError(issues))


async def _too_large(request: Request, error: TooLarge) -> JSONResponse:
    return JSONResponse(ErrorOut(detail=str(error)).model_dump(), status_code=413)


async def _method_not_allowed(request: Request, error: Exception) -> JSONResponse:
    """405 whose Allow header lists every method of the path (each method is its own route)."""
    allowed = [method for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
               if any(route.matches({**request.scope, "method": method})[0] == Match.FULL
                      for route in request.app.router.routes)]
    return JSONResponse(ErrorOut(detail=f"method {request.method} not allowed here").model_dump(), status_code=405,
                        headers={"Allow": ", ".join(allowed)})


class ContainErrors:
    """A bug becomes a 500 with a plain body, logged by type and place only: no traceback, as
    an exception's message or values may quote personal data."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as error:
            log.error("internal error on %s %s: %s at %s", scope.get("method"), scope.get("path"),
                      type(error).__name__, where_raised(error))
            if scope["type"] == "http" and not started:
                await JSONResponse(ErrorOut(detail="internal error").model_dump(), status_code=500)(scope, receive,
                                                                                                      send)


def _audit_log(settings: Settings) -> logging.Logger:
    """The audit logger of this app: JSON lines appended to the audit file, nowhere else."""
    audit = logging.getLogger(f"allocator.audit.{id(settings)}")
    audit.propagate, audit.level = False, logging.INFO
    settings.audit_path().parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(settings.audit_path(), encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    audit.handlers = [handler]
    return audit


class Audit:
    """One audit line per call that needs a key: who (key id), what (method, route, plan id),
    and the outcome (status code). Ids and codes only, never data."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNAUDITED:
            await self.app(scope, receive, send)
            return
        status = 500

        async def tracked(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        finally:
            route = scope.get("route")
            audit = getattr(scope["app"].state, "audit", None)
            if audit is not None:
                audit.info(json.dumps({
                    "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "key_id": scope.get("state", {}).get("key_id"), "method": scope["method"],
                    "route": getattr(route, "path", None), "plan_id": scope.get("path_params", {}).get("plan_id"),
                    "status": status}))


class BodyLimit:
    """Refuses request bodies above ``max_bytes`` with 413, by Content-Length or while reading."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            response = JSONResponse(ErrorOut(detail=self._message()).model_dump(), status_code=413)
            await response(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, self._message())
            return message

        await self.app(scope, counted, send)

    def _message(self) -> str:
        return f"the request body is larger than {self.max_bytes:,} bytes (ALLOCATOR_MAX_REQUEST_BYTES)"


def _openapi(app: FastAPI) -> dict:
    """The OpenAPI document, with the schemas referenced by hand among the components (the
    submission routes read their body themselves, to take JSON or multipart)."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (PlanRequest, ErrorOut):  # referenced by hand in the submission body and error responses
            model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(model_schema.pop("$defs", {}))
            components[model.__name__] = model_schema
        app.openapi_schema = schema
    return app.openapi_schema
