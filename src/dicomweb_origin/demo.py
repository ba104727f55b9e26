"""Deterministic demo data: a synthetic CT phantom in three encodings, its report, and some of pydicom's files.

The report is kept twice, as a Comprehensive SR and as an Encapsulated PDF.

A fresh server needs studies a viewer (e.g. OHIF) can open, and tests need the same bytes every run.
Everything here is derived from fixed seeds and fixed UID entropy, so generating twice gives identical
UIDs and identical pixels; nothing is downloaded (pydicom's bundled test files only).

Past 400 lines on purpose: one generator of one demo archive, whose studies share the patient, the phantom's
geometry and the UID scheme; it is data written as code, not logic the server runs.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Final

import numpy as np
import numpy.typing as npt
import pydicom.data
from pydicom import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    JPEG2000,
    PYDICOM_IMPLEMENTATION_UID,
    PYDICOM_ROOT_UID,
    UID,
    ComprehensiveSRStorage,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    EncapsulatedPDFStorage,
    EnhancedCTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

__all__ = ["DEMO_STUDIES", "PYDICOM_FILES", "DemoStudy", "generate_demo", "phantom_volume", "demo_uid",
           "leading_zero_uid", "report_pdf"]

# Phantom geometry in patient millimetres: the same object is sampled at any matrix size / slice count.
FOV_MM: Final = 358.4  # 512 px x 0.7 mm
Z_EXTENT_MM: Final = 160.0  # 128 slices x 1.25 mm
HU_OFFSET: Final = 1024  # stored = HU + 1024 (RescaleIntercept -1024)
NOISE_SEED: Final = 20240115
UID_NAMESPACE: Final = "dicomweb-origin/demo/v1"
AXIAL_ORIENTATION: Final = ("1", "0", "0", "0", "1", "0")  # rows +x (left), columns +y (posterior)


@dataclass(frozen=True)
class DemoStudy:
    """One generated study: where it goes and how it is labelled."""

    key: str
    folder: str
    description: str
    accession: str
    study_id: str
    study_time: str


CT: Final = DemoStudy("ct", "ct", "Demo CT phantom", "DEMO0001", "1", "093000")
CT_J2K: Final = DemoStudy("ct-j2k", "ct-j2k", "Demo CT phantom, JPEG 2000", "DEMO0002", "2", "101500")
ENHANCED: Final = DemoStudy(
    "enhanced-ct", "enhanced-ct", "Demo enhanced multi-frame", "DEMO0003", "3", "110000"
)
# pydicom's MR_small.dcm under UIDs with zero-padded components, as some modalities write them.
LEADING_ZERO: Final = DemoStudy(
    "leading-zero", "leading-zero", "Demo leading-zero UIDs", "DEMO0004", "4", "120000"
)
LEADING_ZERO_SOURCE: Final = "MR_small.dcm"
# A Comprehensive SR and an Encapsulated PDF of the phantom's report: something for the rendered SR (text/html)
# and PDF (application/pdf) resources and for bulk data byte ranges. Their UIDs do not depend on the CT's size.
DOCUMENTS: Final = DemoStudy(
    "documents", "documents", "Demo report and document", "DEMO0005", "5", "130000"
)
DEMO_STUDIES: Final[tuple[DemoStudy, ...]] = (CT, CT_J2K, ENHANCED, LEADING_ZERO, DOCUMENTS)
STUDY_DATE: Final = "20240115"

# Upper bounds for the smaller copies; they shrink with generate_demo's arguments so tests stay fast.
J2K_SLICES: Final = 32
J2K_SIZE: Final = 256
ENHANCED_FRAMES: Final = 40
ENHANCED_SIZE: Final = 256

# Bundled with pydicom itself (no pydicom-data needed), one file per SOP Instance UID, chosen to cover
# transfer syntaxes and multi-frame: name -> transfer syntax, for documentation and tests.
PYDICOM_FILES: Final[Mapping[str, str]] = MappingProxyType({
    "CT_small.dcm": ExplicitVRLittleEndian,  # CT
    "SC_rgb_jpeg_dcmd.dcm": ImplicitVRLittleEndian,  # RGB
    "image_dfl.dcm": DeflatedExplicitVRLittleEndian,
    "examples_ybr_color.dcm": JPEGBaseline8Bit,  # 30-frame US, YBR_FULL_422
    "SC_rgb_jpeg_gdcm.dcm": JPEGLosslessSV1,  # RGB
    "JPEG2000.dcm": JPEG2000,  # the lossy-capable syntax, 16-bit signed
    "MR_small_jpeg_ls_lossless.dcm": JPEGLSLossless,  # MR
    "rtdose_rle.dcm": RLELossless,  # 15-frame RT Dose, 32-bit
})

PATIENT: Final[tuple[tuple[str, str], ...]] = (
    ("PatientName", "Demo^Phantom"),
    ("PatientID", "DEMO-PHANTOM-1"),
    ("PatientBirthDate", "19700101"),
    ("PatientSex", "O"),
)


def demo_uid(*parts: object) -> UID:
    """A UID that depends only on `parts`, so regenerating the demo reproduces it exactly."""
    return generate_uid(entropy_srcs=[UID_NAMESPACE, *(str(p) for p in parts)])


@dataclass(frozen=True)
class _Geometry:
    """Sampling of the phantom: square matrix centred on the isocentre, slices stepping +z."""

    slices: int
    size: int

    @property
    def spacing(self) -> float:
        return round(FOV_MM / self.size, 6)

    @property
    def thickness(self) -> float:
        return round(Z_EXTENT_MM / self.slices, 6)

    def z(self, index: int) -> float:
        return round(-Z_EXTENT_MM / 2 + (index + 0.5) * self.thickness, 4)

    def position(self, index: int) -> list[float]:
        corner = round(-FOV_MM / 2 + self.spacing / 2, 4)
        return [corner, corner, self.z(index)]


def _disk(
    x: npt.NDArray[np.float32], y: npt.NDArray[np.float32], cx: float, cy: float, a: float, b: float
) -> npt.NDArray[np.bool_]:
    """Boolean mask of an axis-aligned ellipse (empty when a semi-axis is not positive)."""
    if a <= 0 or b <= 0:
        return np.zeros(np.broadcast_shapes(x.shape, y.shape), dtype=bool)
    return ((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 <= 1.0


def _taper(z: float, centre: float, half_length: float) -> float:
    """Cross-section scale of an ellipsoid-like organ at height z (0 outside it)."""
    t = 1.0 - ((z - centre) / half_length) ** 2
    return float(np.sqrt(t)) if t > 0 else 0.0


def _slice_hu(z: float, size: int) -> npt.NDArray[np.float32]:
    """Noise-free HU of one axial slice: a chest/abdomen-like phantom whose anatomy changes with z.

    Image columns run to patient left (+x), rows to posterior (+y), so the spine is at the bottom.
    """
    coords = (np.arange(size, dtype=np.float32) + 0.5) * np.float32(FOV_MM / size) - np.float32(FOV_MM / 2)
    x, y = coords[np.newaxis, :], coords[:, np.newaxis]
    hu = np.full((size, size), -1000.0, dtype=np.float32)

    hu[(np.abs(x) < 170) & (y > 124) & (y < 131)] = 250.0  # patient table
    body = 1.0 - 0.05 * (z / 80.0) ** 2
    hu[_disk(x, y, 0, 0, 160 * body, 115 * body)] = -100.0  # subcutaneous fat
    hu[_disk(x, y, 0, 0, 150 * body, 105 * body)] = 40.0  # soft tissue
    liver = _taper(z, -80.0, 65.0)  # below the "diaphragm"
    hu[_disk(x, y, -55, 5, 80 * liver, 65 * liver)] = 60.0
    lung = _taper(z, 20.0, 75.0)  # vanish at z = -55 mm, largest at z = +20 mm
    for side in (-1, 1):
        hu[_disk(x, y, side * 72, 0, 48 * lung, 68 * lung)] = -820.0
    heart = _taper(z, 0.0, 45.0)
    hu[_disk(x, y, 15, -10, 45 * heart, 38 * heart)] = 45.0
    hu[_disk(x, y, 15, -10, 22 * heart, 18 * heart)] = 180.0  # contrast-filled ventricle
    hu[_disk(x, y, 22, 55, 12, 12)] = 200.0  # aorta with contrast

    # Spine: vertebral bodies with discs every 28 mm, cortical rim, posterior arch and canal.
    disc = (z + 200.0) % 28.0 < 5.0
    hu[_disk(x, y, 0, 80, 20, 18)] = 80.0 if disc else 1000.0
    if not disc:
        hu[_disk(x, y, 0, 80, 16, 14)] = 400.0
    hu[_disk(x, y, 0, 106, 26, 9)] = 750.0
    hu[_disk(x, y, 0, 98, 7, 7)] = 15.0

    # Contrast inserts of known density along the anterior wall.
    for cx, value in zip((-60, -30, 0, 30, 60), (-100.0, 0.0, 100.0, 300.0, 600.0), strict=True):
        hu[_disk(x, y, cx, -88, 6, 6)] = value

    # Spheres that appear and disappear while scrolling: two lung nodules and a liver lesion.
    spheres = ((-72, -5, 30, 18, 60.0), (75, 10, -10, 10, 120.0), (-55, 15, -60, 20, 110.0))
    for cx, cy, cz, radius, value in spheres:
        r = np.sqrt(max(radius**2 - (z - cz) ** 2, 0.0))
        hu[_disk(x, y, cx, cy, r, r)] = value
    return hu


def phantom_volume(slices: int, size: int) -> npt.NDArray[np.int16]:
    """Stored values (HU + 1024, int16) of the phantom sampled at slices x size x size, with fixed noise."""
    geometry = _Geometry(slices, size)
    volume = np.empty((slices, size, size), dtype=np.int16)
    for i in range(slices):
        rng = np.random.default_rng([NOISE_SEED, slices, size, i])
        noisy = _slice_hu(geometry.z(i), size) + rng.standard_normal((size, size), dtype=np.float32) * 8.0
        volume[i] = np.clip(np.rint(noisy) + HU_OFFSET, 0, 4095)
    return volume


def _file_meta(sop_class: UID, sop_instance: UID, transfer_syntax: UID) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return meta


def _series_dataset(study: DemoStudy, sop_class: UID, sop_instance: UID, geometry: _Geometry) -> Dataset:
    """Patient, study, series, equipment and frame-of-reference attributes shared by all demo studies."""
    tag = (study.key, geometry.slices, geometry.size)
    ds = Dataset()
    ds.file_meta = _file_meta(sop_class, sop_instance, ExplicitVRLittleEndian)
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance
    ds.InstanceCreationDate, ds.InstanceCreationTime = STUDY_DATE, study.study_time
    for keyword, value in PATIENT:
        setattr(ds, keyword, value)
    ds.StudyInstanceUID = demo_uid(*tag, "study")
    ds.StudyDate, ds.StudyTime = STUDY_DATE, study.study_time
    ds.StudyDescription = study.description
    ds.AccessionNumber = study.accession
    ds.StudyID = study.study_id
    ds.ReferringPhysicianName = "Röntgen^Wilhelm"  # non-ASCII on purpose: exercises ISO_IR 192
    ds.Modality = "CT"
    ds.SeriesInstanceUID = demo_uid(*tag, "series")
    ds.SeriesNumber = 1
    ds.SeriesDate, ds.SeriesTime = STUDY_DATE, study.study_time
    ds.SeriesDescription = f"Phantom {geometry.slices}x{geometry.size}x{geometry.size}"
    ds.BodyPartExamined = "CHEST"
    ds.PatientPosition = "HFS"
    ds.FrameOfReferenceUID = demo_uid(*tag, "frame-of-reference")
    ds.PositionReferenceIndicator = ""
    ds.Manufacturer = "dicomweb-origin"
    ds.ManufacturerModelName = "Synthetic phantom"
    ds.DeviceSerialNumber = "0001"
    ds.SoftwareVersions = "1"
    ds.InstitutionName = "Demo Hospital"
    ds.KVP = "120"
    ds.ContentDate, ds.ContentTime = STUDY_DATE, study.study_time
    ds.InstanceNumber = 1
    return ds


def _ct_slice(study: DemoStudy, geometry: _Geometry, index: int, pixels: npt.NDArray[np.int16]) -> Dataset:
    """One CT Image Storage instance (single frame, Explicit VR Little Endian)."""
    tag = (study.key, geometry.slices, geometry.size)
    ds = _series_dataset(study, CTImageStorage, demo_uid(*tag, "instance", index), geometry)
    ds.InstanceNumber = index + 1
    ds.AcquisitionNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ImagePositionPatient = geometry.position(index)
    ds.ImageOrientationPatient = list(AXIAL_ORIENTATION)
    ds.PixelSpacing = [geometry.spacing, geometry.spacing]
    ds.SliceThickness = geometry.thickness
    ds.SpacingBetweenSlices = geometry.thickness
    ds.SliceLocation = geometry.z(index)
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = str(-HU_OFFSET), "1", "HU"
    ds.WindowCenter, ds.WindowWidth = "40", "400"
    ds.WindowCenterWidthExplanation = "SOFT TISSUE"
    ds.XRayTubeCurrent = 200
    ds.ExposureTime = 500
    ds.ConvolutionKernel = "STANDARD"
    ds.ReconstructionDiameter = str(FOV_MM)
    ds.GantryDetectorTilt = "0"
    ds.TableHeight = "130"
    ds.set_pixel_data(pixels, "MONOCHROME2", 16, generate_instance_uid=False)
    return ds


def _write(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _write_ct_series(out_dir: Path, study: DemoStudy, geometry: _Geometry, *, j2k: bool) -> list[Path]:
    volume = phantom_volume(geometry.slices, geometry.size)
    paths: list[Path] = []
    for i in range(geometry.slices):
        ds = _ct_slice(study, geometry, i, volume[i])
        if j2k:
            ds.compress(JPEG2000Lossless, volume[i], generate_instance_uid=False)
        paths.append(_write(ds, out_dir / study.folder / f"{i + 1:04d}.dcm"))
    return paths


def _enhanced_ct(geometry: _Geometry) -> Dataset:
    """One Enhanced CT multi-frame instance with the functional groups viewers use for 3D geometry."""
    tag = (ENHANCED.key, geometry.slices, geometry.size)
    ds = _series_dataset(ENHANCED, EnhancedCTImageStorage, demo_uid(*tag, "instance", 0), geometry)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    ds.PixelPresentation, ds.VolumetricProperties = "MONOCHROME", "VOLUME"
    ds.VolumeBasedCalculationTechnique = "NONE"
    ds.AcquisitionNumber = 1
    ds.AcquisitionDateTime = STUDY_DATE + ENHANCED.study_time
    ds.AcquisitionDuration = 1.0
    ds.ContentQualification = "PRODUCT"
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.PresentationLUTShape = "IDENTITY"
    ds.AcquisitionContextSequence = Sequence()

    dimension_org = demo_uid(*tag, "dimension-organization")
    ds.DimensionOrganizationSequence = Sequence([Dataset()])
    ds.DimensionOrganizationSequence[0].DimensionOrganizationUID = dimension_org
    ds.DimensionOrganizationType = "3D"
    ds.DimensionIndexSequence = Sequence()
    for pointer, label in ((0x00209056, "Stack ID"), (0x00209057, "In-Stack Position Number")):
        index = Dataset()
        index.DimensionOrganizationUID = dimension_org
        index.DimensionIndexPointer = pointer
        index.FunctionalGroupPointer = 0x00209111  # Frame Content Sequence
        index.DimensionDescriptionLabel = label
        ds.DimensionIndexSequence.append(index)

    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [geometry.spacing, geometry.spacing]
    measures.SliceThickness = geometry.thickness
    measures.SpacingBetweenSlices = geometry.thickness
    orientation = Dataset()
    orientation.ImageOrientationPatient = list(AXIAL_ORIENTATION)
    transform = Dataset()
    transform.RescaleIntercept, transform.RescaleSlope = str(-HU_OFFSET), "1"
    transform.RescaleType = "HU"
    voi = Dataset()
    voi.WindowCenter, voi.WindowWidth, voi.WindowCenterWidthExplanation = "40", "400", "SOFT TISSUE"
    frame_type = Dataset()
    frame_type.FrameType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    frame_type.PixelPresentation, frame_type.VolumetricProperties = "MONOCHROME", "VOLUME"
    frame_type.VolumeBasedCalculationTechnique = "NONE"
    shared.PixelMeasuresSequence = Sequence([measures])
    shared.PlaneOrientationSequence = Sequence([orientation])
    shared.PixelValueTransformationSequence = Sequence([transform])
    shared.FrameVOILUTSequence = Sequence([voi])
    shared.CTImageFrameTypeSequence = Sequence([frame_type])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])

    ds.PerFrameFunctionalGroupsSequence = Sequence()
    for i in range(geometry.slices):
        position = Dataset()
        position.ImagePositionPatient = geometry.position(i)
        content = Dataset()
        content.FrameAcquisitionDateTime = content.FrameReferenceDateTime = ds.AcquisitionDateTime
        content.FrameAcquisitionDuration = 1.0
        content.StackID = "1"
        content.InStackPositionNumber = i + 1
        content.DimensionIndexValues = [1, i + 1]
        frame = Dataset()
        frame.PlanePositionSequence = Sequence([position])
        frame.FrameContentSequence = Sequence([content])
        ds.PerFrameFunctionalGroupsSequence.append(frame)

    volume = phantom_volume(geometry.slices, geometry.size)
    ds.set_pixel_data(volume, "MONOCHROME2", 16, generate_instance_uid=False)
    return ds


def leading_zero_uid(*parts: object) -> str:
    """A deterministic UID with zero-padded components (``...498.0000217.<digits>.00<digits>``).

    PS3.5 §9.1 forbids leading zeros in a component, yet real files carry them; the demo has one such
    study so that a viewer's study list shows it.
    """
    digits = demo_uid(*parts).rsplit(".", 1)[1]
    return f"{PYDICOM_ROOT_UID}0000217.{digits[:14]}.00{digits[14:20]}"


def _write_leading_zero_study(out_dir: Path) -> Path:
    """Write pydicom's MR_small.dcm as a demo study whose Study, Series and SOP Instance UIDs have leading zeros."""
    source = pydicom.data.get_testdata_file(LEADING_ZERO_SOURCE, download=False)
    if not isinstance(source, str):
        raise FileNotFoundError(f"pydicom test file {LEADING_ZERO_SOURCE!r} is not bundled with this pydicom")
    with warnings.catch_warnings():  # pydicom warns on every copy of such a UID; they are the point here
        warnings.filterwarnings("ignore", "Invalid value for VR UI", UserWarning)
        ds = pydicom.dcmread(source)
        ds.StudyInstanceUID = leading_zero_uid(LEADING_ZERO.key, "study")
        ds.SeriesInstanceUID = leading_zero_uid(LEADING_ZERO.key, "series")
        ds.SOPInstanceUID = instance = UID(leading_zero_uid(LEADING_ZERO.key, "instance"))
        ds.file_meta.MediaStorageSOPInstanceUID = instance
        ds.SpecificCharacterSet = "ISO_IR 192"  # as every demo study (MR_small.dcm is ASCII)
        for keyword, value in PATIENT:
            setattr(ds, keyword, value)
        ds.StudyDescription = LEADING_ZERO.description
        ds.AccessionNumber = LEADING_ZERO.accession
        ds.StudyID = LEADING_ZERO.study_id
        ds.StudyDate, ds.StudyTime = STUDY_DATE, LEADING_ZERO.study_time
        ds.SeriesDescription = f"{LEADING_ZERO_SOURCE}, leading-zero UIDs"
        return _write(ds, out_dir / LEADING_ZERO.folder / "0001.dcm")


