"""Where every Retrieve resource gets its bytes: records from the index, ranges of blobs, frames.

One ``Sources`` per application holds the index, the blob store, the cache of produced frames and
the lanes that bound all CPU work (lanes.py): parts are produced on their lane, in parallel with their
neighbours, never on the event loop nor in an unbounded pool. ``executor`` is the heavy lane.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from typing import Any

import orjson

from .. import memory
from ..cache import BytesCache
from ..dicom import pixels, transcode
from ..errors import DecodeError, DicomWebError, Gone, NotFound
from ..model.media import DEFLATED_EXPLICIT_VR_LE, EXPLICIT_VR_LE, TRANSFER_SYNTAXES, Acceptable
from ..model.stored import InstanceRecord, PixelDescription
from ..storage.base import BlobStore, Index
from .lanes import Lanes
from .payload import SPOOL_IN_MEMORY, Body, Part, Target

FrameKey = tuple[str, str, int, str]
IN_MEMORY_FACTOR = 4  # an instance transcoded in memory: its bytes, pydicom's data set, the output
SPAN_SLACK = 64 << 10  # gaps between one frame's fragments up to this are read through, not skipped


class Sources:
    """The index, the blobs, the frame cache and the CPU lanes, with the reads resources share."""

    def __init__(self, index: Index, blobs: BlobStore, cache: BytesCache, lanes: Lanes, workers: int,
                 budget: int = 0) -> None:
        self.index = index
        self.blobs = blobs
        self.cache = cache
        self.lanes = lanes
        self.executor = lanes.heavy  # decoding (volume assembly's slices)
        self.workers = workers
        self.budget = budget or memory.default_request_budget()  # bytes one request may use (memory.py)

    # -- lookup ------------------------------------------------------------------------------

    def records(self, target: Target) -> list[InstanceRecord]:
        """The instances of the target, or 404 naming what does not exist (410 for what was deleted)."""
        if target.instance_uid is not None:
            record = self.index.get(target.instance_uid)
            if record is None or record.study_uid != target.study_uid or record.series_uid != target.series_uid:
                self._gone(target, "instance")
                raise NotFound(
                    f"instance {target.instance_uid} not found in series {target.series_uid}"
                    f" of study {target.study_uid}"
                )
            return [record]
        found = self.index.instances(target.study_uid, target.series_uid)
        if not found:
            if target.series_uid is not None:
                self._gone(target, "series")
                raise NotFound(f"series {target.series_uid} not found in study {target.study_uid}")
            self._gone(target, "study")
            raise NotFound(f"study {target.study_uid} not found")
        return found

    def metadata(self, records: Sequence[InstanceRecord]) -> list[dict[str, Any]]:
        """The stored DICOM JSON of each record (PS3.18 Annex F), parsed."""
        return [orjson.loads(data) for data in self.index.metadata(list(records))]

    def _gone(self, target: Target, level: str) -> None:
        """PS3.18 §8.5 (Table 8.5-1): a resource the server knows was deleted is 410 Gone, not 404."""
        if self.index.removed(target.study_uid, target.series_uid, target.instance_uid):
            uid = target.instance_uid or target.series_uid or target.study_uid
            raise Gone(f"{level} {uid} was deleted")

    # -- producing parts ---------------------------------------------------------------------

    def produce(self, parts: Sequence[Part]) -> Iterator[Part]:
        """Yield the parts in order while the next few are produced in parallel, each on its lane.

        At most ``workers`` parts are produced ahead of the one being sent, and no more than the request's
        memory budget holds at once (``Part.memory``), which bounds memory. A part that fails keeps ``length``
        None; the consumer meets the error when it reads it. Never call this from a lane's own threads (it waits
        on them).
        """
        pending: dict[int, Future[None]] = {}
        for position, part in enumerate(parts):
            held = 0
            for ahead in range(position, min(len(parts), position + self.workers + 1)):
                held += parts[ahead].memory
                if ahead > position and held > self.budget:
                    break  # the next parts wait until those before them are sent
                if parts[ahead].length is None and ahead not in pending:
                    lane = self.lanes.of(parts[ahead].cost)
                    pending[ahead] = lane.submit(_materialize_quietly, parts[ahead])
            if position in pending:
                pending.pop(position).result()
            yield part

    # -- blobs -------------------------------------------------------------------------------

    def blob_body(self, key: str, start: int, size: int) -> Body:
        def body(offset: int, length: int | None) -> Iterator[bytes]:
            available = size - offset
            yield from self.blobs.stream(key, start + offset, available if length is None else min(length, available))

        return body

    def read_fragments(self, key: str, fragments: Sequence[tuple[int, int]]) -> bytes:
        """The fragments' values joined, read with one ranged read of their span (one GET on S3).

        A frame made of several fragments has an 8-byte item header between each (PS3.5 A.4): reading
        the span and cutting the headers out in memory costs those bytes instead of a request apiece.
        """
        if len(fragments) == 1:
            start, size = fragments[0]
            return self.blobs.read(key, start, size)
        first = min(start for start, _ in fragments)
        end = max(start + size for start, size in fragments)
        wanted = sum(size for _, size in fragments)
        if end - first > wanted + 8 * len(fragments) + SPAN_SLACK:
            return b"".join(self.blobs.read(key, o, n) for o, n in fragments)  # scattered: not worth one span
        span = memoryview(self.blobs.read(key, first, end - first))
        return b"".join(span[o - first:o - first + n] for o, n in fragments)

    def fragments_body(self, key: str, fragments: Sequence[tuple[int, int]], total: int) -> Body:
        def body(offset: int, length: int | None) -> Iterator[bytes]:
            if len(fragments) > 1:  # one frame's fragments: one span read, then cut (read_fragments)
                remaining = total - offset if length is None else min(length, total - offset)
                yield self.read_fragments(key, fragments)[offset:offset + max(remaining, 0)]
                return
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

    def bulk_bytes(self, record: InstanceRecord, path: str) -> bytes | None:
        """The value of one bulk element of the stored blob (e.g. an ICC profile), or None."""
        element = record.bulk_element(path)
        return None if element is None else self.blobs.read(record.blob_key, element.offset, element.length)

    # -- frames ------------------------------------------------------------------------------

    def stored_frame(self, record: InstanceRecord, index: int) -> bytes:
        """The bytes of one stored frame (a bitstream, or native pixels starting on a byte boundary)."""
        data = self.read_fragments(record.blob_key, record.frames[index])
        if record.pixel is not None and record.pixel.packed_unaligned and not record.syntax.encapsulated:
            bits = record.pixel.frame_bits
            data = transcode.repack_bits(data, index * bits % 8, bits)
        return data

    @staticmethod
    def frame_key(record: InstanceRecord, index: int, syntax: str) -> FrameKey:
        return (record.instance_uid, record.digest, index, syntax)

    def frame_memory(self, record: InstanceRecord, syntax: str | None = None) -> int:
        """Bytes producing one frame of ``record`` may hold: its decoding, and its encoding in ``syntax``."""
        pixel = record.pixel
        assert pixel is not None
        need = pixels.decode_memory(record.transfer_syntax_uid, pixel)
        if syntax is not None and syntax != record.transfer_syntax_uid:
            need += pixels.decode_memory(syntax, pixels.decoded_description(record.transfer_syntax_uid, pixel))
        return need

    def check_frame_memory(self, record: InstanceRecord, index: int, syntax: str | None = None) -> None:
        """413 before a frame too large for the request's memory budget is decoded (memory.py)."""
        pixel = record.pixel
        assert pixel is not None
        what = "transcoding" if syntax is not None and syntax != record.transfer_syntax_uid else "decoding"
        memory.check(self.frame_memory(record, syntax), self.budget,
                     f"{what} frame {index + 1} of instance {record.instance_uid} ({pixel.columns} x {pixel.rows}"
                     f" pixels, {pixel.samples_per_pixel} sample(s) of {pixel.bits_allocated} bits)")

    def transcoded_frame(self, record: InstanceRecord, index: int, syntax: str) -> bytes:
        pixel = record.pixel
        assert pixel is not None

        def make() -> bytes:
            self.check_frame_memory(record, index, syntax)
            source = self.stored_frame(record, index)
            return transcode.transcode_frame(source, record.transfer_syntax_uid, syntax, pixel,
                                             source_lossy=record.lossy,
                                             pixel_keyword=pixels.pixel_keyword(record.pixel_path)).data

        try:
            return self.cache.get_or_make(self.frame_key(record, index, syntax), make)
        except DecodeError as exc:
            raise _undecodable(record, index, exc) from exc

    def decoded_frame(self, record: InstanceRecord, index: int) -> tuple[Any, PixelDescription]:
        """One frame decoded to an array, through the same decoder frames and transcoding use."""
        assert record.pixel is not None
        self.check_frame_memory(record, index)
        keyword = pixels.pixel_keyword(record.pixel_path)  # Float and Double Float Pixel Data decode as floats
        try:
            return pixels.decode_frame(self.stored_frame(record, index), record.transfer_syntax_uid, record.pixel,
                                       keyword)
        except DecodeError as exc:
            raise _undecodable(record, index, exc) from exc

    # -- whole instances ---------------------------------------------------------------------

    def instance_memory(self, record: InstanceRecord, syntax: str) -> int:
        """Bytes transcoding ``record`` may hold: a frame, decoded and encoded, and what stays in memory of it."""
        if record.pixel is None or not record.frames:
            return record.size * IN_MEMORY_FACTOR
        return self.frame_memory(record, syntax) + SPOOL_IN_MEMORY

    def transcoded_instance(self, record: InstanceRecord, syntax: str) -> Iterator[bytes]:
        """The stored instance in ``syntax``, produced a frame at a time (``transcode.transcode_stream``).

        Reads the elements before and after the pixel data, and each frame by its offsets: memory holds one
        frame whatever the instance's size. An instance without pixel data (or one whose pixel data element is not
        where its frames say) is read whole, within the request's memory budget.
        """
        layout = self._pixel_layout(record)
        if layout is None:
            memory.check(record.size * IN_MEMORY_FACTOR, self.budget,
                         f"transcoding instance {record.instance_uid} ({record.size:,} bytes, read whole)")
            yield transcode.transcode_instance(self.blobs.read(record.blob_key), syntax)
            return
        head, tail, value_start, value_length, vr = layout
        pixel = record.pixel
        assert pixel is not None
        memory.check(self.frame_memory(record, syntax), self.budget,
                     f"transcoding the frames of instance {record.instance_uid} ({pixel.columns} x {pixel.rows} pixels)")

        def frames() -> Iterator[tuple[Any, PixelDescription]]:
            for index in range(len(record.frames)):
                yield self.decoded_frame(record, index)

        def raw() -> Iterator[bytes]:
            yield from self.blobs.stream(record.blob_key, value_start, value_length)

        keyword = pixels.pixel_keyword(record.pixel_path)
        stored = transcode.StoredPixels(keyword, pixel, frames, raw, value_length, vr)
        yield from transcode.transcode_stream(transcode.read_head(head), tail, syntax, stored, record.lossy)

    def _pixel_layout(self, record: InstanceRecord) -> tuple[bytes, bytes, int, int, str] | None:
        """(bytes before the pixel data element, bytes after it, value start, value length, VR), or None."""
        if record.pixel is None or not record.frames or record.syntax.video:
            return None
        key, encapsulated = record.blob_key, record.syntax.encapsulated
        first = record.frames[0][0][0]
        prefix = self.blobs.read(key, 0, first)
        start = transcode.pixel_element_start(prefix, encapsulated, pixels.pixel_keyword(record.pixel_path))
        if start is None:
            return None
        vr = prefix[start + 4:start + 6].decode("ascii", "replace")
        if encapsulated:
            offset, length = record.frames[-1][-1]
            end, value_length = offset + length, 0
            if self.blobs.read(key, end, 8) != b"\xfe\xff\xdd\xe0\x00\x00\x00\x00":
                return None  # not the Sequence Delimitation Item right after the last fragment
            end += 8
        else:
            value_length = int.from_bytes(prefix[start + 8:start + 12], "little")
            end = first + value_length
            if value_length == 0xFFFFFFFF or end > record.size:
                return None
        tail = self.blobs.read(key, end, record.size - end) if end < record.size else b""
        return prefix[:start], tail, first, value_length, vr

    # -- what an instance can become -----------------------------------------------------------

    @staticmethod
    def can_transcode(record: InstanceRecord, requested: str) -> bool:
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

    def can_transcode_frames(self, record: InstanceRecord, syntax: str) -> bool:
        target = TRANSFER_SYNTAXES[syntax]
        if not target.web or target.video or syntax == DEFLATED_EXPLICIT_VR_LE:
            return False
        return self.can_transcode(record, syntax)


