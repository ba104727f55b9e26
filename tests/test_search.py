"""Search (QIDO-RS, PS3.18 §10.6) through the real ASGI application, over real DICOM files.

The archive holds the demo generator's output (three CT studies and an MR with leading-zero UIDs, all
of one patient; eight pydicom test files, each its own study) and four studies written here from pydicom's ``CT_small.dcm`` with the
attributes the matching rules need: a CT+PT study with a RequestAttributesSequence, accented and
differently cased names, dates around a combined date-time range, and a study without a Modality.
"""

from __future__ import annotations

import gzip
import io
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import UID, generate_uid
from starlette.applications import Starlette

from dicomweb_origin.app import build_app
from dicomweb_origin.demo import DEMO_STUDIES, generate_demo
from dicomweb_origin.ingest import Ingest, Outcome
from dicomweb_origin.model.media import Acceptable
from dicomweb_origin.model.stored import StoredInstance
from dicomweb_origin.search import Search
from dicomweb_origin.settings import Settings
from dicomweb_origin.storage.base import Condition, SearchQuery
from dicomweb_origin.storage.inmemory import MemoryBlobStore
from dicomweb_origin.storage.records import column_value, record_to_json
from dicomweb_origin.storage.sqlite import MIGRATIONS
from tests.support.http import parse_multipart
from tests.support.reference import source_path

pytestmark = pytest.mark.anyio

BASE = "http://testserver"
SERVICE = f"{BASE}/dicomweb"
JSON = {"Accept": "application/dicom+json"}
XML = 'multipart/related; type="application/dicom+xml"'
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"


def uid(*parts: object) -> str:
    return str(generate_uid(entropy_srcs=["dicomweb-origin search tests", *map(str, parts)]))


@dataclass(frozen=True)
class Made:
    """One instance written by ``_craft``: (study key, series number, instance number) and attributes."""

    study: str
    series: int
    number: int
    values: tuple[tuple[str, Any], ...] = ()


# X: CT + PT study, RequestAttributesSequence on the PT series. Y, Z, W: one CT instance each.
STUDIES = {
    "X": (("PatientName", "Müller^Hans"), ("PatientID", "MUE-1"), ("StudyDate", "20060705"),
          ("StudyTime", "120000"), ("AccessionNumber", "ACC-X"), ("StudyDescription", "Two modalities")),
    "Y": (("PatientName", "mueller^hans"), ("PatientID", "MUE-2"), ("StudyDate", "20060707"),
          ("StudyTime", "090000"), ("AccessionNumber", "ACC-Y")),
    "Z": (("PatientName", "Zeta^Zoe"), ("PatientID", "ZZ-3"), ("StudyDate", "20060706"), ("StudyTime", "200000"),
          ("AccessionNumber", "ACC-Z")),
    "W": (("PatientName", "Without^Modality"), ("PatientID", "WW-4"), ("StudyDate", "20060705"),
          ("StudyTime", "080000"), ("AccessionNumber", "ACC-W")),
}
MADE = (
    Made("X", 1, 1), Made("X", 1, 2),
    Made("X", 2, 1, (("Modality", "PT"), ("SOPClassUID", "1.2.840.10008.5.1.4.1.1.128"))),
    Made("Y", 1, 1), Made("Z", 1, 1), Made("W", 1, 1, (("Modality", None),)),
)


def _craft(made: Made, folder: Path) -> Path:
    ds = pydicom.dcmread(source_path("CT_small.dcm"))
    ds.SpecificCharacterSet = "ISO_IR 192"
    for keyword, value in STUDIES[made.study] + made.values:
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    ds.StudyInstanceUID = uid(made.study)
    ds.StudyID = made.study
    ds.SeriesInstanceUID = uid(made.study, made.series)
    ds.SeriesNumber = made.series
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = UID(uid(made.study, made.series, made.number))
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.InstanceNumber = made.number
    if made.series == 2:
        item = Dataset()
        item.ScheduledProcedureStepID = "SPS-77"
        item.RequestedProcedureID = "RP-9"
        ds.RequestAttributesSequence = [item]
    path = folder / f"{made.study}-{made.series}-{made.number}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def crafted_files(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [_craft(made, folder) for made in MADE]


@dataclass
class Loaded:
    app: Starlette
    settings: Settings
    files: list[Path]

    @property
    def search(self) -> Search:
        return self.app.state.archive.search


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory, archive_settings: Any) -> Loaded:
    root = tmp_path_factory.mktemp("search")
    settings = archive_settings(root / "data")
    app = build_app(settings)
    files = generate_demo(root / "demo", slices=3, size=32) + crafted_files(root / "crafted")
    for path in files:
        with open(path, "rb") as fp:
            assert app.state.archive.ingest.store(fp).outcome is Outcome.STORED, path
    return Loaded(app, settings, files)


