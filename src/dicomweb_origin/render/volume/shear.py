"""Shear-warp factorisation of an orthographic view (Lacroute & Levoy 1994): the fast path of every 3D rendering.

Rays of an orthographic camera are parallel, so in voxel index space they cross every slice along the principal
axis (the one most parallel to the view) at one common 2-D offset per slice. Each slice is therefore resampled
once with constant bilinear weights (a shifted copy, no per-ray coordinates), combined into an intermediate image
in the base plane, and one 2-D affine warp takes that image to the output pixels. Sampling stays trilinear along
the rays at one sample per slice (the voxel size along the principal axis).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from scipy import ndimage

from .geometry import Camera
from .spread import Spread, runs

T = TypeVar("T")

# Slices across the fastest-varying axis (i) are gathered this many at a time into a contiguous block: one strided
# pass over the volume instead of one cache miss per voxel.
_BLOCK = 32
_TILE = 16
# A shift whose fractional part is closer to a whole voxel than this is taken as whole (no interpolation).
_WHOLE = 1e-4


@dataclass(frozen=True, slots=True)
class Shear:
    """How one camera's rays cross one voxel array (data axes in (k, j, i) order)."""

    axis: int  # principal data axis: slices are taken along it
    count: int  # slices along it
    sizes: tuple[int, int]  # lengths of the two other data axes (q1, q2), in data order
    shift: tuple[float, float]  # in-slice offset per slice along q1, q2 (at most 1 voxel)
    origin: tuple[int, int]  # base-plane coordinate of intermediate index 0
    shape: tuple[int, int]  # intermediate image
    forward: bool  # increasing slice index moves away from the camera
    step_mm: float  # distance along a ray between two slices' samples
    to_intermediate: np.ndarray  # (2, 3): (u1, u2) = M @ (row, col, 1) for output pixel centres
    gradient: np.ndarray  # (3, 3): world gradient = G @ (d/du1, d/du2, d/dn) of the sheared samples
    stride: int = 1  # slices taken: every one, or every other one for a MinIP's preview (step_mm counts it)

    def reader(self, data: np.ndarray) -> SliceReader:
        return SliceReader(data, self.axis)

    def resampled(self, source: SliceReader, n: int) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
        """((u1 start, u1 stop, u2 start, u2 stop), block) of slice ``n`` on the intermediate grid.

        The block is a view of the stored values or a float32 scratch array of ``source``, valid until the next
        call: use it at once.
        """
        s = source.slice(n)
        lo: list[int] = []
        hi: list[int] = []
        src: list[int] = []
        frac: list[float] = []
        for q in (0, 1):
            offset = self.origin[q] + n * self.shift[q]
            whole = math.floor(offset + _WHOLE)
            a = offset - whole
            if a < _WHOLE:
                a = 0.0
            last = self.sizes[q] - 1 - (1 if a else 0)  # the highest in-slice index a sample's lower tap may use
            start = max(0, -whole)
            stop = min(self.shape[q], last - whole + 1)
            if stop <= start:
                return None
            lo.append(start)
            hi.append(stop)
            src.append(start + whole)
            frac.append(a)
        h, w = hi[0] - lo[0], hi[1] - lo[1]
        a1, a2 = frac
        r, c = src
        if not a1 and not a2:
            return (lo[0], hi[0], lo[1], hi[1]), s[r:r + h, c:c + w]  # whole-voxel shift: the stored values
        # Constant weights: each tap is one multiply of a shifted view (the int -> float cast fused into it).
        if a1 and a2:
            rows = source.scratch("rows", (h + 1, w))
            np.multiply(s[r:r + h + 1, c:c + w], np.float32(1 - a2), out=rows)
            rows += source.tap(s[r:r + h + 1, c + 1:c + w + 1], a2, "tap2")
            block = source.scratch("block", (h, w))
            np.multiply(rows[:-1], np.float32(1 - a1), out=block)
            block += source.tap(rows[1:], a1, "tap")
        elif a1:
            block = source.scratch("block", (h, w))
            np.multiply(s[r:r + h, c:c + w], np.float32(1 - a1), out=block)
            block += source.tap(s[r + 1:r + h + 1, c:c + w], a1, "tap")
        else:
            block = source.scratch("block", (h, w))
            np.multiply(s[r:r + h, c:c + w], np.float32(1 - a2), out=block)
            block += source.tap(s[r:r + h, c + 1:c + w + 1], a2, "tap")
        return (lo[0], hi[0], lo[1], hi[1]), block

    def order(self) -> range:
        """Slice indices front to back, ``stride`` apart."""
        return range(0, self.count, self.stride) if self.forward else range(self.count - 1, -1, -self.stride)

    def over_slices(self, work: Callable[[range], T], spread: Spread) -> list[T]:
        """``work`` over the slices front to back, in up to ``spread.parts`` contiguous runs (results front first)."""
        return spread.map(work, runs(self.order(), spread.parts if self.count >= 16 else 1))

    def warp(self, image: np.ndarray, size: tuple[int, int], background: float) -> np.ndarray:
        """The intermediate image (U1, U2[, channels]) -> output (H, W[, channels]), bilinear."""
        width, height = size
        rows, cols = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64),
                                 indexing="ij")
        m = self.to_intermediate
        u1, u2 = (m[q, 0] * rows + m[q, 1] * cols + m[q, 2] for q in (0, 1))
        if min(image.shape[:2]) < 2:  # no cell to interpolate in
            coords = np.stack([u1, u2])
            planes = image[..., None] if image.ndim == 2 else image
            out = np.stack([ndimage.map_coordinates(np.ascontiguousarray(planes[..., c], dtype=np.float32), coords,
                                                    order=1, mode="constant", cval=background, prefilter=False)
                            for c in range(planes.shape[2])], axis=-1)
            return out[..., 0] if image.ndim == 2 else out
        return _bilinear(image, u1, u2, background)