def _materialize_quietly(part: Part) -> None:
    try:
        part.materialize()
    except DicomWebError:
        pass  # left for the consumer, which decides what a failed part means


def _undecodable(record: InstanceRecord, index: int, exc: DecodeError) -> DecodeError:
    """The 406 of a frame no decoder accepts: which frame, what went wrong, and what can still be had."""
    uid = record.transfer_syntax_uid
    return DecodeError(f"frame {index + 1} of instance {record.instance_uid} (stored as {pixels.syntax_name(uid)})"
                       f" does not decode: {exc.message.removeprefix('cannot decode frame: ')}; it can be retrieved"
                       f" only as stored: {record.syntax.media_type}; transfer-syntax={uid}")


def not_acceptable_message(records: Sequence[InstanceRecord], what: str, accept: Sequence[Acceptable] = ()) -> str:
    """The 406 text: what was asked, what the target is stored as, every media type it can be served in (§8.7.8)."""
    stored = sorted({r.transfer_syntax_uid for r in records})
    offered = producible(records, what)
    served = (f"; it can be served as {', '.join(offered)} (a single item also as the bare media type)"
              if offered else "; it cannot be served in any media type")
    asked = [a for a in accept if a.q > 0]
    named = "; ".join(described(a) for a in asked[:6]) + (f" and {len(asked) - 6} more" if len(asked) > 6 else "")
    return f"none of the acceptable media types ({named or 'none with q above 0'}) can be produced for the {what}" \
           f" of this target (stored as {', '.join(stored)}){served}"


