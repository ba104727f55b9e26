"""The embedded index: SQLite in WAL mode, one connection per thread.

The algorithm is ``sql.SqlIndex``'s; this module holds what is SQLite's own: the schema and its
migrations, connections, transactions (one writer at a time: ``BEGIN IMMEDIATE``) and the dialect.
The schema is versioned with ``PRAGMA user_version`` and migrated when the archive is opened: a new
version is a migration of an existing archive, never a wipe.

Attributes that are not indexed columns are matched inside each level's ``attributes`` JSON with
``json_each`` (so any value of a multi-valued attribute matches); person names found there are folded
by ``dicomweb_fold``, a Python function the connection registers.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from .base import Condition
from .records import fold
from .sql import Session, SqlIndex
from .sqlsearch import check_tag, predicate

_T = TypeVar("_T")
ANALYZE_FROM = 500  # instances before the first statistics (and the slack of each doubling)

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
    # 4: records gain the display pipeline (model.appearance.Display). Rows with pixel data stored before it wait
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
    # 6: a flat index at any size. Counters of studies, series, instances and changes (``counts``,
    # Search totals, the home page) instead of counting rows; a revision per record row (the record memo);
    # instance indexes that follow the Search order inside a series and serve the foreign keys on DELETE
    # (each deleted series row checked instance.series_uid by scanning the table).
    """
    CREATE TABLE counter (
        name TEXT NOT NULL, shard INTEGER NOT NULL, value INTEGER NOT NULL, PRIMARY KEY (name, shard)
    ) WITHOUT ROWID;
    INSERT INTO counter (name, shard, value) VALUES ('studies', 0, (SELECT count(*) FROM study)),
        ('series', 0, (SELECT count(*) FROM series)), ('instances', 0, (SELECT count(*) FROM instance)),
        ('changes', 0, 0), ('revision', 0, 0), ('analyzed', 0, 0);
    ALTER TABLE instance ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
    DROP INDEX instance_by_series;
    CREATE INDEX instance_in_series ON instance(series_uid, instance_number, instance_uid);
    CREATE INDEX instance_by_study ON instance(study_uid, sop_class_uid);
    CREATE INDEX study_by_referring ON study(referring_physician_name_folded);
    CREATE INDEX study_by_study_id ON study(study_id);
    DROP INDEX study_by_patient_name;
    CREATE INDEX study_by_patient_name ON study(patient_name_folded, study_date, study_time, study_uid);
    """,
]


class SqliteDialect:
    """SQLite's SQL: ``IN`` lists, GLOB patterns, NULL lowest by default, JSON through ``json_each``."""

    name = "sqlite"
    stride = 4096  # a row passed costs SQLite a fraction of a microsecond: walk further between keys
    shards = 1  # one writer at a time: one row per counter
    lock = ""  # BEGIN IMMEDIATE already holds the write lock
    key_columns = False

    def members(self, expr: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"{expr} IN ({', '.join('?' * len(values))})", list(values)

    def wildcard(self, expr: str, patterns: Sequence[str]) -> tuple[str, list[Any]]:
        # GLOB has * and ? as DICOM does; [ opens a character class there, so it is escaped.
        return "(" + " OR ".join(f"{expr} GLOB ?" for _ in patterns) + ")", [p.replace("[", "[[]") for p in patterns]

    def order(self, column: str, descending: bool) -> str:
        return f"{column} DESC" if descending else column  # SQLite sorts NULL lowest already

    def distinct(self, alias: str) -> str | None:
        # An index that ends in the rowid is a total order: the planner then joins the next level in its
        # index order too, instead of sorting each study's rows (it cannot tell that the UID is unique).
        return f"{alias}.rowid"

    def unindexed(self, expr: str) -> str:
        return f"+{expr}"  # unary plus: the same value, but no index lookup

    def document(self, alias: str) -> str:
        return f"CAST({alias}.attributes AS TEXT)"

    def any_value(self, document: str, condition: Condition) -> tuple[str, list[Any]]:
        value = "dicomweb_fold(json_extract(v.value, '$.Alphabetic'))" if condition.person_name else "v.value"
        sql, args = predicate(self, value, condition, "json")
        path = f'$."{check_tag(condition.tag)}".Value'
        return f"EXISTS (SELECT 1 FROM json_each({document}, '{path}') AS v WHERE {sql})", args

    def first_value(self, document: str, tag: str) -> str:
        return f"json_extract({document}, '$.\"{tag}\".Value[0]')"

    def items(self, document: str, tag: str) -> str:
        return f"json_each({document}, '$.\"{tag}\".Value') AS item"


class SqliteIndex(SqlIndex):
    """Index backed by one SQLite file."""

    revision_sql = "UPDATE counter SET value = value + 1 WHERE name = 'revision' AND shard = 0 RETURNING value"

    def __init__(self, path: Path, cache_size: int = 20_000, stride: int | None = None) -> None:
        if sqlite3.sqlite_version_info < (3, 35):
            raise RuntimeError(f"the SQLite index needs SQLite 3.35 or newer (RETURNING); this is {sqlite3.sqlite_version}")
        super().__init__(SqliteDialect(), cache_size, stride)
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._instances = self._analyzed = 0  # the instance count last seen, and when statistics were taken
        self._migrate()
        self._analyze()

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

    def _count(self, s: Session, studies: int, series: int, instances: int) -> dict[str, int]:
        counted = super()._count(s, studies, series, instances)
        self._instances = counted.get("instances", self._instances)  # one row per counter: the count itself
        return counted

    def _write(self, work: Callable[[Session], _T]) -> _T:
        result = super()._write(work)
        if self._instances >= 2 * self._analyzed + ANALYZE_FROM:
            self._analyze()
        return result

    def _analyze(self) -> None:
        """Statistics for the planner (sqlite_stat1), taken again whenever the archive has doubled since.

        Without them SQLite takes an equality on any indexed column as selective, and sorts every CT series of
        the archive rather than walking the order's index. The study and series tables are read whole (under a
        second at ten million instances): sampled counts of them came out inconsistent from one index to the
        next, and the planner then sorted the studies through the accession number's index. The instance table
        is sampled (``analysis_limit``): its statistics only rank lookups.
        """
        with self._transaction() as s:
            counters = {name: int(value) for name, value in
                        s.all("SELECT name, value FROM counter WHERE name IN ('instances', 'analyzed')")}
            self._instances, self._analyzed = counters.get("instances", 0), counters.get("analyzed", 0)
            if self._instances < 2 * self._analyzed + ANALYZE_FROM:
                return
            s.execute("PRAGMA analysis_limit = 0")
            for table in ("study", "series", "counter"):
                s.execute(f"ANALYZE {table}")
            s.execute("PRAGMA analysis_limit = 1000")
            for table in ("instance", "tombstone", "display_pending"):
                s.execute(f"ANALYZE {table}")
            s.execute("UPDATE counter SET value = ? WHERE name = 'analyzed'", (self._instances,))
            self._analyzed = self._instances

    @contextmanager
    def _session(self) -> Iterator[Session]:
        yield Session(self._connection())

    @contextmanager
    def _snapshot(self) -> Iterator[Session]:
        conn = self._connection()
        conn.execute("BEGIN")  # deferred: the snapshot is taken by the first read (WAL)
        try:
            yield Session(conn)
        finally:
            conn.execute("COMMIT")

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield Session(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
