"""What every Retrieve resource takes and returns: a request, parts and a payload, and their small helpers.

Framework-free: the web layer parses the request into a ``RetrieveRequest`` and writes the ``Payload``.
Parts whose bytes need work (transcoding, rendering) have ``length`` None until produced.
"""

from __future__ import annotations

import enum
import hashlib
import os
import tempfile
import threading
import weakref
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Generic, TypeVar

from .. import memory
from ..cache import BytesCache
from ..model.media import Acceptable
from ..model.rendering import RenderParams, VolumeParams
from ..model.uids import check_uid

Body = Callable[[int, int | None], Iterator[bytes]]  # (offset, length) within the part -> chunks
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Target:
    """A study, series or instance named by the request path; UIDs already validated."""

    study_uid: str
    series_uid: str | None = None
    instance_uid: str | None = None

    @classmethod
    def parse(cls, study: str, series: str | None = None, instance: str | None = None) -> Target:
        return cls(
            check_uid(study, "Study Instance"),
            None if series is None else check_uid(series, "Series Instance"),
            None if instance is None else check_uid(instance, "SOP Instance"),
        )

    @property
    def single(self) -> bool:
        return self.instance_uid is not None

    @property
    def path(self) -> str:
        """The resource path below the DICOMweb root."""
        path = f"/studies/{self.study_uid}"
        if self.series_uid is not None:
            path += f"/series/{self.series_uid}"
        return path + (f"/instances/{self.instance_uid}" if self.instance_uid is not None else "")


@dataclass(frozen=True, slots=True)
class RetrieveRequest:
    """What one Retrieve request asks for, parsed by the web layer (PS3.18 §10.4.1)."""

    target: Target
    accept: Sequence[Acceptable]  # best first (negotiation.acceptable_media_types)
    root: str = ""  # the DICOMweb root URL the answer's links start with (BulkDataURIs)
    frames: str | None = None  # the {frames} segment of the path, as written
    path: str | None = None  # the tag path of one bulk data element (``{instance}/bulkdata/{path}``)
    render: RenderParams = RenderParams()  # Rendered and Thumbnail (§8.3.5.1-2)
    volume: VolumeParams = VolumeParams()  # Rendered MPR and 3D (§8.3.5.3)
    ranged: bool = False  # the request carries Range: a wildcard then asks for the value itself (bulk.py)
    conditional: bool = False  # the request carries If-None-Match: a 304 must not pay for a rendering


class Cost(enum.Enum):
    """How much CPU producing a part takes, so where it is produced (lanes.py)."""

    LIGHT = "light"  # from what the index holds (metadata as JSON or XML): milliseconds
    HEAVY = "heavy"  # decoding, rendering, transcoding, volumes: up to seconds


@dataclass(slots=True)
class Part:
    """One representation: its Content-Type, Content-Location and bytes."""

    media_type: str
    location: str | None
    length: int | None  # None until produced (transcoded or rendered parts)
    body: Body
    cost: Cost = Cost.HEAVY  # of producing a part of unknown length
    memory: int = 0  # bytes producing it may hold at its peak (memory.py): bounds the parts produced at once
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def read_all(self) -> bytes:
        return b"".join(self.body(0, None))

    def materialize(self) -> None:
        """Produce a part of unknown length now (once, whichever thread asks first).

        A large one goes to a temporary file as it is produced (``spool``): a transcoded instance or an animation
        of gigabytes costs disk, not memory.
        """
        with self._lock:
            if self.length is None:
                try:
                    self.body, self.length = spool(self.body(0, None))
                finally:
                    memory.release(self.memory)  # large work leaves freed arenas: hand them back


@dataclass(slots=True)
class Payload:
    parts: list[Part]
    multipart_type: str | None  # the ``type`` of multipart/related, or None for a single-part response
    etag: str
    omitted: int = 0  # items that could not be represented: 206 (Table 10.4.3-1)
    vary: tuple[str, ...] = field(default=("Accept",))
    warnings: tuple[str, ...] = ()  # Warning header texts (e.g. unsupported annotation values, §8.3.5.1.1)
    gzip: Callable[[], bytes] | None = None  # the single part's gzip body, stored beside it (metadata.py)


