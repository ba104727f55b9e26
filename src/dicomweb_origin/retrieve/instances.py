"""Instance resources (PS3.18 Table 10.4.1-1): Part 10 instances, as stored or transcoded.

Selection is ``negotiation.negotiate`` per instance over what it can be delivered in: ``application/dicom`` in its
default transfer syntax, as stored, and in each syntax the request names (§8.7.8); wildcards take the default
(multipart, §8.7.7). Stored bytes are streamed untouched whenever the selection allows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from ..dicom import transcode
from ..errors import NotAcceptable
from ..model.media import DEFLATED_EXPLICIT_VR_LE, EXPLICIT_VR_LE, TRANSFER_SYNTAXES, Acceptable
from ..model.stored import InstanceRecord, PixelDescription
from ..negotiation import Offer, negotiate
from .payload import Part, Payload, Target, etag, stream_body, with_syntax
from .sources import Sources, not_acceptable_message

BULK_MEDIA_TYPES = frozenset(ts.media_type for ts in TRANSFER_SYNTAXES.values())


def wants_bulkdata(accept: Sequence[Acceptable]) -> bool:
    """Table 10.4.4-1 note 2: bulk data media types on an Instance resource mean its Bulkdata resource."""
    dicom_q = max((a.q for a in accept if a.matches("application/dicom")), default=0.0)
    bulk_q = max((a.q for a in accept if a.multipart is not False and a.media_type in BULK_MEDIA_TYPES),
                 default=0.0)
    return bulk_q > dicom_q


def instances(sources: Sources, target: Target, accept: Sequence[Acceptable]) -> Payload:
    records = sources.records(target)
    parts: list[Part] = []
    keys: list[object] = []
    multipart: bool | None = None
    named = tuple(dict.fromkeys(a.transfer_syntax for a in accept if a.transfer_syntax not in (None, "*")))
    # Instances alike in what decides the selection (a series of one modality) share one negotiation.
    chosen: dict[tuple[str, PixelDescription | None, bool], Offer | None] = {}
    for record in records:
        key = (record.transfer_syntax_uid, record.pixel, record.lossy)
        if key not in chosen:
            chosen[key] = negotiate(accept, instance_offers(record, named, target.single),
                                    partial(_deliverable, sources, record))
        offer = chosen[key]
        if offer is None:
            continue
        syntax = offer.syntax or record.transfer_syntax_uid
        multipart = offer.multipart if multipart is None else multipart
        parts.append(_instance_part(sources, record, syntax))
        keys += [record.digest, syntax]
    if not parts:
        raise NotAcceptable(not_acceptable_message(records, "instances", accept))
    single = multipart is False
    return Payload(parts, None if single else "application/dicom", etag("instances", single, *keys),
                   omitted=len(records) - len(parts))


def instance_offers(record: InstanceRecord, named: Sequence[str], single: bool) -> list[Offer]:
    """``application/dicom`` in the instance's default syntax, as stored, and in each syntax ``named``.

    Multipart always, bare for a single instance (§8.7.3.1); a wildcard takes the default, multipart (§8.7.7).
    """
    default, stored = _default_instance_syntax(record), record.transfer_syntax_uid
    offers = []
    for syntax in dict.fromkeys((default, stored, *named)):
        for multipart in (True, False) if single else (True,):
            offers.append(Offer("application/dicom", syntax, multipart, default=syntax == default,
                                stored=syntax == stored, wildcard=syntax == default and multipart))
    return offers


def _default_instance_syntax(record: InstanceRecord) -> str:
    """Explicit VR LE, except pixel data this server cannot decode (video): as stored (§8.7.3)."""
    if record.pixel is None or not record.syntax.encapsulated:
        return EXPLICIT_VR_LE
    if transcode.can_decode(record.transfer_syntax_uid):
        return EXPLICIT_VR_LE
    return record.transfer_syntax_uid


def _deliverable(sources: Sources, record: InstanceRecord, offer: Offer) -> bool:
    syntax = offer.syntax
    if syntax == record.transfer_syntax_uid:
        return True
    target = TRANSFER_SYNTAXES.get(syntax or "")
    if target is None or syntax is None or not target.web or target.video:
        return False
    if record.pixel is None:
        return syntax in (EXPLICIT_VR_LE, DEFLATED_EXPLICIT_VR_LE)
    return sources.can_transcode(record, syntax)


def _instance_part(sources: Sources, record: InstanceRecord, syntax: str) -> Part:
    media_type = with_syntax("application/dicom", syntax)
    if syntax == record.transfer_syntax_uid:
        return Part(media_type, record.path, record.size, sources.blob_body(record.blob_key, 0, record.size))
    # Produced a frame at a time and spooled when sent (Part.materialize): memory holds a frame, not the instance.
    return Part(media_type, record.path, None, stream_body(lambda: sources.transcoded_instance(record, syntax)),
                memory=sources.instance_memory(record, syntax))
