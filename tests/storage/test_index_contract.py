"""One contract for the Index Protocol (storage/base.py), every role, run against every backend: memory, SQLite,
PostgreSQL (a real cluster from Debian's packages, started by the ``postgres`` fixture; one schema per test).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from dicomweb_origin.errors import Conflict, SeriesInOtherStudy, ServiceUnavailable
from dicomweb_origin.model.appearance import Display
from dicomweb_origin.model.stored import InstanceRecord
from dicomweb_origin.storage.base import Condition, ItemCondition, SearchQuery
from dicomweb_origin.storage.inmemory import MemoryIndex
from dicomweb_origin.storage.sqlite import SqliteIndex
from tests.support.archive import new_postgres_index
from tests.support.postgres import PostgresServer
from tests.support.records import CT, SC, stored


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    yield from _open(request, tmp_path, request.param)


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def search_index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    yield from _open(request, tmp_path, request.param)


def _open(request: pytest.FixtureRequest, tmp_path: Path, kind: str) -> Iterator[Any]:
    if kind == "memory":
        idx: Any = MemoryIndex()
    elif kind == "sqlite":
        idx = SqliteIndex(tmp_path / "index.sqlite")
    else:
        from dicomweb_origin.storage.postgres import PostgresIndex

        server: PostgresServer = request.getfixturevalue("postgres")
        idx = PostgresIndex(new_postgres_index(server))
    yield idx
    idx.close()


# -- records ------------------------------------------------------------------------------------------


def test_add_get_and_the_same_instance_again(index: Any) -> None:
    first = stored("1.1", "1.1.1", "1.1.1.1", number=1)
    assert index.add(first) is None
    assert index.get("1.1.1.1") == first.record
    again = stored("1.1", "1.1.1", "1.1.1.1", number=1, digest="ff")
    assert index.add(again) == first.record  # the record already stored, unchanged
    assert index.get("1.1.1.1") == first.record
    assert index.get("9.9") is None
    assert index.count() == 1


def test_instances_ordered_by_series_number_instance_number_uid(index: Any) -> None:
    # Series UIDs sort against their numbers: "1.2.9" < "1.2.10" is false in code-point order.
    for s_uid, s_number in (("1.2.9", 2), ("1.2.10", 1)):
        for uid, number in ((f"{s_uid}.3", 10), (f"{s_uid}.1", 2), (f"{s_uid}.2", 2)):
            index.add(stored("1.2", s_uid, uid, number=number, series_number=s_number))
    index.add(stored("9.9", "9.9.1", "9.9.1.1", number=1, series_number=1))
    uids = [r.instance_uid for r in index.instances("1.2")]
    assert uids == ["1.2.10.1", "1.2.10.2", "1.2.10.3", "1.2.9.1", "1.2.9.2", "1.2.9.3"]
    assert [r.instance_uid for r in index.instances("1.2", "1.2.9")] == ["1.2.9.1", "1.2.9.2", "1.2.9.3"]
    assert index.instances("1.2", "9.9.1") == []
    assert index.instances("7.7") == []


def test_metadata_in_the_order_asked(index: Any) -> None:
    for uid in ("1.3.1.1", "1.3.1.2", "1.3.1.3"):
        index.add(stored("1.3", "1.3.1", uid))
    records = [index.get(u) for u in ("1.3.1.3", "1.3.1.1", "1.3.1.2")]
    assert index.metadata(records) == [f'{{"00080018":{{"vr":"UI","Value":["{u}"]}}}}'.encode()
                                       for u in ("1.3.1.3", "1.3.1.1", "1.3.1.2")]
    assert index.metadata([]) == []


def test_records_missing_display_and_set_display(index: Any) -> None:
    index.add(stored("1.4", "1.4.1", "1.4.1.2", pixel=True))
    index.add(stored("1.4", "1.4.1", "1.4.1.1", pixel=True))
    index.add(stored("1.4", "1.4.1", "1.4.1.3"))  # no pixel data: never missing a display
    missing = index.records_missing_display()
    assert [r.instance_uid for r in missing] == ["1.4.1.1", "1.4.1.2"]
    assert [r.instance_uid for r in index.records_missing_display(after="1.4.1.1")] == ["1.4.1.2"]
    assert [r.instance_uid for r in index.records_missing_display(limit=1)] == ["1.4.1.1"]
    shown = replace(missing[0], display=Display(modality="CT"))
    index.set_display(shown)
    assert index.get("1.4.1.1") == shown
    assert [r.instance_uid for r in index.records_missing_display()] == ["1.4.1.2"]
    assert index.instances("1.4", "1.4.1")[0].display == Display(modality="CT")


def test_a_series_of_another_study_is_a_conflict(index: Any) -> None:
    index.add(stored("1.5", "1.5.1", "1.5.1.1"))
    with pytest.raises(SeriesInOtherStudy) as caught:
        index.add(stored("1.6", "1.5.1", "1.5.1.2"))
    assert isinstance(caught.value, Conflict) and caught.value.status == 409
    assert "1.5.1" in caught.value.message
    assert index.get("1.5.1.2") is None and index.count() == 1
    assert index.instances("1.6") == []


def test_remove_instance_series_study_with_tombstones(index: Any) -> None:
    for series, uids in (("1.7.1", ("1.7.1.1", "1.7.1.2")), ("1.7.2", ("1.7.2.1",))):
        for uid in uids:
            index.add(stored("1.7", series, uid))
    assert not index.removed("1.7", "1.7.1", "1.7.1.1")
    assert [r.instance_uid for r in index.remove("1.7", "1.7.1", "1.7.1.1")] == ["1.7.1.1"]
    assert index.get("1.7.1.1") is None
    assert index.removed("1.7", "1.7.1", "1.7.1.1") and not index.removed("1.7", "1.7.1")
    assert not index.removed("1.7", "1.7.1", "9.9")
    assert index.remove("1.7", "1.7.1", "1.7.1.1") == []
    assert [r.instance_uid for r in index.remove("1.7", "1.7.1")] == ["1.7.1.2"]
    assert index.removed("1.7", "1.7.1") and not index.removed("1.7")
    assert [r.instance_uid for r in index.remove("1.7")] == ["1.7.2.1"]
    assert index.removed("1.7") and index.removed("1.7", "1.7.2", "1.7.2.1")
    assert index.count() == 0 and index.instances("1.7") == []
    assert index.add(stored("1.7", "1.7.1", "1.7.1.1")) is None  # stored again: no longer removed
    assert not index.removed("1.7") and not index.removed("1.7", "1.7.1", "1.7.1.1")
    assert index.removed("1.7", "1.7.2")


def test_replace_returns_what_it_replaced(index: Any) -> None:
    old = stored("1.8", "1.8.1", "1.8.1.1", number=1)
    index.add(old)
    new = stored("1.8", "1.8.1", "1.8.1.1", number=1, digest="abcd")
    assert index.replace(new) == old.record
    assert index.get("1.8.1.1") == new.record
    assert index.count() == 1
    assert index.replace(stored("1.8", "1.8.2", "1.8.2.1")) is None
    assert index.count() == 2


def test_records_walk_every_instance_in_uid_order(index: Any) -> None:
    uids = [f"1.9.{s}.{i}" for s in (1, 2) for i in (3, 1, 2)]
    for uid in uids:
        index.add(stored("1.9", uid.rsplit(".", 1)[0], uid))
    walked, after = [], ""
    while page := index.records(after=after, limit=4):
        walked += [r.instance_uid for r in page]
        after = page[-1].instance_uid
    assert walked == sorted(uids)


def test_the_same_instance_added_from_many_threads_is_one_instance(index: Any) -> None:
    results: list[InstanceRecord | None] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def add(n: int) -> None:
        barrier.wait()
        result = index.add(stored("2.1", "2.1.1", "2.1.1.1", digest=f"{n:02x}"))
        with lock:
            results.append(result)

    _threads(add, 8)
    assert sum(r is None for r in results) == 1  # exactly one stored it
    kept = index.get("2.1.1.1")
    assert all(r == kept for r in results if r is not None)
    assert index.count() == 1 and len(index.instances("2.1")) == 1


def test_instances_of_one_new_series_added_from_threads(index: Any) -> None:
    def add(n: int) -> None:
        for k in range(5):
            assert index.add(stored("2.2", "2.2.1", f"2.2.1.{n}.{k}")) is None

    _threads(add, 6)
    assert index.count() == 30
    (study,) = index.search(SearchQuery("study")).matches
    assert study["00201206"]["Value"] == [1] and study["00201208"]["Value"] == [30]


def test_concurrent_replaces_of_one_instance_leave_one_of_them(index: Any) -> None:
    barrier = threading.Barrier(6)
    replaced: list[InstanceRecord | None] = []

    def replace_it(n: int) -> None:
        barrier.wait()
        replaced.append(index.replace(stored("2.3", "2.3.1", "2.3.1.1", digest=f"{n:02x}")))

    _threads(replace_it, 6)
    kept = index.get("2.3.1.1")
    assert index.count() == 1 and kept is not None and kept.digest in {f"{n:02x}" for n in range(6)}
    assert sum(r is None for r in replaced) == 1  # the first inserted; each later one replaced an earlier one
    assert len(index.instances("2.3")) == 1


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_writer_that_keeps_losing_races_gets_503_and_nothing_changes(
        request: pytest.FixtureRequest, tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A transaction that sees a concurrent write every time is retried with backoff, then refused as
    temporarily unavailable (503 with Retry-After), never a 500, and leaves the index as it was."""
    from dicomweb_origin.storage import sql

    monkeypatch.setattr(sql.time, "sleep", lambda _seconds: None)
    idx = next(_open(request, tmp_path, kind))
    try:
        assert idx.add(stored("2.4", "2.4.1", "2.4.1.1")) is None
        original = idx._transaction
        runs = []

        def losing(*args: Any, **kwargs: Any) -> Any:
            runs.append(1)
            raise sql.Retry("2.4.1.1")

        monkeypatch.setattr(idx, "_transaction", losing)
        with pytest.raises(ServiceUnavailable) as refused:
            idx.replace(stored("2.4", "2.4.1", "2.4.1.1", digest="ff"))
        assert refused.value.status == 503 and refused.value.headers["Retry-After"] == "1"
        assert len(runs) == sql._WRITE_ATTEMPTS
        monkeypatch.setattr(idx, "_transaction", original)
        kept = idx.get("2.4.1.1")
        assert kept is not None and kept.digest != "ff" and idx.count() == 1
    finally:
        idx.close()


