"""The Volume Data of a Rendered MPR / 3D request: which frames form it, and the assembled, cached volume.

A target (study, series, instance, frames) holds candidates (PS3.3 C.11.23.1 VOLUME inputs):
the single-frame slices of one series grouped by Frame of Reference, orientation, pixel format and
spacing, and each multi-frame instance with per-frame geometry on its own. One-slice groups and
groups that are not MONOCHROME2 (a localizer beside the CT, a colour screen capture) are not
candidates, so they never make a study ambiguous. ``volumeinputreference`` and ``match``
(§8.3.5.3.1-2) choose among them; the frames they name are the volume as they are, checked by
``assemble`` (400 naming the reason when they fail C.11.23.1).

Assembled volumes are kept in a memory-bounded LRU keyed by the digests of their instances and
the frames used: a changed instance has another digest, so a stale volume is never served, and a
viewer rotating a view pays for decoding and assembly once (concurrent requests wait for the first).
"""

from __future__ import annotations

import fnmatch
import itertools
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import cast

import numpy as np

from .. import memory
from ..cache import SizedCache
from ..dicom import dicomjson as dj
from ..dicom import jsonwriter, pixels
from ..errors import BadRequest
from ..model.appearance import Window
from ..model.rendering import VolumeSelector
from ..model.stored import InstanceRecord
from ..render import lut
from ..render.volume import Slice, Volume, fill, layout, levels
from .sources import Sources

VOLUME_SOP_EXCLUDED = ("1.2.840.10008.5.1.4.1.1.11.",)  # presentation states hold no pixels
_ROUND = 4  # decimals when grouping orientations and spacings (C.11.23.1: tolerance is the application's)

FrameRef = tuple[InstanceRecord, int]  # a record and a 0-based frame index


@dataclass(frozen=True, slots=True)
class Candidate:
    """One possible VOLUME input of a target, described for the 400 that lists several."""

    frames: tuple[FrameRef, ...]
    series_uid: str
    instance_uid: str | None  # a multi-frame instance that is a candidate on its own

    def describe(self, description: str | None) -> str:
        what = f"series {self.series_uid}"
        if self.instance_uid is not None:
            what = f"instance {self.instance_uid} of {what}"
        if description:
            what += f" ({description!r})"
        unit = "frames" if self.instance_uid is not None else "slices"
        return f"{what}: {len(self.frames)} {unit}"


@dataclass(frozen=True, slots=True)
class Assembled:
    """A volume and what rendering it needs besides voxels: the default VOI and the first record."""

    volume: Volume
    window: Window  # the instances' stored window, else the volume's data range (LINEAR_EXACT)
    records: tuple[InstanceRecord, ...]
    key: tuple[object, ...]
    factor: int = 1  # > 1: blocks of factor x factor pixels averaged, to fit the request's memory budget

    @property
    def nbytes(self) -> int:
        return int(self.volume.nbytes)


class VolumeCache(SizedCache[Assembled]):
    """The LRU of assembled volumes, bounded by their voxel bytes (``Settings.volume_cache_bytes``).

    ``candidates`` keeps the candidates of the last targets by their instances' digests: grouping hundreds of
    slices is the costliest Python of a request on a volume already assembled (a viewer dragging asks ten a second).
    """

    def __init__(self, max_bytes: int) -> None:
        super().__init__(max_bytes, lambda assembled: assembled.nbytes)
        self.candidates: SizedCache[list[Candidate]] = SizedCache(64, lambda _: 1)


def _monochrome_image(record: InstanceRecord) -> bool:
    pixel = record.pixel
    return (pixel is not None and bool(record.frames) and record.display is not None and pixel.samples_per_pixel == 1
            and pixel.photometric_interpretation == "MONOCHROME2"
            and not record.sop_class_uid.startswith(VOLUME_SOP_EXCLUDED))


def _has_geometry(record: InstanceRecord, index: int) -> bool:
    assert record.display is not None
    frame = record.display.frame(index)
    return frame.position is not None and frame.orientation is not None and frame.pixel_spacing is not None


