"""Grayscale Softcopy Presentation State instances built from the modules of PS3.3 A.33.1, for tests.

``make_gsps(image, ...)`` references ``image`` (and ``others``) and holds the modules the options
ask for; ``ds.to_json_dict()`` of the result is what the server stores as its metadata.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

GSPS = "1.2.840.10008.5.1.4.1.1.11.1"
CSPS = "1.2.840.10008.5.1.4.1.1.11.2"

Point = tuple[float, float]


def image_reference(image: Dataset, frames: Sequence[int] = ()) -> Dataset:
    """An Image SOP Instance Reference item (PS3.3 10.3) naming ``image`` and optionally frames."""
    item = Dataset()
    item.ReferencedSOPClassUID = image.SOPClassUID
    item.ReferencedSOPInstanceUID = image.SOPInstanceUID
    if frames:
        item.ReferencedFrameNumber = list(frames)
    return item


def graphic(kind: str, points: Sequence[Point], *, units: str = "PIXEL", filled: bool = False,
            lab: Sequence[int] | None = None, thickness: float | None = None) -> Dataset:
    """A Graphic Object Sequence item (PS3.3 C.10.5): points are (column, row)."""
    item = Dataset()
    item.GraphicAnnotationUnits = units
    item.GraphicDimensions = 2
    item.NumberOfGraphicPoints = len(points)
    item.GraphicData = [float(v) for point in points for v in point]
    item.GraphicType = kind
    item.GraphicFilled = "Y" if filled else "N"
    if lab is not None or thickness is not None:
        style = Dataset()
        if lab is not None:
            style.PatternOnColorCIELabValue = list(lab)
        if thickness is not None:
            style.LineThickness = thickness
        item.LineStyleSequence = [style]
    return item


def text(value: str, *, box: tuple[Point, Point] | None = None, anchor: Point | None = None,
         units: str = "PIXEL", justification: str = "LEFT", anchor_visible: bool = False) -> Dataset:
    """A Text Object Sequence item (PS3.3 C.10.5): a bounding box and/or an anchor point."""
    item = Dataset()
    item.UnformattedTextValue = value
    if box is not None:
        item.BoundingBoxAnnotationUnits = units
        item.BoundingBoxTopLeftHandCorner = list(box[0])
        item.BoundingBoxBottomRightHandCorner = list(box[1])
        item.BoundingBoxTextHorizontalJustification = justification
    if anchor is not None:
        item.AnchorPointAnnotationUnits = units
        item.AnchorPoint = list(anchor)
        item.AnchorPointVisibility = "Y" if anchor_visible else "N"
    return item


def make_gsps(image: Dataset, *, others: Sequence[Dataset] = (), frames: Sequence[int] = (),
              sop_class: str = GSPS,
              rescale: tuple[float, float] | None = None,
              window: tuple[float, float] | tuple[float, float, str] | None = None,
              window_images: Sequence[Dataset] | None = None,
              shape: str | None = "IDENTITY",
              rotation: int = 0, flip: bool = False,
              area: tuple[tuple[int, int], tuple[int, int]] | None = None,
              size_mode: str = "SCALE TO FIT", magnification: float | None = None,
              aspect: tuple[int, int] = (1, 1),
              rectangle: tuple[int, int, int, int] | None = None,
              circle: tuple[tuple[int, int], int] | None = None,
              polygon: Sequence[tuple[int, int]] | None = None,
              shutter_value: int = 0,
              shutter_lab: Sequence[int] | None = None,
              layer: str = "LAYER1", layer_grey: int | None = 0xFFFF, layer_lab: Sequence[int] | None = None,
              graphics: Sequence[Dataset] = (), texts: Sequence[Dataset] = (),
              annotation_images: Sequence[Dataset] | None = None) -> Dataset:
    """A GSPS referencing ``image`` (and ``others``), with the modules its options ask for.

    ``area`` is ((column, row) top left, (column, row) bottom right), 1-based, default the whole
    image; ``rectangle`` is (left, right, upper, lower); ``circle`` ((row, column), radius);
    ``polygon`` (row, column) vertices. Rescale defaults to the image's own.
    """
    ds = Dataset()
    # Patient, General Study (copied from the image: the state belongs to its study)
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
                    "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber"):
        setattr(ds, keyword, image.get(keyword, ""))
    # Presentation Series (C.11.9), General Equipment
    ds.Modality = "PR"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 99
    ds.Manufacturer = "dicomweb-origin tests"
    # Presentation State Identification (C.11.10)
    ds.InstanceNumber = 1
    ds.ContentLabel = "TEST"
    ds.ContentDescription = "built from the modules of PS3.3 A.33.1"
    ds.PresentationCreationDate = "20240101"
    ds.PresentationCreationTime = "120000"
    ds.ContentCreatorName = "Tester^Test"
    # Presentation State Relationship (C.11.11): one item per referenced series
    series: dict[str, list[Dataset]] = {}
    for referenced in (image, *others):
        series.setdefault(referenced.SeriesInstanceUID, []).append(
            image_reference(referenced, frames if referenced is image else ()))
    items = []
    for series_uid, references in series.items():
        item = Dataset()
        item.SeriesInstanceUID = series_uid
        item.ReferencedImageSequence = references
        items.append(item)
    ds.ReferencedSeriesSequence = items
    # Displayed Area (C.10.4)
    selection = Dataset()
    top_left, bottom_right = area or ((1, 1), (int(image.Columns), int(image.Rows)))
    selection.DisplayedAreaTopLeftHandCorner = list(top_left)
    selection.DisplayedAreaBottomRightHandCorner = list(bottom_right)
    selection.PresentationSizeMode = size_mode
    selection.PresentationPixelAspectRatio = list(aspect)
    if magnification is not None:
        selection.PresentationPixelMagnificationRatio = magnification
    ds.DisplayedAreaSelectionSequence = [selection]
    # Spatial Transformation (C.10.6)
    ds.ImageRotation = rotation
    ds.ImageHorizontalFlip = "Y" if flip else "N"
    # Modality LUT (C.11.1)
    slope, intercept = rescale if rescale is not None else (image.get("RescaleSlope"), image.get("RescaleIntercept"))
    if slope is not None and intercept is not None:
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = slope, intercept, "US"
    # Softcopy VOI LUT (C.11.8)
    if window is not None:
        voi = Dataset()
        if window_images is not None:
            voi.ReferencedImageSequence = [image_reference(i) for i in window_images]
        voi.WindowCenter, voi.WindowWidth = window[0], window[1]
        if len(window) == 3:
            voi.VOILUTFunction = window[2]
        ds.SoftcopyVOILUTSequence = [voi]
    # Softcopy Presentation LUT (C.11.6)
    if shape is not None:
        ds.PresentationLUTShape = shape
    # Display Shutter (C.7.6.11)
    shapes = []
    if rectangle is not None:
        shapes.append("RECTANGULAR")
        (ds.ShutterLeftVerticalEdge, ds.ShutterRightVerticalEdge,
         ds.ShutterUpperHorizontalEdge, ds.ShutterLowerHorizontalEdge) = rectangle
    if circle is not None:
        shapes.append("CIRCULAR")
        ds.CenterOfCircularShutter = list(circle[0])
        ds.RadiusOfCircularShutter = circle[1]
    if polygon is not None:
        shapes.append("POLYGONAL")
        ds.VerticesOfThePolygonalShutter = [int(v) for vertex in polygon for v in vertex]
    if shapes:
        ds.ShutterShape = shapes
        ds.ShutterPresentationValue = shutter_value
        if shutter_lab is not None:
            ds.ShutterPresentationColorCIELabValue = list(shutter_lab)
    # Graphic Annotation (C.10.5) and Graphic Layer (C.10.7)
    if graphics or texts:
        annotation = Dataset()
        if annotation_images is not None:
            annotation.ReferencedImageSequence = [image_reference(i) for i in annotation_images]
        annotation.GraphicLayer = layer
        if graphics:
            annotation.GraphicObjectSequence = list(graphics)
        if texts:
            annotation.TextObjectSequence = list(texts)
        ds.GraphicAnnotationSequence = [annotation]
        layer_item = Dataset()
        layer_item.GraphicLayer = layer
        layer_item.GraphicLayerOrder = 1
        if layer_grey is not None:
            layer_item.GraphicLayerRecommendedDisplayGrayscaleValue = layer_grey
        if layer_lab is not None:
            layer_item.GraphicLayerRecommendedDisplayCIELabValue = list(layer_lab)
        ds.GraphicLayerSequence = [layer_item]
    # SOP Common
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(sop_class)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def metadata(ds: Dataset) -> dict[str, Any]:
    """What the server stores for an instance: its DICOM JSON (PS3.18 Annex F)."""
    return ds.to_json_dict()
