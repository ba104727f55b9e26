"""The BlobStore contract, run against every backend: memory, files, and S3 (a real Ceph radosgw).

What callers rely on: keys named ``name.digest16.dcm`` before anything is written, reads of any byte
range, streams in bounded chunks, deletes, a listing of durable blobs only, large objects (multipart on
S3), concurrent puts of the same bytes ending as one blob, and a failed upload leaving nothing behind.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from dicomweb_origin.storage.base import DERIVED, BlobStore
from dicomweb_origin.storage.files import FileBlobStore
from dicomweb_origin.storage.inmemory import MemoryBlobStore
from dicomweb_origin.storage.s3 import S3BlobStore, S3Location
from tests.support.ceph import CephS3

BACKENDS = ["memory", "files", "s3"]
NAME = "1.2.3/1.2.3.4/1.2.3.4.5"


def s3_store(ceph: CephS3, **location: Any) -> S3BlobStore:
    bucket = ceph.create_bucket(f"contract-{uuid.uuid4().hex[:12]}")
    os.environ.update(ceph.environment())
    return S3BlobStore(S3Location(bucket=bucket, endpoint=ceph.endpoint, region="us-east-1", **location))


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    if request.param == "memory":
        yield MemoryBlobStore()
    elif request.param == "files":
        yield FileBlobStore(tmp_path / "blobs")
    else:
        # Small multipart threshold and parts (S3's minimum part is 5 MiB) so "large" stays quick.
        store = s3_store(request.getfixturevalue("ceph"), multipart_threshold=6 << 20, part_size=5 << 20)
        yield store
        store.close()


def payload(size: int, seed: int = 0) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest()
    return (block * (size // len(block) + 1))[:size]


def test_put_names_the_key_by_content_and_reads_back(store: BlobStore) -> None:
    data = payload(100_000)
    info = store.put(io.BytesIO(data), NAME)
    digest = hashlib.sha256(data).hexdigest()
    assert (info.key, info.size, info.digest) == (f"{NAME}.{digest[:16]}.dcm", len(data), digest)
    assert store.read(info.key) == data
    assert list(store.keys()) == [info.key]


def test_put_reads_the_source_from_its_start(store: BlobStore) -> None:
    source = io.BytesIO(b"DICM" * 1000)
    source.seek(123)
    info = store.put(source, NAME)
    assert store.read(info.key) == b"DICM" * 1000


def test_byte_ranges(store: BlobStore) -> None:
    data = payload(50_000, seed=1)
    key = store.put(io.BytesIO(data), NAME).key
    assert store.read(key, 0, 10) == data[:10]
    assert store.read(key, 12_345, 4_321) == data[12_345:16_666]
    assert store.read(key, 49_990) == data[49_990:]
    assert store.read(key, 49_990, 100) == data[49_990:]  # a range past the end is cut at the end
    assert store.read(key, 60_000) == b""
    assert store.read(key, 100, 0) == b""
    assert b"".join(store.stream(key, 1000, 20_000)) == data[1000:21_000]
    assert b"".join(store.stream(key, 45_000)) == data[45_000:]


def test_delete_and_keys(store: BlobStore) -> None:
    keys = {store.put(io.BytesIO(payload(1000, seed)), f"1.2/1.2.{seed}/1.2.{seed}.1").key for seed in range(5)}
    assert set(store.keys()) == keys
    removed = sorted(keys)[0]
    store.delete(removed)
    store.delete(removed)  # deleting what is gone is no error
    assert set(store.keys()) == keys - {removed}


def test_large_object_streams_in_bounded_chunks(store: BlobStore) -> None:
    data = payload(13 << 20, seed=2)  # above the S3 multipart threshold: three 5 MiB parts
    info = store.put(io.BytesIO(data), NAME)
    assert info.size == len(data) and info.digest == hashlib.sha256(data).hexdigest()
    chunks = list(store.stream(info.key))
    assert b"".join(chunks) == data
    if not isinstance(store, MemoryBlobStore):  # memory holds the bytes anyway
        assert max(len(c) for c in chunks) <= 1 << 20
    assert store.read(info.key, (5 << 20) - 7, 14) == data[(5 << 20) - 7:(5 << 20) + 7]  # across a part edge
    if isinstance(store, S3BlobStore):
        head = store.client.head_object(Bucket=store.bucket, Key=info.key)
        assert head["ETag"].strip('"').endswith("-3")  # really uploaded as three parts


def test_concurrent_puts_of_the_same_bytes_end_as_one_blob(store: BlobStore) -> None:
    data = payload(300_000, seed=3)
    with ThreadPoolExecutor(8) as pool:
        infos = list(pool.map(lambda _: store.put(io.BytesIO(data), NAME), range(8)))
    assert len(set(infos)) == 1
    assert list(store.keys()) == [infos[0].key]
    assert store.read(infos[0].key) == data


def test_concurrent_large_puts_of_the_same_bytes_end_as_one_blob(store: BlobStore) -> None:
    data = payload(7 << 20, seed=4)
    with ThreadPoolExecutor(3) as pool:
        infos = list(pool.map(lambda _: store.put(io.BytesIO(data), NAME), range(3)))
    assert len(set(infos)) == 1
    assert list(store.keys()) == [infos[0].key]
    assert store.read(infos[0].key) == data


class FailingSource(io.RawIOBase):
    """A source that breaks after ``good`` bytes, as a client that disconnects mid-upload does."""

    def __init__(self, good: int) -> None:
        self.good = good
        self.position = 0

    def readable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.position = offset
        return offset

    def readinto(self, buffer: Any) -> int:
        if self.position >= self.good:
            raise OSError(5, "connection reset while reading the upload")
        n = min(len(buffer), self.good - self.position)
        buffer[:n] = payload(n)
        self.position += n
        return n


@pytest.mark.parametrize("good", [1000, 8 << 20])
def test_a_failed_upload_leaves_nothing(store: BlobStore, good: int) -> None:
    with pytest.raises(OSError):
        store.put(FailingSource(good), NAME)
    assert list(store.keys()) == []


# -- S3 specifics --------------------------------------------------------------------------------


def test_s3_conditional_create_keeps_the_first_object(ceph: CephS3) -> None:
    """Ceph 16 honours ``If-None-Match: *`` on PUT: a second create of a key is refused, not applied."""
    store = s3_store(ceph)
    data = payload(10_000, seed=5)
    info = store.put(io.BytesIO(data), NAME)
    assert store.put(io.BytesIO(data), NAME) == info
    assert store._conditional is not False  # the server kept the header: no fall-back to plain PUT
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as refused:
        store.client.put_object(Bucket=store.bucket, Key=info.key, Body=b"other", IfNoneMatch="*")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert store.read(info.key) == data


def test_s3_failed_multipart_upload_is_aborted(ceph: CephS3) -> None:
    """A part that fails in flight aborts the upload: no object, no incomplete upload left in the bucket."""
    store = s3_store(ceph, multipart_threshold=5 << 20, part_size=5 << 20)
    sent: list[int] = []

    def break_second_part(params: dict[str, Any], **_: Any) -> None:
        sent.append(params["PartNumber"])
        if params["PartNumber"] == 2:
            raise ConnectionResetError(104, "connection reset by peer")

    store.client.meta.events.register("before-parameter-build.s3.UploadPart", break_second_part)
    with pytest.raises(OSError):
        store.put(io.BytesIO(payload(12 << 20, seed=6)), NAME)
    assert 2 in sent
    assert list(store.keys()) == []
    assert store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []


def test_s3_reads_are_one_ranged_get_each(ceph: CephS3) -> None:
    store = s3_store(ceph)
    data = payload(3 << 20, seed=7)
    key = store.put(io.BytesIO(data), NAME).key
    ranges: list[str | None] = []
    store.client.meta.events.register("before-parameter-build.s3.GetObject",
                                      lambda params, **_: ranges.append(params.get("Range")))
    assert store.read(key, 1000, 500) == data[1000:1500]
    assert b"".join(store.stream(key, 2 << 20, 1 << 20)) == data[2 << 20:3 << 20]
    assert ranges == ["bytes=1000-1499", f"bytes={2 << 20}-{(3 << 20) - 1}"]


def test_s3_url() -> None:
    location = S3Location.parse("s3://archive/site-a/?endpoint=http://127.0.0.1:7480&region=eu-west-1")
    assert (location.bucket, location.prefix, location.endpoint, location.region, location.path_style) == (
        "archive", "site-a/", "http://127.0.0.1:7480", "eu-west-1", True)
    assert S3Location.parse("s3://archive?path_style=false").path_style is False
    for bad in ("s3:///nobucket", "http://archive", "s3://archive?endpoint=x&colour=blue", "s3://a?part_size_mb=1"):
        with pytest.raises(ValueError):
            S3Location.parse(bad)


def test_s3_prefix_keeps_stores_apart(ceph: CephS3) -> None:
    bucket = ceph.create_bucket(f"prefix-{uuid.uuid4().hex[:12]}")
    os.environ.update(ceph.environment())
    a = S3BlobStore.from_url(f"s3://{bucket}/a?endpoint={ceph.endpoint}")
    b = S3BlobStore.from_url(f"s3://{bucket}/b?endpoint={ceph.endpoint}")
    key = a.put(io.BytesIO(b"only in a"), NAME).key
    assert list(a.keys()) == [key] and list(b.keys()) == []
    assert a.read(key) == b"only in a"


def test_stores_are_safe_to_share_between_threads(store: BlobStore) -> None:
    keys = [store.put(io.BytesIO(payload(20_000, seed)), f"1.9/1.9.{seed}/1.9.{seed}.1").key for seed in range(4)]
    errors: list[BaseException] = []

    def reader(key: str, seed: int) -> None:
        try:
            for offset in range(0, 20_000, 997):
                assert store.read(key, offset, 50) == payload(20_000, seed)[offset:offset + 50]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(key, seed)) for seed, key in enumerate(keys)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_s3_check_spares_young_orphans_and_finds_stale_uploads(ceph: CephS3, tmp_path: Path) -> None:
    """``dicomweb-origin check`` on S3: an object another process has just PUT (not indexed yet) is in flight,
    never removed; a multipart upload a killed process left is found and, with repair, aborted."""
    from dicomweb_origin.check import check
    from dicomweb_origin.storage.sqlite import SqliteIndex

    store = s3_store(ceph)
    young = store.put(io.BytesIO(payload(1000, seed=9)), NAME).key
    assert abs(store.modified(young) - time.time()) < 60
    with pytest.raises(KeyError):
        store.modified("1.2/1.3/1.4.0000000000000000.dcm")
    left = store.client.create_multipart_upload(Bucket=store.bucket, Key="1.2/1.3/1.5.0123456789abcdef.dcm")
    index = SqliteIndex(tmp_path / "index.sqlite")
    report = check(index, store, repair=True, grace=60)
    assert report.in_flight == [young] and list(store.keys()) == [young]
    assert [p.kind for p in report.problems] == []  # the upload is young too: a live writer may hold it
    store.stale_upload_seconds = 0
    report = check(index, store, repair=True, grace=60)
    assert [(p.kind, p.repaired) for p in report.problems] == [("upload", True)]
    assert left["UploadId"] in report.problems[0].key
    assert store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []
    report = check(index, store, repair=True, grace=0)
    assert [(p.kind, p.key, p.repaired) for p in report.problems] == [("orphan", young, True)]
    assert list(store.keys()) == []


def test_derived_bodies_are_written_under_their_key_and_listed_apart(store: BlobStore) -> None:
    """``write``: a derived body (stored metadata) under exactly its key, replaced whole; ``keys()`` lists only
    instances' blobs, ``keys(prefix)`` what is under the prefix, derived bodies included."""
    info = store.put(io.BytesIO(payload(1000)), NAME)
    folder = f"{DERIVED}metadata/1.2.3/1.2.3.4/"
    store.write(folder + "a.json", b"[1]")
    store.write(folder + "a.json", b"[1,2]")  # replaced whole
    store.write(f"{DERIVED}metadata/1.2.3/study/b.json", payload(3 << 20, seed=1))
    assert store.read(folder + "a.json") == b"[1,2]"
    assert store.read(f"{DERIVED}metadata/1.2.3/study/b.json") == payload(3 << 20, seed=1)
    assert list(store.keys()) == [info.key]
    assert list(store.keys(folder)) == [folder + "a.json"]
    assert sorted(store.keys(f"{DERIVED}metadata/1.2.3/")) == [folder + "a.json", f"{DERIVED}metadata/1.2.3/study/b.json"]
    assert list(store.keys(f"{DERIVED}metadata/9.9/")) == []
    store.delete(folder + "a.json")
    assert list(store.keys(folder)) == []
    with pytest.raises((FileNotFoundError, KeyError)):
        store.read(folder + "a.json")


def test_concurrent_writes_of_one_derived_key_leave_one_whole_body(store: BlobStore) -> None:
    key = f"{DERIVED}metadata/1.2.3/1.2.3.4/c.json"
    bodies = [payload(1 << 20, seed=n) for n in range(4)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda body: store.write(key, body), bodies * 2))
    assert store.read(key) in bodies
    assert list(store.keys(f"{DERIVED}metadata/")) == [key]
