"""Starlette endpoints for Search (QIDO-RS, PS3.18 §10.6): the six GET resources of Table 10.6.1-1.

Parse the path and headers, call the Search use case, write its payload through ``Endpoints.send``
(ETag, gzip when the client accepts it) and add one ``Warning: 299 {service}: {text}`` header per
warning (§8.3.4.4).
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from ..negotiation import check_charset
from ..retrieve import Target
from ..search import Search
from .negotiate import header_field
from .routes import Endpoints, Handler, ResourceRoute

# Table 10.6.1-1: URI template -> resource of the Search use case.
_RESOURCES: tuple[tuple[str, str], ...] = (
    ("/studies", "studies"),
    ("/studies/{study}/series", "study-series"),
    ("/series", "series"),
    ("/studies/{study}/instances", "study-instances"),
    ("/studies/{study}/series/{series}/instances", "series-instances"),
    ("/instances", "instances"),
)


def search_routes(search: Search, endpoints: Endpoints) -> list[BaseRoute]:
    """Routes for the Search resources; ``POST /studies`` stays the Store transaction (§10.5)."""
    result: list[BaseRoute] = []
    for path, resource in _RESOURCES:
        handler = _handler(search, endpoints, resource)
        if path == "/studies":  # one route, so 405 answers carry Allow: GET, HEAD, POST
            result.append(ResourceRoute(path, {"GET": handler, "POST": endpoints.store}, "collection"))
        else:
            result.append(ResourceRoute(path, {"GET": handler}, "collection"))
    return result


MAX_WARNINGS = 20  # Warning headers on one Search response


def _handler(search: Search, endpoints: Endpoints, resource: str) -> Handler:
    async def handle(request: Request) -> Response:
        p = request.path_params
        target = Target.parse(p["study"], p.get("series")) if "study" in p else None
        accept = endpoints.accept(request)
        # Table 10.6.1-6: Accept-Charset; we answer in UTF-8 only.
        check_charset(request.query_params.getlist("charset"), header_field(request.headers, "accept-charset"))
        root = endpoints.root(request)
        found = await run_in_threadpool(
            search.search, resource, request.query_params.multi_items(), accept, root,
            target.study_uid if target else None, target.series_uid if target else None,
        )
        if found.payload is None:
            response = Response(status_code=204)
        else:
            response = await endpoints.send(request, found.payload, compressible=True)
        warnings = found.warnings[:MAX_WARNINGS]
        if len(found.warnings) > MAX_WARNINGS:  # one header each, but never an unbounded header block
            warnings.append(f"{len(found.warnings) - MAX_WARNINGS} more warnings were left out")
        for text in warnings:
            response.headers.append("Warning", f"299 {root}: {text}")
        return response

    return handle
