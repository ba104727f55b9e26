"""The Retrieve use case (PS3.18 §10.4): from a target and the Acceptable Media Types to parts.

Framework-free: the web layer parses the request into ``Target`` and ``Acceptable`` values and
writes the returned ``Payload``. Selection follows §8.7.8: per part, the first acceptable media
type (in preference order) that this instance can be delivered in wins; wildcards match the
category default. Stored bytes are streamed untouched whenever the selection allows it.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import orjson

from .cache import BytesCache
from .dicom import metadata as dicom_metadata
from .dicom import transcode
from .dicom.xml import json_to_xml
from .errors import BadRequest, DicomWebError, InvalidFrameList, NotAcceptable, NotFound
from .model import (
    DEFLATED_EXPLICIT_VR_LE,
    EXPLICIT_VR_LE,
    TRANSFER_SYNTAXES,
    Acceptable,
    InstanceRecord,
    check_uid,
    default_syntax_for,
    excluded,
    quality,
)
from .storage.base import BlobStore, Index

Body = Callable[[int, int | None], Iterator[bytes]]  # (offset, length) within the part -> chunks


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


@dataclass(slots=True)
class Part:
    """One representation: its Content-Type, Content-Location and bytes."""

    media_type: str
    location: str | None
    length: int | None  # None until produced (transcoded parts)
    body: Body
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def read_all(self) -> bytes:
        return b"".join(self.body(0, None))

    def materialize(self) -> None:
        """Produce a part of unknown length now (once, whichever thread asks first)."""
        with self._lock:
            if self.length is None:
                data = self.read_all()
                self.body, self.length = bytes_body(data), len(data)


@dataclass(slots=True)
class Payload:
    parts: list[Part]
    multipart_type: str | None  # the ``type`` of multipart/related, or None for a single-part response
    etag: str
    omitted: int = 0  # instances or bulk data items that could not be represented: 206 (Table 10.4.3-1)
    vary: tuple[str, ...] = field(default=("Accept",))


def _etag(*items: object) -> str:
    digest = hashlib.sha256("\x1f".join(map(str, items)).encode()).hexdigest()[:32]
    return f'"{digest}"'


def _with_syntax(media_type: str, syntax: str) -> str:
    return f"{media_type}; transfer-syntax={syntax}"


class Retrieve:
    """Answers every Retrieve resource from the index and the blob store."""

    def __init__(self, index: Index, blobs: BlobStore, frame_cache: BytesCache, workers: int | None = None) -> None:
        self.index = index
        self.blobs = blobs
        self.cache = frame_cache
        self.workers = workers or os.cpu_count() or 2
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="transcode")

    def produce(self, parts: Sequence[Part]) -> Iterator[Part]:
        """Yield the parts in order while the next few are produced (transcoded) in parallel.

        At most ``workers`` parts are produced ahead of the one being sent, which bounds memory.
        A part that fails keeps ``length`` None; the consumer meets the error when it reads it.
        """
        pending: dict[int, Future[None]] = {}
        for position, part in enumerate(parts):
            for ahead in range(position, min(len(parts), position + self.workers + 1)):
                if parts[ahead].length is None and ahead not in pending:
                    pending[ahead] = self._pool.submit(_materialize_quietly, parts[ahead])
            if position in pending:
                pending.pop(position).result()
            yield part

    # -- lookup ----------------------------------------------------------------------------

    def records(self, target: Target) -> list[InstanceRecord]:
        """The instances of the target, or 404 naming what does not exist."""
        if target.instance_uid is not None:
            record = self.index.get(target.instance_uid)
            if record is None or record.study_uid != target.study_uid or record.series_uid != target.series_uid:
                raise NotFound(
                    f"instance {target.instance_uid} not found in series {target.series_uid}"
                    f" of study {target.study_uid}"
                )
            return [record]
        found = self.index.instances(target.study_uid, target.series_uid)
        if not found:
            if target.series_uid is not None:
                raise NotFound(f"series {target.series_uid} not found in study {target.study_uid}")
            raise NotFound(f"study {target.study_uid} not found")
        return found

    # -- Instance resources (Table 10.4.1-1) ---------------------------------------------------

    def instances(self, target: Target, accept: Sequence[Acceptable]) -> Payload:
        records = self.records(target)
        dicom_q = max((a.q for a in accept if a.matches("application/dicom")), default=0.0)
        bulk_q = max((a.q for a in accept if a.multipart is not False and a.media_type in _BULK_MEDIA_TYPES),
                     default=0.0)
        if bulk_q > dicom_q:
            # Table 10.4.4-1 note 2: bulk data media types on an Instance resource mean its Bulkdata resource.
            return self.bulkdata(target, accept)
        parts: list[Part] = []
        keys: list[object] = []
        multipart: bool | None = None
        for record in records:
            choice = self._instance_choice(record, accept, target.single)
            if choice is None:
                continue
            syntax, wrapped = choice
            multipart = wrapped if multipart is None else multipart
            parts.append(self._instance_part(record, syntax))
            keys += [record.digest, syntax]
        if not parts:
            raise NotAcceptable(_not_acceptable_message(records, "instances"))
        single = multipart is False
        return Payload(
            parts,
            None if single else "application/dicom",
            _etag("instances", single, *keys),
            omitted=len(records) - len(parts),
        )

    def _instance_choice(
        self, record: InstanceRecord, accept: Sequence[Acceptable], single: bool
    ) -> tuple[str, bool] | None:
        for acceptable in accept:
            if acceptable.q <= 0 or not acceptable.matches("application/dicom"):
                continue
            if acceptable.multipart is False and not single:
                continue  # single-part types only for single-item resources (§10.4.4 note 3)
            requested = acceptable.transfer_syntax
            if requested is None or acceptable.wildcard and acceptable.media_type != "application/dicom":
                requested = self._default_instance_syntax(record)
            syntax = self._deliverable_instance_syntax(record, requested)
            wrapped = acceptable.multipart is not False
            if syntax is not None and quality(accept, "application/dicom", syntax, wrapped) > 0:
                return syntax, wrapped
        return None

    def _default_instance_syntax(self, record: InstanceRecord) -> str:
        """Explicit VR LE, except pixel data this server cannot decode (video): as stored (§8.7.3)."""
        if record.pixel is None or not record.syntax.encapsulated:
            return EXPLICIT_VR_LE
        if transcode.can_decode(record.transfer_syntax_uid):
            return EXPLICIT_VR_LE
        return record.transfer_syntax_uid

    def _deliverable_instance_syntax(self, record: InstanceRecord, requested: str) -> str | None:
        stored = record.transfer_syntax_uid
        if requested in ("*", stored):
            return stored
        target = TRANSFER_SYNTAXES.get(requested)
        if target is None or not target.web or target.video:
            return None
        if record.pixel is None:
            return requested if requested in (EXPLICIT_VR_LE, DEFLATED_EXPLICIT_VR_LE) else None
        if not self._can_transcode(record, requested):
            return None
        return requested

    def _can_transcode(self, record: InstanceRecord, requested: str) -> bool:
        target = TRANSFER_SYNTAXES[requested]
        if record.pixel is None:
            return False
        if record.syntax.encapsulated and not transcode.can_decode(record.transfer_syntax_uid):
            return False
        if target.encapsulated and record.lossy and not target.lossy:
            return False  # a lossy source is never passed off as lossless compressed data
        if requested in (EXPLICIT_VR_LE, DEFLATED_EXPLICIT_VR_LE):
            return True
        return transcode.can_transcode(record.transfer_syntax_uid, requested, record.pixel)

    def _instance_part(self, record: InstanceRecord, syntax: str) -> Part:
        media_type = _with_syntax("application/dicom", syntax)
        if syntax == record.transfer_syntax_uid:
            return Part(media_type, record.path, record.size, self._blob_body(record.blob_key, 0, record.size))
        holder: list[bytes] = []

        def body(offset: int, length: int | None) -> Iterator[bytes]:
            if not holder:
                holder.append(self._transcoded_instance(record, syntax))
            data = holder[0]
            yield data[offset:] if length is None else data[offset : offset + length]

        return Part(media_type, record.path, None, body)

    def _transcoded_instance(self, record: InstanceRecord, syntax: str) -> bytes:
        source = self.blobs.read(record.blob_key)
        return transcode.transcode_instance(source, syntax)

    def _blob_body(self, key: str, start: int, size: int) -> Body:
        def body(offset: int, length: int | None) -> Iterator[bytes]:
            available = size - offset
            yield from self.blobs.stream(key, start + offset, available if length is None else min(length, available))

        return body

    # -- Metadata resources (Table 10.4.1-2) ---------------------------------------------------

    def metadata(self, target: Target, accept: Sequence[Acceptable], root: str) -> Payload:
        """The stored DICOM JSON of the target, as one JSON array or one XML document per instance.

        Parts are produced only when sent, so a conditional request answered 304 reads nothing.
        """
        records = self.records(target)
        kind = metadata_kind(accept)
        etag = _etag("metadata", kind, root, *(r.digest for r in records))
        stored = _Once(lambda: self.index.metadata(records))
        vary = ("Accept", "Accept-Encoding")
        if kind == "json":
            json_body = _lazy_body(lambda: dicom_metadata.json_array(stored(), root))
            part = Part("application/dicom+json", f"{target.path}/metadata", None, json_body)
            return Payload([part], None, etag, vary=vary)

        def xml_body(position: int) -> Body:
            return _lazy_body(lambda: json_to_xml(orjson.loads(dicom_metadata.absolutize(stored()[position], root))))

        parts = [Part("application/dicom+xml; charset=utf-8", f"{record.path}/metadata", None, xml_body(position))
                 for position, record in enumerate(records)]
        return Payload(parts, "application/dicom+xml", etag, vary=vary)

    # -- Bulk data and pixel data (Tables 10.4.1.5-1, 10.4.1.6-1) -----------------------------

    def bulkdata(self, target: Target, accept: Sequence[Acceptable]) -> Payload:
        """All bulk data of the target: pixel data frames, then every other bulk element."""
        records = self.records(target)
        parts: list[Part] = []
        omitted = 0  # pixel data or bulk elements no acceptable type can carry: 206 (Table 10.4.3-1)
        octet = _accepts_octet_stream(accept)
        for record in records:
            if record.pixel is not None:
                pixel_parts = self._pixel_parts(record, range(len(record.frames)), accept, single=False)[0]
                parts += pixel_parts
                omitted += not pixel_parts
            if octet:
                for element in record.bulk:
                    parts.append(Part(_with_syntax("application/octet-stream", EXPLICIT_VR_LE),
                                      f"{record.path}/bulkdata/{element.path}", element.length,
                                      self._blob_body(record.blob_key, element.offset, element.length)))
            else:
                omitted += len(record.bulk)
        if not parts:
            if not any(r.pixel is not None or r.bulk for r in records):
                raise NotFound("the target has no bulk data")
            raise NotAcceptable(_not_acceptable_message(records, "bulk data"))
        return replace(_bulk_payload(parts, records, bare=False), omitted=omitted)

    def bulk_element(self, target: Target, path: str, accept: Sequence[Acceptable]) -> Payload:
        """One BulkDataURI advertised by metadata: ``{instance}/bulkdata/{tag path}``."""
        (record,) = self.records(target)
        element = record.bulk_element(path)
        if element is None:
            raise NotFound(f"instance {record.instance_uid} has no bulk data element {path}")
        for acceptable in accept:
            multipart = acceptable.multipart is not False
            if acceptable.q > 0 and acceptable.matches("application/octet-stream") and acceptable.transfer_syntax in (
                None, "*", EXPLICIT_VR_LE
            ) and quality(accept, "application/octet-stream", EXPLICIT_VR_LE, multipart) > 0:
                part = Part(_with_syntax("application/octet-stream", EXPLICIT_VR_LE),
                            f"{record.path}/bulkdata/{path}", element.length,
                            self._blob_body(record.blob_key, element.offset, element.length))
                return Payload([part], "application/octet-stream" if multipart else None,
                               _etag("bulk", record.digest, path, multipart))
        raise NotAcceptable("bulk data is served as application/octet-stream (Explicit VR Little Endian)")

    def pixeldata(self, target: Target, accept: Sequence[Acceptable]) -> Payload:
        records = [r for r in self.records(target) if r.pixel is not None]
        if not records:
            raise NotFound("the target has no pixel data")
        single = target.single and len(records[0].frames) == 1
        parts: list[Part] = []
        bare = False
        omitted = 0  # instances whose pixel data no acceptable type can carry: 206 (Table 10.4.3-1)
        for record in records:
            produced, bare = self._pixel_parts(record, range(len(record.frames)), accept, single=single)
            parts += produced
            omitted += not produced
        if not parts:
            raise NotAcceptable(_not_acceptable_message(records, "pixel data"))
        return replace(_bulk_payload(parts, records, bare), omitted=omitted)

    def frames(self, target: Target, frame_list: str, accept: Sequence[Acceptable]) -> Payload:
        (record,) = self.records(target)
        if record.pixel is None:
            raise NotFound(f"instance {record.instance_uid} has no pixel data")
        if record.syntax.video:
            raise NotAcceptable("a video is served whole, as its pixeldata, not frame by frame (§8.7.3.3.2)")
        indexes = parse_frame_list(frame_list, len(record.frames))
        parts, bare = self._pixel_parts(record, indexes, accept, single=len(indexes) == 1)
        if not parts:
            raise NotAcceptable(_not_acceptable_message([record], "frames"))
        return _bulk_payload(parts, [record], bare)

    def _pixel_parts(
        self, record: InstanceRecord, indexes: Iterable[int], accept: Sequence[Acceptable], single: bool
    ) -> tuple[list[Part], bool]:
        """One part per frame in the first acceptable syntax this instance can be delivered in.

        Also says whether the range that chose the syntax asked for a bare (single-part) response.
        """
        choice = self._frame_choice(record, accept, single)
        if choice is None:
            return [], False
        syntax, acceptable = choice
        multi = len(record.frames) > 1
        parts = [
            self._frame_part(record, index, syntax,
                             f"{record.path}/frames/{index + 1}" if multi else f"{record.path}/pixeldata")
            for index in indexes
        ]
        return parts, single and acceptable.multipart is False

    def _frame_choice(
        self, record: InstanceRecord, accept: Sequence[Acceptable], single: bool
    ) -> tuple[str, Acceptable] | None:
        """The syntax frames of this instance are sent in, and the acceptable range that chose it."""
        stored = record.syntax
        stored_media = stored.media_type
        for acceptable in accept:
            if acceptable.q <= 0 or acceptable.multipart is False and not single:
                continue
            wanted = acceptable.transfer_syntax
            if acceptable.media_type == "*/*":
                # Video cannot be decoded: its stored lossy form is all there is (§8.7.3).
                syntax = stored.uid if wanted == "*" or stored.video else EXPLICIT_VR_LE
            elif acceptable.wildcard:
                if not acceptable.matches(stored_media) or wanted not in (None, "*"):
                    continue
                syntax = stored.uid
            elif wanted == "*":
                # "any syntax": as stored when the stored media type fits, else the type's default.
                if acceptable.media_type == "application/octet-stream" or acceptable.matches(stored_media):
                    syntax = stored.uid
                else:
                    syntax = default_syntax_for(acceptable.media_type) or ""
            else:
                syntax = wanted or default_syntax_for(acceptable.media_type) or ""
                known = TRANSFER_SYNTAXES.get(syntax)
                if known is None or known.media_type != acceptable.media_type:
                    continue
            deliverable = syntax == stored.uid or syntax == EXPLICIT_VR_LE and not stored.encapsulated or (
                syntax in TRANSFER_SYNTAXES and self._can_transcode_frames(record, syntax))
            media = TRANSFER_SYNTAXES[syntax].media_type if syntax in TRANSFER_SYNTAXES else ""
            # ``application/octet-stream; transfer-syntax=*`` may yield another media type (the stored
            # one), which no range names: only a range that matches it and says q=0 rules it out.
            if deliverable and not excluded(accept, media, syntax, acceptable.multipart is not False):
                return syntax, acceptable
        return None

    def _can_transcode_frames(self, record: InstanceRecord, syntax: str) -> bool:
        target = TRANSFER_SYNTAXES[syntax]
        if not target.web or target.video or syntax == DEFLATED_EXPLICIT_VR_LE:
            return False
        return self._can_transcode(record, syntax)

    def _frame_part(self, record: InstanceRecord, index: int, syntax: str, location: str) -> Part:
        fragments = record.frames[index]
        as_stored = syntax == record.transfer_syntax_uid or (syntax == EXPLICIT_VR_LE and not record.syntax.encapsulated)
        if as_stored and record.pixel is not None and record.pixel.packed_unaligned:
            data = self._stored_frame(record, index)
            return Part(_with_syntax("application/octet-stream", EXPLICIT_VR_LE), location, len(data), bytes_body(data))
        if as_stored:
            media = TRANSFER_SYNTAXES[syntax].media_type if syntax in TRANSFER_SYNTAXES else "application/octet-stream"
            length = sum(n for _, n in fragments)
            if not record.syntax.encapsulated:
                length = min(length, record.pixel.frame_length) if record.pixel else length
            return Part(_with_syntax(media, syntax), location, length, self._fragments_body(record.blob_key, fragments,
                                                                                         length))
        media = _with_syntax(TRANSFER_SYNTAXES[syntax].media_type, syntax)
        cached = self.cache.get(self._frame_key(record, index, syntax))
        if cached is not None:
            return Part(media, location, len(cached), bytes_body(cached))

        def transcoded(offset: int, length: int | None) -> Iterator[bytes]:
            data = self._transcoded_frame(record, index, syntax)
            yield data[offset:] if length is None else data[offset:offset + length]

        return Part(media, location, None, transcoded)  # produced when sent, in parallel with its neighbours

    @staticmethod
    def _frame_key(record: InstanceRecord, index: int, syntax: str) -> tuple[str, str, int, str]:
        return (record.instance_uid, record.digest, index, syntax)

    def _transcoded_frame(self, record: InstanceRecord, index: int, syntax: str) -> bytes:
        pixel = record.pixel
        assert pixel is not None

        def make() -> bytes:
            source = self._stored_frame(record, index)
            return transcode.transcode_frame(source, record.transfer_syntax_uid, syntax, pixel,
                                             source_lossy=record.lossy).data

        return self.cache.get_or_make(self._frame_key(record, index, syntax), make)

    def _stored_frame(self, record: InstanceRecord, index: int) -> bytes:
        """The bytes of one stored frame (a bitstream, or native pixels starting on a byte boundary)."""
        data = b"".join(self.blobs.read(record.blob_key, o, n) for o, n in record.frames[index])
        if record.pixel is not None and record.pixel.packed_unaligned and not record.syntax.encapsulated:
            bits = record.pixel.frame_bits
            data = transcode.repack_bits(data, index * bits % 8, bits)
        return data

    def _fragments_body(self, key: str, fragments: Sequence[tuple[int, int]], total: int) -> Body:
        def body(offset: int, length: int | None) -> Iterator[bytes]:
            remaining = total - offset if length is None else min(length, total - offset)
            skip = offset
            for start, size in fragments:
                if remaining <= 0:
                    break
                if skip >= size:
                    skip -= size
                    continue
                take = min(size - skip, remaining)
                yield from self.blobs.stream(key, start + skip, take)
                remaining -= take
                skip = 0

        return body


class _Once:
    """A value computed on first use, once, whichever thread asks first."""

    def __init__(self, make: Callable[[], list[bytes]]) -> None:
        self._make = make
        self._value: list[bytes] | None = None
        self._lock = threading.Lock()

    def __call__(self) -> list[bytes]:
        with self._lock:
            if self._value is None:
                self._value = self._make()
            return self._value


def _lazy_body(make: Callable[[], bytes]) -> Body:
    def body(offset: int, length: int | None) -> Iterator[bytes]:
        data = make()
        yield data[offset:] if length is None else data[offset:offset + length]

    return body


def _bulk_payload(parts: list[Part], records: Sequence[InstanceRecord], bare: bool) -> Payload:
    """Bulk data parts, bare or in a multipart envelope whose ``type`` is the parts' own media type.

    The ETag names everything that shapes the bytes: the stored objects, each part's media type
    and location, and the envelope.
    """
    kinds = {p.media_type.split(";")[0] for p in parts}
    envelope = None if bare else kinds.pop() if len(kinds) == 1 else "application/octet-stream"
    etag = _etag("bulk", envelope, *(r.digest for r in records), *(f"{p.media_type} {p.location}" for p in parts))
    return Payload(parts, envelope, etag)


def _materialize_quietly(part: Part) -> None:
    try:
        part.materialize()
    except DicomWebError:
        pass  # left for the consumer, which decides what a failed part means


def bytes_body(data: bytes) -> Body:
    def body(offset: int, length: int | None) -> Iterator[bytes]:
        yield data[offset:] if length is None else data[offset : offset + length]

    return body


_BULK_MEDIA_TYPES = frozenset(ts.media_type for ts in TRANSFER_SYNTAXES.values())
_METADATA_TYPES = (("json", "application/dicom+json", False), ("xml", "application/dicom+xml", True))


def metadata_kind(accept: Sequence[Acceptable]) -> str:
    """JSON (the default) or XML (multipart), in the client's order of preference (Table 10.4.4-1)."""
    for acceptable in accept:
        if acceptable.q <= 0:
            continue
        if acceptable.media_type == "application/json" and acceptable.multipart is not True:
            return "json"  # a common alias, honoured only when named
        for kind, media_type, multipart in _METADATA_TYPES:
            if acceptable.specificity(media_type, EXPLICIT_VR_LE, multipart) >= 0 and quality(
                accept, media_type, EXPLICIT_VR_LE, multipart
            ) > 0:
                return kind
    raise NotAcceptable(
        "metadata is served as application/dicom+json or multipart/related; type=\"application/dicom+xml\""
    )


