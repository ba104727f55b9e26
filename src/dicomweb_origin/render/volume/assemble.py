"""Frames -> one volume, after the Volume Input Requirements of PS3.3 C.11.23.1.

The frames are sorted by their position along the normal (never by file order or Instance Number). C.11.23.1
allows variable spacing and gaps, so uneven positions are resampled, linearly by their real positions, onto a
uniform grid at the median spacing. The Modality LUT comes before interpolation: stored integers are kept (one
int16/uint16 array) when every frame shares one linear rescale, since linear interpolation commutes with it;
otherwise the volume holds float32 modality values.

Everything but the voxels is checked from the frames' geometry first; then the one array of the volume is filled
in place a frame at a time, each frame loaded (decoded) only when its turn comes and dropped after: the frames and
the volume are never held together. ``factor`` > 1 averages blocks of factor x factor pixels of each frame, for a
volume that would not fit the memory a request may use at full resolution.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ...errors import InvalidVolume
from .geometry import Slice, Volume

# The one tolerance (mm) of C.11.23.1's "sufficiently close": two positions closer than this along the normal are
# one position; a frame whose top-left corner is further than this from the first frame's normal ray is not
# aligned; two orientations differ when their cosines move the far corner of a frame by more than this; two
# spacings (or gaps) differ when they differ by more than this.
TOLERANCE_MM = 0.05

_SAMPLES, _PHOTOMETRIC, _ROWS, _COLUMNS = 0, 1, 2, 3  # indices in Slice.pixel_format


def _geometry(s: Slice) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(position, row cosines, column cosines, (row spacing, column spacing)) or InvalidVolume naming the gap."""
    if s.position is None or len(s.position) != 3:
        raise InvalidVolume(f"{s.label} has no Image Position (Patient): a volume needs the position of every frame")
    if s.orientation is None or len(s.orientation) != 6:
        raise InvalidVolume(f"{s.label} has no Image Orientation (Patient): a volume needs it for every frame")
    if s.pixel_spacing is None or len(s.pixel_spacing) != 2:
        raise InvalidVolume(f"{s.label} has no Pixel Spacing: a volume needs it for every frame")
    position = np.asarray(s.position, dtype=np.float64)
    cosines = np.asarray(s.orientation, dtype=np.float64)
    spacing = np.asarray(s.pixel_spacing, dtype=np.float64)
    row, col = cosines[:3], cosines[3:]
    if not (np.all(np.isfinite(position)) and np.all(np.isfinite(cosines)) and np.all(np.isfinite(spacing))):
        raise InvalidVolume(f"{s.label} has a geometry value that is not a number")
    if min(spacing) <= 0:
        raise InvalidVolume(f"{s.label} has a Pixel Spacing that is not positive")
    nr, nc = np.linalg.norm(row), np.linalg.norm(col)
    if nr < 1e-6 or nc < 1e-6:
        raise InvalidVolume(f"{s.label} has a zero direction in Image Orientation (Patient)")
    row, col = row / nr, col / nc
    if abs(float(np.dot(row, col))) > 1e-3:
        raise InvalidVolume(f"{s.label} has row and column directions that are not orthogonal")
    return position, row, col, spacing


def _shape(s: Slice) -> tuple[int, ...]:
    """The shape of a frame's pixels: of its array, or (rows, columns[, samples]) from its pixel format."""
    if s.pixels is not None:
        return tuple(s.pixels.shape)
    fmt = s.pixel_format
    samples = int(str(fmt[_SAMPLES]))
    return (int(str(fmt[_ROWS])), int(str(fmt[_COLUMNS])), *((samples,) if samples != 1 else ()))


def _check_formats(slices: Sequence[Slice]) -> None:
    """Monochrome 2-D frames of one pixel format, size and Frame of Reference (C.11.23.1)."""
    first = slices[0]
    for s in slices:
        fmt = s.pixel_format
        if fmt and (str(fmt[_PHOTOMETRIC]) != "MONOCHROME2" or int(str(fmt[_SAMPLES])) != 1):
            kind = "colour" if int(str(fmt[_SAMPLES])) != 1 else str(fmt[_PHOTOMETRIC])
            if str(fmt[_PHOTOMETRIC]) not in ("MONOCHROME2", "MONOCHROME1"):
                kind = str(fmt[_PHOTOMETRIC])
            raise InvalidVolume(f"{s.label} is {kind}: a volume needs MONOCHROME2 frames")
        if len(_shape(s)) != 2:
            raise InvalidVolume(f"{s.label} is not one monochrome frame (pixel array of {len(_shape(s))} dimensions):"
                                " a volume needs MONOCHROME2")
    for s in slices[1:]:
        if s.frame_of_reference_uid != first.frame_of_reference_uid:
            raise InvalidVolume(f"{first.label} and {s.label} are in different Frames of Reference "
                                f"({first.frame_of_reference_uid} and {s.frame_of_reference_uid})")
        if _shape(s) != _shape(first):
            (r0, c0), (r1, c1) = _shape(first), _shape(s)
            raise InvalidVolume(f"{first.label} and {s.label} differ in Rows/Columns ({r0}x{c0} and {r1}x{c1})")
        if s.pixel_format != first.pixel_format:
            raise InvalidVolume(f"{first.label} and {s.label} differ in pixel format "
                                "(samples, photometric, rows, columns, bits allocated/stored, high bit, representation)")