class SliceReader:
    """2-D slices of a (k, j, i) array along one axis; along i, from contiguous blocks of _BLOCK slices."""

    def __init__(self, data: np.ndarray, axis: int) -> None:
        self.data, self.axis = data, axis
        self.block_start = -1
        self.block: np.ndarray | None = None
        self._scratch: dict[str, np.ndarray] = {}

    def scratch(self, name: str, shape: tuple[int, int]) -> np.ndarray:
        """A reused float32 array of ``shape`` (one reader per thread, so no sharing)."""
        found = self._scratch.get(name)
        if found is None or found.shape[0] < shape[0] or found.shape[1] < shape[1]:
            found = self._scratch[name] = np.empty((max(shape[0], 1), max(shape[1], 1)), dtype=np.float32)
        return found[:shape[0], :shape[1]]

    def tap(self, view: np.ndarray, weight: float, name: str) -> np.ndarray:
        out = self.scratch(name, (view.shape[0], view.shape[1]))
        np.multiply(view, np.float32(weight), out=out)
        return out

    def slice(self, n: int) -> np.ndarray:
        if self.axis == 0:
            return self.data[n]  # type: ignore[no-any-return]
        if self.axis == 1:
            return self.data[:, n, :]
        start = n - n % _BLOCK
        if start != self.block_start or self.block is None:
            # Tiles of _TILE slices, each gathered contiguously and transposed as a 2-D array while it is in cache:
            # several times faster than one 3-D transposed copy.
            k, j = self.data.shape[:2]
            width = min(_BLOCK, self.data.shape[2] - start)
            if self.block is None or self.block.shape[0] != width:
                self.block = np.empty((width, k, j), dtype=self.data.dtype)
            for t in range(0, k, _TILE):
                tile = np.ascontiguousarray(self.data[t:t + _TILE, :, start:start + width])
                self.block[:, t:t + tile.shape[0], :] = tile.reshape(-1, width).T.reshape(width, -1, j)
            self.block_start = start
        return self.block[n - start]  # type: ignore[no-any-return]


