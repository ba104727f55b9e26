"""Bulk data, Pixel Data and Frames resources (PS3.18 Tables 10.4.1.5-1 and 10.4.1.6-1).

A stored frame is one ranged read (several for fragmented frames); frames in another syntax are
transcoded on the executor, in parallel with their neighbours, and kept in the frame cache.

A resource that is one value (a bulk data element, one frame, the Pixel Data of one instance: every
frame in a row, as stored when native, decoded when compressed) can be a single part, which Range
requests (RFC 9110 §14) apply to. The decoded value of compressed frames is produced frame by frame,
only the frames a range covers (§8.7.3.3.1: uncompressed bulk data is one value).
A bare ``application/octet-stream`` asks for that part; so does a wildcard (``*/*``) when the request
carries ``Range`` (``ranged``): a byte range of the multipart envelope, the wildcard's default, would
mean nothing to a client following a BulkDataURI (our choice; RFC 9110 §14.2 lets a server ignore Range).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import replace
from functools import partial

from ..dicom import pixels
from ..errors import BadRequest, DecodeError, InvalidFrameList, NotAcceptable, NotFound
from ..model.media import EXPLICIT_VR_LE, TRANSFER_SYNTAXES, Acceptable, default_syntax_for
from ..model.stored import InstanceRecord
from ..negotiation import OCTET, Offer, negotiate
from .payload import Part, Payload, Target, bytes_body, etag, with_syntax
from .sources import Sources, not_acceptable_message


def bulkdata(sources: Sources, target: Target, accept: Sequence[Acceptable]) -> Payload:
    """All bulk data of the target: pixel data frames, then every other bulk element."""
    records = sources.records(target)
    parts: list[Part] = []
    omitted = 0  # pixel data or bulk elements no acceptable type can carry: 206 (Table 10.4.3-1)
    octet = negotiate(accept, (_octet(multipart=True),)) is not None
    for record in records:
        if record.pixel is not None:
            pixel_parts = _pixel_parts(sources, record, range(len(record.frames)), accept, single=False)[0]
            parts += pixel_parts
            omitted += not pixel_parts
        if octet:
            parts += [_element_part(sources, record, element.path) for element in record.bulk]
        else:
            omitted += len(record.bulk)
    if not parts:
        if not any(r.pixel is not None or r.bulk for r in records):
            raise NotFound("the target has no bulk data")
        raise NotAcceptable(not_acceptable_message(records, "bulk data", accept))
    return replace(_bulk_payload(parts, records, bare=False), omitted=omitted)


def _element_part(sources: Sources, record: InstanceRecord, path: str) -> Part:
    element = record.bulk_element(path)
    assert element is not None
    return Part(with_syntax(OCTET, EXPLICIT_VR_LE), f"{record.path}/bulkdata/{path}", element.length,
                sources.blob_body(record.blob_key, element.offset, element.length))


def bulk_element(sources: Sources, target: Target, path: str, accept: Sequence[Acceptable],
                 ranged: bool = False) -> Payload:
    """One BulkDataURI advertised by metadata: ``{instance}/bulkdata/{tag path}``."""
    (record,) = sources.records(target)
    if record.bulk_element(path) is None:
        raise NotFound(f"instance {record.instance_uid} has no bulk data element {path}")
    offer = negotiate(accept, _wildcard_order([_octet(True), _octet(False)], ranged))
    if offer is None:
        raise NotAcceptable("bulk data is served as application/octet-stream (Explicit VR Little Endian)")
    return Payload([_element_part(sources, record, path)], OCTET if offer.multipart else None,
                   etag("bulk", record.digest, path, offer.multipart))


def _octet(multipart: bool) -> Offer:
    """A bulk data value as it is stored: Explicit VR Little Endian, the default for every category (§8.7.3.3.1)."""
    return Offer(OCTET, EXPLICIT_VR_LE, multipart, stored=True)


def _wildcard_order(offers: list[Offer], ranged: bool) -> list[Offer]:
    """Multipart offers first (the default, Table 10.4.4-1): what a wildcard takes; with Range, the value itself."""
    return sorted(offers, key=lambda offer: offer.multipart == ranged)


def pixeldata(sources: Sources, target: Target, accept: Sequence[Acceptable], ranged: bool = False) -> Payload:
    records = [r for r in sources.records(target) if r.pixel is not None]
    if not records:
        raise NotFound("the target has no pixel data")
    # One instance's Pixel Data is one value: a single part when it is one frame, or every frame in a row
    # uncompressed (as stored, or decoded); compressed frames go one per part (§8.7.3.3.2).
    single = target.single
    parts: list[Part] = []
    bare = False
    omitted = 0  # instances whose pixel data no acceptable type can carry: 206 (Table 10.4.3-1)
    for record in records:
        produced, bare = _pixel_parts(sources, record, range(len(record.frames)), accept, single, ranged)
        parts += produced
        omitted += not produced
    if not parts:
        raise NotAcceptable(not_acceptable_message(records, "pixel data", accept))
    return replace(_bulk_payload(parts, records, bare), omitted=omitted)


def frames(sources: Sources, target: Target, frame_list: str, accept: Sequence[Acceptable],
           ranged: bool = False) -> Payload:
    (record,) = sources.records(target)
    if record.pixel is None:
        raise NotFound(f"instance {record.instance_uid} has no pixel data")
    if record.syntax.video:
        raise NotAcceptable("a video is served whole, as its pixeldata, not frame by frame (§8.7.3.3.2)")
    indexes = parse_frame_list(frame_list, len(record.frames))
    parts, bare = _pixel_parts(sources, record, indexes, accept, len(indexes) == 1, ranged)
    if not parts:
        raise NotAcceptable(not_acceptable_message([record], "frames", accept))
    return _bulk_payload(parts, [record], bare)


def _pixel_parts(sources: Sources, record: InstanceRecord, indexes: Sequence[int], accept: Sequence[Acceptable],
                 single: bool, ranged: bool = False) -> tuple[list[Part], bool]:
    """One part per frame in the first acceptable syntax this instance can be delivered in.

    Also says whether the selected representation is bare (single-part); several frames stored native then
    make one part, the Pixel Data value as stored.
    """
    whole = len(indexes) > 1  # with ``single``: the Pixel Data of one instance, every frame
    offer = negotiate(accept, frame_offers(record, accept, single, whole, ranged),
                      partial(_deliverable, sources, record))
    if offer is None:
        return [], False
    syntax = offer.syntax or record.transfer_syntax_uid
    bare = not offer.multipart
    if bare and whole:
        if record.syntax.encapsulated:
            return [_decoded_value_part(sources, record)], True
        return [_value_part(sources, record)], True
    multi = len(record.frames) > 1
    parts = [
        _frame_part(sources, record, index, syntax,
                    f"{record.path}/frames/{index + 1}" if multi else f"{record.path}/pixeldata")
        for index in indexes
    ]
    return parts, bare


def frame_offers(record: InstanceRecord, accept: Sequence[Acceptable], single: bool, whole: bool = False,
                 ranged: bool = False) -> list[Offer]:
    """The media types and syntaxes frames of ``record`` can be asked for in (Tables 8.7.3-4 and 8.7.3-5).

    Explicit VR Little Endian as ``application/octet-stream`` (the default, what ``*/*`` takes), the bytes as
    stored (what ``type/*`` and ``transfer-syntax=*`` take; a video's only form, §8.7.3), each syntax the
    request names, and the default syntax of each media type it names. Bare only for a single item
    (``single``); ``whole``, every frame of an instance as one value, only in Explicit VR Little Endian
    (compressed frames go one per part, §8.7.3.3.2).
    """
    stored = record.syntax
    syntaxes = [EXPLICIT_VR_LE, stored.uid]
    for acceptable in accept:
        if acceptable.transfer_syntax not in (None, "*"):
            syntaxes.append(acceptable.transfer_syntax)
        elif not acceptable.wildcard and (default := default_syntax_for(acceptable.media_type)):
            syntaxes.append(default)
    offers: list[Offer] = []
    for syntax in dict.fromkeys(syntaxes):
        known = TRANSFER_SYNTAXES.get(syntax)
        if known is None and syntax != stored.uid:
            continue
        media = known.media_type if known is not None else stored.media_type
        as_stored = syntax == stored.uid or _as_stored_native(record, syntax)
        octet_default = syntax == EXPLICIT_VR_LE and not stored.video
        for multipart in (True, False):
            if not multipart and not (single and (not whole or _one_value(record, syntax))):
                continue
            offers.append(Offer(media, syntax, multipart, default=default_syntax_for(media) == syntax,
                                stored=as_stored, wildcard=octet_default or syntax == stored.uid))
    return _wildcard_order(offers, ranged)


def _deliverable(sources: Sources, record: InstanceRecord, offer: Offer) -> bool:
    syntax = offer.syntax or ""
    return syntax == record.transfer_syntax_uid or _as_stored_native(record, syntax) or (
        syntax in TRANSFER_SYNTAXES and sources.can_transcode_frames(record, syntax))


def _one_value(record: InstanceRecord, syntax: str) -> bool:
    """Whether every frame of ``record`` in ``syntax`` is one value of whole bytes per frame (Explicit VR LE).

    Packed 1-bit frames stored native are their value as stored; decoded ones would have to be
    repacked across frames, so those stay one frame per part.
    """
    if syntax != EXPLICIT_VR_LE or record.syntax.video or record.pixel is None:
        return False
    return not record.syntax.encapsulated or record.pixel.bits_allocated > 1


def _as_stored_native(record: InstanceRecord, syntax: str) -> bool:
    return syntax == EXPLICIT_VR_LE and not record.syntax.encapsulated


def _value_part(sources: Sources, record: InstanceRecord) -> Part:
    """The Pixel Data value of an instance stored native: every frame in a row, one ranged read.

    Packed 1-bit frames that do not fill whole bytes share bytes: the value is sent as stored.
    """
    start = record.frames[0][0][0]
    last_start, last_length = record.frames[-1][-1]
    length = last_start + last_length - start
    return Part(with_syntax(OCTET, EXPLICIT_VR_LE), f"{record.path}/pixeldata", length,
                sources.blob_body(record.blob_key, start, length))


def _decoded_value_part(sources: Sources, record: InstanceRecord) -> Part:
    """The Pixel Data value of compressed frames, decoded (Explicit VR Little Endian), every frame in a row.

    Its length is known from the data set (``decoded_description``), so a range decodes only the frames
    it covers, one at a time (each through the frame cache and within the request's memory budget).
    """
    assert record.pixel is not None
    frame = pixels.decoded_description(record.transfer_syntax_uid, record.pixel).frame_length
    total = frame * len(record.frames)

    def body(offset: int, length: int | None) -> Iterator[bytes]:
        end = total if length is None else min(total, offset + length)
        while offset < end:
            index, start = divmod(offset, frame)
            data = sources.transcoded_frame(record, index, EXPLICIT_VR_LE)
            if len(data) != frame:  # never a Content-Length the bytes do not fill
                raise DecodeError(f"frame {index + 1} of {record.instance_uid} decoded to {len(data)} bytes, "
                                  f"not the {frame} its attributes describe")
            stop = min(frame, end - index * frame)
            yield data[start:stop]
            offset = index * frame + stop

    return Part(with_syntax(OCTET, EXPLICIT_VR_LE), f"{record.path}/pixeldata", total, body,
                memory=sources.frame_memory(record, EXPLICIT_VR_LE))


def _frame_part(sources: Sources, record: InstanceRecord, index: int, syntax: str, location: str) -> Part:
    fragments = record.frames[index]
    as_stored = syntax == record.transfer_syntax_uid or (syntax == EXPLICIT_VR_LE and not record.syntax.encapsulated)
    if as_stored and record.pixel is not None and record.pixel.packed_unaligned:
        data = sources.stored_frame(record, index)
        return Part(with_syntax(OCTET, EXPLICIT_VR_LE), location, len(data), bytes_body(data))
    if as_stored:
        media = TRANSFER_SYNTAXES[syntax].media_type if syntax in TRANSFER_SYNTAXES else OCTET
        length = sum(n for _, n in fragments)
        if not record.syntax.encapsulated:
            length = min(length, record.pixel.frame_length) if record.pixel else length
        return Part(with_syntax(media, syntax), location, length,
                    sources.fragments_body(record.blob_key, fragments, length))
    media = with_syntax(TRANSFER_SYNTAXES[syntax].media_type, syntax)
    cached = sources.cache.get(sources.frame_key(record, index, syntax))
    if cached is not None:
        return Part(media, location, len(cached), bytes_body(cached))

    def transcoded(offset: int, length: int | None) -> Iterator[bytes]:
        yield from bytes_body(sources.transcoded_frame(record, index, syntax))(offset, length)

    # produced when sent, in parallel with its neighbours as far as the request's memory budget allows
    return Part(media, location, None, transcoded, memory=sources.frame_memory(record, syntax))


def _bulk_payload(parts: list[Part], records: Sequence[InstanceRecord], bare: bool) -> Payload:
    """Bulk data parts, bare or in a multipart envelope whose ``type`` is the parts' own media type.

    The ETag names everything that shapes the bytes: the stored objects, each part's media type
    and location, and the envelope.
    """
    kinds = {p.media_type.split(";")[0] for p in parts}
    envelope = None if bare else kinds.pop() if len(kinds) == 1 else OCTET
    tag = etag("bulk", envelope, *(r.digest for r in records), *(f"{p.media_type} {p.location}" for p in parts))
    return Payload(parts, envelope, tag)


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