# The report both documents carry: (heading, text) in reading order.
REPORT: Final = (
    ("Clinical information", "Synthetic chest and abdomen phantom (dicomweb-origin demo data; no patient)."),
    ("Technique", "CT, 120 kVp, 200 mA, 0.5 s; 1.25 mm axial slices, soft tissue kernel."),
    ("Findings", "Round nodule of 36 mm in the right upper lobe; a second nodule of 20 mm in the left lung. "
                 "Lesion of 40 mm in the liver, denser than the parenchyma. Contrast in the aorta and the heart."),
    ("Impression", "Three spherical lesions, as built into the phantom. No other findings."),
)


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _content(relationship: str, value_type: str, name: Dataset, **values: object) -> Dataset:
    item = Dataset()
    item.RelationshipType, item.ValueType, item.ConceptNameCodeSequence = relationship, value_type, [name]
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def _document_dataset(sop_class: UID, series: str, modality: str, series_number: int) -> Dataset:
    """Patient, study and series attributes of the documents study (one instance per series)."""
    study = DOCUMENTS
    ds = Dataset()
    instance = demo_uid(study.key, series, "instance")
    ds.file_meta = _file_meta(sop_class, instance, ExplicitVRLittleEndian)
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, instance
    ds.InstanceCreationDate, ds.InstanceCreationTime = STUDY_DATE, study.study_time
    for keyword, value in PATIENT:
        setattr(ds, keyword, value)
    ds.StudyInstanceUID = demo_uid(study.key, "study")
    ds.StudyDate, ds.StudyTime = STUDY_DATE, study.study_time
    ds.StudyDescription, ds.AccessionNumber, ds.StudyID = study.description, study.accession, study.study_id
    ds.ReferringPhysicianName = "Röntgen^Wilhelm"
    ds.Modality = modality
    ds.SeriesInstanceUID = demo_uid(study.key, series, "series")
    ds.SeriesNumber = series_number
    ds.SeriesDate, ds.SeriesTime = STUDY_DATE, study.study_time
    ds.Manufacturer = "dicomweb-origin"
    ds.InstanceNumber = 1
    ds.ContentDate, ds.ContentTime = STUDY_DATE, study.study_time
    return ds