@pytest.fixture
async def client(loaded: Loaded) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=loaded.app)
    async with httpx.AsyncClient(transport=transport, base_url=f"{SERVICE}/") as c:
        yield c


STUDY_COUNT = len(DEMO_STUDIES) + 8 + 4  # demo studies, pydicom test files, crafted here


async def search(client: httpx.AsyncClient, url: str, **headers: str) -> list[dict[str, Any]]:
    response = await client.get(url, headers=JSON | headers)
    assert response.status_code == 200, (url, response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/dicom+json")
    result = response.json()
    assert isinstance(result, list)
    return result


def value(result: dict[str, Any], tag: str) -> Any:
    element = result.get(tag, {})
    values = element.get("Value")
    if not values:
        return None
    first = values[0]
    return first["Alphabetic"] if isinstance(first, dict) else first


def values(results: list[dict[str, Any]], tag: str) -> list[Any]:
    return [value(r, tag) for r in results]


def warnings(response: httpx.Response) -> list[str]:
    return response.headers.get_list("warning")


# -- Resources (Table 10.6.1-1) and returned attributes (Tables 10.6.3-3, -4, -5) --------------------

STUDY_REQUIRED = ("00080020", "00080030", "00080050", "00080090", "00100010", "00100020", "00100030",
                  "00100040", "0020000D", "00200010", "00201206", "00201208")


async def test_all_studies_answers_one_object_per_study_with_required_attributes(
        client: httpx.AsyncClient) -> None:
    results = await search(client, "studies")
    assert len(results) == STUDY_COUNT
    for result in results:
        for tag in STUDY_REQUIRED:  # Table 10.6.3-3: R attributes, present even when empty
            assert tag in result, (tag, result)
        assert list(result) == sorted(result)
        assert result["00080056"] == {"vr": "CS", "Value": ["ONLINE"]}
        assert result["00081190"]["Value"] == [f"{SERVICE}/studies/{value(result, '0020000D')}"]
        assert "00080060" not in result and "00080018" not in result  # nothing of lower levels
    # Stable order (§8.3.4.4 idempotent searches): newest StudyDate first, undated last.
    dates = [d for d in values(results, "00080020") if d]
    assert dates == sorted(dates, reverse=True)
    assert values(results, "00080020")[-1] is None


async def test_study_counts_and_modalities_come_from_the_index(client: httpx.AsyncClient) -> None:
    (x,) = await search(client, f"studies?StudyInstanceUID={uid('X')}")
    assert x["00201206"] == {"vr": "IS", "Value": [2]}  # NumberOfStudyRelatedSeries
    assert x["00201208"] == {"vr": "IS", "Value": [3]}  # NumberOfStudyRelatedInstances
    assert x["00080061"] == {"vr": "CS", "Value": ["CT", "PT"]}  # ModalitiesInStudy
    assert value(x, "00100010") == "Müller^Hans"


async def test_modalities_in_study_is_never_sent_empty(client: httpx.AsyncClient) -> None:
    """OHIF 3.13 rejects the whole list when one study has ModalitiesInStudy without a value."""
    (w,) = await search(client, "studies?PatientID=WW-4")
    assert "00080061" not in w
    for result in await search(client, "studies"):
        assert "00080061" not in result or result["00080061"].get("Value")


async def test_study_series(client: httpx.AsyncClient) -> None:
    results = await search(client, f"studies/{uid('X')}/series")
    assert values(results, "00200011") == [1, 2]  # SeriesNumber order
    assert values(results, "00080060") == ["CT", "PT"]
    assert values(results, "0020000E") == [uid("X", 1), uid("X", 2)]
    assert values(results, "0020000D") == [uid("X")] * 2  # parent UID echoed
    assert values(results, "00201209") == [2, 1]  # NumberOfSeriesRelatedInstances
    assert results[0]["00081190"]["Value"] == [f"{SERVICE}/studies/{uid('X')}/series/{uid('X', 1)}"]
    assert "00100010" not in results[0]  # Study's Series: no study attributes unless asked for
    assert results[1]["00400275"]["Value"][0]["00400009"]["Value"] == ["SPS-77"]


async def test_all_series_adds_the_study_attributes(client: httpx.AsyncClient) -> None:
    results = await search(client, "series")
    assert len(results) == STUDY_COUNT + 2  # one series per study, two in X and in the demo report (SR, PDF)
    for result in results:
        for tag in (*STUDY_REQUIRED, "00080060", "0020000E", "00200011", "00201209"):
            assert tag in result, tag


async def test_study_instances_and_series_instances(client: httpx.AsyncClient) -> None:
    study = await search(client, f"studies/{uid('X')}/instances")
    assert values(study, "00080018") == [uid("X", 1, 1), uid("X", 1, 2), uid("X", 2, 1)]
    assert values(study, "00080060") == ["CT", "CT", "PT"]  # Study's Instances: series attributes too
    assert "00100010" not in study[0]
    series = await search(client, f"studies/{uid('X')}/series/{uid('X', 1)}/instances")
    assert values(series, "00200013") == [1, 2]
    first = series[0]
    for tag in ("00080016", "00080018", "00200013", "00280010", "00280011", "00280100", "0020000D", "0020000E"):
        assert tag in first, tag
    assert "00080060" not in first
    assert first["00081190"]["Value"] == [
        f"{SERVICE}/studies/{uid('X')}/series/{uid('X', 1)}/instances/{uid('X', 1, 1)}"]


async def test_all_instances(client: httpx.AsyncClient, loaded: Loaded) -> None:
    results = await search(client, "instances")
    assert len(results) == len(loaded.files)
    assert all("00100020" in r and "00080060" in r and "00080018" in r for r in results)


async def test_an_unknown_study_is_an_empty_result(client: httpx.AsyncClient) -> None:
    assert await search(client, "studies/1.2.3.4/series") == []
    assert await search(client, "studies/1.2.3.4/series/1.2.3.5/instances") == []


async def test_an_invalid_uid_in_the_path_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get("studies/not-a-uid/series", headers=JSON)
    assert response.status_code == 400


async def test_post_studies_stays_store_and_other_methods_are_405(client: httpx.AsyncClient) -> None:
    """§10.6: Search is GET only; POST /studies is the Store transaction (§10.5)."""
    stored = await client.post("studies", content=b"", headers={"Content-Type": "application/dicom"})
    assert stored.status_code == 415  # reached STOW, which wants multipart/related
    response = await client.put("studies")
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["allow"].split(",")} >= {"GET", "POST", "OPTIONS"}
    deleted = await client.delete("series")
    assert deleted.status_code == 405
    assert {m.strip() for m in deleted.headers["allow"].split(",")} == {"GET", "HEAD", "OPTIONS"}
    head = await client.head("studies", headers=JSON)
    assert head.status_code == 200 and head.content == b""