def _group_key(record: InstanceRecord) -> tuple[object, ...]:
    assert record.display is not None and record.pixel is not None
    frame = record.display.frame(0)
    pixel = record.pixel
    return (record.series_uid, record.display.frame_of_reference_uid,
            tuple(round(v, _ROUND) for v in frame.orientation or ()),
            tuple(round(v, _ROUND) for v in frame.pixel_spacing or ()),
            pixel.rows, pixel.columns, pixel.bits_allocated, pixel.bits_stored, pixel.pixel_representation)


def candidates(records: Sequence[InstanceRecord]) -> list[Candidate]:
    """The VOLUME input candidates among ``records`` (see the module docstring), largest first."""
    found: list[Candidate] = []
    groups: dict[tuple[object, ...], list[InstanceRecord]] = {}
    for record in records:
        if not _monochrome_image(record):
            continue
        if len(record.frames) > 1:
            if all(_has_geometry(record, i) for i in range(len(record.frames))):
                frames = tuple((record, i) for i in range(len(record.frames)))
                found.append(Candidate(frames, record.series_uid, record.instance_uid))
        elif _has_geometry(record, 0):
            groups.setdefault(_group_key(record), []).append(record)
    for group in groups.values():
        if len(group) > 1:
            found.append(Candidate(tuple((r, 0) for r in group), group[0].series_uid, None))
    return sorted(found, key=lambda c: -len(c.frames))



def _matches(item: dj.Json, conditions: Sequence[tuple[tuple[str, ...], str]]) -> bool:
    """QIDO-style single value matching (§8.3.4.1): any value equal, ``*`` and ``?`` wildcards, case kept."""
    for path, wanted in conditions:
        values = dj.strings(item, path)
        if wanted == "":
            continue  # universal matching
        if not any(fnmatch.fnmatchcase(value, wanted) for value in values):
            return False
    return True


def select(sources: Sources, records: Sequence[InstanceRecord], selector: VolumeSelector,
           frame_numbers: Sequence[int] | None, memo: SizedCache[list[Candidate]] | None = None) -> Sequence[FrameRef]:
    """The frames of the one VOLUME input of the target, or 400 naming why there is none or several.

    ``frame_numbers`` (1-based) come from a frames resource; ``selector`` from the query; ``memo`` keeps the
    candidates of a set of records by their digests (a changed instance has another digest).
    """
    pool = list(records)
    if selector.instance_uids:  # §8.3.5.3.1: the named instances are the input, as they are
        by_uid = {r.instance_uid: r for r in pool}
        missing = [uid for uid in selector.instance_uids if uid not in by_uid]
        if missing:
            raise BadRequest(f"volumeinputreference names instances this target does not hold: {', '.join(missing)}")
        pool = [by_uid[uid] for uid in dict.fromkeys(selector.instance_uids)]
    if selector.match:
        conditions = []
        for name, value in selector.match:
            path = jsonwriter.attribute_path(name)
            if path is None:
                raise BadRequest(f"invalid match attribute {name[:60]!r}: a keyword or 8 hex digits")
            conditions.append((path, value))
        pool = [r for r, item in zip(pool, sources.metadata(pool), strict=True) if _matches(item, conditions)]
        if not pool:
            raise BadRequest("match selects no instance of this target")
    numbers = list(frame_numbers or ()) + list(selector.frame_numbers)
    if numbers:
        multi = [r for r in pool if r.pixel is not None and len(r.frames) > 1]
        if len(pool) != 1 or not multi:
            raise BadRequest("frame numbers (a frames resource or volumeinputreference) select frames of one"
                             " multi-frame instance; this target is not one")
        record = multi[0]
        wanted = list(dict.fromkeys(frame_numbers or selector.frame_numbers))
        if frame_numbers and selector.frame_numbers:
            wanted = [n for n in wanted if n in set(selector.frame_numbers)]
        bad = [n for n in wanted if not 1 <= n <= len(record.frames)]
        if bad:
            raise BadRequest(f"instance {record.instance_uid} has {len(record.frames)} frames; no frame"
                             f" {', '.join(map(str, bad))}")
        return [(record, n - 1) for n in wanted]
    if selector.instance_uids:
        return [(r, i) for r in pool for i in range(len(r.frames) if r.pixel is not None else 0)]
    if memo is None:
        found = candidates(pool)
    else:
        found = memo.get_or_make(("candidates", *((r.instance_uid, r.digest) for r in pool)), lambda: candidates(pool))
    if len(found) == 1:
        return found[0].frames
    if not found:
        images = [r for r in pool if r.pixel is not None and r.frames]
        if not images:
            raise BadRequest("this target holds no image to build a volume from (PS3.3 C.11.23.1)")
        # No candidate: the largest set of frames says what keeps it from being a volume.
        return max(([(r, i) for r in images if r.series_uid == s for i in range(len(r.frames))]
                    for s in {r.series_uid for r in images}), key=len)
    descriptions = _descriptions(sources, found)
    listing = "; ".join(c.describe(d) for c, d in zip(found, descriptions, strict=True))
    raise BadRequest(f"this target holds {len(found)} volumes; choose one with volumeinputreference (SOP Instance"
                     f" UIDs) or match (e.g. match=SeriesInstanceUID=...): {listing}")


