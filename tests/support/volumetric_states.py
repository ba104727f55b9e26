"""Volumetric Presentation State instances built from the modules of PS3.3 A.80 (Planar MPR VPS, Volume Rendering VPS).

``make_planar_mpr(images, ...)`` and ``make_volume_rendering(images, ...)`` reference the slices of
a volume (pydicom data sets, as stored) through the Presentation State Relationship and the
Volumetric Presentation State Input modules, and hold the geometry the options give.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

GRAYSCALE_PLANAR_MPR_VPS = "1.2.840.10008.5.1.4.1.1.11.6"
VOLUME_RENDERING_VPS = "1.2.840.10008.5.1.4.1.1.11.9"

Vector = tuple[float, float, float]


def _common(images: Sequence[Dataset], sop_class: str, label: str) -> Dataset:
    first = images[0]
    ds = Dataset()
    # Patient, General Study (the images' own)
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
                    "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber"):
        if keyword in first:
            setattr(ds, keyword, first.data_element(keyword).value)  # type: ignore[union-attr]
    # General Series / Presentation Series (C.11.9): modality PR, a series of its own
    ds.Modality = "PR"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 90
    # General Equipment, Frame of Reference (the volume's)
    ds.Manufacturer = "dicomweb-origin tests"
    ds.FrameOfReferenceUID = first.FrameOfReferenceUID
    # Volumetric Presentation State Identification (C.11.21)
    ds.InstanceNumber = 1
    ds.ContentLabel = label
    ds.ContentDescription = f"{label} of the test volume"
    ds.PresentationCreationDate, ds.PresentationCreationTime = "20261202", "120000"
    ds.ContentCreatorName = "Tester"
    # Presentation State Relationship (C.11.11)
    series = Dataset()
    series.SeriesInstanceUID = first.SeriesInstanceUID
    series.ReferencedImageSequence = [_reference(image) for image in images]
    ds.ReferencedSeriesSequence = [series]
    # SOP Common
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(sop_class)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def _reference(image: Dataset, frames: Sequence[int] = ()) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = image.SOPClassUID
    item.ReferencedSOPInstanceUID = image.SOPInstanceUID
    if frames:
        item.ReferencedFrameNumber = list(frames)
    return item


def _input(images: Sequence[Dataset], window: tuple[float, float] | None, frames: Sequence[int] = ()) -> Dataset:
    """One Volumetric Presentation State Input Sequence item (C.11.23): a VOLUME input and its VOI."""
    item = Dataset()
    item.VolumetricPresentationInputNumber = 1
    item.PresentationInputType = "VOLUME"
    item.InputSequencePositionIndex = 1
    item.Crop = "NO"
    item.ReferencedImageSequence = [_reference(image, frames) for image in images]
    if window is not None:
        voi = Dataset()
        voi.WindowCenter, voi.WindowWidth = window
        voi.VOILUTFunction = "LINEAR"
        item.SoftcopyVOILUTSequence = [voi]
    return item


def make_planar_mpr(images: Sequence[Dataset], *, corner: Vector, width_direction: Vector, height_direction: Vector,
                    width: float, height: float, slab: float | None = None,
                    window: tuple[float, float] | None = None, frames: Sequence[int] = ()) -> Dataset:
    """A Grayscale Planar MPR VPS (A.80.1): Multi-Planar Reconstruction Geometry Module (C.11.26) as given."""
    ds = _common(images, GRAYSCALE_PLANAR_MPR_VPS, "MPR")
    ds.VolumetricPresentationStateInputSequence = [_input(images, window, frames)]
    ds.MultiPlanarReconstructionStyle = "PLANAR"
    ds.MPRThicknessType = "SLAB" if slab else "THIN"
    if slab:
        ds.MPRSlabThickness = slab
    ds.MPRTopLeftHandCorner = list(corner)
    ds.MPRViewWidthDirection = list(width_direction)
    ds.MPRViewWidth = width
    ds.MPRViewHeightDirection = list(height_direction)
    ds.MPRViewHeight = height
    ds.RenderingMethod = "AVERAGE_IP" if slab else "VOLUME_RENDERED"
    return ds


def make_volume_rendering(images: Sequence[Dataset], *, position: Vector, lookat: Vector, up: Vector,
                          field_of_view: float = 400.0) -> Dataset:
    """A Volume Rendering VPS (A.80.3): Volume Render Geometry Module (C.11.30) with the camera given."""
    ds = _common(images, VOLUME_RENDERING_VPS, "VR")
    ds.VolumetricPresentationStateInputSequence = [_input(images, None)]
    ds.RenderProjection = "ORTHOGRAPHIC"
    ds.ViewpointPosition = list(position)
    ds.ViewpointLookAtPoint = list(lookat)
    ds.ViewpointUpDirection = list(up)
    ds.RenderFieldOfView = [field_of_view] * 6
    ds.RenderingMethod = "VOLUME_RENDERED"
    return ds


def to_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
