"""Frames of 1-bit pixel data that do not end on a byte boundary (PS3.5 §8.1.1, §10.4.1.1.6).

Frame n of packed 1-bit data then starts inside a byte; each frame is returned repacked from its
own first bit, so a client can unpack it alone.
"""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.pixels.utils import pack_bits, unpack_bits
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from tests.support.archive import LoadedArchive
from tests.support.http import parse_multipart

pytestmark = pytest.mark.anyio

FRAMES, ROWS, COLUMNS = 5, 7, 9  # 63 bits a frame: every frame but the first starts mid-byte


def _segmentation_like() -> tuple[Dataset, np.ndarray]:
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 2, size=(FRAMES, ROWS, COLUMNS), dtype=np.uint8)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.66.4"
    ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID = (generate_uid(entropy_srcs=[n]) for n in "abc")
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ds.Modality = "SEG"
    ds.Rows, ds.Columns, ds.NumberOfFrames = ROWS, COLUMNS, FRAMES
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 1
    ds.HighBit, ds.PixelRepresentation = 0, 0
    ds.PixelData = pack_bits(pixels)
    return ds, pixels


async def test_each_unaligned_1_bit_frame_is_repacked(empty_archive: LoadedArchive,
                                                      empty_client: httpx.AsyncClient) -> None:
    ds, pixels = _segmentation_like()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    buffer.seek(0)
    result = empty_archive.app.state.archive.ingest.store(buffer)
    assert result.record is not None, result.reason
    path = result.record.path.lstrip("/")

    response = await empty_client.get(f"{path}/frames/1,2,3,4,5",
                                      headers={"Accept": 'multipart/related; type="application/octet-stream"'})
    assert response.status_code == 200
    parts = parse_multipart(response, "application/octet-stream")
    assert len(parts) == FRAMES
    for number, part in enumerate(parts):
        assert len(part.content) == (ROWS * COLUMNS + 7) // 8
        unpacked = unpack_bits(part.content)
        assert isinstance(unpacked, np.ndarray)
        frame = unpacked[: ROWS * COLUMNS].reshape(ROWS, COLUMNS)
        np.testing.assert_array_equal(frame, pixels[number], err_msg=f"frame {number + 1}")

    single = await empty_client.get(f"{path}/frames/4", headers={"Accept": "application/octet-stream"})
    assert single.content == parts[3].content
