"""Bound the nesting of sequences before pydicom reads a file.

pydicom reads nested sequences recursively, copying each defined-length item's bytes again at
every level: a 200 KB file of sequences nested 10,000 deep cost 187 MB and a RecursionError
(logged with a traceback) per request. Real data rarely nests deeper than ~10 levels (e.g.
Enhanced multi-frame functional groups: 3-4; SR content trees: a dozen at most), so ingest refuses
files nested deeper than ``max_sequence_depth`` (default 32) with 0xC000, walking only element
headers: one small read per element, no values, no recursion.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import BinaryIO

from pydicom.datadict import dictionary_VR

from ..errors import IngestError
from ..model.media import DEFLATED_EXPLICIT_VR_LE, EXPLICIT_VR_BE, IMPLICIT_VR_LE

_UNDEFINED = 0xFFFFFFFF
# Explicit VRs with a 4-byte value length (PS3.5 Table 7.1-1).
_LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
_DATASET, _SEQUENCE, _FRAGMENTS = 0, 1, 2


def check_depth(fp: BinaryIO, start: int, limit: int) -> None:
    """Raise IngestError when sequences in the file at ``start`` nest deeper than ``limit`` levels.

    A structure the walk does not understand ends it quietly: pydicom and the completeness check
    judge the rest. Deflated data sets are checked after inflating (they are re-encoded first).
    """
    resume = fp.tell()
    try:
        _walk(fp, start, limit)
    except struct.error:
        pass
    finally:
        fp.seek(resume)


def _walk(fp: BinaryIO, start: int, limit: int) -> None:
    size = fp.seek(0, 2)

    def head(position: int, length: int) -> bytes:
        fp.seek(position)
        return fp.read(length)

    position, syntax = _skip_file_meta(head, start)
    if syntax == DEFLATED_EXPLICIT_VR_LE:
        return
    order = ">" if syntax == EXPLICIT_VR_BE else "<"
    if syntax:
        implicit = syntax == IMPLICIT_VR_LE
    else:  # no File Meta: explicit when a VR follows the first tag (as pydicom guesses)
        first_vr = head(position + 4, 2)
        implicit = not (len(first_vr) == 2 and first_vr.isalpha() and first_vr.isupper())
    # (kind, end or None when undefined, implicit VR inside)
    stack: list[tuple[int, int | None, bool]] = [(_DATASET, size, implicit)]
    depth = 0
    while True:
        kind, end, implicit = stack[-1]
        if end is not None and position >= end:
            if len(stack) == 1:
                return
            depth -= stack.pop()[0] == _SEQUENCE
            continue
        if kind != _DATASET:  # items of a sequence, or fragments of encapsulated pixel data
            header = head(position, 8)
            if len(header) < 8:
                return
            group, element, length = struct.unpack(f"{order}HHI", header)
            position += 8
            if (group, element) == (0xFFFE, 0xE0DD):  # Sequence Delimitation Item
                depth -= stack.pop()[0] == _SEQUENCE
            elif (group, element) != (0xFFFE, 0xE000):
                return
            elif kind == _FRAGMENTS:
                if length == _UNDEFINED:
                    return
                position += length
            else:
                stack.append((_DATASET, None if length == _UNDEFINED else position + length, implicit))
            continue
        header = head(position, 12)
        if len(header) < 8:
            return
        group, element = struct.unpack(f"{order}HH", header[:4])
        if group == 0xFFFE:
            if element == 0xE00D and len(stack) > 1:  # Item Delimitation Item
                position += 8
                stack.pop()
                continue
            return
        if implicit:
            length, position = struct.unpack(f"{order}I", header[4:8])[0], position + 8
            try:
                vr = dictionary_VR((group << 16) | element)
            except KeyError:
                vr = "UN"
        else:
            vr = header[4:6].decode("latin-1")
            if vr in _LONG_VRS:
                if len(header) < 12:
                    return
                length, position = struct.unpack(f"{order}I", header[8:12])[0], position + 12
            elif vr.isalpha() and vr.isupper():
                length, position = struct.unpack(f"{order}H", header[6:8])[0], position + 8
            else:
                return
        # Undefined length: a sequence, unless it is encapsulated pixel data; an explicit UN of
        # undefined length is a sequence encoded as Implicit VR (PS3.5 §6.2.2).
        if vr == "SQ" or (length == _UNDEFINED and (implicit or vr == "UN")):
            depth += 1
            if depth > limit:
                raise IngestError(f"sequences are nested deeper than {limit} levels (this server's limit)")
            stack.append((_SEQUENCE, None if length == _UNDEFINED else position + length, implicit or vr == "UN"))
        elif length == _UNDEFINED:
            stack.append((_FRAGMENTS, None, implicit))
        else:
            position += length


def _skip_file_meta(read: Callable[[int, int], bytes], start: int) -> tuple[int, str]:
    """Where the File Meta group (Explicit VR Little Endian, PS3.10 §7.1) ends, and its Transfer Syntax UID."""
    position, syntax = start, ""
    while True:
        header = read(position, 12)
        if len(header) < 8 or header[:2] != b"\x02\x00":
            return position, syntax
        vr = header[4:6].decode("latin-1")
        if vr in _LONG_VRS:
            length, value_at = int.from_bytes(header[8:12], "little"), position + 12
        else:
            length, value_at = int.from_bytes(header[6:8], "little"), position + 8
        if header[2:4] == b"\x10\x00":  # (0002,0010) Transfer Syntax UID
            syntax = read(value_at, min(length, 64)).rstrip(b"\0 ").decode("latin-1")
        position = value_at + length