def _threads(work: Callable[[int], None], n: int) -> None:
    errors: list[BaseException] = []

    def run(k: int) -> None:
        try:
            work(k)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


# -- search (SearchIndex) --------------------------------------------------------------------------------

PATIENTS = [
    # study, series, patient name, study date, time, modality, sop class, extra study attributes
    ("3.1", "3.1.1", "Müller^Jürgen", "20240105", "101500", "CT", CT, {"00200010": {"vr": "SH", "Value": ["Alpha"]}}),
    ("3.2", "3.2.1", "MULLER^ANNA^^^", "20240105", "083000", "MR", SC, {"00200010": {"vr": "SH", "Value": ["beta"]}}),
    ("3.3", "3.3.1", "O'Brien^Zoe", "20231231", "235959", "CT", CT, {"00200010": {"vr": "SH", "Value": ["Gamma"]}}),
    ("3.4", "3.4.1", "smith^john", "20240220", None, "US", SC, {"00200010": {"vr": "SH", "Value": ["zeta"]}}),
    ("3.5", "3.5.1", "Percent%_Name", None, None, "OT", SC, {"00200010": {"vr": "SH", "Value": ["Omega"]}}),
]


@pytest.fixture
def filled(search_index: Any) -> Any:
    for study, series, name, date, time, modality, sop_class, extra in PATIENTS:
        accession = {"00080050": {"vr": "SH", "Value": [f"ACC{study[-1]}"]}}
        seq = {"00081032": {"vr": "SQ", "Value": [
            {"00080100": {"vr": "SH", "Value": [f"CODE{study[-1]}"]}, "00080102": {"vr": "SH", "Value": ["L"]}},
            {"00080100": {"vr": "SH", "Value": ["SHARED"]}, "00080102": {"vr": "SH", "Value": [f"S{study[-1]}"]}},
        ]}}
        other = {"00081060": {"vr": "PN", "Value": [{"Alphabetic": "Ångström^Anders"}, {"Alphabetic": name}]}}
        for k in (1, 2):
            search_index.add(stored(study, series, f"{series}.{k}", number=k, series_number=1, name=name,
                                    modality=modality, sop_class=sop_class, study_date=date, study_time=time,
                                    study_extra=extra | accession | seq | other,
                                    instance_extra={"00200020": {"vr": "CS", "Value": ["A", f"P{k}"]},
                                                    "00280008": {"vr": "IS", "Value": [k]}}))
    search_index.add(stored("3.1", "3.1.2", "3.1.2.1", number=1, series_number=2, name="Müller^Jürgen",
                            modality="SR", sop_class=SC, study_date="20240105", study_time="101500"))
    return search_index


