"""Elements stored after Pixel Data are kept: metadata includes them and their bulk data resolves (§10.4.1.1.2).

Digital Signatures (FFFA,FFFA) and private groups above (7FE0) follow the pixel data in a file;
"all attributes" of the metadata resource includes them. Trailing padding (FFFC,FFFC) is not data.
"""

from __future__ import annotations

import io

import httpx
import pytest
from pydicom import Dataset, dcmread

from tests.support.archive import LoadedArchive
from tests.support.http import DICOM_JSON
from tests.support.reference import source_path

pytestmark = pytest.mark.anyio

TRAILER = b"\x01\x02\x03\x04" * 700  # above the 1 KiB bulk data threshold


def _with_trailing_elements() -> Dataset:
    ds = dcmread(source_path("CT_small.dcm"))
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.424242"
    ds.add_new(0x7FE10010, "LO", "ACME TRAILER")
    ds.add_new(0x7FE11001, "OB", TRAILER)
    ds.add_new(0x7FE11002, "LO", "after the pixels")
    signature = Dataset()
    signature.MACIDNumber = 1
    ds.add_new(0xFFFAFFFA, "SQ", [signature])
    ds.add_new(0xFFFCFFFC, "OB", b"\0" * 16)
    return ds


async def test_elements_after_pixel_data_reach_the_metadata(empty_archive: LoadedArchive,
                                                            empty_client: httpx.AsyncClient) -> None:
    ds = _with_trailing_elements()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    buffer.seek(0)
    result = empty_archive.app.state.archive.ingest.store(buffer)
    assert result.record is not None
    path = result.record.path.lstrip("/")

    response = await empty_client.get(path + "/metadata", headers={"Accept": DICOM_JSON})
    assert response.status_code == 200
    (metadata,) = response.json()
    assert metadata["7FE10010"] == {"vr": "LO", "Value": ["ACME TRAILER"]}
    assert metadata["7FE11002"] == {"vr": "LO", "Value": ["after the pixels"]}
    assert metadata["FFFAFFFA"]["Value"][0]["04000005"] == {"vr": "US", "Value": [1]}
    assert "FFFCFFFC" not in metadata
    assert list(metadata) == sorted(metadata)

    uri = metadata["7FE11001"]["BulkDataURI"]
    bulk = await empty_client.get(uri, headers={"Accept": "application/octet-stream"})
    assert bulk.status_code == 200
    assert bulk.content == TRAILER

    frame = await empty_client.get(path + "/frames/1", headers={"Accept": "application/octet-stream"})
    assert frame.content == ds.PixelData
