"""A streaming multipart/related body and a constant-memory reader (PS3.18 §8.6.1.2, RFC 2387).

CRLF everywhere; each part has Content-Type, Content-Location (when it represents a resource) and
Content-Length; the whole body's length is known up front whenever every part's is.
"""

from __future__ import annotations

import hashlib
import logging
import mmap
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import BinaryIO

from ..errors import BadRequest, DicomWebError
from ..retrieve import Part

CRLF = b"\r\n"
log = logging.getLogger(__name__)


class MultipartBody:
    """One multipart/related body (§8.6.1.2): its Content-Type, its length when known, and its bytes in chunks.

    The boundary is derived from the representation's ETag, so that one ETag always names one body.
    """

    def __init__(self, part_type: str, parts: Sequence[Part], etag: str, root: str) -> None:
        self.parts = parts
        self.root = root  # Content-Location is the DICOMweb root URL and the part's location
        self.boundary = "DICOMwebBoundary" + hashlib.sha256(etag.encode()).hexdigest()[:24]
        self.content_type = f'multipart/related; type="{part_type}"; boundary={self.boundary}'

    @property
    def length(self) -> int | None:
        """Length of the whole body, if every part's length is known."""
        total = len(self._tail())
        for part in self.parts:
            if part.length is None:
                return None
            total += len(self._head(part, part.length)) + part.length + 2
        return total

    def chunks(self, parts: Iterable[Part] | None = None, chunk: int = 1 << 20) -> Iterator[bytes]:
        """The body in chunks of about ``chunk`` bytes, in constant memory.

        ``parts``: the same parts as they are produced (``Retrieve.produce``), when not all are ready. Headers,
        values and delimiters are joined into large chunks: each chunk costs the server a thread hop and a socket
        write, so many small ones would dominate the time.
        """
        pending: list[bytes] = []
        size = 0
        for piece in self._pieces(self.parts if parts is None else parts):
            if len(piece) >= chunk:  # already big: send it as it is rather than copy it into a join
                if pending:
                    yield b"".join(pending)
                    pending, size = [], 0
                yield piece
                continue
            pending.append(piece)
            size += len(piece)
            if size >= chunk:
                yield b"".join(pending)
                pending, size = [], 0
        if pending:
            yield b"".join(pending)

    def _head(self, part: Part, length: int) -> bytes:
        lines = [f"--{self.boundary}", f"Content-Type: {part.media_type}"]
        if part.location is not None:
            lines.append(f"Content-Location: {self.root}{part.location}")
        lines.append(f"Content-Length: {length}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _tail(self) -> bytes:
        return f"--{self.boundary}--\r\n".encode()

    def _pieces(self, parts: Iterable[Part]) -> Iterator[bytes]:
        for part in parts:
            if part.length is None:
                try:
                    data = part.read_all()
                except DicomWebError as exc:
                    # The status line is already sent: leave the part out, keep the body well-formed.
                    log.error("part %s left out of a multipart response: %s", part.location, exc.message)
                    continue
                yield self._head(part, len(data)) + data + CRLF
                continue
            yield self._head(part, part.length)
            yield from part.body(0, None)
            yield CRLF
        yield self._tail()


class Window:
    """A read-only, seekable view of ``[start, end)`` of another file (one part of a request body)."""

    def __init__(self, source: mmap.mmap, start: int, end: int) -> None:
        self._source, self._start, self._end, self._pos = source, start, end, start

    def read(self, size: int = -1) -> bytes:
        stop = self._end if size is None or size < 0 else min(self._end, self._pos + size)
        data = self._source[self._pos:stop]
        self._pos = stop
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: self._start, 1: self._pos, 2: self._end}[whence]
        self._pos = max(self._start, min(self._end, base + offset))
        return self._pos - self._start

    def tell(self) -> int:
        return self._pos - self._start

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True


_HEADER = re.compile(rb"^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$")


def read_parts(body: BinaryIO, boundary: str) -> Iterator[tuple[dict[str, str], Window]]:
    """Split a spooled request body into (headers, content) without copying the contents."""
    body.seek(0, 2)
    if body.tell() == 0:
        raise BadRequest("the request has no payload")
    body.seek(0)
    mapped = mmap.mmap(body.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        yield from _split(mapped, boundary)
    finally:
        mapped.close()


def _split(mapped: mmap.mmap, boundary: str) -> Iterator[tuple[dict[str, str], Window]]:
    delimiter = b"--" + boundary.encode("latin-1")
    position = mapped.find(delimiter)
    if position < 0:
        raise BadRequest("the multipart payload does not contain its boundary")
    while True:
        position += len(delimiter)
        if mapped[position:position + 2] == b"--":
            return
        line_end = mapped.find(CRLF, position)
        if line_end < 0:
            raise BadRequest("the multipart payload is truncated")
        headers_end = mapped.find(CRLF + CRLF, line_end)
        if headers_end < 0:
            raise BadRequest("a part of the multipart payload has no end of headers")
        headers: dict[str, str] = {}
        if headers_end > line_end:
            for raw in mapped[line_end + 2:headers_end].split(CRLF):
                match = _HEADER.match(raw)
                if match:
                    headers[match.group(1).decode("latin-1").lower()] = match.group(2).decode("latin-1")
        content_start = headers_end + 4
        following = mapped.find(CRLF + delimiter, content_start - 2)
        if following < 0:
            raise BadRequest("the multipart payload is truncated (no closing boundary)")
        yield headers, Window(mapped, content_start, following)
        position = following + 2
