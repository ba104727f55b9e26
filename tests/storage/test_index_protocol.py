"""The Index Protocol's delete, replace and walk methods, on every backend (real SQLite, in memory)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dicomweb_origin.model.stored import InstanceRecord, StoredInstance
from dicomweb_origin.storage.base import SearchQuery
from dicomweb_origin.storage.inmemory import MemoryIndex
from dicomweb_origin.storage.sqlite import SqliteIndex


def _stored(study: str, series: str, instance: str, name: str = "DOE^JOHN") -> StoredInstance:
    record = InstanceRecord(
        study_uid=study, series_uid=series, instance_uid=instance, sop_class_uid="1.2.840.10008.5.1.4.1.1.7",
        transfer_syntax_uid="1.2.840.10008.1.2.1", source_transfer_syntax_uid="1.2.840.10008.1.2.1",
        blob_key=f"{study}/{series}/{instance}.{name[:3]}.dcm", size=10, digest=name.encode().hex(),
    )
    patient = {"00100010": {"vr": "PN", "Value": [{"Alphabetic": name}]}}
    return StoredInstance(record, b"{}", {"0020000D": {"vr": "UI", "Value": [study]}, **patient},
                          {"00080060": {"vr": "CS", "Value": ["OT"]}}, {})


@pytest.fixture(params=["sqlite", "memory"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    idx = SqliteIndex(tmp_path / "index.sqlite") if request.param == "sqlite" else MemoryIndex()
    for series, instances in (("1.2.1", ("1.2.1.1", "1.2.1.2")), ("1.2.2", ("1.2.2.1",))):
        for uid in instances:
            assert idx.add(_stored("1.2", series, uid)) is None
    yield idx
    idx.close()


def test_remove_instance_series_study_leaves_tombstones(index: Any) -> None:
    assert not index.removed("1.2", "1.2.1", "1.2.1.1")
    gone = index.remove("1.2", "1.2.1", "1.2.1.1")
    assert [r.instance_uid for r in gone] == ["1.2.1.1"]
    assert index.get("1.2.1.1") is None
    assert index.removed("1.2", "1.2.1", "1.2.1.1")
    assert not index.removed("1.2", "1.2.1")  # 1.2.1.2 is still there
    assert not index.removed("1.2", "1.2.1", "9.9")  # never stored
    assert index.remove("1.2", "1.2.1", "1.2.1.1") == []  # again: nothing left to remove
    assert sorted(r.instance_uid for r in index.remove("1.2", "1.2.1")) == ["1.2.1.2"]
    assert index.removed("1.2", "1.2.1")
    assert not index.removed("1.2")
    assert [r.instance_uid for r in index.remove("1.2")] == ["1.2.2.1"]
    assert index.removed("1.2") and index.removed("1.2", "1.2.2") and index.removed("1.2", "1.2.2", "1.2.2.1")
    assert not index.removed("9.9")
    assert index.count() == 0 and index.instances("1.2") == []


def test_store_again_after_remove(index: Any) -> None:
    index.remove("1.2")
    assert index.add(_stored("1.2", "1.2.1", "1.2.1.1")) is None
    assert not index.removed("1.2") and not index.removed("1.2", "1.2.1", "1.2.1.1")
    assert index.removed("1.2", "1.2.2")  # still deleted


def test_replace_returns_the_old_record(index: Any) -> None:
    old = index.get("1.2.1.1")
    replaced = index.replace(_stored("1.2", "1.2.1", "1.2.1.1", name="ROE^JANE"))
    assert replaced == old
    assert index.get("1.2.1.1").digest == b"ROE^JANE".hex()
    assert index.count() == 3
    assert index.replace(_stored("1.2", "1.2.3", "1.2.3.1")) is None


def test_records_walks_in_uid_order(index: Any) -> None:
    first = index.records(limit=2)
    assert [r.instance_uid for r in first] == ["1.2.1.1", "1.2.1.2"]
    assert [r.instance_uid for r in index.records(after=first[-1].instance_uid)] == ["1.2.2.1"]


def test_sqlite_search_sees_delete_and_replace(tmp_path: Path) -> None:
    idx = SqliteIndex(tmp_path / "index.sqlite")
    for uid in ("1.3.1.1", "1.3.1.2"):
        idx.add(_stored("1.3", "1.3.1", uid))
    idx.add(_stored("1.3", "1.3.2", "1.3.2.1"))
    idx.remove("1.3", "1.3.1", "1.3.1.1")
    (study,) = idx.search(SearchQuery("study")).matches
    assert study["00201206"]["Value"] == [2] and study["00201208"]["Value"] == [2]
    idx.remove("1.3", "1.3.2")
    (study,) = idx.search(SearchQuery("study")).matches
    assert study["00201206"]["Value"] == [1] and study["00201208"]["Value"] == [1]
    idx.replace(_stored("1.3", "1.3.1", "1.3.1.2", name="ROE^JANE"))
    (study,) = idx.search(SearchQuery("study")).matches
    assert study["00100010"]["Value"] == [{"Alphabetic": "ROE^JANE"}]
    assert study["00201208"]["Value"] == [1]
    idx.remove("1.3")
    assert idx.search(SearchQuery("study")).matches == []
    idx.close()


def test_record_memo_never_serves_a_removed_record(tmp_path: Path) -> None:
    idx = SqliteIndex(tmp_path / "index.sqlite")
    idx.add(_stored("1.4", "1.4.1", "1.4.1.1"))
    assert idx.get("1.4.1.1") is not None  # memoised now
    idx.remove("1.4")
    assert idx.get("1.4.1.1") is None
    idx.add(_stored("1.4", "1.4.1", "1.4.1.1", name="ROE^JANE"))
    assert idx.get("1.4.1.1").digest == b"ROE^JANE".hex()
    idx.replace(_stored("1.4", "1.4.1", "1.4.1.1", name="POE^EDGAR"))
    assert idx.get("1.4.1.1").digest == b"POE^EDGAR".hex()
    idx.close()
