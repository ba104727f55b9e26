"""UIDs with leading zeros in a component, and the UIDs that are still refused (PS3.5 §9.1).

PS3.5 §9.1 forbids a leading zero in a UID component, yet real modalities write UIDs such as
``1.2.246.352.91.0000217.20050503182534``. This archive stores and serves them, compared as exact strings
(``...0000217...`` is not ``...217...``). What it refuses, at ingest and in URLs and search parameters, is
what cannot be a UID at all: an empty value, a character other than a digit or a dot, more than 64
characters, an empty component or a leading or trailing dot; the refusal says which UID and why.

The files are pydicom's own (CT_small, MR_small, the 10-frame emri_small, the JPEG Lossless SV1
SC_rgb_jpeg_gdcm) rewritten with such UIDs, imported with ``dicomweb-origin import`` or stored with STOW-RS,
then read back through the real ASGI application.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file
from pydicom.encaps import generate_frames
from pydicom.uid import UID
from starlette.applications import Starlette

from dicomweb_origin.app import build_app
from dicomweb_origin.cli import main
from tests.support.http import (
    BASE_URL,
    DICOM_JSON,
    MULTIPART_DICOM,
    MULTIPART_OCTET,
    ROOT,
    asgi_client,
    parse_multipart,
    read_dicom,
    stow_body,
    stow_result,
)

pytestmark = pytest.mark.anyio

STUDY_A = "1.2.246.352.91.0000217.20050503182534"  # as a real treatment planning system writes it
STUDY_B = "1.2.246.352.91.0000217.20050503182535"
STUDY_STRIPPED = "1.2.246.352.91.217.20050503182534"  # STUDY_A without its leading zeros: another study
STORED_DICOM = f"{MULTIPART_DICOM}; transfer-syntax=*"
JSON = {"Accept": DICOM_JSON}
CANNOT_UNDERSTAND = 0xC000  # PS3.4 Annex B.2.3: Error: Cannot understand
FAILURE_REASON, FAILED_SOP_SEQUENCE = "00081197", "00081198"


@dataclass(frozen=True)
class Lz:
    """One pydicom file rewritten with the given Study, Series and SOP Instance UIDs."""

    name: str
    source: str
    study: str
    series: str
    instance: str

    @property
    def path(self) -> str:
        return f"studies/{self.study}/series/{self.series}/instances/{self.instance}"


FILES = (
    Lz("ct", "CT_small.dcm", STUDY_A, f"{STUDY_A}.01", f"{STUDY_A}.01.0001"),
    Lz("mr", "MR_small.dcm", STUDY_A, f"{STUDY_A}.02", f"{STUDY_A}.02.0001"),
    Lz("multiframe", "emri_small.dcm", STUDY_A, f"{STUDY_A}.03", f"{STUDY_A}.03.0001"),
    Lz("jpeg", "SC_rgb_jpeg_gdcm.dcm", STUDY_B, f"{STUDY_B}.001", f"{STUDY_B}.001.0001"),
    Lz("stripped", "CT_small.dcm", STUDY_STRIPPED, f"{STUDY_STRIPPED}.1", f"{STUDY_STRIPPED}.1.1"),
)
BY_NAME = {f.name: f for f in FILES}


@contextlib.contextmanager
def _quiet_pydicom() -> Iterator[None]:
    """pydicom warns on each UID with a leading zero; here they are the point."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Invalid value for VR UI", UserWarning)
        yield


def rewritten(source: str, **values: str) -> bytes:
    """A pydicom test file with some UI values replaced (the SOP Instance UID in File Meta too)."""
    with _quiet_pydicom():
        ds = dcmread(str(get_testdata_file(source, download=False)))
        for keyword, value in values.items():
            setattr(ds, keyword, value)
        if "SOPInstanceUID" in values:
            ds.file_meta.MediaStorageSOPInstanceUID = UID(values["SOPInstanceUID"])
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def lz_bytes(f: Lz) -> bytes:
    data = rewritten(f.source, StudyInstanceUID=f.study, SeriesInstanceUID=f.series, SOPInstanceUID=f.instance)
    with _quiet_pydicom():  # the generated file decodes again to its source's pixels, under the new UIDs
        again, source = dcmread(io.BytesIO(data)), dcmread(str(get_testdata_file(f.source, download=False)))
        assert (str(again.StudyInstanceUID), str(again.SOPInstanceUID)) == (f.study, f.instance)
        assert np.array_equal(again.pixel_array, source.pixel_array)
    return data


