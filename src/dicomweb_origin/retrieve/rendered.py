"""Rendered and Thumbnail resources (PS3.18 §10.4.1.1.3-4, Tables 10.4.1-3 and 10.4.1-4).

Each instance falls in a category of Table 8.7.4-1 (single-frame image, multi-frame image,
video, text, PDF, presentation state) that says which rendered media types it can become; the
first acceptable one wins (§8.7.8), a wildcard meaning the category's default. Images go through
the one decoding path frames and transcoding use (``Sources.decoded_frame``), then the pure
functions of ``render/`` (display pipeline, viewport, annotation, encoders). Every rendered part is
produced on the CPU executor and kept in a bounded cache keyed like its ETag, so a viewer's study
browser costs one rendering per thumbnail.

Past 400 lines on purpose: the ``Renderer`` (one instance's frames to rendered parts, with their memory
budget and cache) and the two resources that use it (Rendered, Thumbnail) share the category rules above.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from .. import memory, render
from ..cache import BytesCache
from ..dicom.softcopy import parse_presentation
from ..dicom.xml import json_to_xml
from ..errors import BadRequest, DicomWebError, NotAcceptable, PayloadTooLarge
from ..model.appearance import Display, Window
from ..model.media import Acceptable
from ..model.rendering import RenderParams, Viewport
from ..model.stored import InstanceRecord
from ..negotiation import Offer, negotiate
from ..render import document, icons, presentation, report, video
from ..render.viewport import output_size, source_region
from .bulk import parse_frame_list
from .payload import Part, Payload, Target, bytes_body, etag, kept_stream_body
from .sources import Sources

THUMBNAIL_SIZE = 128  # the default thumbnail fits in 128 x 128 (§8.3.5.2: the server chooses)
# Frames x output pixels of one animation (image/gif, video/mp4): a bound on its time, as volumes have
# (volumes.MAX_ANIMATION_PIXELS). Frames are rendered and encoded one at a time, so memory holds one frame
# whatever the length; 1,000 frames of 1024² fit, 60 frames of 8192² (4 billion pixels, minutes of CPU) do not.
MAX_ANIMATION_PIXELS = 1 << 30
# Bytes per pixel a rendering holds besides the decoded frame (measured by benchmarks/memory.py): the display
# pipeline's temporaries per source pixel, and per output pixel the viewport's resampling, annotation and encoder.
SOURCE_PIXEL_BYTES = 24
OUTPUT_PIXEL_BYTES = 16
MP4_PIXEL_BYTES = 48  # x264 keeps its look-ahead frames (about 20 at 1.5 bytes a pixel) and their analysis
VIDEO_COPIES = 3  # a stored video rendered: its stream, the packets demuxed from it, the MP4 remuxed

# SOP classes by what they render as (PS3.4 Annex B).
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
ENCAPSULATED_DOCUMENT = "00420011"
_SR_PREFIX = "1.2.840.10008.5.1.4.1.1.88."
_PRESENTATION_STATES = frozenset(f"1.2.840.10008.5.1.4.1.1.11.{n}" for n in (1, 2))  # grayscale, color

# Rendered media types each category can become, its default first (Table 8.7.4-1; a wildcard
# matches the first type it covers, §8.7.7). Multi-frame images have no default: a wildcard gets
# the animated GIF, the one image type that carries every frame.
STILL = ("image/jpeg", "image/png", "image/gif", "image/jp2")
CATEGORY_TYPES: dict[str, tuple[str, ...]] = {
    "single-frame": STILL,
    "multi-frame": ("image/gif", "video/mp4", "image/jpeg", "image/png", "image/jp2"),
    "video": ("video/mp4", "video/mpeg", "video/H265", "image/jpeg", "image/png", "image/gif"),
    "pdf": ("application/pdf", "image/jpeg", "image/png"),
    "text": ("text/html", "text/plain", "text/xml"),
    "presentation": STILL,
}
_STORED_VIDEO_TYPES = {"video/mpeg", "video/H265", "video/mp4"}


def category(record: InstanceRecord) -> str | None:
    """The rendered category of an instance (Table 8.7.2-1), or None when nothing renders it."""
    sop = record.sop_class_uid
    if sop in _PRESENTATION_STATES:
        return "presentation"
    if sop == ENCAPSULATED_PDF:
        return "pdf"
    if sop.startswith(_SR_PREFIX):
        return "text"
    if record.pixel is None or not record.frames:
        return None
    if record.syntax.video:
        return "video"
    return "multi-frame" if len(record.frames) > 1 else "single-frame"


@dataclass(frozen=True, slots=True)
class Choice:
    media_type: str
    multipart: bool


def choose(kind: str, record: InstanceRecord, accept: Sequence[Acceptable], single_item: bool,
           one_instance: bool = False) -> Choice | None:
    """The first acceptable rendered media type this instance can become (§8.7.8.1), or None."""
    offer = negotiate(accept, rendered_offers(kind, record, single_item, one_instance))
    return None if offer is None else Choice(offer.media_type, offer.multipart)


def rendered_offers(kind: str, record: InstanceRecord, single_item: bool, one_instance: bool = False) -> list[Offer]:
    """The category's media types (Table 8.7.4-1), default first; a wildcard takes the first it covers (§8.7.7).

    Bare types only for a single response item (Table 10.4.4-1 note 3); an animation of one instance's frames
    is one item, whatever the frame list. Rendered types carry no transfer syntax (§8.7.4).
    """
    types = CATEGORY_TYPES[kind]
    if kind == "video":  # the stored stream as it is, under its own type, or H.264 in MP4
        types = tuple(t for t in types if t not in _STORED_VIDEO_TYPES or t in ("video/mp4", record.syntax.media_type))
    bare = [Offer(t) for t in types if single_item or one_instance and t in render.ANIMATED]
    return bare + [Offer(t, multipart=True) for t in types]


class Renderer:
    """Builds the parts of one Rendered or Thumbnail request."""

    def __init__(self, sources: Sources, cache: BytesCache, params: RenderParams, thumbnail: bool,
                 target: str = "") -> None:
        self.sources = sources
        self.cache = cache
        self.params = params
        self.thumbnail = thumbnail
        self.target = target  # the resource path of the request's target
        self._metadata: dict[str, dict[str, Any]] = {}

    # -- parts -----------------------------------------------------------------------------

    def part(self, record: InstanceRecord, media_type: str, variant: Sequence[object] | None,
             location: str, produce: Callable[[], bytes]) -> Part:
        """A part produced when sent (on the executor) and kept in the cache under everything that shapes it."""
        key = ("rendered", self.thumbnail, record.digest, media_type, tuple(variant or ()), self.params)
        cached = self.cache.get(key)
        content_type = media_type + ("; charset=utf-8" if media_type.startswith("text/") else "")
        if cached is not None:
            return Part(content_type, location, len(cached), bytes_body(cached))

        def body(offset: int, length: int | None) -> Iterator[bytes]:
            yield from bytes_body(self.cache.get_or_make(key, produce))(offset, length)

        need = self.frame_memory(record, media_type) if record.pixel is not None and record.frames else 0
        return Part(content_type, location, None, body, memory=need)

    def animation_part(self, record: InstanceRecord, frames: Sequence[int], media_type: str, location: str) -> Part:
        """An animation, refused (413) beyond MAX_ANIMATION_PIXELS, streamed frame by frame when produced.

        Produced, it is spooled (``Part.materialize``) rather than held; one small enough is kept in the cache.
        """
        width, height = self.output_size(record)
        total = len(frames) * width * height
        if total > MAX_ANIMATION_PIXELS:
            raise PayloadTooLarge(f"an animation of {len(frames)} frames of {width} x {height} pixels is more than this"
                                  f" server renders ({MAX_ANIMATION_PIXELS:,} pixels in all): take a smaller"
                                  " viewport or fewer frames")
        need = self.frame_memory(record, media_type)
        memory.check(need, self.sources.budget, f"rendering frames of {width} x {height} pixels as {media_type}")
        key = ("rendered", self.thumbnail, record.digest, media_type, tuple(frames), self.params)
        cached = self.cache.get(key)
        if cached is not None:
            return Part(media_type, location, len(cached), bytes_body(cached))
        chunks = partial(self.animation, record, frames, media_type)
        return Part(media_type, location, None, kept_stream_body(chunks, self.cache, key, need), memory=need)

    def output_size(self, record: InstanceRecord) -> tuple[int, int]:
        """(width, height) of a rendered frame of ``record``: its own, or what the viewport makes of it."""
        assert record.pixel is not None
        columns, rows = record.pixel.columns, record.pixel.rows
        viewport = self.viewport_for()
        if viewport is None:
            return columns, rows
        _, _, width, height = source_region(viewport, columns, rows)
        return output_size(viewport, width, height)

    def frame_memory(self, record: InstanceRecord, media_type: str) -> int:
        """Bytes rendering one frame of ``record`` may hold: its decoding, the display pipeline, the output."""
        assert record.pixel is not None
        try:
            width, height = self.output_size(record)
        except BadRequest:  # a viewport region outside the frame: refused when it is rendered
            width, height = record.pixel.columns, record.pixel.rows
        per_output = OUTPUT_PIXEL_BYTES + (MP4_PIXEL_BYTES if media_type == "video/mp4" else 0)
        return (self.sources.frame_memory(record) + record.pixel.rows * record.pixel.columns * SOURCE_PIXEL_BYTES
                + width * height * per_output)

    def instance_parts(self, record: InstanceRecord, kind: str, choice: Choice,
                       indexes: Sequence[int] | None) -> list[Part]:
        """The parts of one instance: one per frame for still types, one for animations and documents."""
        media_type = choice.media_type
        if kind == "presentation":
            return self.presentation_parts(record, media_type, choice.multipart, as_target=record.path == self.target)
        base = record.path
        if kind in ("text", "pdf") and media_type in ("text/html", "text/plain", "text/xml", "application/pdf"):
            return [self.part(record, media_type, None, f"{base}/rendered", lambda: self.document(record, media_type))]
        if kind == "video":
            if media_type.startswith("video/"):
                return [self.part(record, media_type, None, f"{base}/rendered",
                                  lambda: self.video(record, media_type))]
            return [self.part(record, media_type, (0,), f"{base}/rendered",
                              lambda: self.still(self.video_image(record), media_type, record))]
        if kind == "pdf":
            return [self.part(record, media_type, (0,), f"{base}/rendered",
                              lambda: self.still(document.pdf_page_image(self.pdf(record)), media_type, record))]
        frames = list(indexes) if indexes is not None else list(range(len(record.frames)))
        if media_type in render.ANIMATED:
            location = f"{base}/frames/{_frame_list(frames)}/rendered" if indexes is not None else f"{base}/rendered"
            return [self.animation_part(record, frames, media_type, location)]
        if not choice.multipart:
            frames = frames[:1]  # a bare still of a multi-frame instance: its first frame (see conformance.md)
        framed = len(record.frames) > 1 or indexes is not None  # a frame asked for is named as one
        return [self.part(record, media_type, (index,),
                          f"{base}/frames/{index + 1}/rendered" if framed else f"{base}/rendered",
                          partial(self.frame_still, record, index, media_type))
                for index in frames]

    # -- producing -------------------------------------------------------------------------

    def metadata(self, record: InstanceRecord) -> dict[str, Any]:
        """The stored DICOM JSON of an instance, read once per request (an animation annotates every frame)."""
        if record.instance_uid not in self._metadata:
            self._metadata[record.instance_uid] = self.sources.metadata([record])[0]
        return self._metadata[record.instance_uid]

    @staticmethod
    def display(record: InstanceRecord) -> Display | None:
        return record.display

    def image(self, record: InstanceRecord, index: int,
              ps: presentation.PresentationState | None = None) -> tuple[Any, Window | None]:
        """One frame through the display pipeline (PS3.4 N.2), and the VOI window it used."""
        pixels, described = self.sources.decoded_frame(record, index)
        display = self.display(record)
        window = self.params.window
        if ps is not None and display is not None:
            display = ps.display_for(record.instance_uid, index + 1, display)
            window = None
        image, used = render.render_frame(pixels, described, display, index, window)
        if ps is not None:
            image = presentation.apply_presentation(image, ps, record.instance_uid, index + 1)
        return image, used

    def finishing(self, record: InstanceRecord, media_type: str) -> render.Finish:
        """The finishing steps (ICC, viewport, annotation, encoding) of this request's renderings of ``record``."""
        source = None
        display = self.display(record)
        if media_type in render.ICC_TYPES and display is not None and display.icc_profile_path:
            source = self.sources.bulk_bytes(record, display.icc_profile_path)
        annotation = () if self.thumbnail else self.params.annotation
        return render.Finish(media_type, self.params.iccprofile, source, self.viewport_for(), annotation,
                             self.metadata(record) if annotation else None, self.params.quality)

    def viewport_for(self) -> Viewport | None:
        if self.params.viewport is not None or not self.thumbnail:
            return self.params.viewport
        return Viewport(THUMBNAIL_SIZE, THUMBNAIL_SIZE)

    def still(self, image: Any, media_type: str, record: InstanceRecord, index: int | None = None,
              window: Window | None = None) -> bytes:
        return self.finishing(record, media_type).still(image, None if index is None else index + 1, window)

    def frame_still(self, record: InstanceRecord, index: int, media_type: str,
                    ps: presentation.PresentationState | None = None) -> bytes:
        memory.check(self.frame_memory(record, media_type), self.sources.budget,
                     f"rendering frame {index + 1} of instance {record.instance_uid} as {media_type}")
        image, window = self.image(record, index, ps)
        return self.still(image, media_type, record, index, window)

    def animation(self, record: InstanceRecord, frames: Sequence[int], media_type: str) -> Iterator[bytes]:
        """The animation's bytes as they are encoded: one frame decoded, rendered and encoded at a time."""
        def images() -> Iterator[tuple[Any, int, Window | None]]:
            for index in frames:
                image, window = self.image(record, index)
                yield image, index + 1, window

        display = self.display(record)
        frame_time = (display.frame_time_ms if display is not None else None) or 100.0  # 10 frames/s unless told
        return self.finishing(record, media_type).animation(images(), frame_time)

    def stream(self, record: InstanceRecord) -> bytes:
        """A video's stored stream, whole: within the request's memory budget with its demuxed and remuxed copies."""
        size = sum(length for frame in record.frames for _, length in frame)
        memory.check(size * VIDEO_COPIES, self.sources.budget,
                     f"rendering the {size:,}-byte video of instance {record.instance_uid}")
        return b"".join(self.sources.stored_frame(record, index) for index in range(len(record.frames)))

    def video(self, record: InstanceRecord, media_type: str) -> bytes:
        stream = self.stream(record)
        if media_type == "video/mp4":
            display = self.display(record)
            return video.to_mp4(stream, record.transfer_syntax_uid, display.frame_time_ms if display else None)
        return stream  # the stored stream under its own media type (§8.7.4)

    def video_image(self, record: InstanceRecord) -> Any:
        return video.video_frame(self.stream(record), record.transfer_syntax_uid, 0 if not self.thumbnail else None)

    def pdf(self, record: InstanceRecord) -> bytes:
        data = self.sources.bulk_bytes(record, ENCAPSULATED_DOCUMENT)
        metadata = self.metadata(record)
        if data is None:  # stored before ingest made it a bulk element whatever its size
            inline = metadata.get(ENCAPSULATED_DOCUMENT, {}).get("InlineBinary")
            if not inline:
                raise NotAcceptable(f"instance {record.instance_uid} holds no Encapsulated Document")
            data = base64.b64decode(inline)
        length = metadata.get("00420015", {}).get("Value", [None])[0]  # Encapsulated Document Length
        return document.pdf_bytes(data, length if isinstance(length, int) else None)

    def document(self, record: InstanceRecord, media_type: str) -> bytes:
        if media_type == "application/pdf":
            return self.pdf(record)
        metadata = self.metadata(record)
        if media_type == "text/html":
            return report.sr_html(metadata).encode()
        if media_type == "text/plain":
            return report.sr_text(metadata).encode()
        return json_to_xml(metadata)  # text/xml: the Native DICOM Model (PS3.19 Annex A)

    # -- presentation states ---------------------------------------------------------------

    def presentation_state(self, record: InstanceRecord) -> presentation.PresentationState:
        """The state from its stored DICOM JSON, with the bulk values it draws (overlays, ICC profile)."""
        metadata = self.metadata(record)
        bulk = {element.path: self.sources.blobs.read(record.blob_key, element.offset, element.length)
                for element in record.bulk if element.path.startswith("60") or element.path.endswith("00282000")}
        return parse_presentation(metadata, bulk)

    def presentation_parts(self, record: InstanceRecord, media_type: str, multipart: bool,
                           as_target: bool) -> list[Part]:
        """The images a presentation state references, rendered with it applied (PS3.4 N.2).

        As the target, ``window`` and a viewport source region are 400 (§8.3.5.1.3-4); inside a study
        or series the state's own VOI and displayed area stand instead of them, for its images only.
        """
        viewport = self.params.viewport
        if as_target and self.params.window is not None:
            raise BadRequest("window is not allowed with a presentation state target (PS3.18 §8.3.5.1.4)")
        if as_target and viewport is not None and viewport.has_region:
            raise BadRequest("a presentation state target takes viewport=vw,vh only (PS3.18 §8.3.5.1.3)")
        renderer = self
        if not as_target:
            size = None if viewport is None else Viewport(viewport.width, viewport.height)
            renderer = Renderer(self.sources, self.cache, replace(self.params, window=None, viewport=size),
                                self.thumbnail, self.target)
        ps = self.presentation_state(record)
        parts: list[Part] = []
        for series_uid, instance_uid, frame_numbers in ps.images:
            image_record = self.sources.index.get(instance_uid)
            if image_record is None or image_record.series_uid != series_uid or image_record.pixel is None:
                continue
            numbers = list(frame_numbers) or list(range(1, len(image_record.frames) + 1))
            for number in numbers:
                if not 1 <= number <= len(image_record.frames):
                    continue
                parts.append(renderer.part(image_record, media_type, (number - 1, record.digest),
                                           f"{record.path}/rendered",
                                           partial(renderer.frame_still, image_record, number - 1, media_type, ps)))
        if not parts:
            raise NotAcceptable(f"presentation state {record.instance_uid} references no stored image")
        return parts if multipart else parts[:1]


