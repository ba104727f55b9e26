"""What the bytes of an incoming file must be before pydicom reads them: a start, complete lengths, bounded nesting.

Each check walks element headers only (one small read per element, no values, no recursion), because pydicom
reads anything with ``force=True`` and trusts what it reads:

* ``start_problem``: a stored instance begins with File Meta (0002) or group 0008, never with Command elements;
* ``check_complete``: every declared length ends inside the file (pydicom reads a truncated file silently);
* ``check_depth``: sequences nest at most ``max_sequence_depth`` levels.

pydicom reads nested sequences recursively, copying each defined-length item's bytes again at
every level: a 200 KB file of sequences nested 10,000 deep cost 187 MB and a RecursionError
(logged with a traceback) per request. Real data rarely nests deeper than ~10 levels (e.g.
Enhanced multi-frame functional groups: 3-4; SR content trees: a dozen at most), so ingest refuses
files nested deeper than ``max_sequence_depth`` (default 32) with 0xC000, walking only element
headers: one small read per element, no values, no recursion.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from typing import BinaryIO

from pydicom.datadict import dictionary_VR

from ..errors import IngestError
from ..model.media import DEFLATED_EXPLICIT_VR_LE, EXPLICIT_VR_BE, IMPLICIT_VR_LE

_UNDEFINED = 0xFFFFFFFF
# Explicit VRs with a 4-byte value length (PS3.5 Table 7.1-1).
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})
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
            if header[4:6] in _LONG_VRS:
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
        if header[4:6] in _LONG_VRS:
            length, value_at = int.from_bytes(header[8:12], "little"), position + 12
        else:
            length, value_at = int.from_bytes(header[6:8], "little"), position + 8
        if header[2:4] == b"\x10\x00":  # (0002,0010) Transfer Syntax UID
            syntax = read(value_at, min(length, 64)).rstrip(b"\0 ").decode("latin-1")
        position = value_at + length


def start_problem(fp: BinaryIO, start: int) -> str | None:
    """Say why the bytes at ``start`` cannot begin a stored instance, looking at a few tags only.

    pydicom reads anything with ``force=True``: a part of zeros becomes millions of empty Command
    (0000,eeee) elements, seconds of CPU per megabyte. A stored instance begins with its File Meta
    group (0002) or, without one, with group 0008 (SOP Class UID is mandatory); its data set never
    holds Command elements. Refusing those starts costs a few small reads.
    """
    fp.seek(start)
    head = fp.read(2)
    try:
        if head == b"\x02\x00":
            end = _file_meta_end(fp, start)
            if end is not None:  # a deflated data set begins with compressed bytes, not a tag
                fp.seek(start)
                meta = fp.read(end - start)
                if DEFLATED_EXPLICIT_VR_LE.encode() not in meta and fp.read(2) == b"\x00\x00":
                    return "the data set begins with Command (0000,eeee) elements: not a stored instance"
        elif head not in (b"\x08\x00", b"\x00\x08"):  # group 0008, little or big endian
            return "the data begins with neither File Meta Information (0002) nor group 0008"
        return None
    finally:
        fp.seek(0)


def _file_meta_end(fp: BinaryIO, start: int) -> int | None:
    """Where the File Meta group (Explicit VR Little Endian, PS3.10 §7.1) ends, walked element by element.

    Its group length element is not trusted; None when the walk finds no plausible end within 64 KiB.
    """
    position = start
    while position - start <= 1 << 16:
        fp.seek(position)
        head = fp.read(8)
        if len(head) < 8 or head[:2] != b"\x02\x00":
            return position
        if head[4:6] in _LONG_VRS:
            extended = fp.read(4)
            if len(extended) < 4:
                return None
            position += 12 + int.from_bytes(extended, "little")
        else:
            position += 8 + int.from_bytes(head[6:8], "little")
    return None


class _Unsure(Exception):
    """The structure is one the completeness check does not understand: leave it to pydicom."""


def check_complete(fp: BinaryIO, start: int, implicit: bool, little: bool) -> None:
    """Refuse a truncated file: every declared length must end inside the file (PS3.5 §7.1).

    pydicom reads a file that ends inside a value or an undefined-length sequence without
    complaint (e.g. pydicom's ``MR_truncated.dcm``, ``rtplan_truncated.dcm``); storing it would
    serve broken data forever. Only value headers are read, so the cost is one seek per element.
    """
    resume = fp.tell()
    size = fp.seek(0, io.SEEK_END)
    end = "<" if little else ">"

    def head(position: int, length: int) -> bytes:
        fp.seek(position)
        return fp.read(length)

    def elements(position: int, implicit: bool, top: bool) -> int:
        while True:
            if top and position >= size:
                return position
            header = head(position, 12)
            if len(header) < 8:
                raise IngestError(f"the file is truncated: it ends inside a data element header at byte {position}")
            # File Meta Information (group 0002) is always Explicit VR Little Endian (PS3.10 §7.1).
            meta = top and header[:2] == b"\x02\x00"
            order = "<" if meta else end
            group, element = struct.unpack(f"{order}HH", header[:4])
            if group == 0xFFFE:
                if element == 0xE00D and not top:  # Item Delimitation Item
                    return position + 8
                raise _Unsure
            if implicit and not meta:
                length, header_length, vr = struct.unpack(f"{order}I", header[4:8])[0], 8, b""
            else:
                vr = header[4:6]
                if vr in _LONG_VRS:
                    if len(header) < 12:
                        raise IngestError(f"the file is truncated at byte {position}")
                    length, header_length = struct.unpack(f"{order}I", header[8:12])[0], 12
                elif vr.isalpha() and vr.isupper():
                    length, header_length = struct.unpack(f"{order}H", header[6:8])[0], 8
                else:
                    raise _Unsure  # a VR pydicom reads leniently; nothing to conclude here
            position += header_length
            if length == 0xFFFFFFFF:
                position = items(position, implicit or vr == b"UN")
                continue
            if position + length > size:
                raise IngestError(
                    f"the file is truncated: element ({group:04X},{element:04X}) declares {length} bytes"
                    f" but only {max(size - position, 0)} remain"
                )
            position += length

    def items(position: int, implicit: bool) -> int:
        while True:
            header = head(position, 8)
            if len(header) < 8:
                raise IngestError("the file is truncated: it ends inside an undefined-length sequence")
            group, element, length = struct.unpack(f"{end}HHI", header)
            position += 8
            if (group, element) == (0xFFFE, 0xE0DD):  # Sequence Delimitation Item
                return position
            if (group, element) != (0xFFFE, 0xE000):
                raise _Unsure
            if length == 0xFFFFFFFF:
                position = elements(position, implicit, top=False)
            elif position + length > size:
                raise IngestError(f"the file is truncated: an item declares {length} bytes past the end of the file")
            else:
                position += length

    try:
        elements(start, implicit, top=True)
    except (_Unsure, struct.error):
        pass
    finally:
        fp.seek(resume)
