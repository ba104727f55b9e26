"""Copy one archive into another (``dicomweb-origin copy``): e.g. SQLite + files into PostgreSQL + S3.

Every instance of the source is read back from its blob store and its sha256 checked against the
record's digest before it is stored; it is stored through the target's Ingest, which re-derives the
index rows, so the target is exactly what importing the same files would have made. After storing,
the target's blob is read back and hashed too. An instance is copied blob first, index row last, so
an interrupted copy leaves at most an unreferenced blob; running the command again skips what the
target already holds with the same digest (checked by reading it back) and copies the rest.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, cast

from .ingest import Ingest, Outcome
from .model.stored import InstanceRecord
from .storage.base import BlobStore, Index

SPOOL_IN_MEMORY = 8 << 20


@dataclass
class CopyReport:
    copied: int = 0
    present: int = 0  # already in the target with the same bytes (verified)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (SOP Instance UID, reason)


def source_records(index: Index, batch: int = 500) -> Iterator[InstanceRecord]:
    """Every record of the source in SOP Instance UID order, a batch at a time (constant memory)."""
    after = ""
    while records := index.records(after, batch):
        yield from records
        after = records[-1].instance_uid


def blob_digest(blobs: BlobStore, key: str) -> tuple[str, int]:
    """sha256 and size of a stored blob, streamed in constant memory."""
    digest, size = hashlib.sha256(), 0
    for chunk in blobs.stream(key):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


class ArchiveCopy:
    """Copies the records of one archive (index + blobs) into another through its Ingest."""

    def __init__(self, source_index: Index, source_blobs: BlobStore, target: Ingest) -> None:
        self.source_index = source_index
        self.source_blobs = source_blobs
        self.target = target

    def run(self, progress: Callable[[], None] = lambda: None) -> CopyReport:
        report = CopyReport()
        for record in source_records(self.source_index):
            try:
                outcome = self.copy_one(record)
            except (OSError, KeyError) as exc:  # a missing or unreadable blob: report it, copy the rest
                outcome = f"cannot read or write: {exc}"
            if outcome == "copied":
                report.copied += 1
            elif outcome == "present":
                report.present += 1
            else:
                report.failed.append((record.instance_uid, outcome))
            progress()
        return report

    def copy_one(self, record: InstanceRecord) -> str:
        """Copy one instance: "copied", "present", or the reason it was not."""
        existing = self.target.index.get(record.instance_uid)
        if existing is not None:
            if existing.digest != record.digest:
                return (f"the target holds other bytes under this SOP Instance UID (sha256 {existing.digest[:16]}"
                        f" instead of {record.digest[:16]})")
            return "present" if self._verified(existing) else "the target's blob does not match its record"
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
            digest = hashlib.sha256()
            for chunk in self.source_blobs.stream(record.blob_key):
                digest.update(chunk)
                spool.write(chunk)
            if digest.hexdigest() != record.digest:
                return f"the source blob {record.blob_key} does not match its record's sha256: not copied"
            spool.seek(0)
            result = self.target.store(cast(BinaryIO, spool))
        if result.outcome is Outcome.FAILED or result.record is None:
            return f"the target refused it: {result.reason}"
        if result.record.digest != record.digest:
            return "the target stored other bytes than the source's (digest differs)"
        if not self._verified(result.record):
            return "the target's blob read back does not match the source's sha256"
        return "copied" if result.outcome is Outcome.STORED else "present"

    def _verified(self, record: InstanceRecord) -> bool:
        try:
            digest, size = blob_digest(self.target.blobs, record.blob_key)
        except (OSError, KeyError):
            return False
        return digest == record.digest and size == record.size