def _report_sr() -> Dataset:
    """The report as a Comprehensive SR (PS3.3 A.35.3): title, observer, sections of text, one measurement."""
    ds = _document_dataset(ComprehensiveSRStorage, "sr", "SR", 1)
    ds.SeriesDescription = "Report (Structured Report)"
    ds.ValueType, ds.ContinuityOfContent = "CONTAINER", "SEPARATE"
    ds.ConceptNameCodeSequence = [_code("18748-4", "LN", "Diagnostic Imaging Report")]
    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "UNVERIFIED"
    ds.ReferencedPerformedProcedureStepSequence = Sequence()
    ds.PerformedProcedureCodeSequence = Sequence()
    diameter = Dataset()
    diameter.NumericValue = "36"
    diameter.MeasurementUnitsCodeSequence = [_code("mm", "UCUM", "millimeter")]
    sections = []
    for heading, text in REPORT:
        children = [_content("CONTAINS", "TEXT", _code("121071", "DCM", "Finding"), TextValue=text)]
        if heading == "Findings":
            children.append(_content("CONTAINS", "NUM", _code("G-D7FE", "SRT", "Diameter"),
                                     MeasuredValueSequence=[diameter]))
        sections.append(_content("CONTAINS", "CONTAINER", _code("121070", "DCM", heading),
                                 ContinuityOfContent="SEPARATE", ContentSequence=children))
    ds.ContentSequence = [
        _content("HAS OBS CONTEXT", "PNAME", _code("121008", "DCM", "Person Observer Name"),
                 PersonName="Curie^Marie"),
        *sections,
    ]
    return ds


