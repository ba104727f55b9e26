"""Bulk data, Pixel Data and Frames resources (PS3.18 Tables 10.4.1.5-1 and 10.4.1.6-1).

A stored frame is one ranged read (several for fragmented frames); frames in another syntax are
transcoded on the executor, in parallel with their neighbours, and kept in the frame cache.

A resource that is one value (a bulk data element, one frame, the Pixel Data of one instance stored
native, every frame in a row) can be a single part, which Range requests (RFC 9110 §14) apply to.
A bare ``application/octet-stream`` asks for that part; so does a wildcard (``*/*``) when the request
carries ``Range`` (``ranged``): a byte range of the multipart envelope, the wildcard's default, would
mean nothing to a client following a BulkDataURI (our choice; RFC 9110 §14.2 lets a server ignore Range).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import replace

from ..errors import BadRequest, InvalidFrameList, NotAcceptable, NotFound
from ..model import (
    EXPLICIT_VR_LE,
    TRANSFER_SYNTAXES,
    Acceptable,
    InstanceRecord,
    default_syntax_for,
    excluded,
    quality,
)
from .payload import Part, Payload, Target, bytes_body, etag, with_syntax
from .sources import Sources, not_acceptable_message

OCTET = "application/octet-stream"


def bulkdata(sources: Sources, target: Target, accept: Sequence[Acceptable]) -> Payload:
    """All bulk data of the target: pixel data frames, then every other bulk element."""
    records = sources.records(target)
    parts: list[Part] = []
    omitted = 0  # pixel data or bulk elements no acceptable type can carry: 206 (Table 10.4.3-1)
    octet = quality(accept, OCTET, EXPLICIT_VR_LE, True) > 0
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
    for acceptable in accept:
        multipart = not _bare(acceptable, ranged)
        if acceptable.q > 0 and acceptable.matches(OCTET) and acceptable.transfer_syntax in (
            None, "*", EXPLICIT_VR_LE
        ) and quality(accept, OCTET, EXPLICIT_VR_LE, multipart) > 0:
            return Payload([_element_part(sources, record, path)], OCTET if multipart else None,
                           etag("bulk", record.digest, path, multipart))
    raise NotAcceptable("bulk data is served as application/octet-stream (Explicit VR Little Endian)")


def pixeldata(sources: Sources, target: Target, accept: Sequence[Acceptable], ranged: bool = False) -> Payload:
    records = [r for r in sources.records(target) if r.pixel is not None]
    if not records:
        raise NotFound("the target has no pixel data")
    # One instance's Pixel Data is one value: a single part when it is one frame, or frames stored native.
    single = target.single and (len(records[0].frames) == 1 or not records[0].syntax.encapsulated)
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


def _bare(acceptable: Acceptable, ranged: bool) -> bool:
    """Whether ``acceptable`` asks for a single part: named bare, or a wildcard with a Range to apply."""
    return acceptable.multipart is False or ranged and acceptable.multipart is None


def _pixel_parts(sources: Sources, record: InstanceRecord, indexes: Sequence[int], accept: Sequence[Acceptable],
                 single: bool, ranged: bool = False) -> tuple[list[Part], bool]:
    """One part per frame in the first acceptable syntax this instance can be delivered in.

    Also says whether the range that chose the syntax asked for a bare (single-part) response; several
    frames stored native then make one part, the Pixel Data value as stored.
    """
    whole = len(indexes) > 1  # only a native instance's whole value gets here with ``single``
    choice = _frame_choice(sources, record, accept, single, whole)
    if choice is None:
        return [], False
    syntax, acceptable = choice
    bare = single and _bare(acceptable, ranged) and (not whole or _as_stored_native(record, syntax))
    if bare and whole:
        return [_value_part(sources, record)], True
    multi = len(record.frames) > 1
    parts = [
        _frame_part(sources, record, index, syntax,
                    f"{record.path}/frames/{index + 1}" if multi else f"{record.path}/pixeldata")
        for index in indexes
    ]
    return parts, bare


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


def _frame_choice(sources: Sources, record: InstanceRecord, accept: Sequence[Acceptable], single: bool,
                  whole: bool = False) -> tuple[str, Acceptable] | None:
    """The syntax frames of this instance are sent in, and the acceptable range that chose it.

    ``whole``: every frame of an instance stored native, which a bare range may ask for as one part only
    in Explicit VR Little Endian as stored (compressed frames go one per part, §8.7.3.3.2).
    """
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
            if acceptable.media_type == OCTET or acceptable.matches(stored_media):
                syntax = stored.uid
            else:
                syntax = default_syntax_for(acceptable.media_type) or ""
        else:
            syntax = wanted or default_syntax_for(acceptable.media_type) or ""
            known = TRANSFER_SYNTAXES.get(syntax)
            if known is None or known.media_type != acceptable.media_type:
                continue
        deliverable = syntax == stored.uid or syntax == EXPLICIT_VR_LE and not stored.encapsulated or (
            syntax in TRANSFER_SYNTAXES and sources.can_transcode_frames(record, syntax))
        media = TRANSFER_SYNTAXES[syntax].media_type if syntax in TRANSFER_SYNTAXES else ""
        # ``application/octet-stream; transfer-syntax=*`` may yield another media type (the stored
        # one), which no range names: only a range that matches it and says q=0 rules it out.
        if acceptable.multipart is False and whole and not _as_stored_native(record, syntax):
            continue
        if deliverable and not excluded(accept, media, syntax, acceptable.multipart is not False):
            return syntax, acceptable
    return None


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
