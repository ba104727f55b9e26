"""The Retrieve use case (PS3.18 §10.4): from a ``RetrieveRequest`` to a payload, and the payload's bytes.

One module per family of resources, so the file list shows where each lives:

    payload.py    RetrieveRequest, Target, Part, Payload and their helpers (ETag, bodies)
    lanes.py      where work runs: the light and the heavy lane of CPU work, and the threads of blocking I/O
    sources.py    records, blob ranges, stored / transcoded / decoded frames
    instances.py  Study, Series and Instance resources (Table 10.4.1-1)
    metadata.py   Metadata resources (Table 10.4.1-2)
    bulk.py       Bulkdata, Pixel Data and Frames resources (Tables 10.4.1.5-1, 10.4.1.6-1)
    rendered.py   Rendered and Thumbnail resources (Tables 10.4.1-3, 10.4.1-4)
    volumes.py    Rendered MPR and Rendered 3D resources (§10.4.1.1.7-8), with volume_inputs.py

``Retrieve`` is the one object the web layer calls. Its ``async`` methods may be awaited on the event loop:
each resource's method plans the payload where that belongs (index lookups and blob reads in the I/O threads, a
rendering on the heavy lane), and the body methods produce bytes on the lane of each part (``Part.cost``). The
web layer never names a thread pool; this class decides.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Hashable, Iterable, Iterator, Sequence
from functools import partial

from ..cache import BytesCache
from ..errors import DicomWebError
from ..storage.base import BlobStore, Index
from . import bulk, instances, metadata, rendered, volumes
from .bulk import parse_frame_list
from .lanes import Lanes
from .metadata import metadata_kind
from .payload import GZIP_LEVEL, Body, Cost, Part, Payload, RetrieveRequest, Target, bytes_body, etag
from .sources import Sources
from .volume_inputs import VolumeCache

__all__ = ["GZIP_LEVEL", "Body", "Cost", "Lanes", "Part", "Payload", "Retrieve", "RetrieveRequest", "Target", "bytes_body",
           "etag", "metadata_kind", "parse_frame_list"]


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

    # -- The resources (§10.4.1.1), planned off the event loop ---------------------------------------------

    async def instances(self, request: RetrieveRequest) -> Payload:
        """Study, Series and Instance resources (§10.4.1.1.1); bulk data types mean their Bulkdata (note 2)."""
        r = request
        if instances.wants_bulkdata(r.accept):
            return await self.lanes.blocking(bulk.bulkdata, self.sources, r.target, r.accept)
        return await self.lanes.blocking(instances.instances, self.sources, r.target, r.accept)

    async def metadata(self, request: RetrieveRequest) -> Payload:
        """Metadata resources (§10.4.1.1.2); produced when sent, on the light lane."""
        r = request
        return await self.lanes.blocking(metadata.metadata, self.sources, r.target, r.accept, r.root)

    async def bulkdata(self, request: RetrieveRequest) -> Payload:
        """Bulkdata resources (§10.4.1.1.5): all of a target's, or the one element a BulkDataURI names."""
        r = request
        if r.path is not None:
            return await self.lanes.blocking(bulk.bulk_element, self.sources, r.target, r.path, r.accept, r.ranged)
        return await self.lanes.blocking(bulk.bulkdata, self.sources, r.target, r.accept)

    async def pixeldata(self, request: RetrieveRequest) -> Payload:
        """Pixel Data resources (§10.4.1.1.6)."""
        r = request
        return await self.lanes.blocking(bulk.pixeldata, self.sources, r.target, r.accept, r.ranged)

    async def frames(self, request: RetrieveRequest) -> Payload:
        """Frame Pixel Data resources (§10.4.1.1.6)."""
        r = request
        return await self.lanes.blocking(bulk.frames, self.sources, r.target, r.frames or "", r.accept, r.ranged)

    async def rendered(self, request: RetrieveRequest) -> Payload:
        """Rendered resources (§10.4.1.1.3)."""
        return await self._render(rendered.rendered, request)

    async def thumbnail(self, request: RetrieveRequest) -> Payload:
        """Thumbnail resources (§10.4.1.1.4)."""
        return await self._render(rendered.thumbnail, request)

    async def renderedmpr(self, request: RetrieveRequest) -> Payload:
        """Rendered MPR Volume resources (§10.4.1.1.7)."""
        return await self._volume("mpr", request)

    async def rendered3d(self, request: RetrieveRequest) -> Payload:
        """Rendered 3D Volume resources (§10.4.1.1.8)."""
        return await self._volume("3d", request)

    async def _render(self, use: Callable[..., Payload], request: RetrieveRequest) -> Payload:
        """Planned and (a single image, unless the request is conditional) produced in one trip to the heavy lane:
        a conditional request answered 304 does not pay for the rendering."""
        r = request

        def render() -> Payload:
            payload = use(self.sources, self.rendered_cache, r.target, r.frames, r.accept, r.render)
            if payload.multipart_type is None and not r.conditional:
                payload.parts[0].materialize()
            return payload

        return await self.lanes.run(Cost.HEAVY, render)

    async def _volume(self, kind: str, request: RetrieveRequest) -> Payload:
        # In the I/O threads, not a lane: assembly decodes frames on the heavy lane and waits for them; the
        # rendering itself runs there when the part is produced.
        r = request
        return await self.lanes.blocking(volumes.volume, self.sources, self.volumes, self.rendered_cache, kind,
                                         r.target, r.frames, r.accept, r.volume, self.volumetric_states)

    # -- The bytes of a payload, for the web layer to write -------------------------------------------------

    async def materialize(self, part: Part) -> None:
        """Produce a part of unknown length on its lane (a rendering on the heavy one, metadata on the light)."""
        if part.length is None:
            await self.lanes.run(part.cost, part.materialize)

    async def read(self, part: Part) -> bytes:
        """A part's bytes, produced first if need be."""
        await self.materialize(part)
        return await self.lanes.blocking(part.read_all)

    async def join(self, chunks: Callable[[], Iterable[bytes]]) -> bytes:
        """The chunks of a body joined, in one I/O-thread trip rather than one per chunk (a frame stays fast)."""
        return await self.lanes.blocking(lambda: b"".join(chunks()))

    def stream(self, chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
        """A body's chunks as they are read (blob ranges, parts produced ahead on their lanes)."""
        return self.lanes.iterate(chunks)

    def produce(self, parts: Sequence[Part]) -> Iterator[Part]:
        """The parts in order while the next few are produced on their lanes (iterate it off the event loop)."""
        return self.sources.produce(parts)

    async def settle(self, payload: Payload, ahead: int) -> None:
        """Produce parts of unknown length before any byte is sent, up to ``ahead`` bytes of them.

        Once the status line is out, a failure could only cut the connection. Failures found here instead become
        the response status (every part failed) or omitted parts (206 with a Warning, Table 10.4.3-1). Past
        ``ahead`` bytes (and at least one part produced), parts are produced as they are sent and one that fails
        is left out of the body.
        """
        if payload.multipart_type is not None and any(p.length is None for p in payload.parts):
            await self.lanes.blocking(self._produce_ahead, payload, ahead)

    def _produce_ahead(self, payload: Payload, ahead: int) -> None:
        error: DicomWebError | None = None
        produced = 0
        for part in self.produce([p for p in payload.parts if p.length is None]):
            if produced > ahead:
                break
            try:
                part.materialize()
            except DicomWebError as exc:
                error = error or exc
                payload.parts.remove(part)
                payload.omitted += 1
                continue
            produced += part.length or 0
        if not payload.parts and error is not None:
            raise error

    async def stored_gzip(self, make: Callable[[], bytes]) -> bytes:
        """A payload's stored gzip body (``Payload.gzip``), read or built on the light lane."""
        return await self.lanes.run(Cost.LIGHT, make)

    async def compress(self, data: bytes, level: int, kept: BytesCache, key: Hashable) -> bytes:
        """``data`` gzip-compressed on the light lane (no timestamp: same input, same bytes), kept in ``kept``
        under ``key`` and made once however many requests ask for it at the same time."""
        return await self.lanes.run(Cost.LIGHT, kept.get_or_make, key, partial(metadata.gzip_bytes, data, level))
