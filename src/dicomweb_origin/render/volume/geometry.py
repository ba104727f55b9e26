"""Volumes, cameras and the one convention that relates them to output pixels.

A volume is an array plus a 4x4 affine in the patient coordinate system (LPS, mm), as highdicom has it. A camera
looks along ``direction`` (lookat - position) with ``up`` as the image's up and ``direction x up`` as the image's
right (PS3.18 §8.3.5.3.4-7), so ``orientation=a`` shows the patient's left on the image's right. Output pixel
(row r, column c) of a (width W, height H) image at spacing s has its centre at

    lookat + ((c + 0.5) - W / 2) * s * right - ((r + 0.5) - H / 2) * s * up

so lookat is the image centre and pixels are square.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import BadRequest, PayloadTooLarge
from . import levels

# The largest side of an image the server chooses by itself; a larger footprint gets coarser pixels.
MAX_DEFAULT_SIDE = 1024
# The largest image side and animation length this server renders at all (a bound on memory and time).
MAX_SIDE = 4096
MAX_FRAMES = 1000


@dataclass(frozen=True, slots=True)
class Slice:
    """One input frame with its geometry, before assembly."""

    pixels: np.ndarray | None  # 2-D (rows, columns), stored integers or float32 values; None: loaded when filled
    position: tuple[float, float, float] | None  # Image Position (Patient): centre of the top-left pixel, LPS mm
    orientation: tuple[float, ...] | None  # Image Orientation (Patient): row cosines (3), column cosines (3)
    pixel_spacing: tuple[float, float] | None  # (between rows, between columns), mm
    label: str  # how an error names it: "frame 4", "instance 1.2.3.4"
    slope: float = 1.0  # modality value = pixels * slope + intercept (linear rescale)
    intercept: float = 0.0
    frame_of_reference_uid: str | None = None
    # (samples, photometric, rows, columns, bits allocated, bits stored, high bit, pixel representation)
    pixel_format: tuple[object, ...] = ()


@dataclass(frozen=True, slots=True, eq=False)
class Volume:
    """Voxels (k slices, j rows, i columns) and the affine from (i, j, k, 1) to LPS mm.

    ``data`` holds stored values with one linear rescale (``slope``, ``intercept``) when it is integer, or modality
    values when it is float32. Derived arrays a rendering needs more than once (value range, a reduced level for
    volume rendering) are kept in ``derived`` and counted by ``nbytes`` from the start, so a memory-bounded cache
    that sizes a volume when it stores it stays right.
    """

    data: np.ndarray
    affine: np.ndarray
    slope: float = 1.0
    intercept: float = 0.0
    frame_of_reference_uid: str | None = None
    derived: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(k, j, i) voxels."""
        k, j, i = self.data.shape
        return int(k), int(j), int(i)

    @property
    def nbytes(self) -> int:
        """Bytes held: the voxels plus the reduced levels of ``levels`` (at most ``levels.MOST_SHARE`` more)."""
        return int(self.data.nbytes) + levels.nbytes(self.shape, self.data.itemsize)

    def rendering_level(self) -> levels.Level:
        """(data, affine) of block means (``levels``): made once, kept."""
        return self._kept("level", lambda: levels.rendering_level(self.data, self.affine))

    def preview_level(self) -> levels.Level:
        """(data, affine) of the rendering level halved once more: made once, kept."""
        return self._kept("preview", lambda: levels.preview_level(self.rendering_level()))

    def maximum_level(self) -> levels.Level:
        """(data, affine) of block maxima over the rendering level's blocks: made once, kept."""
        return self._kept("maximum", lambda: levels.maximum_level(self.data, self.affine))

    def _kept(self, name: str, make: Callable[[], levels.Level]) -> levels.Level:
        found: levels.Level | None = self.derived.get(name)
        if found is None:
            found = self.derived[name] = make()
        return found

    @property
    def spacing(self) -> tuple[float, float, float]:
        """(di, dj, dk) mm between voxel centres along each index axis."""
        norms = np.linalg.norm(self.affine[:3, :3], axis=0)
        return float(norms[0]), float(norms[1]), float(norms[2])

    @property
    def finest_spacing(self) -> float:
        return min(self.spacing)

    @property
    def inverse(self) -> np.ndarray:
        """LPS mm -> (i, j, k) voxel index."""
        inv = self.derived.get("inverse")
        if inv is None:
            inv = self.derived["inverse"] = np.linalg.inv(self.affine)
        return inv

    @property
    def centre(self) -> np.ndarray:
        """The LPS point halfway between the first and the last voxel centre."""
        k, j, i = self.shape
        return self.to_patient(np.array([(i - 1) / 2, (j - 1) / 2, (k - 1) / 2]))

    def to_patient(self, ijk: np.ndarray) -> np.ndarray:
        """Voxel indices (..., 3) as (i, j, k) -> LPS mm (..., 3)."""
        ijk = np.asarray(ijk, dtype=np.float64)
        out: np.ndarray = ijk @ self.affine[:3, :3].T + self.affine[:3, 3]
        return out

    def to_index(self, lps: np.ndarray) -> np.ndarray:
        """LPS mm (..., 3) -> voxel indices (..., 3) as (i, j, k)."""
        lps = np.asarray(lps, dtype=np.float64)
        inv = self.inverse
        out: np.ndarray = lps @ inv[:3, :3].T + inv[:3, 3]
        return out

    def corners(self) -> np.ndarray:
        """The 8 corners (8, 3) LPS of the box the voxels fill (half a voxel beyond the outer centres)."""
        k, j, i = self.shape
        box = np.array([[a, b, c] for a in (-0.5, i - 0.5) for b in (-0.5, j - 0.5) for c in (-0.5, k - 0.5)])
        return self.to_patient(box)

    def stored_range(self) -> tuple[float, float]:
        """(min, max) of the stored values, computed once."""
        found = self.derived.get("range")
        if found is None:
            found = self.derived["range"] = (float(self.data.min()), float(self.data.max()))
        return found

    def value_range(self) -> tuple[float, float]:
        """(min, max) modality values."""
        lo, hi = self.stored_range()
        a, b = lo * self.slope + self.intercept, hi * self.slope + self.intercept
        return (min(a, b), max(a, b))

    def to_modality(self, stored: np.ndarray) -> np.ndarray:
        """Stored (or interpolated stored) values -> float32 modality values."""
        out = np.asarray(stored, dtype=np.float32)
        if self.slope != 1.0 or self.intercept != 0.0:
            out = out * np.float32(self.slope) + np.float32(self.intercept)
        return out


