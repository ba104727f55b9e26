"""What rendering an instance needs besides its pixels, read once at ingest (PS3.3 C.7.6, C.11).

``extract_display`` turns the Modality LUT, VOI LUT, Presentation LUT and Palette Color modules,
the geometry and the cine timing of a data set into a ``Display`` value, so that no Rendered or
Thumbnail request parses a stored file. Enhanced multi-frame instances contribute their Shared and
Per-frame Functional Groups (PS3.3 C.7.6.16): ``Display.frames`` holds one entry when every frame
has the same values, else one per frame.

Leniency: a malformed value (a window width that is no number, a LUT whose length disagrees with
its descriptor, a position with two numbers) is dropped, never an ingest failure.
"""

from __future__ import annotations

import dataclasses
import io
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.pixels.processing import _expand_segmented_lut

from ..model.appearance import Display, FrameDisplay, Lut, Window
from ..model.stored import BulkElement
from .reader import bulk_offsets

_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
ICC_PROFILE = "00282000"
OPTICAL_PATH = "00480105"  # Optical Path Sequence: where whole-slide images keep their ICC profile

# PS3.3 C.11.2.1.2 (LINEAR: Window Width >= 1) and C.11.2.1.3 (LINEAR_EXACT, SIGMOID: > 0).
_MIN_WIDTH: dict[str, Callable[[float], bool]] = {
    "LINEAR": lambda w: w >= 1,
    "LINEAR_EXACT": lambda w: w > 0,
    "SIGMOID": lambda w: w > 0,
}
_SHAPES = frozenset({"IDENTITY", "INVERSE"})  # Presentation LUT Shape (PS3.3 C.11.6.1.2)
_T = TypeVar("_T")


def extract_display(ds: Dataset) -> Display | None:
    """The display pipeline of ``ds``; None when it has no pixel data (nor the Image Pixel module).

    ``ds`` may stop before Pixel Data (as ingest reads it): Rows and Columns then say there is some.
    """
    if not any(tag in ds for tag in _PIXEL_TAGS) and not ("Rows" in ds and "Columns" in ds):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        little = ds.original_encoding[1] is not False
        signed = _int(_get(ds, "PixelRepresentation")) == 1
        return Display(
            frames=_frames(ds, signed, little),
            presentation_lut_shape=_shape(ds),
            presentation_lut=_first(_luts(ds, "PresentationLUTSequence", False, little)),
            palette=_palette(ds, signed, little),
            icc_profile_path=_icc_profile_path(ds),
            frame_time_ms=_frame_time(ds),
            modality=_text(ds, "Modality"),
            frame_of_reference_uid=_text(ds, "FrameOfReferenceUID"),
        )


