"""Encapsulated Pixel Data (PS3.5 A.4): items of fragments after a Basic Offset Table, and frames made of them.

Read at ingest (each frame's fragments, by the Extended or Basic Offset Table, one fragment per frame, or the
codestream markers that start a frame) and written on transcode (the items of frames spooled to disk).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from typing import BinaryIO

from pydicom.dataset import Dataset

from ..errors import IngestError
from ..model.stored import Frame

# The Item and Sequence Delimitation Item tags (FFFE,E000) and (FFFE,E0DD): as one little-endian uint32 when read,
# as bytes (with the delimiter's zero length) when written.
_ITEM, _SEQUENCE_DELIMITER = 0xE000FFFE, 0xE0DDFFFE
ITEM, SEQUENCE_DELIMITER = b"\xfe\xff\x00\xe0", b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
# The pixel data elements by keyword (PS3.3 C.7.6.3, C.7.6.24)
PIXEL_TAGS = {"PixelData": 0x7FE00010, "FloatPixelData": 0x7FE00008, "DoubleFloatPixelData": 0x7FE00009}


def read_fragments(fp: BinaryIO, value_start: int) -> tuple[list[tuple[int, int]], list[int]]:
    """Walk the items of encapsulated pixel data: the Basic Offset Table, then each fragment."""
    fp.seek(value_start)
    fragments: list[tuple[int, int]] = []
    offsets: list[int] = []
    first = True
    position = value_start
    while True:
        header = fp.read(8)
        if len(header) < 8:
            raise IngestError("encapsulated Pixel Data is truncated (no Sequence Delimitation Item)")
        tag, length = struct.unpack("<II", header)
        position += 8
        if tag == _SEQUENCE_DELIMITER:
            break
        if tag != _ITEM or length == 0xFFFFFFFF:
            raise IngestError(f"encapsulated Pixel Data has a bad item at byte {position - 8}")
        if first:
            table = fp.read(length)
            if len(table) < length:
                raise IngestError("encapsulated Pixel Data is truncated in its Basic Offset Table")
            offsets = list(struct.unpack(f"<{length // 4}I", table[: length - length % 4]))
            first = False
        else:
            fragments.append((position, length))
            fp.seek(length, io.SEEK_CUR)
        position += length
    if fragments and fragments[-1][0] + fragments[-1][1] > position:
        raise IngestError("encapsulated Pixel Data is truncated")
    return fragments, offsets


def group_fragments(
    fp: BinaryIO,
    fragments: list[tuple[int, int]],
    offsets: list[int],
    dataset: Dataset,
    count: int,
    value_start: int,
) -> tuple[Frame, ...]:
    """Assign fragments to frames: Extended / Basic Offset Table, one per frame, or frame markers."""
    if not fragments:
        raise IngestError("encapsulated Pixel Data has no fragments")
    if count == 1:
        return (tuple(fragments),)
    extended = dataset["ExtendedOffsetTable"].value if "ExtendedOffsetTable" in dataset else None
    if extended:  # PS3.5 A.4: 64-bit offsets, used when the Basic Offset Table is empty
        offsets = list(struct.unpack(f"<{len(extended) // 8}Q", extended[: len(extended) - len(extended) % 8]))
    if offsets and len(offsets) == count:
        # Offsets count from the first byte of the first fragment's item tag.
        base = fragments[0][0] - 8
        starts = [base + o for o in offsets] + [fragments[-1][0] + fragments[-1][1] + 8]
        frames = [
            tuple(f for f in fragments if starts[i] <= f[0] - 8 < starts[i + 1]) for i in range(count)
        ]
        if all(frames):
            return tuple(frames)
    if len(fragments) == count:
        return tuple((f,) for f in fragments)
    # No usable table: a fragment that opens with a codestream marker starts a new frame.
    grouped: list[list[tuple[int, int]]] = []
    for fragment in fragments:
        fp.seek(fragment[0])
        if not grouped or _starts_frame(fp.read(12)):
            grouped.append([fragment])
        else:
            grouped[-1].append(fragment)
    if len(grouped) != count:
        raise IngestError(
            f"cannot tell the {count} frames apart among {len(fragments)} fragments (no offset table)"
        )
    return tuple(tuple(g) for g in grouped)


def _starts_frame(head: bytes) -> bool:
    return head[:2] in (b"\xff\xd8", b"\xff\x4f") or head[4:12] == b"jP  \r\n\x87\n"


def pixel_element_start(prefix: bytes, encapsulated: bool, keyword: str = "PixelData") -> int | None:
    """Where the stored pixel data element begins, in ``prefix``: the stored file up to its first frame's value.

    Native: the 12-byte Explicit VR header just before the value. Encapsulated: the header, the Basic Offset Table
    item and the first fragment's item header (PS3.5 A.4), found by walking back over a Basic Offset Table of any
    length. None when the bytes are not laid out so (the caller reads the whole instance instead).
    """
    tag = PIXEL_TAGS[keyword].to_bytes(4, "big")
    tag = tag[1::-1] + tag[:1:-1]  # (gggg,eeee) little endian: group then element
    if not encapsulated:
        start = len(prefix) - 12
        return start if start >= 0 and prefix[start:start + 4] == tag and prefix[start + 6:start + 8] == b"\0\0" \
            else None
    if prefix[-8:-4] != ITEM:
        return None
    start = prefix.rfind(tag)
    while start >= 0:  # the header (OB, or OW as some writers have it), undefined length, then the table's item
        header = prefix[start + 4:start + 16]
        bot = int.from_bytes(prefix[start + 16:start + 20], "little")
        if header[:2] in (b"OB", b"OW") and header[2:] == b"\0\0\xff\xff\xff\xff" + ITEM \
                and start + 20 + bot == len(prefix) - 8:
            return start
        start = prefix.rfind(tag, 0, start)
    return None


def spooled_items(spool: BinaryIO, lengths: list[int], table: bytes) -> Iterator[bytes]:
    """The Basic Offset Table item, one item per frame read back from ``spool``, the Sequence Delimiter."""
    try:
        yield table
        spool.seek(0)
        for length in lengths:
            yield ITEM + struct.pack("<I", length)
            remaining = length
            while remaining:
                chunk = spool.read(min(remaining, 1 << 20))
                if not chunk:
                    raise OSError("the spooled frames ended early")
                remaining -= len(chunk)
                yield chunk
        yield SEQUENCE_DELIMITER
    finally:
        spool.close()