def _studies(index: Any, *conditions: Condition | ItemCondition, **options: Any) -> list[str]:
    page = index.search(SearchQuery("study", tuple(conditions), **options))
    return [m["0020000D"]["Value"][0] for m in page.matches]


def _c(tag: str, kind: Any, *values: Any, level: Any = "study", **flags: Any) -> Condition:
    return Condition(tag, level, kind, tuple(values), **flags)


def test_study_order_is_newest_first_and_stable(filled: Any) -> None:
    assert _studies(filled) == ["3.4", "3.1", "3.2", "3.3", "3.5"]  # no date last


def test_equal_is_case_sensitive_and_any_of_a_list(filled: Any) -> None:
    assert _studies(filled, _c("00080050", "equal", "ACC2")) == ["3.2"]
    assert _studies(filled, _c("00080050", "equal", "acc2")) == []
    assert _studies(filled, _c("0020000D", "equal", "3.3", "3.1")) == ["3.1", "3.3"]


def test_patterns_with_star_and_question_mark_and_literal_sql_wildcards(filled: Any) -> None:
    assert _studies(filled, _c("00080050", "pattern", "ACC*")) == ["3.4", "3.1", "3.2", "3.3", "3.5"]
    assert _studies(filled, _c("00100020", "pattern", "PID-3.?")) == ["3.4", "3.1", "3.2", "3.3", "3.5"]
    assert _studies(filled, _c("00100020", "pattern", "PID?3*")) == ["3.4", "3.1", "3.2", "3.3", "3.5"]
    # % and _ are ordinary characters in DICOM patterns (not SQL LIKE wildcards).
    assert _studies(filled, _c("00100010", "pattern", "PERCENT%_*", person_name=True)) == ["3.5"]
    assert _studies(filled, _c("00100010", "pattern", "PERCENT_*", person_name=True)) == []
    assert _studies(filled, _c("00100010", "pattern", "*%*", person_name=True)) == ["3.5"]


