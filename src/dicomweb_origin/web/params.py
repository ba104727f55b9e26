"""Parse the rendering query parameters (PS3.18 §8.3.5.1-3) into one frozen ``RenderParams`` or ``VolumeParams``.

Every malformed value is a 400 naming the parameter; unsupported annotation keywords are ignored
and reported in a Warning (§8.3.5.1.1). Values come percent-decoded (dicomweb-client sends
``viewport=256%2C256``). List parameters (annotation, iccprofile, accept, charset) may be repeated
and read as one comma-separated list; single-valued ones (window, quality, viewport) given twice
are 400. Framework-free: a query is anything with ``getlist`` (Starlette's ``QueryParams``), so the
resource table (``web/resources.py``) names these parsers without importing Starlette.
"""

from __future__ import annotations

import math
import re
from typing import Protocol

from ..errors import BadRequest
from ..model.appearance import Window
from ..model.rendering import (
    ORIENTATIONS,
    RENDERING_METHODS,
    RenderParams,
    Vector,
    Viewport,
    VolumeParams,
    VolumeSelector,
)
from ..model.uids import uid_error


class Query(Protocol):
    """The query parameters of a request: every value given for a name, in order."""

    def getlist(self, key: str) -> list[str]: ...


ANNOTATIONS = ("patient", "technique")  # §8.3.5.1.1
WINDOW_FUNCTIONS = {"linear": "LINEAR", "linear-exact": "LINEAR_EXACT", "sigmoid": "SIGMOID"}  # §8.3.5.1.4
ICC_PROFILES = ("no", "yes", "srgb", "adobergb", "rommrgb")  # §8.3.5.1.5
MAX_VIEWPORT = 8192  # pixels per side: bounds the memory of one rendering
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def _values(query: Query, name: str, single: bool = False) -> str | None:
    """A parameter's value; a list parameter given several times is one list, a single-valued one is 400."""
    found = query.getlist(name)
    if single and len(found) > 1:
        raise BadRequest(f"{name} is given {len(found)} times: it takes one value")
    return None if not found else ",".join(found)


def render_params(query: Query, *, thumbnail: bool = False) -> tuple[RenderParams, tuple[str, ...]]:
    """The request's rendering parameters, and the annotation values it asked for that are not supported."""
    unsupported: tuple[str, ...] = ()
    annotation: tuple[str, ...] = ()
    window = quality = iccprofile = None
    if not thumbnail:  # thumbnails take accept, charset and viewport only (Table 8.3.5-2)
        annotation, unsupported = _annotation(_values(query, "annotation"))
        window = _window(_values(query, "window", single=True))
        quality = _quality(_values(query, "quality", single=True))
        iccprofile = _iccprofile(_values(query, "iccprofile"))
    viewport = _viewport(_values(query, "viewport", single=True), thumbnail)
    return RenderParams(window, viewport, quality, annotation, iccprofile), unsupported


def thumbnail_params(query: Query) -> tuple[RenderParams, tuple[str, ...]]:
    """The parameters of a Thumbnail resource: ``viewport=vw,vh`` only (Table 8.3.5-2, §8.3.5.2)."""
    return render_params(query, thumbnail=True)