# -- Matching (PS3.4 C.2.2.2, §8.3.4.1) -------------------------------------------------------------

async def test_single_value_matching_is_case_sensitive(client: httpx.AsyncClient) -> None:
    assert values(await search(client, "studies?PatientID=1CT1"), "00100020") == ["1CT1"]
    assert await search(client, "studies?PatientID=1ct1") == []


async def test_match_keys_by_keyword_or_tag_in_either_case(client: httpx.AsyncClient) -> None:
    by_keyword = await search(client, "studies?PatientID=MUE-1")
    assert by_keyword == await search(client, "studies?00100020=MUE-1")
    series = await search(client, f"studies/{uid('X')}/series?0008103e=&00080060=PT")
    assert values(series, "00080060") == ["PT"]


async def test_list_of_uid_matching(client: httpx.AsyncClient) -> None:
    expected = sorted([uid("X"), uid("Y")])
    for separator in (",", "%2C", "%5C"):
        results = await search(client, f"studies?StudyInstanceUID={uid('X')}{separator}{uid('Y')}")
        assert sorted(values(results, "0020000D")) == expected
    response = await client.get("studies?StudyInstanceUID=1.2.x", headers=JSON)
    assert response.status_code == 400 and "StudyInstanceUID" in response.text


async def test_universal_matching_returns_the_attribute(client: httpx.AsyncClient) -> None:
    results = await search(client, "studies?StudyDescription=")
    assert len(results) == STUDY_COUNT
    assert all("00081030" in r for r in results)  # a match key is also a return key
    assert len(await search(client, "studies?PatientName=*")) == STUDY_COUNT


async def test_wildcard_matching(client: httpx.AsyncClient) -> None:
    assert sorted(values(await search(client, "studies?AccessionNumber=DEMO000?"), "00080050")) == sorted(
        study.accession for study in DEMO_STUDIES)
    assert sorted(values(await search(client, "studies?PatientID=*CT?"), "00100020")) == ["1CT1"]
    assert len(await search(client, "studies?StudyDescription=Demo*")) == len(DEMO_STUDIES)
    assert await search(client, "studies?StudyDescription=demo*") == []  # case-sensitive for LO
    assert await search(client, "studies?PatientID=%5B*") == []  # '[' is a literal character