def dataset(f: Lz) -> Dataset:
    with _quiet_pydicom():
        return dcmread(io.BytesIO(lz_bytes(f)))


@dataclass
class Imported:
    app: Starlette
    files: dict[str, bytes]  # name -> the bytes imported


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory, archive_settings: Any) -> Imported:
    """An archive filled by ``dicomweb-origin import`` with the rewritten files, served by a fresh app."""
    root = tmp_path_factory.mktemp("uids")
    settings = archive_settings(root / "data")
    index = ["--index", settings.index_url] if settings.index_url else []
    index += ["--blobs", settings.blob_url] if settings.blob_url else []
    files = {f.name: lz_bytes(f) for f in FILES}
    for name, data in files.items():
        (root / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "in" / f"{name}.dcm").write_bytes(data)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        status = main(["import", "--data", str(root / "data"), *index, str(root / "in")])
    assert status == 0, out.getvalue()
    return Imported(build_app(settings), files)


@pytest.fixture
async def imported_client(imported: Imported) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the archive the rewritten files were imported into (``empty_client`` is conftest's)."""
    async with asgi_client(imported.app) as c:
        yield c


def first(element: dict[str, Any]) -> Any:
    return element["Value"][0]


# -- Ingest: the command line and STOW-RS ------------------------------------------------------------


def test_import_stores_files_with_leading_zero_uids(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``dicomweb-origin import`` stores every rewritten file; importing again finds them already present."""
    folder = tmp_path / "in"
    folder.mkdir()
    for f in FILES:
        (folder / f"{f.name}.dcm").write_bytes(lz_bytes(f))
    assert main(["import", "--data", str(tmp_path / "data"), str(folder)]) == 0
    assert "stored: 5  already present: 0  not DICOM: 0  failed: 0" in capsys.readouterr().out
    assert main(["import", "--data", str(tmp_path / "data"), str(folder)]) == 0
    assert "stored: 0  already present: 5  not DICOM: 0  failed: 0" in capsys.readouterr().out


async def test_stow_stores_leading_zero_uids_and_retrieves_them(empty_client: httpx.AsyncClient) -> None:
    """STOW-RS (§10.5): 200, each instance referenced under its own UID, its Retrieve URL working."""
    response, _ = await stow_result(empty_client, [lz_bytes(f) for f in FILES])
    assert response.status_code == 200, response.text
    referenced = response.json()["00081199"]["Value"]
    assert [first(r["00081155"]) for r in referenced] == [f.instance for f in FILES]
    for f, r in zip(FILES, referenced, strict=True):
        assert first(r["00081190"]) == f"{BASE_URL}{ROOT}/{f.path}"
        got = await empty_client.get(f.path, headers={"Accept": "application/dicom; transfer-syntax=*"})
        assert got.status_code == 200 and got.content == lz_bytes(f)


async def test_trailing_space_padding_is_not_part_of_the_uid(empty_client: httpx.AsyncClient) -> None:
    """PS3.5 §6.2: a UI value is padded; the padding is stripped and the UID served without it."""
    f = BY_NAME["ct"]
    data = rewritten(f.source, StudyInstanceUID=f.study + " ", SeriesInstanceUID=f.series + " ",
                     SOPInstanceUID=f.instance)
    response, _ = await stow_result(empty_client, [data])
    assert response.status_code == 200, response.text
    metadata = (await empty_client.get(f"{f.path}/metadata", headers=JSON)).json()
    assert (first(metadata[0]["0020000D"]), first(metadata[0]["0020000E"])) == (f.study, f.series)


# Each refused value, where it goes, and the reason written out here from the rule of PS3.5 §9.1.
REFUSED = [
    ("StudyInstanceUID", "", "Study Instance UID is empty"),
    ("SeriesInstanceUID", "1.2.246.352.91.0000217.2005a",
     "Series Instance UID '1.2.246.352.91.0000217.2005a' contains 'a'; a UID is digits and dots"),
    ("SOPInstanceUID", "1" * 65, f"SOP Instance UID '{'1' * 65}' is 65 characters; a UID is at most 64"),
    ("SOPInstanceUID", "1.2.246.352.", "SOP Instance UID '1.2.246.352.' ends with a dot; a UID ends with a digit"),
    ("StudyInstanceUID", "1.2..3",
     "Study Instance UID '1.2..3' has an empty component ('..'); a UID's components are digits"),
]


@pytest.mark.parametrize(("keyword", "value", "reason"), REFUSED,
                         ids=["empty", "letter", "65 characters", "trailing dot", "empty component"])
async def test_stow_refuses_what_is_not_a_uid_and_says_why(empty_client: httpx.AsyncClient, keyword: str,
                                                           value: str, reason: str) -> None:
    """Table 10.5.3-1: none stored is 409; the failure is 0xC000 and the Warning says which UID and why."""
    data = rewritten("CT_small.dcm", **{keyword: value})
    with _quiet_pydicom():
        assert str(dcmread(io.BytesIO(data))[keyword].value) == value  # the file does carry the bad value
    response, _ = await stow_result(empty_client, [data])
    assert response.status_code == 409, response.text
    (failure,) = response.json()[FAILED_SOP_SEQUENCE]["Value"]
    assert first(failure[FAILURE_REASON]) == CANNOT_UNDERSTAND
    assert reason in response.headers["warning"]


def test_import_refuses_what_is_not_a_uid_and_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for i, (keyword, value, _) in enumerate(REFUSED):
        (folder / f"bad{i}.dcm").write_bytes(rewritten("CT_small.dcm", **{keyword: value}))
    assert main(["import", "--data", str(tmp_path / "data"), str(folder)]) == 1
    out = capsys.readouterr().out
    assert f"stored: 0  already present: 0  not DICOM: 0  failed: {len(REFUSED)}" in out
    for i, (_, _, reason) in enumerate(REFUSED):
        assert f"failed: {folder / f'bad{i}.dcm'}: {reason}" in out.splitlines()


# -- Retrieve (§10.4): every resource under leading-zero UIDs ----------------------------------------


async def test_study_and_series_retrieve(imported_client: httpx.AsyncClient, imported: Imported) -> None:
    """The study holds its three instances, byte for byte; not the study whose UID lacks the zeros."""
    response = await imported_client.get(f"studies/{STUDY_A}", headers={"Accept": STORED_DICOM})
    assert response.status_code == 200
    parts = parse_multipart(response, "application/dicom")
    assert sorted(p.content for p in parts) == sorted(imported.files[n] for n in ("ct", "mr", "multiframe"))
    f = BY_NAME["mr"]
    (part,) = parse_multipart(await imported_client.get(f"studies/{f.study}/series/{f.series}",
                                                        headers={"Accept": STORED_DICOM}))
    assert part.content == imported.files["mr"]
    assert part.location == f"{BASE_URL}{ROOT}/{f.path}"


@pytest.mark.parametrize("name", [f.name for f in FILES])
async def test_instance_retrieve(imported_client: httpx.AsyncClient, imported: Imported, name: str) -> None:
    f = BY_NAME[name]
    stored = await imported_client.get(f.path, headers={"Accept": "application/dicom; transfer-syntax=*"})
    assert stored.status_code == 200 and stored.content == imported.files[name]
    (part,) = parse_multipart(await imported_client.get(f.path, headers={"Accept": MULTIPART_DICOM}),
                              "application/dicom")
    with _quiet_pydicom():
        ds = read_dicom(part.content)
        assert (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID) == (f.study, f.series, f.instance)
        assert np.array_equal(ds.pixel_array, dataset(f).pixel_array)


@pytest.mark.parametrize("level", ["study", "series", "instance"])
async def test_metadata_carries_the_uids_as_written(imported_client: httpx.AsyncClient, level: str) -> None:
    f = BY_NAME["ct"]
    path = {"study": f"studies/{f.study}", "series": f"studies/{f.study}/series/{f.series}", "instance": f.path}[level]
    response = await imported_client.get(f"{path}/metadata", headers=JSON)
    assert response.status_code == 200
    ct = next(i for i in response.json() if first(i["00080018"]) == f.instance)
    assert (first(ct["0020000D"]), first(ct["0020000E"])) == (f.study, f.series)
    assert ct["7FE00010"]["BulkDataURI"] == f"{BASE_URL}{ROOT}/{f.path}/pixeldata"
    assert ct["00431029"]["BulkDataURI"] == f"{BASE_URL}{ROOT}/{f.path}/bulkdata/00431029"


async def test_bulkdata_and_pixeldata(imported_client: httpx.AsyncClient) -> None:
    f = BY_NAME["ct"]
    ds = dataset(f)
    (private,) = parse_multipart(await imported_client.get(f"{f.path}/bulkdata/00431029",
                                                           headers={"Accept": MULTIPART_OCTET}))
    assert private.content == ds[0x00431029].value
    (pixels,) = parse_multipart(await imported_client.get(f"{f.path}/pixeldata",
                                                          headers={"Accept": MULTIPART_OCTET}))
    assert pixels.content == ds.PixelData
    every = parse_multipart(await imported_client.get(f"studies/{f.study}/series/{f.series}/bulkdata",
                                             headers={"Accept": MULTIPART_OCTET}))
    assert {p.content for p in every} >= {ds.PixelData, ds[0x00431029].value}


async def test_frames_of_a_native_multiframe_instance(imported_client: httpx.AsyncClient) -> None:
    f = BY_NAME["multiframe"]
    ds = dataset(f)
    size = ds.Rows * ds.Columns * ds.BitsAllocated // 8
    response = await imported_client.get(f"{f.path}/frames/1,3,10", headers={"Accept": MULTIPART_OCTET})
    assert response.status_code == 200
    assert [p.content for p in parse_multipart(response)] == [ds.PixelData[i * size:(i + 1) * size] for i in (0, 2, 9)]


async def test_frame_of_a_jpeg_instance_as_stored(imported_client: httpx.AsyncClient) -> None:
    f = BY_NAME["jpeg"]
    ds = dataset(f)
    response = await imported_client.get(f"{f.path}/frames/1",
                                headers={"Accept": 'multipart/related; type="image/jpeg"; transfer-syntax=*'})
    assert response.status_code == 200
    (part,) = parse_multipart(response, "image/jpeg")
    assert part.content == next(generate_frames(ds.PixelData, number_of_frames=1))


async def test_options_on_a_leading_zero_resource(imported_client: httpx.AsyncClient) -> None:
    response = await imported_client.options(BY_NAME["jpeg"].path)
    assert response.status_code == 200 and "GET" in response.headers["allow"]


# -- Search (§10.6): match keys, UID lists and the study/series paths --------------------------------


async def search(imported_client: httpx.AsyncClient, url: str, tag: str) -> list[str]:
    response = await imported_client.get(url, headers=JSON)
    assert response.status_code in (200, 204), response.text
    return sorted(first(r[tag]) for r in (response.json() if response.status_code == 200 else []))


STUDY, SERIES, INSTANCE = "0020000D", "0020000E", "00080018"


async def test_search_by_uid_matches_the_exact_string(imported_client: httpx.AsyncClient) -> None:
    """C.2.2.2.1 single value matching of UIDs: exact strings; leading zeros are significant."""
    assert await search(imported_client, "studies", STUDY) == sorted([STUDY_A, STUDY_B, STUDY_STRIPPED])
    assert await search(imported_client, f"studies?StudyInstanceUID={STUDY_A}", STUDY) == [STUDY_A]
    assert await search(imported_client, f"studies?StudyInstanceUID={STUDY_STRIPPED}", STUDY) == [STUDY_STRIPPED]
    mr = BY_NAME["mr"]
    assert await search(imported_client, f"series?SeriesInstanceUID={mr.series}", SERIES) == [mr.series]
    assert await search(imported_client, f"instances?SOPInstanceUID={mr.instance}", INSTANCE) == [mr.instance]
    assert await search(imported_client, f"instances?StudyInstanceUID={STUDY_A}", INSTANCE) == sorted(
        f.instance for f in FILES if f.study == STUDY_A)


@pytest.mark.parametrize("separator", [",", "%2C", "%5C"])
async def test_list_of_uid_matching(imported_client: httpx.AsyncClient, separator: str) -> None:
    """C.2.2.2.2: a list of UIDs, comma-separated in QIDO-RS (backslashes as in DIMSE accepted too)."""
    url = f"studies?StudyInstanceUID={STUDY_A}{separator}{STUDY_B}"
    assert await search(imported_client, url, STUDY) == [STUDY_A, STUDY_B]
    ct, jpeg = BY_NAME["ct"], BY_NAME["jpeg"]
    assert await search(imported_client, f"series?SeriesInstanceUID={ct.series}{separator}{jpeg.series}", SERIES) == sorted(
        [ct.series, jpeg.series])
    assert await search(imported_client, f"instances?SOPInstanceUID={ct.instance}{separator}{jpeg.instance}",
                        INSTANCE) == sorted([ct.instance, jpeg.instance])


async def test_search_below_a_study_and_a_series(imported_client: httpx.AsyncClient) -> None:
    in_a = [f for f in FILES if f.study == STUDY_A]
    assert await search(imported_client, f"studies/{STUDY_A}/series", SERIES) == sorted(f.series for f in in_a)
    assert await search(imported_client, f"studies/{STUDY_A}/instances", INSTANCE) == sorted(f.instance for f in in_a)
    mf = BY_NAME["multiframe"]
    assert await search(imported_client, f"studies/{mf.study}/series/{mf.series}/instances", INSTANCE) == [mf.instance]
    assert await search(imported_client, f"studies/{STUDY_A}/series?SeriesInstanceUID={mf.series}", SERIES) == [mf.series]


# -- Refusals in URLs and search parameters: 400 saying what is wrong with which UID -----------------

BAD_IN_URL = [
    ("1.2.246.352.91.0000217.2005a", "'1.2.246.352.91.0000217.2005a' contains 'a'; a UID is digits and dots"),
    ("1" * 65, f"'{'1' * 65}' is 65 characters; a UID is at most 64"),
    ("1.2..3", "'1.2..3' has an empty component ('..'); a UID's components are digits"),
    ("1.2.3.", "'1.2.3.' ends with a dot; a UID ends with a digit"),
    ("%201.2", "' 1.2' contains ' '; a UID is digits and dots"),
]
_ct = BY_NAME["ct"]
URLS = [  # (method, path with {bad}, Accept, which UID is bad)
    ("GET", "studies/{bad}", STORED_DICOM, "Study Instance"),
    ("GET", f"studies/{_ct.study}/series/{{bad}}", STORED_DICOM, "Series Instance"),
    ("GET", f"studies/{_ct.study}/series/{_ct.series}/instances/{{bad}}", "application/dicom", "SOP Instance"),
    ("GET", "studies/{bad}/metadata", DICOM_JSON, "Study Instance"),
    ("GET", f"studies/{_ct.study}/series/{_ct.series}/instances/{{bad}}/frames/1", MULTIPART_OCTET, "SOP Instance"),
    ("GET", f"studies/{_ct.study}/series/{{bad}}/instances/{_ct.instance}/pixeldata", MULTIPART_OCTET,
     "Series Instance"),
    ("GET", "studies/{bad}/series/1.2/instances/1.2/bulkdata/00431029", MULTIPART_OCTET, "Study Instance"),
    ("GET", "studies/{bad}/series", DICOM_JSON, "Study Instance"),
    ("GET", f"studies/{_ct.study}/series/{{bad}}/instances", DICOM_JSON, "Series Instance"),
    ("OPTIONS", f"studies/{_ct.study}/series/{{bad}}", "application/vnd.sun.wadl+xml", "Series Instance"),
    ("POST", "studies/{bad}", DICOM_JSON, "Study Instance"),
]


@pytest.mark.parametrize(("bad", "reason"), BAD_IN_URL, ids=[b[:12] for b, _ in BAD_IN_URL])
@pytest.mark.parametrize(("method", "template", "accept", "what"), URLS, ids=[u[0] + " " + u[1][-24:] for u in URLS])
async def test_a_malformed_uid_in_a_url_is_400_saying_why(imported_client: httpx.AsyncClient, method: str,
                                                          template: str, accept: str, what: str, bad: str, reason: str) -> None:
    """Table 10.4.3-1 / 10.6.3-1: 400, naming the UID of the path that is wrong and what is wrong with it."""
    body, content_type = stow_body([b"x"])
    headers = {"Accept": accept, **({"Content-Type": content_type} if method == "POST" else {})}
    response = await imported_client.request(method, template.format(bad=bad), headers=headers,
                                    content=body if method == "POST" else None)
    assert response.status_code == 400, response.text
    assert f"{what} UID {reason}" in response.text


@pytest.mark.parametrize(("query", "reason"), [
    (f"studies?StudyInstanceUID={STUDY_A},1.2.x", "StudyInstanceUID '1.2.x' contains 'x'; a UID is digits and dots"),
    (f"series?SeriesInstanceUID={'1' * 65}", f"SeriesInstanceUID '{'1' * 65}' is 65 characters; a UID is at most 64"),
    (f"instances?SOPInstanceUID={STUDY_A}%5C1..2",
     "SOPInstanceUID '1..2' has an empty component ('..'); a UID's components are digits"),
    ("instances?SOPInstanceUID=,", "SOPInstanceUID: ',' holds no UID"),
    (f"studies/{STUDY_A}/series?SeriesInstanceUID=.1", "SeriesInstanceUID '.1' starts with a dot; a UID starts with a digit"),
    ("studies?0020000D=1.2.3a", "0020000D '1.2.3a' contains 'a'; a UID is digits and dots"),  # named as sent
])
async def test_a_malformed_uid_in_a_search_parameter_is_400_saying_why(imported_client: httpx.AsyncClient, query: str,
                                                                       reason: str) -> None:
    response = await imported_client.get(query, headers=JSON)
    assert response.status_code == 400, response.text
    assert reason in response.text
