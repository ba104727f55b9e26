"""The Check use case: does the index agree with the blob store? (``dicomweb-origin check``)

Walks ``Index.records`` in pages and streams every indexed blob once (constant memory), comparing
its size and sha256 digest with the record; lists the blobs no record points at (orphans: a crash
between writing a blob and indexing it leaves one, harmless) and the uploads a crash cut short.
With ``repair``: orphans and stale uploads are deleted, and instances whose blob is missing or
corrupt are removed from the index (leaving a tombstone: a retrieve of them answers 410 Gone).

On a live archive a concurrent STOW writes its blob before indexing it: an orphan younger than
``grace`` seconds (when the store can tell a blob's age) is reported as in flight, never removed.
Works on every backend: it needs only the Index and BlobStore Protocols (plus, where the store
has them, ``modified`` and ``stale_uploads`` / ``remove_stale_uploads``).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from .storage.base import BlobStore, Index

Kind = Literal["missing", "corrupt", "unreadable", "orphan", "upload"]
# What a blob store raises for a key it does not hold (the file store: FileNotFoundError; memory: KeyError).
MISSING_ERRORS: tuple[type[Exception], ...] = (FileNotFoundError, KeyError)


@runtime_checkable
class DatedBlobs(Protocol):
    def modified(self, key: str) -> float: ...


@runtime_checkable
class UploadingBlobs(Protocol):
    def stale_uploads(self) -> list[str]: ...

    def remove_stale_uploads(self) -> int: ...


@dataclass(slots=True)
class Problem:
    kind: Kind
    key: str  # the blob key (or the upload's name)
    detail: str
    instance_uid: str | None = None
    repaired: bool = False


@dataclass(slots=True)
class Report:
    instances: int = 0  # records checked
    blobs: int = 0  # blob keys listed
    bytes: int = 0  # bytes read and hashed
    problems: list[Problem] = field(default_factory=list)
    in_flight: list[str] = field(default_factory=list)  # young orphans: maybe a STOW about to index them

    @property
    def remaining(self) -> list[Problem]:
        return [p for p in self.problems if not p.repaired]


def check(index: Index, blobs: BlobStore, repair: bool = False, grace: float = 60.0,
          progress: Callable[[int], None] | None = None, page: int = 500) -> Report:
    """Verify index and blobs; with ``repair`` fix what can be fixed. ``progress(n)``: n more records done."""
    report = Report()
    listed = set(blobs.keys())  # before the walk: a blob written later is no orphan candidate
    report.blobs = len(listed)
    after = ""
    while records := index.records(after, page):
        for record in records:
            after = record.instance_uid
            listed.discard(record.blob_key)
            problem = _verify(blobs, record.blob_key, record.size, record.digest, report)
            if problem is not None:
                problem.instance_uid = record.instance_uid
                report.problems.append(problem)
                if repair and problem.kind != "unreadable":
                    problem.repaired = _unindex(index, blobs, record.study_uid, record.series_uid,
                                                record.instance_uid, record.blob_key)
        report.instances += len(records)
        if progress is not None:
            progress(len(records))
    now = time.time()
    for key in sorted(listed):
        if index_points_at(index, key):
            continue  # indexed while we walked
        if grace > 0 and isinstance(blobs, DatedBlobs):
            try:
                if now - blobs.modified(key) < grace:
                    report.in_flight.append(key)
                    continue
            except MISSING_ERRORS:
                continue  # deleted meanwhile
        problem = Problem("orphan", key, "no indexed instance points at this blob")
        if repair:
            blobs.delete(key)
            problem.repaired = True
        report.problems.append(problem)
    if isinstance(blobs, UploadingBlobs):
        stale = blobs.stale_uploads()
        removed = blobs.remove_stale_uploads() if repair and stale else 0
        report.problems.extend(Problem("upload", name, "unfinished upload no live writer holds", repaired=removed > 0)
                               for name in stale)
    return report


def _verify(blobs: BlobStore, key: str, size: int, digest: str, report: Report) -> Problem | None:
    """Stream one blob through sha256; the problem with it, if any."""
    sha, length = hashlib.sha256(), 0
    try:
        for chunk in blobs.stream(key):
            sha.update(chunk)
            length += len(chunk)
    except MISSING_ERRORS:
        return Problem("missing", key, "the indexed blob does not exist")
    except (OSError, ValueError) as exc:
        return Problem("unreadable", key, f"cannot read the blob: {exc}")
    report.bytes += length
    if length != size:
        return Problem("corrupt", key, f"{length} bytes, the index says {size}")
    if sha.hexdigest() != digest:
        return Problem("corrupt", key, f"sha256 {sha.hexdigest()[:16]}..., the index says {digest[:16]}...")
    return None


def _unindex(index: Index, blobs: BlobStore, study_uid: str, series_uid: str, instance_uid: str, key: str) -> bool:
    """Remove an instance whose blob is bad from the index (unless it was replaced meanwhile), then the blob."""
    current = index.get(instance_uid)
    if current is not None and current.blob_key == key:
        index.remove(study_uid, series_uid, instance_uid)
    blobs.delete(key)  # keys are never reused (ingest): no live record can point at it now
    return True


def index_points_at(index: Index, key: str) -> bool:
    """Whether a record indexed after the walk passed it points at ``key``.

    Ingest names blobs ``{study}/{series}/{instance}.{token}[.{digest}].dcm``: the instance UID is
    the last path segment up to its first dot-separated token that is not part of a UID.
    """
    name = key.rsplit("/", 1)[-1]
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        record = index.get(".".join(parts[:cut]))
        if record is not None:
            return record.blob_key == key
    return False
