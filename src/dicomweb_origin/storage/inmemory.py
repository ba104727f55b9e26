"""In-memory backends, for tests and for trying things out (``--index memory:``, ``--blobs memory:``).

``MemoryIndex`` plays every role of the Index Protocol, Search included, with the SQL indexes' semantics
(``storage/sqlsearch.py``): the same match rules, the same order, the same counts; it walks every record
per search, which is fine at the sizes it is for.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from ..errors import SeriesInOtherStudy
from ..model.stored import InstanceRecord, StoredInstance
from .base import DERIVED, BlobInfo, Condition, Counts, ItemCondition, SearchPage, SearchQuery
from .records import SERIES_COLUMNS, STUDY_COLUMNS, column_value, fold, integer, text


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

    def keys(self, prefix: str = "") -> Iterator[str]:
        return iter([k for k in self._blobs if k.startswith(prefix) and (prefix or not k.startswith(DERIVED))])

    def write(self, key: str, data: bytes) -> None:
        self._blobs[key] = bytes(data)


@dataclass
class _Kept:
    """One stored instance with the attributes Search reads."""

    record: InstanceRecord
    metadata: bytes
    attributes: dict[str, Any]


class MemoryIndex:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: dict[str, _Kept] = {}
        self._studies: dict[str, dict[str, Any]] = {}  # study UID -> its attributes
        self._series: dict[str, tuple[str, dict[str, Any]]] = {}  # series UID -> (study UID, attributes)
        # Tombstones of deleted resources: (study, None, None), (study, series, None), (study, series, instance).
        self._removed: set[tuple[str, str | None, str | None]] = set()

    # -- Writer -------------------------------------------------------------------------------------

    def add(self, stored: StoredInstance) -> InstanceRecord | None:
        with self._lock:
            kept = self._kept.get(stored.record.instance_uid)
            if kept is not None:
                return kept.record
            self._insert(stored, update_levels=False)
        return None

    def replace(self, stored: StoredInstance) -> InstanceRecord | None:
        uid = stored.record.instance_uid
        with self._lock:
            old = self._kept.pop(uid, None)
            try:
                self._insert(stored, update_levels=True)
            except BaseException:
                if old is not None:
                    self._kept[uid] = old
                raise
        return None if old is None else old.record

    def _insert(self, stored: StoredInstance, update_levels: bool) -> None:
        """Keep the instance, and its study and series when new (or, with ``update_levels``, always)."""
        record = stored.record
        owner = self._series.get(record.series_uid)
        if owner is not None and owner[0] != record.study_uid:
            if any(k.record.series_uid == record.series_uid for k in self._kept.values()):
                raise SeriesInOtherStudy(record.series_uid, owner[0], record.study_uid)
            owner = None  # every instance of it was removed: the UID is free again
        if owner is None or update_levels:
            self._series[record.series_uid] = (record.study_uid, dict(stored.series_attributes))
        if record.study_uid not in self._studies or update_levels:
            self._studies[record.study_uid] = dict(stored.study_attributes)
        self._kept[record.instance_uid] = _Kept(record, stored.metadata, dict(stored.instance_attributes))

    def remove(self, study_uid: str, series_uid: str | None = None,
               instance_uid: str | None = None) -> list[InstanceRecord]:
        with self._lock:
            gone = [k.record for k in self._kept.values() if _under(k.record, study_uid, series_uid, instance_uid)]
            for record in gone:
                del self._kept[record.instance_uid]
                self._removed.add((record.study_uid, record.series_uid, record.instance_uid))
                self._removed.add((record.study_uid, record.series_uid, None))
            if gone:
                self._removed.add((study_uid, None, None))
                live_series = {k.record.series_uid for k in self._kept.values()}
                for uid in {r.series_uid for r in gone} - live_series:
                    del self._series[uid]
                if not any(k.record.study_uid == study_uid for k in self._kept.values()):
                    del self._studies[study_uid]
        return gone

    def records_missing_display(self, after: str = "", limit: int = 100) -> list[InstanceRecord]:
        with self._lock:
            missing = sorted((k.record for k in self._kept.values() if k.record.pixel is not None
                              and k.record.display is None and k.record.instance_uid > after),
                             key=lambda r: r.instance_uid)
        return missing[:limit]

    def set_display(self, record: InstanceRecord) -> None:
        with self._lock:
            kept = self._kept.get(record.instance_uid)
            if kept is not None:
                kept.record = record

    # -- Catalogue ----------------------------------------------------------------------------------

    def get(self, instance_uid: str) -> InstanceRecord | None:
        kept = self._kept.get(instance_uid)
        return None if kept is None else kept.record

    def instances(self, study_uid: str, series_uid: str | None = None) -> list[InstanceRecord]:
        with self._lock:
            found = [k.record for k in self._kept.values()
                     if k.record.study_uid == study_uid and (series_uid is None or k.record.series_uid == series_uid)]
            numbers = {r.series_uid: self._series_number(r.series_uid) for r in found}

        # The Protocol's order, as the SQL backends sort: series number, instance number (absent ones first), UIDs.
        def key(r: InstanceRecord) -> tuple[Any, ...]:
            number = numbers[r.series_uid]
            return (number is not None, number or 0, r.series_uid, r.instance_number is not None,
                    r.instance_number or 0, r.instance_uid)

        return sorted(found, key=key)

    def digests(self, study_uid: str, series_uid: str | None = None) -> list[str]:
        return [r.digest for r in self.instances(study_uid, series_uid)]

    def metadata(self, records: Sequence[InstanceRecord]) -> list[bytes]:
        return [self._kept[r.instance_uid].metadata for r in records]

    def removed(self, study_uid: str, series_uid: str | None = None, instance_uid: str | None = None) -> bool:
        with self._lock:
            if (study_uid, series_uid, instance_uid) not in self._removed:
                return False
            return not any(_under(k.record, study_uid, series_uid, instance_uid) for k in self._kept.values())

    def records(self, after: str = "", limit: int = 1000) -> list[InstanceRecord]:
        with self._lock:
            uids = sorted(uid for uid in self._kept if uid > after)[:limit]
            return [self._kept[uid].record for uid in uids]

    def close(self) -> None:
        pass

    # -- SearchIndex --------------------------------------------------------------------------------

    def count(self) -> int:
        return len(self._kept)

    def counts(self) -> Counts:
        with self._lock:
            return Counts(len(self._studies), len(self._series), len(self._kept))

    def search(self, query: SearchQuery) -> SearchPage:
        with self._lock:
            rows = self._rows(query.level)
            found = [row for row in rows if all(_satisfied(c, row) for c in query.conditions)]
        for column, descending in reversed(_ORDER[query.level]):  # stable sorts, last key first
            found.sort(key=lambda row, c=column: (row.sort[c] is not None, row.sort[c]),  # type: ignore[misc]
                       reverse=descending)
        end = None if query.limit is None else query.offset + query.limit
        matches = []
        for row in found[query.offset : end]:
            match = dict(row.match)
            for tag in query.computed & set(_DERIVED_VR):
                values = row.derived[tag]
                if values:  # never present without a value (as the SQL indexes)
                    match[tag] = {"vr": _DERIVED_VR[tag], "Value": sorted(values)}
            matches.append(match)
        return SearchPage(matches, len(found))

    def _series_number(self, series_uid: str) -> int | None:
        series = self._series.get(series_uid)
        return None if series is None else integer(column_value(series[1], "00200011"))

    def _rows(self, level: str) -> list[_Row]:
        """Every entity of ``level`` with what conditions, the order and the match read (caller holds the lock)."""
        series_of: dict[str, list[_Kept]] = {}
        for kept in self._kept.values():
            series_of.setdefault(kept.record.series_uid, []).append(kept)
        studies: dict[str, _Row] = {}
        for study_uid, attributes in self._studies.items():
            in_study = [(uid, kept) for uid, kept in series_of.items() if self._series[uid][0] == study_uid]
            row = studies[study_uid] = _Row({"study": attributes}, {}, {}, {})
            row.values["0020000D"] = [study_uid]
            row.sort.update({"study_date": text(column_value(attributes, "00080020")),
                             "study_time": text(column_value(attributes, "00080030")), "study_uid": study_uid})
            row.derived["00080061"] = {m for uid, _ in in_study
                                       if (m := text(column_value(self._series[uid][1], "00080060"))) is not None}
            row.derived["00080062"] = {k.record.sop_class_uid for _, instances in in_study for k in instances}
            row.match.update(attributes)
            row.match["00201206"] = {"vr": "IS", "Value": [len(in_study)]}
            row.match["00201208"] = {"vr": "IS", "Value": [sum(len(i) for _, i in in_study)]}
            row.match["0020000D"] = {"vr": "UI", "Value": [study_uid]}
        if level == "study":
            return list(studies.values())
        series_rows: dict[str, _Row] = {}
        for series_uid, (study_uid, attributes) in self._series.items():
            row = studies[study_uid].below("series", attributes)
            row.values["0020000E"] = [series_uid]
            row.sort.update({"series_number": integer(column_value(attributes, "00200011")), "series_uid": series_uid})
            row.match["0020000E"] = {"vr": "UI", "Value": [series_uid]}
            row.match["00201209"] = {"vr": "IS", "Value": [len(series_of.get(series_uid, ()))]}
            series_rows[series_uid] = row
        if level == "series":
            return list(series_rows.values())
        rows = []
        for kept in self._kept.values():
            record = kept.record
            row = series_rows[record.series_uid].below("instance", kept.attributes)
            row.values.update({"00080016": [record.sop_class_uid], "00080018": [record.instance_uid],
                               "00200013": [] if record.instance_number is None else [record.instance_number],
                               "00083002": [record.transfer_syntax_uid]})
            row.sort.update({"instance_number": record.instance_number, "instance_uid": record.instance_uid})
            row.match["00080018"] = {"vr": "UI", "Value": [record.instance_uid]}
            row.match["00083002"] = {"vr": "UI", "Value": [record.transfer_syntax_uid]}
            rows.append(row)
        return rows


@dataclass
class _Row:
    """An entity as Search sees it: attributes by level, values of special tags, order keys, its match."""

    levels: dict[str, dict[str, Any]]
    values: dict[str, list[Any]]  # tags whose values are not (only) in the attributes: UIDs, counts
    sort: dict[str, Any]
    match: dict[str, Any]
    derived: dict[str, set[str]] = field(default_factory=dict)  # the study's, shared by the rows below it

    def below(self, level: str, attributes: dict[str, Any]) -> _Row:
        row = _Row({**self.levels, level: attributes}, dict(self.values), dict(self.sort), dict(self.match),
                   self.derived)
        row.match.update(attributes)
        return row


# The order of the SQL indexes (sqlsearch.ORDER): NULL sorts first ascending, last descending.
_STUDY_ORDER = [("study_date", True), ("study_time", True), ("study_uid", False)]
_SERIES_ORDER = [*_STUDY_ORDER, ("series_number", False), ("series_uid", False)]
_ORDER = {"study": _STUDY_ORDER, "series": _SERIES_ORDER,
          "instance": [*_SERIES_ORDER, ("instance_number", False), ("instance_uid", False)]}
_DERIVED_VR = {"00080061": "CS", "00080062": "UI"}
# Attributes the SQL indexes match in a column: on their first value only.
_FIRST_ONLY = frozenset({*STUDY_COLUMNS, *SERIES_COLUMNS})
_NUMBERS = frozenset({"00200011", "00200013"})  # integer columns


def _values(attributes: dict[str, Any], tag: str, person_name: bool) -> list[Any]:
    element = attributes.get(tag)
    values = (element.get("Value") or []) if isinstance(element, dict) else []
    if person_name:
        return [fold(text(v.get("Alphabetic"))) for v in values if isinstance(v, dict) and v.get("Alphabetic")]
    return [text(v) if isinstance(v, str) else v for v in values if v is not None and not isinstance(v, dict)]


def _satisfied(condition: Condition | ItemCondition, row: _Row) -> bool:
    if isinstance(condition, ItemCondition):
        element = row.levels.get(condition.level, {}).get(condition.tag)
        items = (element.get("Value") or []) if isinstance(element, dict) else []
        return any(isinstance(item, dict) and all(_matches(c, _values(item, c.tag, c.person_name)) for c in
                                                 condition.conditions) for item in items)
    tag = condition.tag
    if tag in row.derived:
        return _matches(condition, sorted(row.derived[tag]))
    if tag in row.values:
        return _matches(condition, row.values[tag])
    attributes = row.levels.get(condition.level, {})
    if condition.time_tag is not None:  # combined date-time matching: the date, then the time or nothing
        dates = _values(attributes, tag, False)[:1]
        times = _values(attributes, condition.time_tag, False)[:1]
        return _matches(condition, [str(d) + str(times[0] if times else "") for d in dates])
    values = _values(attributes, tag, condition.person_name)
    if tag in _FIRST_ONLY:
        values = values[:1]
        if tag in _NUMBERS:
            values = [n for n in map(integer, values) if n is not None]
    return _matches(condition, values)


def _matches(condition: Condition, values: Sequence[Any]) -> bool:
    """Any of the stored values satisfies the condition, as the SQL predicate compares."""
    wanted = [text(v) if isinstance(v, str) else v for v in condition.values]
    if condition.person_name:
        wanted = [fold(v) for v in wanted]
    test: Callable[[Any], bool]
    if condition.kind == "equal":
        if condition.tag in _NUMBERS:
            wanted = [integer(v) for v in wanted]
        test = lambda v: v in wanted  # noqa: E731
    elif condition.kind in ("pattern", "fuzzy"):
        patterns = [str(w) for w in wanted]
        if condition.kind == "fuzzy":
            patterns = [p for w in patterns for p in (f"{w}*", f"*^{w}*", f"* {w}*")]
        expression = re.compile("|".join(_regex(p) for p in patterns), re.DOTALL)
        test = lambda v: expression.fullmatch(str(v)) is not None  # noqa: E731
    elif condition.kind == "range":
        low, high = wanted
        test = lambda v: (not low or str(v) >= low) and (not high or str(v) <= high)  # noqa: E731
    else:
        raise ValueError(f"unknown condition kind {condition.kind!r}")
    return any(test(v) for v in values if v is not None)


def _regex(pattern: str) -> str:
    """A DICOM wildcard pattern: ``*`` any run, ``?`` any one character, everything else literal."""
    return "(?:" + "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern) + ")"


def _under(record: InstanceRecord, study_uid: str, series_uid: str | None, instance_uid: str | None) -> bool:
    """Whether the record is (in) the resource named by the UIDs."""
    return (record.study_uid == study_uid and (series_uid is None or record.series_uid == series_uid)
            and (instance_uid is None or record.instance_uid == instance_uid))
