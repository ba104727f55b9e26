"""Starlette endpoints for Retrieve (§10.4) and Store (§10.5): parse, call a use case, write the payload."""

from __future__ import annotations

import gzip
import logging
import re
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import anyio
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from ..cache import BytesCache
from ..errors import (
    BadRequest,
    DicomWebError,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
)
from ..ingest import Ingest, Outcome, StoreResult, render_store_response, store_response
from ..negotiation import (
    Offer,
    acceptable_media_types,
    check_charset,
    check_charset_parameter,
    negotiate,
    parse_media_range,
    token_quality,
)
from ..retrieve import Payload, Retrieve, Target
from ..settings import Settings
from . import multipart
from .encoding import ContentDecoder, content_decoder
from .hosts import split_host
from .negotiate import header_field
from .params import render_params, volume_params

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]
SMALL_BODY = 8 << 20  # bodies up to this size are produced in one go rather than streamed


class Endpoints:
    """Request handlers bound to the use cases and settings of one application."""

    def __init__(self, retrieve: Retrieve, ingest: Ingest, settings: Settings) -> None:
        self.retrieve = retrieve
        self.ingest = ingest
        self.settings = settings
        # gzip bodies by the ETag of what they compress (ETags name exact bytes): metadata is
        # compressed once, not on every request (a 500-instance series costs ~5 ms of gzip).
        self.compressed = BytesCache(settings.gzip_cache_bytes)
        self.outcomes: Counter[str] = Counter()  # STOW-RS instances by Outcome value (read by the metrics)

    # -- helpers -------------------------------------------------------------------------------

    def root(self, request: Request) -> str:
        """The absolute DICOMweb root URL for links in this response."""
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
        # The Host as web/hosts.py left it: an allowed name, with the socket's port when it named this
        # machine without one.
        host = request.headers.get("host", "")
        if split_host(host) is None:  # HTTP/1.0 without Host; never splice an arbitrary header into links
            host = f"{self.settings.host}:{self.settings.port}"
        return f"{request.url.scheme}://{host}{self.settings.root_path}"

    @staticmethod
    def target(request: Request) -> Target:
        p = request.path_params
        return Target.parse(p["study"], p.get("series"), p.get("instance"))

    @staticmethod
    def accept(request: Request) -> list[Any]:
        """The Acceptable Media Types of a Retrieve request, after checking its ``charset`` parameter.

        Accept-Charset is left to the text resources (metadata): binary payloads have no charset.
        """
        check_charset_parameter(request.query_params.getlist("charset"))
        return acceptable_media_types(header_field(request.headers, "accept"), request.query_params.getlist("accept"))

    async def send(self, request: Request, payload: Payload, compressible: bool = False) -> Response:
        """Write a payload: 304 on a matching ETag, Range on single parts, gzip when worth it."""
        headers = {"ETag": payload.etag, "Vary": ", ".join(payload.vary), "Cache-Control": "private, max-age=0"}
        matched = _etag_match(request.headers.get("if-none-match"), payload.etag)
        if matched is not None:
            return Response(status_code=304, headers=headers | {"ETag": matched})
        if payload.multipart_type is not None and any(p.length is None for p in payload.parts):
            await run_in_threadpool(_produce_ahead, self.retrieve, payload)
        warnings = list(payload.warnings)
        if payload.omitted:
            warnings.append(f"{payload.omitted} of the items of the target could not be represented in an acceptable"
                            " media type and were omitted")
        if warnings:
            headers["Warning"] = warning_value(warnings)
        status = 206 if payload.omitted else 200
        root = self.root(request)
        if payload.multipart_type is None:
            part = payload.parts[0]
            await self.retrieve.materialize(part)  # transcoding, rendering, metadata: on its lane
            if not compressible and part.length is not None:  # a single representation: Range applies (RFC 9110 §14)
                headers["Accept-Ranges"] = "bytes"
                # If-Range that does not match means "send it all" (RFC 9110 §13.1.5), before any 416.
                current = request.headers.get("if-range", payload.etag) == payload.etag
                ranged = _byte_range(request.headers.get("range"), part.length) if current else None
                if ranged == "unsatisfiable":
                    return Response(status_code=416, headers=headers | {"Content-Range": f"bytes */{part.length}"})
                if isinstance(ranged, tuple):
                    start, end = ranged
                    headers |= {"Content-Range": f"bytes {start}-{end - 1}/{part.length}",
                                "Content-Length": str(end - start)}
                    body = iterate_in_threadpool(part.body(start, end - start))
                    return StreamingResponse(body, 206, headers, media_type=part.media_type)
            if part.location is not None:
                headers["Content-Location"] = root + part.location
            if compressible or part.length is None or part.length <= SMALL_BODY:
                data = await run_in_threadpool(part.read_all)
                return await self._bytes(request, data, part.media_type, headers, status, compressible)
            headers["Content-Length"] = str(part.length)
            return StreamingResponse(iterate_in_threadpool(part.body(0, None)), status, headers,
                                     media_type=part.media_type)
        boundary = multipart.boundary_for(payload.etag)  # same representation, same bytes
        media_type = multipart.content_type(payload.multipart_type, boundary)
        if compressible:
            data = await run_in_threadpool(lambda: b"".join(multipart.stream(payload.parts, boundary, root)))
            return await self._bytes(request, data, media_type, headers, status, compressible)
        length = multipart.total_length(payload.parts, boundary, root)
        if length is not None and length <= SMALL_BODY:
            # One hop to the thread pool instead of one per chunk: what keeps a frame request fast.
            data = await run_in_threadpool(lambda: b"".join(multipart.stream(payload.parts, boundary, root)))
            return Response(data, status, headers, media_type=media_type)
        if length is not None:
            headers["Content-Length"] = str(length)
        parts = self.retrieve.produce(payload.parts)  # transcoding ahead of the socket, in parallel
        body = iterate_in_threadpool(multipart.stream(parts, boundary, root))
        return StreamingResponse(body, status, headers, media_type=media_type)

    async def _bytes(self, request: Request, data: bytes, media_type: str, headers: dict[str, str], status: int,
                     compressible: bool) -> Response:
        if compressible and len(data) >= self.settings.gzip_min_bytes and _accepts_gzip(request):
            plain = data
            data = await run_in_threadpool(self.compressed.get_or_make, headers["ETag"],
                                           lambda: gzip.compress(plain, 4, mtime=0))
            headers["Content-Encoding"] = "gzip"
            headers["ETag"] = headers["ETag"][:-1] + '-gzip"'  # other bytes, other strong validator
        return Response(data, status, headers, media_type=media_type)

    # -- Retrieve --------------------------------------------------------------------------------

    async def instances(self, request: Request) -> Response:
        target, accept = self.target(request), self.accept(request)
        payload = await run_in_threadpool(self.retrieve.instances, target, accept)
        return await self.send(request, payload)

    async def metadata(self, request: Request) -> Response:
        target, accept = self.target(request), self.accept(request)
        check_charset(request.query_params.getlist("charset"), header_field(request.headers, "accept-charset"))
        payload = await run_in_threadpool(self.retrieve.metadata, target, accept, self.root(request))
        return await self.send(request, payload, compressible=True)

    async def bulkdata(self, request: Request) -> Response:
        target, accept = self.target(request), self.accept(request)
        path = request.path_params.get("path")
        if path is not None:
            if not re.fullmatch(r"[0-9A-Fa-f]{8}(/[0-9]+/[0-9A-Fa-f]{8})*", path):
                raise BadRequest(f"invalid bulk data path {path!r}")
            payload = await run_in_threadpool(self.retrieve.bulk_element, target, path.upper(), accept,
                                              "range" in request.headers)
        else:
            payload = await run_in_threadpool(self.retrieve.bulkdata, target, accept)
        return await self.send(request, payload)

    async def pixeldata(self, request: Request) -> Response:
        target, accept = self.target(request), self.accept(request)
        payload = await run_in_threadpool(self.retrieve.pixeldata, target, accept, "range" in request.headers)
        return await self.send(request, payload)

    async def frames(self, request: Request) -> Response:
        target, accept = self.target(request), self.accept(request)
        frame_list = request.path_params["frames"]
        payload = await run_in_threadpool(self.retrieve.frames, target, frame_list, accept, "range" in request.headers)
        return await self.send(request, payload)

    async def rendered(self, request: Request) -> Response:
        return await self._rendered(request, thumbnail=False)

    async def thumbnail(self, request: Request) -> Response:
        return await self._rendered(request, thumbnail=True)

    async def _rendered(self, request: Request, thumbnail: bool) -> Response:
        """Rendered and Thumbnail resources (§10.4.1.1.3-4): parameters parsed once into a frozen value."""
        target, accept = self.target(request), self.accept(request)
        # Rendered text is UTF-8, the one charset this server renders in (§8.8.5: otherwise 406).
        check_charset(request.query_params.getlist("charset"), header_field(request.headers, "accept-charset"))
        params, unsupported = render_params(request.query_params, thumbnail=thumbnail)
        frame_list = request.path_params.get("frames")
        conditional = "if-none-match" in request.headers  # a 304 must not pay for a rendering
        payload = await self.retrieve.render(thumbnail, target, frame_list, accept, params, produce=not conditional)
        if unsupported:  # §8.3.5.1.1
            payload.warnings += (f"The following annotation values are not supported: {', '.join(unsupported)}",)
        return await self.send(request, payload)

    # -- Delete (not a PS3.18 transaction; see docs/conformance.md "Deleting and correcting") ----------

    async def delete(self, request: Request) -> Response:
        """204 No Content: deleted now or before (DELETE is idempotent, RFC 9110 §9.2.2); 404 if never stored."""
        target = self.target(request)
        deleted = await run_in_threadpool(self.ingest.delete, target.study_uid, target.series_uid,
                                          target.instance_uid)
        if deleted is None:
            uid = target.instance_uid or target.series_uid or target.study_uid
            raise NotFound(f"{uid} is not stored here (nor was it deleted)")
        return Response(status_code=204)

    async def rendered_mpr(self, request: Request) -> Response:
        return await self._volume(request, "mpr")

    async def rendered_3d(self, request: Request) -> Response:
        return await self._volume(request, "3d")

    async def _volume(self, request: Request, kind: str) -> Response:
        """Rendered MPR and Rendered 3D resources (§10.4.1.1.7-8): one view, an animation, or Annex K metadata."""
        target, accept = self.target(request), self.accept(request)
        check_charset(request.query_params.getlist("charset"), header_field(request.headers, "accept-charset"))
        params, unsupported = volume_params(request.query_params)
        frame_list = request.path_params.get("frames")
        # In the thread pool, not a lane: assembly decodes frames on the heavy lane and waits for
        # them; the rendering itself runs there when ``send`` produces the part.
        payload = await run_in_threadpool(self.retrieve.volume, kind, target, frame_list, accept, params)
        if unsupported:  # §8.3.5.1.1
            payload.warnings += (f"The following annotation values are not supported: {', '.join(unsupported)}",)
        return await self.send(request, payload)

    # -- Store (STOW-RS) -------------------------------------------------------------------------

    async def store(self, request: Request) -> Response:
        study = request.path_params.get("study")
        study_uid = Target.parse(study).study_uid if study is not None else None
        content_type = request.headers.get("content-type", "")
        parsed = parse_media_range(content_type)
        if not content_type.strip():
            raise UnsupportedMediaType("a STOW-RS request needs a Content-Type")
        if parsed is None:
            raise BadRequest(f"malformed Content-Type {content_type[:200]!r} (e.g. a repeated parameter)")
        media_type, params = parsed
        if media_type != "multipart/related" or params.get("type", "application/dicom").lower() != "application/dicom":
            raise UnsupportedMediaType(
                'STOW-RS accepts multipart/related; type="application/dicom" (binary instances)'
            )
        boundary = params.get("boundary")
        if not boundary:
            raise BadRequest("the multipart Content-Type has no boundary parameter")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.settings.max_request_bytes:
            raise PayloadTooLarge(f"the request declares {declared} bytes; this server takes at most"
                                  f" {self.settings.max_request_bytes}")
        decoder = content_decoder(request.headers.get("content-encoding"))
        spool = tempfile.TemporaryFile()  # noqa: SIM115
        try:
            size = 0
            async for chunk in _body(request, self.settings.body_idle_seconds,
                                     self.settings.body_min_bytes_per_second):
                size = await run_in_threadpool(self._spool, spool, decoder, chunk, size)
            if decoder is not None:
                decoder.finish()
            xml = _prefers_xml(header_field(request.headers, "accept"))
            # Storing and the response (10,000 parts make a large one) off the event loop, in one hop.
            status, headers, data, media_type, outcomes = await run_in_threadpool(
                self._store_and_answer, spool, boundary, study_uid, self.root(request), xml)
        finally:
            spool.close()
        self.outcomes.update(outcomes)  # on the loop: concurrent STOWs never race on the tally
        return Response(data, status, headers, media_type=media_type)

    def _store_and_answer(self, spool: Any, boundary: str, study_uid: str | None, root: str,
                          xml: bool) -> tuple[int, dict[str, str], bytes, str, Counter[str]]:
        results = self._store_parts(spool, boundary, study_uid)
        status, body = store_response(results, root)
        headers = {}
        reasons = [f"{r.instance_uid or 'part'}: {r.reason}" for r in results if r.reason]
        if reasons:
            headers["Warning"] = warning_value(["; ".join(reasons)[:2000]])
        data, media_type = render_store_response(body, xml)
        return status, headers, data, media_type, Counter(r.outcome.value for r in results)

    def _spool(self, spool: Any, decoder: ContentDecoder | None, chunk: bytes, size: int) -> int:
        """Append one chunk of the body, decoded, to the spool; return the decoded size so far.

        The limit applies to the decoded body, piece by piece: a zip bomb is a 413, not a full disk.
        """
        for piece in decoder.feed(chunk) if decoder is not None else (chunk,):
            size += len(piece)
            if size > self.settings.max_request_bytes:
                raise PayloadTooLarge(f"the request exceeds {self.settings.max_request_bytes} bytes")
            spool.write(piece)
        return size

    def _store_parts(self, spool: Any, boundary: str, study_uid: str | None) -> list[StoreResult]:
        spool.flush()
        results = []
        for headers, content in multipart.read_parts(spool, boundary):
            part_type = headers.get("content-type", "application/dicom").split(";")[0].strip().lower()
            if part_type != "application/dicom":
                results.append(StoreResult(Outcome.FAILED, reason=f"part of type {part_type!r} is not application/dicom",
                                           failure_reason=0xC000))
                continue
            results.append(self.ingest.store(content, study_uid))  # type: ignore[arg-type]
        if not results:
            raise BadRequest("the multipart payload has no parts")
        return results


