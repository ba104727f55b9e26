"""``dicom.reader.parse``, the one read of a file at ingest, on pydicom's bundled files.

What it records (frame and bulk data offsets) is what Retrieve later serves without parsing again, so each offset
is checked against pydicom's own reading of the same file; what it re-encodes follows PS3.18 §8.7.3.5 (Implicit VR
Little Endian and Explicit VR Big Endian are never sent on the web) and is checked value for value.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.encaps import generate_fragmented_frames
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from dicomweb_origin.dicom.reader import ParsedFile, parse
from dicomweb_origin.errors import IngestError, NotDicom

THRESHOLD = 1024  # bytes: values at least this long are bulk data


def _path(name: str) -> str:
    found = get_testdata_file(name)
    assert isinstance(found, str), name
    return found


@pytest.fixture
def parsed_files() -> Iterator[list[ParsedFile]]:
    """Parsed files whose streams (a temporary file when re-encoded) are closed after the test."""
    opened: list[ParsedFile] = []
    yield opened
    for parsed in opened:
        parsed.stream.close()


def _parse(name: str, opened: list[ParsedFile]) -> tuple[bytes, ParsedFile]:
    data = Path(_path(name)).read_bytes()
    opened.append(parse(io.BytesIO(data), THRESHOLD))
    return data, opened[-1]


def _slice(parsed: ParsedFile, offset: int, length: int) -> bytes:
    parsed.stream.seek(offset)
    return parsed.stream.read(length)


def test_a_file_in_explicit_vr_little_endian_is_stored_byte_for_byte(parsed_files: list[ParsedFile]) -> None:
    data, parsed = _parse("CT_small.dcm", parsed_files)
    assert parsed.transfer_syntax_uid == parsed.source_transfer_syntax_uid == ExplicitVRLittleEndian
    parsed.stream.seek(0)
    assert parsed.stream.read() == data


@pytest.mark.parametrize("name", ["CT_small.dcm", "SC_rgb_small_odd.dcm", "MR_small_implicit.dcm"])
def test_the_native_frame_offset_addresses_the_pixel_data_value(name: str, parsed_files: list[ParsedFile]) -> None:
    """A native frame (§10.4.1.1.6 ``frames``) is served from the stored bytes at the recorded offset."""
    _, parsed = _parse(name, parsed_files)
    expected = pydicom.dcmread(_path(name)).PixelData
    assert parsed.pixel_path == "7FE00010" and parsed.pixel is not None and len(parsed.frames) == 1
    ((offset, length),) = parsed.frames[0]
    assert length == parsed.pixel.frame_bits // 8  # an odd-length value's pad byte is no part of the frame
    assert _slice(parsed, offset, length) == expected[:length]


def test_each_encapsulated_frame_is_recorded_as_its_fragments(parsed_files: list[ParsedFile]) -> None:
    """PS3.5 A.4: a multi-frame encapsulated value; each frame's recorded fragments are its compressed bytes."""
    name = "emri_small_jpeg_2k_lossless.dcm"
    _, parsed = _parse(name, parsed_files)
    dataset = pydicom.dcmread(_path(name))
    expected = list(generate_fragmented_frames(dataset.PixelData, number_of_frames=dataset.NumberOfFrames))
    assert parsed.pixel is not None and parsed.pixel.number_of_frames == len(parsed.frames) == len(expected) == 10
    for fragments, frame in zip(parsed.frames, expected, strict=True):
        assert [_slice(parsed, offset, length) for offset, length in fragments] == list(frame)


@pytest.mark.parametrize(("name", "syntax"), [
    ("MR_small_implicit.dcm", ImplicitVRLittleEndian),
    ("MR_small_bigendian.dcm", ExplicitVRBigEndian),
    ("image_dfl.dcm", DeflatedExplicitVRLittleEndian),
])
def test_encodings_the_web_does_not_carry_are_re_encoded_once_as_explicit_vr_little_endian(
        name: str, syntax: str, parsed_files: list[ParsedFile]) -> None:
    """§8.7.3.5: Implicit VR and Big Endian are not sent; stored once in Explicit VR LE, every value kept."""
    _, parsed = _parse(name, parsed_files)
    assert parsed.source_transfer_syntax_uid == syntax and parsed.transfer_syntax_uid == ExplicitVRLittleEndian
    parsed.stream.seek(0)
    stored = pydicom.dcmread(parsed.stream)
    original = pydicom.dcmread(_path(name))
    assert stored.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert stored.SOPInstanceUID == original.SOPInstanceUID and stored.PatientName == original.PatientName
    np.testing.assert_array_equal(stored.pixel_array, original.pixel_array)


def test_bulk_data_offsets_address_the_values_above_the_threshold(parsed_files: list[ParsedFile]) -> None:
    """BulkDataURIs (PS3.18 §8.6.1, F.2.6) are served from these offsets: each must hold the element's value."""
    _, parsed = _parse("CT_small.dcm", parsed_files)
    dataset = pydicom.dcmread(_path("CT_small.dcm"))
    assert parsed.bulk, "CT_small has a private OB value above the threshold"
    for path, element in parsed.bulk.items():
        tag = int(path, 16)
        assert element.vr == dataset[tag].VR
        assert _slice(parsed, element.offset, element.length) == dataset[tag].value


def test_bytes_that_are_not_dicom_are_not_dicom() -> None:
    with pytest.raises(NotDicom):
        parse(io.BytesIO(b"%PDF-1.4 not a DICOM file at all" * 10), THRESHOLD)


def test_a_part_10_file_cut_short_is_a_broken_dicom_file_not_a_stranger() -> None:
    """The preamble and DICM prefix say it is DICOM (PS3.10 7.1): truncated, it fails ingest as DICOM."""
    data = Path(_path("CT_small.dcm")).read_bytes()
    with pytest.raises(IngestError) as raised:
        parse(io.BytesIO(data[: len(data) // 2]), THRESHOLD)
    assert not isinstance(raised.value, NotDicom)


def test_the_re_encoded_copy_is_closed_when_reading_it_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """A file refused after re-encoding leaves no temporary file open (nothing left to the garbage collector)."""
    from dicomweb_origin.dicom import reader

    made: list[Any] = []
    original = tempfile.SpooledTemporaryFile

    def spooled(**kwargs: Any) -> Any:
        made.append(original(**kwargs))
        return made[-1]

    def refuse(*args: Any) -> Any:
        raise IngestError("the pixel data is broken")

    monkeypatch.setattr(reader, "tempfile", SimpleNamespace(SpooledTemporaryFile=spooled))
    monkeypatch.setattr(reader, "_scan_pixel_data", refuse)  # read only in the re-encoded copy of this file
    with pytest.raises(IngestError, match="pixel data is broken"):
        parse(io.BytesIO(Path(_path("MR_small_implicit.dcm")).read_bytes()), THRESHOLD)
    assert len(made) == 1 and made[0].closed
