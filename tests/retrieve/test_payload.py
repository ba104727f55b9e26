"""What keeps a request's memory bounded besides the probes of tests/e2e/test_memory.py: the per-request budget, spooled
parts, and whole instances transcoded a frame at a time from their stored layout (memory.py, retrieve/payload.py,
dicom/transcode.py)."""

from __future__ import annotations

import gc
import io
import struct
import tempfile
import threading
from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from dicomweb_origin import memory
from dicomweb_origin.dicom import transcode
from dicomweb_origin.errors import PayloadTooLarge
from dicomweb_origin.retrieve.payload import spool
from tests.support.archive import LoadedArchive
from tests.support.http import path_of
from tests.support.reference import DEFLATE, ELE, J2K_LOSSLESS, REFERENCES, RLE, dataset, where

pytestmark = pytest.mark.anyio


def test_the_budget_check_names_the_need_and_the_limit() -> None:
    memory.check(10 << 20, 10 << 20, "anything")  # at the limit: allowed
    with pytest.raises(PayloadTooLarge, match=r"rendering x would need about 300 MiB of memory; this server gives one"
                                              r" request at most 256 MiB \(--max-request-memory-mb\)"):
        memory.check(300 << 20, 256 << 20, "rendering x")


def test_the_default_budget_is_a_share_of_the_machine() -> None:
    budget = memory.default_request_budget()
    assert budget >= memory.MIN_DEFAULT_BUDGET
    assert budget <= max(memory.physical_memory() // memory.DEFAULT_SHARE, memory.MIN_DEFAULT_BUDGET)
    memory.release(force=True)  # never fails, glibc or not


def test_a_small_part_stays_in_memory_and_a_large_one_goes_to_a_file() -> None:
    small, size = spool(iter([b"ab", b"cd"]), in_memory=8)
    assert size == 4 and b"".join(small(0, None)) == b"abcd" and b"".join(small(1, 2)) == b"bc"
    chunks = [bytes([n]) * 1000 for n in range(50)]
    body, size = spool(iter(chunks), in_memory=4096)
    whole = b"".join(chunks)
    assert size == len(whole)
    assert b"".join(body(0, None)) == whole
    assert b"".join(body(1234, 5000)) == whole[1234:6234]
    results: list[bytes] = []
    readers = [threading.Thread(target=lambda o=o: results.append(b"".join(body(o, 777)))) for o in range(0, 49000,
                                                                                                           7000)]
    for thread in readers:
        thread.start()
    for thread in readers:
        thread.join()
    assert sorted(results) == sorted(whole[o:o + 777] for o in range(0, 49000, 7000))  # concurrent Range readers



def test_a_spooled_part_closes_its_temporary_file_when_the_body_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    """The file is closed, not left to the garbage collector's ResourceWarning, once no reader holds the body."""
    from dicomweb_origin.retrieve import payload

    made: list[Any] = []
    original = tempfile.TemporaryFile

    def temporary_file(**kwargs: Any) -> Any:
        made.append(original(**kwargs))  # the test checks who closes it
        return made[-1]

    monkeypatch.setattr(payload, "tempfile", SimpleNamespace(TemporaryFile=temporary_file))
    body, size = spool(iter([b"x" * 100] * 3), in_memory=10)
    assert size == 300 and b"".join(body(0, None)) == b"x" * 300 and not made[0].closed
    del body
    gc.collect()
    assert made[0].closed

FRAMED = where(lambda r: r.has_pixels and "video" not in r.features)


@pytest.mark.parametrize("ref", FRAMED, ids=[r.name for r in FRAMED])
def test_every_stored_instance_with_frames_is_transcoded_from_its_layout(archive: LoadedArchive, ref) -> None:
    """The pixel data element is found where the frames say, so no instance is read whole to be transcoded."""
    sources = archive.app.state.archive.retrieve.sources
    record = archive.app.state.archive.index.get(archive.results[ref.name].instance_uid)
    layout = sources._pixel_layout(record)
    assert layout is not None
    head, tail, start, length, vr = layout
    ds = transcode.read_head(head)
    assert "PixelData" not in ds and "SOPInstanceUID" in ds
    if not record.syntax.encapsulated:
        assert length >= record.pixel.frame_length * len(record.frames) - 7


@pytest.mark.parametrize("syntax", [RLE, J2K_LOSSLESS, ELE, DEFLATE])
async def test_a_transcoded_instance_keeps_the_elements_after_pixel_data(empty_archive: LoadedArchive,
                                                                         empty_client: httpx.AsyncClient,
                                                                         syntax: str) -> None:
    """Trailing elements (a private group, Digital Signatures) come after the re-encoded pixels, as stored."""
    from tests.dicom.test_trailing_elements import _with_trailing_elements

    source = _with_trailing_elements()
    buffer = io.BytesIO()
    source.save_as(buffer, enforce_file_format=True)
    buffer.seek(0)
    stored = empty_archive.app.state.archive.ingest.store(buffer)
    assert stored.record is not None
    response = await empty_client.get(stored.record.path.lstrip("/"),
                                      headers={"Accept": f"application/dicom; transfer-syntax={syntax}"})
    assert response.status_code == 200, response.text
    ds = pydicom.dcmread(io.BytesIO(response.content))
    assert ds.file_meta.TransferSyntaxUID == syntax
    assert np.array_equal(ds.pixel_array, source.pixel_array)
    assert ds[0x7FE11001].value == source[0x7FE11001].value and ds[0x7FE10010].value == "ACME TRAILER"
    assert ds[0xFFFAFFFA][0].MACIDNumber == 1


def test_past_4_gib_the_offsets_go_to_an_extended_offset_table() -> None:
    """PS3.5 A.4: 32-bit Basic Offset Table offsets cannot reach past 4 GiB; the Extended Offset Table takes over."""
    ds = Dataset()
    small = [1000, 2000, 3000]
    header, table = transcode._encapsulated_header(ds, small)
    assert table == b"\xfe\xff\x00\xe0" + struct.pack("<I", 12) + struct.pack("<3I", 0, 1008, 3016)
    assert "ExtendedOffsetTable" not in ds and header[8:] == b"\xff\xff\xff\xff"
    big = [3 << 30, 3 << 30]  # two frames of 3 GiB
    _, table = transcode._encapsulated_header(ds, big)
    assert table == b"\xfe\xff\x00\xe0" + struct.pack("<I", 0)
    assert struct.unpack("<2Q", ds.ExtendedOffsetTable) == (0, (3 << 30) + 8)
    assert struct.unpack("<2Q", ds.ExtendedOffsetTableLengths) == tuple(big)


async def test_a_multiframe_j2k_instance_as_native_matches_pydicom_and_openjpeg(client: httpx.AsyncClient) -> None:
    """The streamed native output (lengths computed up front) decodes to pydicom's and OpenJPEG's pixels."""
    import imagecodecs
    from pydicom.encaps import generate_frames

    name = next(r.name for r in REFERENCES if r.syntax == J2K_LOSSLESS and r.frames > 1)
    response = await client.get(path_of(name), headers={"Accept": f"application/dicom; transfer-syntax={ELE}"})
    assert response.status_code == 200
    out = pydicom.dcmread(io.BytesIO(response.content))
    source = dataset(name)
    assert np.array_equal(out.pixel_array, source.pixel_array)
    frames = generate_frames(source.PixelData, number_of_frames=int(source.NumberOfFrames))
    native = np.frombuffer(out.PixelData, dtype=out.pixel_array.dtype).reshape(out.pixel_array.shape)
    for index, frame in enumerate(frames):
        assert np.array_equal(imagecodecs.jpeg2k_decode(frame), native[index])