async def test_person_names_ignore_case_accents_and_trailing_components(client: httpx.AsyncClient) -> None:
    assert values(await search(client, "studies?PatientName=lestrade^g"), "00100010") == ["Lestrade^G"]
    assert values(await search(client, "studies?PatientName=Lestrade^G^^"), "00100010") == ["Lestrade^G"]
    assert values(await search(client, "studies?PatientName=MULLER^HANS"), "00100010") == ["Müller^Hans"]
    names = values(await search(client, "studies?PatientName=m?ller^*"), "00100010")
    assert names == ["Müller^Hans"]
    names = values(await search(client, "studies?PatientName=MU*ER^HANS"), "00100010")
    assert sorted(names) == ["Müller^Hans", "mueller^hans"]
    assert values(await search(client, "studies?ReferringPhysicianName=moriarty*"), "00080090") == [
        "Moriarty^James"]


async def test_fuzzy_person_name_matching(client: httpx.AsyncClient) -> None:
    """§8.3.4.2 / C.2.2.2.1.1 (our semantics): a prefix of the name or of any of its components."""
    assert await search(client, "studies?PatientName=han") == []
    names = values(await search(client, "studies?fuzzymatching=true&PatientName=han"), "00100010")
    assert sorted(names) == ["Müller^Hans", "mueller^hans"]
    names = values(await search(client, "studies?fuzzymatching=true&PatientName=LEST"), "00100010")
    assert names == ["Lestrade^G"]
    names = values(await search(client, "studies?fuzzymatching=true&PatientName=*amp*^ct"), "00100010")
    assert names == ["CompressedSamples^CT1"]
    response = await client.get("studies?fuzzymatching=yes", headers=JSON)
    assert response.status_code == 400 and "fuzzymatching" in response.text


async def test_date_single_value_and_ranges(client: httpx.AsyncClient) -> None:
    assert sorted(values(await search(client, "studies?StudyDate=20040826"), "00100020")) == ["4MR1", "8NM1"]
    between = await search(client, "studies?StudyDate=20040101-20041231")
    assert sorted(values(between, "00100020")) == ["1CT1", "4MR1", "8NM1"]
    assert values(await search(client, "studies?StudyDate=-20031231"), "00100020") == ["id11111"]
    assert len(await search(client, "studies?StudyDate=20160101-")) == 2 + len(DEMO_STUDIES)
    assert sorted(values(await search(client, "studies?PatientBirthDate=19700101"), "00100020")) == [
        "DEMO-PHANTOM-1"] * len(DEMO_STUDIES)


async def test_time_ranges_and_truncated_times(client: httpx.AsyncClient) -> None:
    assert sorted(values(await search(client, "studies?StudyTime=1800-1900"), "00100020")) == ["4MR1", "8NM1"]
    assert sorted(values(await search(client, "studies?StudyTime=18"), "00100020")) == ["4MR1", "8NM1"]
    assert sorted(values(await search(client, "studies?StudyTime=-0730"), "00100020")) == ["1CT1"]


async def test_combined_date_and_time_range(client: httpx.AsyncClient) -> None:
    """§8.3.4.1.1: StudyDate and StudyTime ranges together are one date-time range."""
    results = await search(client, "studies?StudyDate=20060705-20060707&StudyTime=1000-1800")
    assert sorted(values(results, "00200010")) == ["X", "Y", "Z"]  # 5th 12:00, 7th 09:00, 6th 20:00
    single_day = await search(client, "studies?StudyDate=20060705&StudyTime=1000-1800")
    assert values(single_day, "00200010") == ["X"]  # a single date is not a range: matched separately


@pytest.mark.parametrize("query", ["StudyDate=notadate", "StudyDate=20241399", "StudyDate=2024-01-01",
                                   "StudyTime=25", "StudyDate=20250101-20240101", "SeriesNumber=abc"])
async def test_invalid_values_are_400_naming_the_parameter(client: httpx.AsyncClient, query: str) -> None:
    url = f"series?{query}"
    response = await client.get(url, headers=JSON)
    assert response.status_code == 400, response.text
    assert query.split("=")[0] in response.text


async def test_modalities_in_study_matches_any_series(client: httpx.AsyncClient) -> None:
    results = await search(client, "studies?ModalitiesInStudy=PT")
    assert values(results, "00200010") == ["X"]
    assert results[0]["00080061"]["Value"] == ["CT", "PT"]  # C.2.2.3: all values returned
    either = await search(client, "studies?ModalitiesInStudy=PT%5CMR")
    assert sorted(values(either, "00100020")) == ["4MR1", "DEMO-PHANTOM-1", "MUE-1"]  # the leading-zero MR
    both = await search(client, "studies?ModalitiesInStudy=PT%5CCT&multiplevaluematching=true")
    assert values(both, "00200010") == ["X"]  # C.2.2.2.8: every value present


async def test_sop_classes_in_study(client: httpx.AsyncClient) -> None:
    results = await search(client, f"studies?SOPClassesInStudy={ENHANCED_CT}&includefield=SOPClassesInStudy")
    assert len(results) == 1 and ENHANCED_CT in results[0]["00080062"]["Value"]


