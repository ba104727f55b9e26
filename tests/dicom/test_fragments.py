"""Frames of encapsulated Pixel Data split over several fragments (PS3.5 A.4).

Ingest records each frame's fragments once, from the Basic Offset Table, the Extended Offset Table or, with
neither, from the codestream markers that open a frame; Retrieve then serves a frame from those records.
"""

from __future__ import annotations

import io

import httpx
import pytest
from pydicom.uid import JPEGLSLossless, RLELossless

from tests.support.archive import LoadedArchive
from tests.support.http import parse_multipart
from tests.support.synthetic import fragmented

pytestmark = pytest.mark.anyio

OCTETS = 'multipart/related; type="application/octet-stream"'
STORED_JLS = 'multipart/related; type="image/jls"; transfer-syntax=*'


@pytest.mark.parametrize("layout", ["basic offset table", "extended offset table", "no offset table"])
async def test_each_frame_is_found_among_the_fragments(empty_archive: LoadedArchive, empty_client: httpx.AsyncClient,
                                                       layout: str) -> None:
    data, frames, pixels = fragmented(JPEGLSLossless, layout)
    result = empty_archive.app.state.archive.ingest.store(io.BytesIO(data))
    assert result.record is not None, result.reason
    path = result.record.path.lstrip("/")
    everything = ",".join(str(n) for n in range(1, 11))

    stored = await empty_client.get(f"{path}/frames/{everything}", headers={"Accept": STORED_JLS})
    assert stored.status_code == 200
    assert [part.content for part in parse_multipart(stored, "image/jls")] == frames

    decoded = await empty_client.get(f"{path}/frames/7,2", headers={"Accept": OCTETS})
    assert decoded.status_code == 200
    seven, two = parse_multipart(decoded, "application/octet-stream")
    assert seven.content == pixels[6].astype("<u2").tobytes()
    assert two.content == pixels[1].astype("<u2").tobytes()


async def test_the_extended_offset_table_groups_fragments_no_marker_tells_apart(
        empty_archive: LoadedArchive, empty_client: httpx.AsyncClient) -> None:
    """RLE fragments open with no marker: with three per frame only the Extended Offset Table can group them."""
    data, frames, pixels = fragmented(RLELossless, "extended offset table, several fragments")
    result = empty_archive.app.state.archive.ingest.store(io.BytesIO(data))
    assert result.record is not None, result.reason
    assert [sum(length for _, length in frame) for frame in result.record.frames] == [len(f) for f in frames]
    path = result.record.path.lstrip("/")
    stored = await empty_client.get(f"{path}/frames/4,9", headers={
        "Accept": 'multipart/related; type="image/dicom-rle"; transfer-syntax=*'})
    assert [part.content for part in parse_multipart(stored)] == [frames[3], frames[8]]
    decoded = await empty_client.get(f"{path}/frames/9", headers={"Accept": OCTETS})
    assert parse_multipart(decoded)[0].content == pixels[8].astype("<u2").tobytes()


async def test_fragments_that_cannot_be_told_apart_are_refused(empty_archive: LoadedArchive) -> None:
    """RLE segments open with no marker: several fragments per frame and no table is ambiguous, not guessed."""
    data, _frames, _pixels = fragmented(RLELossless, "no offset table")
    result = empty_archive.app.state.archive.ingest.store(io.BytesIO(data))
    assert result.record is None
    assert "cannot tell the 10 frames apart among 30 fragments" in (result.reason or "")
    assert empty_archive.app.state.archive.is_empty()  # nothing half-stored
