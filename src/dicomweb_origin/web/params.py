"""Parse the rendering query parameters (PS3.18 §8.3.5.1, §8.3.5.2) into one frozen ``RenderParams``.

Every malformed value is a 400 naming the parameter; unsupported annotation keywords are ignored
and reported in a Warning (§8.3.5.1.1). Values come percent-decoded (dicomweb-client sends
``viewport=256%2C256``). List parameters (annotation, iccprofile, accept, charset) may be repeated
and read as one comma-separated list; single-valued ones (window, quality, viewport) given twice
are 400.
"""

from __future__ import annotations

import math
import re

from starlette.datastructures import QueryParams

from ..errors import BadRequest
from ..model import RenderParams, Viewport, Window

ANNOTATIONS = ("patient", "technique")  # §8.3.5.1.1
WINDOW_FUNCTIONS = {"linear": "LINEAR", "linear-exact": "LINEAR_EXACT", "sigmoid": "SIGMOID"}  # §8.3.5.1.4
ICC_PROFILES = ("no", "yes", "srgb", "adobergb", "rommrgb")  # §8.3.5.1.5
MAX_VIEWPORT = 8192  # pixels per side: bounds the memory of one rendering
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def _values(query: QueryParams, name: str, single: bool = False) -> str | None:
    """A parameter's value; a list parameter given several times is one list, a single-valued one is 400."""
    found = query.getlist(name)
    if single and len(found) > 1:
        raise BadRequest(f"{name} is given {len(found)} times: it takes one value")
    return None if not found else ",".join(found)


def render_params(query: QueryParams, *, thumbnail: bool = False) -> tuple[RenderParams, tuple[str, ...]]:
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
