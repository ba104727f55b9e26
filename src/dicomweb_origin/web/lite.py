"""Serve the built-in viewer at ``/lite/``: static HTML, CSS and JavaScript modules from the package, no build step.

The viewer lets the server do the pixel work: everything it shows comes from standard DICOMweb requests (Search,
metadata, Rendered, Thumbnail, Rendered MPR and Rendered 3D of PS3.18 §10.4.1.1.3-8), so a phone displays a large CT
with a few kilobytes per picture. Its files hold no patient data and are public even when the server asks for
tokens (web/bearer.py); the viewer sends the token it was given as ``Authorization: Bearer`` on each DICOMweb request.
``config.json`` tells it where the DICOMweb root is. docs/conformance.md ("The lite viewer") lists what it requests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import Receive, Scope, Send

from ..settings import Settings
from .viewer import Files

PREFIX: Final = "/lite"
FILES: Final = Path(__file__).resolve().parent / "lite"
# Its own files and the DICOMweb root only; pictures are shown from blob: URLs of the fetched renderings.
POLICY: Final = ("default-src 'self'; img-src 'self' blob: data:; connect-src 'self'{extra}; "
                 "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


def lite_config(settings: Settings) -> dict[str, str]:
    """Where the viewer finds the DICOMweb root: the public URL when set, else the root path on this origin."""
    return {"root": settings.public_url.rstrip("/") if settings.public_url else settings.root_path.rstrip("/")}


class Lite:
    """ASGI app mounted at PREFIX: the viewer's files and its ``config.json``."""

    def __init__(self, settings: Settings, directory: Path = FILES) -> None:
        self.files = Files(directory=directory, html=True)
        self.config = json.dumps(lite_config(settings)).encode()
        public = settings.public_url or ""
        origin = "/".join(public.split("/")[:3]) if public.startswith(("http://", "https://")) else ""
        self.headers = {"Content-Security-Policy": POLICY.format(extra=f" {origin}" if origin else ""),
                        "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"][len(scope.get("root_path", "")):] if scope["path"].startswith(
            scope.get("root_path", "")) else scope["path"]
        if scope["method"] not in ("GET", "HEAD"):
            response: Response = PlainTextResponse("405 method not allowed\n", 405, {"Allow": "GET, HEAD"})
        elif path == "/config.json":
            response = Response(self.config, media_type="application/json", headers={"Cache-Control": "no-cache"})
        else:
            response = await self.files.get_response(self.files.get_path(scope), scope)
        response.headers.update(self.headers)
        await response(scope, receive, send)


async def _slash(request: Request) -> Response:
    return RedirectResponse(PREFIX + "/", 308)  # the page's relative URLs need the trailing slash


def lite_routes(settings: Settings) -> list[BaseRoute]:
    """``/lite`` (redirected) and everything under ``/lite/``: before a viewer mounted at ``/`` takes every path."""
    return [Route(PREFIX, _slash, methods=["GET", "HEAD"]), Mount(PREFIX, app=Lite(settings))]