def warning_value(texts: Sequence[str]) -> str:
    """A ``Warning`` field value of 299 warnings, one per text (RFC 7234 §5.5), whatever the texts hold.

    The texts quote client data (a SOP Instance UID, an annotation value): a control character in a
    header value is no HTTP at all (the response would never come) and ``"`` or ``\\`` would end or
    break the quoted-string. Each character outside printable ASCII is written as its escape
    (``\\x00``, ``\\u00e9``), with the backslash itself quoted (RFC 9110 §5.6.4), and ``"`` as ``'``.
    """
    return ", ".join(f'299 dicomweb-origin "{_quotable(text)}"' for text in texts)


def _quotable(text: str) -> str:
    quoted = []
    for c in text:
        if " " <= c <= "~" and c not in '"\\':
            quoted.append(c)
        elif c in '"\\':
            quoted.append("'" if c == '"' else "\\\\")
        else:  # \x00 as the four characters \x00, its backslash quoted
            quoted.append("\\" + c.encode("unicode_escape").decode("ascii"))
    return "".join(quoted)


def _produce_ahead(retrieve: Retrieve, payload: Payload) -> None:
    """Produce parts of unknown length before any byte is sent, up to ``SMALL_BODY`` bytes of them.

    Transcoding happens while the body streams; once the status line is out, a failure could only
    cut the connection. Failures found here instead become the response status (every part failed)
    or omitted parts (206 with a Warning, Table 10.4.3-1). Past SMALL_BODY bytes (and at least one part
    produced), parts stream lazily and one that fails is left out (see ``multipart.stream``).
    """
    error: DicomWebError | None = None
    produced = 0
    for part in retrieve.produce([p for p in payload.parts if p.length is None]):
        if produced > SMALL_BODY:
            break
        try:
            part.materialize()
        except DicomWebError as exc:
            error = error or exc
            payload.parts.remove(part)
            payload.omitted += 1
            continue
        produced += part.length or 0
    if not payload.parts and error is not None:
        raise error


