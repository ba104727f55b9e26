"""A PostgreSQL index for several server processes sharing one database (psycopg 3, a connection pool).

The algorithm is ``sql.SqlIndex``'s, as for SQLite; this module holds what is PostgreSQL's own:

* Concurrency: writers run at once. Every write is one transaction of ``INSERT ... ON CONFLICT DO NOTHING``,
  so the same instance stored at once through two processes ends as one row (the second insert waits for the
  first transaction, then sees its row) and the study / series counts stay exact; a transaction that lost a
  race (deadlock, a parent row deleted under it) runs again. Counters are spread over 16 rows.
* Match keys are computed once, at ingest: each level row keeps a ``keys`` JSONB object of every attribute's
  values (person names folded; sequence items as nested objects), with a GIN index answering equality.
* Text columns use ``COLLATE "C"``: byte order of UTF-8, i.e. code-point order, as DICOM range matching and
  the SQLite index compare; LIKE prefix searches then use the B-tree indexes.
* The schema is versioned in ``schema_version`` and changed only by ``migrate`` (``dicomweb-origin migrate``):
  each migration runs in its own transaction under ``pg_advisory_xact_lock``, so running it twice or from two
  processes at once is safe. A server refuses to open an index whose schema is older or newer than its own.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson

from .backends import BackendUnavailable
from .base import Condition
from .records import fold, text
from .sql import Session, SqlIndex
from .sqlsearch import check_tag, predicate

try:
    import psycopg
    from psycopg_pool import ConnectionPool
except ImportError as missing:  # pragma: no cover - the backends table names the package to install
    raise ImportError("the PostgreSQL index needs psycopg: pip install 'dicomweb-origin[postgresql]'") from missing


class SchemaOutdated(BackendUnavailable):
    """The database's schema is not the one this server speaks: run ``dicomweb-origin migrate``."""


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
    # 2: a flat index at any size. Counters of studies, series, instances and changes, in 16 rows
    # each so that concurrent writers seldom wait on one another (their sum is the value); the pending display
    # in a table of its own, as in SQLite; indexes that hold the Search order (NULL first) inside a study and
    # a series, and an instance index by study for its foreign key and SOPClassesInStudy.
    """
    CREATE TABLE counter (
        name text COLLATE "C" NOT NULL, shard integer NOT NULL, value bigint NOT NULL DEFAULT 0,
        PRIMARY KEY (name, shard)
    );
    INSERT INTO counter (name, shard, value)
        SELECT name, shard, 0 FROM unnest(ARRAY['studies', 'series', 'instances', 'changes']) AS name,
        generate_series(0, 15) AS shard;
    UPDATE counter SET value = (SELECT count(*) FROM study) WHERE name = 'studies' AND shard = 0;
    UPDATE counter SET value = (SELECT count(*) FROM series) WHERE name = 'series' AND shard = 0;
    UPDATE counter SET value = (SELECT count(*) FROM instance) WHERE name = 'instances' AND shard = 0;
    CREATE TABLE display_pending (instance_uid text COLLATE "C" PRIMARY KEY);
    INSERT INTO display_pending SELECT instance_uid FROM instance WHERE display_pending;
    DROP INDEX instance_display_pending;
    ALTER TABLE instance DROP COLUMN display_pending;
    DROP INDEX instance_by_series;
    DROP INDEX instance_by_series_uid;
    CREATE INDEX instance_in_series ON instance(series_uid, instance_number NULLS FIRST, instance_uid);
    CREATE INDEX instance_by_study ON instance(study_uid, sop_class_uid);
    DROP INDEX series_by_study;
    CREATE INDEX series_by_study ON series(study_uid, series_number NULLS FIRST, series_uid);
    CREATE INDEX study_by_referring ON study(referring_physician_name_folded);
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


@functools.lru_cache(maxsize=1024)
def _placeholders(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


class PostgresDialect:
    """PostgreSQL's SQL: ``= ANY`` lists, LIKE patterns, explicit NULL order, JSON through the ``keys`` JSONB."""

    name = "postgresql"
    stride = 1024
    shards = 16
    lock = " FOR UPDATE"
    key_columns = True

    def members(self, expr: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"{expr} = ANY(?)", [list(values)]

    def wildcard(self, expr: str, patterns: Sequence[str]) -> tuple[str, list[Any]]:
        return "(" + " OR ".join(f"{expr} LIKE ?" for _ in patterns) + ")", [_like(p) for p in patterns]

    def order(self, column: str, descending: bool) -> str:
        return f"{column} DESC NULLS LAST" if descending else f"{column} NULLS FIRST"

    def distinct(self, alias: str) -> str | None:
        return None  # the planner's incremental sort finishes each study's rows

    def unindexed(self, expr: str) -> str:
        return expr  # the planner weighs LIMIT itself, from its statistics

    def document(self, alias: str) -> str:
        return f"{alias}.keys"

    def any_value(self, document: str, condition: Condition) -> tuple[str, list[Any]]:
        tag = check_tag(condition.tag)
        if condition.kind == "equal" and document.endswith(".keys"):
            # Containment ({"tag": [value]}): answered from the GIN index on keys, any value of the attribute.
            values = [fold(text(v)) if condition.person_name else text(v) if isinstance(v, str) else v
                      for v in condition.values]
            return "(" + " OR ".join(f"{document} @> CAST(? AS jsonb)" for _ in values) + ")", \
                [_json({tag: [v]}) for v in values]
        path = f"{document} -> '{tag}'"
        elements = f"jsonb_array_elements(CASE jsonb_typeof({path}) WHEN 'array' THEN {path} ELSE '[]'::jsonb END)"
        numbers = [v for v in condition.values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if numbers and condition.kind == "equal":  # 2 equals 2.0: numeric jsonb comparison
            sql = "(" + " OR ".join("v.value = CAST(? AS jsonb)" for _ in numbers) + ")"
            args: list[Any] = [_json(v) for v in numbers]
        else:
            sql, args = predicate(self, "((v.value #>> '{}') COLLATE \"C\")", condition)
            sql = f"jsonb_typeof(v.value) <> 'object' AND {sql}"
        return f"EXISTS (SELECT 1 FROM {elements} AS v WHERE {sql})", args

    def first_value(self, document: str, tag: str) -> str:
        return f"(({document} -> '{tag}' ->> 0) COLLATE \"C\")"

    def items(self, document: str, tag: str) -> str:
        path = f"{document} -> '{tag}'"
        return f"jsonb_array_elements(CASE jsonb_typeof({path}) WHEN 'array' THEN {path} ELSE '[]'::jsonb END) AS item"


def _like(pattern: str) -> str:
    """A DICOM wildcard pattern (``*``, ``?``, no escapes) as a LIKE pattern: ``%``, ``_``, ``\\`` literal."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


class PostgresIndex(SqlIndex):
    """Index backed by a PostgreSQL database shared by any number of server processes."""

    revision_expr = "nextval('record_revision')"
    _retryable = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure,
                  psycopg.errors.ForeignKeyViolation)

    def __init__(self, url: str, min_size: int = 1, max_size: int = 16, cache_size: int = 20_000,
                 stride: int | None = None) -> None:
        super().__init__(PostgresDialect(), cache_size, stride)
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

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with self._pool.connection() as conn:
            yield Session(conn, _placeholders)

    @contextmanager
    def _snapshot(self) -> Iterator[Session]:
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield Session(conn, _placeholders)

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        with self._pool.connection() as conn, conn.transaction():
            yield Session(conn, _placeholders)

    def close(self) -> None:
        self._pool.close()


def _redacted(url: str) -> str:
    """The URL without a password, for messages."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        credentials, _, host = rest.rpartition("@")
        return f"{scheme}{sep}{credentials.split(':')[0]}@{host}"
    return url