def rendered(sources: Sources, cache: BytesCache, target: Target, frame_list: str | None,
             accept: Sequence[Acceptable], params: RenderParams) -> Payload:
    """A Rendered resource: one part per rendered instance or frame, 206 for what cannot be rendered."""
    records = sources.records(target)
    renderer = Renderer(sources, cache, params, thumbnail=False, target=target.path)
    indexes = None
    if frame_list is not None:
        record = records[0]
        if record.pixel is None or not record.frames:
            raise NotAcceptable(f"instance {record.instance_uid} has no frames to render")
        indexes = parse_frame_list(frame_list, len(record.frames))
    single_item = target.single and (indexes is None or len(indexes) == 1)
    parts: list[Part] = []
    omitted = 0
    choices: list[str] = []
    multipart = False
    for record in records:
        kind = category(record)
        if kind == "multi-frame" and indexes is not None and len(indexes) == 1:
            kind = "single-frame"
        choice = None if kind is None else choose(kind, record, accept, single_item, target.single)
        if kind is None or choice is None:
            omitted += 1
            continue
        render.check_icc(choice.media_type, params.iccprofile)
        produced = renderer.instance_parts(record, kind, choice, indexes)
        parts += produced
        choices += [choice.media_type] * len(produced)
        multipart = choice.multipart
    if not parts:
        raise NotAcceptable(_not_renderable(records, single_item))
    bare = len(parts) == 1 and not multipart
    return Payload(parts, None if bare else choices[0],
                   etag("rendered", frame_list, params, bare, *(r.digest for r in records), *choices),
                   omitted=omitted)


