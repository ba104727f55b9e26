"""Read what a compressed frame says of itself (size, components, precision) before any decoder sees it.

A decoder allocates what its bitstream's header claims: a 300-byte JPEG 2000 codestream whose SIZ marker says
60000 x 60000 makes OpenJPEG reserve gigabytes and work for seconds before it finds there is nothing to decode.
So the header of every compressed frame is compared with the Rows, Columns, Samples per Pixel and Bits Allocated
of its data set first, at ingest and before each decode (PS3.5 §8.2: the values in the bitstream shall be
consistent with those of the Image Pixel module). Reading a header walks a few marker segments: microseconds.

Formats read, by their own standards:

* JPEG 2000 and HTJ2K (ISO/IEC 15444-1 A.5.1 SIZ; 15444-15 keeps it): the image area is Xsiz - XOsiz by
  Ysiz - YOsiz, Csiz components, precision (Ssiz & 0x7F) + 1; at most 65535 tiles (Isot is 16 bits, A.4.2).
  A JP2 file (its codestream in a ``jp2c`` box), which some writers put in Pixel Data, is read too.
* JPEG (ISO/IEC 10918-1 B.2.2): the SOFn segment's P, Y, X and Nf.
* JPEG-LS (ISO/IEC 14495-1 C.2.2): SOF55, and an LSE segment of ID 4 that gives larger dimensions (C.2.4.1.4).
* RLE Lossless (PS3.5 G.5): the 64-byte header; its number of segments is Samples per Pixel times the bytes of
  Bits Allocated (G.2), and its offsets must lie in the frame.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydicom import uid

from ..model.stored import PixelDescription

__all__ = ["FrameHeader", "HeaderError", "Truncated", "frame_problem", "read_header"]

MAX_TILES = 65535  # ISO 15444-1 A.4.2: Isot, the tile index, is 16 bits (0..65534)
J2K = "JPEG 2000"
JPEG = "JPEG"
JPEG_LS = "JPEG-LS"
RLE = "RLE"

_SOC, _SIZ = b"\xff\x4f", b"\xff\x51"
_SOI, _SOS, _SOF55, _LSE = 0xD8, 0xDA, 0xF7, 0xF8
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # SOF0..SOF15 but DHT, JPG and DAC
_NO_LENGTH = frozenset({0x01, *range(0xD0, 0xD9)})  # TEM, RST0..7, SOI: markers without a segment


class HeaderError(ValueError):
    """The frame's header cannot be read: not the format its transfer syntax names, or malformed."""


class Truncated(HeaderError):
    """The bytes end inside the header: a caller holding only the start of a frame may read more."""


@dataclass(frozen=True, slots=True)
class FrameHeader:
    """What a bitstream's header says; None where its format does not say it (RLE has no dimensions)."""

    format: str
    columns: int | None
    rows: int | None
    samples: int | None
    precision: int | None  # the largest bits per sample of any component
    segments: int | None = None  # RLE: the number of segments


def _unpack(fmt: str, data: bytes, offset: int) -> tuple[Any, ...]:
    end = offset + struct.calcsize(fmt)
    if end > len(data):
        raise Truncated("the header is cut short")
    return struct.unpack_from(fmt, data, offset)


def _jp2_codestream(data: bytes) -> int:
    """The offset of the codestream in a JP2 file: the contents of its ``jp2c`` box (ISO 15444-1 I.5.4)."""
    position = 0
    while True:
        length, kind = _unpack(">I4s", data, position)
        header = 8
        if length == 1:  # XLBox: a 64-bit length follows
            (length,) = _unpack(">Q", data, position + 8)
            header = 16
        if kind == b"jp2c":
            return position + header
        if length == 0 or length < header:
            raise HeaderError("a JP2 file without a codestream box")
        position += length


