"""Metadata resources (PS3.18 Table 10.4.1-2): the stored DICOM JSON, as JSON or Native XML."""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from ..dicom import jsonwriter
from ..dicom.xml import json_to_xml
from ..errors import NotAcceptable
from ..model.media import EXPLICIT_VR_LE, Acceptable
from ..negotiation import Offer, negotiate
from .payload import Body, Cost, Once, Part, Payload, Target, etag, lazy_body
from .sources import Sources

# Table 10.4.4-1: DICOM JSON (the default, one array) or Native XML (one part per instance); ``application/json``
# is honoured as DICOM JSON when named. A transfer syntax governs InlineBinary (§8.7.3.2): Explicit VR LE.
OFFERS = (Offer("application/dicom+json", EXPLICIT_VR_LE, stored=True),
          Offer("application/dicom+xml", EXPLICIT_VR_LE, multipart=True, stored=True),
          Offer("application/json", EXPLICIT_VR_LE, stored=True, wildcard=False))


def metadata(sources: Sources, target: Target, accept: Sequence[Acceptable], root: str) -> Payload:
    """The stored DICOM JSON of the target, as one JSON array or one XML document per instance.

    Parts are produced only when sent, so a conditional request answered 304 reads nothing.
    """
    records = sources.records(target)
    kind = metadata_kind(accept)
    tag = etag("metadata", kind, root, *(r.digest for r in records))
    stored = Once(lambda: sources.index.metadata(records))
    vary = ("Accept", "Accept-Encoding")
    if kind == "json":
        json_body = lazy_body(lambda: jsonwriter.json_array(stored(), root))
        part = Part("application/dicom+json", f"{target.path}/metadata", None, json_body, Cost.LIGHT)
        return Payload([part], None, tag, vary=vary)

    def xml_body(position: int) -> Body:
        return lazy_body(lambda: json_to_xml(orjson.loads(jsonwriter.absolutize(stored()[position], root))))

    parts = [Part("application/dicom+xml; charset=utf-8", f"{record.path}/metadata", None, xml_body(position),
                  Cost.LIGHT) for position, record in enumerate(records)]
    return Payload(parts, "application/dicom+xml", tag, vary=vary)


def metadata_kind(accept: Sequence[Acceptable]) -> str:
    """JSON (the default) or XML (multipart), in the client's order of preference (Table 10.4.4-1)."""
    offer = negotiate(accept, OFFERS)
    if offer is None:
        raise NotAcceptable(
            "metadata is served as application/dicom+json or multipart/related; type=\"application/dicom+xml\""
        )
    return "xml" if offer.media_type == "application/dicom+xml" else "json"