def display_of_stored(head: bytes, threshold: int) -> tuple[Display | None, dict[str, BulkElement]]:
    """The display and the bulk elements of a stored blob, from its bytes up to its pixel data.

    For records stored before ingest extracted the display (the schema 4 migration): the ICC
    Profile then becomes a bulk element even when it is under the bulk threshold.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(io.BytesIO(head), stop_before_pixels=True, force=True)
    bulk = bulk_offsets(ds, threshold)  # before any value is read: reading one forgets its offset
    return extract_display(ds), bulk


# -- per frame: rescale / Modality LUT, windows / VOI LUTs, geometry ------------------------------


def _frames(ds: Dataset, signed: bool, little: bool) -> tuple[FrameDisplay, ...]:
    """One FrameDisplay shared by all frames, or one per frame of the Per-frame Functional Groups."""
    base = _frame_values(ds, signed, little)
    shared = _items(ds, "SharedFunctionalGroupsSequence")[:1]
    per_frame = _items(ds, "PerFrameFunctionalGroupsSequence")
    if not shared and not per_frame:
        return (base,)
    count = max(_int(_get(ds, "NumberOfFrames")) or 1, 1)
    frames = []
    for index in range(count):
        groups = shared + ([per_frame[index]] if index < len(per_frame) else [])
        frames.append(_functional_groups(base, groups, signed, little))
    if all(frame == frames[0] for frame in frames):
        return (frames[0],)
    return tuple(frames)


def _frame_values(ds: Dataset, signed: bool, little: bool) -> FrameDisplay:
    slope, intercept = _rescale(ds)
    return FrameDisplay(
        rescale_slope=slope,
        rescale_intercept=intercept,
        modality_lut=_first(_luts(ds, "ModalityLUTSequence", signed, little)),
        windows=_windows(ds),
        voi_luts=_luts(ds, "VOILUTSequence", signed, little),
        position=_floats(ds, "ImagePositionPatient", 3),  # type: ignore[arg-type]
        orientation=_floats(ds, "ImageOrientationPatient", 6),  # type: ignore[arg-type]
        pixel_spacing=_spacing(ds, "PixelSpacing") or _spacing(ds, "ImagerPixelSpacing"),  # type: ignore[arg-type]
    )


def _functional_groups(base: FrameDisplay, groups: list[Dataset], signed: bool, little: bool) -> FrameDisplay:
    """``base`` overridden by the macros of the shared item, then of the frame's own item (C.7.6.16)."""
    values: dict[str, Any] = {}
    for group in groups:
        if item := _first(_items(group, "PixelValueTransformationSequence")):
            slope, intercept = _rescale(item)
            values.update(rescale_slope=slope, rescale_intercept=intercept,
                          modality_lut=_first(_luts(item, "ModalityLUTSequence", signed, little)))
        if item := _first(_items(group, "FrameVOILUTSequence")):
            values.update(windows=_windows(item), voi_luts=_luts(item, "VOILUTSequence", signed, little))
        if item := _first(_items(group, "PlanePositionSequence")):
            values["position"] = _floats(item, "ImagePositionPatient", 3)
        if item := _first(_items(group, "PlaneOrientationSequence")):
            values["orientation"] = _floats(item, "ImageOrientationPatient", 6)
        if item := _first(_items(group, "PixelMeasuresSequence")):
            values["pixel_spacing"] = _spacing(item, "PixelSpacing")
    return dataclasses.replace(base, **values)


def _rescale(ds: Dataset) -> tuple[float, float]:
    """Rescale Slope and Intercept (PS3.3 C.11.1.1.2); identity when absent or unreadable."""
    slope, intercept = _number(_get(ds, "RescaleSlope")), _number(_get(ds, "RescaleIntercept"))
    if slope is None or intercept is None or slope == 0:
        return 1.0, 0.0
    return slope, intercept


def _windows(ds: Dataset) -> tuple[Window, ...]:
    """One Window per Window Center / Width pair (PS3.3 C.11.2.1.2); invalid pairs are dropped."""
    centers, widths = _raw_values(ds, "WindowCenter"), _raw_values(ds, "WindowWidth")
    function = (_text(ds, "VOILUTFunction") or "LINEAR").upper()
    if function not in _MIN_WIDTH:
        function = "LINEAR"  # an unknown function: the default one (C.11.2.1.3)
    windows = []
    for raw_center, raw_width in zip(centers, widths, strict=False):
        center, width = _number(raw_center), _number(raw_width)
        if center is None or width is None or not _MIN_WIDTH[function](width):
            continue
        windows.append(Window(center, width, function))
    return tuple(windows)


# -- lookup tables ---------------------------------------------------------------------------------


def _luts(ds: Dataset, keyword: str, signed: bool, little: bool) -> tuple[Lut, ...]:
    """The LUTs of a Modality, VOI or Presentation LUT Sequence (PS3.3 C.11.1.1.1, C.11.2.1.1)."""
    found = []
    for item in _items(ds, keyword):
        descriptor, data = _element(item, "LUTDescriptor"), _element(item, "LUTData")
        lut = _lut(descriptor, data, signed, little) if descriptor and data else None
        if lut is not None:
            found.append(lut)
    return tuple(found)


