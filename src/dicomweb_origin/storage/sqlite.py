"""The embedded index: SQLite in WAL mode, one connection per thread.

Each instance row carries its precomputed DICOM JSON metadata and its serialized record (frame
and bulk data offsets), so retrieve answers from the index alone. Study and series rows keep
their own attributes for search. The schema is versioned with ``PRAGMA user_version``: a new
version is a migration of an existing archive, never a wipe.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from ..model import BulkElement, InstanceRecord, PixelDescription, StoredInstance

# Each entry migrates the schema from version i to i + 1.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE study (
        study_uid TEXT PRIMARY KEY,
        patient_id TEXT, patient_name TEXT, patient_birth_date TEXT, patient_sex TEXT,
        study_date TEXT, study_time TEXT, accession_number TEXT, study_id TEXT,
        study_description TEXT, referring_physician_name TEXT,
        attributes BLOB NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE series (
        series_uid TEXT PRIMARY KEY,
        study_uid TEXT NOT NULL REFERENCES study(study_uid),
        modality TEXT, series_number INTEGER, series_description TEXT,
        series_date TEXT, series_time TEXT,
        attributes BLOB NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX series_by_study ON series(study_uid, series_number, series_uid);
    CREATE TABLE instance (
        instance_uid TEXT PRIMARY KEY,
        series_uid TEXT NOT NULL REFERENCES series(series_uid),
        study_uid TEXT NOT NULL REFERENCES study(study_uid),
        sop_class_uid TEXT NOT NULL,
        instance_number INTEGER,
        transfer_syntax_uid TEXT NOT NULL,
        number_of_frames INTEGER NOT NULL,
        size INTEGER NOT NULL,
        digest TEXT NOT NULL,
        record BLOB NOT NULL,
        metadata BLOB NOT NULL,
        attributes BLOB NOT NULL,
        stored_at REAL NOT NULL
    );
    CREATE INDEX instance_by_series ON instance(study_uid, series_uid, instance_number, instance_uid);
    """,
]

_STUDY_COLUMNS = {
    "00100020": "patient_id",
    "00100010": "patient_name",
    "00100030": "patient_birth_date",
    "00100040": "patient_sex",
    "00080020": "study_date",
    "00080030": "study_time",
    "00080050": "accession_number",
    "00200010": "study_id",
    "00081030": "study_description",
    "00080090": "referring_physician_name",
}
_SERIES_COLUMNS = {
    "00080060": "modality",
    "00200011": "series_number",
    "0008103E": "series_description",
    "00080021": "series_date",
    "00080031": "series_time",
}


def column_value(attributes: dict[str, Any], tag: str) -> Any:
    """The first value of a DICOM JSON attribute as a plain column value (PN as its Alphabetic form)."""
    element = attributes.get(tag)
    if not element or not element.get("Value"):
        return None
    value = element["Value"][0]
    if isinstance(value, dict):
        return value.get("Alphabetic")
    return value


