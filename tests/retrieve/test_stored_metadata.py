"""Study and series metadata served from stored bodies (retrieve/metadata.py ``StoredMetadata``).

The oracle is the computed answer: the instances' stored DICOM JSON joined for the request's root
(``dicom.jsonwriter.json_array``), and its gzip. Through the real HTTP stack, on pydicom's bundled files, the
generated demo study and synthetic series: the bytes are those, the first time (built) and the next (read back),
and a change (STOW, DELETE, replace; through another application on the same archive) shows at the next request.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from dicomweb_origin.check import check
from dicomweb_origin.dicom.jsonwriter import json_array
from dicomweb_origin.retrieve.metadata import STORED_ROOTS
from dicomweb_origin.storage.base import DERIVED, metadata_folder
from tests.support.archive import LoadedArchive, empty
from tests.support.http import BASE_URL, DICOM_JSON, ROOT, asgi_client, path_of, stow
from tests.support.reference import REFERENCES
from tests.support.synthetic import instance_bytes, uid

pytestmark = pytest.mark.anyio

PLAIN = {"Accept": DICOM_JSON, "Accept-Encoding": "identity"}
GZIP = {"Accept": DICOM_JSON, "Accept-Encoding": "gzip"}


def computed(archive: LoadedArchive, study: str, series: str | None = None, root: str = BASE_URL + ROOT) -> bytes:
    """The body as it was computed on every request before bodies were stored."""
    return json_array(archive.index.metadata(archive.instances(study, series)), root)


def stored(archive: LoadedArchive, study: str, series: str | None = None) -> list[str]:
    return sorted(archive.blobs.keys(metadata_folder(study, series or "study")))


async def both(client: httpx.AsyncClient, url: str) -> tuple[httpx.Response, bytes]:
    """The identity answer and the raw bytes of the gzip answer (the body itself when too small to compress)."""
    plain = await client.get(url, headers=PLAIN)
    async with client.stream("GET", url, headers=GZIP) as raw:
        assert raw.status_code == 200
        packed = b"".join([chunk async for chunk in raw.aiter_raw()])
        assert raw.headers.get("content-encoding") == ("gzip" if len(plain.content) >= 1024 else None)
    return plain, packed


def targets(archive: LoadedArchive) -> list[tuple[str, str | None]]:
    """Every study and series of the loaded archive: pydicom's files and the generated demo."""
    found: set[tuple[str, str | None]] = set()
    for result in [*archive.results.values(), *archive.demo.values()]:
        record = result.record
        assert record is not None
        found |= {(record.study_uid, None), (record.study_uid, record.series_uid)}
    return sorted(found, key=lambda t: (t[0], t[1] or ""))


async def test_stored_bodies_are_the_computed_bytes(client: httpx.AsyncClient, archive: LoadedArchive) -> None:
    """Built on the first request, read back on the next: byte for byte the computed body, and its gzip."""
    assert len(targets(archive)) >= len(REFERENCES) // 2
    for study, series in targets(archive):
        url = f"studies/{study}" + (f"/series/{series}" if series else "") + "/metadata"
        expected = computed(archive, study, series)
        for _ in range(2):
            plain, packed = await both(client, url)
            assert plain.status_code == 200 and plain.content == expected, url
            assert packed == (gzip.compress(expected, 4, mtime=0) if len(expected) >= 1024 else expected), url
        keys = stored(archive, study, series)
        assert len(keys) == 2 and keys[0].endswith(".json") and keys[1] == keys[0] + ".gz"
        assert archive.blobs.read(keys[0]) == expected


async def test_validators_are_unchanged(client: httpx.AsyncClient) -> None:
    """ETag, Vary, 304 for either variant, Content-Location: as for a computed body."""
    url = f"{path_of('CT_small', 'series')}/metadata"
    plain = await client.get(url, headers=PLAIN)
    zipped = await client.get(url, headers=GZIP)
    tag = plain.headers["etag"]
    assert zipped.headers["etag"] == tag[:-1] + '-gzip"'
    assert zipped.headers["content-location"] == plain.headers["content-location"] == f"{BASE_URL}{ROOT}/{url}"
    assert plain.headers["vary"] == zipped.headers["vary"] == "Accept, Accept-Encoding"
    for held in (tag, zipped.headers["etag"]):
        again = await client.get(url, headers=GZIP | {"If-None-Match": held})
        assert again.status_code == 304 and again.headers["etag"] == held and not again.content


