"""The storage Protocols every backend satisfies: the blob store, and the index by role.

Bytes and records only: parsing DICOM is the job of ``dicom/`` at ingest. A PostgreSQL index
or an S3 blob store slots in behind the same Protocols. The index is three small roles, each the
interface of the use case that needs it: ``Catalogue`` (Retrieve), ``Writer`` (Ingest, DELETE),
``SearchIndex`` (Search, the home page); ``Index`` is all three and what a backend implements.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Literal, Protocol

from ..model.stored import InstanceRecord, StoredInstance

DERIVED = ".derived/"  # the folder of derived bodies (stored metadata): rebuilt when lost, never an instance's blob


def metadata_folder(study_uid: str, series_uid: str | None = None) -> str:
    """The folder of stored metadata bodies (retrieve/metadata.py): a series' (``series_uid``), the study's own
    (``"study"``: no UID is a word), or all of a study's (None)."""
    return f"{DERIVED}metadata/{study_uid}/" + ("" if series_uid is None else f"{series_uid}/")


@dataclass(frozen=True, slots=True)
class BlobInfo:
    key: str
    size: int
    digest: str  # sha256, hex


class BlobStore(Protocol):
    """Immutable blobs: written once, atomically, then read whole or by byte range."""

    def put(self, source: BinaryIO, name: str) -> BlobInfo:
        """Copy all of ``source`` (from its start) into a new durable blob named after ``name``."""
        ...

    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        """Return ``length`` bytes at ``offset`` (the rest of the blob when ``length`` is None)."""
        ...

    def stream(self, key: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """Yield the byte range in chunks, in constant memory."""
        ...

    def delete(self, key: str) -> None: ...

    def keys(self, prefix: str = "") -> Iterator[str]:
        """The durable blobs' keys under ``prefix`` (a folder: ending in ``/``), in no particular order; never a
        temporary upload.

        Without a prefix: every instance's blob, for check and copy (derived bodies under ``DERIVED`` left out).
        """
        ...

    def write(self, key: str, data: bytes) -> None:
        """Store a derived body under exactly ``key`` (below ``DERIVED``), replacing it atomically.

        Readers see the old bytes or the new, never a part; two writers of one key leave one of their bodies whole.
        """
        ...


class Catalogue(Protocol):
    """What Retrieve reads: records and their metadata, by UID, and whether a resource was deleted."""

    def get(self, instance_uid: str) -> InstanceRecord | None: ...

    def instances(self, study_uid: str, series_uid: str | None = None) -> list[InstanceRecord]:
        """Records of a study or series, ordered by series number, instance number, UID."""
        ...

    def digests(self, study_uid: str, series_uid: str | None = None) -> list[str]:
        """The blob digests of the records ``instances`` gives, in its order: one light read that names them all."""
        ...

    def metadata(self, records: Sequence[InstanceRecord]) -> list[bytes]:
        """The stored DICOM JSON object of each record, in the same order."""
        ...

    def removed(self, study_uid: str, series_uid: str | None = None, instance_uid: str | None = None) -> bool:
        """Whether that resource was deleted and nothing is stored under it now."""
        ...

    def records(self, after: str = "", limit: int = 1000) -> list[InstanceRecord]:
        """Records in SOP Instance UID order, UIDs after ``after``: a constant-memory walk for check and copy."""
        ...

    def count(self) -> int:
        """Number of stored instances (kept as it changes: constant time)."""
        ...


class Writer(Protocol):
    """What Ingest and DELETE change: instances in, instances out, records completed."""

    def add(self, stored: StoredInstance) -> InstanceRecord | None:
        """Insert the instance; return the record already stored under its SOP Instance UID, if any."""
        ...

    def replace(self, stored: StoredInstance) -> InstanceRecord | None:
        """Insert the instance, overwriting whatever is stored under its SOP Instance UID; return what it replaced.

        For ``--on-conflict replace``; the caller deletes the replaced blob once the index no longer points at it.
        """
        ...

    def remove(self, study_uid: str, series_uid: str | None = None,
               instance_uid: str | None = None) -> list[InstanceRecord]:
        """Delete the records of a study, series or instance (metadata and search rows too); return them.

        Leaves a tombstone for each removed study, series and instance, so ``removed`` can tell "deleted" from
        "never stored". The caller deletes the blobs after the index no longer points at them.
        """
        ...

    def records_missing_display(self, after: str = "", limit: int = 100) -> list[InstanceRecord]:
        """Records with pixel data but no ``display`` (stored before ingest extracted it), UIDs after ``after``.

        The caller (the Ingest use case) reads their blobs: storage never parses DICOM.
        """
        ...

    def set_display(self, record: InstanceRecord) -> None:
        """Replace a stored record by the same one with its ``display`` (and bulk elements) filled in."""
        ...


# -- Search (QIDO-RS) -----------------------------------------------------------------------------

Level = Literal["study", "series", "instance"]


@dataclass(frozen=True, slots=True)
class Condition:
    """One match key, already parsed and validated by the Search use case (PS3.4 C.2.2.2).

    ``kind`` and ``values``:

    * ``equal``: the stored value equals any of ``values`` (single value, or List of UID matching);
    * ``pattern``: it matches any of ``values``, DICOM wildcards ``*`` and ``?`` (no escape character);
    * ``range``: ``values == (low, high)``, inclusive, in code-point order; ``""`` leaves an end open;
    * ``fuzzy``: any of ``values`` (wildcards allowed) is a prefix of the whole name or of any of its
      components or words.

    ``person_name`` compares the Alphabetic group of PN values, case- and accent-insensitively.
    ``time_tag`` names the TM attribute paired with a DA ``tag``: the range then applies to the
    concatenation date + time (combined date-time matching, PS3.18 §8.3.4.1.1).
    A stored multi-valued attribute matches when any of its values does (PS3.4 C.2.2.3).
    """

    tag: str
    level: Level  # whose attributes hold it (derived study attributes: "study")
    kind: Literal["equal", "pattern", "range", "fuzzy"]
    values: tuple[Any, ...]
    person_name: bool = False
    time_tag: str | None = None


@dataclass(frozen=True, slots=True)
class ItemCondition:
    """Sequence matching (PS3.4 C.2.2.2.6): one item of sequence ``tag`` satisfies every condition."""

    tag: str
    level: Level
    conditions: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """What to find: entities of ``level`` satisfying every condition, in a stable order.

    Conditions may name attributes of ``level`` or of the levels above it. ``computed`` lists the
    attributes derived from lower levels that the caller needs (counts, ModalitiesInStudy, ...),
    so the index computes only those.
    """

    level: Level
    conditions: tuple[Condition | ItemCondition, ...] = ()
    offset: int = 0
    limit: int | None = None
    computed: frozenset[str] = field(default=frozenset())


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of matches, each a DICOM JSON object of the entity's and its parents' attributes."""

    matches: list[dict[str, Any]]
    total: int  # matches before offset and limit


@dataclass(frozen=True, slots=True)
class Counts:
    """How many studies, series and instances an index holds."""

    studies: int = 0
    series: int = 0
    instances: int = 0


class SearchIndex(Protocol):
    """What Search and the operator's pages read: matches (PS3.18 §10.6) from the index alone, and its size."""

    def search(self, query: SearchQuery) -> SearchPage:
        """One page of matches in a stable order; any ``offset`` costs about what the first page does."""
        ...

    def counts(self) -> Counts:
        """The archive's size, kept as it changes: constant time whatever the size."""
        ...


class Index(Catalogue, Writer, SearchIndex, Protocol):
    """Every role of one index (what ``--index URL`` opens)."""

    def close(self) -> None: ...
