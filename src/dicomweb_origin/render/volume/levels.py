"""Reduced copies of a volume that renderings reuse (``Volume.rendering_level`` and its kin keep them).

* ``rendering_level``: block means, each axis longer than LEVEL_SIDE voxels halved until it is not (512 x 512 x 300
  becomes 128 x 128 x 150); volume rendering casts its rays through it, average projections preview on it.
* ``preview_level``: the rendering level halved once more where an axis is at least 2 x PREVIEW_SIDE (an eighth of
  its voxels): the preview of a volume rendering, shown while a view is being turned.
* ``maximum_level``: block maxima over the rendering level's blocks, the preview of a MIP (a thin bright vessel keeps
  its brightness, where a mean would dim it).

``nbytes`` is what they all hold, computed from the shape before any is made: a memory-bounded cache sizes a
volume once, when it stores it. Pure functions of arrays and shapes: ``geometry.Volume`` makes each once and keeps it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

LEVEL_SIDE = 160
PREVIEW_SIDE = 16
# The levels' bytes are at most this share of the volume's: two levels of at most an eighth each (block means and
# block maxima; an axis over LEVEL_SIDE voxels is at least halved) and a preview of an eighth of one of them.
MOST_SHARE = 2 / 8 + 1 / 64
Shape = tuple[int, int, int]
Level = tuple[np.ndarray, np.ndarray]  # (data, affine)


def _factors(shape: Shape) -> Shape:
    """Per axis, the power of two that brings it to LEVEL_SIDE voxels or fewer."""
    out = []
    for n in shape:
        f = 1
        while n // f > LEVEL_SIDE:
            f *= 2
        out.append(f)
    return out[0], out[1], out[2]


def _preview_factors(shape: Shape) -> Shape:
    k, j, i = (2 if n >= 2 * PREVIEW_SIDE else 1 for n in shape)
    return k, j, i


def _reduced(shape: Shape, factors: Shape) -> Shape:
    k, j, i = (n // f for n, f in zip(shape, factors, strict=True))
    return k, j, i


def nbytes(shape: Shape, itemsize: int) -> int:
    """Bytes of every level a volume of ``shape`` voxels of ``itemsize`` bytes may come to hold (not its own)."""
    factors = _factors(shape)
    level = _reduced(shape, factors)
    preview = _reduced(level, _preview_factors(level))
    voxels = 0 if factors == (1, 1, 1) else 2 * int(np.prod(level))  # block means and block maxima
    if preview != level:
        voxels += int(np.prod(preview))
    return voxels * itemsize


def _block_reduce(data: np.ndarray, affine: np.ndarray, factors: Shape,
                  reduce: Callable[..., np.ndarray]) -> Level:
    """(data, affine) reduced over blocks of ``factors`` (k, j, i) voxels, one output slice at a time."""
    if factors == (1, 1, 1):
        return data, affine
    fk, fj, fi = factors
    k, j, i = _reduced(data.shape, factors)
    out = np.empty((k, j, i), dtype=data.dtype)
    for m in range(k):  # small temporaries
        block = data[m * fk:(m + 1) * fk, :j * fj, :i * fi].astype(np.float32)
        value = reduce(block.reshape(fk, j, fj, i, fi), axis=(0, 2, 4))
        out[m] = np.rint(value) if np.issubdtype(out.dtype, np.integer) else value
    scale = np.diag([fi, fj, fk, 1.0])
    scale[:3, 3] = [(fi - 1) / 2, (fj - 1) / 2, (fk - 1) / 2]  # a block's centre in the original indices
    return out, affine @ scale


def rendering_level(data: np.ndarray, affine: np.ndarray) -> Level:
    """Block means (the volume itself when it is small enough)."""
    return _block_reduce(data, affine, _factors(_shape(data)), np.mean)


def preview_level(level: Level) -> Level:
    """The rendering level halved once more: a volume rendering's preview."""
    data, affine = level
    return _block_reduce(data, affine, _preview_factors(_shape(data)), np.mean)


def maximum_level(data: np.ndarray, affine: np.ndarray) -> Level:
    """Block maxima over the rendering level's blocks: a MIP's preview."""
    return _block_reduce(data, affine, _factors(_shape(data)), np.max)


def _shape(data: np.ndarray) -> Shape:
    k, j, i = data.shape
    return int(k), int(j), int(i)