@dataclass(frozen=True, slots=True, eq=False)  # arrays: compare the triples, not the objects
class Camera:
    """An orthographic camera: where it stands, the point it looks at and the image's up (all LPS mm)."""

    position: np.ndarray
    lookat: np.ndarray
    up: np.ndarray  # unit, perpendicular to direction (the given up made orthogonal to the view)

    @property
    def direction(self) -> np.ndarray:
        d = self.lookat - self.position
        return d / np.linalg.norm(d)  # type: ignore[no-any-return]

    @property
    def right(self) -> np.ndarray:
        """direction x up: the image's right."""
        r = np.cross(self.direction, self.up)
        return r / np.linalg.norm(r)  # type: ignore[no-any-return]

    def pixel_centres(self, size: tuple[int, int], spacing: float) -> np.ndarray:
        """LPS centres (H, W, 3) of the output pixels of a (width, height) image."""
        width, height = size
        cols = ((np.arange(width) + 0.5) - width / 2) * spacing
        rows = ((np.arange(height) + 0.5) - height / 2) * spacing
        return (self.lookat + cols[None, :, None] * self.right - rows[:, None, None] * self.up)  # type: ignore[no-any-return]


# §8.3.5.3.4: the camera stands on the named side of the patient; (direction it looks, up) in LPS.
ORIENTATIONS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "a": ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),  # from anterior, looking posterior; up superior
    "p": ((0.0, -1.0, 0.0), (0.0, 0.0, 1.0)),  # from posterior, looking anterior
    "r": ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),  # from the patient's right, looking left
    "l": ((-1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),  # from the patient's left, looking right
    "h": ((0.0, 0.0, -1.0), (0.0, -1.0, 0.0)),  # from above the head, looking inferior; up anterior
    "f": ((0.0, 0.0, 1.0), (0.0, -1.0, 0.0)),  # from below the feet, looking superior; up anterior (UNVERIFIED)
}


