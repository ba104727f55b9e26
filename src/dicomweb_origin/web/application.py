"""The Starlette application: routes under the DICOMweb root, one error handler, CORS."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount

from ..auth import Authenticator
from ..errors import DicomWebError
from ..ingest import Ingest
from ..retrieve import Retrieve
from ..search import Search
from ..settings import Settings
from .accesslog import AccessLog
from .bearer import BearerAuth
from .capabilities import capabilities_mount
from .hosts import HostGuard, allowed_names, machine_names, trusted_networks
from .lite import lite_routes
from .metrics import Metrics, Observed
from .ops import Ops, Probes, ops_routes
from .routes import Handlers, routes
from .send import Writer
from .stow import Stow
from .viewer import Viewer

log = logging.getLogger("dicomweb_origin")


async def dicomweb_error(request: Request, exc: Exception) -> Response:
    """The one place where domain errors become HTTP responses (a short text Status Report, §8.6.3)."""
    assert isinstance(exc, DicomWebError)
    if exc.status >= 500:
        log.error("%s %s: %s", request.method, request.url.path, exc.message)
    # A request body cut short (408) or refused unread (413) leaves the connection unusable (RFC 9110 §15.5.9).
    headers = {"Connection": "close"} if exc.status in (408, 413) else {}
    headers.update(exc.headers)  # e.g. WWW-Authenticate of 401 / 403 (RFC 6750 §3)
    return PlainTextResponse(f"{exc.status} {exc.message}\n", status_code=exc.status, headers=headers)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = "no such resource" if exc.status_code == 404 else exc.detail
    headers = dict(exc.headers or {})
    if exc.status_code == 405 and "Allow" in headers:  # every DICOMweb path also answers OPTIONS (Capabilities)
        headers["Allow"] += ", OPTIONS"
    return PlainTextResponse(f"{exc.status_code} {message}\n", status_code=exc.status_code, headers=headers)


async def client_disconnect(request: Request, exc: Exception) -> Response:
    """The client went away mid-request (e.g. during a STOW upload): nothing to answer, nothing wrong.

    Handled here rather than by the catch-all, which Starlette re-raises to the server's error log.
    """
    log.info("client disconnected during %s %s", request.method, request.url.path)
    return Response(status_code=499)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return PlainTextResponse("500 internal server error (logged on the server)\n", status_code=500)


def create_app(retrieve: Retrieve, ingest: Ingest, search: Search, settings: Settings,
               viewer_dir: Path | None = None, authenticator: Authenticator | None = None,
               probes: Probes | None = None, on_shutdown: Callable[[], None] | None = None) -> Starlette:
    writer, stow = Writer(retrieve, settings), Stow(ingest, settings)
    metrics = Metrics(Observed(
        caches={"frames": retrieve.sources.cache, "rendered": retrieve.rendered_cache, "gzip": writer.compressed},
        outcomes=stow.outcomes, lanes=retrieve.lanes.figures))
    ops = Ops(probes or Probes(), metrics, settings, viewer=viewer_dir is not None)
    # Outermost (inside Starlette's error middleware): it sees every answer, the CORS ones included.
    middleware = [Middleware(AccessLog, metrics=metrics)]
    # Next: no response names a host that is not configured (a refused Host is still logged).
    middleware.append(Middleware(HostGuard, allowed=allowed_names(settings), proxies=trusted_networks(settings),
                                 local=machine_names(settings)))
    if settings.cors_origins:
        middleware.append(Middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "HEAD", "POST", "DELETE", "OPTIONS"],
            allow_headers=["*"],
            expose_headers=["ETag", "Content-Location", "Content-Range", "Warning", "Content-Length",
                            "WWW-Authenticate"],
            max_age=600,
        ))
    if authenticator is not None:  # inside CORS: a 401 / 403 still carries the CORS headers the browser needs
        middleware.append(Middleware(BearerAuth, authenticator=authenticator, error_response=dicomweb_error,
                                     root_path=settings.root_path, viewer=viewer_dir is not None))
    handlers = Handlers(retrieve, ingest, search, writer, stow, settings)
    mounts = ops_routes(ops) + lite_routes(settings) + capabilities_mount(settings.root_path, routes(handlers), writer,
                                                                          settings)
    if viewer_dir is not None:  # after the DICOMweb root: the viewer answers every other path
        mounts.append(Mount("", app=Viewer(viewer_dir, settings)))
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if on_shutdown is not None:  # the index's connections (a PostgreSQL pool) are closed, not dropped
            on_shutdown()

    app = Starlette(
        routes=mounts,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={DicomWebError: dicomweb_error, HTTPException: http_error, ClientDisconnect: client_disconnect,
                            Exception: unexpected_error},
    )
    app.state.gzip_cache = writer.compressed  # observable: its hits and size
    app.state.metrics = metrics
    app.state.authenticator = authenticator  # observable: the JWKS fetches (None: the server is open)
    return app