def thumbnail(sources: Sources, cache: BytesCache, target: Target, frame_list: str | None,
              accept: Sequence[Acceptable], params: RenderParams) -> Payload:
    """A Thumbnail resource: exactly one image, no patient information (§10.4.1.1.4, §8.3.5.2)."""
    if params.viewport is not None and params.viewport.has_region:
        raise BadRequest("a thumbnail takes viewport=vw,vh only (PS3.18 §8.3.5.2)")
    records = sources.records(target)
    record = _representative(sources, records)
    params = replace(params, annotation=(), window=None)
    renderer = Renderer(sources, cache, params, thumbnail=True)
    choice = choose("single-frame", record, accept, single_item=True)
    if choice is None:
        raise NotAcceptable("a thumbnail is served as image/jpeg (the default), image/png, image/gif or image/jp2")
    media_type = choice.media_type
    kind = category(record)
    if frame_list is not None:
        if record.pixel is None or not record.frames or kind == "video":
            raise NotAcceptable(f"instance {record.instance_uid} has no frames to show")
        index = parse_frame_list(frame_list, len(record.frames))[0]
    else:
        index = len(record.frames) // 2 if record.frames else 0  # the middle frame
    location = f"{target.path}/frames/{frame_list}/thumbnail" if frame_list else f"{target.path}/thumbnail"

    def make() -> bytes:
        return renderer.still(_thumbnail_image(renderer, record, kind, index), media_type, record)

    part = renderer.part(record, media_type, (index,), location, make)
    if choice.multipart:
        raise NotAcceptable("a thumbnail is a single image, not a multipart response (§10.4.1.1.4)")
    return Payload([part], None, etag("thumbnail", target.path, frame_list, params, record.digest, media_type))