async def _body(request: Request, idle_seconds: float, min_rate: int) -> AsyncIterator[bytes]:
    """The request body as it arrives, cut off with 408 when the client stalls or drips it.

    A client that sends nothing for ``idle_seconds``, or after the first ``idle_seconds`` averages
    less than ``min_rate`` bytes/s (a byte every few seconds never trips an idle timer), holds a
    connection and a spool file for nothing (RFC 9110 §15.5.9: 408).
    """
    stream = request.stream()
    start, received = time.monotonic(), 0
    while True:
        # The latest moment by which the body so far would still average min_rate after the grace.
        due = start + idle_seconds + received / min_rate if min_rate > 0 else float("inf")
        wait = min(idle_seconds, due - time.monotonic())
        try:
            if wait <= 0:
                raise TimeoutError
            with anyio.fail_after(wait):
                chunk = await anext(stream)
        except StopAsyncIteration:
            return
        except TimeoutError:
            if wait < idle_seconds:
                raise RequestTimeout(f"the request body arrived at less than {min_rate} bytes/s") from None
            raise RequestTimeout(f"no part of the request body arrived for {idle_seconds:g} s") from None
        received += len(chunk)
        yield chunk


# Table 10.5.4-1: the response module as DICOM JSON (the default) or Native XML; one document, whatever the
# wrapping asked for; ``application/json`` is honoured as DICOM JSON when named.
_STORE_OFFERS = tuple(Offer(media_type, multipart=multipart, wildcard=media_type != "application/json")
                      for media_type in ("application/dicom+json", "application/dicom+xml", "application/json")
                      for multipart in (False, True))


