"""Frames of encapsulated Pixel Data split over several fragments (PS3.5 A.4).

Ingest records each frame's fragments once, from the Basic Offset Table, the Extended Offset Table or, with
neither, from the codestream markers that open a frame; Retrieve then serves a frame from those records.
"""

from __future__ import annotations

import io
import struct

import httpx
import numpy as np
import pytest
from conftest import LoadedArchive, parse_multipart
from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import JPEGLSLossless, RLELossless, generate_uid

pytestmark = pytest.mark.anyio

OCTETS = 'multipart/related; type="application/octet-stream"'
STORED_JLS = 'multipart/related; type="image/jls"; transfer-syntax=*'


def _item(data: bytes) -> bytes:
    return struct.pack("<HHI", 0xFFFE, 0xE000, len(data)) + data


def _split(frame: bytes, pieces: int) -> list[bytes]:
    """Cut one bitstream into even-length fragments (PS3.5 A.4: every fragment has an even length)."""
    size = -(-len(frame) // pieces)
    size += size % 2
    return [frame[i:i + size] for i in range(0, len(frame), size)]


def _instance(syntax: str, layout: str) -> tuple[bytes, list[bytes], np.ndarray]:
    """emri_small (10 frames) compressed in ``syntax``, its Pixel Data laid out as ``layout`` says."""
    ds = dcmread(str(get_testdata_file("emri_small.dcm")))
    pixels = ds.pixel_array
    ds.compress(syntax, generate_instance_uid=False)
    frames = list(generate_frames(ds.PixelData, number_of_frames=10))
    fragments = [_split(frame, 3) for frame in frames]
    if layout == "basic offset table":
        value = encapsulate(frames, fragments_per_frame=3, has_bot=True)
    elif layout.startswith("extended offset table"):  # PS3.5 A.4: 64-bit offsets, an empty Basic Offset Table
        pieces = fragments if layout.endswith("several fragments") else [[frame] for frame in frames]
        items = [b"".join(_item(piece) for piece in frame_pieces) for frame_pieces in pieces]
        value = _item(b"") + b"".join(items)
        offsets = np.cumsum([0] + [len(item) for item in items[:-1]], dtype="<u8")
        ds.ExtendedOffsetTable = offsets.tobytes()
        ds.ExtendedOffsetTableLengths = np.array([len(f) for f in frames], dtype="<u8").tobytes()
    else:  # no table at all: only the fragments' contents tell where a frame begins
        value = _item(b"") + b"".join(_item(piece) for pieces in fragments for piece in pieces)
    ds.PixelData = value
    ds["PixelData"].is_undefined_length = True
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue(), frames, pixels


@pytest.mark.parametrize("layout", ["basic offset table", "extended offset table", "no offset table"])
async def test_each_frame_is_found_among_the_fragments(empty_archive: LoadedArchive, empty_client: httpx.AsyncClient,
                                                       layout: str) -> None:
    data, frames, pixels = _instance(JPEGLSLossless, layout)
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
    data, frames, pixels = _instance(RLELossless, "extended offset table, several fragments")
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
    data, _frames, _pixels = _instance(RLELossless, "no offset table")
    result = empty_archive.app.state.archive.ingest.store(io.BytesIO(data))
    assert result.record is None
    assert "cannot tell the 10 frames apart among 30 fragments" in (result.reason or "")
    assert empty_archive.app.state.archive.is_empty()  # nothing half-stored
