"""The handler of the Search resources (QIDO-RS, PS3.18 §10.6, Table 10.6.1-1), rows of ``web/resources.py``.

Read the path and headers, await the Search use case, write its payload through the ``Writer`` (ETag, gzip when
the client accepts it) and add one ``Warning: 299 {service}: {text}`` header per warning (§8.3.4.4).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from ..retrieve import Target
from ..search import Search
from ..settings import Settings
from .request import acceptable, check_text_charset, root
from .resources import Method
from .send import Writer

MAX_WARNINGS = 20  # Warning headers on one Search response


def search_handler(search: Search, writer: Writer, settings: Settings,
                   method: Method) -> Callable[[Request], Awaitable[Response]]:
    """The handler of one Search resource (``method.search`` names it)."""

    async def handle(request: Request) -> Response:
        p = request.path_params
        scope = Target.parse(p["study"], p.get("series")) if "study" in p else None
        accept = acceptable(request)
        check_text_charset(request)  # Table 10.6.1-6: Accept-Charset; we answer in UTF-8 only
        base = root(request, settings)
        found = await search.search_request(method.search, request.query_params.multi_items(), accept, base,
                                            scope.study_uid if scope else None, scope.series_uid if scope else None)
        if found.payload is None:
            response = Response(status_code=204)
        else:
            response = await writer.send(request, found.payload, compressible=method.gzip)
        warnings = found.warnings[:MAX_WARNINGS]
        if len(found.warnings) > MAX_WARNINGS:  # one header each, but never an unbounded header block
            warnings.append(f"{len(found.warnings) - MAX_WARNINGS} more warnings were left out")
        for text in warnings:
            response.headers.append("Warning", f"299 {base}: {text}")
        return response

    return handle