def _thumbnail_image(renderer: Renderer, record: InstanceRecord, kind: str | None, index: int) -> Any:
    """A picture of any instance: a frame, a video frame, a PDF page, or an icon; never an error."""
    size = THUMBNAIL_SIZE
    try:
        if kind in ("single-frame", "multi-frame"):
            return renderer.image(record, index)[0]
        if kind == "video":
            return renderer.video_image(record)
        if kind == "pdf":
            return document.pdf_page_image(renderer.pdf(record), 0, size)
        if kind == "presentation":
            ps = renderer.presentation_state(record)
            for series_uid, instance_uid, _ in ps.images:
                image_record = renderer.sources.index.get(instance_uid)
                if image_record is not None and image_record.series_uid == series_uid and image_record.pixel:
                    return renderer.image(image_record, 0, ps)[0]
    except DicomWebError:
        pass  # an instance that cannot be pictured gets its icon, not an error
    return icons.icon({"text": "sr", "pdf": "pdf"}.get(kind or "", "other"), (size, size))


def _representative(sources: Sources, records: Sequence[InstanceRecord]) -> InstanceRecord:
    """Study → the middle instance of its largest image series; series → its middle instance.

    The largest series (most frames) is the one a reader opens first: a localizer or a dose report
    beside a CT series is never chosen over it. Records come sorted by Instance Number.
    """
    images = [r for r in records if category(r) in ("single-frame", "multi-frame")]
    pool = images or list(records)
    by_series: dict[str, list[InstanceRecord]] = {}
    for record in pool:
        by_series.setdefault(record.series_uid, []).append(record)
    series = max(by_series.values(), key=lambda rs: (sum(len(r.frames) for r in rs), len(rs)))
    return series[len(series) // 2]


def _frame_list(indexes: Sequence[int]) -> str:
    return ",".join(str(index + 1) for index in indexes)


def _not_renderable(records: Sequence[InstanceRecord], single_item: bool) -> str:
    kinds = sorted({category(r) or "not renderable" for r in records})
    offered = sorted({t for k in kinds if k in CATEGORY_TYPES for t in CATEGORY_TYPES[k]})
    if not offered:
        return f"nothing in this target can be rendered ({', '.join(kinds)})"
    if not single_item:  # Table 10.4.4-1 note 3: only multipart types for several items
        offered = [f'multipart/related; type="{t}"' for t in offered]
    return (f"none of the acceptable media types can be rendered for this target ({', '.join(kinds)});"
            f" it can be rendered as {', '.join(offered)}")


__all__ = ["category", "choose", "rendered", "thumbnail"]