GZIP_LEVEL = 4  # of every gzip body: stored ones and those compressed when sent are the same bytes
SPOOL_IN_MEMORY = 8 << 20  # a produced part up to this size stays in memory; a larger one goes to a file
_READ_CHUNK = 1 << 20


def spool(chunks: Iterator[bytes], in_memory: int = SPOOL_IN_MEMORY) -> tuple[Body, int]:
    """Consume ``chunks``; return a body that reads them back, and their length.

    Up to ``in_memory`` bytes are kept as bytes; past that everything goes to an unnamed temporary file (deleted
    when the body is), read back with ``os.pread`` so that concurrent readers (Range requests) need no lock.
    """
    held: list[bytes] = []
    size = 0
    file: IO[bytes] | None = None
    for chunk in chunks:
        size += len(chunk)
        if file is None and size <= in_memory:
            held.append(chunk)
            continue
        if file is None:
            file = tempfile.TemporaryFile(prefix="dicomweb-part-")  # noqa: SIM115 - lives as long as the body
            file.writelines(held)
            held = []
        file.write(chunk)
    if file is None:
        return bytes_body(b"".join(held)), size
    file.flush()
    body = _file_body(file, size)
    weakref.finalize(body, file.close)  # closed (and so deleted) when the last reader lets go of the body
    return body, size


def _file_body(file: IO[bytes], size: int) -> Body:
    def body(offset: int, length: int | None) -> Iterator[bytes]:
        end = size if length is None else min(size, offset + length)
        while offset < end:
            chunk = os.pread(file.fileno(), min(_READ_CHUNK, end - offset), offset)
            if not chunk:
                raise OSError(f"the spooled part ended at byte {offset} of {size}")
            offset += len(chunk)
            yield chunk

    return body


def etag(*items: object) -> str:
    """A strong validator naming everything that shapes a representation's bytes."""
    digest = hashlib.sha256("\x1f".join(map(str, items)).encode()).hexdigest()[:32]
    return f'"{digest}"'


def with_syntax(media_type: str, syntax: str) -> str:
    return f"{media_type}; transfer-syntax={syntax}"


def bytes_body(data: bytes) -> Body:
    def body(offset: int, length: int | None) -> Iterator[bytes]:
        yield data[offset:] if length is None else data[offset : offset + length]

    return body


def stream_body(chunks: Callable[[], Iterator[bytes]]) -> Body:
    """A body made by ``chunks`` as it is read (never held whole), cut to (offset, length) on the way."""

    def body(offset: int, length: int | None) -> Iterator[bytes]:
        end = None if length is None else offset + length
        position = 0
        for chunk in chunks():
            start, position = position, position + len(chunk)
            if position > offset:
                if end is not None and start >= end:
                    break
                yield chunk[max(0, offset - start):None if end is None else end - start]

    return body


def kept_stream_body(chunks: Callable[[], Iterator[bytes]], cache: BytesCache, key: Hashable, work: int) -> Body:
    """``stream_body`` of an animation: its bytes kept in ``cache`` afterwards when they come to at most an eighth
    of it (a larger one would push most thumbnails out), and memory returned after its ``work`` bytes."""
    keep = cache.max_bytes // 8

    def produce() -> Iterator[bytes]:
        kept: list[bytes] | None = []
        size = 0
        try:
            for chunk in chunks():
                size += len(chunk)
                if kept is not None and size <= keep:
                    kept.append(chunk)
                else:
                    kept = None
                yield chunk
        finally:
            memory.release(work)
        if kept is not None:
            cache.put(key, b"".join(kept))

    return stream_body(produce)


def lazy_body(make: Callable[[], bytes]) -> Body:
    """A body produced by ``make`` when first read (each read calls it: wrap it in ``Once`` to share)."""

    def body(offset: int, length: int | None) -> Iterator[bytes]:
        yield from bytes_body(make())(offset, length)

    return body


class Once(Generic[T]):
    """A value computed on first use, once, whichever thread asks first."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._value: T | None = None
        self._done = False
        self._lock = threading.Lock()

    def __call__(self) -> T:
        with self._lock:
            if not self._done:
                self._value, self._done = self._make(), True
            return self._value  # type: ignore[return-value]
