"""The greyscale display pipeline of PS3.4 N.2: Modality LUT → VOI LUT → Presentation LUT → 8 bits.

Integer frames go through one 8-bit lookup table built over the span of stored values the frame
holds (numpy indexing, a few ms for 512×512); float frames are transformed directly in float32.

Automatic VOI (no ``window`` parameter, no Window Center/Width, no VOI LUT): a LINEAR_EXACT window
from the minimum to the maximum value of the frame after the Modality LUT; a constant frame uses
the whole range its Bits Stored allows instead (so 1-bit frames show 0 black and 1 white).
"""

from __future__ import annotations

import numpy as np

from ..errors import BadRequest
from ..model.appearance import Display, FrameDisplay, Lut, Window
from ..model.stored import PixelDescription

Array = np.ndarray


def stored_values(pixels: Array, pixel: PixelDescription) -> Array:
    """Keep only the Bits Stored of each sample, sign-extended when signed (PS3.5 8.1.1).

    Decoders may leave the unused high bits of Bits Allocated set; values already inside the
    Bits Stored range are returned as they are (the common case, and no copy).
    """
    if pixels.dtype.kind not in "iu" or pixel.bits_stored >= pixels.dtype.itemsize * 8:
        return pixels
    bits = pixel.bits_stored
    signed = pixel.pixel_representation == 1
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if pixels.size == 0 or (int(pixels.min()) >= low and int(pixels.max()) <= high):
        return pixels
    masked = pixels.astype(np.int64) & ((1 << bits) - 1)
    if signed:
        sign = 1 << (bits - 1)
        masked = (masked ^ sign) - sign
    return masked.astype(np.int32 if signed else pixels.dtype.newbyteorder("="))


def lut_values(lut: Lut, x: Array) -> Array:
    """Look ``x`` up in a LUT: inputs below/above the mapped range take the first/last entry (C.11.1.1)."""
    data = np.asarray(lut.data, dtype=np.float32)
    index = np.clip(np.rint(x).astype(np.int64) - lut.first_mapped, 0, len(data) - 1)
    return np.asarray(data[index])


def modality(x: Array, frame: FrameDisplay) -> Array:
    """Apply the Modality LUT, or Rescale Slope and Intercept (PS3.3 C.11.1), in float32."""
    if frame.modality_lut is not None:
        return lut_values(frame.modality_lut, x)
    values = x.astype(np.float32)
    if frame.rescale_slope != 1.0 or frame.rescale_intercept != 0.0:
        values = values * np.float32(frame.rescale_slope) + np.float32(frame.rescale_intercept)
    return values


def _linear(x: Array, c: float, w: float) -> Array:
    # PS3.3 C.11.2.1.2.1: y = ((x - (c - 0.5)) / (w - 1) + 0.5) * (ymax - ymin) + ymin, clamped
    if w < 1:
        raise BadRequest(f"window width {w:g} is below 1, the minimum of a LINEAR window")
    if w == 1:
        return np.where(x <= c - 0.5, 0.0, 1.0).astype(np.float32)
    y = (x - np.float32(c - 0.5)) / np.float32(w - 1) + np.float32(0.5)
    y = np.where(x <= c - 0.5 - (w - 1) / 2, 0.0, np.where(x > c - 0.5 + (w - 1) / 2, 1.0, y))
    return y.astype(np.float32)


def _linear_exact(x: Array, c: float, w: float) -> Array:
    # PS3.3 C.11.2.1.3.2: y = ((x - c) / w + 0.5) * (ymax - ymin) + ymin, clamped
    if w <= 0:
        raise BadRequest(f"window width {w:g} is not positive, as LINEAR_EXACT requires")
    return np.clip((x - np.float32(c)) / np.float32(w) + np.float32(0.5), 0.0, 1.0).astype(np.float32)


def _sigmoid(x: Array, c: float, w: float) -> Array:
    # PS3.3 C.11.2.1.3.1: y = (ymax - ymin) / (1 + exp(-4 (x - c) / w)) + ymin
    if w <= 0:
        raise BadRequest(f"window width {w:g} is not positive, as SIGMOID requires")
    with np.errstate(over="ignore"):
        return np.asarray((1.0 / (1.0 + np.exp(np.float32(-4.0 / w) * (x - np.float32(c))))).astype(np.float32))


VOI_FUNCTIONS = {"LINEAR": _linear, "LINEAR_EXACT": _linear_exact, "SIGMOID": _sigmoid}


def window_values(x: Array, window: Window) -> Array:
    """Map modality values through a window to [0, 1] (ymin = 0, ymax = 1)."""
    function = VOI_FUNCTIONS.get(window.function.upper().replace("-", "_"))
    if function is None:
        raise BadRequest(f"VOI LUT function {window.function!r} is not LINEAR, LINEAR_EXACT or SIGMOID")
    return function(x, window.center, window.width)