def _descriptions(sources: Sources, found: Sequence[Candidate]) -> list[str | None]:
    items = sources.metadata([c.frames[0][0] for c in found])
    return [next(iter(dj.strings(item, ("0008103E",))), None) for item in items]  # Series Description


def _slice(ref: FrameRef) -> Slice:
    """One frame as a ``Slice`` whose pixels are decoded later (``_values``): its geometry, rescale and format."""
    record, index = ref
    pixel = record.pixel
    display = record.display
    assert pixel is not None and display is not None
    frame = display.frame(index)
    described = pixels.decoded_description(record.transfer_syntax_uid, pixel)
    slope, intercept = frame.rescale_slope, frame.rescale_intercept
    if frame.modality_lut is not None:  # PS3.3 C.11.1: a LUT is not linear; the frame holds modality values
        slope, intercept = 1.0, 0.0
    label = f"frame {index + 1}" if len(record.frames) > 1 else f"instance {record.instance_uid}"
    pixel_format = (described.samples_per_pixel, described.photometric_interpretation, described.rows,
                    described.columns, described.bits_allocated, described.bits_stored, described.bits_stored - 1,
                    described.pixel_representation)
    return Slice(pixels=None, position=frame.position, orientation=frame.orientation,
                 pixel_spacing=frame.pixel_spacing, label=label, slope=slope, intercept=intercept,
                 frame_of_reference_uid=display.frame_of_reference_uid, pixel_format=pixel_format)


def _values(sources: Sources, ref: FrameRef) -> np.ndarray:
    """One frame's decoded stored values, or float32 modality values where a Modality LUT is not linear."""
    record, index = ref
    assert record.display is not None
    frame = record.display.frame(index)
    values, described = sources.decoded_frame(record, index)
    if values.ndim == 3 and values.shape[-1] == 1:
        values = values[..., 0]
    if values.ndim == 2:
        values = lut.stored_values(values, described)
    if frame.modality_lut is not None and values.ndim == 2:  # PS3.3 C.11.1: a LUT is not linear
        values = lut.modality(values, frame)
    return cast(np.ndarray, values)


def _planned_dtype(frames: Sequence[FrameRef], slices: Sequence[Slice]) -> np.dtype | None:
    """What ``assemble.fill`` keeps, decided before any frame is decoded (its ``_stored_dtype`` on metadata).

    Stored integers of at most 16 bits under one linear rescale: int16 when they fit (signed, or unsigned below
    16 bits stored), else uint16; anything else (a non-linear Modality LUT, rescales that differ, 32-bit or
    float samples): None, float32 modality values.
    """
    first = slices[0]
    if any(s.slope != first.slope or s.intercept != first.intercept for s in slices):
        return None
    record, index = frames[0]
    assert record.display is not None and record.pixel is not None
    if any(r.display is not None and r.display.frame(i).modality_lut is not None for r, i in frames):
        return None
    if record.pixel_path not in (None, "7FE00010"):  # Float / Double Float Pixel Data
        return None
    pixel = record.pixel
    if pixel.bits_allocated > 16:
        return None
    if pixel.pixel_representation or pixel.bits_stored < 16:
        return np.dtype(np.int16)
    return np.dtype(np.uint16)


