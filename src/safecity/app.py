"""The server: one FastAPI application with every domain's router and the console."""

from __future__ import annotations

import importlib.util
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from safecity import __version__
from safecity.analytics import api as analytics_api
from safecity.analytics import service as analytics_service
from safecity.core import auth_api, events_api
from safecity.core.errors import Conflict, SafeCityError, invalid_input_from
from safecity.core.runtime import Runtime
from safecity.core.writer import shared_writer
from safecity.dispatch import api as dispatch_api
from safecity.dispatch.api import AvlIntakeFastPath
from safecity.dispatch.monitor import ResponseTimeMonitor
from safecity.geo import api as geo_api
from safecity.incidents import api as incidents_api
from safecity.incidents import service as incidents_service
from safecity.incidents.api import CallIntakeFastPath
from safecity.incidents.intake import CallIntake
from safecity.registry import api as registry_api
from safecity.video import api as video_api

log = logging.getLogger("safecity")


def install_error_handlers(app: FastAPI) -> None:
    """Every error is JSON `{error, message}` a person can act on; no stack trace leaves."""

    @app.exception_handler(SafeCityError)
    async def _safecity(_: Request, exc: SafeCityError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        err = invalid_input_from(list(exc.errors()))
        return JSONResponse(err.to_dict(), status_code=err.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 404 and message == "Not Found":
            message = "no such route; see /docs for the API"
        return JSONResponse(
            {"error": "http_error", "message": message},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> JSONResponse:
        # Services check codes and names before they insert; two requests with the same
        # code at the same moment (PostgreSQL takes both) both pass the check, and the
        # second one's insert hits the unique constraint: a conflict, not a server error.
        if not _unique_violation(exc):
            return await _unexpected(request, exc)
        err = Conflict(
            "another request stored the same code or name at the same moment; nothing was "
            "changed by this one: look up the stored record, or use another code"
        )
        return JSONResponse(err.to_dict(), status_code=err.status)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        ref = uuid.uuid4().hex[:12]
        log.exception("unhandled error %s on %s %s", ref, request.method, request.url.path)
        return JSONResponse(
            {
                "error": "internal_error",
                "message": f"internal error; nothing was changed by this request. Reference {ref} "
                "is in the server log",
            },
            status_code=500,
        )


def _unique_violation(exc: IntegrityError) -> bool:
    """Whether a unique constraint refused the row (PostgreSQL's SQLSTATE 23505, SQLite's
    message), not a missing reference or a NULL, which are bugs to report as such."""
    if getattr(exc.orig, "sqlstate", None) == "23505":
        return True
    return "UNIQUE constraint failed" in str(exc.orig)


def _telemetry_off() -> dict[str, Any]:
    """FastAPI's native OpenTelemetry (FastAPI 0.142 and later), where it can do anything.
    FastAPI asks the global OpenTelemetry providers on every request whether one was
    configured (about 2% of the server's time under the helpline bench); without the
    OpenTelemetry SDK installed no provider can be, so it is switched off. With the SDK,
    or on a FastAPI without it, FastAPI's defaults stand. Returns `FastAPI(...)` keywords."""
    if importlib.util.find_spec("opentelemetry.sdk") is not None:
        return {}
    try:
        from fastapi.telemetry import TelemetryConfig
    except ImportError:  # a FastAPI from before its native telemetry
        return {}
    return {"telemetry": TelemetryConfig(tracing=False, metrics=False, logs=False)}


def create_app(
    runtime: Runtime,
    *,
    with_console: bool = True,
    with_monitor: bool = True,
    on_startup: list[Callable[[Runtime], Any]] | None = None,
) -> FastAPI:
    """The ASGI app over `runtime`; `on_startup` hooks run once the server starts."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Background workers of the embedded server: the response-time monitor, and the
        # mirror that feeds new incidents to crime analytics.
        with runtime.sessions() as session:
            incidents_service.warm_up(session)
        monitor = ResponseTimeMonitor(runtime) if with_monitor else None
        stop_mirror = analytics_service.start_live_mirror(runtime) if with_monitor else None
        if monitor is not None:
            monitor.start()
        for hook in on_startup or []:
            hook(runtime)
        yield
        writer.close()  # answers every call and fix already queued
        if monitor is not None:
            monitor.stop()
        if stop_mirror is not None:
            stop_mirror()

    app = FastAPI(
        title="SafeCity",
        version=__version__,
        description="Police command and control: calls and dispatch, CCTV analytics, records.",
        lifespan=lifespan,
        **_telemetry_off(),
    )
    app.state.runtime = runtime
    # Calls and GPS fixes are written by one writer thread, in shared transactions (group
    # commit): see core/writer.py and incidents/intake.py.
    writer = shared_writer(app)
    app.state.call_intake = CallIntake(runtime.sessions, writer=writer)
    # Calls and AVL batches skip FastAPI's routing (see each class); the last added runs
    # first, so calls, the most frequent, are looked for first.
    app.add_middleware(AvlIntakeFastPath)
    app.add_middleware(CallIntakeFastPath)
    install_error_handlers(app)

    @app.get("/health", tags=["system"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(auth_api.router)
    app.include_router(geo_api.router)
    app.include_router(registry_api.router)
    app.include_router(incidents_api.router)
    app.include_router(dispatch_api.router)
    app.include_router(events_api.router)
    app.include_router(video_api.router)
    app.include_router(analytics_api.router)
    if with_console:
        from safecity.console import mount_console

        mount_console(app, runtime)
    return app