async def test_match_keys_of_other_levels_are_ignored_with_a_warning(client: httpx.AsyncClient) -> None:
    """Table 10.6.1-4: All Studies takes Study keys only."""
    response = await client.get("studies?Modality=CT", headers=JSON)
    assert response.status_code == 200 and len(response.json()) == STUDY_COUNT
    assert any("Modality" in w and w.startswith(f"299 {SERVICE}: ") for w in warnings(response))


async def test_unknown_parameters_are_ignored_with_a_warning(client: httpx.AsyncClient) -> None:
    """§8.3: an unsupported parameter is ignored; we name it in a Warning header."""
    response = await client.get("studies?PatientNmae=X&foo=bar", headers=JSON)
    assert response.status_code == 200 and len(response.json()) == STUDY_COUNT
    texts = warnings(response)
    assert f"299 {SERVICE}: Query parameter PatientNmae is not supported and was ignored" in texts
    assert f"299 {SERVICE}: Query parameter foo is not supported and was ignored" in texts


async def test_warnings_are_bounded(client: httpx.AsyncClient) -> None:
    """Thousands of unknown parameters give a bounded header block, ending with how many were left out."""
    query = "&".join(f"x{n}=1" for n in range(3000))
    response = await client.get(f"studies?{query}", headers=JSON)
    assert response.status_code == 200
    texts = warnings(response)
    assert len(texts) == 21
    assert texts[-1] == f"299 {SERVICE}: 2980 more warnings were left out"


async def test_matching_options_without_support_are_announced(client: httpx.AsyncClient) -> None:
    """§8.3.4.5: emptyvaluematching=true is parsed; we do not support it and say so."""
    response = await client.get("studies?emptyvaluematching=true&limit=1", headers=JSON)
    assert f"299 {SERVICE}: The emptyvaluematching parameter is not supported. Empty Value Matching has not been" \
           " performed." in warnings(response)
    assert (await client.get("studies?emptyvaluematching=1", headers=JSON)).status_code == 400
    assert (await client.get("studies?multiplevaluematching=no", headers=JSON)).status_code == 400


async def test_dicomweb_client_encoding(client: httpx.AsyncClient) -> None:
    """dicomweb-client percent-encodes with quote_plus and repeats includefield once per attribute."""
    results = await search(client, "studies?StudyDescription=Two+modalities&includefield=00081030"
                                    "&includefield=00080062&accept=application%2Fdicom%2Bjson&accept=application%2Fjson")
    assert values(results, "00200010") == ["X"] and "00080062" in results[0]


async def test_a_repeated_match_key_is_400(client: httpx.AsyncClient) -> None:
    """§8.3.4.1: an attribute shall not be repeated."""
    response = await client.get("studies?PatientID=a&00100020=b", headers=JSON)
    assert response.status_code == 400 and "00100020" in response.text


async def test_sequence_matching(client: httpx.AsyncClient) -> None:
    """C.2.2.2.6: one item must match every item key."""
    results = await search(client, "series?RequestAttributesSequence.ScheduledProcedureStepID=SPS-77")
    assert values(results, "0020000E") == [uid("X", 2)]
    assert await search(client, "series?00400275.00400009=SPS-77&00400275.00401001=RP-9") == results
    assert await search(client, "series?00400275.00400009=SPS-77&00400275.00401001=RP-8") == []
    assert await search(client, "series?00400275.00400009=SPS*") == results


async def test_numbers_and_multi_valued_attributes(client: httpx.AsyncClient) -> None:
    assert values(await search(client, f"studies/{uid('X')}/series?SeriesNumber=2"), "00080060") == ["PT"]
    results = await search(client, f"studies/{uid('X')}/instances?InstanceNumber=2")
    assert values(results, "00080018") == [uid("X", 1, 2)]
    axial = await search(client, f"studies/{uid('X')}/instances?ImageType=AXIAL")  # any value (C.2.2.3)
    assert len(axial) == 3 and axial[0]["00080008"]["Value"] == ["ORIGINAL", "PRIMARY", "AXIAL"]


async def test_instance_keys(client: httpx.AsyncClient) -> None:
    results = await search(client, f"instances?SOPClassUID={ENHANCED_CT},{CT_IMAGE}&PatientID=MUE-1")
    assert values(results, "00080018") == [uid("X", 1, 1), uid("X", 1, 2)]
    results = await search(client, f"instances?SOPInstanceUID={uid('Z', 1, 1)}")
    assert values(results, "00200010") == ["Z"]


# -- includefield (§8.3.4.3) -------------------------------------------------------------------------

