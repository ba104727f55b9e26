"""The Retrieve use case (PS3.18 §10.4): from a target and the Acceptable Media Types to parts.

One module per family of resources, so the file list shows where each lives:

    payload.py    Target, Part, Payload and their helpers (ETag, bodies)
    lanes.py      the light and the heavy lane of CPU work
    sources.py    records, blob ranges, stored / transcoded / decoded frames
    instances.py  Study, Series and Instance resources (Table 10.4.1-1)
    metadata.py   Metadata resources (Table 10.4.1-2)
    bulk.py       Bulkdata, Pixel Data and Frames resources (Tables 10.4.1.5-1, 10.4.1.6-1)
    rendered.py   Rendered and Thumbnail resources (Tables 10.4.1-3, 10.4.1-4)
    volumes.py    Rendered MPR and Rendered 3D resources (§10.4.1.1.7-8), with volume_inputs.py

``Retrieve`` is the one object the web layer calls. Its ``async`` methods may be awaited on the event
loop: they do their work on the lane it belongs to (the web layer never names a thread pool).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator, Sequence

from ..cache import BytesCache
from ..model import Acceptable, RenderParams, VolumeParams
from ..storage.base import BlobStore, Index
from . import bulk, instances, metadata, rendered, volumes
from .bulk import parse_frame_list
from .lanes import Lanes
from .metadata import metadata_kind
from .payload import Body, Cost, Part, Payload, Target, bytes_body, etag
from .sources import Sources
from .volume_inputs import VolumeCache

__all__ = ["Body", "Cost", "Lanes", "Part", "Payload", "Retrieve", "Target", "bytes_body", "etag",
           "metadata_kind", "parse_frame_list"]


class Retrieve:
    """Answers every Retrieve resource from the index and the blob store."""

    def __init__(self, index: Index, blobs: BlobStore, frame_cache: BytesCache, lanes: Lanes | None = None,
                 workers: int | None = None, rendered_cache: BytesCache | None = None,
                 volume_cache_bytes: int = 1 << 30, memory_budget: int = 0) -> None:
        self.workers = workers or os.cpu_count() or 2
        self.lanes = lanes or Lanes(self.workers)
        # memory_budget: bytes one request may use (memory.py); 0: the default share of the machine
        self.sources = Sources(index, blobs, frame_cache, self.lanes, self.workers, memory_budget)
        self.rendered_cache = rendered_cache or BytesCache(64 << 20)  # rendered images and thumbnails
        self.volumes = VolumeCache(volume_cache_bytes)  # assembled volumes (Rendered MPR / 3D)
        self.volumetric_states = volumes.StateCache()  # parsed volumetric presentation states

    def produce(self, parts: Sequence[Part]) -> Iterator[Part]:
        return self.sources.produce(parts)

    async def materialize(self, part: Part) -> None:
        """Produce a part of unknown length on its lane (a rendering on the heavy one, metadata on the light)."""
        if part.length is None:
            await asyncio.wrap_future(self.lanes.of(part.cost).submit(part.materialize))

    async def render(self, thumbnail: bool, target: Target, frame_list: str | None, accept: Sequence[Acceptable],
                     params: RenderParams, produce: bool = True) -> Payload:
        """Rendered or Thumbnail, planned and (a single image, unless ``produce`` is False) produced in one trip
        to the heavy lane: a conditional request answered 304 does not pay for the rendering."""
        use = self.thumbnail if thumbnail else self.rendered

        def render() -> Payload:
            payload = use(target, frame_list, accept, params)
            if payload.multipart_type is None and produce:
                payload.parts[0].materialize()
            return payload

        return await asyncio.wrap_future(self.lanes.heavy.submit(render))

    def instances(self, target: Target, accept: Sequence[Acceptable]) -> Payload:
        if instances.wants_bulkdata(accept):
            return bulk.bulkdata(self.sources, target, accept)
        return instances.instances(self.sources, target, accept)

    def metadata(self, target: Target, accept: Sequence[Acceptable], root: str) -> Payload:
        return metadata.metadata(self.sources, target, accept, root)

    def bulkdata(self, target: Target, accept: Sequence[Acceptable]) -> Payload:
        return bulk.bulkdata(self.sources, target, accept)

    def bulk_element(self, target: Target, path: str, accept: Sequence[Acceptable], ranged: bool = False) -> Payload:
        """``ranged``: the request carries Range, which a wildcard's single-part form can honour (bulk.py)."""
        return bulk.bulk_element(self.sources, target, path, accept, ranged)

    def pixeldata(self, target: Target, accept: Sequence[Acceptable], ranged: bool = False) -> Payload:
        return bulk.pixeldata(self.sources, target, accept, ranged)

    def frames(self, target: Target, frame_list: str, accept: Sequence[Acceptable], ranged: bool = False) -> Payload:
        return bulk.frames(self.sources, target, frame_list, accept, ranged)

    def rendered(self, target: Target, frame_list: str | None, accept: Sequence[Acceptable],
                 params: RenderParams) -> Payload:
        return rendered.rendered(self.sources, self.rendered_cache, target, frame_list, accept, params)

    def thumbnail(self, target: Target, frame_list: str | None, accept: Sequence[Acceptable],
                  params: RenderParams) -> Payload:
        return rendered.thumbnail(self.sources, self.rendered_cache, target, frame_list, accept, params)

    def volume(self, kind: str, target: Target, frame_list: str | None, accept: Sequence[Acceptable],
               params: VolumeParams) -> Payload:
        """Rendered MPR (``kind`` mpr) or 3D (``kind`` 3d); call from outside the executor (it decodes there)."""
        return volumes.volume(self.sources, self.volumes, self.rendered_cache, kind, target, frame_list, accept,
                              params, self.volumetric_states)
