"""Orthographic intensity projections (PS3.18 §8.3.5.3.3): maximum_ip, minimum_ip, average_ip.

Each ray combines the trilinear samples of the volume it crosses, one per slice along the principal axis (see
``shear``). A ray that misses the volume shows the volume's minimum (black after windowing).
"""

from __future__ import annotations

import numpy as np

from ...errors import BadRequest
from .geometry import Camera, Volume, resolve_size
from .shear import Shear, plan
from .spread import SERIAL, Spread

PROJECTIONS = ("maximum_ip", "minimum_ip", "average_ip")


def _project(data: np.ndarray, lo: np.float32, shear: Shear, method: str, spread: Spread) -> np.ndarray:
    """The intermediate image of a projection of ``data``, stored units, ``lo`` where no ray sample fell."""
    if max(abs(shear.shift[0]), abs(shear.shift[1])) < 1e-9:
        return _axis_aligned(data, shear.axis, method, spread)

    def work(slices: range) -> tuple[np.ndarray, np.ndarray | None]:
        if method == "maximum_ip":
            acc = np.full(shear.shape, -np.inf, dtype=np.float32)
        elif method == "minimum_ip":
            acc = np.full(shear.shape, np.inf, dtype=np.float32)
        else:
            acc = np.zeros(shear.shape, dtype=np.float32)
        count = np.zeros(shear.shape, dtype=np.int32) if method == "average_ip" else None
        source = shear.reader(data)
        for n in slices:
            found = shear.resampled(source, n)
            if found is None:
                continue
            (a, b, c, d), block = found
            _fold(acc[a:b, c:d], block, method)
            if count is not None:
                count[a:b, c:d] += 1
        return acc, count

    parts = shear.over_slices(work, spread)
    acc, count = parts[0]
    for other, other_count in parts[1:]:
        _fold(acc, other, method)
        if count is not None:
            assert other_count is not None
            count += other_count
    if method == "average_ip":
        assert count is not None
        hit = count > 0
        acc = np.where(hit, acc / np.maximum(count, 1), lo).astype(np.float32)
    else:
        acc[~np.isfinite(acc)] = lo
    return acc


def _fold(into: np.ndarray, other: np.ndarray, method: str) -> None:
    """Fold ``other`` into ``into``, in place: the maximum, the minimum, or the sum (of an average)."""
    if method == "maximum_ip":
        np.maximum(into, other, out=into)
    elif method == "minimum_ip":
        np.minimum(into, other, out=into)
    else:
        into += other


def _axis_aligned(data: np.ndarray, axis: int, method: str, spread: Spread) -> np.ndarray:
    """Rays along a voxel axis: one numpy reduction (SIMD, no resampling), split in ``spread.parts`` runs."""
    other = 0 if axis != 0 else 1  # split along an axis that is kept
    bounds = np.linspace(0, data.shape[other], spread.parts + 1).astype(int)

    def work(part: tuple[int, int]) -> np.ndarray:
        index: list[slice] = [slice(None)] * 3
        index[other] = slice(*part)
        chunk = data[tuple(index)]
        if method == "maximum_ip":
            return chunk.max(axis=axis).astype(np.float32)  # type: ignore[no-any-return]
        if method == "minimum_ip":
            return chunk.min(axis=axis).astype(np.float32)  # type: ignore[no-any-return]
        return chunk.mean(axis=axis, dtype=np.float32)  # type: ignore[no-any-return]

    parts = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
    results = spread.map(work, parts)
    # the kept axes, in data order, are the intermediate image's (q1, q2); ``other`` is one of them
    position = [a for a in range(3) if a != axis].index(other)
    return np.concatenate(results, axis=position)


def project(volume: Volume, camera: Camera, method: str, *, size: tuple[int, int] | None = None,
            spacing: float | None = None, preview: bool = False, spread: Spread = SERIAL) -> np.ndarray:
    """An orthographic MIP / MinIP / AvgIP of the whole volume, float32 (rows, cols) modality values.

    A ``preview``, for a view being turned, projects a reduced level where one keeps what the method looks for:
    block maxima for a MIP, block means for an average (``levels``); a MinIP takes every other slice instead.
    """
    if method not in PROJECTIONS:
        raise BadRequest(f"renderingmethod {method!r} is no projection; use one of {', '.join(PROJECTIONS)}")
    size, spacing = resolve_size(volume, camera, "project", size, spacing)
    data, affine, stride = volume.data, volume.affine, 1
    if preview and method == "minimum_ip":
        stride = 2
    elif preview:
        data, affine = volume.maximum_level() if method == "maximum_ip" else volume.rendering_level()
    shear = plan(data.shape, affine, camera, size, spacing, stride)
    lo = volume.stored_range()[0]
    intermediate = _project(data, np.float32(lo), shear, method, spread)
    return volume.to_modality(shear.warp(intermediate, size, lo))
