"""Colour frames to 8-bit RGB: YBR → RGB (PS3.3 C.7.6.3.1.2), PALETTE COLOR (C.7.6.3.1.5-6), depth.

Decoded arrays are (rows, cols, 3) interleaved and full resolution (planar configuration and
chroma subsampling are undone by the decoder, so YBR_FULL_422 holds YBR_FULL values).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import DecodeError
from ..model.appearance import Display, Lut
from ..model.stored import PixelDescription
from .lut import stored_values

Array = np.ndarray

# PS3.3 C.7.6.3.1.2, the forward equations as the standard writes them (8-bit; offsets scale with depth)
_FULL = np.array([[0.2990, 0.5870, 0.1140], [-0.1687, -0.3313, 0.5000], [0.5000, -0.4187, -0.0813]])
_PARTIAL = np.array([[0.2568, 0.5041, 0.0979], [-0.1482, -0.2910, 0.4392], [0.4392, -0.3678, -0.0714]])
_FULL_OFFSET = np.array([0.0, 128.0, 128.0])
_PARTIAL_OFFSET = np.array([16.0, 128.0, 128.0])


def _matrix_to_rgb(forward: Array, offset: Array) -> Callable[[Array, int], Array]:
    inverse = np.linalg.inv(forward).astype(np.float32)

    def convert(ybr: Array, bits: int) -> Array:
        scale = (1 << bits) / 256.0  # the offsets of the 8-bit equations, at this depth
        centred = ybr.astype(np.float32) - (offset * scale).astype(np.float32)
        return centred @ inverse.T

    return convert


def _rct_to_rgb(ybr: Array, bits: int) -> Array:
    # ISO 15444-1 G.2 reversible transform, components stored with the DC level shift of ``bits``
    half = 1 << (bits - 1)
    y, cb, cr = (ybr[..., i].astype(np.int32) for i in range(3))
    cb, cr = cb - half, cr - half
    g = y - np.floor_divide(cb + cr, 4)
    return np.stack([cr + g, g, cb + g], axis=-1).astype(np.float32)


def _identity(rgb: Array, bits: int) -> Array:
    return rgb.astype(np.float32)


TO_RGB: dict[str, Callable[[Array, int], Array]] = {
    "RGB": _identity,
    "YBR_FULL": _matrix_to_rgb(_FULL, _FULL_OFFSET),
    "YBR_FULL_422": _matrix_to_rgb(_FULL, _FULL_OFFSET),  # decoded to full resolution already
    "YBR_ICT": _matrix_to_rgb(_FULL, _FULL_OFFSET),  # same coefficients as YBR_FULL (C.7.6.3.1.2)
    "YBR_RCT": _rct_to_rgb,
    "YBR_PARTIAL_420": _matrix_to_rgb(_PARTIAL, _PARTIAL_OFFSET),
    "YBR_PARTIAL_422": _matrix_to_rgb(_PARTIAL, _PARTIAL_OFFSET),
}


def to_8bit(values: Array, bits: int) -> Array:
    """Scale 0 .. 2^bits - 1 to 0 .. 255, rounding and clamping."""
    if bits == 8 and values.dtype == np.uint8:
        return values
    scaled = values.astype(np.float32) * np.float32(255.0 / ((1 << bits) - 1))
    return np.asarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))


def rgb(pixels: Array, pixel: PixelDescription) -> Array:
    """Render an RGB or YBR frame to uint8 (rows, cols, 3)."""
    photometric = pixel.photometric_interpretation
    convert = TO_RGB.get(photometric)
    if convert is None:
        raise DecodeError(f"cannot render {photometric} colour pixels")
    if pixels.ndim != 3 or pixels.shape[-1] != 3:
        raise DecodeError(f"{photometric} frame has shape {pixels.shape}, not (rows, columns, 3)")
    bits = pixel.bits_stored
    # YBR_RCT chroma (B - G, R - G) needs one bit more than Bits Stored: keep the array's values
    stored = pixels if photometric == "YBR_RCT" else stored_values(pixels, pixel)
    if convert is _identity:
        return to_8bit(stored, bits)
    return to_8bit(np.clip(convert(stored, bits), 0, (1 << bits) - 1), bits)


def _palette_table(lut: Lut) -> Array:
    entries = np.asarray(lut.data, dtype=np.float32)
    # C.7.6.3.1.5: entries are 8 or 16 bits; 16-bit entries scaled to the 8 bits of the output
    return np.asarray(np.clip(np.rint(entries * np.float32(255.0 / ((1 << lut.bits) - 1))), 0, 255).astype(np.uint8))


def palette(pixels: Array, pixel: PixelDescription, display: Display | None) -> Array:
    """Render a PALETTE COLOR frame through its red, green and blue LUTs to uint8 (rows, cols, 3)."""
    if display is None or display.palette is None:
        raise DecodeError("PALETTE COLOR instance has no palette colour lookup tables")
    luts = display.palette
    first = luts[0].first_mapped
    length = max(len(lut.data) for lut in luts)
    table = np.zeros((length, 3), dtype=np.uint8)
    for channel, lut in enumerate(luts):
        column = _palette_table(lut)
        table[:, channel] = np.pad(column, (0, length - len(column)), mode="edge")
    stored = stored_values(pixels, pixel)
    # C.7.6.3.1.5: values below the first mapped value take the first entry, above the range the last
    index = np.clip(stored.astype(np.int32) - first, 0, length - 1) if first or stored.dtype.kind == "i" \
        else np.minimum(stored, length - 1)
    return np.take(table, index, axis=0)