def _j2k(data: bytes) -> FrameHeader:
    start = 0
    if data[:2] != _SOC:
        start = _jp2_codestream(data)
        if data[start:start + 2] != _SOC and len(data) >= start + 2:
            raise HeaderError("no JPEG 2000 codestream (no SOC marker)")
    if _unpack(">2s", data, start + 2)[0] != _SIZ:
        raise HeaderError("a JPEG 2000 codestream whose first marker is not SIZ")
    (length, _, xsiz, ysiz, xosiz, yosiz, xtsiz, ytsiz, xtosiz, ytosiz, csiz) = _unpack(
        ">HHIIIIIIIIH", data, start + 4)
    if not 1 <= csiz <= 16384 or length != 38 + 3 * csiz:
        raise HeaderError(f"a JPEG 2000 SIZ marker of length {length} for {csiz} components")
    if xsiz <= xosiz or ysiz <= yosiz or not xtsiz or not ytsiz or xtosiz > xosiz or ytosiz > yosiz \
            or xtsiz + xtosiz <= xosiz or ytsiz + ytosiz <= yosiz:
        raise HeaderError("a JPEG 2000 SIZ marker whose image and tile areas do not fit together (A.5.1)")
    tiles = -(-(xsiz - xtosiz) // xtsiz) * -(-(ysiz - ytosiz) // ytsiz)
    if tiles > MAX_TILES:
        raise HeaderError(f"a JPEG 2000 codestream of {tiles} tiles (at most {MAX_TILES}, A.4.2)")
    components = _unpack(f">{3 * csiz}B", data, start + 42)
    precisions = [(ssiz & 0x7F) + 1 for ssiz in components[0::3]]
    if max(precisions) > 38 or 0 in components[1::3] or 0 in components[2::3]:
        raise HeaderError("a JPEG 2000 SIZ marker with a precision over 38 bits or a zero sub-sampling")
    return FrameHeader(J2K, xsiz - xosiz, ysiz - yosiz, csiz, max(precisions))


def _jpeg(data: bytes, name: str) -> FrameHeader:
    """The SOFn (and JPEG-LS LSE ID 4) values, walking marker segments up to the first SOS."""
    if data[:2] != b"\xff\xd8":
        if len(data) < 2:
            raise Truncated("the header is cut short")
        raise HeaderError(f"no {name} bitstream (no SOI marker)")
    position = 2
    found: FrameHeader | None = None
    while True:
        (byte,) = _unpack("B", data, position)
        if byte != 0xFF:
            raise HeaderError(f"a {name} bitstream with bytes between marker segments")
        while (marker := _unpack("B", data, position + 1)[0]) == 0xFF:  # fill bytes (B.1.1.2)
            position += 1
        if marker in _NO_LENGTH:
            position += 2
            continue
        (length,) = _unpack(">H", data, position + 2)
        if length < 2:
            raise HeaderError(f"a {name} marker segment of length {length}")
        if marker in _SOF or marker == _SOF55:
            if found is not None:
                raise HeaderError(f"a {name} bitstream with two frame headers")
            precision, rows, columns, components = _unpack(">BHHB", data, position + 4)
            found = FrameHeader(JPEG_LS if marker == _SOF55 else JPEG, columns, rows, components, precision)
        elif marker == _LSE and found is not None and _unpack("B", data, position + 4)[0] == 4:
            (width,) = _unpack("B", data, position + 5)  # C.2.4.1.4: Wxy bytes each for Y and X
            if not 2 <= width <= 4:
                raise HeaderError(f"a JPEG-LS LSE segment with {width}-byte dimensions")
            rows = int.from_bytes(_unpack(f"{width}s", data, position + 6)[0], "big")
            columns = int.from_bytes(_unpack(f"{width}s", data, position + 6 + width)[0], "big")
            found = FrameHeader(JPEG_LS, columns, rows, found.samples, found.precision)
        elif marker == _SOS or marker == 0xD9:
            if found is None:
                raise HeaderError(f"a {name} bitstream without a frame header (SOF)")
            return found
        position += 2 + length


def _rle(data: bytes, size: int) -> FrameHeader:
    header = _unpack("<16I", data, 0)
    segments, offsets = header[0], header[1:header[0] + 1]
    if not 1 <= segments <= 15:
        raise HeaderError(f"an RLE header of {segments} segments (1 to 15, PS3.5 G.5)")
    if offsets[0] != 64 or any(b <= a for a, b in zip(offsets, offsets[1:], strict=False)) \
            or offsets[-1] >= size:
        raise HeaderError("an RLE header whose segment offsets do not lie in order within the frame")
    return FrameHeader(RLE, None, None, None, None, segments)


# Transfer syntax UID -> reader of its frames' headers
_READERS: dict[str, Callable[[bytes, int], FrameHeader]] = {
    **{syntax: lambda d, _: _jpeg(d, JPEG)
       for syntax in (uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit, uid.JPEGLossless, uid.JPEGLosslessSV1)},
    **{syntax: lambda d, _: _jpeg(d, JPEG_LS) for syntax in (uid.JPEGLSLossless, uid.JPEGLSNearLossless)},
    **{syntax: lambda d, _: _j2k(d)
       for syntax in (uid.JPEG2000Lossless, uid.JPEG2000, uid.JPEG2000MCLossless, uid.JPEG2000MC,
                      uid.HTJ2KLossless, uid.HTJ2KLosslessRPCL, uid.HTJ2K)},
    uid.RLELossless: _rle,
}


def read_header(data: bytes, transfer_syntax_uid: str, size: int | None = None) -> FrameHeader | None:
    """The header of one compressed frame, or None for a syntax whose frames have none to check.

    ``data`` may be the start of a frame of ``size`` bytes. HeaderError when the header cannot be read
    (Truncated when ``data`` ends inside it).
    """
    reader = _READERS.get(transfer_syntax_uid)
    return None if reader is None else reader(data, len(data) if size is None else size)


def _bytes_per_sample(bits_allocated: int) -> int:
    return max(1, -(-bits_allocated // 8))


def frame_problem(header: FrameHeader, pixel: PixelDescription) -> str | None:
    """Why a frame with this header does not belong to a data set described by ``pixel``, or None."""
    what = f"its {header.format} header"
    if header.columns is not None and (header.columns, header.rows) != (pixel.columns, pixel.rows):
        return (f"{what} says {header.columns} x {header.rows} pixels where Columns x Rows say"
                f" {pixel.columns} x {pixel.rows}")
    if header.samples is not None and header.samples != pixel.samples_per_pixel:
        return f"{what} says {header.samples} components where Samples per Pixel says {pixel.samples_per_pixel}"
    if header.precision is not None and header.precision > pixel.bits_allocated:
        return f"{what} says {header.precision} bits per sample where Bits Allocated says {pixel.bits_allocated}"
    expected = pixel.samples_per_pixel * _bytes_per_sample(pixel.bits_allocated)
    if header.segments is not None and header.segments != expected:
        return (f"{what} has {header.segments} segments where Samples per Pixel and Bits Allocated"
                f" make {expected} (PS3.5 G.2)")
    return None