def test_person_names_ignore_case_accents_and_trailing_separators(filled: Any) -> None:
    assert _studies(filled, _c("00100010", "equal", "muller^jurgen", person_name=True)) == ["3.1"]
    assert _studies(filled, _c("00100010", "equal", "MULLER^ANNA", person_name=True)) == ["3.2"]
    assert _studies(filled, _c("00100010", "pattern", "mul*", person_name=True)) == ["3.1", "3.2"]
    assert _studies(filled, _c("00100010", "equal", "SMITH^JOHN", person_name=True)) == ["3.4"]


def test_fuzzy_matches_a_prefix_of_any_component_or_word(filled: Any) -> None:
    assert _studies(filled, _c("00100010", "fuzzy", "jur", person_name=True)) == ["3.1"]
    assert _studies(filled, _c("00100010", "fuzzy", "obr", person_name=True)) == []
    assert _studies(filled, _c("00100010", "fuzzy", "o'b", person_name=True)) == ["3.3"]
    assert _studies(filled, _c("00100010", "fuzzy", "zo?", person_name=True)) == ["3.3"]


def test_a_person_name_kept_in_json_matches_any_of_its_values(filled: Any) -> None:
    # NameOfPhysiciansReadingStudy: not a column; two values, the first accented.
    assert len(_studies(filled, _c("00081060", "equal", "ANGSTROM^ANDERS", person_name=True))) == 5
    assert _studies(filled, _c("00081060", "pattern", "o'*", person_name=True)) == ["3.3"]