def _annotation(text: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if text is None:
        return (), ()
    items = [item.strip() for item in text.split(",")]
    if not items or any(not _TOKEN.fullmatch(item) for item in items):
        raise BadRequest(f"invalid annotation {text[:80]!r}: a comma-separated list of keywords such as patient,technique")
    supported = tuple(dict.fromkeys(item for item in items if item in ANNOTATIONS))
    unsupported = tuple(dict.fromkeys(item for item in items if item not in ANNOTATIONS))
    return supported, unsupported


def _number(text: str, what: str) -> float:
    if not _DECIMAL.fullmatch(text.strip()):
        raise BadRequest(f"invalid {what} {text[:40]!r}: a decimal number")
    value = float(text)
    if not math.isfinite(value):
        raise BadRequest(f"invalid {what} {text[:40]!r}: a finite number")
    return value


def _window(text: str | None) -> Window | None:
    if text is None:
        return None
    items = [item.strip() for item in text.split(",")]
    if len(items) != 3:
        raise BadRequest(f"invalid window {text[:80]!r}: center,width,function (function linear, linear-exact or"
                         " sigmoid)")
    center, width = _number(items[0], "window center"), _number(items[1], "window width")
    function = WINDOW_FUNCTIONS.get(items[2])
    if function is None:
        raise BadRequest(f"invalid window function {items[2][:40]!r}: linear, linear-exact or sigmoid")
    # PS3.3 C.11.2.1.2: width >= 1 for LINEAR; > 0 for the others.
    if width < 1 and function == "LINEAR" or width <= 0:
        raise BadRequest(f"invalid window width {items[1]!r}: at least 1 for linear, above 0 otherwise")
    return Window(center, width, function)


def _quality(text: str | None) -> int | None:
    if text is None:
        return None
    if not re.fullmatch(r"\d{1,3}", text.strip()) or not 1 <= int(text) <= 100:
        raise BadRequest(f"invalid quality {text[:40]!r}: an integer from 1 to 100")
    return int(text)


def _iccprofile(text: str | None) -> str | None:
    if text is None:
        return None
    items = [item.strip().lower() for item in text.split(",")]
    for item in items:  # the grammar allows a list (1#); the first one this server knows wins
        if item not in ICC_PROFILES:
            raise BadRequest(f"invalid iccprofile {item[:40]!r}: one of {', '.join(ICC_PROFILES)}")
    return items[0]


def _viewport(text: str | None, thumbnail: bool) -> Viewport | None:
    if text is None:
        return None
    items = [item.strip() for item in text.split(",")]
    if len(items) < 2 or len(items) > 6 or (thumbnail and len(items) != 2):
        shape = "vw,vh" if thumbnail else "vw,vh[,sx,sy,sw,sh]"
        raise BadRequest(f"invalid viewport {text[:80]!r}: {shape}")
    size = []
    for name, item in zip(("vw", "vh"), items[:2], strict=True):
        if not re.fullmatch(r"\d{1,6}", item) or not 1 <= int(item) <= MAX_VIEWPORT:
            raise BadRequest(f"invalid viewport {name} {item[:40]!r}: an integer from 1 to {MAX_VIEWPORT}")
        size.append(int(item))
    region: list[float | None] = []
    for name, item in zip(("sx", "sy", "sw", "sh"), items[2:], strict=False):
        value = None if item == "" else _number(item, f"viewport {name}")
        if value is not None and name in ("sw", "sh") and value == 0:
            raise BadRequest(f"invalid viewport {name} {item!r}: the source region has no area")
        region.append(value)
    region += [None] * (4 - len(region))
    return Viewport(size[0], size[1], *region)


# -- Rendered MPR and 3D (§8.3.5.3, Table 8.3.5-3) -----------------------------------------------------

MAX_CURVE_POINTS = 256
MAX_ANIMATION_STEP = 3600  # degrees or mm: a larger step makes one frame at most anyway
_FRAME_NUMBER = re.compile(r"\d{1,9}")


def volume_params(query: Query) -> tuple[VolumeParams, tuple[str, ...]]:
    """The request's Rendered MPR / 3D parameters, and the annotation values that are not supported.

    The camera triple is all three or none, and never with ``orientation`` (§8.3.5.3: two mutually
    exclusive ways to set the view; giving both is 400 here, UNVERIFIED in the retrieved text).
    """
    render, unsupported = render_params(query)
    method = _rendering_method(_values(query, "renderingmethod", single=True))
    orientation = _orientation(_values(query, "orientation", single=True))
    triple = [_values(query, name, single=True) for name in ("viewpointposition", "viewpointlookat", "viewpointup")]
    viewpoint = None
    if any(value is not None for value in triple):
        missing = [name for name, value in zip(("viewpointposition", "viewpointlookat", "viewpointup"), triple,
                                               strict=True) if value is None]
        if missing:
            raise BadRequest(f"the camera needs viewpointposition, viewpointlookat and viewpointup together;"
                             f" {', '.join(missing)} missing (PS3.18 §8.3.5.3.5-7)")
        if orientation is not None:
            raise BadRequest("orientation and the viewpoint parameters are mutually exclusive (PS3.18 §8.3.5.3)")
        position, lookat, up = (_vector(v or "", n) for v, n in zip(
            triple, ("viewpointposition", "viewpointlookat", "viewpointup"), strict=True))
        if position == lookat:
            raise BadRequest("viewpointposition equals viewpointlookat: the camera has no view direction")
        if up == (0.0, 0.0, 0.0):
            raise BadRequest("viewpointup is the zero vector: it needs a direction")
        viewpoint = (position, lookat, up)
    slab = _positive(_values(query, "mprslab", single=True), "mprslab")
    swivel = _positive(_values(query, "swivelrange", single=True), "swivelrange")
    if swivel is not None and swivel > 360:
        raise BadRequest(f"invalid swivelrange {swivel:g}: degrees, at most 360")
    curve = tuple(_vector(item, "volumetriccurvepoint") for item in _points(query.getlist("volumetriccurvepoint")))
    if len(curve) > MAX_CURVE_POINTS:
        raise BadRequest(f"volumetriccurvepoint has {len(curve)} points; at most {MAX_CURVE_POINTS}")
    if curve and len(curve) < 2:
        raise BadRequest("volumetriccurvepoint needs at least two points to make a curve")
    if curve and swivel is not None:
        raise BadRequest("swivelrange and volumetriccurvepoint are two animations: give one of them")
    step = _integer(_values(query, "animationstepsize", single=True), "animationstepsize", MAX_ANIMATION_STEP)
    rate = _integer(_values(query, "animationrate", single=True), "animationrate", 100)
    metadata = _values(query, "renderedvolumetricmetadata", single=True)
    if metadata is not None and metadata.strip() != "yes":
        raise BadRequest(f"invalid renderedvolumetricmetadata {metadata[:40]!r}: the only value is yes"
                         " (PS3.18 §8.3.5.3.13)")
    selector = VolumeSelector(*_references(_values(query, "volumeinputreference")), _match(query.getlist("match")))
    return VolumeParams(render, selector, method, orientation, viewpoint, slab, swivel, curve, step, rate,
                        metadata is not None), unsupported


def _rendering_method(text: str | None) -> str | None:
    if text is None:
        return None
    items = [item.strip() for item in text.split(",")]
    for item in items:  # the grammar is 1#: the first one wins, every one must be known
        if item not in RENDERING_METHODS:
            raise BadRequest(f"invalid renderingmethod {item[:40]!r}: one of {', '.join(RENDERING_METHODS)}")
    return RENDERING_METHODS[items[0]]


def _orientation(text: str | None) -> str | None:
    if text is None:
        return None
    items = [item.strip() for item in text.split(",")]
    for item in items:
        if item not in ORIENTATIONS:
            raise BadRequest(f"invalid orientation {item[:40]!r}: one of {' '.join(ORIENTATIONS)} (PS3.18 §8.3.5.3.4)")
    return items[0]


def _vector(text: str, name: str) -> Vector:
    items = text.split(",")
    if len(items) != 3:
        raise BadRequest(f"invalid {name} {text[:80]!r}: three numbers x,y,z (mm, patient coordinates)")
    x, y, z = (_number(item, name) for item in items)
    if max(abs(x), abs(y), abs(z)) > MAX_COORDINATE_MM:  # beyond this, the camera maths overflows to inf / NaN
        raise BadRequest(f"invalid {name} {text[:80]!r}: coordinates within ±{MAX_COORDINATE_MM:g} mm")
    return (x, y, z)


MAX_COORDINATE_MM = 1e6  # a kilometre: far beyond any patient, well within float precision


def _points(values: list[str]) -> list[str]:
    """Curve points: repeated parameters, or one list of x,y,z triples (UNVERIFIED: §8.3.5.3.10 not retrieved)."""
    points: list[str] = []
    for value in values:
        items = value.split(",")
        if len(items) % 3 or not items:
            raise BadRequest(f"invalid volumetriccurvepoint {value[:80]!r}: x,y,z triples")
        points += [",".join(items[i:i + 3]) for i in range(0, len(items), 3)]
    return points


def _positive(text: str | None, name: str) -> float | None:
    if text is None:
        return None
    value = _number(text, name)
    if value <= 0:
        raise BadRequest(f"invalid {name} {text[:40]!r}: a number above 0")
    return value


def _integer(text: str | None, name: str, most: int) -> int | None:
    if text is None:
        return None
    if not re.fullmatch(r"\d{1,6}", text.strip()) or not 1 <= int(text) <= most:
        raise BadRequest(f"invalid {name} {text[:40]!r}: an integer from 1 to {most}")
    return int(text)


def _references(text: str | None) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """SOP Instance UIDs or frame numbers (§8.3.5.3.1; UNVERIFIED: a comma-separated list of one kind)."""
    if text is None:
        return (), ()
    items = [item.strip() for item in text.split(",")]
    if all(_FRAME_NUMBER.fullmatch(item) for item in items):
        numbers = tuple(int(item) for item in items)
        if 0 in numbers:
            raise BadRequest("invalid volumeinputreference: frame numbers start at 1")
        return (), numbers
    for item in items:
        if (error := uid_error(item, "volumeinputreference SOP Instance UID")) is not None:
            raise BadRequest(error + " (volumeinputreference takes SOP Instance UIDs or frame numbers)")
    return tuple(items), ()


def _match(values: list[str]) -> tuple[tuple[str, str], ...]:
    """``match=attribute=value`` items (§8.3.5.3.2, as QIDO matching §8.3.4.1; UNVERIFIED text).

    The attribute (keyword or tag) is resolved by the use case, which knows the data dictionary.
    """
    found = []
    for value in values:
        name, equals, wanted = value.partition("=")
        if not equals or not _ATTRIBUTE.fullmatch(name.strip()):
            raise BadRequest(f"invalid match {value[:80]!r}: attribute=value, e.g. match=ImageType=ORIGINAL")
        found.append((name.strip(), wanted))
    return tuple(found)


_ATTRIBUTE = re.compile(r"[A-Za-z0-9]+(\.[A-Za-z0-9]+)*")
