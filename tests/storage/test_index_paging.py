"""Paging large results (PS3.18 §8.3.4.4: offset / limit, idempotent order), on every index backend.

The SQL indexes reach an offset from keys they remember behind it (storage/sqlsearch.py); here they remember
one every few rows (``stride``), so a few hundred instances exercise what ten million do: walks, page ends,
the end of the result, keys that tie or are missing (no StudyDate, no SeriesNumber, no InstanceNumber), broad
conditions (walked along the order) beside narrow ones (looked up, then sorted), and writes in between (a key
found before a write is never used after it). Each page is compared with the whole ordered result, computed
here from the records as the standard's order says, independently of any index.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dicomweb_origin.model.stored import StoredInstance
from dicomweb_origin.storage.base import Condition, SearchQuery
from dicomweb_origin.storage.inmemory import MemoryIndex
from dicomweb_origin.storage.sqlite import SqliteIndex
from tests.support.archive import new_postgres_index
from tests.support.records import CT, SC, stored

STRIDE = 4


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "memory":
        idx: Any = MemoryIndex()
    elif request.param == "sqlite":
        idx = SqliteIndex(tmp_path / "index.sqlite", stride=STRIDE)
    else:
        from dicomweb_origin.storage.postgres import PostgresIndex

        idx = PostgresIndex(new_postgres_index(request.getfixturevalue("postgres")), stride=STRIDE)
    yield idx
    idx.close()


def archive(seed: int, studies: int = 30) -> list[StoredInstance]:
    """Studies whose order keys tie and go missing: few dates and times, repeated and absent numbers."""
    rng = random.Random(seed)
    made = []
    for n in range(studies):
        date = rng.choice(["20240101", "20240101", "20231231", "20200615", None])
        time = rng.choice(["101500", "101500", "083000", None])
        study = f"7.{seed}.{n}"
        for s in range(rng.randint(1, 3)):
            series_number = rng.choice([1, 2, 2, None])
            modality = rng.choice(["CT", "CT", "MR", "SR"])
            series = f"{study}.{s}"
            for i in range(rng.randint(1, 6)):
                number = rng.choice([1, 2, 3, 3, None])
                made.append(stored(study, series, f"{series}.{i}", number=number, series_number=series_number,
                                   modality=modality, sop_class=CT if modality == "CT" else SC,
                                   study_date=date, study_time=time))
    return made


def expected(instances: list[StoredInstance], level: str, keep: Any = lambda s: True) -> list[str]:
    """The UIDs of the entities of ``level`` in the standard's stable order (the indexes' documented order)."""
    entities: dict[str, tuple[Any, ...]] = {}
    for s in instances:
        if not keep(s):
            continue
        r = s.record
        date = s.study_attributes.get("00080020", {}).get("Value", [None])[0]
        time = s.study_attributes.get("00080030", {}).get("Value", [None])[0]
        series_number = s.series_attributes.get("00200011", {}).get("Value", [None])[0]
        study_key = (_desc(date), _desc(time), r.study_uid)
        series_key = (*study_key, _asc(series_number), r.series_uid)
        key, uid = {"study": (study_key, r.study_uid), "series": (series_key, r.series_uid),
                    "instance": ((*series_key, _asc(r.instance_number), r.instance_uid), r.instance_uid)}[level]
        entities[uid] = key
    return sorted(entities, key=lambda uid: entities[uid])


def _asc(value: Any) -> tuple[Any, ...]:
    return (0,) if value is None else (1, value)  # missing first


def _desc(value: str | None) -> tuple[Any, ...]:
    # newest first, missing last: the complement of each character reverses the order of strings
    return (1,) if value is None else (0, tuple(-ord(c) for c in value) + (1,))


UID = {"study": "0020000D", "series": "0020000E", "instance": "00080018"}


def page(index: Any, level: str, offset: int, limit: int | None, *conditions: Condition) -> tuple[list[str], int]:
    found = index.search(SearchQuery(level, tuple(conditions), offset, limit))
    return [m[UID[level]]["Value"][0] for m in found.matches], found.total


def fill(index: Any, instances: list[StoredInstance]) -> None:
    for s in instances:
        assert index.add(s) is None


@pytest.mark.parametrize("level", ["study", "series", "instance"])
def test_paging_returns_every_match_once_in_the_stable_order(index: Any, level: str) -> None:
    instances = archive(1)
    fill(index, instances)
    whole = expected(instances, level)
    assert page(index, level, 0, None) == (whole, len(whole))
    for limit in (1, 3, STRIDE, 25):
        seen: list[str] = []
        offset = 0
        while True:
            uids, total = page(index, level, offset, limit)
            assert total == len(whole)
            if not uids:
                break
            seen += uids
            offset += limit
        assert seen == whole, limit  # every match once, in order: no page boundary duplicates or skips one


@pytest.mark.parametrize("level", ["study", "series", "instance"])
def test_every_page_boundary_means_the_same_as_the_whole_result(index: Any, level: str) -> None:
    instances = archive(2)
    fill(index, instances)
    whole = expected(instances, level)
    rng = random.Random(5)
    offsets = list(range(len(whole) + 3))
    rng.shuffle(offsets)  # jumps forward and back, past keys already found and far beyond them
    for offset in offsets:
        limit = rng.choice([1, 2, 7, 100])
        assert page(index, level, offset, limit) == (whole[offset : offset + limit], len(whole)), offset


def test_broad_and_narrow_conditions_page_the_same(index: Any) -> None:
    instances = archive(3, studies=40)
    fill(index, instances)
    ct = Condition("00080060", "series", "equal", ("CT",))  # most series: walked along the order
    sr = Condition("00080060", "series", "equal", ("SR",))  # few
    for condition, modality in ((ct, "CT"), (sr, "SR")):
        whole = expected(instances, "series", lambda s, m=modality: s.series_attributes["00080060"]["Value"] == [m])
        assert whole
        for offset in range(len(whole) + 1):
            assert page(index, "series", offset, 3, condition) == (whole[offset : offset + 3], len(whole))
    classes = Condition("00080016", "instance", "equal", (CT,))
    whole = expected(instances, "instance", lambda s: s.record.sop_class_uid == CT)
    for offset in range(0, len(whole) + 2, 3):
        assert page(index, "instance", offset, 5, classes) == (whole[offset : offset + 5], len(whole))


def test_pages_follow_every_write_between_them(index: Any) -> None:
    instances = archive(4)
    fill(index, instances)
    whole = expected(instances, "instance")
    deep = len(whole) - 10
    assert page(index, "instance", deep, 5)[0] == whole[deep : deep + 5]  # keys remembered up to here
    newest = stored("9.1", "9.1.1", "9.1.1.1", number=1, study_date="20991231", study_time="235959")
    assert index.add(newest) is None  # sorts first: every later match moves one place on
    instances.append(newest)
    whole = expected(instances, "instance")
    assert page(index, "instance", deep, 5) == (whole[deep : deep + 5], len(whole))
    gone = instances[0].record
    index.remove(gone.study_uid)
    instances = [s for s in instances if s.record.study_uid != gone.study_uid]
    whole = expected(instances, "instance")
    assert page(index, "instance", deep - 20, 5) == (whole[deep - 20 : deep - 15], len(whole))
    assert page(index, "instance", len(whole), 5) == ([], len(whole))


def test_a_write_through_another_connection_is_seen_too(tmp_path: Path) -> None:
    """Two index objects on one SQLite file (two processes, say): the keys one remembered go stale on the other's write."""
    first, second = SqliteIndex(tmp_path / "i.sqlite", stride=STRIDE), SqliteIndex(tmp_path / "i.sqlite", stride=STRIDE)
    instances = archive(6)
    fill(first, instances)
    whole = expected(instances, "series")
    assert page(first, "series", len(whole) - 2, 2)[0] == whole[-2:]
    newest = stored("9.2", "9.2.1", "9.2.1.1", study_date="20991231")
    second.add(newest)
    assert page(first, "series", len(whole) - 2, 2) == (expected([*instances, newest], "series")[-3:-1], len(whole) + 1)
    first.close()
    second.close()


def test_totals_beyond_the_end_and_without_a_limit(index: Any) -> None:
    instances = archive(7)
    fill(index, instances)
    for level in ("study", "series", "instance"):
        whole = expected(instances, level)
        assert page(index, level, len(whole) + 50, 10) == ([], len(whole))
        assert page(index, level, len(whole) - 1, None) == (whole[-1:], len(whole))
        assert page(index, level, 0, 0) == ([], len(whole))
    (study,) = {s.record.study_uid for s in instances[:1]}
    only = Condition("0020000D", "study", "equal", (study,))
    in_study = expected(instances, "instance", lambda s: s.record.study_uid == study)
    assert page(index, "instance", 1, None, only) == (in_study[1:], len(in_study))