def _lut(descriptor: Any, data: Any, signed: bool, little: bool) -> Lut | None:
    """A LUT from its descriptor (entries, first mapped, bits) and its data, or None if they disagree."""
    head = _descriptor(descriptor, signed)
    if head is None:
        return None
    entries, first, bits = head
    value = data.value
    if isinstance(value, bytes | bytearray):
        table = _unpack(bytes(value), entries, little)
    else:
        table = [int(v) for v in _values(value)]
    if table is None or len(table) != entries:
        return None
    return Lut(first, bits, tuple(table))


def _descriptor(element: Any, signed: bool) -> tuple[int, int, int] | None:
    """(entries, first mapped value, bits): 0 entries means 2**16 (PS3.3 C.11.1.1.1).

    The first mapped value is signed when the element is SS, or US holding a signed value
    because Pixel Representation is 1 (the descriptor's VR is US or SS).
    """
    values = _values(element.value)
    if isinstance(element.value, bytes | bytearray):
        values = list(np.frombuffer(bytes(element.value)[:6], "<u2")) if len(element.value) >= 6 else []
    if len(values) != 3:
        return None
    try:
        entries, first, bits = (int(v) for v in values)
    except (TypeError, ValueError):
        return None
    if element.VR == "US" and signed and first >= 0x8000:
        first -= 0x10000
    entries = entries or 0x10000
    if not 1 <= bits <= 16 or entries < 1:
        return None
    return entries, first, bits


def _unpack(data: bytes, entries: int, little: bool) -> list[int] | None:
    """LUT Data as entries: 16-bit words, or 8-bit entries packed when the bytes are as many as entries."""
    if len(data) == 2 * entries:
        return np.frombuffer(data, "<u2" if little else ">u2").tolist()  # type: ignore[no-any-return]
    if len(data) in (entries, entries + 1) and len(data) % 2 == 0:  # 8-bit entries, padded to even length
        return np.frombuffer(data[:entries], np.uint8).tolist()  # type: ignore[no-any-return]
    return None


def _palette(ds: Dataset, signed: bool, little: bool) -> tuple[Lut, Lut, Lut] | None:
    """Red, green and blue Palette Color LUTs (PS3.3 C.7.6.3.1.5), segmented ones expanded (C.7.9.2).

    Only for PALETTE COLOR images: a Supplemental Palette on a grayscale image (C.8.16.2.1.1.1) is
    not what its pixels mean.
    """
    if _text(ds, "PhotometricInterpretation") != "PALETTE COLOR":
        return None
    luts = []
    for color in ("Red", "Green", "Blue"):
        descriptor = _element(ds, f"{color}PaletteColorLookupTableDescriptor")
        data = _element(ds, f"{color}PaletteColorLookupTableData")
        segmented = _get(ds, f"Segmented{color}PaletteColorLookupTableData")
        lut = None
        if descriptor is not None and data is not None:
            lut = _lut(descriptor, data, signed, little)
        elif descriptor is not None and segmented is not None:
            lut = _segmented(descriptor, segmented, signed, little)
        if lut is None:
            return None
        luts.append(lut)
    return luts[0], luts[1], luts[2]


def _segmented(descriptor: Any, data: Any, signed: bool, little: bool) -> Lut | None:
    """A Segmented Palette Color LUT (PS3.3 C.7.9.2: discrete, linear and indirect segments) expanded."""
    head = _descriptor(descriptor, signed)
    if head is None or not isinstance(data, bytes | bytearray):
        return None
    entries, first, bits = head
    width = 1 if bits <= 8 else 2
    count = len(data) // width
    fmt = f"{'<' if little else '>'}{count}{'B' if width == 1 else 'H'}"
    words = np.frombuffer(bytes(data)[: count * width], fmt[0] + ("u1" if width == 1 else "u2"))
    try:
        table = _expand_segmented_lut(tuple(words.tolist()), fmt)
    except (ValueError, IndexError, TypeError):
        return None
    if len(table) != entries:
        return None
    return Lut(first, bits, tuple(int(v) for v in table))