def _decoded_in_order(sources: Sources, frames: Sequence[FrameRef], order: Sequence[int]) -> Iterator[np.ndarray]:
    """The frames' values in ``order``, decoded on the executor ``workers`` at a time, ahead of their use."""
    pending: deque[Future[np.ndarray]] = deque()
    upcoming = iter(order)
    try:
        for n in itertools.islice(upcoming, sources.workers):
            pending.append(sources.executor.submit(_values, sources, frames[n]))
        while pending:
            values = pending.popleft().result()
            for n in itertools.islice(upcoming, 1):
                pending.append(sources.executor.submit(_values, sources, frames[n]))
            yield values
    finally:
        for future in pending:
            future.cancel()


def volume_key(frames: Sequence[FrameRef]) -> tuple[object, ...]:
    """What names an assembled volume: each instance's digest and the frames taken from it."""
    return ("volume", *((record.digest, index) for record, index in frames))


def _default_window(frames: Sequence[FrameRef], volume: Volume) -> Window:
    """The first instance's stored window, else LINEAR_EXACT over the volume's modality value range."""
    record, index = frames[0]
    assert record.display is not None
    stored = record.display.frame(index).windows
    if stored:
        return stored[0]
    data = volume.data
    low = float(data.min()) * volume.slope + volume.intercept
    high = float(data.max()) * volume.slope + volume.intercept
    return lut.auto_window(np.asarray([min(low, high), max(low, high)], dtype=np.float32), (low, high + 1.0))


# Bytes per pixel a rendering of a volume holds (plane coordinates, slab accumulators of two workers, VOI, RGB,
# encoder), per output pixel or per pixel of the volume's largest face (the intermediate image of a projection),
# whichever is more: up to ~130 measured (benchmarks/memory.py, a 10 mm slab). A volume leaves room besides itself
# for the rendering of a 512 x 512 view; a larger one is checked when its size is known.
RENDER_PIXEL_BYTES = 160
RESERVED_VIEW_PIXELS = 512 * 512
MIN_REDUCED_SIDE = 16  # a volume reduced to fewer pixels a side than this says nothing: 413 instead


def volume_budget(sources: Sources, frames: Sequence[FrameRef]) -> int:
    """Bytes a volume of ``frames`` may take: the request's budget less the frames decoded ahead and a rendering."""
    record, _ = frames[0]
    decoding = sources.workers * sources.frame_memory(record)
    rendering = RESERVED_VIEW_PIXELS * RENDER_PIXEL_BYTES
    return sources.budget - decoding - rendering


def assembled(sources: Sources, cache: VolumeCache, frames: Sequence[FrameRef]) -> Assembled:
    """The volume of ``frames``, from the cache or decoded in parallel on the executor and filled in place once.

    The frames' geometry is checked before any is decoded; then the volume's one array is allocated and filled a
    frame at a time. A volume larger than the request's memory budget allows (``volume_budget``) is assembled at
    a reduced in-plane resolution (blocks of 2 x 2, 4 x 4 ... pixels averaged), which ``Assembled.factor`` and the
    response's Warning say; one that would need fewer than 16 pixels a side is 413.

    Call from outside the executor (the web layer runs the use case in its thread pool): decoding
    jobs are submitted to the executor and waited for here.
    """
    slices = [_slice(ref) for ref in frames]
    plan = layout(slices)
    dtype = _planned_dtype(frames, slices)
    itemsize = np.dtype(np.float32 if dtype is None else dtype)
    allowed = volume_budget(sources, frames)
    factor = 1
    # The reduced copies rendering keeps (levels.py) are counted with the volume from the start.
    while plan.nbytes(itemsize, factor) * (1 + levels.MOST_SHARE) > allowed:
        factor *= 2
        if min(plan.shape) // factor < MIN_REDUCED_SIDE:
            rows, columns = plan.shape
            needed = plan.nbytes(itemsize) + sources.budget - allowed  # the volume, the frames ahead, a rendering
            memory.check(needed, sources.budget, f"a volume of {plan.count} slices of {columns} x {rows} pixels")
    key = (*volume_key(frames), factor)

    def make() -> Assembled:
        volume = fill(slices, plan, _decoded_in_order(sources, frames, plan.order), dtype, factor)
        records = tuple({record.instance_uid: record for record, _ in frames}.values())
        return Assembled(volume, _default_window(frames, volume), records, key, factor)

    try:
        return cache.get_or_make(key, make)
    finally:
        memory.release(plan.nbytes(itemsize, factor))
