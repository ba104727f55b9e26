"""DELETE cascades completely, and the kept counts stay the rows' counts, on SQLite and PostgreSQL.

The tables are read directly after each removal: no instance, series, study or pending-display row of what was
deleted is left, a tombstone is left for each resource, the study and series counts and the index's counters
equal what the rows hold, and (SQLite) no foreign key dangles. The memory index is held to the same counts.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dicomweb_origin.storage.base import Counts, SearchQuery
from dicomweb_origin.storage.inmemory import MemoryIndex
from dicomweb_origin.storage.sqlite import SqliteIndex
from tests.support.archive import new_postgres_index
from tests.support.records import stored


class Tables:
    """SQL straight to the index's database, beside the index object."""

    def __init__(self, kind: str, target: str) -> None:
        self.kind = kind
        if kind == "sqlite":
            self.conn: Any = sqlite3.connect(target)
        else:
            import psycopg

            self.conn = psycopg.connect(target, autocommit=True)

    def one(self, sql: str, *args: Any) -> Any:
        if self.kind == "postgresql":
            sql = sql.replace("?", "%s")
        return self.conn.execute(sql, args).fetchone()[0]

    def rows(self, table: str, column: str, uid: str) -> int:
        return int(self.one(f"SELECT count(*) FROM {table} WHERE {column} = ?", uid))

    def check(self, index: Any) -> None:
        """The kept counts are the rows' counts."""
        studies, series, instances = (int(self.one(f"SELECT count(*) FROM {t}")) for t in ("study", "series", "instance"))
        assert index.counts() == Counts(studies, series, instances)
        assert self.one("SELECT count(*) FROM series se WHERE number_of_instances <>"
                        " (SELECT count(*) FROM instance i WHERE i.series_uid = se.series_uid)") == 0
        assert self.one("SELECT count(*) FROM study st WHERE number_of_instances <>"
                        " (SELECT count(*) FROM instance i WHERE i.study_uid = st.study_uid) OR number_of_series <>"
                        " (SELECT count(*) FROM series se WHERE se.study_uid = st.study_uid)") == 0
        assert self.one("SELECT count(*) FROM display_pending p WHERE NOT EXISTS"
                        " (SELECT 1 FROM instance i WHERE i.instance_uid = p.instance_uid)") == 0
        if self.kind == "sqlite":
            assert self.conn.execute("PRAGMA foreign_key_check").fetchall() == []

    def close(self) -> None:
        self.conn.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, Tables]]:
    if request.param == "sqlite":
        index: Any = SqliteIndex(tmp_path / "index.sqlite")
        tables = Tables("sqlite", str(tmp_path / "index.sqlite"))
    else:
        from dicomweb_origin.storage.postgres import PostgresIndex

        url = new_postgres_index(request.getfixturevalue("postgres"))
        index, tables = PostgresIndex(url), Tables("postgresql", url)
    yield index, tables
    tables.close()
    index.close()


def _fill(index: Any) -> None:
    for study in ("8.1", "8.2", "8.3"):
        for series in (f"{study}.1", f"{study}.2"):
            for n in (1, 2, 3):
                index.add(stored(study, series, f"{series}.{n}", number=n, pixel=True))  # pixel: pending display


def test_delete_of_a_study_leaves_nothing_of_it_but_tombstones(backend: tuple[Any, Tables]) -> None:
    index, tables = backend
    _fill(index)
    assert tables.rows("display_pending", "instance_uid", "8.1.1.1") == 1
    tables.check(index)
    gone = index.remove("8.1")
    assert sorted(r.instance_uid for r in gone) == [f"8.1.{s}.{n}" for s in (1, 2) for n in (1, 2, 3)]
    for table in ("instance", "series", "study"):
        assert tables.rows(table, "study_uid", "8.1") == 0, table
    for record in gone:
        assert tables.rows("display_pending", "instance_uid", record.instance_uid) == 0
        assert index.removed("8.1", record.series_uid, record.instance_uid) and index.removed("8.1", record.series_uid)
    assert int(tables.one("SELECT count(*) FROM tombstone WHERE study_uid = ?", "8.1")) == 1 + 2 + 6
    assert index.removed("8.1") and index.instances("8.1") == []
    assert [m["0020000D"]["Value"][0] for m in index.search(SearchQuery("study")).matches] == ["8.2", "8.3"]
    tables.check(index)
    assert index.counts() == Counts(2, 4, 12)


