"""Files whose body is not encoded as their transfer syntax says are re-encoded at ingest (PS3.5 §10).

pydicom's ``SC_rgb_jpeg.dcm`` declares JPEG Baseline (an Explicit VR syntax) but is written in
Implicit VR. Served as stored, its frame offsets would be garbage; stored re-encoded, its frame is
the JPEG bitstream and every response decodes to the same pixels as pydicom's reading.
"""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from pydicom import dcmread

from tests.support.archive import LoadedArchive
from tests.support.http import parse_multipart
from tests.support.reference import source_path

pytestmark = pytest.mark.anyio


async def test_an_implicit_vr_body_under_an_explicit_syntax_is_re_encoded(
        empty_archive: LoadedArchive, empty_client: httpx.AsyncClient) -> None:
    source = source_path("SC_rgb_jpeg.dcm")
    with open(source, "rb") as fp:
        result = empty_archive.app.state.archive.ingest.store(fp)
    assert result.record is not None, result.reason
    assert result.record.transfer_syntax_uid == "1.2.840.10008.1.2.4.50"
    path = result.record.path.lstrip("/")

    frame = await empty_client.get(f"{path}/frames/1",
                                   headers={"Accept": 'multipart/related; type="image/jpeg"; transfer-syntax=*'})
    (part,) = parse_multipart(frame, "image/jpeg")
    assert part.content.startswith(b"\xff\xd8")

    instance = await empty_client.get(path, headers={"Accept": "application/dicom; transfer-syntax=*"})
    stored = dcmread(io.BytesIO(instance.content))
    assert not stored.original_encoding[0]
    with pytest.warns(UserWarning, match="found implicit VR"):  # pydicom notices the miscoding too
        expected = dcmread(source).pixel_array
    np.testing.assert_array_equal(stored.pixel_array, expected)