def _accepts_octet_stream(accept: Sequence[Acceptable]) -> bool:
    return quality(accept, "application/octet-stream", EXPLICIT_VR_LE, True) > 0


def _not_acceptable_message(records: Sequence[InstanceRecord], what: str) -> str:
    stored = sorted({r.transfer_syntax_uid for r in records})
    return (f"none of the acceptable media types can be produced for the {what} of this target"
            f" (stored as {', '.join(stored)}); see docs/conformance.md for what each resource serves")


MAX_FRAMES_PER_REQUEST = 10_000  # frame numbers in one {frames} list (duplicates count)


def parse_frame_list(text: str, count: int) -> list[int]:
    """1-based frame numbers (PS3.18 §10.4.1.1.6 ``{frames}``) to 0-based indexes, or 400/404."""
    items = [item.strip() for item in text.split(",")]
    for item in items:
        if not re.fullmatch(r"[0-9]+", item):
            shown = item if len(item) <= 40 else item[:37] + "..."
            raise InvalidFrameList(f"invalid frame number {shown!r}: frames are 1-based integers separated by commas")
    # Numbers longer than any frame count are out of range as they stand: never convert a huge one.
    numbers = [int(item) if len(item.lstrip("0")) <= 18 else count + 1 for item in items]
    if any(n < 1 for n in numbers):
        raise InvalidFrameList("frame numbers start at 1")
    missing = [item.lstrip("0")[:20] for item, n in zip(items, numbers, strict=True) if n > count]
    if missing:
        # UNVERIFIED in the standard (400 or 404): a frame beyond Number of Frames does not exist, so 404.
        listed = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise NotFound(f"frame(s) {listed} out of range: the instance has {count} frame(s)")
    if len(numbers) > MAX_FRAMES_PER_REQUEST:
        raise BadRequest(f"too many frames in one request (at most {MAX_FRAMES_PER_REQUEST})")
    return [n - 1 for n in numbers]