async def test_each_root_gets_its_own_links(archive: LoadedArchive) -> None:
    """BulkDataURIs follow the request's root (Host, X-Forwarded-*): a body per root, a few roots per content."""
    study = next(r.record.study_uid for r in archive.results.values() if r.record and r.record.pixel)
    url = f"{ROOT}/studies/{study}/metadata"
    hosts = [f"localhost:{8000 + n}" for n in range(STORED_ROOTS + 2)]
    for host in hosts:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=archive.app),
                                     base_url=f"http://{host}") as client:
            for _ in range(2):
                answer = await client.get(url, headers=PLAIN)
                assert answer.status_code == 200
                assert answer.content == computed(archive, study, root=f"http://{host}{ROOT}")
                assert f"http://{host}{ROOT}/studies/".encode() in answer.content
    bodies = [k for k in stored(archive, study) if k.endswith(".json")]
    assert STORED_ROOTS <= len(bodies) <= STORED_ROOTS + 1  # the testserver root too, if an earlier test asked


async def test_a_change_shows_at_the_next_request(empty_archive: LoadedArchive) -> None:
    """STOW of one more instance, DELETE of one, DELETE of a series: the next answer is the computed one."""
    study, one, two = uid(81), uid(81, 1), uid(81, 2)
    parts = [instance_bytes(study, one, uid(81, 1, n), instance_number=n) for n in (1, 2, 3)]
    async with asgi_client(empty_archive.app) as client:
        assert (await stow(client, *parts)).status_code == 200
        series_url, study_url = f"studies/{study}/series/{one}/metadata", f"studies/{study}/metadata"

        async def check_both(count: int) -> None:
            for url, series in ((series_url, one), (study_url, None)):
                plain, packed = await both(client, url)
                assert len(plain.json()) == (count if series else len(empty_archive.instances(study)))
                assert plain.content == computed(empty_archive, study, series)
                assert gzip.decompress(packed) == plain.content
                assert len(stored(empty_archive, study, series)) == 2  # earlier contents' bodies removed

        await check_both(3)
        assert (await stow(client, instance_bytes(study, one, uid(81, 1, 4), instance_number=4))).status_code == 200
        await check_both(4)
        assert (await stow(client, instance_bytes(study, two, uid(81, 2, 1)))).status_code == 200
        await check_both(4)
        assert (await client.delete(f"studies/{study}/series/{one}/instances/{uid(81, 1, 2)}")).status_code == 204
        await check_both(3)
        assert (await client.delete(f"studies/{study}/series/{two}")).status_code == 204
        await check_both(3)
        assert stored(empty_archive, study, two) == []  # DELETE removed what it made wrong
        assert (await client.delete(f"studies/{study}")).status_code == 204
        assert (await client.get(study_url, headers=PLAIN)).status_code in (404, 410)
        assert list(empty_archive.blobs.keys(metadata_folder(study))) == []


async def test_a_replaced_instance_shows_at_the_next_request(tmp_path: Path, archive_settings: Any) -> None:
    archive = empty(archive_settings(tmp_path / "data", on_conflict="replace"))
    study, series, sop = uid(82), uid(82, 1), uid(82, 1, 1)
    try:
        async with asgi_client(archive.app) as client:
            url = f"studies/{study}/series/{series}/metadata"
            assert (await stow(client, instance_bytes(study, series, sop, "BEFORE^ONE"))).status_code == 200
            first = await client.get(url, headers=PLAIN)
            assert first.json()[0]["00100010"]["Value"][0]["Alphabetic"] == "BEFORE^ONE"
            assert (await stow(client, instance_bytes(study, series, sop, "AFTER^TWO"))).status_code == 200
            for _ in range(2):
                plain, packed = await both(client, url)
                assert plain.json()[0]["00100010"]["Value"][0]["Alphabetic"] == "AFTER^TWO"
                assert plain.content == computed(archive, study, series)
                assert json.loads(gzip.decompress(packed)) == plain.json()
                assert plain.headers["etag"] != first.headers["etag"]
    finally:
        archive.close()


