"""DELETE of studies, series and instances, and correcting a stored instance (``--on-conflict replace``).

Not a PS3.18 transaction: what dcm4chee-arc and Orthanc offer (docs/conformance.md, "Deleting and
correcting"). 204 No Content when deleted, now or before (tombstones make it idempotent); 404 for
what was never stored; afterwards every Retrieve resource of it answers 410 Gone (PS3.18 §8.5) and
Search no longer finds it. Through the real ASGI application over real SQLite and files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from dicomweb_origin.app import build_app
from dicomweb_origin.ingest import DIFFERENT_CONTENT
from tests.support.archive import LoadedArchive
from tests.support.http import (
    BASE_URL,
    FAILURE_REASON,
    MULTIPART_DICOM,
    MULTIPART_OCTET,
    ROOT,
    failed,
    referenced,
    stow_body,
    stow_result,
)
from tests.support.server import live_server
from tests.support.synthetic import instance_bytes, uid

pytestmark = pytest.mark.anyio

STUDY = uid(7)
SERIES_A, SERIES_B = uid(7, 1), uid(7, 2)
A1, A2, B1 = uid(7, 1, 1), uid(7, 1, 2), uid(7, 2, 1)
DICOM_STORED = 'application/dicom; transfer-syntax=*'


def _files() -> dict[str, bytes]:
    return {A1: instance_bytes(STUDY, SERIES_A, A1, instance_number=1),
            A2: instance_bytes(STUDY, SERIES_A, A2, instance_number=2),
            B1: instance_bytes(STUDY, SERIES_B, B1)}


def _path(instance: str) -> str:
    series = SERIES_B if instance == B1 else SERIES_A
    return f"studies/{STUDY}/series/{series}/instances/{instance}"


async def _loaded(client: httpx.AsyncClient) -> dict[str, bytes]:
    files = _files()
    response, module = await stow_result(client, list(files.values()))
    assert response.status_code == 200 and len(referenced(module)) == 3
    return files


def _blob_files(archive: LoadedArchive) -> list[str]:
    """The stored blobs, on whichever store the archive uses (files, S3)."""
    return list(archive.blobs.keys())


async def _instance_uids(client: httpx.AsyncClient, path: str = "instances") -> set[str]:
    response = await client.get(path, headers={"Accept": "application/dicom+json"})
    if response.status_code == 204:
        return set()
    assert response.status_code == 200, response.text
    return {item["00080018"]["Value"][0] for item in response.json()}


async def test_delete_an_instance(empty_client: httpx.AsyncClient, empty_archive: LoadedArchive) -> None:
    files = await _loaded(empty_client)
    assert len(_blob_files(empty_archive)) == 3
    response = await empty_client.delete(_path(A1))
    assert response.status_code == 204 and response.content == b""
    for suffix in ("", "/metadata", "/frames/1", "/rendered", "/thumbnail", "/pixeldata", "/bulkdata"):
        gone = await empty_client.get(_path(A1) + suffix)
        assert gone.status_code == 410, (suffix, gone.text)
        assert "deleted" in gone.text
    assert len(_blob_files(empty_archive)) == 2
    assert await _instance_uids(empty_client) == {A2, B1}
    series = await empty_client.get(f"studies/{STUDY}/series/{SERIES_A}/metadata")
    assert [item["00080018"]["Value"][0] for item in series.json()] == [A2]
    again = await empty_client.delete(_path(A1))
    assert again.status_code == 204  # idempotent (RFC 9110 §9.2.2)
    kept = await empty_client.get(_path(A2), headers={"Accept": DICOM_STORED})
    assert kept.status_code == 200 and kept.content == files[A2]


async def test_delete_a_series_then_the_study(empty_client: httpx.AsyncClient, empty_archive: LoadedArchive) -> None:
    files = await _loaded(empty_client)
    assert (await empty_client.delete(f"studies/{STUDY}/series/{SERIES_A}")).status_code == 204
    assert (await empty_client.get(f"studies/{STUDY}/series/{SERIES_A}")).status_code == 410
    assert (await empty_client.get(_path(A2))).status_code == 410
    (study,) = (await empty_client.get("studies", headers={"Accept": "application/dicom+json"})).json()
    assert study["00201206"]["Value"] == [1] and study["00201208"]["Value"] == [1]  # series, instances left
    series = (await empty_client.get(f"studies/{STUDY}/series", headers={"Accept": "application/dicom+json"})).json()
    assert [s["0020000E"]["Value"][0] for s in series] == [SERIES_B]
    whole = await empty_client.get(f"studies/{STUDY}", headers={"Accept": f'multipart/related; type="{DICOM_STORED}"'})
    assert whole.status_code == 200 and files[B1] in whole.content and files[A2] not in whole.content

    assert (await empty_client.delete(f"studies/{STUDY}")).status_code == 204
    for path in (f"studies/{STUDY}", f"studies/{STUDY}/metadata", f"studies/{STUDY}/series/{SERIES_B}", _path(B1)):
        assert (await empty_client.get(path)).status_code == 410, path
    assert (await empty_client.get("studies", headers={"Accept": "application/dicom+json"})).json() == []
    assert _blob_files(empty_archive) == []
    assert empty_archive.index.count() == 0
    for path in (f"studies/{STUDY}", f"studies/{STUDY}/series/{SERIES_A}", _path(A1)):
        assert (await empty_client.delete(path)).status_code == 204, path


async def test_what_was_never_stored_is_404(empty_client: httpx.AsyncClient) -> None:
    await _loaded(empty_client)
    for path in (f"studies/{uid(8)}", f"studies/{STUDY}/series/{uid(8, 1)}", _path(uid(7, 1, 9)),
                 f"studies/{STUDY}/series/{SERIES_B}/instances/{A1}"):  # A1 exists, but not in that series
        response = await empty_client.delete(path)
        assert response.status_code == 404, path
        assert "not stored" in response.text
        assert (await empty_client.get(path)).status_code == 404, path  # never deleted: 404, not 410
    assert (await empty_client.delete("studies/1.2.x")).status_code == 400
    assert (await empty_client.get(_path(A1))).status_code == 200  # nothing was touched


async def test_no_cache_serves_a_deleted_instance(empty_client: httpx.AsyncClient,
                                                 empty_archive: LoadedArchive) -> None:
    await _loaded(empty_client)
    retrieve = empty_archive.app.state.archive.retrieve
    requests = {
        "/frames/1": MULTIPART_OCTET,  # native frames
        "/frames/1?": 'multipart/related; type="image/jls"',  # transcoded: the frame cache
        "/rendered": "image/png",  # the rendered cache
        "/thumbnail": "image/jpeg",
        "/metadata": "application/dicom+json",  # gzip: the compressed-body cache
        "": MULTIPART_DICOM,
    }
    etags = {}
    for suffix, accept in requests.items():
        response = await empty_client.get(_path(A1) + suffix, headers={"Accept": accept, "Accept-Encoding": "gzip"})
        assert response.status_code == 200, (suffix, response.text)
        etags[suffix] = response.headers["etag"]
    series = await empty_client.get(f"studies/{STUDY}/series/{SERIES_A}/metadata",
                                    headers={"Accept-Encoding": "gzip"})
    assert series.status_code == 200 and len(series.json()) == 2
    assert retrieve.sources.cache.size > 0 and retrieve.rendered_cache.size > 0
    assert empty_archive.app.state.gzip_cache.size > 0
    assert (await empty_client.delete(_path(A1))).status_code == 204
    for suffix, accept in requests.items():
        response = await empty_client.get(_path(A1) + suffix, headers={
            "Accept": accept, "Accept-Encoding": "gzip", "If-None-Match": etags[suffix]})
        assert response.status_code == 410, suffix  # not 200 from a cache, nor 304
    series = await empty_client.get(f"studies/{STUDY}/series/{SERIES_A}/metadata",
                                    headers={"Accept-Encoding": "gzip", "If-None-Match": series.headers["etag"]})
    assert series.status_code == 200 and [i["00080018"]["Value"][0] for i in series.json()] == [A2]


async def test_store_again_after_delete(empty_client: httpx.AsyncClient, empty_archive: LoadedArchive) -> None:
    files = await _loaded(empty_client)
    assert (await empty_client.delete(f"studies/{STUDY}")).status_code == 204
    response, module = await stow_result(empty_client, [files[A1]])
    assert response.status_code == 200 and len(referenced(module)) == 1
    back = await empty_client.get(_path(A1), headers={"Accept": DICOM_STORED})
    assert back.status_code == 200 and back.content == files[A1]
    assert (await empty_client.get(_path(A2))).status_code == 410  # still deleted
    assert await _instance_uids(empty_client) == {A1}


async def test_different_content_is_409_unless_replace(empty_client: httpx.AsyncClient, tmp_path: Path,
                                                       archive_settings: Any) -> None:
    await _loaded(empty_client)
    corrected = instance_bytes(STUDY, SERIES_A, A1, patient_name="ROE^JANE")
    response, module = await stow_result(empty_client, [corrected])
    assert response.status_code == 409
    assert failed(module)[0][FAILURE_REASON]["Value"] == [DIFFERENT_CONTENT]

    settings = archive_settings(tmp_path / "replace", on_conflict="replace")
    app = build_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL + ROOT + "/") as client:
        files = await _loaded(client)
        before = await client.get(_path(A1) + "/metadata")
        old_blobs = set(app.state.archive.blobs.keys())
        response, module = await stow_result(client, [corrected])
        assert response.status_code == 200 and len(referenced(module)) == 1
        back = await client.get(_path(A1), headers={"Accept": DICOM_STORED})
        assert back.content == corrected != files[A1]
        after = await client.get(_path(A1) + "/metadata", headers={"If-None-Match": before.headers["etag"]})
        assert after.status_code == 200 and after.headers["etag"] != before.headers["etag"]
        assert after.json()[0]["00100010"]["Value"] == [{"Alphabetic": "ROE^JANE"}]
        studies = (await client.get("studies", headers={"Accept": "application/dicom+json"})).json()
        assert [s["00100010"]["Value"] for s in studies] == [[{"Alphabetic": "ROE^JANE"}]]
        assert studies[0]["00201208"]["Value"] == [3]
        new_blobs = set(app.state.archive.blobs.keys())
        assert len(new_blobs) == 3 and len(old_blobs - new_blobs) == 1  # the replaced blob is gone
        again, _ = await stow_result(client, [corrected])
        assert again.status_code == 200  # the same bytes again: already present


async def test_capabilities_list_delete(empty_client: httpx.AsyncClient) -> None:
    for path in (f"studies/{STUDY}", f"studies/{STUDY}/series/{SERIES_A}", _path(A1)):
        response = await empty_client.options(path)
        assert "DELETE" in response.headers["allow"], path
        assert 'method name="DELETE"' in response.text
    assert "DELETE" not in (await empty_client.options(_path(A1) + "/metadata")).headers["allow"]
    assert (await empty_client.delete(_path(A1) + "/metadata")).status_code == 405


def test_a_real_server_deletes_and_replaces(tmp_path: Path) -> None:
    """``serve --on-conflict replace`` as a process: STOW, correct, DELETE, 410, over a real socket."""
    data = tmp_path / "data"
    data.mkdir()
    with live_server(data, "--on-conflict", "replace") as server:
        with httpx.Client(base_url=server.url + "/", timeout=30) as client:
            for content in (_files()[A1], instance_bytes(STUDY, SERIES_A, A1, patient_name="ROE^JANE")):
                body, content_type = stow_body([content])
                response = client.post("studies", content=body, headers={"Content-Type": content_type})
                assert response.status_code == 200, response.text
                back = client.get(_path(A1), headers={"Accept": DICOM_STORED})
                assert back.status_code == 200 and back.content == content
            assert client.delete(_path(A1)).status_code == 204
            assert client.delete(_path(A1)).status_code == 204
            assert client.get(_path(A1)).status_code == 410
            assert client.delete(f"studies/{uid(8)}").status_code == 404
    assert [p for p in (data / "blobs").rglob("*.dcm")] == []
