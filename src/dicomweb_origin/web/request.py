"""Read what a request asks: its target, its Acceptable Media Types and charsets, and the DICOMweb root URL.

The rules are the use cases' and ``negotiation``'s; this module only takes them out of a Starlette request.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.requests import Request

from ..model.media import Acceptable
from ..negotiation import acceptable_media_types, check_charset, check_charset_parameter
from ..retrieve import Target
from ..settings import Settings
from .hosts import split_host


def header_field(headers: Headers, name: str) -> str | None:
    """A list-valued request header, its repeated lines joined with commas (RFC 9110 §5.3); None if absent."""
    lines = headers.getlist(name)
    return ", ".join(lines) if lines else None


def root(request: Request, settings: Settings) -> str:
    """The absolute DICOMweb root URL for links in this response."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    # The Host as web/hosts.py left it: an allowed name, with the socket's port when it named this
    # machine without one.
    host = request.headers.get("host", "")
    if split_host(host) is None:  # HTTP/1.0 without Host; never splice an arbitrary header into links
        host = f"{settings.host}:{settings.port}"
    return f"{request.url.scheme}://{host}{settings.root_path}"


def target(request: Request) -> Target:
    """The study, series or instance the path names, its UIDs checked (400 otherwise)."""
    p = request.path_params
    return Target.parse(p["study"], p.get("series"), p.get("instance"))


def acceptable(request: Request) -> list[Acceptable]:
    """The Acceptable Media Types (§8.7.5), after checking the ``charset`` query parameter (§8.3.3.2).

    Accept-Charset is left to the text resources (``check_text_charset``): binary payloads have no charset.
    """
    check_charset_parameter(request.query_params.getlist("charset"))
    return acceptable_media_types(header_field(request.headers, "accept"), request.query_params.getlist("accept"))


def check_text_charset(request: Request) -> None:
    """Text is written in UTF-8 only: 406 when neither ``charset`` nor Accept-Charset accepts it (§8.8.5)."""
    check_charset(request.query_params.getlist("charset"), header_field(request.headers, "accept-charset"))
