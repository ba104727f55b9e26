"""The demo generator must be deterministic, readable by pydicom, and geometrically sane."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom.data
import pytest
from pydicom import Dataset, dcmread
from pydicom.uid import (
    CTImageStorage,
    EnhancedCTImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
)

from dicomweb_origin.demo import DEMO_STUDIES, PYDICOM_FILES, generate_demo, phantom_volume

SLICES, SIZE = 12, 64  # small run: every study shrinks to this


@pytest.fixture(scope="module")
def small_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path], Path, list[Path]]:
    first, second = tmp_path_factory.mktemp("first"), tmp_path_factory.mktemp("second")
    first_paths = generate_demo(first, slices=SLICES, size=SIZE)
    return first, first_paths, second, generate_demo(second, slices=SLICES, size=SIZE)


@pytest.fixture(scope="module")
def small(small_runs: tuple[Path, list[Path], Path, list[Path]]) -> tuple[Path, list[Path]]:
    return small_runs[0], small_runs[1]


def _series(root: Path, folder: str) -> list[Dataset]:
    return [dcmread(p) for p in sorted((root / folder).glob("*.dcm"))]


def test_every_file_is_part10_and_decodes(small: tuple[Path, list[Path]]) -> None:
    root, paths = small
    assert len(paths) == SLICES + SLICES + 1 + 1 + 2 + len(PYDICOM_FILES)
    assert all(p.is_relative_to(root) and p.is_file() for p in paths)
    assert {p.parent.name for p in paths} == {"ct", "ct-j2k", "enhanced-ct", "leading-zero", "documents", "pydicom"}
    for path in paths:
        assert path.read_bytes()[128:132] == b"DICM", path
        ds = dcmread(path)
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
        if path.parent.name != "documents":
            assert ds.pixel_array.size > 0


def test_generation_is_deterministic(small_runs: tuple[Path, list[Path], Path, list[Path]]) -> None:
    first, first_paths, second, second_paths = small_runs
    assert [p.relative_to(first) for p in first_paths] == [p.relative_to(second) for p in second_paths]
    for a, b in zip(first_paths, second_paths, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.relative_to(first)


def test_uids_are_valid_and_distinct(small: tuple[Path, list[Path]]) -> None:
    root, paths = small
    datasets = [dcmread(p, stop_before_pixels=True) for p in paths]
    sop_uids = [ds.SOPInstanceUID for ds in datasets]
    assert len(set(sop_uids)) == len(sop_uids)
    # pydicom's UID.is_valid is PS3.5 §9.1 to the letter; only the leading-zero study breaks its no-leading-zero rule.
    assert all(uid.is_valid for uid, p in zip(sop_uids, paths, strict=True) if p.parent.name != "leading-zero")
    generated = [ds for p, ds in zip(paths, datasets, strict=True) if p.parent.name != "pydicom"]
    studies = {ds.StudyInstanceUID: ds.StudyDescription for ds in generated}
    assert sorted(studies.values()) == sorted(s.description for s in DEMO_STUDIES)
    assert len({ds.SeriesInstanceUID for ds in generated}) == len(DEMO_STUDIES) + 1  # the report: SR and PDF
    assert {ds.PatientID for ds in generated} == {"DEMO-PHANTOM-1"}
    assert {str(ds.PatientName) for ds in generated} == {"Demo^Phantom"}
    assert {ds.SpecificCharacterSet for ds in generated} == {"ISO_IR 192"}
    assert str(generated[0].ReferringPhysicianName) == "Röntgen^Wilhelm"


def test_uids_depend_on_size(small: tuple[Path, list[Path]], tmp_path: Path) -> None:
    other = generate_demo(tmp_path, slices=SLICES, size=SIZE + 16)
    ours = dcmread(small[0] / "ct" / "0001.dcm", stop_before_pixels=True)
    theirs = dcmread(other[0], stop_before_pixels=True)
    assert ours.StudyInstanceUID != theirs.StudyInstanceUID
    assert ours.SOPInstanceUID != theirs.SOPInstanceUID


def test_j2k_study_is_lossless_copy_of_phantom(small: tuple[Path, list[Path]]) -> None:
    root, _ = small
    j2k = _series(root, "ct-j2k")
    plain = _series(root, "ct")
    assert len(j2k) == SLICES
    assert {ds.file_meta.TransferSyntaxUID for ds in j2k} == {JPEG2000Lossless}
    assert {ds.file_meta.TransferSyntaxUID for ds in plain} == {ExplicitVRLittleEndian}
    decoded = np.stack([ds.pixel_array for ds in j2k])
    assert decoded.dtype == np.int16
    np.testing.assert_array_equal(decoded, phantom_volume(SLICES, SIZE))
    np.testing.assert_array_equal(decoded, np.stack([ds.pixel_array for ds in plain]))
    assert j2k[0].StudyInstanceUID != plain[0].StudyInstanceUID
    assert j2k[0].PatientID == plain[0].PatientID


def test_enhanced_multiframe_geometry(small: tuple[Path, list[Path]]) -> None:
    root, _ = small
    (ds,) = _series(root, "enhanced-ct")
    assert ds.SOPClassUID == EnhancedCTImageStorage
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.NumberOfFrames == SLICES
    assert ds.pixel_array.shape == (SLICES, SIZE, SIZE)
    np.testing.assert_array_equal(ds.pixel_array, phantom_volume(SLICES, SIZE))

    shared = ds.SharedFunctionalGroupsSequence[0]
    measures = shared.PixelMeasuresSequence[0]
    orientation = shared.PlaneOrientationSequence[0].ImageOrientationPatient
    assert [float(v) for v in orientation] == [1, 0, 0, 0, 1, 0]
    assert float(shared.PixelValueTransformationSequence[0].RescaleIntercept) == -1024
    assert float(shared.FrameVOILUTSequence[0].WindowWidth) > 0

    frames = ds.PerFrameFunctionalGroupsSequence
    assert len(frames) == SLICES
    z = np.array([float(f.PlanePositionSequence[0].ImagePositionPatient[2]) for f in frames])
    np.testing.assert_allclose(np.diff(z), float(measures.SliceThickness), atol=1e-3)
    assert [f.FrameContentSequence[0].InStackPositionNumber for f in frames] == list(range(1, SLICES + 1))
    assert [list(f.FrameContentSequence[0].DimensionIndexValues) for f in frames][-1] == [1, SLICES]


def test_pydicom_files_are_verbatim_with_distinct_uids(small: tuple[Path, list[Path]]) -> None:
    root, _ = small
    copies = sorted((root / "pydicom").iterdir())
    assert [p.name for p in copies] == sorted(PYDICOM_FILES)
    sop_uids = set()
    for copy in copies:
        source = pydicom.data.get_testdata_file(copy.name, download=False)
        assert isinstance(source, str)
        assert copy.read_bytes() == Path(source).read_bytes()
        ds = dcmread(copy, stop_before_pixels=True)
        assert ds.file_meta.TransferSyntaxUID == PYDICOM_FILES[copy.name]
        sop_uids.add(ds.SOPInstanceUID)
    assert len(sop_uids) == len(copies)
    frames = [int(dcmread(p, stop_before_pixels=True).get("NumberOfFrames", 1)) for p in copies]
    assert max(frames) > 1  # at least one multi-frame file


def test_one_study_has_leading_zero_components_in_every_uid(small: tuple[Path, list[Path]]) -> None:
    """Real modalities write components such as ``0000217`` (forbidden by PS3.5 §9.1); the demo carries one."""
    root, _ = small
    (path,) = (root / "leading-zero").iterdir()
    ds = dcmread(path)
    source = dcmread(str(pydicom.data.get_testdata_file("MR_small.dcm", download=False)))
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        uid = str(ds[keyword].value)
        assert len(uid) <= 64 and set(uid) <= set("0123456789.")
        assert any(len(c) > 1 and c.startswith("0") for c in uid.split(".")), uid
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert len({ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID}) == 3
    assert ds.StudyDescription == "Demo leading-zero UIDs"
    assert np.array_equal(ds.pixel_array, source.pixel_array)  # the real pixels of MR_small.dcm


def test_rejects_degenerate_sizes(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate_demo(tmp_path, slices=0)
    with pytest.raises(ValueError):
        generate_demo(tmp_path, size=8)


def test_default_size_ct_phantom(tmp_path: Path) -> None:
    paths = generate_demo(tmp_path)
    ct = _series(tmp_path, "ct")
    assert len(ct) == 128
    assert len(list((tmp_path / "ct-j2k").glob("*.dcm"))) == 32
    assert len(paths) == 128 + 32 + 1 + 1 + 2 + len(PYDICOM_FILES)

    first = ct[0]
    assert first.SOPClassUID == CTImageStorage
    assert (first.Rows, first.Columns) == (512, 512)
    assert (first.BitsAllocated, first.BitsStored, first.HighBit) == (16, 16, 15)
    assert first.PixelRepresentation == 1
    assert (float(first.RescaleSlope), float(first.RescaleIntercept)) == (1.0, -1024.0)
    assert [float(v) for v in first.PixelSpacing] == [0.7, 0.7]
    assert [float(v) for v in first.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]

    assert [ds.InstanceNumber for ds in ct] == list(range(1, 129))
    z = np.array([float(ds.ImagePositionPatient[2]) for ds in ct])
    np.testing.assert_allclose(np.diff(z), 1.25, atol=1e-6)
    assert [float(ds.SliceLocation) for ds in ct] == list(z)
    assert {float(ds.SliceThickness) for ds in ct} == {1.25}
    assert len({ds.FrameOfReferenceUID for ds in ct}) == 1

    middle = ct[64]
    pixels = middle.pixel_array
    assert pixels.shape == (512, 512) and pixels.dtype == np.int16
    hu = pixels * float(middle.RescaleSlope) + float(middle.RescaleIntercept)

    def roi(x_mm: float, y_mm: float) -> float:
        """Median HU of a 7x7 pixel patch centred at patient (x, y); rows run posterior."""
        col, row = (round((v + 179.2) / 0.7 - 0.5) for v in (x_mm, y_mm))
        return float(np.median(hu[row - 3 : row + 4, col - 3 : col + 4]))

    assert hu[:20, :20].max() < -900  # air outside the body
    assert roi(0, 106) > 300  # posterior vertebral arch
    assert roi(72, 0) < -700 and roi(-72, 0) < -700  # lungs
    assert -20 < roi(-135, 0) < 100  # soft tissue
    assert hu.min() >= -1024

    (enhanced,) = _series(tmp_path, "enhanced-ct")
    assert enhanced.pixel_array.shape == (40, 256, 256)


def test_the_report_is_an_sr_and_the_same_report_as_a_pdf(small: tuple[Path, list[Path]], tmp_path: Path) -> None:
    """A Comprehensive SR and an Encapsulated PDF (PS3.3 A.35.3, A.45.1), the same at every size."""
    import io

    import pypdfium2

    from dicomweb_origin.demo import REPORT

    root, _ = small
    sr, pdf = dcmread(root / "documents" / "sr.dcm"), dcmread(root / "documents" / "pdf.dcm")
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.33" and sr.Modality == "SR"
    assert pdf.SOPClassUID == "1.2.840.10008.5.1.4.1.1.104.1" and pdf.Modality == "DOC"
    assert sr.StudyInstanceUID == pdf.StudyInstanceUID and sr.SeriesInstanceUID != pdf.SeriesInstanceUID
    texts = [item.TextValue for section in sr.ContentSequence if section.ValueType == "CONTAINER"
             for item in section.ContentSequence if item.ValueType == "TEXT"]
    assert texts == [text for _, text in REPORT]
    document = pdf.EncapsulatedDocument
    assert document.startswith(b"%PDF-1.4") and len(document) > 1024  # a bulk data element (BulkDataURI)
    page = pypdfium2.PdfDocument(io.BytesIO(document))[0]
    shown = " ".join(page.get_textpage().get_text_range().split())
    assert all(" ".join(text.split()) in shown for _, text in REPORT), shown
    other = generate_demo(tmp_path, slices=SLICES + 1, size=SIZE)
    for name in ("sr.dcm", "pdf.dcm"):
        assert next(p for p in other if p.name == name).read_bytes() == (root / "documents" / name).read_bytes()