async def test_includefield_lists_repeats_and_levels(client: httpx.AsyncClient) -> None:
    base = f"studies?StudyInstanceUID={uid('X')}"
    (plain,) = await search(client, base)
    assert "00081030" not in plain
    (listed,) = await search(client, base + "&includefield=00081030,00080060,00080090,00100030")
    assert value(listed, "00081030") == "Two modalities"
    assert "00080060" not in listed  # a Series attribute is not returned on a Study search
    (repeated,) = await search(client, base + "&includefield=StudyDescription&includefield=00080062")
    assert "00081030" in repeated and repeated["00080062"]["Value"] == [
        "1.2.840.10008.5.1.4.1.1.128", CT_IMAGE]
    series = await search(client, f"studies/{uid('X')}/series?includefield=PatientName,SOPInstanceUID")
    assert value(series[0], "00100010") == "Müller^Hans"  # Study attributes may be asked for
    assert "00080018" not in series[0]


async def test_includefield_all(client: httpx.AsyncClient) -> None:
    (x,) = await search(client, "studies?PatientID=MUE-1&includefield=all")
    for tag in ("00081030", "00080062", "00101010", "00201206"):
        assert tag in x, tag
    response = await client.get("studies?includefield=all&includefield=PatientAge", headers=JSON)
    assert response.status_code == 400 and "includefield" in response.text
    response = await client.get("studies?includefield=NotAKeyword", headers=JSON)
    assert response.status_code == 400 and "includefield" in response.text


# -- limit, offset and the Warning header (§8.3.4.4) --------------------------------------------------

async def test_limit_offset_pages_through_a_stable_order(client: httpx.AsyncClient) -> None:
    everything = values(await search(client, "studies"), "0020000D")
    pages = []
    for offset in range(0, STUDY_COUNT, 4):
        response = await client.get(f"studies?limit=4&offset={offset}", headers=JSON)
        assert response.status_code == 200
        pages += values(response.json(), "0020000D")
        remaining = STUDY_COUNT - offset - 4
        expected = [f"299 {SERVICE}: There are {remaining} additional results that can be requested"]
        assert warnings(response) == (expected if remaining > 0 else [])
    assert pages == everything
    assert await search(client, f"studies?offset={STUDY_COUNT}") == []
    assert len(await search(client, "studies?limit=0")) == STUDY_COUNT  # our choice: no limit


@pytest.mark.parametrize("query", ["limit=abc", "limit=-1", "offset=x", "offset=-2", "limit=1&limit=2"])
async def test_invalid_limit_or_offset_is_400(client: httpx.AsyncClient, query: str) -> None:
    response = await client.get(f"studies?{query}", headers=JSON)
    assert response.status_code == 400
    assert query.split("=")[0] in response.text


def test_max_results_caps_a_response(loaded: Loaded) -> None:
    """§10.6.5: the server's maximum number of matches per response; the rest are announced."""
    capped = Search(loaded.app.state.archive.index, max_results=3)
    found = capped.search("studies", [("limit", "10")], [Acceptable("application/dicom+json", False)], SERVICE)
    assert found.payload is not None and len(orjson.loads(found.payload.parts[0].read_all())) == 3
    assert found.warnings == [f"There are {STUDY_COUNT - 3} additional results that can be requested"]


# -- Media types, charset, content coding (§10.6.1.2, §10.6.3) ----------------------------------------

async def test_xml_one_part_per_match(client: httpx.AsyncClient) -> None:
    response = await client.get(f"studies/{uid('X')}/series", headers={"Accept": XML})
    assert response.status_code == 200
    parts = parse_multipart(response, "application/dicom+xml")
    assert len(parts) == 2
    documents = [p.content.decode() for p in parts]
    assert all(d.startswith("<?xml") and "<NativeDicomModel" in d for d in documents)
    assert 'tag="0020000E"' in documents[0] and uid("X", 1) in documents[0]
    assert 'keyword="NumberOfSeriesRelatedInstances"' in documents[0]


async def test_xml_without_matches_is_204(client: httpx.AsyncClient) -> None:
    response = await client.get("studies?PatientID=nobody", headers={"Accept": XML})
    assert response.status_code == 204 and response.content == b""


async def test_json_without_matches_is_an_empty_array(client: httpx.AsyncClient) -> None:
    """Our choice (CP-2473): 200 with ``[]``; OHIF and dicomweb-client both accept it."""
    response = await client.get("studies?PatientID=nobody", headers=JSON)
    assert response.status_code == 200 and response.json() == []


async def test_media_type_negotiation(client: httpx.AsyncClient) -> None:
    for accept in ("*/*", "application/json", "application/dicom+json; q=0.5, */*; q=0.1"):
        response = await client.get("studies?limit=1", headers={"Accept": accept})
        assert response.status_code == 200, accept
        assert response.headers["content-type"].startswith("application/dicom+json")
    response = await client.get("studies?limit=1&accept=application/dicom%2Bjson", headers={"Accept": XML})
    assert response.headers["content-type"].startswith("application/dicom+json")
    assert (await client.get("studies", headers={"Accept": "application/dicom"})).status_code == 406
    assert (await client.get("studies?charset=latin1", headers=JSON)).status_code == 400


