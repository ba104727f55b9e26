"""Synthetic scenes with known content at known LPS coordinates, "acquired" as slices in any geometry.

A scene is a function of LPS points (mm) giving Hounsfield-like values; an acquisition samples it at the pixel
centres of each slice, so the same scene acquired axially, coronally or obliquely must render the same picture.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from dicomweb_origin.render.volume import Slice

AIR = -1000
SPHERE_CENTRE = np.array([40.0, 0.0, 0.0])  # patient's left of centre
SPHERE_RADIUS = 12.0
SPHERE_VALUE = 1000
CUBE_CENTRE = np.array([-30.0, 20.0, -20.0])  # right, posterior, inferior
CUBE_HALF = 10.0
CUBE_VALUE = 500
LINE_XY = (0.0, -30.0)  # a rod along z, anterior
LINE_RADIUS = 3.0
LINE_VALUE = 800
FOV = 128.0  # mm each way, centred on the origin
FOR_UID = "1.2.826.0.1.3680043.8.498.77"
CT_FORMAT = (1, "MONOCHROME2", 64, 64, 16, 12, 11, 0)


def scene(points: np.ndarray) -> np.ndarray:
    """Values (...) at LPS points (..., 3): a sphere, a cube and a rod in air."""
    out = np.full(points.shape[:-1], AIR, dtype=np.int16)
    rod = np.hypot(points[..., 0] - LINE_XY[0], points[..., 1] - LINE_XY[1]) < LINE_RADIUS
    out[rod & (np.abs(points[..., 2]) < 50)] = LINE_VALUE
    out[np.all(np.abs(points - CUBE_CENTRE) < CUBE_HALF, axis=-1)] = CUBE_VALUE
    out[np.linalg.norm(points - SPHERE_CENTRE, axis=-1) < SPHERE_RADIUS] = SPHERE_VALUE
    return out


def rotation(axis: Sequence[float], degrees: float) -> np.ndarray:
    a = np.asarray(axis, dtype=float)
    a /= np.linalg.norm(a)
    t = math.radians(degrees)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(t) * k + (1 - math.cos(t)) * (k @ k)


def acquire(row: Sequence[float], col: Sequence[float], *, n: int = 64, spacing: float = 2.0,
            offsets: Sequence[float] | np.ndarray | None = None, stored_offset: int = 1024, slope: float = 1.0,
            label: str = "frame", frame_of_reference: str = FOR_UID) -> list[Slice]:
    """Slices of ``n`` x ``n`` pixels with the given row / column cosines, centred on the origin.

    ``offsets`` are the slices' distances (mm) along the normal (default: ``n`` slices ``spacing`` apart). Stored
    values are (value + stored_offset) / slope, with Rescale Intercept -stored_offset.
    """
    r, c = np.asarray(row, dtype=float), np.asarray(col, dtype=float)
    normal = np.cross(r, c)
    if offsets is None:
        offsets = (np.arange(n) - (n - 1) / 2) * spacing
    grid = (np.arange(n) - (n - 1) / 2) * spacing
    slices = []
    for number, d in enumerate(offsets, start=1):
        top_left = grid[0] * r + grid[0] * c + d * normal
        steps = np.arange(n) * spacing
        points = top_left + steps[None, :, None] * r + steps[:, None, None] * c  # [row j, column i]
        values = scene(points).astype(np.float64)
        stored = np.rint((values + stored_offset) / slope).astype(np.uint16)
        slices.append(Slice(stored, tuple(float(v) for v in top_left), tuple(float(v) for v in (*r, *c)),
                            (spacing, spacing), f"{label} {number}", slope, -float(stored_offset),
                            frame_of_reference, CT_FORMAT[:2] + (n, n) + CT_FORMAT[4:]))
    return slices


AXIAL = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0))  # rows +x (left), columns +y (posterior): normal +z
CORONAL = ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0))  # rows +x, columns -z (inferior): normal +y
_OBLIQUE = rotation((1.0, 1.0, 0.3), 25.0)
OBLIQUE = (tuple(_OBLIQUE @ np.array(AXIAL[0])), tuple(_OBLIQUE @ np.array(AXIAL[1])))