def plan(shape: tuple[int, int, int], affine: np.ndarray, camera: Camera, size: tuple[int, int],
         spacing: float, stride: int = 1) -> Shear:
    """The shear of ``camera``'s rays through an array of ``shape`` (k, j, i) with ``affine`` (i, j, k) -> LPS.

    ``stride`` 2 samples every other slice (a preview at half the cost).
    """
    inverse = np.linalg.inv(affine)
    to_data = inverse[:3, :3][::-1]  # LPS direction -> (k, j, i) index direction
    d = to_data @ camera.direction
    axis = int(np.argmax(np.abs(d)))
    q = [a for a in range(3) if a != axis]
    shift = (float(d[q[0]] / d[axis]), float(d[q[1]] / d[axis]))
    count = shape[axis]
    sizes = (shape[q[0]], shape[q[1]])
    origin: list[int] = []
    extent: list[int] = []
    for n, s in enumerate(shift):
        b_min = min(0.0, -(count - 1) * s)
        b_max = sizes[n] - 1 + max(0.0, -(count - 1) * s)
        o = math.floor(b_min)
        origin.append(o)
        extent.append(math.ceil(b_max) - o + 1)
    # Output pixel (r, c) -> data index x -> base plane b = x_q - x_p * s_q -> intermediate u = b - origin.
    width, height = size
    centre = (inverse[:3, :3] @ camera.lookat + inverse[:3, 3])[::-1]
    dx_dc = to_data @ camera.right * spacing
    dx_dr = -(to_data @ camera.up) * spacing
    x00 = centre + dx_dc * (0.5 - width / 2) + dx_dr * (0.5 - height / 2)
    m = np.zeros((2, 3))
    for n in (0, 1):
        a = q[n]
        m[n] = (dx_dr[a] - dx_dr[axis] * shift[n], dx_dc[a] - dx_dc[axis] * shift[n],
                x00[a] - x00[axis] * shift[n] - origin[n])
    # Distance along a ray between slices: one slice step in index space, in mm.
    step = np.zeros(3)
    step[axis] = 1.0
    step[q[0]], step[q[1]] = shift
    step_mm = float(np.linalg.norm(affine[:3, :3] @ step[::-1])) * stride
    # Sheared coordinates (u1, u2, n): x_q = u_q + origin_q + n s_q, x_p = n. Chain rule to data index gradient,
    # then to LPS through the inverse affine's Jacobian.
    t = np.zeros((3, 3))
    t[q[0], 0] = t[q[1], 1] = 1.0
    t[axis, 2] = 1.0
    t[axis, 0], t[axis, 1] = -shift[0], -shift[1]
    jacobian = to_data  # d(x_data)/d(LPS)
    gradient = jacobian.T @ t
    return Shear(axis, count, sizes, shift, (origin[0], origin[1]), (extent[0], extent[1]), bool(d[axis] > 0),
                 step_mm, m, gradient, stride)



def _bilinear(image: np.ndarray, u1: np.ndarray, u2: np.ndarray, background: float) -> np.ndarray:
    """``image`` (U1, U2[, channels]) at fractional (u1, u2), as ``map_coordinates(order=1, mode="constant")``.

    One gather of the four corners serves every channel (a colour warp costs one grey warp, not three).
    """
    n1, n2 = image.shape[:2]
    inside = (u1 >= 0) & (u1 <= n1 - 1) & (u2 >= 0) & (u2 <= n2 - 1)
    a0 = np.clip(np.floor(u1), 0, n1 - 2)
    b0 = np.clip(np.floor(u2), 0, n2 - 2)
    fa, fb = (u1 - a0).astype(np.float32), (u2 - b0).astype(np.float32)
    flat = image.reshape(n1 * n2, -1)
    base = a0.astype(np.intp) * n2 + b0.astype(np.intp)
    if image.ndim == 3:
        fa, fb = fa[..., None], fb[..., None]

    def corner(offset: int) -> np.ndarray:
        found: np.ndarray = flat.take(base + offset, axis=0).astype(np.float32, copy=False)
        return found if image.ndim == 3 else found[..., 0]

    top = corner(0)
    top += (corner(1) - top) * fb
    bottom = corner(n2)
    bottom += (corner(n2 + 1) - bottom) * fb
    top += (bottom - top) * fa
    top[~inside] = background
    return top