def _vector(value: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    v = np.asarray(value, dtype=np.float64).reshape(-1)
    if v.shape != (3,) or not np.all(np.isfinite(v)):
        raise BadRequest(f"{name} needs three finite numbers")
    return v


def camera_from_triple(
    position: Sequence[float] | np.ndarray, lookat: Sequence[float] | np.ndarray, up: Sequence[float] | np.ndarray
) -> Camera:
    """A camera from viewpointposition, viewpointlookat and viewpointup (§8.3.5.3.5-7), validated."""
    p, la, u = _vector(position, "viewpointposition"), _vector(lookat, "viewpointlookat"), _vector(up, "viewpointup")
    view = la - p
    distance = float(np.linalg.norm(view))
    if distance < 1e-6:
        raise BadRequest("viewpointposition and viewpointlookat are the same point: no view direction")
    norm = float(np.linalg.norm(u))
    if norm < 1e-9:
        raise BadRequest("viewpointup is the zero vector")
    d, u = view / distance, u / norm
    ortho = u - float(np.dot(u, d)) * d
    if np.linalg.norm(ortho) < 1e-6:
        raise BadRequest("viewpointup is parallel to the view direction (viewpointlookat - viewpointposition)")
    return Camera(p, la, ortho / np.linalg.norm(ortho))


def camera_for_orientation(keyword: str, volume: Volume) -> Camera:
    """The camera of an anatomic orientation keyword (§8.3.5.3.4), looking at the volume's centre from outside it."""
    try:
        direction, up = ORIENTATIONS[keyword.lower()]
    except KeyError:
        raise BadRequest(f"orientation {keyword!r} is none of {', '.join(ORIENTATIONS)}") from None
    centre = volume.centre
    distance = float(np.linalg.norm(np.ptp(volume.corners(), axis=0)))  # the box's diagonal: outside the volume
    d = np.array(direction)
    return Camera(centre - d * distance, centre, np.array(up))


def footprint(volume: Volume, camera: Camera) -> tuple[float, float]:
    """(width, height) mm of the volume's box seen by the camera, symmetric about lookat (the image centre)."""
    offsets = volume.corners() - camera.lookat
    half_w = float(np.max(np.abs(offsets @ camera.right)))
    half_h = float(np.max(np.abs(offsets @ camera.up)))
    return 2 * half_w, 2 * half_h


def default_size(volume: Volume, camera: Camera, kind: str = "mpr") -> tuple[tuple[int, int], float]:
    """((width, height), spacing mm) the server chooses: the whole footprint at the finest input spacing.

    ``kind`` (mpr, project, volume_rendered) is accepted for future per-kind limits; all share one rule now.
    A footprint wider than MAX_DEFAULT_SIDE pixels gets coarser square pixels instead.
    """
    width_mm, height_mm = footprint(volume, camera)
    spacing = volume.finest_spacing
    side = max(width_mm, height_mm) / spacing
    if side > MAX_DEFAULT_SIDE:
        spacing *= side / MAX_DEFAULT_SIDE
    width = max(1, math.ceil(width_mm / spacing - 1e-6))
    height = max(1, math.ceil(height_mm / spacing - 1e-6))
    return (width, height), spacing


def check_side(*sides: int) -> None:
    if max(sides) > MAX_SIDE:
        raise PayloadTooLarge(f"an output of {' x '.join(map(str, sides))} pixels is larger than this server "
                              f"renders ({MAX_SIDE} a side)")


def check_frames(count: int) -> None:
    if count > MAX_FRAMES:
        raise PayloadTooLarge(f"an animation of {count} frames is longer than this server renders ({MAX_FRAMES})")


def resolve_size(
    volume: Volume, camera: Camera, kind: str, size: tuple[int, int] | None, spacing: float | None
) -> tuple[tuple[int, int], float]:
    """Fill in what the caller left out: a spacing alone keeps the footprint, a size alone fits it."""
    resolved = _resolve_size(volume, camera, kind, size, spacing)
    check_side(*resolved[0])
    return resolved


def _resolve_size(
    volume: Volume, camera: Camera, kind: str, size: tuple[int, int] | None, spacing: float | None
) -> tuple[tuple[int, int], float]:
    if spacing is not None and not (spacing > 0 and math.isfinite(spacing)):
        raise BadRequest("the output pixel spacing must be a positive number of mm")
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise BadRequest("the output size must be two positive integers")
    if size is not None and spacing is not None:
        return (int(size[0]), int(size[1])), float(spacing)
    if size is None and spacing is None:
        return default_size(volume, camera, kind)
    width_mm, height_mm = footprint(volume, camera)
    if size is None:
        assert spacing is not None
        return (max(1, math.ceil(width_mm / spacing - 1e-6)), max(1, math.ceil(height_mm / spacing - 1e-6))), spacing
    w, h = int(size[0]), int(size[1])
    return (w, h), max(width_mm / w, height_mm / h, 1e-6)


def rotate(vector: np.ndarray, axis: np.ndarray, degrees: float) -> np.ndarray:
    """Rodrigues' rotation of ``vector`` about the unit ``axis`` by ``degrees`` (right-handed)."""
    t = math.radians(degrees)
    a = axis / np.linalg.norm(axis)
    return vector * math.cos(t) + np.cross(a, vector) * math.sin(t) + a * float(np.dot(a, vector)) * (1 - math.cos(t))  # type: ignore[no-any-return]


def swivel_cameras(camera: Camera, range_deg: float, step_deg: float) -> list[Camera]:
    """The frames of a SWIVEL animation (§8.3.5.3.9): about up through lookat, the given camera at mid-range.

    Frame count = range / step (§8.3.5.3.11); the angles are symmetric about 0, ``step`` apart.
    """
    if not (range_deg > 0 and math.isfinite(range_deg)):
        raise BadRequest("swivelrange must be a positive number of degrees")
    if not (step_deg > 0 and math.isfinite(step_deg)):
        raise BadRequest("animationstepsize must be a positive number")
    count = max(1, round(range_deg / step_deg))
    check_frames(count)
    frames = []
    for n in range(count):
        angle = (n - (count - 1) / 2) * step_deg
        offset = rotate(camera.position - camera.lookat, camera.up, angle)
        frames.append(Camera(camera.lookat + offset, camera.lookat.copy(), camera.up.copy()))
    return frames
