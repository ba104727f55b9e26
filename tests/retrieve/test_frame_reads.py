"""A frame is served with one ranged read of its stored bytes, never by reading or parsing the instance.

Offsets recorded at ingest make a frame of a big multi-frame instance cost what a single-frame
instance costs (issue: "one frame of a 2 GB multi-frame instance is served with one ranged read").
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from tests.support.archive import LoadedArchive
from tests.support.http import MULTIPART_OCTET, parse_multipart

pytestmark = pytest.mark.anyio

FRAMES, ROWS, COLUMNS = 300, 64, 64


class CountingBlobs:
    """The archive's blob store, with every read it is asked for written down."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[str, int, int | None]] = []

    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        self.calls.append(("read", offset, length))
        return bytes(self.inner.read(key, offset, length))

    def stream(self, key: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        self.calls.append(("stream", offset, length))
        return iter(self.inner.stream(key, offset, length))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _multiframe() -> tuple[bytes, np.ndarray]:
    pixels = np.arange(FRAMES * ROWS * COLUMNS, dtype=np.uint16).reshape(FRAMES, ROWS, COLUMNS)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7.3"  # Multi-frame Grayscale Word SC
    ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID = (generate_uid() for _ in range(3))
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ds.Modality = "OT"
    ds.Rows, ds.Columns, ds.NumberOfFrames = ROWS, COLUMNS, FRAMES
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = pixels.tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue(), pixels


async def test_one_frame_is_one_ranged_read(empty_archive: LoadedArchive, empty_client: httpx.AsyncClient) -> None:
    data, pixels = _multiframe()
    archive = empty_archive.app.state.archive
    result = archive.ingest.store(io.BytesIO(data))
    assert result.record is not None, result.reason
    counting = CountingBlobs(archive.retrieve.sources.blobs)
    archive.retrieve.sources.blobs = counting
    frame_bytes = ROWS * COLUMNS * 2
    pixel_start = data.index(pixels[0].tobytes())

    response = await empty_client.get(f"{result.record.path.lstrip('/')}/frames/250",
                                      headers={"Accept": MULTIPART_OCTET})
    assert response.status_code == 200
    assert parse_multipart(response)[0].content == pixels[249].tobytes()
    assert counting.calls == [("stream", pixel_start + 249 * frame_bytes, frame_bytes)]

    counting.calls.clear()
    metadata = await empty_client.get(f"{result.record.path.lstrip('/')}/metadata",
                                      headers={"Accept": "application/dicom+json"})
    assert metadata.status_code == 200
    assert metadata.json()[0]["00280008"]["Value"] == [FRAMES]
    assert counting.calls == []  # metadata is what ingest stored in the index: no blob is opened
