"""STOW-RS intake (PS3.18 §10.5): check the request, read its body at a fair pace, spool it, split its parts.

The body is read as it arrives and written, decoded (Content-Encoding, RFC 9110 §8.4), to an unnamed temporary
file, within ``--max-request-bytes`` and the pace limits; its parts are then split out of the file without copying
them (``multipart.read_parts``) and handed to the Store use case, which stores them and answers.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import IO, BinaryIO, cast

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from ..errors import BadRequest, DicomWebError, PayloadTooLarge, RequestTimeout, UnsupportedMediaType
from ..ingest import Ingest, StoreResult
from ..negotiation import Offer, acceptable_media_types, negotiate, parse_media_range
from ..retrieve import Target
from ..settings import Settings
from . import multipart
from .encoding import ContentDecoder, content_decoder
from .request import header_field, root
from .send import warning_value

# Table 10.5.4-1: the response module as DICOM JSON (the default) or Native XML; one document, whatever the
# wrapping asked for; ``application/json`` is honoured as DICOM JSON when named.
RESPONSE_OFFERS = tuple(Offer(media_type, multipart=multipart, wildcard=media_type != "application/json")
                        for media_type in ("application/dicom+json", "application/dicom+xml", "application/json")
                        for multipart in (False, True))


class Stow:
    """Takes STOW-RS requests for one application, and counts their instances by outcome (for the metrics)."""

    def __init__(self, ingest: Ingest, settings: Settings) -> None:
        self.ingest = ingest
        self.settings = settings
        self.outcomes: Counter[str] = Counter()  # STOW-RS instances by Outcome value

    async def store(self, request: Request) -> Response:
        study = request.path_params.get("study")
        study_uid = Target.parse(study).study_uid if study is not None else None
        boundary = self._boundary(request.headers.get("content-type", ""))
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.settings.max_request_bytes:
            raise PayloadTooLarge(f"the request declares {declared} bytes; this server takes at most"
                                  f" {self.settings.max_request_bytes}")
        decoder = content_decoder(request.headers.get("content-encoding"))
        spool = tempfile.TemporaryFile()  # noqa: SIM115
        try:
            size = 0
            async for chunk in _body(request, self.settings.body_idle_seconds, self.settings.body_min_bytes_per_second):
                # A write to the spool file is blocking I/O: in a worker thread.
                size = await anyio.to_thread.run_sync(self._spool, spool, decoder, chunk, size)
            if decoder is not None:
                decoder.finish()
            xml = prefers_xml(header_field(request.headers, "accept"))
            answer = await self.ingest.store_request(_parts(spool, boundary), study_uid, root(request, self.settings),
                                                     xml)
        finally:
            spool.close()
        self.outcomes.update(r.outcome.value for r in answer.results)  # on the loop: STOWs never race on the tally
        headers = {}
        if reasons := _reasons(answer.results):
            headers["Warning"] = warning_value([reasons])
        return Response(answer.body, answer.status, headers, media_type=answer.media_type)

    @staticmethod
    def _boundary(content_type: str) -> str:
        """The boundary of a ``multipart/related; type="application/dicom"`` body (§10.5.1.1), or 400 / 415."""
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
        return boundary

    def _spool(self, spool: IO[bytes], decoder: ContentDecoder | None, chunk: bytes, size: int) -> int:
        """Append one chunk of the body, decoded, to the spool; return the decoded size so far.

        The limit applies to the decoded body, piece by piece: a zip bomb is a 413, not a full disk.
        """
        for piece in decoder.feed(chunk) if decoder is not None else (chunk,):
            size += len(piece)
            if size > self.settings.max_request_bytes:
                raise PayloadTooLarge(f"the request exceeds {self.settings.max_request_bytes} bytes")
            spool.write(piece)
        return size


def _reasons(results: Iterable[StoreResult], most: int = 2000) -> str:
    """Why instances were not stored, as one text of at most ``most`` characters (10,000 parts may fail)."""
    text = ""
    for result in results:
        if result.reason:
            text += ("; " if text else "") + f"{result.instance_uid or 'part'}: {result.reason}"
            if len(text) >= most:
                break
    return text[:most]


def _parts(spool: IO[bytes], boundary: str) -> Iterator[tuple[str, BinaryIO]]:
    """Each part of the spooled body: its media type and a read-only view of its bytes (no copy)."""
    spool.flush()
    for headers, content in multipart.read_parts(cast(BinaryIO, spool), boundary):
        part_type = headers.get("content-type", "application/dicom").split(";")[0].strip().lower()
        yield part_type, cast(BinaryIO, content)


def prefers_xml(accept: str | None) -> bool:
    """Whether a STOW client ranks ``application/dicom+xml`` above DICOM JSON (Table 10.5.4-1).

    JSON is the default: without an Accept header (dicomweb-client sends none), or when neither
    type is named, the response is JSON rather than a 406 for a store that has already happened.
    """
    try:
        offer = negotiate(acceptable_media_types(accept or "*/*", []), RESPONSE_OFFERS)
    except DicomWebError:
        return False  # the instances are stored already: an odd Accept gets the default, not an error
    return offer is not None and offer.media_type == "application/dicom+xml"


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
