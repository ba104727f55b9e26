"""Rendered MPR and Rendered 3D resources (PS3.18 §10.4.1.1.7-8, §8.3.5.3, Annex K).

From a target and the parsed parameters to one part: a view (image/jpeg by default, image/png,
image/gif), an animation (swivel or curve fly-through, image/gif or video/mp4), or, with
``renderedvolumetricmetadata=yes``, only the Rendered Volume Response Module (Annex K) as DICOM
JSON. The volume comes from ``volume_inputs`` (candidates, selection, the cache of assembled
volumes); the maths is ``render.volume``; the VOI of ``render.lut`` is applied after projection
(PS3.4 FF.2: Modality LUT before interpolation, VOI on the projected values).

Everything the server chooses is decided in ``plan`` so the Annex K answer and the pixels come
from the same values: renderingmethod (AVERAGE_IP thin MPR for /renderedmpr, VOLUME_RENDERED
for /rendered3d), the view (orientation ``f`` for MPR — the axial view as radiologists read it,
``a`` for 3D), the VOI (the instances' stored window, else the data range), the step of an
animation (10° for a swivel, the finest voxel spacing rounded up to 1 mm for a curve) and its rate
(10 steps per second).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import orjson
from pydicom import Dataset

from .. import memory, render
from ..cache import BytesCache, SizedCache
from ..dicom.volumetric import PLANAR_MPR_VPS, VOLUMETRIC_STATES, VolumetricState, parse_state
from ..errors import BadRequest, NotAcceptable, PayloadTooLarge
from ..model.appearance import Window
from ..model.media import Acceptable
from ..model.rendering import Vector, VolumeParams, VolumeSelector
from ..model.stored import InstanceRecord
from ..negotiation import Offer, negotiate
from ..render import lut
from ..render import volume as vr
from .bulk import parse_frame_list
from .payload import Part, Payload, Target, bytes_body, etag, kept_stream_body
from .rendered import MP4_PIXEL_BYTES
from .sources import Sources
from .volume_inputs import RENDER_PIXEL_BYTES, Assembled, VolumeCache, assembled, select

STILL_TYPES = ("image/jpeg", "image/png", "image/gif")  # first = the default (§8.7.4)
ANIMATION_TYPES = ("image/gif", "video/mp4", "image/jpeg", "image/png")  # a still type gets the first frame
METADATA_TYPES = ("application/dicom+json", "application/json")  # Annex K (example B.32)
DEFAULT_SWIVEL_STEP = 10  # degrees
DEFAULT_RATE = 10  # steps per second
MAX_FRAMES = 360
MAX_ANIMATION_PIXELS = 100_000_000  # 360 frames of 512 x 512 fit; 360 of 4096 x 4096 (6 GB) do not
DEFAULT_ORIENTATION = {"mpr": "f", "3d": "a"}
DEFAULT_METHOD = {"mpr": "AVERAGE_IP", "3d": "VOLUME_RENDERED"}
OPERATION = {"mpr": "MPR", "3d": "3D_RENDERING"}  # Reformatting Operation Type (0072,0510)
# quality (§8.3.5.1.2, meaning the server's to define) under this makes a Rendered 3D picture a preview, for the
# pictures a viewer shows while a view is being turned: drawn from the reduced levels of render/volume/levels.py.
PREVIEW_QUALITY = 60
# Parameters the standard refuses with a VPS target (Table 8.3.5-3); volumeinputreference and
# match too: the state names its own inputs (UNVERIFIED for those two).
_NOT_WITH_VPS = (("renderingmethod", "rendering_method"), ("swivelrange", "swivel_range"),
                 ("volumetriccurvepoint", "curve"), ("animationstepsize", "step"), ("animationrate", "rate"),
                 ("renderedvolumetricmetadata", "metadata_only"))


@dataclass(frozen=True, slots=True)
class Plan:
    """Every value a rendering uses, asked for or chosen: what Annex K reports and the pixels follow."""

    kind: str  # mpr or 3d
    method: str  # Rendering Method value
    camera: vr.Camera  # the view asked for (a swivel's midpoint, a curve's up)
    cameras: tuple[vr.Camera, ...]  # one per frame; one for a still
    size: tuple[int, int]  # (width, height) pixels
    spacing: float  # mm per output pixel
    slab: float | None
    window: Window | None  # None for VOLUME_RENDERED
    animation: str | None  # SWIVEL or CROSSCURVE
    swivel_range: float | None
    step: float | None
    rate: int | None
    curve: tuple[Vector, ...]
    modality: str | None
    preview: bool = False  # /rendered3d with quality under PREVIEW_QUALITY: fewer samples (see PREVIEW_QUALITY)


class StateCache(SizedCache[VolumetricState]):
    """Parsed volumetric presentation states by the digest of their instance (a few hundred at most)."""

    def __init__(self, entries: int = 256) -> None:
        super().__init__(entries, lambda _: 1)


def volume(sources: Sources, volumes: VolumeCache, cache: BytesCache, kind: str, target: Target,
           frame_list: str | None, accept: Sequence[Acceptable], params: VolumeParams,
           states: StateCache | None = None) -> Payload:
    """A Rendered MPR (``kind`` mpr) or Rendered 3D (``kind`` 3d) resource: exactly one part."""
    records = sources.records(target)
    state, state_record = _state(sources, kind, records, target, params, states or StateCache(1))
    media_type = _choose(accept, params)
    render.check_icc(media_type, params.render.iccprofile)
    _check(kind, params)
    if state is not None:
        selector = VolumeSelector(tuple(uid for uid, _ in state.inputs))
        inputs = [r for r in (sources.index.get(uid) for uid, _ in state.inputs) if r is not None]
        if len(inputs) != len(state.inputs):
            raise BadRequest(f"volumetric presentation state {target.instance_uid} references instances this"
                             " server does not hold")
        numbers = [n for _, frames in state.inputs for n in frames] or None
        frames = select(sources, inputs, selector, numbers)
    else:
        numbers = None
        if frame_list is not None:
            record = records[0]
            numbers = [i + 1 for i in parse_frame_list(frame_list, max(1, len(record.frames)))]
        frames = select(sources, records, params.selector, numbers, volumes.candidates)
    built = assembled(sources, volumes, frames)
    plan = _plan(kind, built, params, state)
    digests = (*(r.digest for r in built.records), *(() if state_record is None else (state_record.digest,)))
    tag = etag("volume", kind, target.path, frame_list, params, media_type, *digests)
    location = f"{target.path}{'/frames/' + frame_list if frame_list else ''}/{_resource(kind)}"
    warnings = _reduced(built, sources.budget)
    if media_type in METADATA_TYPES:
        module = annex_k(plan)
        return Payload([Part("application/dicom+json", location, len(module), bytes_body(module))], None, tag,
                       warnings=warnings)
    width, height = plan.size
    k, j, i = built.volume.shape
    face = max(i * j, j * k, i * k)  # a projection's intermediate image is as large as the volume's face
    need = built.nbytes + max(width * height, face) * RENDER_PIXEL_BYTES \
        + width * height * (MP4_PIXEL_BYTES if media_type == "video/mp4" else 0)
    memory.check(need, sources.budget, f"rendering {width} x {height} pixels of a volume of"
                 f" {' x '.join(map(str, built.volume.shape[::-1]))} voxels")
    key = ("volume-part", tag)
    cached = cache.get(key)
    if cached is not None:
        return Payload([Part(media_type, location, len(cached), bytes_body(cached))], None, tag, warnings=warnings)
    metadata = _first_metadata(sources, built) if params.render.annotation else None
    # The rendering runs as a job of the heavy lane and shares its work with the lane's other threads.
    spread = vr.Spread(sources.executor.threads, sources.executor.fan_out)
    if media_type in render.ANIMATED and plan.animation is not None:
        chunks = partial(_render, built, plan, params, media_type, metadata, spread)  # frame by frame, spooled
        animation = kept_stream_body(chunks, cache, key, need)
        return Payload([Part(media_type, location, None, animation, memory=need)], None, tag, warnings=warnings)

    def produce() -> bytes:
        return b"".join(_render(built, plan, params, media_type, metadata, spread))

    def body(offset: int, length: int | None) -> Iterator[bytes]:
        yield from bytes_body(cache.get_or_make(key, produce))(offset, length)

    return Payload([Part(media_type, location, None, body, memory=need)], None, tag, warnings=warnings)


def _reduced(built: Assembled, budget: int) -> tuple[str, ...]:
    """The Warning of a volume assembled at a reduced resolution (volume_inputs.assembled), or none."""
    if built.factor == 1:
        return ()
    return (f"the volume was assembled at 1/{built.factor} of its in-plane resolution to fit the memory one"
            f" request may use ({memory.mib(budget)}, --max-request-memory-mb)",)


def _resource(kind: str) -> str:
    return "renderedmpr" if kind == "mpr" else "rendered3d"


def _state(sources: Sources, kind: str, records: Sequence[InstanceRecord], target: Target,
           params: VolumeParams, states: StateCache) -> tuple[VolumetricState | None, InstanceRecord | None]:
    """The VPS when the target is one, with the parameters it refuses checked (Table 8.3.5-3)."""
    if not target.single or records[0].sop_class_uid not in VOLUMETRIC_STATES:
        return None, None
    record = records[0]
    if kind == "mpr" and record.sop_class_uid not in PLANAR_MPR_VPS:
        raise BadRequest(f"{VOLUMETRIC_STATES[record.sop_class_uid]} {record.instance_uid} is rendered by"
                         " /rendered3d, not /renderedmpr")
    given = [name for name, field in _NOT_WITH_VPS if getattr(params, field) not in (None, (), False)]
    if params.render.window is not None:
        given.append("window")
    if not params.selector.empty:
        given.append("volumeinputreference / match")
    if given:
        raise BadRequest(f"{', '.join(given)} not allowed with a volumetric presentation state target"
                         " (PS3.18 §8.3.5.3)")

    def parse() -> VolumetricState:
        return parse_state(record.sop_class_uid, sources.metadata([record])[0])

    return states.get_or_make(("state", record.digest), parse), record


def _check(kind: str, params: VolumeParams) -> None:
    """Parameters that do not fit the resource (our choices, see docs/conformance.md)."""
    if kind == "mpr" and params.rendering_method == "VOLUME_RENDERED":
        raise BadRequest("renderingmethod=volume_rendered is for /rendered3d; an MPR slab combines by"
                         " maximum_ip, minimum_ip or average_ip (PS3.18 §8.3.5.3.3)")
    if kind == "3d" and params.slab is not None:
        raise BadRequest("mprslab is a parameter of /renderedmpr (PS3.18 §8.3.5.3.8)")
    if kind == "3d" and params.curve:
        raise BadRequest("volumetriccurvepoint is a parameter of /renderedmpr: the view moves along the curve"
                         " (PS3.18 §8.3.5.3.10)")
    if params.step is not None and not params.animated:
        raise BadRequest("animationstepsize needs swivelrange or volumetriccurvepoint (PS3.18 §8.3.5.3.11)")
    if params.rate is not None and not params.animated:
        raise BadRequest("animationrate needs swivelrange or volumetriccurvepoint (PS3.18 §8.3.5.3.12)")


def _choose(accept: Sequence[Acceptable], params: VolumeParams) -> str:
    """The first acceptable media type (§8.7.8.1): Annex K JSON, an animation or a still, bare (one item)."""
    offer = negotiate(accept, offers(params))
    if offer is not None:
        return offer.media_type
    if params.metadata_only:
        raise NotAcceptable("renderedvolumetricmetadata=yes answers application/dicom+json (PS3.18 Annex K)")
    types = ANIMATION_TYPES if params.animated else STILL_TYPES
    raise NotAcceptable(f"a rendered volume is served as {', '.join(types[:2] if params.animated else types)}"
                        " (a single part, not multipart)")


def offers(params: VolumeParams) -> tuple[Offer, ...]:
    """One part, bare: the Annex K module (``application/json`` only when named), an animation, or a still."""
    if params.metadata_only:
        return tuple(Offer(t, wildcard=t != "application/json") for t in METADATA_TYPES)
    return tuple(Offer(t) for t in (ANIMATION_TYPES if params.animated else STILL_TYPES))


def _plan(kind: str, built: Assembled, params: VolumeParams, state: VolumetricState | None) -> Plan:
    volume_ = built.volume
    method = params.rendering_method or DEFAULT_METHOD[kind]
    view_mm = None
    if params.viewpoint is not None:
        camera = vr.camera_from_triple(*params.viewpoint)
    elif params.orientation is not None:
        camera = vr.camera_for_orientation(params.orientation, volume_)
    elif state is not None and state.viewpoint is not None:
        camera = vr.camera_from_triple(*state.viewpoint)
        view_mm = state.view_mm
    else:
        camera = vr.camera_for_orientation(DEFAULT_ORIENTATION[kind], volume_)
    size, spacing = _size(volume_, camera, kind, params, view_mm)
    slab = params.slab if params.slab is not None else state.slab if state is not None else None
    window = None
    if method != "VOLUME_RENDERED":
        window = params.render.window or (state.window if state is not None else None) or built.window
    cameras: tuple[vr.Camera, ...] = (camera,)
    animation = swivel = step = rate = None
    if params.swivel_range is not None:
        animation, swivel = "SWIVEL", params.swivel_range
        step = float(params.step or DEFAULT_SWIVEL_STEP)
        cameras = tuple(vr.swivel_cameras(camera, swivel, step))
    elif params.curve:
        animation = "CROSSCURVE"
        step = float(params.step or max(1, math.ceil(volume_.finest_spacing)))
        cameras = tuple(vr.curve_cameras(params.curve, step, camera.up))
    if animation is not None:
        rate = params.rate or DEFAULT_RATE
        if len(cameras) > MAX_FRAMES:
            raise BadRequest(f"the animation would have {len(cameras)} frames; at most {MAX_FRAMES}: take a"
                             " larger animationstepsize")
        pixels = len(cameras) * size[0] * size[1]
        if pixels > MAX_ANIMATION_PIXELS:  # frames x width x height bounds one request's time and memory
            raise PayloadTooLarge(f"an animation of {len(cameras)} frames of {size[0]} x {size[1]} pixels is more"
                                  f" than this server renders ({MAX_ANIMATION_PIXELS // 1_000_000} million pixels):"
                                  " take a smaller viewport or a larger animationstepsize")
    modality = built.records[0].display.modality if built.records[0].display is not None else None
    quality = params.render.quality
    preview = kind == "3d" and quality is not None and quality < PREVIEW_QUALITY
    return Plan(kind, method, camera, cameras, size, spacing, slab, window, animation, swivel, step, rate, params.curve,
                modality, preview)


def _size(volume_: vr.Volume, camera: vr.Camera, kind: str, params: VolumeParams,
          view_mm: tuple[float, float] | None) -> tuple[tuple[int, int], float]:
    """Output size and spacing: the footprint at the finest spacing, fitted inside ``viewport=vw,vh``."""
    which = "mpr" if kind == "mpr" else "project"
    if view_mm is not None:  # a planar MPR VPS: its view width and height, at the finest spacing
        spacing = volume_.finest_spacing
        size = (max(1, math.ceil(view_mm[0] / spacing - 1e-6)), max(1, math.ceil(view_mm[1] / spacing - 1e-6)))
    else:
        size, spacing = vr.default_size(volume_, camera, which)
    viewport = params.render.viewport
    if viewport is not None and not viewport.has_region:
        scale = max(size[0] / viewport.width, size[1] / viewport.height)
        size = (max(1, min(viewport.width, round(size[0] / scale))), max(1, min(viewport.height,
                                                                                round(size[1] / scale))))
        spacing *= scale
    return size, float(spacing)


def _first_metadata(sources: Sources, built: Assembled) -> dict[str, Any]:
    return sources.metadata(built.records[:1])[0]


def _grey(values: np.ndarray, window: Window) -> np.ndarray:
    """VOI after projection (PS3.4 FF.2), then 8-bit P-Values (MONOCHROME2, identity Presentation LUT)."""
    with np.errstate(over="ignore", invalid="ignore"):
        y = lut.window_values(np.nan_to_num(values.astype(np.float32, copy=False)), window)
        grey: np.ndarray = np.rint(lut.presentation(y, None, False)).astype(np.uint8)
        return grey


def _frame(built: Assembled, plan: Plan, camera: vr.Camera, still_curve: bool, spread: vr.Spread) -> np.ndarray:
    """One frame of the plan as an 8-bit image (grey, or RGB for volume rendering)."""
    volume_ = built.volume
    if plan.kind == "mpr":
        if still_curve:
            values = vr.curved_mpr(volume_, plan.curve, camera.up, spacing=plan.spacing)
        else:
            values = vr.mpr(volume_, camera, size=plan.size, spacing=plan.spacing, slab=plan.slab or 0.0,
                            method=plan.method.lower(), spread=spread)
    elif plan.method == "VOLUME_RENDERED":
        rgb: np.ndarray = vr.volume_render(volume_, camera, modality=plan.modality, size=plan.size,
                                           spacing=plan.spacing, preview=plan.preview, spread=spread)
        return rgb
    else:
        values = vr.project(volume_, camera, plan.method.lower(), size=plan.size, spacing=plan.spacing,
                            preview=plan.preview, spread=spread)
    assert plan.window is not None
    return _grey(values, plan.window)


def _render(built: Assembled, plan: Plan, params: VolumeParams, media_type: str,
            metadata: dict[str, Any] | None, spread: vr.Spread) -> Iterator[bytes]:
    """The pixels of the plan, finished (ICC, viewport region, annotation) and encoded as they are made.

    An animation is rendered and encoded a frame at a time (memory holds one frame, whatever its length).
    """
    viewport = params.render.viewport  # its size is the plan's; a source region is cut from the rendering
    finish = render.Finish(media_type, params.render.iccprofile, None,
                           viewport if viewport is not None and viewport.has_region else None,
                           params.render.annotation if metadata is not None else (), metadata, params.render.quality)
    if media_type not in render.ANIMATED or plan.animation is None:
        still_curve = plan.animation == "CROSSCURVE"  # a still of a curve: the curved MPR
        yield finish.still(_frame(built, plan, plan.cameras[0], still_curve, spread), None, plan.window)
        return
    frames = ((_frame(built, plan, camera, False, spread), number, plan.window)
              for number, camera in enumerate(plan.cameras, start=1))
    yield from finish.animation(frames, 1000.0 / (plan.rate or DEFAULT_RATE))


def annex_k(plan: Plan) -> bytes:
    """The Rendered Volume Response Module (PS3.18 Annex K, Table K.1-1) of a plan, as DICOM JSON.

    Only values the plan holds, rounded to 6 decimals: identical requests get identical bytes.
    """
    ds = Dataset()
    camera = plan.camera
    operation = OPERATION[plan.kind]
    if plan.kind == "mpr" and plan.slab:
        operation = "SLAB"
    ds.ReformattingOperationType = operation
    ds.RenderingMethod = plan.method
    ds.ViewpointPosition = _fd(camera.position)
    ds.ViewpointLookAtPoint = _fd(camera.lookat)
    ds.ViewpointUpDirection = _fd(camera.up)
    if plan.kind == "mpr" and plan.slab:
        ds.MPRSlabThickness = round(float(plan.slab), 6)
    if plan.window is not None:  # 1C: Rendering Method other than VOLUME_RENDERED
        ds.VOILUTFunction = plan.window.function
        ds.WindowWidth = _ds(plan.window.width)
        ds.WindowCenter = _ds(plan.window.center)
    if plan.animation is not None:
        ds.PresentationAnimationStyle = plan.animation
        ds.AnimationStepSize = float(plan.step or 0)
        ds.RecommendedAnimationRate = float(plan.rate or DEFAULT_RATE)
    if plan.animation == "SWIVEL":
        ds.SwivelRange = float(plan.swivel_range or 0)
    if plan.animation == "CROSSCURVE":
        ds.VolumetricCurvePoints = np.asarray(plan.curve, dtype=np.float64).ravel().tobytes()
    return orjson.dumps(ds.to_json_dict(bulk_data_threshold=1 << 30), option=orjson.OPT_SORT_KEYS)


def _fd(values: Any) -> list[float]:
    return [round(float(v), 6) + 0.0 for v in values]  # + 0.0: no "-0.0"


def _ds(value: float) -> str:
    text = f"{value:.6g}"
    return text if len(text) <= 16 else f"{value:.10g}"[:16]