def _prefers_xml(accept: str | None) -> bool:
    """Whether a STOW client ranks ``application/dicom+xml`` above DICOM JSON (Table 10.5.4-1).

    JSON is the default: without an Accept header (dicomweb-client sends none), or when neither
    type is named, the response is JSON rather than a 406 for a store that has already happened.
    """
    try:
        offer = negotiate(acceptable_media_types(accept or "*/*", []), _STORE_OFFERS)
    except DicomWebError:
        return False  # the instances are stored already: an odd Accept gets the default, not an error
    return offer is not None and offer.media_type == "application/dicom+xml"


def _etag_match(header: str | None, etag: str) -> str | None:
    """The validator of If-None-Match that matches (RFC 9110 §13.1.2, weak comparison), or None.

    The gzip variant validates the same content; a 304 repeats the variant the client holds.
    """
    if not header:
        return None
    if header.strip() == "*":
        return etag
    for tag in header.split(","):
        tag = tag.strip().removeprefix("W/")
        if tag.replace('-gzip"', '"') == etag:
            return tag
    return None


def _accepts_gzip(request: Request) -> bool:
    """True when Accept-Encoding lists gzip (or ``*``) with a q-value above zero (RFC 9110 §12.5.3)."""
    q = token_quality(header_field(request.headers, "accept-encoding") or "", _GZIP)
    return q is not None and q > 0


