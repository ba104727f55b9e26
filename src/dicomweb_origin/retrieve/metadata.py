"""Metadata resources (PS3.18 Table 10.4.1-2): the stored DICOM JSON, as JSON or Native XML.

The DICOM JSON of a study or series is a stored body (``StoredMetadata``): joined once from the instances'
stored JSON, kept with its gzip in the blob store (under ``DERIVED``, beside the blobs), and read back whole by
the requests that follow, without per-instance work. Its name holds the response's ETag, which names every
instance's digest in order and the DICOMweb root: a change made by any process (STOW, DELETE, replace) gives the
next request another name, so a body is never served stale, and BulkDataURIs, which are absolute, are right for
the root that asked. A body is written whole under its name (rename, or one S3 PUT): two builders at once leave
one correct body. Building one removes the bodies of the target's earlier contents; DELETE removes those of what
it deleted. Instance metadata (one row) and Native XML (rare; one part per instance) stay computed.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import zlib
from collections.abc import Iterator, Sequence

import orjson

from ..dicom import jsonwriter
from ..dicom.xml import json_to_xml
from ..errors import NotAcceptable
from ..model.media import EXPLICIT_VR_LE, Acceptable
from ..model.stored import InstanceRecord
from ..negotiation import Offer, negotiate
from ..storage.base import metadata_folder
from .payload import GZIP_LEVEL, Body, Cost, Once, Part, Payload, Target, etag, lazy_body, stream_body
from .sources import Sources

log = logging.getLogger(__name__)

# Table 10.4.4-1: DICOM JSON (the default, one array) or Native XML (one part per instance); ``application/json``
# is honoured as DICOM JSON when named. A transfer syntax governs InlineBinary (§8.7.3.2): Explicit VR LE.
OFFERS = (Offer("application/dicom+json", EXPLICIT_VR_LE, stored=True),
          Offer("application/dicom+xml", EXPLICIT_VR_LE, multipart=True, stored=True),
          Offer("application/json", EXPLICIT_VR_LE, stored=True, wildcard=False))

STORED_ROOTS = 4  # roots (Host / X-Forwarded-*) whose bodies are stored per content; others are computed
_MISSING = (FileNotFoundError, KeyError)  # what reading a body nobody stored (or one just removed) raises


def metadata(sources: Sources, target: Target, accept: Sequence[Acceptable], root: str) -> Payload:
    """The stored DICOM JSON of the target, as one JSON array or one XML document per instance.

    Parts are produced only when sent, so a conditional request answered 304 reads nothing. A study or series is
    named by its instances' digests alone (one light read); its body is stored (``StoredMetadata``).
    """
    records: list[InstanceRecord] | None = None
    digests = [] if target.single else sources.index.digests(target.study_uid, target.series_uid)
    if not digests:  # an instance, or nothing there: 404 or 410 (or stored this very moment)
        records = sources.records(target)
        digests = [r.digest for r in records]
    kind = metadata_kind(accept)
    tag = etag("metadata", kind, root, *digests)
    vary = ("Accept", "Accept-Encoding")
    location = f"{target.path}/metadata"
    if kind == "json" and not target.single:
        body = StoredMetadata(sources, target, digests, root, tag)
        part = Part("application/dicom+json", location, None, stream_body(body.json), Cost.LIGHT)
        return Payload([part], None, tag, vary=vary, gzip=Once(body.gzip))
    listed = records or sources.records(target)
    stored = Once(lambda: sources.index.metadata(listed))
    if kind == "json":
        json_body = lazy_body(lambda: jsonwriter.json_array(stored(), root))
        return Payload([Part("application/dicom+json", location, None, json_body, Cost.LIGHT)], None, tag, vary=vary)

    def xml_body(position: int) -> Body:
        return lazy_body(lambda: json_to_xml(orjson.loads(jsonwriter.absolutize(stored()[position], root))))

    parts = [Part("application/dicom+xml; charset=utf-8", f"{record.path}/metadata", None, xml_body(position),
                  Cost.LIGHT) for position, record in enumerate(listed)]
    return Payload(parts, "application/dicom+xml", tag, vary=vary)


def metadata_kind(accept: Sequence[Acceptable]) -> str:
    """JSON (the default) or XML (multipart), in the client's order of preference (Table 10.4.4-1)."""
    offer = negotiate(accept, OFFERS)
    if offer is None:
        raise NotAcceptable(
            "metadata is served as application/dicom+json or multipart/related; type=\"application/dicom+xml\""
        )
    return "xml" if offer.media_type == "application/dicom+xml" else "json"


def gzip_bytes(data: bytes, level: int = GZIP_LEVEL) -> bytes:
    """``data`` as gzip, without a timestamp: the same bytes for the same input, whoever compresses it."""
    return zlib.compress(data, level, wbits=31)


class StoredMetadata:
    """The DICOM JSON array of a study or series, and its gzip, read from the blob store or built and stored.

    Named ``{folder}/{contents}.{etag}.json`` (and ``.json.gz``): ``contents`` names the instances' digests alone,
    so the bodies of other roots for the same contents stay while those of earlier contents are removed.
    """

    def __init__(self, sources: Sources, target: Target, digests: Sequence[str], root: str, tag: str) -> None:
        self.sources, self.target, self.digests, self.root = sources, target, list(digests), root
        self.blobs = sources.blobs
        self.folder = metadata_folder(target.study_uid, target.series_uid or "study")
        self.contents = hashlib.sha256("\x1f".join(digests).encode()).hexdigest()[:32]
        self.key = f"{self.folder}{self.contents}.{tag.strip(chr(34))}.json"
        self._built: tuple[bytes, bytes] | None = None
        self._lock = threading.Lock()

    def json(self) -> Iterator[bytes]:
        """The body in chunks as the blob store reads them (``Part.materialize`` spools a large one to a file)."""
        chunks = self.blobs.stream(self.key)
        try:
            first = next(chunks, b"")
        except _MISSING:
            yield self._build()[0]
            return
        yield first
        yield from chunks

    def gzip(self) -> bytes:
        """The gzip body, whole: the one response body that is sent as it is stored."""
        try:
            return self.blobs.read(self.key + ".gz")
        except _MISSING:
            return self._build()[1]

    def _build(self) -> tuple[bytes, bytes]:
        with self._lock:
            if self._built is None:
                records = self.sources.records(self.target)
                data = jsonwriter.json_array(self.sources.index.metadata(records), self.root)
                self._built = data, gzip_bytes(data)
                if [r.digest for r in records] == self.digests:  # else changed since: this name is not theirs
                    self._store(*self._built)
            return self._built

    def _store(self, data: bytes, packed: bytes) -> None:
        """Write both bodies; remove those of earlier contents. A body that cannot be stored is served anyway."""
        mine = f"{self.folder}{self.contents}."
        try:
            found = list(self.blobs.keys(self.folder))
            for key in found:
                if not key.startswith(mine):
                    self.blobs.delete(key)  # earlier contents (or, racing a writer, later: it builds them again)
            roots = {key for key in found if key.startswith(mine) and key.endswith(".json")}
            if self.key not in roots and len(roots) >= STORED_ROOTS:
                return  # as many roots as are kept per content: a Host header must not fill the disk
            self.blobs.write(self.key + ".gz", packed)
            self.blobs.write(self.key, data)
        except OSError as exc:
            log.warning("cannot store the metadata body %s: %s", self.key, exc)