def described(acceptable: Acceptable) -> str:
    """An acceptable media type as a client would have written it (without its q)."""
    text = acceptable.media_type
    if acceptable.multipart:
        text = "multipart/related" if text == "*/*" else f'multipart/related; type="{text}"'
    if acceptable.transfer_syntax is not None:
        text += f"; transfer-syntax={acceptable.transfer_syntax}"
    return text


def producible(records: Sequence[InstanceRecord], what: str) -> list[str]:
    """The media types (with transfer-syntax) that at least one of ``records`` can be delivered in.

    ``what`` is ``instances`` (Part 10, Table 8.7.3-2) or one of ``bulk data``, ``pixel data``,
    ``frames`` (bulk data media types, Table 8.7.3-5).
    """
    found: dict[str, None] = {}
    for record in records:
        for uid, ts in TRANSFER_SYNTAXES.items():
            if what == "instances":
                media_type = "application/dicom"
                ok = uid == record.transfer_syntax_uid or ts.web and not ts.video and (
                    uid in (EXPLICIT_VR_LE, DEFLATED_EXPLICIT_VR_LE) if record.pixel is None
                    else Sources.can_transcode(record, uid))
            else:
                media_type = ts.media_type
                ok = record.pixel is not None and (
                    uid == record.transfer_syntax_uid
                    or ts.web and not ts.video and uid != DEFLATED_EXPLICIT_VR_LE and Sources.can_transcode(record, uid))
            if ok:
                found[f'multipart/related; type="{media_type}"; transfer-syntax={uid}'] = None
        if what == "bulk data" and record.bulk:
            found[f'multipart/related; type="application/octet-stream"; transfer-syntax={EXPLICIT_VR_LE}'] = None
    return list(found)