@dataclass(frozen=True, slots=True)
class Layout:
    """Where each frame goes: everything about a volume but its voxels, from the frames' geometry alone."""

    order: tuple[int, ...]  # indices of the frames, sorted along the normal
    along: np.ndarray  # their positions along the normal (mm), sorted
    count: int  # slices of the volume
    spacing: float  # mm between them
    affine: np.ndarray  # of the full-resolution grid
    shape: tuple[int, int]  # (rows, columns) of a frame

    @property
    def uniform(self) -> bool:
        """Whether the frames lie on the grid as they are (no resampling between them)."""
        return self.count == len(self.order) and float(np.ptp(np.diff(self.along))) <= TOLERANCE_MM

    def nbytes(self, dtype: np.dtype, factor: int = 1) -> int:
        """Bytes of the volume's array at ``factor`` (block averaging of factor x factor pixels)."""
        rows, columns = self.shape
        return self.count * (rows // factor) * (columns // factor) * dtype.itemsize


def layout(slices: Sequence[Slice]) -> Layout:
    """Check the frames against C.11.23.1 and lay them out, or InvalidVolume naming the first requirement failed."""
    if len(slices) == 0:
        raise InvalidVolume("no frames: a volume needs more than one")
    if len(slices) == 1:
        raise InvalidVolume(f"only one frame ({slices[0].label}): a volume needs more than one")
    _check_formats(slices)
    geometry = [_geometry(s) for s in slices]
    p0, row0, col0, sp0 = geometry[0]
    rows, cols = _shape(slices[0])
    reach = float(max(rows * sp0[0], cols * sp0[1], 1.0))  # how far a cosine error moves the far corner
    for s, (_, row, col, sp) in zip(slices[1:], geometry[1:], strict=True):
        if float(np.max(np.abs(sp - sp0))) * max(rows, cols) > TOLERANCE_MM:
            raise InvalidVolume(f"{slices[0].label} and {s.label} differ in Pixel Spacing")
        if max(float(np.max(np.abs(row - row0))), float(np.max(np.abs(col - col0)))) * reach > TOLERANCE_MM:
            raise InvalidVolume(f"{slices[0].label} and {s.label} differ in Image Orientation (Patient): "
                                "a volume needs parallel frames")
    normal = np.cross(row0, col0)
    positions = np.array([g[0] for g in geometry])
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    along = along[order]
    sorted_slices = [slices[n] for n in order]
    gaps = np.diff(along)
    for n, gap in enumerate(gaps):
        if gap < TOLERANCE_MM:
            a, b = sorted_slices[n], sorted_slices[n + 1]
            raise InvalidVolume(f"{a.label} and {b.label} share the Image Position (Patient) "
                                f"(along the normal {along[n]:.3f} and {along[n + 1]:.3f} mm): a volume needs "
                                "one frame per position")
    # Aligned: the top-left corners lie on one ray along the normal (no gantry tilt, no shear).
    first_pos = positions[order[0]]
    offsets = positions[order] - first_pos - np.outer(along - along[0], normal)
    drift = np.linalg.norm(offsets, axis=1)
    worst = int(np.argmax(drift))
    if drift[worst] > TOLERANCE_MM:
        raise InvalidVolume(f"{sorted_slices[0].label} and {sorted_slices[worst].label} are not aligned: their "
                            f"top-left corners are {drift[worst]:.2f} mm apart across the normal (gantry tilt or "
                            "shear); a volume needs aligned frames")
    if float(np.ptp(gaps)) <= TOLERANCE_MM:
        count, spacing = len(slices), float(np.mean(gaps))
    else:  # C.11.23.1 allows variable spacing and gaps: resampled by the real positions at the median spacing
        step = float(np.median(gaps))
        count = int(round((along[-1] - along[0]) / step)) + 1
        spacing = float((along[-1] - along[0]) / (count - 1))
    affine = np.eye(4)
    affine[:3, 0] = row0 * sp0[1]  # i: along a row, Pixel Spacing's second value (between columns)
    affine[:3, 1] = col0 * sp0[0]  # j: down a column, the first value (between rows)
    affine[:3, 2] = normal * spacing
    affine[:3, 3] = first_pos
    return Layout(tuple(int(n) for n in order), along, count, spacing, affine, (rows, cols))


def assemble(slices: Sequence[Slice]) -> Volume:
    """One volume from frames held in memory, or InvalidVolume naming the first C.11.23.1 requirement they fail."""
    plan = layout(slices)
    dtype = _stored_dtype(slices)
    return fill(slices, plan, (slices[n].pixels for n in plan.order), dtype)  # type: ignore[misc]


def fill(slices: Sequence[Slice], plan: Layout, frames: Iterator[np.ndarray], dtype: np.dtype | None,
         factor: int = 1) -> Volume:
    """The volume of ``plan``, its array filled from ``frames`` (the pixels of ``slices`` in ``plan.order``).

    ``dtype`` int16 / uint16 keeps stored values (every frame shares one linear rescale); None makes float32
    modality values. Each frame is used as it comes and dropped; at most the two frames around a resampled slice
    are held besides the volume.
    """
    first = slices[plan.order[0]]
    if dtype is None:
        dtype, slope, intercept = np.dtype(np.float32), 1.0, 0.0
    else:
        slope, intercept = float(first.slope), float(first.intercept)
    rows, columns = plan.shape
    data = np.empty((plan.count, rows // factor, columns // factor), dtype=dtype)
    sources = (_prepared(slices[n], pixels, plan.shape, dtype, slope, factor)
               for n, pixels in zip(plan.order, frames, strict=True))
    if plan.uniform:
        for m, values in enumerate(sources):
            data[m] = values
    else:
        _resample_into(data, sources, plan)
    affine = plan.affine.copy()
    if factor > 1:  # a block's centre is (factor - 1) / 2 pixels in from its first pixel's
        affine[:3, 3] += (affine[:3, 0] + affine[:3, 1]) * (factor - 1) / 2
        affine[:3, :2] *= factor
    return Volume(data, affine, slope, intercept, first.frame_of_reference_uid)


def _prepared(s: Slice, pixels: np.ndarray, shape: tuple[int, int], dtype: np.dtype, slope: float,
              factor: int) -> np.ndarray:
    """One frame as the volume holds it: stored values, or float32 modality values; averaged in blocks."""
    if pixels.shape != shape:
        raise InvalidVolume(f"{s.label} decoded to {pixels.shape}, not the {shape} of its Rows and Columns")
    if dtype == np.float32 and (pixels.dtype != np.float32 or s.slope != 1.0 or s.intercept != 0.0):
        pixels = pixels.astype(np.float32) * np.float32(s.slope) + np.float32(s.intercept)
    if factor > 1:
        rows, columns = shape[0] // factor, shape[1] // factor
        block = pixels[:rows * factor, :columns * factor].reshape(rows, factor, columns, factor)
        mean = block.mean(axis=(1, 3), dtype=np.float32)
        pixels = np.rint(mean) if np.issubdtype(dtype, np.integer) else mean
    return pixels.astype(dtype, copy=False)


def _stored_dtype(slices: Sequence[Slice]) -> np.dtype | None:
    """int16/uint16 when stored integers of one linear rescale can be kept, else None (float32 modality)."""
    first = slices[0]
    if any(s.slope != first.slope or s.intercept != first.intercept for s in slices):
        return None
    kinds = {s.pixels.dtype for s in slices if s.pixels is not None}
    if not all(np.issubdtype(k, np.integer) and k.itemsize <= 2 for k in kinds):
        return None
    if kinds <= {np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16)}:
        return np.dtype(np.int16)
    # uint16 among them: the stored range decides (int16 when it fits, uint16 when nothing is negative)
    lo = min(int(s.pixels.min()) for s in slices if s.pixels is not None)
    hi = max(int(s.pixels.max()) for s in slices if s.pixels is not None)
    if hi <= 32767:
        return np.dtype(np.int16)
    return np.dtype(np.uint16) if lo >= 0 else None


def _resample_into(data: np.ndarray, sources: Iterator[np.ndarray], plan: Layout) -> None:
    """Fill the uniform grid of ``data`` linearly by the frames' real positions, two frames held at a time."""
    along = plan.along
    step = plan.spacing
    targets = along[0] + step * np.arange(plan.count)
    upper = np.clip(np.searchsorted(along, targets, side="right"), 1, len(along) - 1)
    weight = (targets - along[upper - 1]) / (along[upper] - along[upper - 1])
    rounding = np.issubdtype(data.dtype, np.integer)
    held: dict[int, np.ndarray] = {}
    loaded = -1
    for m in range(plan.count):
        while loaded < upper[m]:
            loaded += 1
            held[loaded] = next(sources)
            held.pop(loaded - 2, None)  # only the frames on either side of a target are needed
        a, b, w = held[int(upper[m]) - 1], held[int(upper[m])], float(weight[m])
        if w <= 1e-6:
            data[m] = a
        elif w >= 1 - 1e-6:
            data[m] = b
        else:
            mixed = a.astype(np.float32) * np.float32(1 - w) + b.astype(np.float32) * np.float32(w)
            data[m] = np.rint(mixed) if rounding else mixed
