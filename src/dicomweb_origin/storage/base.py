"""The two storage Protocols every backend satisfies.

Bytes and records only: parsing DICOM is the job of ``dicom/`` at ingest. A PostgreSQL index
or an S3 blob store slots in behind the same Protocols.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from ..model import InstanceRecord, StoredInstance


@dataclass(frozen=True, slots=True)
class BlobInfo:
    key: str
    size: int
    digest: str  # sha256, hex


class BlobStore(Protocol):
    """Immutable blobs: written once, atomically, then read whole or by byte range."""

    def put(self, source: BinaryIO, name: str) -> BlobInfo:
        """Copy ``source`` (from its current position) into a new durable blob named after ``name``."""
        ...

    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        """Return ``length`` bytes at ``offset`` (the rest of the blob when ``length`` is None)."""
        ...

    def stream(self, key: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """Yield the byte range in chunks, in constant memory."""
        ...

    def delete(self, key: str) -> None: ...


class Index(Protocol):
    """Study / series / instance records with their precomputed metadata."""

    def add(self, stored: StoredInstance) -> InstanceRecord | None:
        """Insert the instance; return the record already stored under its SOP Instance UID, if any."""
        ...

    def get(self, instance_uid: str) -> InstanceRecord | None: ...

    def instances(
        self, study_uid: str, series_uid: str | None = None, instance_uid: str | None = None
    ) -> list[InstanceRecord]:
        """Records of a study, series or instance, ordered by series, instance number, UID."""
        ...

    def metadata(self, records: Sequence[InstanceRecord]) -> list[bytes]:
        """The stored DICOM JSON object of each record, in the same order."""
        ...

    def count(self) -> int:
        """Number of stored instances."""
        ...

    def close(self) -> None: ...
