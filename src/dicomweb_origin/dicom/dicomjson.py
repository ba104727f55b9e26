"""The one reader of DICOM JSON data sets (PS3.18 Annex F): lenient, over what the server stores per instance.

A data set is a dict keyed by 8-hex tags whose values hold ``vr`` and one of ``Value``,
``InlineBinary`` (base64) or ``BulkDataURI`` (F.2.2). A malformed value reads as absent, never
as an error: a presentation state with one broken attribute still renders the rest. Stdlib and
numpy only (no pydicom), so ``render/`` reads metadata through it too.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..model.appearance import Lut

Json = Mapping[str, Any]


def values(ds: Json, tag: str) -> list[Any]:
    """The ``Value`` list of ``tag``; [] when absent, empty or not a list."""
    element = ds.get(tag)
    value = element.get("Value") if isinstance(element, Mapping) else None
    return list(value) if isinstance(value, list) else []


def strings(ds: Json, path: Sequence[str]) -> list[str]:
    """Every value of an attribute as a string, a PN as its alphabetic group; ``path`` leads through sequences
    (any item), e.g. ``("00081115", "0020000E")``."""
    if len(path) > 1:
        return [value for item in items(ds, path[0]) for value in strings(item, path[1:])]
    return [str(v.get("Alphabetic", "") if isinstance(v, Mapping) else v) for v in values(ds, path[0])]


def items(ds: Json, tag: str) -> list[Json]:
    """The items of a sequence (F.2.3: each item a data set)."""
    return [item for item in values(ds, tag) if isinstance(item, Mapping)]


def first(ds: Json, tag: str) -> Any:
    """The first value as it is; None when absent or empty."""
    found = values(ds, tag)
    return found[0] if found else None


def string(ds: Json, tag: str) -> str:
    """The first value as a string, unstripped; "" when absent or null."""
    value = first(ds, tag)
    return "" if value is None else str(value)


def text(ds: Json, tag: str) -> str | None:
    """The first value as stripped text; None when absent or empty."""
    found = values(ds, tag)
    if not found or found[0] is None:
        return None
    first = found[0]
    if isinstance(first, Mapping):  # a PN: its alphabetic group (F.2.2)
        first = first.get("Alphabetic", "")
    result = str(first).strip(" \0")
    return result or None


def code(ds: Json, tag: str) -> str | None:
    """A Code String, upper-cased (PS3.5 6.2: CS is upper case)."""
    found = text(ds, tag)
    return found.upper() if found else None


def number(value: Any) -> float | None:
    """A finite float; None for what is no number (F.2.2: IS and DS may also be strings)."""
    if isinstance(value, bool):
        return None
    try:
        result = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return result if math.isfinite(result) else None


def numbers(ds: Json, tag: str) -> list[float] | None:
    """Every value as a number; None when absent or when one of them is no number."""
    found = [number(v) for v in values(ds, tag)]
    if not found or any(v is None for v in found):
        return None
    return [v for v in found if v is not None]


def first_number(ds: Json, tag: str) -> float | None:
    found = numbers(ds, tag)
    return found[0] if found else None


def pairs(ds: Json, tag: str) -> tuple[tuple[float, float], ...]:
    """Values taken two at a time (Graphic Data, shutter vertices); () when odd or malformed."""
    found = numbers(ds, tag)
    if not found or len(found) % 2:
        return ()
    return tuple((found[i], found[i + 1]) for i in range(0, len(found), 2))


def binary(ds: Json, tag: str, bulk: Mapping[str, bytes], path: str) -> bytes | None:
    """An OB/OW value: InlineBinary decoded, else the bytes given for its BulkDataURI under ``path``.

    Values over the bulk data threshold are BulkDataURIs in stored metadata (PS3.18 F.2.7): the
    caller passes their bytes in ``bulk``, keyed by the tag path (``"60003000"``, ``"00282000"``).
    """
    element = ds.get(tag)
    if not isinstance(element, Mapping):
        return None
    inline = element.get("InlineBinary")
    if isinstance(inline, str):
        try:
            return base64.b64decode(inline, validate=False)
        except (binascii.Error, ValueError):
            return None
    if "BulkDataURI" in element:
        return bulk.get(path)
    found = numbers(ds, tag)  # a US value written as numbers
    return np.asarray(found, "<u2").tobytes() if found else None


def lut(item: Json, signed: bool = False) -> Lut | None:
    """A LUT from LUT Descriptor (0028,3002) and LUT Data (0028,3006) (PS3.3 C.11.1.1.1).

    The descriptor holds entries (0 means 65536), first mapped value and bits per entry; LUT
    Data is US numbers, or OW words (InlineBinary, little endian per F.2.7).
    """
    descriptor = numbers(item, "00283002")
    if descriptor is None or len(descriptor) != 3:
        return None
    entries, first, bits = (int(v) for v in descriptor)
    entries = entries or 0x10000
    if signed and first >= 0x8000:
        first -= 0x10000
    if not 1 <= bits <= 16:
        return None
    table = numbers(item, "00283006")
    if table is None:
        raw = binary(item, "00283006", {}, "")
        if raw is None:
            return None
        if len(raw) >= 2 * entries:
            table = np.frombuffer(raw[: 2 * entries], "<u2").tolist()
        elif len(raw) in (entries, entries + 1):  # 8-bit entries packed in OW
            table = list(raw[:entries])
        else:
            return None
    if len(table) != entries:
        return None
    return Lut(first, bits, tuple(int(v) for v in table))