class SqliteIndex:
    """Index backed by one SQLite file."""

    def __init__(self, path: Path, cache_size: int = 50_000) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._cache: OrderedDict[str, InstanceRecord] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        self._migrate()

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    def _migrate(self) -> None:
        conn = self._connection()
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                # executescript would commit on its own; run statements one by one inside our transaction.
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def add(self, stored: StoredInstance) -> InstanceRecord | None:
        record = stored.record
        conn = self._connection()
        now = time.time()
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT record FROM instance WHERE instance_uid = ?", (record.instance_uid,)).fetchone()
            if row is not None:
                conn.execute("ROLLBACK")
                return record_from_json(row[0])
            study = stored.study_attributes
            conn.execute(
                f"INSERT OR IGNORE INTO study (study_uid, {', '.join(_STUDY_COLUMNS.values())}, attributes, created_at)"
                f" VALUES (?, {', '.join('?' * len(_STUDY_COLUMNS))}, ?, ?)",
                (record.study_uid, *(column_value(study, t) for t in _STUDY_COLUMNS), orjson.dumps(study), now),
            )
            series = stored.series_attributes
            conn.execute(
                f"INSERT OR IGNORE INTO series (series_uid, study_uid, {', '.join(_SERIES_COLUMNS.values())},"
                f" attributes, created_at) VALUES (?, ?, {', '.join('?' * len(_SERIES_COLUMNS))}, ?, ?)",
                (
                    record.series_uid,
                    record.study_uid,
                    *(column_value(series, t) for t in _SERIES_COLUMNS),
                    orjson.dumps(series),
                    now,
                ),
            )
            existing_series = conn.execute(
                "SELECT study_uid FROM series WHERE series_uid = ?", (record.series_uid,)
            ).fetchone()
            if existing_series[0] != record.study_uid:
                raise ValueError(
                    f"series {record.series_uid} already belongs to study {existing_series[0]}, not {record.study_uid}"
                )
            conn.execute(
                "INSERT INTO instance (instance_uid, series_uid, study_uid, sop_class_uid, instance_number,"
                " transfer_syntax_uid, number_of_frames, size, digest, record, metadata, attributes, stored_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.instance_uid,
                    record.series_uid,
                    record.study_uid,
                    record.sop_class_uid,
                    record.instance_number,
                    record.transfer_syntax_uid,
                    record.number_of_frames,
                    record.size,
                    record.digest,
                    record_to_json(record),
                    stored.metadata,
                    orjson.dumps(stored.instance_attributes),
                    now,
                ),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return None

    def get(self, instance_uid: str) -> InstanceRecord | None:
        with self._cache_lock:
            cached = self._cache.get(instance_uid)
            if cached is not None:
                self._cache.move_to_end(instance_uid)
                return cached
        row = self._connection().execute(
            "SELECT record FROM instance WHERE instance_uid = ?", (instance_uid,)
        ).fetchone()
        if row is None:
            return None
        record = record_from_json(row[0])
        self._remember(record)
        return record

    def _remember(self, record: InstanceRecord) -> None:
        with self._cache_lock:
            self._cache[record.instance_uid] = record
            self._cache.move_to_end(record.instance_uid)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def instances(
        self, study_uid: str, series_uid: str | None = None, instance_uid: str | None = None
    ) -> list[InstanceRecord]:
        sql = (
            "SELECT i.record FROM instance i JOIN series s ON s.series_uid = i.series_uid"
            " WHERE i.study_uid = ?"
        )
        args: list[str] = [study_uid]
        if series_uid is not None:
            sql += " AND i.series_uid = ?"
            args.append(series_uid)
        if instance_uid is not None:
            sql += " AND i.instance_uid = ?"
            args.append(instance_uid)
        sql += " ORDER BY s.series_number, i.series_uid, i.instance_number, i.instance_uid"
        return [record_from_json(row[0]) for row in self._connection().execute(sql, args)]

    def metadata(self, records: Sequence[InstanceRecord]) -> list[bytes]:
        if not records:
            return []
        conn = self._connection()
        found: dict[str, bytes] = {}
        uids = [r.instance_uid for r in records]
        for start in range(0, len(uids), 500):
            chunk = uids[start : start + 500]
            rows = conn.execute(
                f"SELECT instance_uid, metadata FROM instance WHERE instance_uid IN ({', '.join('?' * len(chunk))})",
                chunk,
            )
            found.update((uid, bytes(blob)) for uid, blob in rows)
        return [found[uid] for uid in uids]

    def count(self) -> int:
        return int(self._connection().execute("SELECT count(*) FROM instance").fetchone()[0])

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def record_to_json(record: InstanceRecord) -> bytes:
    return orjson.dumps(record)


def record_from_json(data: bytes) -> InstanceRecord:
    raw = orjson.loads(data)
    pixel = raw.get("pixel")
    return InstanceRecord(
        study_uid=raw["study_uid"],
        series_uid=raw["series_uid"],
        instance_uid=raw["instance_uid"],
        sop_class_uid=raw["sop_class_uid"],
        transfer_syntax_uid=raw["transfer_syntax_uid"],
        source_transfer_syntax_uid=raw["source_transfer_syntax_uid"],
        blob_key=raw["blob_key"],
        size=raw["size"],
        digest=raw["digest"],
        instance_number=raw.get("instance_number"),
        number_of_frames=raw.get("number_of_frames", 0),
        pixel=PixelDescription(**pixel) if pixel else None,
        pixel_path=raw.get("pixel_path"),
        frames=tuple(tuple((int(o), int(n)) for o, n in frame) for frame in raw.get("frames", ())),
        bulk=tuple(BulkElement(**b) for b in raw.get("bulk", ())),
        lossy=raw.get("lossy", False),
    )
