"""Ingest (the Store use case): what is stored, how it is normalized, and what is refused.

PS3.18 §8.7.3: Implicit VR Little Endian and Explicit VR Big Endian are never sent on the web, so
files received in them (or deflated, or without File Meta Information) are stored once as Explicit
VR Little Endian; everything else is stored byte for byte. PS3.18 §10.5 / Annex I: a refused
instance gets a failure reason and leaves nothing behind.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRLittleEndian

from dicomweb_origin.ingest import CANNOT_UNDERSTAND, DIFFERENT_CONTENT, STUDY_UID_MISMATCH, Outcome
from tests.support.archive import LoadedArchive
from tests.support.reference import (
    BROKEN_FILES,
    BY_NAME,
    DEFLATE,
    EBE,
    ELE,
    ILE,
    REFERENCES,
    Reference,
    dataset,
    ids,
    prepared_bytes,
    source_path,
    uids,
    where,
)

NORMALIZED = where(lambda r: not r.byte_identical)
VERBATIM = where(lambda r: r.byte_identical)


def _files_under(path: Path) -> list[Path]:
    return [Path(root) / name for root, _dirs, names in os.walk(path) for name in names]


@pytest.mark.parametrize("ref", REFERENCES, ids=ids(REFERENCES))
def test_every_reference_instance_is_stored_as_described(archive: LoadedArchive, ref: Reference) -> None:
    """The index record holds the table's expectations: syntax, frames, pixel module, bulk data paths."""
    result = archive.results[ref.name]
    assert result.outcome is Outcome.STORED
    record = archive.record(ref.name)
    u = uids(ref.name)
    assert (record.study_uid, record.series_uid, record.instance_uid, record.sop_class_uid) == (
        u.study, u.series, u.instance, u.sop_class)
    assert record.transfer_syntax_uid == ref.stored_syntax
    assert record.source_transfer_syntax_uid == (ref.syntax or ILE)
    assert record.number_of_frames == ref.frames
    assert record.lossy is ref.lossy
    assert tuple(element.path for element in record.bulk) == ref.bulk
    if ref.has_pixels:
        pixel = record.pixel
        assert pixel is not None and record.pixel_path == "7FE00010"
        assert (pixel.rows, pixel.columns, pixel.samples_per_pixel, pixel.bits_allocated,
                pixel.photometric_interpretation, pixel.number_of_frames) == (
            ref.rows, ref.columns, ref.samples, ref.bits_allocated, ref.photometric, ref.frames)
    else:
        assert record.pixel is None and record.pixel_path is None and record.frames == ()


@pytest.mark.parametrize("ref", VERBATIM, ids=ids(VERBATIM))
def test_web_syntaxes_are_stored_byte_for_byte(archive: LoadedArchive, ref: Reference) -> None:
    data = archive.stored_bytes(ref.name)
    assert data == prepared_bytes(ref.name)
    assert archive.record(ref.name).size == len(data)


def _assert_same_dataset(stored: Dataset, source: Dataset, where: str = "") -> None:
    """Element by element: same tags, same VRs (ambiguous ones resolved), same values."""
    stored_tags = [e.tag for e in stored if e.tag.element != 0]
    source_tags = [e.tag for e in source if e.tag.element != 0]
    assert stored_tags == source_tags, where
    for tag in source_tags:
        a, b = stored[tag], source[tag]
        if b.VR == "SQ":
            assert a.VR == "SQ" and len(a.value) == len(b.value), f"{where}{tag}"
            for number, (x, y) in enumerate(zip(a.value, b.value, strict=True), start=1):
                _assert_same_dataset(x, y, f"{where}{tag}/{number}/")
        elif tag == 0x7FE00010:
            continue  # compared as pixels by the caller
        else:
            assert a.value == b.value, f"{where}{tag} {a.VR}: {a.value!r} != {b.value!r}"


@pytest.mark.parametrize("ref", NORMALIZED, ids=ids(NORMALIZED))
def test_implicit_big_endian_deflate_and_no_meta_are_stored_as_explicit_le(archive: LoadedArchive,
                                                                         ref: Reference) -> None:
    """PS3.18 §8.7.3: stored once as Explicit VR Little Endian, every element and every pixel kept."""
    stored = dcmread(io.BytesIO(archive.stored_bytes(ref.name)))
    assert stored.preamble is not None
    assert stored.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert stored.original_encoding == (False, True)
    assert stored.file_meta.MediaStorageSOPInstanceUID == uids(ref.name).instance
    assert stored.file_meta.MediaStorageSOPClassUID == uids(ref.name).sop_class
    source = dataset(ref.name)
    _assert_same_dataset(stored, source)
    if ref.has_pixels:
        np.testing.assert_array_equal(stored.pixel_array, source.pixel_array)


