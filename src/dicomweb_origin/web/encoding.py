"""Content codings of request bodies (RFC 9110 §8.4): STOW-RS bodies sent gzip- or deflate-compressed.

Decoding is incremental and bounded: each call yields pieces of at most ``PIECE`` bytes, so a small
compressed chunk that inflates to gigabytes (a zip bomb) is never held in memory at once, and the
caller counts every piece against its size limit.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

from ..errors import BadRequest, UnsupportedMediaType

PIECE = 1 << 20


class ContentDecoder:
    """Inflates one request body; gzip may hold several members one after another (RFC 1952 §2.2)."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self._gzip = coding in ("gzip", "x-gzip")
        self._inflate = self._new()

    def _new(self) -> zlib._Decompress:
        return zlib.decompressobj(16 + zlib.MAX_WBITS if self._gzip else zlib.MAX_WBITS)

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The decoded bytes of the next chunk of the body, in pieces of at most ``PIECE`` bytes."""
        while data:
            if self._inflate.eof:
                if not self._gzip:
                    raise BadRequest("the request body goes on after the end of its deflate stream")
                self._inflate = self._new()  # the next gzip member
            try:
                piece = self._inflate.decompress(data, PIECE)
            except zlib.error as exc:
                raise BadRequest(f"the request body is not valid {self.coding} data: {exc}") from exc
            if piece:
                yield piece
            data = self._inflate.unconsumed_tail or (self._inflate.unused_data if self._inflate.eof else b"")

    def finish(self) -> None:
        """Refuse a body that ended inside its compressed stream."""
        if not self._inflate.eof:
            raise BadRequest(f"the request body ends before its {self.coding} stream does")


def content_decoder(coding: str | None) -> ContentDecoder | None:
    """The decoder for a request's Content-Encoding (§8.4.3: gzip and deflate); None for identity."""
    name = (coding or "identity").strip().lower()
    if name in ("", "identity"):
        return None
    if name in ("gzip", "x-gzip", "deflate"):
        return ContentDecoder(name)
    raise UnsupportedMediaType(f"Content-Encoding {name!r} is not supported: send identity, gzip or deflate")