_GZIP = frozenset({"gzip", "x-gzip"})


def _byte_range(header: str | None, length: int) -> tuple[int, int] | str | None:
    """A single ``bytes=`` range as [start, end), "unsatisfiable", or None to send everything (RFC 9110 §14)."""
    if not header:
        return None
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not match or (not match.group(1) and not match.group(2)):
        return None  # multiple or malformed ranges: ignore, send the whole representation
    first, last = match.group(1), match.group(2)
    if not first:
        suffix = int(last)
        if suffix == 0:
            return "unsatisfiable"
        return max(0, length - suffix), length
    start = int(first)
    if last and int(last) < start:
        return None  # an invalid range is ignored (RFC 9110 §14.1.1)
    end = min(length, int(last) + 1) if last else length
    if start >= length:
        return "unsatisfiable"
    return start, end


class ResourceRoute(Route):
    """One row of the resource table: a path, its handlers by method, and the kind of resource it is.

    The kind (``uid``, ``collection``, ``metadata``, ``bulkdata``, ``pixeldata``, ``frames``,
    ``rendered``, ``thumbnail``, ``renderedmpr``, ``rendered3d``: the resources of PS3.18 Table H-1) is what the Retrieve Capabilities
    description reads, so routing and description come from this one table.
    """

    def __init__(self, path: str, handlers: dict[str, Handler], resource: str) -> None:
        super().__init__(path, by_method(handlers), methods=list(handlers))
        self.resource = resource


