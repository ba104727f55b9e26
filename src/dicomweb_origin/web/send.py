"""Write a payload as an HTTP response: validators and 304, Range, gzip, one part or a multipart body.

Every resource answers through ``Writer.send`` (Retrieve, Search, Capabilities). The bytes come from the
Retrieve use case, which produces each part where it belongs (``Retrieve.read``, ``join``, ``stream``); this
module decides only what HTTP says about them (RFC 9110: §8.8.3 ETag, §13.1 conditional requests, §14 ranges,
§8.4 content codings; PS3.18 §8.6.1.2 multipart, Table 10.4.3-1 206 and Warning).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..cache import BytesCache
from ..negotiation import token_quality
from ..retrieve import GZIP_LEVEL, Payload, Retrieve
from ..settings import Settings
from .multipart import MultipartBody
from .request import header_field, root

SMALL_BODY = 8 << 20  # bodies up to this size are produced in one go rather than streamed


class Writer:
    """Writes the payloads of one application; keeps gzip bodies by the ETag of what they compress."""

    def __init__(self, retrieve: Retrieve, settings: Settings) -> None:
        self.retrieve = retrieve
        self.settings = settings
        # ETags name exact bytes: metadata is compressed once, not on every request (a 500-instance
        # series costs ~5 ms of gzip).
        self.compressed = BytesCache(settings.gzip_cache_bytes)

    async def send(self, request: Request, payload: Payload, compressible: bool = False) -> Response:
        """Write a payload: 304 on a matching ETag, Range on single parts, gzip when worth it."""
        headers = {"ETag": payload.etag, "Vary": ", ".join(payload.vary), "Cache-Control": "private, max-age=0"}
        matched = _etag_match(request.headers.get("if-none-match"), payload.etag)
        if matched is not None:
            return Response(status_code=304, headers=headers | {"ETag": matched})
        await self.retrieve.settle(payload, SMALL_BODY)
        warnings = list(payload.warnings)
        if payload.omitted:
            warnings.append(f"{payload.omitted} of the items of the target could not be represented in an acceptable"
                            " media type and were omitted")
        if warnings:
            headers["Warning"] = warning_value(warnings)
        status = 206 if payload.omitted else 200
        base = root(request, self.settings)
        if payload.multipart_type is None:
            return await self._single(request, payload, headers, status, base, compressible)
        body = MultipartBody(payload.multipart_type, payload.parts, payload.etag, base)
        if compressible:
            data = await self.retrieve.join(body.chunks)
            return await self._bytes(request, data, body.content_type, headers, status, compressible)
        length = body.length
        if length is not None and length <= SMALL_BODY:
            data = await self.retrieve.join(body.chunks)  # one trip, not one per chunk: a frame stays fast
            return Response(data, status, headers, media_type=body.content_type)
        if length is not None:
            headers["Content-Length"] = str(length)
        chunks = body.chunks(self.retrieve.produce(payload.parts))  # transcoding ahead of the socket
        return StreamingResponse(self.retrieve.stream(chunks), status, headers, media_type=body.content_type)

    async def _single(self, request: Request, payload: Payload, headers: dict[str, str], status: int, base: str,
                      compressible: bool) -> Response:
        part = payload.parts[0]
        if compressible and payload.gzip is not None and _accepts_gzip(request):
            packed = await self.retrieve.stored_gzip(payload.gzip)
            if _gzip_size(packed) >= self.settings.gzip_min_bytes:  # else as below: sent as it is
                if part.location is not None:
                    headers["Content-Location"] = base + part.location
                headers |= {"Content-Encoding": "gzip", "ETag": headers["ETag"][:-1] + '-gzip"'}
                return Response(packed, status, headers, media_type=part.media_type)
        await self.retrieve.materialize(part)  # transcoding, rendering, metadata: on its lane
        assert part.length is not None
        if not compressible:  # a single representation: Range applies (RFC 9110 §14)
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
                return StreamingResponse(self.retrieve.stream(part.body(start, end - start)), 206, headers,
                                         media_type=part.media_type)
        if part.location is not None:
            headers["Content-Location"] = base + part.location
        if (compressible and payload.gzip is None) or part.length <= SMALL_BODY:  # else: a stored gzip, or none
            data = await self.retrieve.read(part)
            return await self._bytes(request, data, part.media_type, headers, status, compressible)
        headers["Content-Length"] = str(part.length)
        return StreamingResponse(self.retrieve.stream(part.body(0, None)), status, headers, media_type=part.media_type)

    async def _bytes(self, request: Request, data: bytes, media_type: str, headers: dict[str, str], status: int,
                     compressible: bool) -> Response:
        if compressible and len(data) >= self.settings.gzip_min_bytes and _accepts_gzip(request):
            data = await self.retrieve.compress(data, GZIP_LEVEL, self.compressed, headers["ETag"])
            headers["Content-Encoding"] = "gzip"
            headers["ETag"] = headers["ETag"][:-1] + '-gzip"'  # other bytes, other strong validator
        return Response(data, status, headers, media_type=media_type)


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


def _gzip_size(packed: bytes) -> int:
    """The length of what a gzip body holds, from its trailer's ISIZE (RFC 1952 §2.3.1; bodies under 4 GiB)."""
    return int.from_bytes(packed[-4:], "little")


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