def voi_lut_values(x: Array, lut: Lut) -> Array:
    """Map modality values through a VOI LUT to [0, 1]: entries span 0 .. 2^bits - 1 (C.11.2.1.1)."""
    return lut_values(lut, x) / np.float32((1 << lut.bits) - 1)


def auto_window(values: Array, full_range: tuple[float, float]) -> Window:
    """A LINEAR_EXACT window over the values' min..max, or over ``full_range`` when they are constant."""
    low, high = (float(values.min()), float(values.max())) if values.size else full_range
    if high <= low:
        low, high = full_range
    if high <= low:
        high = low + 1.0
    return Window(center=(low + high) / 2, width=high - low, function="LINEAR_EXACT")


def inverted(display: Display | None, photometric: str) -> bool:
    """Whether the grey scale is reversed: Presentation LUT Shape, else MONOCHROME1 (PS3.3 C.11.6)."""
    if display is not None and display.presentation_lut is not None:
        return False  # the LUT itself says how P-Values run
    shape = display.presentation_lut_shape if display is not None else None
    if shape in ("INVERSE", "IDENTITY"):
        return shape == "INVERSE"
    return photometric == "MONOCHROME1"


def presentation(y: Array, display: Display | None, invert: bool) -> Array:
    """Turn VOI output in [0, 1] into 8-bit P-Values, float32 0..255 (Presentation LUT, C.11.6)."""
    if display is not None and display.presentation_lut is not None:
        lut = display.presentation_lut
        index = np.rint(y * np.float32(len(lut.data) - 1)) + lut.first_mapped
        y = lut_values(lut, index) / np.float32((1 << lut.bits) - 1)
    if invert:
        y = np.float32(1.0) - y
    return y * np.float32(255.0)


_MAX_TABLE = 1 << 20  # largest lookup table worth building (entries)


def _stored_range(pixel: PixelDescription) -> tuple[int, int]:
    bits = pixel.bits_stored
    if pixel.pixel_representation == 1:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def _chain(
    x: Array, present: Array | None, frame: FrameDisplay, pixel: PixelDescription,
    display: Display | None, window: Window | None,
) -> tuple[Array, Window | None]:
    """Run Modality → VOI → Presentation on ``x``; ``present`` selects the values the frame holds."""
    values = modality(x, frame)
    if window is None and frame.windows:
        window = frame.windows[0]
    if window is not None:
        y = window_values(values, window)
    elif frame.voi_luts:
        y = voi_lut_values(values, frame.voi_luts[0])
    else:
        ends = modality(np.asarray(_stored_range(pixel), dtype=np.float32), frame)
        window = auto_window(values if present is None else values[present],
                             (float(ends.min()), float(ends.max())))
        y = window_values(values, window)
    invert = inverted(display, pixel.photometric_interpretation)
    return presentation(y, display, invert), window


def greyscale(
    pixels: Array, pixel: PixelDescription, display: Display | None, index: int,
    window: Window | None = None,
) -> tuple[Array, Window | None]:
    """Render one greyscale frame to uint8 (rows, cols); also return the window that was used."""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # extreme windows clamp, silently
        return _greyscale(pixels, pixel, display, index, window)


def _greyscale(
    pixels: Array, pixel: PixelDescription, display: Display | None, index: int, window: Window | None,
) -> tuple[Array, Window | None]:
    frame = display.frame(index) if display is not None else FrameDisplay()
    if pixels.dtype.kind == "f":
        finite = np.nan_to_num(pixels.astype(np.float32, copy=False))
        out, used = _chain(finite, None, frame, pixel, display, window)
        return np.rint(out).astype(np.uint8), used
    if pixels.dtype == np.bool_:
        pixels = pixels.view(np.uint8)
    stored = stored_values(pixels, pixel)
    if stored.dtype == np.uint8:
        low, high = 0, 255  # one 256-entry table, indexed by the bytes themselves
    else:
        low, high = int(stored.min()), int(stored.max())
        if high - low > _MAX_TABLE:  # 32-bit data with a wide spread: transform the values directly
            out, used = _chain(stored.astype(np.float64), None, frame, pixel, display, window)
            return np.rint(out).astype(np.uint8), used
    span = np.arange(low, high + 1, dtype=np.int64)
    offsets = stored.astype(np.int32) - np.int32(low) if low or stored.dtype.kind == "i" else stored
    automatic = window is None and not frame.windows and not frame.voi_luts
    present = np.bincount(offsets.ravel(), minlength=len(span)) > 0 if automatic else None
    table, used = _chain(span, present, frame, pixel, display, window)
    table8 = np.rint(table).astype(np.uint8)
    return np.take(table8, offsets), used  # np.take: half the time of fancy indexing on a 512x512 frame
