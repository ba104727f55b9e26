"""Multi-planar reformatting: planar (any oblique plane, with a slab) and curved, by trilinear interpolation.

The plane passes through the camera's lookat, perpendicular to its direction (PS3.18 §8.3.5.3.6); lookat is the
image centre. Samples outside the volume take its minimum value, so they are black after any window.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from ...errors import BadRequest
from .geometry import (
    MAX_DEFAULT_SIDE,
    Camera,
    Volume,
    camera_from_triple,
    check_frames,
    check_side,
    resolve_size,
)
from .spread import SERIAL, Spread

# §8.3.5.3.3: how the samples across a slab combine. Samples outside the volume are NaN and left out (fmax / fmin
# skip NaN; the average counts only the samples inside), as the projections leave them out.
SLAB_METHODS: dict[str, Callable[..., Any]] = {"maximum_ip": np.fmax, "minimum_ip": np.fmin, "average_ip": np.add}


def sample(volume: Volume, ijk: np.ndarray, outside: float | None = None) -> np.ndarray:
    """Trilinear samples (float32, stored units) at voxel indices ``ijk`` (..., 3) as (i, j, k).

    Samples outside the volume (beyond its outer voxel centres) are ``outside`` (default: the volume's minimum).
    """
    cval = volume.stored_range()[0] if outside is None else outside
    ijk = np.asarray(ijk, dtype=np.float64)
    if min(volume.shape) < 2:  # no cell to interpolate in along some axis
        coords = np.moveaxis(ijk[..., ::-1], -1, 0)  # (k, j, i) first
        out = np.empty(coords.shape[1:], dtype=np.float32)
        ndimage.map_coordinates(volume.data, coords, output=out, order=1, mode="constant", cval=cval,
                                prefilter=False)
        return out
    return _trilinear(volume.data, ijk, cval)


def _trilinear(data: np.ndarray, ijk: np.ndarray, outside: float) -> np.ndarray:
    """What ``map_coordinates(order=1, mode="constant")`` computes, about three times faster for a plane.

    The eight corners of each sample's cell are gathered from the flat array (one ``take`` each) and blended in
    float32; a sample on the far face uses the last cell with weight 1.
    """
    k, j, i = data.shape
    x, y, z = ijk[..., 0], ijk[..., 1], ijk[..., 2]
    inside = (x >= 0) & (x <= i - 1) & (y >= 0) & (y <= j - 1) & (z >= 0) & (z <= k - 1)
    x0 = np.clip(np.floor(x), 0, i - 2)
    y0 = np.clip(np.floor(y), 0, j - 2)
    z0 = np.clip(np.floor(z), 0, k - 2)
    fx, fy, fz = ((a - a0).astype(np.float32) for a, a0 in ((x, x0), (y, y0), (z, z0)))
    base = ((z0.astype(np.intp) * j + y0.astype(np.intp)) * i + x0.astype(np.intp))
    flat = data.reshape(-1)

    def along_x(offset: int) -> np.ndarray:
        low = flat.take(base + offset).astype(np.float32)
        return low + (flat.take(base + offset + 1).astype(np.float32) - low) * fx  # type: ignore[no-any-return]

    near = along_x(0)
    near += (along_x(i) - near) * fy
    far = along_x(i * j)
    far += (along_x(i * j + i) - far) * fy
    near += (far - near) * fz
    near[~inside] = outside
    return near


def _plane_indices(volume: Volume, camera: Camera, size: tuple[int, int], spacing: float,
                   offsets: np.ndarray) -> np.ndarray:
    """Voxel indices (n, H, W, 3) of the plane's pixel centres shifted by each offset (mm) along the view."""
    width, height = size
    inv = volume.inverse[:3, :3]
    origin = volume.to_index(camera.lookat)
    right, up, forward = inv @ camera.right, inv @ camera.up, inv @ camera.direction
    cols = ((np.arange(width) + 0.5) - width / 2) * spacing
    rows = ((np.arange(height) + 0.5) - height / 2) * spacing
    plane = origin + cols[None, :, None] * right - rows[:, None, None] * up  # (H, W, 3)
    return plane[None] + offsets[:, None, None, None] * forward  # type: ignore[no-any-return]


def slab_offsets(volume: Volume, slab: float, camera: Camera | None = None) -> np.ndarray:
    """Offsets (mm) along the view of the samples across a slab centred on the plane, one per voxel crossed.

    The step is the distance along the view that moves one voxel along the axis it crosses fastest (as the
    projections sample one point per slice); offsets where the slab has left the volume's box are dropped.
    """
    if not (slab >= 0 and math.isfinite(slab)):
        raise BadRequest("mprslab must be a non-negative number of mm")
    if slab == 0:
        return np.zeros(1)
    if camera is None:
        slab = min(slab, _diagonal(volume))  # beyond the volume's diagonal every sample would be outside it
        return np.linspace(-slab / 2, slab / 2, max(2, int(math.ceil(slab / volume.finest_spacing)) + 1))
    per_mm = np.abs(volume.inverse[:3, :3] @ camera.direction)  # voxels per mm along each index axis
    step = 1.0 / float(np.max(per_mm))
    depth = (volume.corners() - camera.lookat) @ camera.direction
    # A slab reaching past the volume on both sides samples nothing more: keep the part that meets the volume
    # (an mprslab of 1e308 mm is the whole volume, not an array of 1e308 samples).
    reach = float(np.max(np.abs(depth)))
    if slab / 2 > reach + step:
        slab = 2 * (reach + step)
    count = max(2, int(math.ceil(slab / step - 1e-9)) + 1)
    first = max(0, int(math.floor((float(depth.min()) + slab / 2) / (slab / (count - 1)))))
    last = min(count - 1, int(math.ceil((float(depth.max()) + slab / 2) / (slab / (count - 1)))))
    offsets = np.linspace(-slab / 2, slab / 2, count)
    return offsets[first:last + 1] if last >= first else offsets[:0]


def _diagonal(volume: Volume) -> float:
    corners = volume.corners()
    return float(np.linalg.norm(corners.max(axis=0) - corners.min(axis=0)))


def mpr(volume: Volume, camera: Camera, *, size: tuple[int, int] | None = None, spacing: float | None = None,
        slab: float = 0.0, method: str = "average_ip", spread: Spread = SERIAL) -> np.ndarray:
    """The plane through lookat perpendicular to the view, float32 (rows, cols) modality values.

    A slab of ``slab`` mm (MPR Slab Thickness) combines samples across it by ``method`` (§8.3.5.3.3).
    """
    try:
        combine = SLAB_METHODS[method]
    except KeyError:
        raise BadRequest(f"renderingmethod {method!r} does not apply to an MPR slab; use one of "
                         f"{', '.join(SLAB_METHODS)}") from None
    size, spacing = resolve_size(volume, camera, "mpr", size, spacing)
    lo = np.float32(volume.stored_range()[0])
    offsets = slab_offsets(volume, slab, camera)
    if slab == 0:
        return volume.to_modality(sample(volume, _plane_indices(volume, camera, size, spacing, offsets)[0]))
    width, height = size

    # One plane at a time keeps the coordinate arrays small; sampling releases the GIL, so the planes are shared
    # between ``spread.parts`` runs, each combining its own, and the partial results combined once more.
    def work(part: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        acc = np.full((height, width), np.nan if method != "average_ip" else 0.0, dtype=np.float32)
        count = np.zeros((height, width), dtype=np.float32)
        for offset in part:
            plane = sample(volume, _plane_indices(volume, camera, size, spacing, np.array([offset]))[0], np.nan)
            if method == "average_ip":
                inside = ~np.isnan(plane)
                acc += np.where(inside, plane, np.float32(0))
                count += inside
            else:
                combine(acc, plane, out=acc)
        return acc, count

    parts = [p for p in np.array_split(offsets, min(spread.parts, max(1, len(offsets)))) if len(p)]
    if not parts:
        return volume.to_modality(np.full((height, width), lo, dtype=np.float32))
    partial = spread.map(work, parts)
    acc, count = partial[0]
    for other, other_count in partial[1:]:
        combine(acc, other, out=acc)
        count += other_count
    if method == "average_ip":
        acc = np.where(count > 0, acc / np.maximum(count, 1), lo).astype(np.float32)
    else:
        acc[np.isnan(acc)] = lo
    return volume.to_modality(acc)


def _polyline(points: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    """(points (n, 3), cumulative arc length (n,)) without repeated points; BadRequest when under two."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if not np.all(np.isfinite(pts)):
        raise BadRequest("volumetriccurvepoint needs finite numbers")
    keep = np.concatenate([[True], np.linalg.norm(np.diff(pts, axis=0), axis=1) > 1e-6])
    pts = pts[keep]
    if len(pts) < 2:
        raise BadRequest("a volumetric curve needs at least two distinct volumetriccurvepoint values")
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    return pts, arc


def _along(pts: np.ndarray, arc: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(points (m, 3), unit tangents (m, 3)) at arc lengths ``at`` on the polyline."""
    seg = np.clip(np.searchsorted(arc, at, side="right") - 1, 0, len(arc) - 2)
    t = ((at - arc[seg]) / (arc[seg + 1] - arc[seg]))[:, None]
    tangent = pts[seg + 1] - pts[seg]
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    return pts[seg] + t * (pts[seg + 1] - pts[seg]), tangent


def _unit_up(up: Sequence[float] | np.ndarray) -> np.ndarray:
    u = np.asarray(up, dtype=np.float64).reshape(-1)
    if u.shape != (3,) or not np.all(np.isfinite(u)) or np.linalg.norm(u) < 1e-9:
        raise BadRequest("viewpointup needs three finite numbers, not all zero")
    return u / np.linalg.norm(u)


def curved_mpr(volume: Volume, points: Sequence[Sequence[float]], up: Sequence[float] | np.ndarray, *,
               spacing: float | None = None, width: float | None = None) -> np.ndarray:
    """A projected curved MPR, float32 (rows, cols): column c is the curve at arc length (c + 0.5) * spacing.

    Each column is the line through that curve point along ``up`` (the image's up, as in a planar MPR); ``width``
    is its extent in mm (default: the volume's extent along up). One fixed up keeps straight anatomy straight.
    """
    pts, arc = _polyline(points)
    u = _unit_up(up)
    if width is None:
        extent = volume.corners() @ u
        centre = float(np.mean(pts @ u))
        width = 2 * float(np.max(np.abs(extent - centre)))
    if not (width > 0 and math.isfinite(width)):
        raise BadRequest("the curved MPR's width must be a positive number of mm")
    if spacing is None:  # the finest spacing, coarser when the curve would be wider than the default limit
        step = max(volume.finest_spacing, max(float(arc[-1]), width) / MAX_DEFAULT_SIDE)
    else:
        step = float(spacing)
    if not (step > 0 and math.isfinite(step)):
        raise BadRequest("the output pixel spacing must be a positive number of mm")
    cols = max(1, int(math.ceil(arc[-1] / step)))
    rows = max(1, int(math.ceil(width / step - 1e-6)))
    check_side(cols, rows)
    at = np.minimum((np.arange(cols) + 0.5) * step, arc[-1])
    centres, _ = _along(pts, arc, at)
    heights = ((np.arange(rows) + 0.5) - rows / 2) * step
    lps = centres[None, :, :] - heights[:, None, None] * u  # row 0 is the top: +up
    return volume.to_modality(sample(volume, volume.to_index(lps)))


def curve_cameras(points: Sequence[Sequence[float]], step_mm: float,
                  up: Sequence[float] | np.ndarray) -> list[Camera]:
    """Fly-through cameras every ``step_mm`` along the curve (§8.3.5.3.10-11), each looking along the tangent.

    Frame count = curve length / step + 1 (both ends). The up is ``up`` made perpendicular to the tangent; where
    the tangent turns parallel to it, the previous frame's up is carried on.
    """
    if not (step_mm > 0 and math.isfinite(step_mm)):
        raise BadRequest("animationstepsize must be a positive number of mm")
    pts, arc = _polyline(points)
    u0 = _unit_up(up)
    count = int(math.floor(arc[-1] / step_mm + 1e-9)) + 1
    check_frames(count)
    centres, tangents = _along(pts, arc, np.minimum(np.arange(count) * step_mm, arc[-1]))
    cameras: list[Camera] = []
    previous = u0
    for point, tangent in zip(centres, tangents, strict=True):
        for candidate in (u0, previous, np.array([0.0, 0.0, 1.0]), np.array([0.0, -1.0, 0.0])):
            ortho = candidate - float(np.dot(candidate, tangent)) * tangent
            if np.linalg.norm(ortho) > 1e-3:
                break
        cameras.append(camera_from_triple(point - tangent, point, ortho))
        previous = cameras[-1].up
    return cameras
