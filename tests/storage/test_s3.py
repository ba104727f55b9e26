"""Retrieve over an S3 blob store reads frames with ranged GETs: one GET per frame span, never the object.

The archive here is SQLite + S3 (a real Ceph radosgw), built through the same use cases and ASGI app as
every other test; a botocore event hook records the Range of each GetObject the server sends.
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from pydicom import Dataset
from pydicom.uid import ExplicitVRLittleEndian, JPEGLSLossless, generate_uid

from dicomweb_origin.cache import BytesCache
from dicomweb_origin.ingest import Ingest
from dicomweb_origin.retrieve import Lanes, Retrieve
from dicomweb_origin.search import Search
from dicomweb_origin.settings import Settings
from dicomweb_origin.storage.s3 import S3BlobStore, S3Location
from dicomweb_origin.storage.sqlite import SqliteIndex
from dicomweb_origin.web.application import create_app
from tests.support.ceph import CephS3
from tests.support.http import BASE_URL, ROOT, parse_multipart
from tests.support.synthetic import fragmented

pytestmark = pytest.mark.anyio
OCTETS = 'multipart/related; type="application/octet-stream"'
STORED_JLS = 'multipart/related; type="image/jls"; transfer-syntax=*'


class S3Archive:
    def __init__(self, root: Path, ceph: CephS3) -> None:
        bucket = ceph.create_bucket(f"reads-{uuid.uuid4().hex[:12]}")
        os.environ.update(ceph.environment())
        self.settings = Settings(data_dir=root)
        self.index = SqliteIndex(root / "index.sqlite")
        self.blobs = S3BlobStore(S3Location(bucket=bucket, endpoint=ceph.endpoint, region="us-east-1"))
        self.ingest = Ingest(self.index, self.blobs, self.settings)
        self.retrieve = Retrieve(self.index, self.blobs, BytesCache(1 << 20), Lanes(2), 2)
        self.app = create_app(self.retrieve, self.ingest, Search(self.index), self.settings)
        self.ranges: list[str | None] = []
        self.blobs.client.meta.events.register("before-parameter-build.s3.GetObject", self._seen)

    def _seen(self, params: dict[str, Any], **_: Any) -> None:
        self.ranges.append(params.get("Range"))

    def requested_bytes(self) -> int:
        total = 0
        for value in self.ranges:
            assert value is not None, "a whole object was downloaded"
            low, high = value.removeprefix("bytes=").split("-")
            total += int(high) - int(low) + 1
        return total


@pytest.fixture
def s3_archive(tmp_path: Path, ceph: CephS3) -> S3Archive:
    return S3Archive(tmp_path, ceph)


@pytest.fixture
async def s3_client(s3_archive: S3Archive) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=s3_archive.app),
                                 base_url=BASE_URL + ROOT + "/") as c:
        yield c


async def test_a_frame_of_several_fragments_is_one_ranged_get(s3_archive: S3Archive,
                                                              s3_client: httpx.AsyncClient) -> None:
    data, frames, pixels = fragmented(JPEGLSLossless, "basic offset table")  # 10 frames of 3 fragments
    result = s3_archive.ingest.store(io.BytesIO(data))
    assert result.record is not None, result.reason
    assert all(len(f) == 3 for f in result.record.frames)
    path = result.record.path.lstrip("/")

    s3_archive.ranges.clear()
    stored = await s3_client.get(f"{path}/frames/7", headers={"Accept": STORED_JLS})
    assert stored.status_code == 200
    assert [p.content for p in parse_multipart(stored, "image/jls")] == [frames[6]]
    assert len(s3_archive.ranges) == 1  # one GET for the frame's span, not one per fragment
    assert s3_archive.requested_bytes() <= len(frames[6]) + 3 * 8

    s3_archive.ranges.clear()
    decoded = await s3_client.get(f"{path}/frames/3", headers={"Accept": OCTETS})
    assert decoded.status_code == 200
    assert parse_multipart(decoded, "application/octet-stream")[0].content == pixels[2].astype("<u2").tobytes()
    assert len(s3_archive.ranges) == 1


async def test_one_frame_of_a_large_multiframe_instance_reads_only_that_frame(
        s3_archive: S3Archive, s3_client: httpx.AsyncClient) -> None:
    frames = np.arange(120 * 256 * 256, dtype="<u2").reshape(120, 256, 256)  # 15 MiB: a multipart upload
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7.3"  # Multi-frame Grayscale Word Secondary Capture
    ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid(), generate_uid()
    ds.Modality, ds.PatientName, ds.PatientID = "OT", "Large^Frames", "LF1"
    ds.Rows, ds.Columns, ds.NumberOfFrames = 256, 256, 120
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = frames.tobytes()
    ds.set_original_encoding(False, True)
    from pydicom.dataset import FileMetaDataset

    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    s3_archive.blobs.location = S3Location(bucket=s3_archive.blobs.bucket, endpoint=s3_archive.blobs.location.endpoint,
                                           multipart_threshold=8 << 20, part_size=8 << 20)
    result = s3_archive.ingest.store(buffer)
    assert result.record is not None, result.reason
    head = s3_archive.blobs.client.head_object(Bucket=s3_archive.blobs.bucket, Key=result.record.blob_key)
    assert head["ETag"].strip('"').endswith("-2")  # stored as a multipart upload
    path = result.record.path.lstrip("/")

    s3_archive.ranges.clear()
    response = await s3_client.get(f"{path}/frames/77", headers={"Accept": OCTETS})
    assert response.status_code == 200
    assert parse_multipart(response, "application/octet-stream")[0].content == frames[76].tobytes()
    assert len(s3_archive.ranges) == 1
    assert s3_archive.requested_bytes() == 256 * 256 * 2

    s3_archive.ranges.clear()
    rendered = await s3_client.get(f"{path}/frames/5/rendered", headers={"Accept": "image/png"})
    assert rendered.status_code == 200 and rendered.content.startswith(b"\x89PNG")
    assert s3_archive.requested_bytes() < 2 * 256 * 256 * 2  # the frame, never the 15 MiB object

    s3_archive.ranges.clear()
    whole = await s3_client.get(path, headers={"Accept": 'multipart/related; type="application/dicom"'})
    assert whole.status_code == 200
    assert parse_multipart(whole, "application/dicom")[0].content == buffer.getvalue()