def test_delete_of_a_series_and_of_an_instance_keeps_what_is_left_counted(backend: tuple[Any, Tables]) -> None:
    index, tables = backend
    _fill(index)
    index.remove("8.2", "8.2.1")
    assert tables.rows("series", "series_uid", "8.2.1") == 0 and tables.rows("instance", "series_uid", "8.2.1") == 0
    assert tables.one("SELECT number_of_series FROM study WHERE study_uid = ?", "8.2") == 1
    assert tables.one("SELECT number_of_instances FROM study WHERE study_uid = ?", "8.2") == 3
    tables.check(index)
    index.remove("8.3", "8.3.2", "8.3.2.2")
    assert tables.one("SELECT number_of_instances FROM series WHERE series_uid = ?", "8.3.2") == 2
    tables.check(index)
    for n in (1, 3):  # the series' last instances: the series goes, then (with 8.3.1) the study
        index.remove("8.3", "8.3.2", f"8.3.2.{n}")
    assert tables.rows("series", "series_uid", "8.3.2") == 0 and tables.rows("study", "study_uid", "8.3") == 1
    index.remove("8.3", "8.3.1")
    assert tables.rows("study", "study_uid", "8.3") == 0
    tables.check(index)
    assert index.counts() == Counts(2, 3, 9)


@pytest.mark.parametrize("seed", [1, 2])
def test_counts_stay_the_rows_counts_through_any_writes(backend: tuple[Any, Tables], seed: int) -> None:
    index, tables = backend
    memory = MemoryIndex()
    rng = random.Random(seed)
    for step in range(150):
        study = f"6.{rng.randrange(4)}"
        series = f"{study}.{rng.randrange(3)}"
        uid = f"{series}.{rng.randrange(5)}"
        action = rng.random()
        for idx in (index, memory):
            if action < 0.6:
                idx.add(stored(study, series, uid, number=step % 4, pixel=step % 2 == 0))
            elif action < 0.75:
                idx.replace(stored(study, series, uid, digest=f"{step:04x}"))
            elif action < 0.9:
                idx.remove(study, series, uid)
            else:
                idx.remove(study, series if action < 0.95 else None)
        if step % 10 == 0:
            tables.check(index)
            assert index.counts() == memory.counts()
    tables.check(index)
    assert index.counts() == memory.counts()
    for level in ("study", "series", "instance"):
        assert index.search(SearchQuery(level)).total == memory.search(SearchQuery(level)).total


def test_every_foreign_key_is_the_first_column_of_an_index(backend: tuple[Any, Tables]) -> None:
    """Deleting a series or study row checks the rows that refer to it: through an index, never a table scan."""
    index, tables = backend
    if tables.kind == "sqlite":
        keys = {(table, fk[3]) for table in ("series", "instance")
                for fk in tables.conn.execute(f"PRAGMA foreign_key_list({table})")}
        leading = {(table, tables.conn.execute(f"PRAGMA index_info({ix[1]})").fetchone()[2])
                   for table in ("series", "instance") for ix in tables.conn.execute(f"PRAGMA index_list({table})")}
    else:
        keys = {(table, column) for table, column in tables.conn.execute(
            "SELECT c.conrelid::regclass::text, a.attname FROM pg_constraint c JOIN pg_attribute a"
            " ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] WHERE c.contype = 'f'"
            " AND c.conrelid::regclass::text IN ('series', 'instance')")}
        leading = {(table, column) for table, column in tables.conn.execute(
            "SELECT i.indrelid::regclass::text, a.attname FROM pg_index i JOIN pg_attribute a"
            " ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]"
            " WHERE i.indrelid::regclass::text IN ('series', 'instance')")}
    assert keys == {("series", "study_uid"), ("instance", "series_uid"), ("instance", "study_uid")}
    assert keys <= leading, keys - leading
