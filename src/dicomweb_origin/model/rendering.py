"""The parsed parameters of a Rendered request (PS3.18 §8.3.5): viewport, window, quality; MPR and 3D."""

from __future__ import annotations

from dataclasses import dataclass

from .appearance import Window


@dataclass(frozen=True, slots=True)
class Viewport:
    """The ``viewport`` parameter (PS3.18 §8.3.5.1.3): output size and an optional source region.

    Source values are in source pixels; a negative width or height flips that axis; None means the
    default (0 for the origin, to the far edge for the size).
    """

    width: int
    height: int
    sx: float | None = None
    sy: float | None = None
    sw: float | None = None
    sh: float | None = None

    @property
    def has_region(self) -> bool:
        return any(v is not None for v in (self.sx, self.sy, self.sw, self.sh))


@dataclass(frozen=True, slots=True)
class RenderParams:
    """Every rendering parameter of a request, parsed and checked (PS3.18 §8.3.5.1); keys the cache and ETag."""

    window: Window | None = None
    viewport: Viewport | None = None
    quality: int | None = None  # 1-100 for lossy media types
    annotation: tuple[str, ...] = ()  # supported keywords only: "patient", "technique"
    iccprofile: str | None = None  # no, yes, srgb, adobergb, rommrgb
    charset: str = "utf-8"


# -- Rendered MPR and Rendered 3D (PS3.18 §10.4.1.1.7-8, §8.3.5.3): the parsed query ------------------

Vector = tuple[float, float, float]

RENDERING_METHODS = {"volume_rendered": "VOLUME_RENDERED", "maximum_ip": "MAXIMUM_IP", "minimum_ip": "MINIMUM_IP",
                     "average_ip": "AVERAGE_IP"}  # §8.3.5.3.3 → Rendering Method (0070,120D)
ORIENTATIONS = ("a", "p", "r", "l", "h", "f")  # §8.3.5.3.4


@dataclass(frozen=True, slots=True)
class VolumeSelector:
    """``volumeinputreference`` and ``match`` (§8.3.5.3.1-2): which instances or frames form the volume."""

    instance_uids: tuple[str, ...] = ()
    frame_numbers: tuple[int, ...] = ()  # 1-based, of the one multi-frame instance of the target
    match: tuple[tuple[str, str], ...] = ()  # (attribute keyword or tag, value), as given

    @property
    def empty(self) -> bool:
        return not (self.instance_uids or self.frame_numbers or self.match)


@dataclass(frozen=True, slots=True)
class VolumeParams:
    """Every parameter of a Rendered MPR / 3D request, parsed and checked; keys the caches and ETag.

    Unset values are None: what the server chooses instead is decided by the use case and reported
    (Annex K), never here.
    """

    render: RenderParams = RenderParams()
    selector: VolumeSelector = VolumeSelector()
    rendering_method: str | None = None  # a Rendering Method value (VOLUME_RENDERED, MAXIMUM_IP, ...)
    orientation: str | None = None  # a p r l h f
    viewpoint: tuple[Vector, Vector, Vector] | None = None  # position, lookat, up (§8.3.5.3.5-7)
    slab: float | None = None  # mprslab, mm (> 0)
    swivel_range: float | None = None  # degrees
    curve: tuple[Vector, ...] = ()  # volumetriccurvepoint, mm
    step: int | None = None  # animationstepsize: degrees (swivel) or mm (curve)
    rate: int | None = None  # animationrate: steps per second
    metadata_only: bool = False  # renderedvolumetricmetadata=yes

    @property
    def animated(self) -> bool:
        return self.swivel_range is not None or bool(self.curve)
