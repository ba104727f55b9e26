"""One index over SQL, written once: what the SQLite and PostgreSQL indexes both do, over a ``Dialect``.

The rows: ``study`` and ``series`` (attributes for Search, hot ones in indexed columns, counts of what is
below them), ``instance`` (the record, its DICOM JSON metadata, its attributes, a ``revision`` that changes
with every write of the row), ``display_pending`` (records waiting for ``set_display``), ``tombstone``
(deleted resources, for 410 Gone) and ``counter`` (how many studies, series and instances, and how many
changes: read in constant time by ``counts`` and by Search). A backend supplies its schema, its connections
and transactions (``_session``, ``_snapshot``, ``_transaction``) and its dialect; SQL is written with ``?``
placeholders and ``ON CONFLICT`` upserts, which both databases speak.

Writes are transactions that can be run again: a backend that lets writers run at once (PostgreSQL) names
the errors that mean "lost a race, try again" in ``_retryable``.

Past 400 lines on purpose: this is the Index Protocol's whole algorithm (reads, writes with the counts they
move, and Search's entry), kept in one place so that both databases run exactly the same code.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import orjson

from ..errors import SeriesInOtherStudy, ServiceUnavailable
from ..model.stored import InstanceRecord, StoredInstance
from .base import Counts, SearchPage, SearchQuery
from .paging import Pager
from .records import (
    SERIES_COLUMNS,
    STUDY_COLUMNS,
    RecordCache,
    match_keys,
    record_to_json,
    search_matches,
    series_columns,
    study_columns,
)
from .sqlsearch import DERIVED_SOURCE, DERIVED_VR, Dialect, compile_query, derived_values

_T = TypeVar("_T")
Row = tuple[Any, ...]

COUNTERS = ("studies", "series", "instances", "changes")
_LEVEL_COUNTER = {"study": "studies", "series": "series", "instance": "instances"}
_STUDY_FIELDS = [*STUDY_COLUMNS.values(), "patient_name_folded", "referring_physician_name_folded"]
_CHUNK = 500  # values in one list membership


class _Added:
    """The instances, series and studies a transaction added, per series and study: one UPDATE each at the end."""

    def __init__(self) -> None:
        self.per_series: dict[str, int] = {}
        self.per_study: dict[str, list[int]] = {}  # study UID -> [instances, series]
        self.studies = 0

    def instance(self, study_uid: str, series_uid: str, new_series: bool, new_study: bool) -> None:
        self.per_series[series_uid] = self.per_series.get(series_uid, 0) + 1
        counts = self.per_study.setdefault(study_uid, [0, 0])
        counts[0] += 1
        counts[1] += new_series
        self.studies += new_study


class Session:
    """A connection (in whatever transaction the backend opened) that speaks ``?`` placeholders."""

    def __init__(self, conn: Any, translate: Callable[[str], str] = lambda sql: sql) -> None:
        self.conn = conn
        self.translate = translate
        self.parsed: list[tuple[str, int, InstanceRecord]] = []  # records written: memoised once committed
        self.added = _Added()  # counts to move before the transaction commits
        self.levels: dict[str, str] = {}  # series UID -> study UID whose rows this transaction has written

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self.conn.execute(self.translate(sql), args)

    def all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return list(self.execute(sql, args).fetchall())

    def one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        row = self.execute(sql, args).fetchone()
        return None if row is None else tuple(row)

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.conn.cursor().executemany(self.translate(sql), rows)


class Rollback(Exception):  # noqa: N818 - control flow, not an error
    """Leave the transaction (rolled back) with ``value`` as the write's answer."""

    def __init__(self, value: Any) -> None:
        super().__init__()
        self.value = value


_WRITE_ATTEMPTS = 16  # about 2.5 s of backoff before a writer that keeps losing gives up with 503


class Retry(Exception):  # noqa: N818 - control flow, not an error
    """The transaction saw a concurrent write half-way: roll back and run it again."""


