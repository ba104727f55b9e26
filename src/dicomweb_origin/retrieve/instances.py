"""Instance resources (PS3.18 Table 10.4.1-1): Part 10 instances, as stored or transcoded.

Selection follows §8.7.8: per instance, the first acceptable media type (in preference order) that
it can be delivered in wins; wildcards match the category default. Stored bytes are streamed
untouched whenever the selection allows it.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..dicom import transcode
from ..errors import NotAcceptable
from ..model import (
    DEFLATED_EXPLICIT_VR_LE,
    EXPLICIT_VR_LE,
    TRANSFER_SYNTAXES,
    Acceptable,
    InstanceRecord,
    quality,
)
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
    for record in records:
        choice = _instance_choice(sources, record, accept, target.single)
        if choice is None:
            continue
        syntax, wrapped = choice
        multipart = wrapped if multipart is None else multipart
        parts.append(_instance_part(sources, record, syntax))
        keys += [record.digest, syntax]
    if not parts:
        raise NotAcceptable(not_acceptable_message(records, "instances", accept))
    single = multipart is False
    return Payload(parts, None if single else "application/dicom", etag("instances", single, *keys),
                   omitted=len(records) - len(parts))


def _instance_choice(
    sources: Sources, record: InstanceRecord, accept: Sequence[Acceptable], single: bool
) -> tuple[str, bool] | None:
    for acceptable in accept:
        if acceptable.q <= 0 or not acceptable.matches("application/dicom"):
            continue
        if acceptable.multipart is False and not single:
            continue  # single-part types only for single-item resources (§10.4.4 note 3)
        requested = acceptable.transfer_syntax
        if requested is None or acceptable.wildcard and acceptable.media_type != "application/dicom":
            requested = _default_instance_syntax(record)
        syntax = _deliverable_instance_syntax(sources, record, requested)
        wrapped = acceptable.multipart is not False
        if syntax is not None and quality(accept, "application/dicom", syntax, wrapped) > 0:
            return syntax, wrapped
    return None


def _default_instance_syntax(record: InstanceRecord) -> str:
    """Explicit VR LE, except pixel data this server cannot decode (video): as stored (§8.7.3)."""
    if record.pixel is None or not record.syntax.encapsulated:
        return EXPLICIT_VR_LE
    if transcode.can_decode(record.transfer_syntax_uid):
        return EXPLICIT_VR_LE
    return record.transfer_syntax_uid


def _deliverable_instance_syntax(sources: Sources, record: InstanceRecord, requested: str) -> str | None:
    stored = record.transfer_syntax_uid
    if requested in ("*", stored):
        return stored
    target = TRANSFER_SYNTAXES.get(requested)
    if target is None or not target.web or target.video:
        return None
    if record.pixel is None:
        return requested if requested in (EXPLICIT_VR_LE, DEFLATED_EXPLICIT_VR_LE) else None
    if not sources.can_transcode(record, requested):
        return None
    return requested


def _instance_part(sources: Sources, record: InstanceRecord, syntax: str) -> Part:
    media_type = with_syntax("application/dicom", syntax)
    if syntax == record.transfer_syntax_uid:
        return Part(media_type, record.path, record.size, sources.blob_body(record.blob_key, 0, record.size))
    # Produced a frame at a time and spooled when sent (Part.materialize): memory holds a frame, not the instance.
    return Part(media_type, record.path, None, stream_body(lambda: sources.transcoded_instance(record, syntax)),
                memory=sources.instance_memory(record, syntax))
