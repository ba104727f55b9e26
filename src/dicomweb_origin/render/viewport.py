"""The ``viewport`` parameter (PS3.18 §8.3.5.1.3): crop a source region, flip, scale to fit.

The output keeps the region's aspect ratio and fits inside vw×vh with one side equal to the
viewport's; it is not padded to vw×vh (the standard describes scaling, not letterboxing).
Resampling is Pillow's Lanczos filter, which also antialiases (area-weights) when shrinking;
fractional source regions are sampled exactly (Pillow's ``resize`` box).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..errors import BadRequest
from ..model.rendering import Viewport

Array = np.ndarray


def source_region(viewport: Viewport, columns: int, rows: int) -> tuple[float, float, float, float]:
    """Return (x, y, width, height) of the source region, checked to lie inside the image."""
    # §8.3.5.1.3: absolute values of sx, sy (default 0) and sw, sh (default: to the far edge)
    x = abs(viewport.sx) if viewport.sx is not None else 0.0
    y = abs(viewport.sy) if viewport.sy is not None else 0.0
    width = abs(viewport.sw) if viewport.sw is not None else columns - x
    height = abs(viewport.sh) if viewport.sh is not None else rows - y
    if width <= 0 or height <= 0 or x + width > columns + 1e-6 or y + height > rows + 1e-6:
        raise BadRequest(
            f"viewport source region {x:g},{y:g},{width:g},{height:g} lies outside the "
            f"{columns}x{rows} image")
    return x, y, width, height


def output_size(viewport: Viewport, width: float, height: float) -> tuple[int, int]:
    """Fit width×height inside vw×vh preserving the aspect ratio; one side equals the viewport's."""
    if viewport.width < 1 or viewport.height < 1:
        raise BadRequest(f"viewport size {viewport.width}x{viewport.height} is not positive")
    if viewport.width / width <= viewport.height / height:
        return viewport.width, min(viewport.height, max(1, round(height * viewport.width / width)))
    return min(viewport.width, max(1, round(width * viewport.height / height))), viewport.height


def apply_viewport(image: Array, viewport: Viewport | None) -> Array:
    """Crop, flip and scale a uint8 (rows, cols[, 3]) image as ``viewport`` says; None: unchanged."""
    if viewport is None:
        return image
    rows, columns = image.shape[:2]
    x, y, width, height = source_region(viewport, columns, rows)
    size = output_size(viewport, width, height)
    box = (x, y, x + width, y + height)
    if size == (width, height) and all(float(v).is_integer() for v in box):
        out = image[int(y):int(y + height), int(x):int(x + width)]  # exact crop, no resampling
    else:
        out = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS, box=box))
    if viewport.sw is not None and viewport.sw < 0:
        out = out[:, ::-1]  # negative sw: flip horizontally
    if viewport.sh is not None and viewport.sh < 0:
        out = out[::-1]  # negative sh: flip vertically
    return np.ascontiguousarray(out)