def routes(endpoints: Endpoints) -> list[BaseRoute]:
    """The resource table of PS3.18 §10.4.1 (and §10.5 for Store); search routes live in ``web/search.py``."""
    e = endpoints
    study = "/studies/{study}"
    series = study + "/series/{series}"
    instance = series + "/instances/{instance}"
    levels = (study, series, instance, instance + "/frames/{frames}")
    volumes = [(level + f"/{name}", _get(handler), kind)
               for level in (*levels, study + "/series")  # the seed's study-level /studies/{study}/series/rendered3d
               for names, handler, kind in ((("renderedmpr", "renderedMPR"), e.rendered_mpr, "renderedmpr"),
                                            (("rendered3d", "rendered3D"), e.rendered_3d, "rendered3d"))
               for name in names if level != study + "/series" or kind == "rendered3d"]
    table: list[tuple[str, dict[str, Handler], str]] = [
        (study, {"GET": e.instances, "POST": e.store, "DELETE": e.delete}, "uid"),
        # Before {series}: "rendered3d" is never a series UID (UIDs are digits and dots, PS3.5 §9.1).
        *(row for row in volumes if row[0].startswith(study + "/series/rendered")),
        (series, {"GET": e.instances, "DELETE": e.delete}, "uid"),
        (instance, {"GET": e.instances, "DELETE": e.delete}, "uid"),
        *((level + "/metadata", _get(e.metadata), "metadata") for level in (study, series, instance)),
        *((level + "/bulkdata", _get(e.bulkdata), "bulkdata") for level in (study, series, instance)),
        (instance + "/bulkdata/{path:path}", _get(e.bulkdata), "bulkdata"),
        *((level + "/pixeldata", _get(e.pixeldata), "pixeldata") for level in (study, series, instance)),
        (instance + "/frames/{frames}", _get(e.frames), "frames"),
        *((level + "/rendered", _get(e.rendered), "rendered")
          for level in levels),
        *((level + "/thumbnail", _get(e.thumbnail), "thumbnail") for level in levels),
        *(row for row in volumes if not row[0].startswith(study + "/series/rendered")),
    ]
    return [ResourceRoute(path, handlers, resource) for path, handlers, resource in table]


def _get(handler: Handler) -> dict[str, Handler]:
    return {"GET": handler}


def by_method(handlers: dict[str, Handler]) -> Handler:
    """One endpoint for several methods (HEAD is GET without the body), so 405 answers list them all."""
    if len(handlers) == 1:
        return next(iter(handlers.values()))

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return dispatch