def _pdf_text(value: str) -> str:
    return "(" + value.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def _lines(text: str, width: int = 90) -> list[str]:
    """``text`` broken into lines of at most ``width`` characters, at spaces."""
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line] if line else lines


def report_pdf() -> bytes:
    """The report as a one-page A4 PDF (ISO 32000-1): Helvetica text, no dates, so the same bytes every time."""
    text = ["BT /F1 18 Tf 72 770 Td (Demo report: CT phantom) Tj ET", "BT /F1 11 Tf 14 TL 72 740 Td"]
    for heading, body in REPORT:
        text.append(f"/F2 11 Tf {_pdf_text(heading)} Tj T* /F1 11 Tf")
        text += [f"{_pdf_text(line)} Tj T*" for line in _lines(body)]
        text.append("T*")
    text.append("ET")
    content = "\n".join(text).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R /F2 6 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
        b"<< /Title (Demo report: CT phantom) /Producer (dicomweb-origin demo) >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, obj in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, len(objects), xref)
    return bytes(out)


def _report_pdf_instance() -> Dataset:
    """The report as an Encapsulated PDF instance (PS3.3 A.45.1)."""
    ds = _document_dataset(EncapsulatedPDFStorage, "pdf", "DOC", 2)
    ds.SeriesDescription = "Report (PDF)"
    ds.ConversionType = "WSD"
    ds.BurnedInAnnotation = "YES"  # a report names the patient
    ds.DocumentTitle = "Demo report: CT phantom"
    ds.ConceptNameCodeSequence = [_code("18748-4", "LN", "Diagnostic Imaging Report")]
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = report_pdf()
    return ds