def test_ranges_compare_in_code_point_order(filled: Any) -> None:
    assert _studies(filled, _c("00080020", "range", "20240101", "20240131")) == ["3.1", "3.2"]
    assert _studies(filled, _c("00080020", "range", "", "20231231")) == ["3.3"]
    assert _studies(filled, _c("00080020", "range", "20240201", "")) == ["3.4"]
    assert _studies(filled, _c("00080020", "range", "", "")) == ["3.4", "3.1", "3.2", "3.3"]
    # Byte order, not a locale's: lower case sorts after upper case (StudyID: an indexed column).
    assert _studies(filled, _c("00200010", "range", "Z", "")) == ["3.4", "3.2"]
    assert _studies(filled, _c("00200010", "range", "A", "Omega")) == ["3.1", "3.3", "3.5"]


def test_combined_date_time_range(filled: Any) -> None:
    both = _c("00080020", "range", "20240105090000", "20240105235959", time_tag="00080030")
    assert _studies(filled, both) == ["3.1"]
    assert _studies(filled, _c("00080020", "range", "20231231235000", "", time_tag="00080030")) == \
        ["3.4", "3.1", "3.2", "3.3"]


def test_sequence_items_match_one_item_on_every_condition(filled: Any) -> None:
    same_item = ItemCondition("00081032", "study", (_c("00080100", "equal", "SHARED"), _c("00080102", "equal", "S2")))
    assert _studies(filled, same_item) == ["3.2"]
    across_items = ItemCondition("00081032", "study", (_c("00080100", "equal", "CODE2"),
                                                       _c("00080102", "equal", "S2")))
    assert _studies(filled, across_items) == []
    wildcard = ItemCondition("00081032", "study", (_c("00080100", "pattern", "CODE*"),))
    assert len(_studies(filled, wildcard)) == 5


def test_multi_valued_and_numeric_instance_attributes(filled: Any) -> None:
    page = filled.search(SearchQuery("instance", (_c("00200020", "equal", "P2", level="instance"),)))
    assert sorted(m["00080018"]["Value"][0] for m in page.matches) == [f"3.{n}.1.2" for n in range(1, 6)]
    page = filled.search(SearchQuery("instance", (_c("00280008", "equal", 2, level="instance"),)))
    assert page.total == 5
    page = filled.search(SearchQuery("instance", (_c("00200013", "equal", 1, level="instance"),
                                                  _c("0020000D", "equal", "3.1"))))
    assert [m["00080018"]["Value"][0] for m in page.matches] == ["3.1.1.1", "3.1.2.1"]


def test_offset_limit_and_total(filled: Any) -> None:
    page = filled.search(SearchQuery("study", offset=1, limit=2))
    assert page.total == 5 and [m["0020000D"]["Value"][0] for m in page.matches] == ["3.1", "3.2"]
    page = filled.search(SearchQuery("study", offset=10))
    assert page.total == 5 and page.matches == []
    assert filled.search(SearchQuery("study", limit=0)).matches == []
    page = filled.search(SearchQuery("series", (_c("0020000D", "equal", "3.1"),)))
    assert [m["0020000E"]["Value"][0] for m in page.matches] == ["3.1.1", "3.1.2"]


