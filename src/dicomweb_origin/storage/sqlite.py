"""The embedded index: SQLite in WAL mode, one connection per thread.

Each instance row carries its precomputed DICOM JSON metadata and its serialized record (frame
and bulk data offsets), so retrieve answers from the index alone. Study and series rows keep
their own attributes for search. The schema is versioned with ``PRAGMA user_version``: a new
version is a migration of an existing archive, never a wipe.

Search (``SqliteIndex.search``) turns the ``Condition``s of a ``SearchQuery`` into SQL: hot
attributes are indexed columns, every other attribute kept at a level is matched inside that
level's ``attributes`` JSON with ``json_each`` (so any value of a multi-valued attribute matches).
Person names are matched on a folded copy (upper case, accents removed, trailing ``^`` dropped).
Study and series rows maintain their instance and series counts, so Search never counts rows.
"""

from __future__ import annotations

import array
import base64
import dataclasses
import re
import sqlite3
import sys
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from ..errors import SeriesInOtherStudy
from ..model import (
    BulkElement,
    Display,
    FrameDisplay,
    InstanceRecord,
    Lut,
    PixelDescription,
    StoredInstance,
    Window,
)
from .base import Condition, ItemCondition, SearchPage, SearchQuery
from .rows import search_matches

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
    # 2: Search (PS3.18 §10.6): folded person names, maintained counts, RequestAttributesSequence on
    # series rows (it joined SERIES_TAGS), and the indexes the study list and its filters use.
    """
    ALTER TABLE study ADD COLUMN patient_name_folded TEXT;
    ALTER TABLE study ADD COLUMN referring_physician_name_folded TEXT;
    ALTER TABLE study ADD COLUMN number_of_series INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE study ADD COLUMN number_of_instances INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE series ADD COLUMN number_of_instances INTEGER NOT NULL DEFAULT 0;
    UPDATE study SET
        patient_name_folded = dicomweb_fold(patient_name),
        referring_physician_name_folded = dicomweb_fold(referring_physician_name),
        number_of_series = (SELECT count(*) FROM series WHERE series.study_uid = study.study_uid),
        number_of_instances = (SELECT count(*) FROM instance WHERE instance.study_uid = study.study_uid);
    UPDATE series SET
        number_of_instances = (SELECT count(*) FROM instance WHERE instance.series_uid = series.series_uid);
    UPDATE series SET attributes = CAST(json_set(CAST(attributes AS TEXT), '$."00400275"', json((
            SELECT json_extract(CAST(i.metadata AS TEXT), '$."00400275"') FROM instance i
            WHERE i.series_uid = series.series_uid AND json_type(CAST(i.metadata AS TEXT), '$."00400275"') IS NOT NULL
            LIMIT 1))) AS BLOB)
        WHERE json_type(CAST(attributes AS TEXT), '$."00400275"') IS NULL AND EXISTS (
            SELECT 1 FROM instance i WHERE i.series_uid = series.series_uid
            AND json_type(CAST(i.metadata AS TEXT), '$."00400275"') IS NOT NULL);
    CREATE INDEX study_by_date ON study(study_date DESC, study_time DESC, study_uid);
    CREATE INDEX study_by_patient_id ON study(patient_id);
    CREATE INDEX study_by_patient_name ON study(patient_name_folded);
    CREATE INDEX study_by_accession ON study(accession_number);
    CREATE INDEX series_by_modality ON series(modality);
    CREATE INDEX instance_by_class ON instance(study_uid, sop_class_uid);
    """,
    # 3: covering indexes for the ModalitiesInStudy / SOPClassesInStudy sub-queries of Search.
    """
    DROP INDEX series_by_modality;
    CREATE INDEX series_by_modality ON series(modality, study_uid);
    DROP INDEX instance_by_class;
    CREATE INDEX instance_by_class ON instance(sop_class_uid, study_uid);
    """,
    # 4: records gain the display pipeline (model.Display). Rows with pixel data stored before it wait
    # here until the Ingest use case reads their blobs (storage never parses DICOM): see set_display.
    """
    CREATE TABLE display_pending (instance_uid TEXT PRIMARY KEY);
    INSERT INTO display_pending SELECT instance_uid FROM instance
        WHERE json_type(CAST(record AS TEXT), '$.pixel') = 'object'
        AND coalesce(json_type(CAST(record AS TEXT), '$.display'), 'null') = 'null';
    """,
    # 5: tombstones of deleted studies, series and instances (``removed``): a DELETE repeated is
    # answered as the first one was, and a retrieve of it is told apart from one of a UID never stored.
    """
    CREATE TABLE tombstone (
        study_uid TEXT NOT NULL, series_uid TEXT NOT NULL DEFAULT '', instance_uid TEXT NOT NULL DEFAULT '',
        removed_at REAL NOT NULL,
        PRIMARY KEY (study_uid, series_uid, instance_uid)
    );
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


def fold(name: str | None) -> str | None:
    """A person name for comparison: accents removed, upper case, trailing empty components dropped."""
    if name is None:
        return None
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).upper().rstrip("^ ")


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

    def __init__(self, path: Path, cache_size: int = 20_000) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._cache: OrderedDict[str, InstanceRecord] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        # Bumped whenever records leave the memo (delete, replace): a row read before that is not memoised.
        self._generation = 0
        self._migrate()

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: in WAL mode NORMAL syncs the log only at checkpoints, so a commit survives a killed
            # process but not a power cut or kernel panic; FULL fsyncs the log at every commit, which is
            # what a STOW 200 promises (the blob was fsynced before). EXTRA adds nothing in WAL mode.
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.create_function("dicomweb_fold", 1, fold, deterministic=True)
            self._local.conn = conn
        return conn

    def _migrate(self) -> None:
        conn = self._connection()
        # The version is read inside the write lock, so two processes opening a new archive at once
        # (serve and import) cannot both run the same migration.
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
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
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT record FROM instance WHERE instance_uid = ?",
                               (stored.record.instance_uid,)).fetchone()
            if row is not None:
                conn.execute("ROLLBACK")
                return record_from_json(row[0])
            self._insert(conn, stored, update_levels=False)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return None

    def replace(self, stored: StoredInstance) -> InstanceRecord | None:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT record FROM instance WHERE instance_uid = ?",
                               (stored.record.instance_uid,)).fetchone()
            old = record_from_json(row[0]) if row is not None else None
            if old is not None:
                self._delete_rows(conn, [old])
            # The corrected instance's study and series attributes win (a corrected PatientName, say).
            self._insert(conn, stored, update_levels=True)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._forget([stored.record.instance_uid])
        return old

    def _insert(self, conn: sqlite3.Connection, stored: StoredInstance, update_levels: bool) -> None:
        """Insert the rows of one instance inside the caller's transaction."""
        record = stored.record
        now = time.time()
        study = stored.study_attributes
        study_values = (
            *(column_value(study, t) for t in _STUDY_COLUMNS),
            fold(column_value(study, "00100010")),
            fold(column_value(study, "00080090")),
            orjson.dumps(study),
        )
        conn.execute(
            f"INSERT OR IGNORE INTO study (study_uid, {', '.join(_STUDY_COLUMNS.values())},"
            " patient_name_folded, referring_physician_name_folded, attributes, created_at)"
            f" VALUES (?, {', '.join('?' * len(_STUDY_COLUMNS))}, ?, ?, ?, ?)",
            (record.study_uid, *study_values, now),
        )
        if update_levels:
            columns = [*_STUDY_COLUMNS.values(), "patient_name_folded", "referring_physician_name_folded",
                       "attributes"]
            conn.execute(f"UPDATE study SET {', '.join(c + ' = ?' for c in columns)} WHERE study_uid = ?",
                         (*study_values, record.study_uid))
        series = stored.series_attributes
        series_values = (*(column_value(series, t) for t in _SERIES_COLUMNS), orjson.dumps(series))
        new_series = conn.execute(
            f"INSERT OR IGNORE INTO series (series_uid, study_uid, {', '.join(_SERIES_COLUMNS.values())},"
            f" attributes, created_at) VALUES (?, ?, {', '.join('?' * len(_SERIES_COLUMNS))}, ?, ?)",
            (record.series_uid, record.study_uid, *series_values, now),
        ).rowcount
        existing_series = conn.execute(
            "SELECT study_uid FROM series WHERE series_uid = ?", (record.series_uid,)
        ).fetchone()
        if existing_series[0] != record.study_uid:
            raise SeriesInOtherStudy(record.series_uid, existing_series[0], record.study_uid)
        if update_levels:
            columns = [*_SERIES_COLUMNS.values(), "attributes"]
            conn.execute(f"UPDATE series SET {', '.join(c + ' = ?' for c in columns)} WHERE series_uid = ?",
                         (*series_values, record.series_uid))
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
        if record.pixel is not None and record.display is None:  # waits for set_display, as migration 4's rows
            conn.execute("INSERT OR IGNORE INTO display_pending (instance_uid) VALUES (?)", (record.instance_uid,))
        # Counts for Search (NumberOfStudyRelatedSeries/Instances, NumberOfSeriesRelatedInstances).
        conn.execute(
            "UPDATE series SET number_of_instances = number_of_instances + 1 WHERE series_uid = ?",
            (record.series_uid,),
        )
        conn.execute(
            "UPDATE study SET number_of_instances = number_of_instances + 1,"
            " number_of_series = number_of_series + ? WHERE study_uid = ?",
            (1 if new_series else 0, record.study_uid),
        )

    def remove(self, study_uid: str, series_uid: str | None = None,
               instance_uid: str | None = None) -> list[InstanceRecord]:
        sql, args = "SELECT record FROM instance WHERE study_uid = ?", [study_uid]
        if series_uid is not None:
            sql, args = sql + " AND series_uid = ?", [*args, series_uid]
        if instance_uid is not None:
            sql, args = sql + " AND instance_uid = ?", [*args, instance_uid]
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            gone = [record_from_json(blob) for (blob,) in conn.execute(sql, args).fetchall()]
            self._delete_rows(conn, gone)
            now = time.time()
            tombstones = {(study_uid, "", "")} if gone else set()
            for r in gone:
                tombstones |= {(r.study_uid, r.series_uid, ""), (r.study_uid, r.series_uid, r.instance_uid)}
            conn.executemany("INSERT OR REPLACE INTO tombstone (study_uid, series_uid, instance_uid, removed_at)"
                             " VALUES (?, ?, ?, ?)", [(*t, now) for t in sorted(tombstones)])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._forget([r.instance_uid for r in gone])
        return gone

    def _delete_rows(self, conn: sqlite3.Connection, records: Sequence[InstanceRecord]) -> None:
        """Delete instance rows, keep the counts, and drop series and studies left empty (caller's transaction)."""
        for r in records:
            conn.execute("DELETE FROM instance WHERE instance_uid = ?", (r.instance_uid,))
            conn.execute("DELETE FROM display_pending WHERE instance_uid = ?", (r.instance_uid,))
            conn.execute("UPDATE series SET number_of_instances = number_of_instances - 1 WHERE series_uid = ?",
                         (r.series_uid,))
            conn.execute("UPDATE study SET number_of_instances = number_of_instances - 1 WHERE study_uid = ?",
                         (r.study_uid,))
        for series_uid, study_uid in {(r.series_uid, r.study_uid) for r in records}:
            if conn.execute("DELETE FROM series WHERE series_uid = ? AND number_of_instances <= 0",
                            (series_uid,)).rowcount:
                conn.execute("UPDATE study SET number_of_series = number_of_series - 1 WHERE study_uid = ?",
                             (study_uid,))
        for study_uid in {r.study_uid for r in records}:
            conn.execute("DELETE FROM study WHERE study_uid = ? AND number_of_series <= 0", (study_uid,))

    def _forget(self, instance_uids: Sequence[str]) -> None:
        """Drop records from the memo: a deleted or replaced instance is never served from it."""
        with self._cache_lock:
            self._generation += 1
            for uid in instance_uids:
                self._cache.pop(uid, None)

    def removed(self, study_uid: str, series_uid: str | None = None, instance_uid: str | None = None) -> bool:
        conn = self._connection()
        key = (study_uid, series_uid or "", instance_uid or "")
        if conn.execute("SELECT 1 FROM tombstone WHERE study_uid = ? AND series_uid = ? AND instance_uid = ?",
                        key).fetchone() is None:
            return False
        if instance_uid is not None:
            live = "SELECT 1 FROM instance WHERE instance_uid = ?", (instance_uid,)
        elif series_uid is not None:
            live = "SELECT 1 FROM series WHERE series_uid = ?", (series_uid,)
        else:
            live = "SELECT 1 FROM study WHERE study_uid = ?", (study_uid,)
        return conn.execute(*live).fetchone() is None

    def records(self, after: str = "", limit: int = 1000) -> list[InstanceRecord]:
        rows = self._connection().execute(
            "SELECT record FROM instance WHERE instance_uid > ? ORDER BY instance_uid LIMIT ?", (after, limit))
        return [record_from_json(blob) for (blob,) in rows]

    def get(self, instance_uid: str) -> InstanceRecord | None:
        # The memo saves parsing, not the query: another process (import, a second server) may have replaced
        # or deleted the instance, so the row's digest says whether the memoized record is still the one.
        with self._cache_lock:
            generation = self._generation
        row = self._connection().execute(
            "SELECT digest, record FROM instance WHERE instance_uid = ?", (instance_uid,)
        ).fetchone()
        if row is None:
            return None
        with self._cache_lock:
            cached = self._cache.get(instance_uid)
            if cached is not None and cached.digest == row[0]:
                self._cache.move_to_end(instance_uid)
                return cached
        record = record_from_json(row[1])
        self._remember(record, generation)
        return record

    def _remember(self, record: InstanceRecord, generation: int) -> None:
        with self._cache_lock:
            if generation != self._generation:
                return  # read before a delete or replace committed: maybe stale
            self._cache[record.instance_uid] = record
            self._cache.move_to_end(record.instance_uid)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def instances(self, study_uid: str, series_uid: str | None = None) -> list[InstanceRecord]:
        sql = (
            "SELECT i.instance_uid, i.digest, i.record FROM instance i JOIN series s ON s.series_uid = i.series_uid"
            " WHERE i.study_uid = ?"
        )
        args: list[str] = [study_uid]
        if series_uid is not None:
            sql += " AND i.series_uid = ?"
            args.append(series_uid)
        sql += " ORDER BY s.series_number, i.series_uid, i.instance_number, i.instance_uid"
        records = []
        with self._cache_lock:
            generation = self._generation
        for uid, digest, blob in self._connection().execute(sql, args):
            with self._cache_lock:
                record = self._cache.get(uid)
            if record is None or record.digest != digest:  # parse each stored record once, then reuse it
                record = record_from_json(blob)
                self._remember(record, generation)
            records.append(record)
        return records

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

    def records_missing_display(self, after: str = "", limit: int = 100) -> list[InstanceRecord]:
        rows = self._connection().execute(
            "SELECT i.record FROM display_pending p JOIN instance i ON i.instance_uid = p.instance_uid"
            " WHERE p.instance_uid > ? ORDER BY p.instance_uid LIMIT ?", (after, limit),
        )
        return [record_from_json(blob) for (blob,) in rows]

    def set_display(self, record: InstanceRecord) -> None:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("UPDATE instance SET record = ? WHERE instance_uid = ?",
                         (record_to_json(record), record.instance_uid))
            conn.execute("DELETE FROM display_pending WHERE instance_uid = ?", (record.instance_uid,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        with self._cache_lock:
            if record.instance_uid in self._cache:
                self._cache[record.instance_uid] = record

    # -- Search (PS3.18 §10.6) ----------------------------------------------------------------------

    def search(self, query: SearchQuery) -> SearchPage:
        where, args = [], []
        for condition in query.conditions:
            sql, values = _condition_sql(condition, query.level)
            where.append(sql)
            args.extend(values)
        clause = " WHERE " + " AND ".join(where) if where else ""
        conn = self._connection()
        total = int(conn.execute(f"SELECT count(*) FROM {_FROM[query.level]}{clause}", args).fetchone()[0])
        if total <= query.offset or query.limit == 0:
            return SearchPage([], total)
        sql = (f"SELECT {_SELECT[query.level]} FROM {_FROM[query.level]}{clause}"
               f" ORDER BY {_ORDER[query.level]} LIMIT ? OFFSET ?")
        rows = conn.execute(sql, [*args, -1 if query.limit is None else query.limit, query.offset]).fetchall()
        studies, matches = search_matches(rows, query.level)
        for tag, sql in _DERIVED.items():
            if tag in query.computed and studies:
                found: dict[str, set[str]] = {}
                uids = list(studies)
                for start in range(0, len(uids), 500):
                    chunk = uids[start : start + 500]
                    for study_uid, value in conn.execute(sql.format(", ".join("?" * len(chunk))), chunk):
                        found.setdefault(study_uid, set()).add(value)
                for match in matches:
                    derived = found.get(match["0020000D"]["Value"][0])
                    if derived:  # never present without a value: OHIF rejects the whole list (clients/ohif.md)
                        match[tag] = {"vr": _DERIVED_VR[tag], "Value": sorted(derived)}
        return SearchPage(matches, total)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


# -- Search: from Conditions to SQL ---------------------------------------------------------------

_ALIAS: dict[str, str] = {"study": "st", "series": "se", "instance": "i"}
_FROM: dict[str, str] = {
    "study": "study st",
    "series": "series se JOIN study st ON st.study_uid = se.study_uid",
    "instance": "instance i JOIN series se ON se.series_uid = i.series_uid JOIN study st ON st.study_uid = i.study_uid",
}
_SELECT: dict[str, str] = {
    "study": "st.study_uid, st.attributes, st.number_of_series, st.number_of_instances",
    "series": "st.study_uid, st.attributes, st.number_of_series, st.number_of_instances,"
              " se.series_uid, se.attributes, se.number_of_instances",
    "instance": "st.study_uid, st.attributes, st.number_of_series, st.number_of_instances,"
                " se.series_uid, se.attributes, se.number_of_instances, i.instance_uid, i.attributes,"
                " i.transfer_syntax_uid",
}
# Searches are idempotent (§8.3.4.4): the same query gives the same ordered list. Newest studies first.
_STUDY_ORDER = "st.study_date DESC, st.study_time DESC, st.study_uid"
_ORDER: dict[str, str] = {
    "study": _STUDY_ORDER,
    "series": _STUDY_ORDER + ", se.series_number, se.series_uid",
    "instance": _STUDY_ORDER + ", se.series_number, se.series_uid, i.instance_number, i.instance_uid",
}
# Attributes kept in columns: tag -> (level, column). Person names point at their folded copy.
_COLUMN_FIELDS: dict[str, tuple[str, str]] = {
    "0020000D": ("study", "study_uid"),
    **{tag: ("study", column) for tag, column in _STUDY_COLUMNS.items()},
    "00100010": ("study", "patient_name_folded"),
    "00080090": ("study", "referring_physician_name_folded"),
    "0020000E": ("series", "series_uid"),
    **{tag: ("series", column) for tag, column in _SERIES_COLUMNS.items()},
    "00080016": ("instance", "sop_class_uid"),
    "00080018": ("instance", "instance_uid"),
    "00200013": ("instance", "instance_number"),
    "00083002": ("instance", "transfer_syntax_uid"),
}
# Study attributes derived from lower levels: matched with EXISTS, computed for a page on request.
_DERIVED_SOURCE: dict[str, tuple[str, str]] = {
    "00080061": ("series", "modality"),  # ModalitiesInStudy
    "00080062": ("instance", "sop_class_uid"),  # SOPClassesInStudy
}
_DERIVED_VR = {"00080061": "CS", "00080062": "UI"}
_DERIVED = {
    tag: f"SELECT DISTINCT study_uid, {column} FROM {table} WHERE study_uid IN ({{}}) AND {column} IS NOT NULL"
    for tag, (table, column) in _DERIVED_SOURCE.items()
}
_TAG = re.compile(r"[0-9A-F]{8}")


def _condition_sql(condition: Condition | ItemCondition, level: str) -> tuple[str, list[Any]]:
    """One SQL predicate for a condition on an entity of ``level`` (aliases st, se, i)."""
    if isinstance(condition, ItemCondition):
        alias = _ALIAS[_level_of(condition)]
        parts, args = [], []
        for inner in condition.conditions:
            sql, values = _json_any("item.value", inner, "v")
            parts.append(sql)
            args.extend(values)
        source = f"CAST({alias}.attributes AS TEXT)"
        sql = f"EXISTS (SELECT 1 FROM json_each({source}, '{_path(condition.tag)}') AS item WHERE {' AND '.join(parts)})"
        return sql, args
    tag = condition.tag
    if tag in _DERIVED_SOURCE:
        table, column = _DERIVED_SOURCE[tag]
        sql, args = _predicate(f"x.{column}", condition)
        # Not correlated: SQLite builds the set of matching studies once, from the index on the column.
        return f"st.study_uid IN (SELECT x.study_uid FROM {table} x WHERE {sql})", args
    if tag == "0020000D" and level != "study":  # the same value, on the indexed column of this level
        return _predicate(f"{_ALIAS[level]}.study_uid", condition)
    if tag == "0020000E" and level == "instance":
        return _predicate("i.series_uid", condition)
    if condition.time_tag is not None:
        return _predicate(f"({_scalar(tag, condition)} || coalesce({_scalar(condition.time_tag, condition)}, ''))",
                          condition)
    if tag in _COLUMN_FIELDS:
        field_level, column = _COLUMN_FIELDS[tag]
        return _predicate(f"{_ALIAS[field_level]}.{column}", condition)
    return _json_any(f"CAST({_ALIAS[_level_of(condition)]}.attributes AS TEXT)", condition, "v")


def _level_of(condition: Condition | ItemCondition) -> str:
    if condition.level not in _ALIAS:
        raise ValueError(f"condition on {condition.tag} names no level")
    return condition.level


def _path(tag: str) -> str:
    if not _TAG.fullmatch(tag):
        raise ValueError(f"not a tag: {tag!r}")
    return f'$."{tag}".Value'


def _scalar(tag: str, condition: Condition) -> str:
    """The first value of a single-valued attribute (the date or time of a combined range)."""
    if tag in _COLUMN_FIELDS:
        field_level, column = _COLUMN_FIELDS[tag]
        return f"{_ALIAS[field_level]}.{column}"
    return f"json_extract(CAST({_ALIAS[_level_of(condition)]}.attributes AS TEXT), '{_path(tag)}[0]')"


def _json_any(source: str, condition: Condition, alias: str) -> tuple[str, list[Any]]:
    """Any value of an attribute kept in a DICOM JSON object matches (PS3.4 C.2.2.3)."""
    value = f"{alias}.value"
    if condition.person_name:
        value = f"dicomweb_fold(json_extract({alias}.value, '$.Alphabetic'))"
    sql, args = _predicate(value, condition)
    return f"EXISTS (SELECT 1 FROM json_each({source}, '{_path(condition.tag)}') AS {alias} WHERE {sql})", args


def _glob(pattern: str) -> str:
    """A DICOM wildcard pattern (``*``, ``?``, no escapes) as a GLOB pattern: ``[`` is literal."""
    return pattern.replace("[", "[[]")


def _predicate(expr: str, condition: Condition) -> tuple[str, list[Any]]:
    values = list(condition.values)
    if condition.person_name:
        values = [fold(v) for v in values]
    if condition.kind == "equal":
        if len(values) == 1:
            return f"{expr} = ?", values
        return f"{expr} IN ({', '.join('?' * len(values))})", values
    if condition.kind == "pattern":
        return "(" + " OR ".join(f"{expr} GLOB ?" for _ in values) + ")", [_glob(v) for v in values]
    if condition.kind == "range":
        low, high = values
        parts, args = [], []
        if low:
            parts.append(f"{expr} >= ?")
            args.append(low)
        if high:
            parts.append(f"{expr} <= ?")
            args.append(high)
        return (" AND ".join(parts) or f"{expr} IS NOT NULL"), args
    if condition.kind == "fuzzy":
        globs = [_glob(v) for v in values]
        args = [g for text in globs for g in (f"{text}*", f"*^{text}*", f"* {text}*")]
        return "(" + " OR ".join(f"{expr} GLOB ?" for _ in args) + ")", args
    raise ValueError(f"unknown condition kind {condition.kind!r}")


def record_to_json(record: InstanceRecord) -> bytes:
    return orjson.dumps(record, default=_encode, option=orjson.OPT_PASSTHROUGH_DATACLASS)


def _encode(value: Any) -> Any:
    """Dataclasses as objects of their fields; LUT data as base64 of little-endian uint16.

    A 16-bit palette (3 x 65536 entries) as JSON integers makes a 1.1 MB record; as base64 0.5 MB.
    """
    if isinstance(value, Lut):
        return {"first_mapped": value.first_mapped, "bits": value.bits, "data": _pack(value.data)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    raise TypeError(f"cannot encode {type(value).__name__}")


def _pack(data: tuple[int, ...]) -> str | tuple[int, ...]:
    if all(0 <= v <= 0xFFFF for v in data):
        table = array.array("H", data)
        if sys.byteorder == "big":
            table.byteswap()
        return base64.b64encode(table.tobytes()).decode("ascii")
    return data  # not 16-bit entries: kept as integers


# Identical LUTs (every instance of a series with one palette) share one tuple in memory.
_LUT_DATA: OrderedDict[str, tuple[int, ...]] = OrderedDict()
_LUT_DATA_SIZE = 64
_LUT_LOCK = threading.Lock()


def _unpack(data: str | list[int]) -> tuple[int, ...]:
    if not isinstance(data, str):
        return tuple(data)
    with _LUT_LOCK:
        cached = _LUT_DATA.get(data)
        if cached is not None:
            _LUT_DATA.move_to_end(data)
            return cached
    table = array.array("H", base64.b64decode(data))
    if sys.byteorder == "big":
        table.byteswap()
    values = tuple(table)
    with _LUT_LOCK:
        _LUT_DATA[data] = values
        while len(_LUT_DATA) > _LUT_DATA_SIZE:
            _LUT_DATA.popitem(last=False)
    return values


def _lut(raw: dict[str, Any] | None) -> Lut | None:
    return Lut(raw["first_mapped"], raw["bits"], _unpack(raw["data"])) if raw else None


def _floats(raw: list[float] | None) -> Any:
    return tuple(float(v) for v in raw) if raw is not None else None


def _frame_display(raw: dict[str, Any]) -> FrameDisplay:
    return FrameDisplay(
        rescale_slope=raw.get("rescale_slope", 1.0),
        rescale_intercept=raw.get("rescale_intercept", 0.0),
        modality_lut=_lut(raw.get("modality_lut")),
        windows=tuple(Window(**w) for w in raw.get("windows", ())),
        voi_luts=tuple(lut for lut in map(_lut, raw.get("voi_luts", ())) if lut is not None),
        position=_floats(raw.get("position")),
        orientation=_floats(raw.get("orientation")),
        pixel_spacing=_floats(raw.get("pixel_spacing")),
    )


def _display(raw: dict[str, Any] | None) -> Display | None:
    if raw is None:
        return None
    palette = [_lut(p) for p in raw.get("palette") or ()]
    return Display(
        frames=tuple(_frame_display(f) for f in raw.get("frames", ())) or (FrameDisplay(),),
        presentation_lut_shape=raw.get("presentation_lut_shape"),
        presentation_lut=_lut(raw.get("presentation_lut")),
        palette=(palette[0], palette[1], palette[2]) if len(palette) == 3 and all(palette) else None,  # type: ignore[arg-type]
        icc_profile_path=raw.get("icc_profile_path"),
        frame_time_ms=raw.get("frame_time_ms"),
        modality=raw.get("modality"),
        frame_of_reference_uid=raw.get("frame_of_reference_uid"),
    )


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
        display=_display(raw.get("display")),
    )