def _write_documents(out_dir: Path) -> list[Path]:
    folder = out_dir / DOCUMENTS.folder
    return [_write(_report_sr(), folder / "sr.dcm"), _write(_report_pdf_instance(), folder / "pdf.dcm")]


def _copy_pydicom_files(out_dir: Path) -> list[Path]:
    """Copy pydicom's bundled files byte for byte; never download (download=False)."""
    paths: list[Path] = []
    for name in PYDICOM_FILES:
        source = pydicom.data.get_testdata_file(name, download=False)
        if not isinstance(source, str):
            raise FileNotFoundError(f"pydicom test file {name!r} is not bundled with this pydicom")
        target = out_dir / "pydicom" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        paths.append(target)
    return paths


def generate_demo(out_dir: Path, *, slices: int = 128, size: int = 512) -> list[Path]:
    """Write the demo studies as DICOM Part 10 files under out_dir; return the paths written.

    `slices` and `size` set the main CT series; the JPEG 2000 and enhanced copies use at most
    32 x 256 x 256 and 40 x 256 x 256, shrinking with the arguments so small runs stay small.
    """
    if slices < 1 or size < 16:
        raise ValueError("need slices >= 1 and size >= 16")
    out_dir = Path(out_dir)
    paths = _write_ct_series(out_dir, CT, _Geometry(slices, size), j2k=False)
    j2k = _Geometry(min(slices, J2K_SLICES), min(size, J2K_SIZE))
    paths += _write_ct_series(out_dir, CT_J2K, j2k, j2k=True)
    enhanced = _Geometry(min(slices, ENHANCED_FRAMES), min(size, ENHANCED_SIZE))
    paths.append(_write(_enhanced_ct(enhanced), out_dir / ENHANCED.folder / "0001.dcm"))
    paths.append(_write_leading_zero_study(out_dir))
    paths += _write_documents(out_dir)
    paths += _copy_pydicom_files(out_dir)
    return paths
