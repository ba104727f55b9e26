"""A PostgreSQL index for several server processes sharing one database (psycopg 3, a connection pool).

The same ``Index`` / ``SearchIndex`` Protocols and the same answers as ``SqliteIndex``; what differs:

* Concurrency: every write is one transaction of ``INSERT ... ON CONFLICT DO NOTHING``, so the same
  instance stored at once through two processes ends as one row (the second insert waits for the first
  transaction, then sees its row) and the study / series counters stay exact.
* Match keys are computed once, at ingest: each level row keeps a ``keys`` JSONB object of every attribute's
  values (person names folded: upper case, accents removed, trailing ``^`` dropped; sequence items as nested
  objects), and the indexed columns hold the folded names. Queries never call a folding function.
* Text columns use ``COLLATE "C"``: byte order of UTF-8, i.e. code-point order, as DICOM range matching and
  the SQLite index compare; LIKE prefix searches then use the B-tree indexes.
* The schema is versioned in ``schema_version`` and changed only by ``migrate`` (``dicomweb-origin migrate``):
  each migration runs in its own transaction under ``pg_advisory_xact_lock``, so running it twice or from two
  processes at once is safe. A server refuses to open an index whose schema is older or newer than its own.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import orjson

from ..errors import SeriesInOtherStudy
from ..model import InstanceRecord, StoredInstance
from .backends import BackendUnavailable
from .base import Condition, ItemCondition, SearchPage, SearchQuery
from .rows import search_matches
from .sqlite import _SERIES_COLUMNS, _STUDY_COLUMNS, column_value, fold, record_from_json, record_to_json

try:
    import psycopg
    from psycopg_pool import ConnectionPool
except ImportError as missing:  # pragma: no cover - the backends table names the package to install
    raise ImportError("the PostgreSQL index needs psycopg: pip install 'dicomweb-origin[postgresql]'") from missing


class SchemaOutdated(BackendUnavailable):
    """The database's schema is not the one this server speaks: run ``dicomweb-origin migrate``."""


_T = TypeVar("_T")

# One advisory lock key for every schema change ("DWOM" as an integer).
_LOCK_KEY = 0x44574F4D

