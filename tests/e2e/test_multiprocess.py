"""Three server processes sharing PostgreSQL + S3 behind nginx behave as one server (the production layout).

Real services on loopback: PostgreSQL (tests/support/postgres.py), Ceph radosgw (tests/support/ceph.py), nginx
running deploy/nginx.conf (tests/support/nginx.py), and ``dicomweb-origin serve --index --blobs`` processes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from tests.support.ceph import CephS3
from tests.support.http import parse_multipart
from tests.support.nginx import nginx, serve_shared
from tests.support.postgres import PostgresServer
from tests.support.server import LiveServer, free_port, stop

pytestmark = pytest.mark.e2e

MULTIPART_DICOM = 'multipart/related; type="application/dicom"'
STORED = MULTIPART_DICOM + "; transfer-syntax=*"
JSON = "application/dicom+json"


def instance(study: str, series: str, number: int, rows: int = 64, frames: int = 1, seed: int = 0) -> bytes:
    """A Part 10 secondary-capture instance with pseudo-random 16-bit pixels."""
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7.3" if frames > 1 else "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[study, series, str(number)])
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.Modality, ds.PatientName, ds.PatientID = "OT", "Scale^Out", "SCALE1"
    ds.StudyDescription, ds.SeriesNumber, ds.InstanceNumber = "multi-process", 1, number
    ds.Rows = ds.Columns = rows
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    rng = np.random.default_rng(seed * 1000 + number)
    ds.PixelData = rng.integers(0, 4096, size=(frames, rows, rows), dtype="<u2").tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def stow_body(parts: list[bytes]) -> tuple[bytes, str]:
    boundary = f"mp{uuid.uuid4().hex}"
    body = b"".join(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + p + b"\r\n" for p in parts)
    return body + f"--{boundary}--\r\n".encode(), f"{MULTIPART_DICOM}; boundary={boundary}"


def stow(url: str, parts: list[bytes]) -> httpx.Response:
    body, content_type = stow_body(parts)
    return httpx.post(url + "/studies", content=body, headers={"Content-Type": content_type,
                                                              "Accept": JSON}, timeout=120)


def uid_of(data: bytes) -> str:
    from pydicom import dcmread

    return str(dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID)


@dataclass
class Layout:
    root: Path
    index: str
    blobs: str
    env: dict[str, str]
    servers: list[LiveServer]
    proxy: LiveServer
    ceph: CephS3
    bucket: str

    def s3_keys(self) -> list[str]:
        client: Any = self.ceph.client()
        return [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
                for o in page.get("Contents", ())]


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory, ceph: CephS3) -> Iterator[Layout]:
    root = tmp_path_factory.mktemp("layout")
    postgres = PostgresServer().start()
    servers: list[LiveServer] = []
    try:
        index = postgres.url("multiprocess")
        bucket = ceph.create_bucket(f"layout-{uuid.uuid4().hex[:12]}")
        blobs = ceph.url(bucket)
        env = ceph.environment()
        subprocess.run([sys.executable, "-m", "dicomweb_origin.cli", "migrate", "--index", index],
                       check=True, env=os.environ | env, capture_output=True)
        # As in production, every process knows the public name nginx answers under (--public-url): the Host
        # nginx forwards is allowed, and the URLs in responses point at nginx, not at one process.
        listen = free_port()
        for _ in range(3):
            servers.append(serve_shared(root, index, blobs, env, public_url=f"http://127.0.0.1:{listen}/dicomweb"))
        ports = [int(s.origin.rsplit(":", 1)[1]) for s in servers]
        with nginx(root / "nginx", ports, listen=listen) as proxy:
            yield Layout(root, index, blobs, env, servers, proxy, ceph, bucket)
    finally:
        for server in servers:
            stop(server.process)
        postgres.stop()


def test_stored_through_one_is_served_by_the_others_at_once(layout: Layout) -> None:
    study, series = generate_uid(), generate_uid()
    parts = [instance(study, series, n) for n in range(1, 7)]
    stored = stow(layout.servers[0].url, parts)
    assert stored.status_code == 200, stored.text
    uids = [uid_of(p) for p in parts]

    def retrieve(server: LiveServer) -> tuple[list[bytes], list[dict[str, Any]], bytes, bytes]:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            study_body = client.get(f"/studies/{study}", headers={"Accept": STORED})
            assert study_body.status_code == 200, study_body.text
            found = client.get("/studies", params={"StudyInstanceUID": study}, headers={"Accept": JSON})
            assert found.status_code == 200
            rendered = client.get(f"/studies/{study}/series/{series}/instances/{uids[2]}/rendered",
                                  headers={"Accept": "image/png"})
            assert rendered.status_code == 200
            thumbnail = client.get(f"/studies/{study}/thumbnail", headers={"Accept": "image/jpeg"})
            assert thumbnail.status_code == 200
            return ([p.content for p in parse_multipart(study_body, "application/dicom")], found.json(),
                    rendered.content, thumbnail.content)

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(retrieve, [*layout.servers[1:], layout.proxy] * 2))
    for instances, matches, png, jpeg in answers:
        assert sorted(instances) == sorted(parts)  # the stored bytes, whole, from every process
        assert [m["00201208"]["Value"][0] for m in matches] == [6]  # Number of Study Related Instances
        assert png.startswith(b"\x89PNG") and png == answers[0][2]  # the same rendering everywhere
        assert jpeg.startswith(b"\xff\xd8")


def test_a_series_that_grows_through_another_process_is_never_stale(layout: Layout) -> None:
    study, series = generate_uid(), generate_uid()
    reader, writer = layout.servers[1], layout.servers[2]
    assert stow(writer.url, [instance(study, series, n, seed=1) for n in (1, 2)]).status_code == 200
    path = f"/studies/{study}/series/{series}"
    with httpx.Client(base_url=reader.url, timeout=60) as client:
        def seen() -> tuple[int, int, str]:
            metadata = client.get(path + "/metadata", headers={"Accept": JSON, "Accept-Encoding": "gzip"})
            instances = client.get(path + "/instances", headers={"Accept": JSON})
            study_body = client.get(f"/studies/{study}", headers={"Accept": STORED})
            return (len(metadata.json()), len(instances.json()),
                    str(len(parse_multipart(study_body, "application/dicom"))))

        assert seen() == (2, 2, "2")  # now every per-process cache of this series is warm
        assert stow(writer.url, [instance(study, series, 3, seed=1)]).status_code == 200
        assert seen() == (3, 3, "3")
        thumb = client.get(path + "/thumbnail", headers={"Accept": "image/png"})
        assert thumb.status_code == 200


def test_stored_metadata_follows_changes_made_through_any_process(layout: Layout) -> None:
    """Study and series metadata are bodies in S3 shared by the processes: what one stores or deletes, the next
    request to another reflects, and processes building one body at once leave one correct body."""
    study, series = generate_uid(), generate_uid()
    first, second, third = layout.servers
    parts = [instance(study, series, n, seed=7) for n in (1, 2, 3)]
    assert stow(first.url, parts).status_code == 200
    urls = [f"/studies/{study}/metadata", f"/studies/{study}/series/{series}/metadata"]

    def bodies(server: LiveServer) -> list[tuple[bytes, bytes]]:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            found = []
            for url in urls:
                plain = client.get(url, headers={"Accept": JSON, "Accept-Encoding": "identity"})
                packed = client.get(url, headers={"Accept": JSON, "Accept-Encoding": "gzip"})
                assert plain.status_code == packed.status_code == 200
                assert packed.headers["content-encoding"] == "gzip"
                found.append((plain.content, packed.content))  # httpx decoded the gzip
            return found

    with ThreadPoolExecutor(6) as pool:  # every process builds the same bodies at once
        answers = list(pool.map(bodies, [first, second, third, first, second, third]))
    for answer in answers:
        assert answer == answers[0]
        for plain, unpacked in answer:
            assert plain == unpacked
    assert [len(json.loads(plain)) for plain, _ in answers[0]] == [3, 3]
    derived = [k for k in layout.s3_keys() if k.startswith(f".derived/metadata/{study}/")]
    assert len(derived) == 4  # study and series, each a body and its gzip

    assert stow(second.url, [instance(study, series, 4, seed=7)]).status_code == 200
    assert [len(json.loads(plain)) for plain, _ in bodies(third)] == [4, 4]
    gone = uid_of(parts[0])
    assert httpx.delete(f"{first.url}/studies/{study}/series/{series}/instances/{gone}", timeout=60).status_code \
        == 204
    for server in (second, third):
        after = bodies(server)
        assert [len(json.loads(plain)) for plain, _ in after] == [3, 3]
        assert gone.encode() not in after[0][0] and gone.encode() not in after[1][0]


def test_concurrent_stow_of_the_same_instances_ends_as_one_each(layout: Layout) -> None:
    study, series = generate_uid(), generate_uid()
    parts = [instance(study, series, n, seed=2) for n in range(1, 13)]
    targets = [*layout.servers, layout.proxy]
    with ThreadPoolExecutor(len(targets)) as pool:
        responses = list(pool.map(lambda server: stow(server.url, parts), targets))
    assert [r.status_code for r in responses] == [200] * len(targets), [r.text[:300] for r in responses]
    for server in targets:
        listed = httpx.get(f"{server.url}/studies/{study}/instances", headers={"Accept": JSON}, timeout=30).json()
        assert sorted(m["00080018"]["Value"][0] for m in listed) == sorted(uid_of(p) for p in parts)
        found = httpx.get(f"{server.url}/studies", params={"StudyInstanceUID": study},
                          headers={"Accept": JSON}, timeout=30).json()
        assert found[0]["00201208"]["Value"] == [12] and found[0]["00201206"]["Value"] == [1]
    keys = [k for k in layout.s3_keys() if k.startswith(f"{study}/")]
    assert len(keys) == 12  # every process wrote its own object; the losers deleted theirs
    body = httpx.get(f"{layout.proxy.url}/studies/{study}", headers={"Accept": STORED}, timeout=60)
    assert sorted(p.content for p in parse_multipart(body, "application/dicom")) == sorted(parts)


def test_a_process_killed_during_stow_leaves_nothing_incomplete(layout: Layout) -> None:
    study, series = generate_uid(), generate_uid()
    # Small instances and a few above the 16 MiB multipart threshold, in one request.
    parts = [instance(study, series, n, rows=256, seed=3) for n in range(1, 61)]
    for n, at in ((61, 10), (62, 30), (63, 50)):
        parts.insert(at, instance(study, series, n, rows=512, frames=36, seed=3))  # 18 MiB each
    victim = serve_shared(layout.root, layout.index, layout.blobs, layout.env)
    survivor = layout.servers[0]
    body, content_type = stow_body(parts)

    def send() -> int | None:
        try:
            return httpx.post(victim.url + "/studies", content=body, timeout=120,
                              headers={"Content-Type": content_type, "Accept": JSON}).status_code
        except httpx.HTTPError:
            return None  # the connection died with the process

    def stored_count() -> int:
        answer = httpx.get(f"{survivor.url}/studies/{study}/instances", headers={"Accept": JSON}, timeout=30)
        return len(answer.json()) if answer.status_code == 200 else 0

    with ThreadPoolExecutor(1) as pool:
        sending = pool.submit(send)
        deadline = time.monotonic() + 60
        while stored_count() < 5 and time.monotonic() < deadline and not sending.done():
            time.sleep(0.02)
        os.kill(victim.process.pid, signal.SIGKILL)
        victim.process.wait(10)
        assert sending.result() is None  # killed before it could answer
    stop(victim.process)
    count = stored_count()
    assert 5 <= count < len(parts), "the kill should land in the middle of the request"

    # Everything the index points to is complete in S3: its bytes are those that were sent.
    sent = {uid_of(p): hashlib.sha256(p).hexdigest() for p in parts}
    listed = httpx.get(f"{survivor.url}/studies/{study}/instances", headers={"Accept": JSON}, timeout=30).json()
    for match in listed:
        uid = match["00080018"]["Value"][0]
        one = httpx.get(f"{survivor.url}/studies/{study}/series/{series}/instances/{uid}",
                        headers={"Accept": "application/dicom; transfer-syntax=*"}, timeout=60)
        assert one.status_code == 200
        assert hashlib.sha256(one.content).hexdigest() == sent[uid]

    # Storing the same request again through a survivor completes the study.
    again = stow(survivor.url, parts)
    assert again.status_code == 200, again.text[:500]
    assert stored_count() == len(parts)


@pytest.mark.anyio
async def test_sqlite_record_memo_follows_what_another_process_changed(tmp_path: Path) -> None:
    """The embedded index memoizes parsed records; a second process sharing the archive (an ``import``
    beside ``serve``: here a second Archive, its own connections and memo) deletes and restores an
    instance with other bytes: the first serves the new bytes at once, never the memoized record."""
    from dicomweb_origin.app import Archive, build_app
    from dicomweb_origin.settings import Settings
    from tests.support.http import BASE_URL, ROOT

    settings = Settings(data_dir=tmp_path / "data")
    app = build_app(settings)
    other = Archive(settings)
    study, series = generate_uid(), generate_uid()
    first, second = instance(study, series, 1, seed=5), instance(study, series, 1, seed=6)
    assert uid_of(first) == uid_of(second) and first != second
    uid = uid_of(first)
    try:
        assert app.state.archive.ingest.store(io.BytesIO(first)).record is not None
        path = f"studies/{study}/series/{series}/instances/{uid}"
        accept = {"Accept": "application/dicom; transfer-syntax=*"}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL + ROOT + "/") as c:
            assert (await c.get(path, headers=accept)).content == first  # memoized now
            assert len((await c.get(f"studies/{study}/instances", headers={"Accept": JSON})).json()) == 1
            for removed in other.index.remove(study, series, uid):
                other.blobs.delete(removed.blob_key)
            assert other.ingest.store(io.BytesIO(second)).record is not None
            assert (await c.get(path, headers=accept)).content == second
            body = await c.get(f"studies/{study}", headers={"Accept": STORED})
            assert [p.content for p in parse_multipart(body, "application/dicom")] == [second]
    finally:
        other.close()
        app.state.archive.close()