class SqlIndex:
    """The Index Protocol over SQL; subclasses give it connections, transactions, a schema and a dialect."""

    dialect: Dialect
    revision_sql: str | None = None  # a statement that gives the next record revision, inside a write transaction
    revision_expr: str | None = None  # or an expression for it that an INSERT or UPDATE takes
    _retryable: tuple[type[BaseException], ...] = ()

    def __init__(self, dialect: Dialect, cache_size: int = 20_000, stride: int | None = None) -> None:
        """``stride``: rows between two keys Search remembers behind offsets (default: the dialect's; see Pager)."""
        self.dialect = dialect
        self._cache = RecordCache(cache_size)
        self._pager = Pager(dialect, stride or dialect.stride)

    # -- what the backend supplies ----------------------------------------------------------------

    def _session(self) -> AbstractContextManager[Session]:
        """A connection for single statements."""
        raise NotImplementedError

    def _snapshot(self) -> AbstractContextManager[Session]:
        """A read-only transaction: every statement sees the same committed state."""
        raise NotImplementedError

    def _transaction(self) -> AbstractContextManager[Session]:
        """A write transaction, committed when the block ends, rolled back when it raises."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _write(self, work: Callable[[Session], _T]) -> _T:
        """Run ``work`` in one write transaction; again when it lost a race with another writer."""
        retryable: tuple[type[BaseException], ...] = (Retry, *self._retryable)
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                with self._transaction() as session:
                    result = work(session)
                    self._flush(session)
                for uid, revision, record in session.parsed:
                    self._cache.put(uid, revision, record)
                return result
            except Rollback as taken:
                return taken.value  # type: ignore[no-any-return]
            except retryable:
                # Exponential backoff with jitter, so writers racing for the same rows spread out.
                time.sleep(random.uniform(0.5, 1.5) * min(0.005 * 2 ** attempt, 0.25))
        raise ServiceUnavailable("the index is busy with concurrent writes to the same records; try again")

    # -- Catalogue ---------------------------------------------------------------------------------

    def get(self, instance_uid: str) -> InstanceRecord | None:
        with self._session() as s:
            row = s.one("SELECT instance_uid, revision, record FROM instance WHERE instance_uid = ?", (instance_uid,))
        return None if row is None else self._cache.record(*row)

    def instances(self, study_uid: str, series_uid: str | None = None) -> list[InstanceRecord]:
        return [self._cache.record(*row) for row in self._ordered("i.instance_uid, i.revision, i.record",
                                                                   study_uid, series_uid)]

    def digests(self, study_uid: str, series_uid: str | None = None) -> list[str]:
        return [row[0] for row in self._ordered("i.digest", study_uid, series_uid)]

    def _ordered(self, columns: str, study_uid: str, series_uid: str | None) -> list[Row]:
        """``columns`` of a study's or series' instances, ordered by series number, instance number, UIDs."""
        sql = f"SELECT {columns} FROM series se JOIN instance i ON i.series_uid = se.series_uid WHERE se.study_uid = ?"
        args = [study_uid]
        if series_uid is not None:
            sql += " AND se.series_uid = ?"
            args.append(series_uid)
        order = self.dialect.order
        sql += (f" ORDER BY {order('se.series_number', False)}, se.series_uid,"
                f" {order('i.instance_number', False)}, i.instance_uid")
        with self._session() as s:
            return s.all(sql, args)

    def metadata(self, records: Sequence[InstanceRecord]) -> list[bytes]:
        uids = [r.instance_uid for r in records]
        found: dict[str, bytes] = {}
        with self._session() as s:
            for start in range(0, len(uids), _CHUNK):
                members, args = self.dialect.members("instance_uid", uids[start : start + _CHUNK])
                found.update((uid, bytes(blob)) for uid, blob in
                             s.all(f"SELECT instance_uid, metadata FROM instance WHERE {members}", args))
        return [found[uid] for uid in uids]

    def removed(self, study_uid: str, series_uid: str | None = None, instance_uid: str | None = None) -> bool:
        if instance_uid is not None:
            live = "SELECT 1 FROM instance WHERE instance_uid = ?", (instance_uid,)
        elif series_uid is not None:
            live = "SELECT 1 FROM series WHERE series_uid = ?", (series_uid,)
        else:
            live = "SELECT 1 FROM study WHERE study_uid = ?", (study_uid,)
        with self._session() as s:
            if s.one("SELECT 1 FROM tombstone WHERE study_uid = ? AND series_uid = ? AND instance_uid = ?",
                     (study_uid, series_uid or "", instance_uid or "")) is None:
                return False
            return s.one(*live) is None

    def records(self, after: str = "", limit: int = 1000) -> list[InstanceRecord]:
        with self._session() as s:
            rows = s.all("SELECT instance_uid, revision, record FROM instance WHERE instance_uid > ?"
                         " ORDER BY instance_uid LIMIT ?", (after, limit))
        return [self._cache.record(*row) for row in rows]

    # -- Writer -----------------------------------------------------------------------------------

    def add(self, stored: StoredInstance) -> InstanceRecord | None:
        return self._write(lambda s: self._add(s, stored))

    def add_all(self, batch: Sequence[StoredInstance]) -> list[InstanceRecord | None]:
        """``add`` of each instance, all in one transaction: for bulk loads (a whole import, the scale benchmark)."""
        def add_all(s: Session) -> list[InstanceRecord | None]:
            uids = [stored.record.instance_uid for stored in batch]
            taken: dict[str, InstanceRecord] = {}
            for start in range(0, len(uids), _CHUNK):
                members, args = self.dialect.members("instance_uid", uids[start : start + _CHUNK])
                for row in s.all(f"SELECT instance_uid, revision, record FROM instance WHERE {members}", args):
                    taken[row[0]] = self._cache.record(*row)
            added: list[InstanceRecord | None] = []
            for stored in batch:
                uid = stored.record.instance_uid
                if uid in taken:
                    added.append(taken[uid])
                elif self._insert(s, stored, update_levels=False) is not None:
                    raise Retry(uid)  # stored meanwhile: run again, the batch sees it first
                else:
                    added.append(None)
                    taken[uid] = stored.record  # the same UID again later in the batch
            return added

        return self._write(add_all)

    def _add(self, s: Session, stored: StoredInstance) -> InstanceRecord | None:
        row = s.one("SELECT instance_uid, revision, record FROM instance WHERE instance_uid = ?",
                    (stored.record.instance_uid,))
        if row is not None:
            return self._cache.record(*row)
        taken = self._insert(s, stored, update_levels=False)
        if taken is not None:
            raise Rollback(taken)  # nothing of this instance's study or series stays either
        return None

    def replace(self, stored: StoredInstance) -> InstanceRecord | None:
        def replace(s: Session) -> InstanceRecord | None:
            for _ in range(20):
                row = s.one("SELECT instance_uid, revision, record FROM instance WHERE instance_uid = ?"
                            + self.dialect.lock, (stored.record.instance_uid,))
                old = None if row is None else self._cache.record(*row)
                if old is not None:
                    self._delete_rows(s, [old.instance_uid])
                # The corrected instance's study and series attributes win (a corrected PatientName, say).
                try:
                    if self._insert(s, stored, update_levels=True) is None:
                        return old
                except Retry:
                    pass
                # A concurrent writer inserted (or removed) it after our read; committed now, so read it again.
            raise Retry(stored.record.instance_uid)

        return self._write(replace)

    def _insert(self, s: Session, stored: StoredInstance, update_levels: bool) -> InstanceRecord | None:
        """Insert one instance (and its study and series when new); the stored record when the UID is taken.

        ``update_levels``: the study and series rows take this instance's attributes (replace).
        """
        record = stored.record
        now = time.time()
        new_study = new_series = False
        if update_levels or s.levels.get(record.series_uid) != record.study_uid:  # else: done in this transaction
            new_study, new_series = self._levels(s, stored, update_levels, now)
        revision, revision_args = ("?", [self._revision(s)]) if self.revision_expr is None else (self.revision_expr, [])
        instance = [record.instance_uid, record.series_uid, record.study_uid, record.sop_class_uid,
                    record.instance_number, record.transfer_syntax_uid, record.number_of_frames, record.size,
                    record.digest, record_to_json(record), *revision_args, stored.metadata,
                    orjson.dumps(stored.instance_attributes), now]
        fields = ("instance_uid, series_uid, study_uid, sop_class_uid, instance_number, transfer_syntax_uid,"
                  " number_of_frames, size, digest, record, revision, metadata, attributes, stored_at")
        values = ["?"] * 10 + [revision] + ["?"] * 3
        if self.dialect.key_columns:
            instance.append(orjson.dumps(match_keys(stored.instance_attributes)).decode())
            fields += ", keys"
            values.append("?")
        inserted = s.one(f"INSERT INTO instance ({fields}) VALUES ({', '.join(values)})"
                         " ON CONFLICT (instance_uid) DO NOTHING RETURNING revision", instance)
        if inserted is None:
            row = s.one("SELECT instance_uid, revision, record FROM instance WHERE instance_uid = ?",
                        (record.instance_uid,))
            if row is None:  # removed since the conflict was seen: try again
                raise Retry(record.instance_uid)
            return self._cache.record(*row)
        if _pending(record):  # waits for set_display
            s.execute("INSERT INTO display_pending (instance_uid) VALUES (?) ON CONFLICT DO NOTHING",
                      (record.instance_uid,))
        s.added.instance(record.study_uid, record.series_uid, new_series, new_study)
        s.parsed.append((record.instance_uid, int(inserted[0]), record))
        return None

    def _levels(self, s: Session, stored: StoredInstance, update_levels: bool, now: float) -> tuple[bool, bool]:
        """Insert the instance's study and series rows when new (update them, with ``update_levels``).

        Returns whether each was new. A series is in one study only (SeriesInOtherStudy otherwise).
        """
        record = stored.record
        keys = self.dialect.key_columns
        study = [*study_columns(stored.study_attributes), orjson.dumps(stored.study_attributes)]
        study_fields = [*_STUDY_FIELDS, "attributes"]
        series = [*series_columns(stored.series_attributes), orjson.dumps(stored.series_attributes)]
        series_fields = [*SERIES_COLUMNS.values(), "attributes"]
        if keys:
            study.append(orjson.dumps(match_keys(stored.study_attributes)).decode())
            series.append(orjson.dumps(match_keys(stored.series_attributes)).decode())
            study_fields.append("keys")
            series_fields.append("keys")
        new_study = s.one(f"INSERT INTO study (study_uid, {', '.join(study_fields)}, created_at)"
                          f" VALUES (?, {', '.join('?' * len(study))}, ?)"
                          " ON CONFLICT (study_uid) DO NOTHING RETURNING study_uid",
                          (record.study_uid, *study, now)) is not None
        if update_levels and not new_study:
            s.execute(f"UPDATE study SET {', '.join(f + ' = ?' for f in study_fields)} WHERE study_uid = ?",
                      (*study, record.study_uid))
        new_series = s.one(f"INSERT INTO series (series_uid, study_uid, {', '.join(series_fields)}, created_at)"
                           f" VALUES (?, ?, {', '.join('?' * len(series))}, ?)"
                           " ON CONFLICT (series_uid) DO NOTHING RETURNING series_uid",
                           (record.series_uid, record.study_uid, *series, now)) is not None
        if not new_series:
            owner = s.one("SELECT study_uid FROM series WHERE series_uid = ?", (record.series_uid,))
            if owner is not None and owner[0] != record.study_uid:
                raise SeriesInOtherStudy(record.series_uid, owner[0], record.study_uid)
            if update_levels:
                s.execute(f"UPDATE series SET {', '.join(f + ' = ?' for f in series_fields)} WHERE series_uid = ?",
                          (*series, record.series_uid))
        s.levels[record.series_uid] = record.study_uid
        return new_study, new_series

    def _flush(self, s: Session) -> None:
        """Move the counts of what the transaction added (NumberOfSeriesRelatedInstances and the others)."""
        added, s.added = s.added, _Added()
        for series_uid, n in sorted(added.per_series.items()):  # series before study, as _delete_rows
            s.execute("UPDATE series SET number_of_instances = number_of_instances + ? WHERE series_uid = ?",
                      (n, series_uid))
        for study_uid, (instances, series) in sorted(added.per_study.items()):
            s.execute("UPDATE study SET number_of_instances = number_of_instances + ?,"
                      " number_of_series = number_of_series + ? WHERE study_uid = ?", (instances, series, study_uid))
        if added.per_series:
            self._count(s, added.studies, sum(n for _, n in added.per_study.values()), sum(added.per_series.values()))

    def _revision(self, s: Session) -> int:
        row = s.one(self.revision_sql or "")
        assert row is not None
        return int(row[0])

    def _count(self, s: Session, studies: int, series: int, instances: int) -> dict[str, int]:
        """Move the counters (last in a transaction: a writer holds their row only until it commits).

        Returns the rows' new values: the counts themselves where there is one row per counter.
        """
        shard = random.randrange(self.dialect.shards)
        return {name: int(value) for name, value in s.all(
            "UPDATE counter SET value = value + CASE name WHEN 'studies' THEN CAST(? AS BIGINT)"
            " WHEN 'series' THEN CAST(? AS BIGINT) WHEN 'instances' THEN CAST(? AS BIGINT) ELSE 1 END"
            " WHERE shard = ? AND name IN ('studies', 'series', 'instances', 'changes') RETURNING name, value",
            (studies, series, instances, shard))}

    def remove(self, study_uid: str, series_uid: str | None = None,
               instance_uid: str | None = None) -> list[InstanceRecord]:
        sql, args = "SELECT instance_uid, revision, record FROM instance WHERE study_uid = ?", [study_uid]
        if series_uid is not None:
            sql, args = sql + " AND series_uid = ?", [*args, series_uid]
        if instance_uid is not None:
            sql, args = sql + " AND instance_uid = ?", [*args, instance_uid]

        def remove(s: Session) -> list[InstanceRecord]:
            gone = [self._cache.record(*row) for row in s.all(sql + " ORDER BY instance_uid" + self.dialect.lock,
                                                                args)]
            self._delete_rows(s, [r.instance_uid for r in gone])
            tombstones = {(study_uid, "", "")} if gone else set()
            for r in gone:
                tombstones |= {(r.study_uid, r.series_uid, ""), (r.study_uid, r.series_uid, r.instance_uid)}
            now = time.time()
            s.many("INSERT INTO tombstone (study_uid, series_uid, instance_uid, removed_at) VALUES (?, ?, ?, ?)"
                   " ON CONFLICT (study_uid, series_uid, instance_uid) DO UPDATE SET removed_at = excluded.removed_at",
                   [(*t, now) for t in sorted(tombstones)])
            return gone

        return self._write(remove)

    def _delete_rows(self, s: Session, instance_uids: Sequence[str]) -> None:
        """Delete instance rows, keep the counts, drop series and studies left empty (caller's transaction)."""
        self._flush(s)  # the counts of rows added earlier in the transaction first: they decide what is empty
        s.levels.clear()
        per_series: dict[tuple[str, str], int] = {}
        for start in range(0, len(instance_uids), _CHUNK):
            chunk = instance_uids[start : start + _CHUNK]
            members, args = self.dialect.members("instance_uid", chunk)
            for series_uid, study_uid in s.all(f"DELETE FROM instance WHERE {members}"
                                               " RETURNING series_uid, study_uid", args):
                per_series[(series_uid, study_uid)] = per_series.get((series_uid, study_uid), 0) + 1
            s.execute(f"DELETE FROM display_pending WHERE {members}", args)
        if not per_series:
            return
        for (series_uid, _study), n in sorted(per_series.items()):  # series before study, as add locks them
            s.execute("UPDATE series SET number_of_instances = number_of_instances - ? WHERE series_uid = ?",
                      (n, series_uid))
        per_study: dict[str, int] = {}
        for (_series, study_uid), n in per_series.items():
            per_study[study_uid] = per_study.get(study_uid, 0) + n
        for study_uid, n in sorted(per_study.items()):
            s.execute("UPDATE study SET number_of_instances = number_of_instances - ? WHERE study_uid = ?",
                      (n, study_uid))
        series_gone = studies_gone = 0
        for series_uid, study_uid in sorted(per_series):
            if s.execute("DELETE FROM series WHERE series_uid = ? AND number_of_instances <= 0",
                         (series_uid,)).rowcount:
                series_gone += 1
                s.execute("UPDATE study SET number_of_series = number_of_series - 1 WHERE study_uid = ?",
                          (study_uid,))
        for study_uid in sorted(per_study):
            studies_gone += s.execute("DELETE FROM study WHERE study_uid = ? AND number_of_series <= 0",
                                      (study_uid,)).rowcount
        self._count(s, -studies_gone, -series_gone, -sum(per_series.values()))

    def records_missing_display(self, after: str = "", limit: int = 100) -> list[InstanceRecord]:
        with self._session() as s:
            rows = s.all("SELECT i.instance_uid, i.revision, i.record FROM display_pending p JOIN instance i"
                         " ON i.instance_uid = p.instance_uid WHERE p.instance_uid > ? ORDER BY p.instance_uid"
                         " LIMIT ?", (after, limit))
        return [self._cache.record(*row) for row in rows]

    def set_display(self, record: InstanceRecord) -> None:
        def update(s: Session) -> None:
            revision, args = ("?", [self._revision(s)]) if self.revision_expr is None else (self.revision_expr, [])
            row = s.one(f"UPDATE instance SET record = ?, revision = {revision} WHERE instance_uid = ?"
                        " RETURNING revision", (record_to_json(record), *args, record.instance_uid))
            if row is not None:
                s.parsed.append((record.instance_uid, int(row[0]), record))
            if not _pending(record):
                s.execute("DELETE FROM display_pending WHERE instance_uid = ?", (record.instance_uid,))

        self._write(update)

    # -- SearchIndex ------------------------------------------------------------------------------

    def search(self, query: SearchQuery) -> SearchPage:
        plan = compile_query(self.dialect, query)
        with self._snapshot() as s:
            counters = self._counters(s)
            page = self._pager.page(s.all, plan, query.offset, query.limit, counters["changes"],
                                    counters[_LEVEL_COUNTER[query.level]])
            studies, matches = search_matches(page.rows, query.level)
            for tag in DERIVED_SOURCE:
                if tag in query.computed and studies:
                    found = derived_values(self.dialect, s.all, tag, list(studies))
                    for match in matches:
                        derived = found.get(match["0020000D"]["Value"][0])
                        if derived:  # never present without a value: OHIF rejects the whole list (clients/ohif.md)
                            match[tag] = {"vr": DERIVED_VR[tag], "Value": sorted(derived)}
        return SearchPage(matches, page.total)

    def count(self) -> int:
        return self.counts().instances

    def counts(self) -> Counts:
        with self._session() as s:
            counters = self._counters(s)
        return Counts(counters["studies"], counters["series"], counters["instances"])

    def _counters(self, s: Session) -> dict[str, int]:
        found = dict.fromkeys(COUNTERS, 0)
        found.update((name, int(value)) for name, value in s.all("SELECT name, sum(value) FROM counter GROUP BY name"))
        return found


def _pending(record: InstanceRecord) -> bool:
    return record.pixel is not None and record.display is None
