"""Bearer authentication as a pure ASGI middleware: every request but the public ones needs a token and a scope.

Public (no token): ``/health`` and ``/ready``, the built-in viewer's files under ``/lite/`` (it sends the token on
its DICOMweb requests), and, when an OHIF viewer is mounted, its static files (every path
outside the DICOMweb root but ``/metrics``): they hold no patient data. CORS pre-flights (OPTIONS with Origin and
Access-Control-Request-Method, sent without credentials, Fetch §4.8) never get here when CORS origins are configured:
CORSMiddleware, outside this one, answers them all. Without CORS origins there is no cross-origin access to grant,
and a pre-flight-shaped OPTIONS is an OPTIONS like any other: it needs a token. Everything else needs
``dicomweb.read`` (GET, HEAD, OPTIONS) or ``dicomweb.write`` (POST, DELETE); see ``auth.REQUIRED_SCOPE``.

The caller's name and scopes go into ``scope["state"]`` (``user``, ``scopes``) for the access log. Failures are
the ``errors`` classes, answered by the application's one error handler (passed in as ``error_response``), which
sends their ``WWW-Authenticate`` header (RFC 6750 §3). Keys are fetched in a worker thread, never on the loop, one fetch at a time: requests whose key is
not held yet wait for the fetch under way instead of being refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Final

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ..auth import Authenticator, bearer_token, require
from ..errors import DicomWebError
from .lite import PREFIX as LITE

OPEN_PATHS: Final = frozenset({"/health", "/ready"})
# Outside the DICOMweb root, these stay protected even when a viewer answers every other path.
SERVER_PATHS: Final = frozenset({"/metrics"})

ErrorResponse = Callable[[Request, Exception], Awaitable[Response]]


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class BearerAuth:
    """Authenticate and authorise each HTTP request before the application sees it."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator, error_response: ErrorResponse,
                 root_path: str, viewer: bool = False) -> None:
        self.app = app
        self.authenticator = authenticator
        self.error_response = error_response
        self.root_path = root_path.rstrip("/")
        self.viewer = viewer
        self._refreshing: asyncio.Future[None] | None = None

    async def _refresh(self) -> None:
        """Fetch the keys in a worker thread; requests that arrive meanwhile wait for that one fetch."""
        if self._refreshing is None:
            self._refreshing = asyncio.ensure_future(anyio.to_thread.run_sync(self.authenticator.refresh))
            self._refreshing.add_done_callback(self._refreshed)
        await asyncio.shield(self._refreshing)

    def _refreshed(self, future: asyncio.Future[None]) -> None:
        self._refreshing = None

    def is_public(self, scope: Scope) -> bool:
        path: str = scope["path"]
        if path in OPEN_PATHS or path == LITE or path.startswith(LITE + "/"):
            return True
        under_root = path == self.root_path or path.startswith(self.root_path + "/")
        return self.viewer and not under_root and path not in SERVER_PATHS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.is_public(scope):
            await self.app(scope, receive, send)
            return
        try:
            token = bearer_token(_header(scope, b"authorization"))
            auth = self.authenticator
            if auth.needs_refresh(token) or (self._refreshing is not None and not auth.has_key(token)):
                await self._refresh()
            principal = self.authenticator.authenticate(token)
            state = scope.setdefault("state", {})
            state["user"] = principal.name
            state["scopes"] = sorted(principal.scopes)
            require(principal, scope["method"])
        except DicomWebError as exc:
            if _header(scope, b"content-length") not in (None, "0") or _header(scope, b"transfer-encoding"):
                exc.headers["Connection"] = "close"  # refused unread: do not take in a whole STOW body to discard
            response = await self.error_response(Request(scope, receive), exc)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
