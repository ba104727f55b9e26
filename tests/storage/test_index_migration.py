"""Archives written before the counters and the order's indexes upgrade in place, losing nothing.

An archive is written, then taken back to the schema the previous release left (SQLite version 5, PostgreSQL
version 1: the same tables and rows, without the ``counter`` table, the record revisions and the new indexes);
that this is exactly the old schema is checked against one built by the old migrations alone. Opening it
(SQLite) or ``dicomweb-origin migrate`` (PostgreSQL) upgrades it: every record, metadata object and search result
is what it was, the counts are right, pending displays are still pending, tombstones still answer, and it
takes new writes.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from pathlib import Path
from typing import Any

from dicomweb_origin.cli import main
from dicomweb_origin.storage.base import Counts, SearchQuery
from dicomweb_origin.storage.sqlite import MIGRATIONS, SqliteIndex
from tests.support.archive import new_postgres_index
from tests.support.postgres import PostgresServer
from tests.support.records import stored


def _write(index: Any) -> None:
    for study, date in (("5.1", "20240101"), ("5.2", None), ("5.3", "20230101")):
        for series in (f"{study}.1", f"{study}.2"):
            for n in (1, 2):
                index.add(stored(study, series, f"{series}.{n}", number=n, series_number=int(series[-1]),
                                 study_date=date, pixel=n == 1))
    index.remove("5.3", "5.3.2")


def _state(index: Any) -> dict[str, Any]:
    """Everything a client can read back."""
    records = index.records()
    return {
        "records": records,
        "metadata": index.metadata(records),
        "instances": {s: index.instances(s) for s in ("5.1", "5.2", "5.3")},
        "search": {level: index.search(SearchQuery(level)).matches for level in ("study", "series", "instance")},
        "pending": [r.instance_uid for r in index.records_missing_display()],
        "removed": (index.removed("5.3", "5.3.2"), index.removed("5.3", "5.3.2", "5.3.2.1"), index.removed("5.3")),
    }


def _schema(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    return sorted((name, " ".join(sql.split())) for name, sql in
                  conn.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL"))


def test_a_version_5_sqlite_archive_upgrades_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    index = SqliteIndex(path)
    _write(index)
    before = _state(index)
    index.close()
    conn = sqlite3.connect(path, isolation_level=None)  # back to version 5, as the previous release left it
    for statement in ("DROP TABLE counter", "DROP INDEX instance_in_series", "DROP INDEX instance_by_study",
                      "DROP INDEX study_by_referring", "DROP INDEX study_by_study_id", "DROP INDEX study_by_patient_name",
                      "CREATE INDEX study_by_patient_name ON study(patient_name_folded)",
                      "ALTER TABLE instance DROP COLUMN revision", "DROP TABLE IF EXISTS sqlite_stat1",
                      "CREATE INDEX instance_by_series ON instance(study_uid, series_uid, instance_number, instance_uid)",
                      "PRAGMA user_version = 5"):
        conn.execute(statement)
    old = sqlite3.connect(tmp_path / "old.sqlite", isolation_level=None)
    old.create_function("dicomweb_fold", 1, lambda v: v)
    for script in MIGRATIONS[:5]:
        for statement in script.split(";"):
            if statement.strip():
                old.execute(statement)
    assert _schema(conn) == _schema(old)
    conn.close()

    upgraded = SqliteIndex(path)
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    _same_and_writable(upgraded, before)


def test_a_version_1_postgresql_index_upgrades_with_migrate(postgres: PostgresServer) -> None:
    from dicomweb_origin.storage.postgres import MIGRATIONS as PG_MIGRATIONS
    from dicomweb_origin.storage.postgres import SCHEMA_VERSION, PostgresIndex

    url = new_postgres_index(postgres)
    index = PostgresIndex(url)
    _write(index)
    before = _state(index)
    index.close()
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:  # back to version 1, as the previous release left it
        conn.execute("ALTER TABLE instance ADD COLUMN display_pending boolean NOT NULL DEFAULT false")
        conn.execute("UPDATE instance SET display_pending = true WHERE instance_uid IN"
                     " (SELECT instance_uid FROM display_pending)")
        conn.execute("ALTER TABLE instance ALTER COLUMN display_pending DROP DEFAULT")
        for statement in ("DROP TABLE counter", "DROP TABLE display_pending", "DROP INDEX instance_in_series",
                          "DROP INDEX instance_by_study", "DROP INDEX series_by_study", "DROP INDEX study_by_referring",
                          "CREATE INDEX instance_display_pending ON instance(instance_uid) WHERE display_pending",
                          "CREATE INDEX series_by_study ON series(study_uid, series_number, series_uid)",
                          "CREATE INDEX instance_by_series ON instance(study_uid, series_uid, instance_number,"
                          " instance_uid)",
                          "CREATE INDEX instance_by_series_uid ON instance(series_uid)",
                          "DELETE FROM schema_version WHERE version > 1"):
            conn.execute(statement)
        schema = _pg_schema(conn)
    with psycopg.connect(postgres.url("dicomweb"), autocommit=True) as conn:  # what version 1 alone makes
        name = f"v1_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        conn.execute(f"CREATE SCHEMA {name}")
        conn.execute(f"SET search_path TO {name}")
        conn.execute(PG_MIGRATIONS[0])
        assert _pg_schema(conn) == schema

    assert main(["migrate", "--index", url]) == 0
    upgraded = PostgresIndex(url)
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT max(version) FROM schema_version").fetchone() == (SCHEMA_VERSION,)
    _same_and_writable(upgraded, before)


def _same_and_writable(upgraded: Any, before: dict[str, Any]) -> None:
    """Everything reads back as before the upgrade, the counts are right, and it takes writes."""
    assert _state(upgraded) == before
    assert upgraded.counts() == Counts(3, 5, 10)
    assert upgraded.add(stored("5.4", "5.4.1", "5.4.1.1")) is None
    assert len(upgraded.remove("5.1")) == 4
    assert upgraded.counts() == Counts(3, 4, 7)
    upgraded.close()


def _pg_schema(conn: Any) -> list[tuple[Any, ...]]:
    columns = conn.execute("SELECT table_name, column_name, data_type, is_nullable, collation_name"
                           " FROM information_schema.columns WHERE table_schema = current_schema()"
                           " AND table_name <> 'schema_version' ORDER BY 1, 2").fetchall()
    indexes = conn.execute("SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
                           " AND tablename <> 'schema_version' ORDER BY 1, 2").fetchall()
    return [*columns, *((t, n, d.replace(f" {_schema_of(conn)}.", " ")) for t, n, d in indexes)]


def _schema_of(conn: Any) -> str:
    return str(conn.execute("SELECT current_schema()").fetchone()[0])