async def test_gzip_when_accepted(client: httpx.AsyncClient) -> None:
    raw = await client.get("studies", headers=JSON | {"Accept-Encoding": "gzip"})
    assert raw.headers["content-encoding"] == "gzip"
    assert "accept-encoding" in raw.headers["vary"].lower()
    plain = await client.get("studies", headers=JSON | {"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert raw.json() == plain.json()
    stream = await client.send(client.build_request("GET", "studies", headers=JSON | {"Accept-Encoding": "gzip"}),
                               stream=True)
    body = b"".join([chunk async for chunk in stream.aiter_raw()])
    assert gzip.decompress(body) == plain.content


async def test_etag_and_conditional_search(client: httpx.AsyncClient) -> None:
    first = await client.get("studies?limit=3", headers=JSON)
    again = await client.get("studies?limit=3", headers=JSON | {"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304


# -- OHIF 3.13, request for request (spec/search.md §0) -----------------------------------------------

OHIF = {"Accept": "application/dicom+json", "Accept-Encoding": "gzip, deflate, br, zstd"}
OHIF_STUDY_LIST = "studies?limit=101&offset=0&fuzzymatching=true&includefield=00081030,00080060,00080090,00100030"


async def test_ohif_study_list(client: httpx.AsyncClient) -> None:
    for url in (OHIF_STUDY_LIST, OHIF_STUDY_LIST.replace(",", "%2C")):
        response = await client.get(url, headers=OHIF)
        assert response.status_code == 200 and response.headers["content-encoding"] == "gzip"
        assert warnings(response) == []  # fuzzymatching is supported; nothing is left out
        results = response.json()
        assert len(results) == STUDY_COUNT
        for result in results:
            for tag in ("0020000D", "00100010", "00100020", "00080020", "00080030", "00080050", "00081030",
                        "00080090", "00100030", "00201206", "00201208"):
                if tag != "00081030":
                    assert tag in result, tag
            assert "00080060" not in result
            assert "00080061" not in result or result["00080061"]["Value"]


async def test_ohif_study_by_uid_and_by_patient_id(client: httpx.AsyncClient) -> None:
    (by_uid,) = (await client.get(f"{OHIF_STUDY_LIST}&StudyInstanceUID={uid('X')}", headers=OHIF)).json()
    assert value(by_uid, "00081030") == "Two modalities"
    results = (await client.get(f"{OHIF_STUDY_LIST}&00100020=DEMO-PHANTOM-1", headers=OHIF)).json()
    assert len(results) == len(DEMO_STUDIES) and set(values(results, "00100020")) == {"DEMO-PHANTOM-1"}


async def test_ohif_series_and_first_instance(client: httpx.AsyncClient) -> None:
    study, series = uid("X"), uid("X", 1)
    for includes in ("0008103E,00080021", "00080021,00080031,0008103E,00200011"):
        response = await client.get(f"studies/{study}/series?includefield={includes}", headers=OHIF)
        results = response.json()
        assert values(results, "0020000E") == [uid("X", 1), uid("X", 2)]
        assert all("00080021" in r and "0008103E" in r for r in results)
    bodies = []
    for accept in ("multipart/related; type=application/octet-stream; transfer-syntax=*",
                   'multipart/related; type="application/octet-stream"; transfer-syntax="*"'):
        frames = await client.get(f"studies/{study}/series/{series}/instances/{uid('X', 1, 1)}/frames/1",
                                  headers={"Accept": accept})
        assert frames.status_code == 200, accept
        assert frames.headers["content-type"].startswith('multipart/related; type="application/octet-stream"')
        bodies.append(frames.content)
    assert bodies[0] == bodies[1]  # the same representation, quoted or not
    response = await client.get(f"studies/{study}/series/{series}/instances?limit=1&includefield=00080018",
                                headers=OHIF)
    (first,) = response.json()
    assert value(first, "00080018") == uid("X", 1, 1)
    assert warnings(response) == [f"299 {SERVICE}: There are 1 additional results that can be requested"]


# -- The index: maintained counts and the migration of an existing archive ----------------------------

def test_storing_an_instance_again_does_not_change_the_counts(loaded: Loaded) -> None:
    path = next(p for p in loaded.files if p.name == "X-1-1.dcm")
    with open(path, "rb") as fp:
        assert loaded.app.state.archive.ingest.store(fp).outcome is Outcome.PRESENT
    query = SearchQuery("study", (Condition("0020000D", "study", "equal", (uid("X"),)),))
    page = loaded.app.state.archive.index.search(query)
    assert page.total == 1 and page.matches[0]["00201208"]["Value"] == [3]


class _Recorder:
    """An index that only records what Ingest hands it."""

    def __init__(self) -> None:
        self.stored: list[StoredInstance] = []

    def add(self, stored: StoredInstance) -> None:
        self.stored.append(stored)

    def get(self, instance_uid: str) -> None:
        return None


# The insert of schema version 1, as the first release wrote rows.
_V1_STUDY = ("INSERT OR IGNORE INTO study (study_uid, patient_id, patient_name, patient_birth_date, patient_sex,"
             " study_date, study_time, accession_number, study_id, study_description, referring_physician_name,"
             " attributes, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,0)")
_V1_SERIES = ("INSERT OR IGNORE INTO series (series_uid, study_uid, modality, series_number, series_description,"
              " series_date, series_time, attributes, created_at) VALUES (?,?,?,?,?,?,?,?,0)")
_V1_INSTANCE = ("INSERT INTO instance (instance_uid, series_uid, study_uid, sop_class_uid, instance_number,"
                " transfer_syntax_uid, number_of_frames, size, digest, record, metadata, attributes, stored_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,0)")


def _store(ingest: Ingest, paths: list[Path]) -> list[Outcome]:
    outcomes = []
    for path in paths:
        with open(path, "rb") as fp:
            outcomes.append(ingest.store(fp).outcome)
    return outcomes


def _write_version_1(path: Path, stored: list[StoredInstance]) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in MIGRATIONS[0].split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    for s in stored:
        r = s.record
        study = dict(s.study_attributes)
        series = {k: v for k, v in s.series_attributes.items() if k != "00400275"}  # v1 did not keep it
        conn.execute(_V1_STUDY, (r.study_uid, *(column_value(study, t) for t in (
            "00100020", "00100010", "00100030", "00100040", "00080020", "00080030", "00080050", "00200010",
            "00081030", "00080090")), orjson.dumps(study)))
        conn.execute(_V1_SERIES, (r.series_uid, r.study_uid, *(column_value(series, t) for t in (
            "00080060", "00200011", "0008103E", "00080021", "00080031")), orjson.dumps(series)))
        conn.execute(_V1_INSTANCE, (r.instance_uid, r.series_uid, r.study_uid, r.sop_class_uid, r.instance_number,
                                    r.transfer_syntax_uid, r.number_of_frames, r.size, r.digest,
                                    record_to_json(r), s.metadata, orjson.dumps(s.instance_attributes)))
    conn.close()


async def test_a_version_1_archive_migrates_and_becomes_searchable(tmp_path: Path) -> None:
    recorder = _Recorder()
    ingest = Ingest(recorder, MemoryBlobStore(), Settings(data_dir=tmp_path))
    _store(ingest, crafted_files(tmp_path / "crafted"))
    assert len(recorder.stored) == len(MADE)
    settings = Settings(data_dir=tmp_path / "data")
    settings.data_dir.mkdir()
    _write_version_1(settings.index_path, recorder.stored)

    app = build_app(settings)  # opening the archive migrates it
    conn = sqlite3.connect(settings.index_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    (index,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'series_by_modality'").fetchone()
    assert "study_uid" in index  # version 3 made it covering
    conn.close()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"{SERVICE}/") as c:
        (x,) = await search(c, "studies?PatientName=muller^hans")  # folded names were backfilled
        assert x["00201206"]["Value"] == [2] and x["00201208"]["Value"] == [3]  # counts were backfilled
        assert x["00080061"]["Value"] == ["CT", "PT"]
        pt = await search(c, "series?RequestAttributesSequence.ScheduledProcedureStepID=SPS-77")
        assert values(pt, "0020000E") == [uid("X", 2)]  # the sequence was copied onto the series row
        assert len(await search(c, "studies?StudyDate=20060705-20060707&StudyTime=1000-1800")) == 3
    # New instances keep the counts up to date after the migration.
    archive = app.state.archive
    extra = _craft(Made("X", 3, 1, (("Modality", "MR"),)), tmp_path / "crafted")
    assert _store(archive.ingest, [extra]) == [Outcome.STORED]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"{SERVICE}/") as c:
        (x,) = await search(c, f"studies?StudyInstanceUID={uid('X')}")
        assert x["00201206"]["Value"] == [3] and x["00201208"]["Value"] == [4]
        assert x["00080061"]["Value"] == ["CT", "MR", "PT"]


def test_stored_bytes_are_real_dicom(loaded: Loaded) -> None:
    crafted = [p for p in loaded.files if p.parent.name == "crafted"]
    assert len(crafted) == len(MADE)
    for path in crafted:
        ds = pydicom.dcmread(io.BytesIO(path.read_bytes()))
        assert ds.StudyInstanceUID == uid(path.name[0])