async def test_another_process_sees_a_change_at_once(empty_archive: LoadedArchive) -> None:
    """Two applications on one archive (two server processes' state): what one stores or deletes, the other's
    next metadata answer shows, although it had a stored body of the earlier contents."""
    other = empty(empty_archive.settings)
    study, series = uid(83), uid(83, 1)
    url = f"studies/{study}/series/{series}/metadata"
    try:
        async with asgi_client(empty_archive.app) as writer, asgi_client(other.app) as reader:
            assert (await stow(writer, instance_bytes(study, series, uid(83, 1, 1)))).status_code == 200
            assert len((await reader.get(url, headers=PLAIN)).json()) == 1
            assert (await stow(writer, instance_bytes(study, series, uid(83, 1, 2), instance_number=2))).status_code \
                == 200
            plain, packed = await both(reader, url)
            assert len(plain.json()) == 2 and plain.content == computed(empty_archive, study, series)
            assert len(json.loads(gzip.decompress(packed))) == 2
            assert (await writer.delete(f"studies/{study}/series/{series}/instances/{uid(83, 1, 1)}")).status_code \
                == 204
            assert len((await reader.get(url, headers=PLAIN)).json()) == 1
    finally:
        other.close()


async def test_concurrent_builders_leave_one_correct_body(empty_archive: LoadedArchive) -> None:
    """Several applications building the same body at once: one body and its gzip stay, both correct."""
    others = [empty(empty_archive.settings) for _ in range(3)]
    study, series = uid(84), uid(84, 1)
    parts = [instance_bytes(study, series, uid(84, 1, n), instance_number=n) for n in range(1, 41)]
    url = f"studies/{study}/series/{series}/metadata"
    try:
        async with asgi_client(empty_archive.app) as writer:
            assert (await stow(writer, *parts)).status_code == 200
        expected = computed(empty_archive, study, series)
        clients = [asgi_client(a.app) for a in [empty_archive, *others]]
        answers = await asyncio.gather(*(c.get(url, headers=h) for c in clients for h in (PLAIN, GZIP) * 2))
        for c in clients:
            await c.aclose()
        for answer in answers:
            assert answer.status_code == 200 and answer.content == expected
        keys = stored(empty_archive, study, series)
        assert len(keys) == 2
        assert empty_archive.blobs.read(keys[0]) == expected
        assert empty_archive.blobs.read(keys[1]) == gzip.compress(expected, 4, mtime=0)
    finally:
        for other in others:
            other.close()


async def test_stored_bodies_are_no_orphans(empty_archive: LoadedArchive) -> None:
    """``check`` and ``copy`` walk instances' blobs: derived bodies are neither orphans nor instances."""
    study, series = uid(85), uid(85, 1)
    async with asgi_client(empty_archive.app) as client:
        assert (await stow(client, instance_bytes(study, series, uid(85, 1, 1)))).status_code == 200
        assert (await client.get(f"studies/{study}/metadata", headers=PLAIN)).status_code == 200
    assert len(stored(empty_archive, study)) == 2
    assert all(not key.startswith(DERIVED) for key in empty_archive.blobs.keys())
    report = check(empty_archive.index, empty_archive.blobs, repair=True, grace=0)
    assert report.problems == [] and len(stored(empty_archive, study)) == 2


async def test_a_large_body_is_streamed_from_storage(client: httpx.AsyncClient, archive: LoadedArchive,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the size sent in one go (made small here), the stored body is streamed with its Content-Length."""
    from dicomweb_origin.web import send

    monkeypatch.setattr(send, "SMALL_BODY", 1000)
    study = next(iter(archive.demo.values())).record
    assert study is not None
    url = f"studies/{study.study_uid}/metadata"
    expected = computed(archive, study.study_uid)
    assert len(expected) > 1000
    for _ in range(2):
        answer = await client.get(url, headers=PLAIN)
        assert answer.status_code == 200 and answer.content == expected
        assert answer.headers["content-length"] == str(len(expected))