def test_reference_table_covers_every_encoding() -> None:
    syntaxes = {ref.syntax for ref in REFERENCES}
    assert {ELE, ILE, EBE, DEFLATE, ""} <= syntaxes
    assert {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.70",
            "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.90",
            "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.5"} <= syntaxes
    features = set().union(*(ref.features for ref in REFERENCES))
    assert {"multiframe", "charset", "private", "sequence", "no-meta"} <= features


def test_demo_studies_are_stored(archive: LoadedArchive) -> None:
    """The demo's own copies of pydicom files are the same bytes as the references: already present."""
    assert archive.demo
    for path, result in archive.demo.items():
        if path.parent.name == "pydicom":
            assert result.outcome is Outcome.PRESENT, (path.name, result.reason)
        else:
            assert result.outcome is Outcome.STORED, (path.name, result.reason)


def _broken_inputs() -> list[tuple[str, bytes]]:
    inputs = [(name, source_path(name).read_bytes()) for name in BROKEN_FILES]
    inputs.append(("text file", b"This is not a DICOM file.\nIt has two lines of text.\n" * 10))
    inputs.append(("empty file", b""))
    inputs.append(("preamble only", b"\0" * 128 + b"DICM"))
    half = prepared_bytes("CT_small")
    inputs.append(("CT_small cut in half", half[: len(half) // 2]))
    j2k = prepared_bytes("MR_small_jp2klossless")
    inputs.append(("J2K cut inside a fragment", j2k[:-100]))
    # Zeros read as millions of empty Command (0000,eeee) elements: refused from the first tag instead.
    inputs.append(("megabytes of zeros", bytes(8 << 20)))
    inputs.append(("preamble then zeros", b"\0" * 128 + b"DICM" + bytes(8 << 20)))
    ct = prepared_bytes("CT_small")
    meta_end = 132 + 12 + int.from_bytes(ct[140:144], "little")
    inputs.append(("File Meta then zeros", ct[:meta_end] + bytes(8 << 20)))
    return inputs


BROKEN = _broken_inputs()


@pytest.mark.parametrize(("label", "data"), BROKEN, ids=[label for label, _ in BROKEN])
def test_broken_files_are_refused_and_leave_nothing(empty_archive: LoadedArchive, label: str, data: bytes) -> None:
    ingest = empty_archive.app.state.archive.ingest
    result = ingest.store(io.BytesIO(data))
    assert result.outcome is Outcome.FAILED, label
    assert result.reason, "a refusal says why"
    assert result.failure_reason is not None
    assert empty_archive.index.count() == 0
    assert _files_under(empty_archive.settings.blob_dir) == []
    assert list(empty_archive.blobs.keys()) == []  # nothing on S3 either


@pytest.mark.parametrize(("data", "reason"), [
    (bytes(1 << 20), "neither File Meta Information (0002) nor group 0008"),
    (b"%PDF-1.7\n" + bytes(100), "neither File Meta Information (0002) nor group 0008"),
])
def test_data_that_cannot_begin_an_instance_is_not_dicom(empty_archive: LoadedArchive, data: bytes,
                                                         reason: str) -> None:
    result = empty_archive.app.state.archive.ingest.store(io.BytesIO(data))
    assert result.not_dicom
    assert reason in (result.reason or "")


def test_command_elements_after_the_file_meta_are_refused(empty_archive: LoadedArchive) -> None:
    ct = prepared_bytes("CT_small")
    meta_end = 132 + 12 + int.from_bytes(ct[140:144], "little")
    result = empty_archive.app.state.archive.ingest.store(io.BytesIO(ct[:meta_end] + bytes(1 << 20)))
    assert not result.not_dicom  # it has a preamble and File Meta: a broken DICOM file
    assert "Command (0000,eeee)" in (result.reason or "")


def test_truncated_file_with_the_uid_of_a_stored_instance_is_refused_as_broken(empty_archive: LoadedArchive) -> None:
    """``rtplan_truncated.dcm`` shares its UID with ``rtplan.dcm``: it is broken, not "already present"."""
    ingest = empty_archive.app.state.archive.ingest
    assert ingest.store(io.BytesIO(prepared_bytes("rtplan"))).outcome is Outcome.STORED
    result = ingest.store(io.BytesIO(source_path("rtplan_truncated.dcm").read_bytes()))
    assert result.outcome is Outcome.FAILED
    assert "truncated" in (result.reason or "")
    assert result.failure_reason == CANNOT_UNDERSTAND
    assert empty_archive.index.count() == 1


def test_storing_the_same_bytes_again_is_already_present(empty_archive: LoadedArchive) -> None:
    ingest = empty_archive.app.state.archive.ingest
    first = ingest.store(io.BytesIO(prepared_bytes("MR_small_bigendian")))
    again = ingest.store(io.BytesIO(prepared_bytes("MR_small_bigendian")))
    assert first.outcome is Outcome.STORED
    assert again.outcome is Outcome.PRESENT
    assert again.record == first.record
    assert empty_archive.index.count() == 1
    assert len(list(empty_archive.blobs.keys())) == 1  # on any blob store (files, S3)


def test_different_bytes_under_a_stored_sop_instance_uid_are_refused(empty_archive: LoadedArchive) -> None:
    """Stored instances are immutable: ``MR_small.dcm`` (original UID) after its JPEG-LS twin is refused."""
    ingest = empty_archive.app.state.archive.ingest
    kept = ingest.store(io.BytesIO(prepared_bytes("MR_small_jpeg_ls_lossless")))
    assert kept.outcome is Outcome.STORED
    other = ingest.store(io.BytesIO(source_path("MR_small.dcm").read_bytes()))
    assert other.outcome is Outcome.FAILED
    assert other.failure_reason == DIFFERENT_CONTENT
    assert other.instance_uid == kept.record.instance_uid
    assert empty_archive.index.get(kept.record.instance_uid) == kept.record
    keys = list(empty_archive.blobs.keys())
    assert len(keys) == 1 and empty_archive.blobs.read(keys[0]) == prepared_bytes("MR_small_jpeg_ls_lossless")


def test_study_uid_of_the_request_must_match(empty_archive: LoadedArchive) -> None:
    """PS3.18 §10.5.1.1: instances stored to /studies/{study} must belong to that study."""
    ingest = empty_archive.app.state.archive.ingest
    result = ingest.store(io.BytesIO(prepared_bytes("CT_small")), "1.2.3.4")
    assert result.outcome is Outcome.FAILED and result.failure_reason == STUDY_UID_MISMATCH
    assert empty_archive.index.count() == 0
    matching = ingest.store(io.BytesIO(prepared_bytes("CT_small")), uids("CT_small").study)
    assert matching.outcome is Outcome.STORED


def test_big_endian_and_little_endian_twins_store_the_same_pixels(archive: LoadedArchive) -> None:
    """``emri_small_big_endian`` normalized equals ``emri_small`` pixel for pixel (both stored natively)."""
    little = dcmread(io.BytesIO(archive.stored_bytes("emri_small")))
    big = dcmread(io.BytesIO(archive.stored_bytes("emri_small_big_endian")))
    assert big.PixelData == little.PixelData
    assert BY_NAME["emri_small_big_endian"].stored_syntax == ELE


def test_a_wrong_file_meta_group_length_is_not_trusted(empty_archive: LoadedArchive) -> None:
    """The first-tag check walks the File Meta elements, as pydicom does, rather than trust their group length."""
    ct = bytearray(prepared_bytes("CT_small"))
    length = int.from_bytes(ct[140:144], "little")
    data_set = 144 + length
    ct[data_set:data_set] = b"\x08\x00\x00\x00UL\x04\x00" + bytes(4)  # a (retired) group length (0008,0000)
    ct[140:144] = (length + 2).to_bytes(4, "little")  # now it points at 00 00, the element number of (0008,0000)
    result = empty_archive.app.state.archive.ingest.store(io.BytesIO(bytes(ct)))
    assert result.outcome is Outcome.STORED, result.reason


def test_an_unreadable_image_pixel_attribute_is_named(empty_archive: LoadedArchive) -> None:
    """pydicom's badVR.dcm has Number of Frames '1A': the refusal says so, not that attributes are missing."""
    data = Path(str(get_testdata_file("badVR.dcm"))).read_bytes()
    result = empty_archive.app.state.archive.ingest.store(io.BytesIO(data))
    assert result.outcome is Outcome.FAILED
    assert result.reason == "Pixel Data with an unreadable NumberOfFrames: '1A'"