def _shape(ds: Dataset) -> str | None:
    shape = (_text(ds, "PresentationLUTShape") or "").upper()
    return shape if shape in _SHAPES else None


# -- instance-level values -------------------------------------------------------------------------


def _icc_profile_path(ds: Dataset) -> str | None:
    """Tag path of the ICC Profile (PS3.3 C.11.15): top level, else in the first Optical Path item."""
    if _has_value(ds, "ICCProfile"):
        return ICC_PROFILE
    for number, item in enumerate(_items(ds, "OpticalPathSequence"), start=1):
        if _has_value(item, "ICCProfile"):
            return f"{OPTICAL_PATH}/{number}/{ICC_PROFILE}"
    return None


def _frame_time(ds: Dataset) -> float | None:
    """Milliseconds per frame: Frame Time, else the mean of Frame Time Vector, else 1000 / Cine Rate (C.7.6.5)."""
    frame_time = _number(_get(ds, "FrameTime"))
    if frame_time is not None and frame_time > 0:
        return frame_time
    vector = [v for v in (_number(x) for x in _values(_get(ds, "FrameTimeVector"))[1:]) if v is not None]
    if vector and sum(vector) > 0:
        return sum(vector) / len(vector)  # the first value is 0: the increments follow (C.7.6.5.1.2)
    rate = _number(_get(ds, "CineRate")) or _number(_get(ds, "RecommendedDisplayFrameRate"))
    return 1000.0 / rate if rate and rate > 0 else None


# -- lenient readers -------------------------------------------------------------------------------


def _values(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, str | bytes | bytearray) or not isinstance(value, Sequence):
        return [value]
    return list(value)


def _raw_values(ds: Dataset, keyword: str) -> list[Any]:
    """The values of a multi-valued string attribute, each on its own: one malformed value loses only itself."""
    try:
        return _values(ds[keyword].value) if keyword in ds else []
    except Exception:  # noqa: BLE001 - pydicom converts all values at once and fails on one bad one
        raw = ds.get_item(keyword)
    value = getattr(raw, "value", None)
    if not isinstance(value, bytes):
        return []
    return value.decode("latin-1").split("\\")


def _number(value: Any) -> float | None:
    """A finite float, or None for what is no number (an empty or malformed DS)."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _floats(ds: Dataset, keyword: str, count: int) -> tuple[float, ...] | None:
    numbers = [_number(v) for v in _values(_get(ds, keyword))]
    if len(numbers) != count or any(n is None for n in numbers):
        return None
    return tuple(n for n in numbers if n is not None)


def _get(ds: Dataset, keyword: str) -> Any:
    """The value of an attribute; None when absent or when pydicom cannot convert it."""
    try:
        return ds.get(keyword)
    except Exception:  # noqa: BLE001 - pydicom raises many types on a malformed value
        return None


def _element(ds: Dataset, keyword: str) -> Any:
    """The data element (value and VR) of an attribute; None when absent or unreadable."""
    try:
        return ds[keyword] if keyword in ds else None
    except Exception:  # noqa: BLE001
        return None


def _spacing(ds: Dataset, keyword: str) -> tuple[float, ...] | None:
    """Row and column spacing in mm; None unless both are positive (PS3.3 C.7.6.2.1.1)."""
    spacing = _floats(ds, keyword, 2)
    return spacing if spacing and min(spacing) > 0 else None


def _text(ds: Dataset, keyword: str) -> str | None:
    value = _get(ds, keyword)
    text = str(value).strip(" \0") if value not in (None, "") else ""
    return text or None


def _items(ds: Dataset, keyword: str) -> list[Dataset]:
    value = _get(ds, keyword)
    return [item for item in value if isinstance(item, Dataset)] if value else []


def _has_value(ds: Dataset, keyword: str) -> bool:
    return bool(_get(ds, keyword))


def _first(items: Sequence[_T]) -> _T | None:
    return items[0] if items else None
