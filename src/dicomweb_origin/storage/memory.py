"""In-memory backends, for tests and for trying things out."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO

from ..errors import SeriesInOtherStudy
from ..model import InstanceRecord, StoredInstance
from .base import BlobInfo
from .sqlite import column_value


class MemoryBlobStore:
    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}

    def put(self, source: BinaryIO, name: str) -> BlobInfo:
        source.seek(0)
        data = source.read()
        digest = hashlib.sha256(data).hexdigest()
        key = f"{name}.{digest[:16]}.dcm"
        self._blobs[key] = data
        return BlobInfo(key, len(data), digest)

    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        data = self._blobs[key]
        return data[offset:] if length is None else data[offset : offset + length]

    def stream(self, key: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        yield self.read(key, offset, length)

    def delete(self, key: str) -> None:
        self._blobs.pop(key, None)

    def keys(self) -> Iterator[str]:
        return iter(list(self._blobs))


class MemoryIndex:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, InstanceRecord] = {}
        self._metadata: dict[str, bytes] = {}
        self._series: dict[str, tuple[str, int | None]] = {}  # series UID -> (study UID, series number)
        # Tombstones of deleted resources: (study, None, None), (study, series, None), (study, series, instance).
        self._removed: set[tuple[str, str | None, str | None]] = set()

    def add(self, stored: StoredInstance) -> InstanceRecord | None:
        uid = stored.record.instance_uid
        with self._lock:
            if uid in self._records:
                return self._records[uid]
            self._keep_series(stored)
            self._records[uid] = stored.record
            self._metadata[uid] = stored.metadata
        return None

    def _keep_series(self, stored: StoredInstance) -> None:
        """Remember the series' study and number (the Protocol's order); a series is in one study only."""
        record = stored.record
        owner = self._series.get(record.series_uid)
        if owner is not None and owner[0] != record.study_uid:
            if any(r.series_uid == record.series_uid for r in self._records.values()):
                raise SeriesInOtherStudy(record.series_uid, owner[0], record.study_uid)
            owner = None  # every instance of it was removed: the UID is free again
        if owner is None:
            number = column_value(stored.series_attributes, "00200011")
            self._series[record.series_uid] = (record.study_uid, _int(number))

    def get(self, instance_uid: str) -> InstanceRecord | None:
        return self._records.get(instance_uid)

    def instances(self, study_uid: str, series_uid: str | None = None) -> list[InstanceRecord]:
        found = [
            r
            for r in self._records.values()
            if r.study_uid == study_uid
            and (series_uid is None or r.series_uid == series_uid)
        ]
        # The Protocol's order, as the SQL backends sort: series number, instance number (absent ones first), UIDs.
        def key(r: InstanceRecord) -> tuple[Any, ...]:
            number = self._series.get(r.series_uid, ("", None))[1]
            return (number is not None, number or 0, r.series_uid, r.instance_number is not None,
                    r.instance_number or 0, r.instance_uid)

        return sorted(found, key=key)

    def metadata(self, records: Sequence[InstanceRecord]) -> list[bytes]:
        return [self._metadata[r.instance_uid] for r in records]

    def count(self) -> int:
        return len(self._records)

    def records_missing_display(self, after: str = "", limit: int = 100) -> list[InstanceRecord]:
        missing = sorted((r for r in self._records.values() if r.pixel is not None and r.display is None
                          and r.instance_uid > after), key=lambda r: r.instance_uid)
        return missing[:limit]

    def set_display(self, record: InstanceRecord) -> None:
        with self._lock:
            if record.instance_uid in self._records:
                self._records[record.instance_uid] = record

    def replace(self, stored: StoredInstance) -> InstanceRecord | None:
        uid = stored.record.instance_uid
        with self._lock:
            old = self._records.get(uid)
            if old is not None:
                del self._records[uid]
            try:
                self._keep_series(stored)
            except BaseException:
                if old is not None:
                    self._records[uid] = old
                raise
            self._records[uid] = stored.record
            self._metadata[uid] = stored.metadata
        return old

    def remove(self, study_uid: str, series_uid: str | None = None,
               instance_uid: str | None = None) -> list[InstanceRecord]:
        with self._lock:
            gone = [r for r in self._records.values() if _under(r, study_uid, series_uid, instance_uid)]
            for record in gone:
                del self._records[record.instance_uid]
                del self._metadata[record.instance_uid]
                self._removed.add((record.study_uid, record.series_uid, record.instance_uid))
                self._removed.add((record.study_uid, record.series_uid, None))
            if gone:
                self._removed.add((study_uid, None, None))
        return gone

    def removed(self, study_uid: str, series_uid: str | None = None, instance_uid: str | None = None) -> bool:
        with self._lock:
            if (study_uid, series_uid, instance_uid) not in self._removed:
                return False
            return not any(_under(r, study_uid, series_uid, instance_uid) for r in self._records.values())

    def records(self, after: str = "", limit: int = 1000) -> list[InstanceRecord]:
        with self._lock:
            uids = sorted(uid for uid in self._records if uid > after)[:limit]
            return [self._records[uid] for uid in uids]

    def close(self) -> None:
        pass


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _under(record: InstanceRecord, study_uid: str, series_uid: str | None, instance_uid: str | None) -> bool:
    """Whether the record is (in) the resource named by the UIDs."""
    return (record.study_uid == study_uid and (series_uid is None or record.series_uid == series_uid)
            and (instance_uid is None or record.instance_uid == instance_uid))
