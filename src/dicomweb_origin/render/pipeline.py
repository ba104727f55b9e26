"""One decoded frame → the 8-bit image a display shows (PS3.4 N.2), greyscale or RGB.

``pixel.photometric_interpretation`` names what the decoded array holds (the decoder has already
undone JPEG 2000 colour transforms, planar configuration and chroma subsampling).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import DecodeError
from ..model.appearance import Display, Window
from ..model.stored import PixelDescription
from . import colour, lut

Array = np.ndarray
_Renderer = Callable[[Array, PixelDescription, Display | None, int, Window | None], tuple[Array, Window | None]]


def _grey(pixels: Array, pixel: PixelDescription, display: Display | None, index: int,
          window: Window | None) -> tuple[Array, Window | None]:
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    if pixels.ndim != 2:
        raise DecodeError(f"greyscale frame has shape {pixels.shape}, not (rows, columns)")
    return lut.greyscale(pixels, pixel, display, index, window)


def _palette(pixels: Array, pixel: PixelDescription, display: Display | None, index: int,
             window: Window | None) -> tuple[Array, Window | None]:
    return colour.palette(pixels, pixel, display), None  # a window does not apply to colour (C.11)


def _rgb(pixels: Array, pixel: PixelDescription, display: Display | None, index: int,
         window: Window | None) -> tuple[Array, Window | None]:
    return colour.rgb(pixels, pixel), None


RENDERERS: dict[str, _Renderer] = {
    "MONOCHROME1": _grey,
    "MONOCHROME2": _grey,
    "PALETTE COLOR": _palette,
    **{name: _rgb for name in colour.TO_RGB},
}


def render_frame(pixels: Array, pixel: PixelDescription, display: Display | None, index: int,
                 window: Window | None = None) -> tuple[Array, Window | None]:
    """Like ``display_image``, also returning the VOI window applied (for annotation), if any."""
    renderer = RENDERERS.get(pixel.photometric_interpretation)
    if renderer is None:
        raise DecodeError(f"cannot render photometric interpretation {pixel.photometric_interpretation}")
    return renderer(pixels, pixel, display, index, window)


def display_image(pixels: Array, pixel: PixelDescription, display: Display | None, index: int,
                  window: Window | None = None) -> Array:
    """Render frame ``index`` (0-based) to uint8 (rows, cols) greyscale or (rows, cols, 3) RGB.

    ``window`` is the request's ``window`` parameter (PS3.18 §8.3.5.1.4); without it the frame's
    first window, else its first VOI LUT, else an automatic min-max window is used.
    """
    return render_frame(pixels, pixel, display, index, window)[0]