# Each entry migrates the schema from version i to i + 1, in one transaction. Never edit a released entry:
# append one. Study and series rows are updated per stored instance (their counts): fillfactor leaves room on
# the page for HOT updates (no index touched, the old version pruned in place).
MIGRATIONS: list[str] = [
    """
    CREATE TABLE study (
        study_uid text COLLATE "C" PRIMARY KEY,
        patient_id text COLLATE "C", patient_name text COLLATE "C", patient_birth_date text COLLATE "C",
        patient_sex text COLLATE "C", study_date text COLLATE "C", study_time text COLLATE "C",
        accession_number text COLLATE "C", study_id text COLLATE "C", study_description text COLLATE "C",
        referring_physician_name text COLLATE "C",
        patient_name_folded text COLLATE "C", referring_physician_name_folded text COLLATE "C",
        number_of_series integer NOT NULL DEFAULT 0,
        number_of_instances integer NOT NULL DEFAULT 0,
        attributes bytea NOT NULL,
        keys jsonb NOT NULL,
        created_at double precision NOT NULL
    ) WITH (fillfactor = 70);
    CREATE TABLE series (
        series_uid text COLLATE "C" PRIMARY KEY,
        study_uid text COLLATE "C" NOT NULL REFERENCES study(study_uid),
        modality text COLLATE "C", series_number integer, series_description text COLLATE "C",
        series_date text COLLATE "C", series_time text COLLATE "C",
        number_of_instances integer NOT NULL DEFAULT 0,
        attributes bytea NOT NULL,
        keys jsonb NOT NULL,
        created_at double precision NOT NULL
    ) WITH (fillfactor = 70);
    CREATE TABLE instance (
        instance_uid text COLLATE "C" PRIMARY KEY,
        series_uid text COLLATE "C" NOT NULL REFERENCES series(series_uid),
        study_uid text COLLATE "C" NOT NULL REFERENCES study(study_uid),
        sop_class_uid text COLLATE "C" NOT NULL,
        instance_number integer,
        transfer_syntax_uid text COLLATE "C" NOT NULL,
        number_of_frames integer NOT NULL,
        size bigint NOT NULL,
        digest text NOT NULL,
        record bytea NOT NULL,
        revision bigint NOT NULL,
        display_pending boolean NOT NULL,
        metadata bytea NOT NULL,
        attributes bytea NOT NULL,
        keys jsonb NOT NULL,
        stored_at double precision NOT NULL
    );
    CREATE TABLE tombstone (
        study_uid text COLLATE "C" NOT NULL, series_uid text COLLATE "C" NOT NULL DEFAULT '',
        instance_uid text COLLATE "C" NOT NULL DEFAULT '',
        removed_at double precision NOT NULL,
        PRIMARY KEY (study_uid, series_uid, instance_uid)
    );
    CREATE SEQUENCE record_revision;
    CREATE INDEX series_by_study ON series(study_uid, series_number, series_uid);
    CREATE INDEX instance_by_series ON instance(study_uid, series_uid, instance_number, instance_uid);
    CREATE INDEX instance_by_series_uid ON instance(series_uid);
    CREATE INDEX instance_display_pending ON instance(instance_uid) WHERE display_pending;
    CREATE INDEX study_by_date ON study(study_date DESC NULLS LAST, study_time DESC NULLS LAST, study_uid);
    CREATE INDEX study_by_patient_id ON study(patient_id);
    CREATE INDEX study_by_patient_name ON study(patient_name_folded);
    CREATE INDEX study_by_accession ON study(accession_number);
    CREATE INDEX study_by_study_id ON study(study_id);
    CREATE INDEX series_by_modality ON series(modality, study_uid);
    CREATE INDEX instance_by_class ON instance(sop_class_uid, study_uid);
    CREATE INDEX study_keys ON study USING gin (keys jsonb_path_ops);
    CREATE INDEX series_keys ON series USING gin (keys jsonb_path_ops);
    CREATE INDEX instance_keys ON instance USING gin (keys jsonb_path_ops);
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


def _connect(url: str) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(url, autocommit=False, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise BackendUnavailable(f"cannot connect to the PostgreSQL index {_redacted(url)}: {exc}".strip()) from exc


def schema_version(conn: psycopg.Connection[Any]) -> int:
    """0 for an empty database."""
    exists = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return 0
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def migrate(url: str) -> tuple[int, int]:
    """Create or upgrade the schema; return (version before, version after). Safe to run concurrently."""
    with _connect(url) as conn:
        before = schema_version(conn)
        conn.rollback()
        for number, script in enumerate(MIGRATIONS, start=1):
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY,"
                             " applied_at timestamptz NOT NULL DEFAULT now())")
                if schema_version(conn) >= number:
                    continue  # another process (or an earlier run) applied it
                conn.execute(script)
                conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (number,))
        after = schema_version(conn)
        conn.commit()
    return before, after


# -- match keys, computed at ingest ------------------------------------------------------------------


def match_keys(attributes: dict[str, Any]) -> dict[str, list[Any]]:
    """Every attribute's values as stored for matching: PN folded (Alphabetic group), items as nested keys."""
    keys: dict[str, list[Any]] = {}
    for tag, element in attributes.items():
        if not isinstance(element, dict):
            continue
        values = element.get("Value")
        if not values:
            continue
        out: list[Any] = []
        for value in values:
            if isinstance(value, dict):
                if element.get("vr") == "PN":
                    folded = fold(_text(value.get("Alphabetic")))
                    if folded is not None:
                        out.append(folded)
                else:
                    out.append(match_keys(value))
            elif isinstance(value, str):
                out.append(_text(value))
            elif value is not None:
                out.append(value)
        if out:
            keys[tag] = out
    return keys


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


class PostgresIndex:
    """Index backed by a PostgreSQL database shared by any number of server processes."""

    def __init__(self, url: str, min_size: int = 1, max_size: int = 16, cache_size: int = 20_000) -> None:
        self.url = url
        with _connect(url) as conn:
            version = schema_version(conn)
        if version != SCHEMA_VERSION:
            state = "has no schema" if version == 0 else f"has schema version {version}"
            hint = ("this server is older than the database" if version > SCHEMA_VERSION
                    else f"run `dicomweb-origin migrate --index {_redacted(url)}` first")
            raise SchemaOutdated(f"the PostgreSQL index {state}, this server needs {SCHEMA_VERSION}: {hint}")
        self._pool: ConnectionPool[Any] = ConnectionPool(url, min_size=min_size, max_size=max_size, open=True,
                                                          kwargs={"autocommit": False}, name="dicomweb-index")
        # Parsed records by (uid, revision): a record rewritten by any process has a new revision.
        self._cache: OrderedDict[tuple[str, int], InstanceRecord] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection inside one transaction: committed on success, rolled back on error."""
        with self._pool.connection() as conn:
            yield conn

    # -- records ----------------------------------------------------------------------------------

    def _record(self, uid: str, revision: int, blob: bytes) -> InstanceRecord:
        key = (uid, revision)
        with self._cache_lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        record = record_from_json(blob)
        with self._cache_lock:
            self._cache[key] = record
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return record

    def add(self, stored: StoredInstance) -> InstanceRecord | None:
        def insert(conn: psycopg.Connection[Any]) -> InstanceRecord | None:
            existing = self._insert(conn, stored, update_levels=False)
            if existing is not None:
                raise _Rollback(existing)  # nothing of this instance's study or series stays either
            return None

        try:
            return self._write(insert)
        except _Rollback as taken:
            return taken.record

    def replace(self, stored: StoredInstance) -> InstanceRecord | None:
        def replace(conn: psycopg.Connection[Any]) -> InstanceRecord | None:
            row = conn.execute("SELECT instance_uid, revision, record FROM instance WHERE instance_uid = %s"
                               " FOR UPDATE", (stored.record.instance_uid,)).fetchone()
            old = self._record(row[0], row[1], row[2]) if row is not None else None
            if old is not None:
                self._delete_rows(conn, [old.instance_uid])
            # The corrected instance's study and series attributes win (a corrected PatientName, say).
            if self._insert(conn, stored, update_levels=True) is not None:  # a concurrent replace inserted it
                raise _Retry(stored.record.instance_uid)
            return old

        return self._write(replace)

    def _write(self, work: Callable[[psycopg.Connection[Any]], _T]) -> _T:
        """Run ``work(conn)`` in one transaction; again when it lost a race (deadlock, a parent row deleted)."""
        for attempt in range(5):
            try:
                with self._conn() as conn, conn.transaction():
                    return work(conn)
            except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure,
                    psycopg.errors.ForeignKeyViolation, _Retry):
                if attempt == 4:
                    raise
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    def _insert(self, conn: psycopg.Connection[Any], stored: StoredInstance,
                update_levels: bool) -> InstanceRecord | None:
        """Insert one instance (and its study and series when new); the stored record when the UID is taken.

        ``update_levels``: the study and series rows take this instance's attributes (replace).
        """
        record = stored.record
        now = time.time()
        study = stored.study_attributes
        study_columns = [*_STUDY_COLUMNS.values(), "patient_name_folded", "referring_physician_name_folded",
                         "attributes", "keys"]
        on_study = (f"DO UPDATE SET {', '.join(f'{c} = EXCLUDED.{c}' for c in study_columns)}"
                    if update_levels else "DO NOTHING")
        conn.execute(
            f"INSERT INTO study (study_uid, {', '.join(study_columns)}, created_at)"
            f" VALUES (%s, {', '.join(['%s'] * len(study_columns))}, %s) ON CONFLICT (study_uid) {on_study}",
            (record.study_uid, *(_text(column_value(study, t)) for t in _STUDY_COLUMNS),
             fold(_text(column_value(study, "00100010"))), fold(_text(column_value(study, "00080090"))),
             orjson.dumps(study), _json(match_keys(study)), now),
        )
        series = stored.series_attributes
        new_series = conn.execute(
            f"INSERT INTO series (series_uid, study_uid, {', '.join(_SERIES_COLUMNS.values())}, attributes, keys,"
            f" created_at) VALUES (%s, %s, {', '.join(['%s'] * len(_SERIES_COLUMNS))}, %s, %s, %s)"
            " ON CONFLICT (series_uid) DO NOTHING RETURNING series_uid",
            (record.series_uid, record.study_uid, *(_series_value(series, t) for t in _SERIES_COLUMNS),
             orjson.dumps(series), _json(match_keys(series)), now),
        ).fetchone() is not None
        if not new_series and update_levels:
            columns = [*_SERIES_COLUMNS.values(), "attributes", "keys"]
            conn.execute(f"UPDATE series SET {', '.join(c + ' = %s' for c in columns)}"
                         " WHERE series_uid = %s AND study_uid = %s",
                         (*(_series_value(series, t) for t in _SERIES_COLUMNS), orjson.dumps(series),
                          _json(match_keys(series)), record.series_uid, record.study_uid))
        if not new_series:
            owner = conn.execute("SELECT study_uid FROM series WHERE series_uid = %s", (record.series_uid,)).fetchone()
            if owner is not None and owner[0] != record.study_uid:
                raise SeriesInOtherStudy(record.series_uid, owner[0], record.study_uid)
        inserted = conn.execute(
            "INSERT INTO instance (instance_uid, series_uid, study_uid, sop_class_uid, instance_number,"
            " transfer_syntax_uid, number_of_frames, size, digest, record, revision, display_pending, metadata,"
            " attributes, keys, stored_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
            " nextval('record_revision'), %s, %s, %s, %s, %s)"
            " ON CONFLICT (instance_uid) DO NOTHING RETURNING instance_uid",
            (record.instance_uid, record.series_uid, record.study_uid, record.sop_class_uid,
             record.instance_number, record.transfer_syntax_uid, record.number_of_frames, record.size,
             record.digest, record_to_json(record), _pending(record), stored.metadata,
             orjson.dumps(stored.instance_attributes), _json(match_keys(stored.instance_attributes)), now),
        ).fetchone()
        if inserted is None:
            row = conn.execute("SELECT instance_uid, revision, record FROM instance WHERE instance_uid = %s",
                               (record.instance_uid,)).fetchone()
            if row is None:  # removed since the conflict was seen: try again
                raise _Retry(record.instance_uid)
            return self._record(row[0], row[1], row[2])
        # Counts for Search (NumberOfStudyRelatedSeries/Instances, NumberOfSeriesRelatedInstances).
        conn.execute("UPDATE series SET number_of_instances = number_of_instances + 1 WHERE series_uid = %s",
                     (record.series_uid,))
        conn.execute("UPDATE study SET number_of_instances = number_of_instances + 1,"
                     " number_of_series = number_of_series + %s WHERE study_uid = %s",
                     (1 if new_series else 0, record.study_uid))
        return None

    def remove(self, study_uid: str, series_uid: str | None = None,
               instance_uid: str | None = None) -> list[InstanceRecord]:
        sql, args = "SELECT instance_uid, revision, record FROM instance WHERE study_uid = %s", [study_uid]
        if series_uid is not None:
            sql, args = sql + " AND series_uid = %s", [*args, series_uid]
        if instance_uid is not None:
            sql, args = sql + " AND instance_uid = %s", [*args, instance_uid]

        def remove(conn: psycopg.Connection[Any]) -> list[InstanceRecord]:
            rows = conn.execute(sql + " ORDER BY instance_uid FOR UPDATE", args).fetchall()
            gone = [self._record(uid, revision, blob) for uid, revision, blob in rows]
            self._delete_rows(conn, [r.instance_uid for r in gone])
            tombstones = {(study_uid, "", "")} if gone else set()
            for r in gone:
                tombstones |= {(r.study_uid, r.series_uid, ""), (r.study_uid, r.series_uid, r.instance_uid)}
            now = time.time()
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO tombstone (study_uid, series_uid, instance_uid, removed_at)"
                                " VALUES (%s, %s, %s, %s) ON CONFLICT (study_uid, series_uid, instance_uid)"
                                " DO UPDATE SET removed_at = EXCLUDED.removed_at",
                                [(*t, now) for t in sorted(tombstones)])
            return gone

        result: list[InstanceRecord] = self._write(remove)
        return result

    def _delete_rows(self, conn: psycopg.Connection[Any], instance_uids: list[str]) -> None:
        """Delete instance rows, keep the counts, drop series and studies left empty (caller's transaction)."""
        if not instance_uids:
            return
        deleted = conn.execute("DELETE FROM instance WHERE instance_uid = ANY(%s) RETURNING series_uid, study_uid",
                               (instance_uids,)).fetchall()
        per_series: dict[tuple[str, str], int] = {}
        for series_uid, study_uid in deleted:
            per_series[(series_uid, study_uid)] = per_series.get((series_uid, study_uid), 0) + 1
        for (series_uid, _study), n in sorted(per_series.items()):  # series before study, as add locks them
            conn.execute("UPDATE series SET number_of_instances = number_of_instances - %s WHERE series_uid = %s",
                         (n, series_uid))
        per_study: dict[str, int] = {}
        for (_series, study_uid), n in per_series.items():
            per_study[study_uid] = per_study.get(study_uid, 0) + n
        for study_uid, n in sorted(per_study.items()):
            conn.execute("UPDATE study SET number_of_instances = number_of_instances - %s WHERE study_uid = %s",
                         (n, study_uid))
        for series_uid, study_uid in sorted(per_series):
            if conn.execute("DELETE FROM series WHERE series_uid = %s AND number_of_instances <= 0",
                            (series_uid,)).rowcount:
                conn.execute("UPDATE study SET number_of_series = number_of_series - 1 WHERE study_uid = %s",
                             (study_uid,))
        for study_uid in sorted(per_study):
            conn.execute("DELETE FROM study WHERE study_uid = %s AND number_of_series <= 0", (study_uid,))

    def removed(self, study_uid: str, series_uid: str | None = None, instance_uid: str | None = None) -> bool:
        if instance_uid is not None:
            live = "SELECT 1 FROM instance WHERE instance_uid = %s", (instance_uid,)
        elif series_uid is not None:
            live = "SELECT 1 FROM series WHERE series_uid = %s", (series_uid,)
        else:
            live = "SELECT 1 FROM study WHERE study_uid = %s", (study_uid,)
        with self._conn() as conn:
            if conn.execute("SELECT 1 FROM tombstone WHERE study_uid = %s AND series_uid = %s AND instance_uid = %s",
                            (study_uid, series_uid or "", instance_uid or "")).fetchone() is None:
                return False
            return conn.execute(*live).fetchone() is None

    def records(self, after: str = "", limit: int = 1000) -> list[InstanceRecord]:
        with self._conn() as conn:
            rows = conn.execute("SELECT instance_uid, revision, record FROM instance WHERE instance_uid > %s"
                                " ORDER BY instance_uid LIMIT %s", (after, limit)).fetchall()
        return [self._record(uid, revision, blob) for uid, revision, blob in rows]

    def get(self, instance_uid: str) -> InstanceRecord | None:
        with self._conn() as conn:
            row = conn.execute("SELECT instance_uid, revision, record FROM instance WHERE instance_uid = %s",
                               (instance_uid,)).fetchone()
        return None if row is None else self._record(row[0], row[1], row[2])

    def instances(self, study_uid: str, series_uid: str | None = None) -> list[InstanceRecord]:
        sql = ("SELECT i.instance_uid, i.revision, i.record FROM instance i JOIN series s ON s.series_uid = i.series_uid"
               " WHERE i.study_uid = %s")
        args: list[str] = [study_uid]
        if series_uid is not None:
            sql += " AND i.series_uid = %s"
            args.append(series_uid)
        sql += (" ORDER BY s.series_number NULLS FIRST, i.series_uid, i.instance_number NULLS FIRST,"
                " i.instance_uid")
        with self._conn() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [self._record(uid, revision, blob) for uid, revision, blob in rows]

    def metadata(self, records: Sequence[InstanceRecord]) -> list[bytes]:
        if not records:
            return []
        uids = [r.instance_uid for r in records]
        with self._conn() as conn:
            rows = conn.execute("SELECT instance_uid, metadata FROM instance WHERE instance_uid = ANY(%s)",
                                (uids,)).fetchall()
        found = {uid: bytes(blob) for uid, blob in rows}
        return [found[uid] for uid in uids]

    def count(self) -> int:
        with self._conn() as conn:
            row = conn.execute("SELECT count(*) FROM instance").fetchone()
        return int(row[0]) if row else 0

    def records_missing_display(self, after: str = "", limit: int = 100) -> list[InstanceRecord]:
        with self._conn() as conn:
            rows = conn.execute("SELECT instance_uid, revision, record FROM instance WHERE display_pending"
                                " AND instance_uid > %s ORDER BY instance_uid LIMIT %s", (after, limit)).fetchall()
        return [self._record(uid, revision, blob) for uid, revision, blob in rows]

    def set_display(self, record: InstanceRecord) -> None:
        with self._conn() as conn:
            conn.execute("UPDATE instance SET record = %s, revision = nextval('record_revision'),"
                         " display_pending = %s WHERE instance_uid = %s",
                         (record_to_json(record), _pending(record), record.instance_uid))

    def close(self) -> None:
        self._pool.close()

    # -- Search (PS3.18 §10.6) ----------------------------------------------------------------------

    def search(self, query: SearchQuery) -> SearchPage:
        where, args = [], []
        for condition in query.conditions:
            sql, values = _condition_sql(condition, query.level)
            where.append(sql)
            args.extend(values)
        clause = " WHERE " + " AND ".join(where) if where else ""
        with self._conn() as conn:
            row = conn.execute(f"SELECT count(*) FROM {_FROM[query.level]}{clause}", args).fetchone()
            total = int(row[0]) if row else 0
            if total <= query.offset or query.limit == 0:
                return SearchPage([], total)
            sql = (f"SELECT {_SELECT[query.level]} FROM {_FROM[query.level]}{clause}"
                   f" ORDER BY {_ORDER[query.level]} LIMIT %s OFFSET %s")
            rows = conn.execute(sql, [*args, query.limit, query.offset]).fetchall()
            studies, matches = search_matches(rows, query.level)
            for tag, derived_sql in _DERIVED.items():
                if tag in query.computed and studies:
                    found: dict[str, set[str]] = {}
                    for study_uid, value in conn.execute(derived_sql, (list(studies),)):
                        found.setdefault(study_uid, set()).add(value)
                    for match in matches:
                        derived = found.get(match["0020000D"]["Value"][0])
                        if derived:  # never present without a value: OHIF rejects the whole list
                            match[tag] = {"vr": _DERIVED_VR[tag], "Value": sorted(derived)}
        return SearchPage(matches, total)


class _Retry(Exception):
    """The transaction saw a concurrent write half-way: roll back and run it again."""


class _Rollback(Exception):
    """Leaves the transaction of ``add`` (rolled back) carrying the record already stored."""

    def __init__(self, record: InstanceRecord) -> None:
        super().__init__(record.instance_uid)
        self.record = record


def _pending(record: InstanceRecord) -> bool:
    return record.pixel is not None and record.display is None


def _text(value: Any) -> str | None:
    """A column or match-key string; NUL, which PostgreSQL text and JSONB cannot hold, is dropped."""
    return None if value is None else str(value).replace("\x00", "")


def _series_value(attributes: dict[str, Any], tag: str) -> Any:
    value = column_value(attributes, tag)
    if tag == "00200011":  # SeriesNumber (IS): an integer column
        try:
            return None if value is None else int(value)
        except (TypeError, ValueError):
            return None
    return _text(value)


def _redacted(url: str) -> str:
    """The URL without a password, for messages."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        credentials, _, host = rest.rpartition("@")
        return f"{scheme}{sep}{credentials.split(':')[0]}@{host}"
    return url


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
# Searches are idempotent (§8.3.4.4): the same order as SqliteIndex (whose NULLs sort first).
_STUDY_ORDER = "st.study_date DESC NULLS LAST, st.study_time DESC NULLS LAST, st.study_uid"
_ORDER: dict[str, str] = {
    "study": _STUDY_ORDER,
    "series": _STUDY_ORDER + ", se.series_number NULLS FIRST, se.series_uid",
    "instance": _STUDY_ORDER + ", se.series_number NULLS FIRST, se.series_uid, i.instance_number NULLS FIRST,"
                               " i.instance_uid",
}
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
_NUMERIC_COLUMNS = {"series_number", "instance_number"}
_DERIVED_SOURCE: dict[str, tuple[str, str]] = {
    "00080061": ("series", "modality"),  # ModalitiesInStudy
    "00080062": ("instance", "sop_class_uid"),  # SOPClassesInStudy
}
_DERIVED_VR = {"00080061": "CS", "00080062": "UI"}
_DERIVED = {
    tag: f"SELECT DISTINCT study_uid, {column} FROM {table} WHERE study_uid = ANY(%s) AND {column} IS NOT NULL"
    for tag, (table, column) in _DERIVED_SOURCE.items()
}


def _tag(tag: str) -> str:
    if len(tag) != 8 or any(c not in "0123456789ABCDEF" for c in tag):
        raise ValueError(f"not a tag: {tag!r}")
    return tag


def _level_of(condition: Condition | ItemCondition) -> str:
    if condition.level not in _ALIAS:
        raise ValueError(f"condition on {condition.tag} names no level")
    return condition.level


def _condition_sql(condition: Condition | ItemCondition, level: str) -> tuple[str, list[Any]]:
    """One SQL predicate for a condition on an entity of ``level`` (aliases st, se, i)."""
    if isinstance(condition, ItemCondition):
        alias = _ALIAS[_level_of(condition)]
        parts, args = [], []
        for inner in condition.conditions:
            sql, values = _json_any("item.value", inner, "v")
            parts.append(sql)
            args.extend(values)
        source = f"jsonb_array_elements(CASE jsonb_typeof({alias}.keys -> '{_tag(condition.tag)}') WHEN 'array'" \
                 f" THEN {alias}.keys -> '{_tag(condition.tag)}' ELSE '[]'::jsonb END)"
        return f"EXISTS (SELECT 1 FROM {source} AS item WHERE {' AND '.join(parts)})", args
    tag = condition.tag
    if tag in _DERIVED_SOURCE:
        table, column = _DERIVED_SOURCE[tag]
        sql, args = _predicate(f"x.{column}", condition, numeric=False)
        return f"st.study_uid IN (SELECT x.study_uid FROM {table} x WHERE {sql})", args
    if tag == "0020000D" and level != "study":
        return _predicate(f"{_ALIAS[level]}.study_uid", condition, numeric=False)
    if tag == "0020000E" and level == "instance":
        return _predicate("i.series_uid", condition, numeric=False)
    if condition.time_tag is not None:
        combined = f"({_scalar(tag, condition)} || coalesce({_scalar(condition.time_tag, condition)}, ''))"
        return _predicate(combined, condition, numeric=False)
    if tag in _COLUMN_FIELDS:
        field_level, column = _COLUMN_FIELDS[tag]
        return _predicate(f"{_ALIAS[field_level]}.{column}", condition, numeric=column in _NUMERIC_COLUMNS)
    return _json_any(f"{_ALIAS[_level_of(condition)]}.keys", condition, "v")


def _scalar(tag: str, condition: Condition) -> str:
    """The first value of a single-valued attribute (the date or time of a combined range)."""
    if tag in _COLUMN_FIELDS:
        field_level, column = _COLUMN_FIELDS[tag]
        return f"{_ALIAS[field_level]}.{column}"
    return f"(({_ALIAS[_level_of(condition)]}.keys -> '{_tag(tag)}' ->> 0) COLLATE \"C\")"


def _json_any(source: str, condition: Condition, alias: str) -> tuple[str, list[Any]]:
    """Any value of an attribute kept in a keys object matches (PS3.4 C.2.2.3)."""
    path = f"{source} -> '{_tag(condition.tag)}'"
    elements = f"jsonb_array_elements(CASE jsonb_typeof({path}) WHEN 'array' THEN {path} ELSE '[]'::jsonb END)"
    if condition.kind == "equal" and source.endswith(".keys"):
        # Containment ({"tag": [value]}): answered from the GIN index on keys, any value of the attribute.
        values = [fold(_text(v)) if condition.person_name else _text(v) if isinstance(v, str) else v
                  for v in condition.values]
        return "(" + " OR ".join(f"{source} @> %s::jsonb" for _ in values) + ")", \
            [_json({_tag(condition.tag): [v]}) for v in values]
    if any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in condition.values):
        sql, args = _predicate(f"{alias}.value", condition, numeric=False, as_json=True)
    else:
        sql, args = _predicate(f"(({alias}.value #>> '{{}}') COLLATE \"C\")", condition, numeric=False)
        sql = f"jsonb_typeof({alias}.value) <> 'object' AND {sql}"
    return f"EXISTS (SELECT 1 FROM {elements} AS {alias} WHERE {sql})", args


def _like(pattern: str) -> str:
    """A DICOM wildcard pattern (``*``, ``?``, no escapes) as a LIKE pattern: ``%``, ``_``, ``\\`` literal."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _predicate(expr: str, condition: Condition, numeric: bool, as_json: bool = False) -> tuple[str, list[Any]]:
    values = [_text(v) if isinstance(v, str) else v for v in condition.values]
    if condition.person_name:
        values = [fold(v) for v in values]
    if condition.kind == "equal":
        if as_json:  # a number against JSON numbers: 2 equals 2.0 (numeric jsonb comparison)
            return "(" + " OR ".join(f"{expr} = %s::jsonb" for _ in values) + ")", [_json(v) for v in values]
        if numeric:
            values = [_int_or_none(v) for v in values]
            values = [v for v in values if v is not None] or [None]
        else:
            values = [str(v) for v in values]
        if len(values) == 1:
            return f"{expr} = %s", values
        return f"{expr} = ANY(%s)", [values]
    if condition.kind == "pattern":
        return "(" + " OR ".join(f"{expr} LIKE %s" for _ in values) + ")", [_like(str(v)) for v in values]
    if condition.kind == "range":
        low, high = values
        parts, args = [], []
        if low:
            parts.append(f"{expr} >= %s")
            args.append(low)
        if high:
            parts.append(f"{expr} <= %s")
            args.append(high)
        return (" AND ".join(parts) or f"{expr} IS NOT NULL"), args
    if condition.kind == "fuzzy":
        likes = [_like(str(v)) for v in values]
        args = [p for text in likes for p in (f"{text}%", f"%^{text}%", f"% {text}%")]
        return "(" + " OR ".join(f"{expr} LIKE %s" for _ in args) + ")", args
    raise ValueError(f"unknown condition kind {condition.kind!r}")


def _int_or_none(value: Any) -> int | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() else None