def test_derived_study_attributes_match_and_are_computed(filled: Any) -> None:
    assert _studies(filled, _c("00080061", "equal", "SR")) == ["3.1"]
    assert _studies(filled, _c("00080061", "equal", "MR", "US")) == ["3.4", "3.2"]
    assert _studies(filled, _c("00080062", "equal", CT)) == ["3.1", "3.3"]
    page = filled.search(SearchQuery("study", (_c("0020000D", "equal", "3.1"),),
                                     computed=frozenset({"00080061", "00080062"})))
    (match,) = page.matches
    assert match["00080061"] == {"vr": "CS", "Value": ["CT", "SR"]}
    assert match["00080062"] == {"vr": "UI", "Value": sorted([CT, SC])}
    assert match["00201206"]["Value"] == [2] and match["00201208"]["Value"] == [3]
    assert match["00100010"]["Value"] == [{"Alphabetic": "Müller^Jürgen"}]  # as stored, not folded


def test_search_follows_remove_and_replace(filled: Any) -> None:
    filled.remove("3.1", "3.1.2")
    (match,) = filled.search(SearchQuery("study", (_c("0020000D", "equal", "3.1"),),
                                         computed=frozenset({"00080061"}))).matches
    assert match["00080061"]["Value"] == ["CT"] and match["00201206"]["Value"] == [1]
    filled.replace(stored("3.2", "3.2.1", "3.2.1.1", number=1, series_number=1, name="Renamed^Anna"))
    assert _studies(filled, _c("00100010", "equal", "RENAMED^ANNA", person_name=True)) == ["3.2"]
    assert _studies(filled, _c("00100010", "equal", "MULLER^ANNA", person_name=True)) == []
    filled.remove("3.2")
    assert "3.2" not in _studies(filled)


def test_a_nul_character_in_a_value_is_stored_and_searched_without_error(search_index: Any) -> None:
    """Hostile files carry NUL inside strings (PostgreSQL text cannot hold it): stored, searchable, no crash."""
    description = {"00081030": {"vr": "LO", "Value": ["Head\x00Neck"]},
                   "00081080": {"vr": "LO", "Value": ["Chest\x00"]}}
    assert search_index.add(stored("5.1", "5.1.1", "5.1.1.1", study_extra=description)) is None
    assert _studies(search_index, _c("00081030", "pattern", "Head*")) == ["5.1"]
    assert _studies(search_index, _c("00081080", "pattern", "Ches*")) == ["5.1"]
    assert _studies(search_index, _c("00081030", "equal", "\x00")) == []
    (match,) = search_index.search(SearchQuery("study")).matches
    assert match["00081030"]["Value"] == ["Head\x00Neck"]  # returned as stored


@pytest.mark.anyio
async def test_a_server_on_the_memory_index_answers_search(tmp_path: Path) -> None:
    """``--index memory:``: every index the server accepts answers Search (it raised AttributeError)."""
    import httpx

    from dicomweb_origin.app import build_app
    from dicomweb_origin.settings import Settings
    from tests.support.reference import source_path

    app = build_app(Settings(data_dir=tmp_path, index_url="memory:", blob_url="memory:"))
    with open(source_path("CT_small.dcm"), "rb") as fp:
        assert app.state.archive.ingest.store(fp).record is not None
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        studies = await client.get("/dicomweb/studies?PatientName=CompressedSamples*",
                                   headers={"Accept": "application/dicom+json"})
        assert studies.status_code == 200, studies.text
        (study,) = studies.json()
        assert study["00100010"]["Value"] == [{"Alphabetic": "CompressedSamples^CT1"}]
        assert study["00201208"]["Value"] == [1] and study["00080061"]["Value"] == ["CT"]
        instances = await client.get(f"/dicomweb/studies/{study['0020000D']['Value'][0]}/instances",
                                     headers={"Accept": "application/dicom+json"})
        assert instances.status_code == 200 and len(instances.json()) == 1
        home = await client.get("/")
        assert "<tr><td>Instances</td><td>1</td></tr>" in home.text
