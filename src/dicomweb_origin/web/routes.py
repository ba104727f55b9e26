"""The Starlette routes of the DICOMweb root, made from the resource table (``web/resources.py``).

Each method of a row gets a handler of its transaction: Retrieve (parse the request into a
``RetrieveRequest``, await the use case, write the payload), Search (``web/qido.py``), Store
(``web/stow.py``) and DELETE.
The handlers only read the request and write the answer; the use cases do the work where it belongs.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..errors import BadRequest, NotFound
from ..ingest import Ingest
from ..model.rendering import RenderParams, VolumeParams
from ..retrieve import Retrieve, RetrieveRequest
from ..search import Search
from ..settings import Settings
from .qido import search_handler
from .request import acceptable, check_text_charset, root, target
from .resources import Method, Resource, routed
from .send import Writer
from .stow import Stow

Handler = Callable[[Request], Awaitable[Response]]
_BULK_PATH = re.compile(r"[0-9A-Fa-f]{8}(/[0-9]+/[0-9A-Fa-f]{8})*")  # a BulkDataURI's tag path


class ResourceRoute(Route):
    """A route of one row of the resource table: its path, its handlers by method, and the row.

    The row's ``kind`` labels the requests in the metrics and the access log; the Capabilities
    description reads the row to describe the route.
    """

    def __init__(self, path: str, handlers: dict[str, Handler], resource: Resource, alias: bool = False) -> None:
        super().__init__(path, by_method(handlers), methods=list(handlers), name=resource.kind)
        self.row = resource
        self.resource = resource.kind
        self.alias = alias


class Handlers:
    """The handlers of every transaction, bound to the use cases of one application."""

    def __init__(self, retrieve: Retrieve, ingest: Ingest, search: Search, writer: Writer, stow: Stow,
                 settings: Settings) -> None:
        self.retrieve, self.ingest, self.search = retrieve, ingest, search
        self.writer, self.stow, self.settings = writer, stow, settings

    def of(self, method: Method) -> Handler:
        transaction = method.transaction
        if transaction == "retrieve":
            return self._retrieve(method)
        if transaction == "search":
            return search_handler(self.search, self.writer, self.settings, method)
        if transaction == "store":
            return self.stow.store
        if transaction == "delete":
            return self.delete
        raise ValueError(f"no handler for {method.title}")

    def _retrieve(self, method: Method) -> Handler:
        call, parse = method.call, method.parse
        assert call is not None

        async def handle(request: Request) -> Response:
            named, accept = target(request), acceptable(request)
            if method.text:  # text is UTF-8, the one charset written (§8.8.5: else 406)
                check_text_charset(request)
            path = request.path_params.get("path")
            if path is not None and not _BULK_PATH.fullmatch(path):
                raise BadRequest(f"invalid bulk data path {path!r}")
            params, unsupported = parse(request.query_params) if parse is not None else (None, ())
            asked = RetrieveRequest(
                named, accept, root(request, self.settings), request.path_params.get("frames"),
                None if path is None else path.upper(), ranged="range" in request.headers,
                conditional="if-none-match" in request.headers,
                render=params if isinstance(params, RenderParams) else RenderParams(),
                volume=params if isinstance(params, VolumeParams) else VolumeParams())
            payload = await call(self.retrieve, asked)
            if unsupported:  # §8.3.5.1.1
                payload.warnings += (f"The following annotation values are not supported: {', '.join(unsupported)}",)
            return await self.writer.send(request, payload, compressible=method.gzip)

        return handle

    async def delete(self, request: Request) -> Response:
        """204 No Content: deleted now or before (DELETE is idempotent, RFC 9110 §9.2.2); 404 if never stored."""
        asked = target(request)
        deleted = await self.ingest.delete_request(asked.study_uid, asked.series_uid, asked.instance_uid)
        if deleted is None:
            uid = asked.instance_uid or asked.series_uid or asked.study_uid
            raise NotFound(f"{uid} is not stored here (nor was it deleted)")
        return Response(status_code=204)


def routes(handlers: Handlers) -> list[BaseRoute]:
    """One route per path of the resource table, in its order (the order of routing)."""
    return [ResourceRoute(path, {m.verb: handlers.of(m) for m in resource.methods}, resource, alias)
            for path, resource, alias in routed()]


def by_method(handlers: dict[str, Handler]) -> Handler:
    """One endpoint for several methods (HEAD is GET without the body), so 405 answers list them all."""
    if len(handlers) == 1:
        return next(iter(handlers.values()))

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return dispatch
