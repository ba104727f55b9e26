"""Grayscale Softcopy Presentation States applied to the images they reference (PS3.3 A.33.1, PS3.4 N.2).

Each state is built with pydicom from the PS3.3 modules (tests/support/presentation_states.py), stored as
the server stores it (``to_json_dict``), parsed, and applied. Expected pixels come from the rules
of the standard written out here, never from the code under test.
"""

from __future__ import annotations

import base64

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from dicomweb_origin import render
from dicomweb_origin.dicom.display import extract_display
from dicomweb_origin.dicom.softcopy import parse_presentation
from dicomweb_origin.model.appearance import Window
from dicomweb_origin.model.stored import PixelDescription
from dicomweb_origin.render.graphics import lab_to_rgb
from dicomweb_origin.render.presentation import PresentationState, ReferencedImage, apply_presentation
from tests.support.presentation_states import graphic, make_gsps, metadata, text
from tests.support.reference import source_path

ROWS, COLUMNS = 48, 80  # a non-square source frame, so that rotation shows in the shape


@pytest.fixture(scope="module")
def ct() -> Dataset:
    return pydicom.dcmread(source_path("CT_small.dcm"))


@pytest.fixture(scope="module")
def mr() -> Dataset:
    return pydicom.dcmread(source_path("MR_small.dcm"))


def _frame(rows: int = ROWS, columns: int = COLUMNS, value: int = 100) -> Dataset:
    """A stand-in referenced image of the given size (only its identity and size are referenced)."""
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.Rows, ds.Columns = rows, columns
    return ds


def _state(image: Dataset, **options: object) -> PresentationState:
    return parse_presentation(metadata(make_gsps(image, **options)))  # type: ignore[arg-type]


def _grey(value: int = 100) -> np.ndarray:
    return np.full((ROWS, COLUMNS), value, np.uint8)


def _centres() -> tuple[np.ndarray, np.ndarray]:
    """1-based row and column of every pixel: shutters are given in these (PS3.3 C.7.6.11.1)."""
    rows, columns = np.mgrid[1:ROWS + 1, 1:COLUMNS + 1]
    return rows, columns


# -- Presentation State Relationship (C.11.11) ----------------------------------------------------


def test_the_referenced_series_sequence_names_the_images_and_frames_it_applies_to(ct: Dataset, mr: Dataset) -> None:
    ps = _state(ct, others=[mr], frames=[2, 3])
    assert ps.images == (ReferencedImage(ct.SeriesInstanceUID, ct.SOPInstanceUID, (2, 3)),
                         ReferencedImage(mr.SeriesInstanceUID, mr.SOPInstanceUID, ()))
    assert ps.applies_to(ct.SeriesInstanceUID, ct.SOPInstanceUID, 2)
    assert not ps.applies_to(ct.SeriesInstanceUID, ct.SOPInstanceUID, 1)  # frames listed: only those
    assert ps.applies_to(mr.SeriesInstanceUID, mr.SOPInstanceUID, 7)  # no Referenced Frame Number: every frame
    assert not ps.applies_to(ct.SeriesInstanceUID, mr.SOPInstanceUID, 1)  # wrong series
    assert not ps.applies_to(ct.SeriesInstanceUID, generate_uid(), 1)
    assert ps.label == "TEST"


# -- Display Shutter (C.7.6.11) ------------------------------------------------------------------


def test_a_rectangular_shutter_keeps_columns_left_to_right_and_rows_upper_to_lower_inclusive() -> None:
    ps = _state(_frame(), rectangle=(10, 40, 5, 30), shutter_value=0)
    out = apply_presentation(_grey(), ps, "x", 1)
    r, c = _centres()
    visible = (c >= 10) & (c <= 40) & (r >= 5) & (r <= 30)
    assert np.array_equal(out == 100, visible)
    assert np.all(out[~visible] == 0)


def test_a_circular_shutter_keeps_pixels_within_its_radius_in_its_presentation_value() -> None:
    ps = _state(_frame(), circle=((24, 50), 15), shutter_value=0xC000)
    out = apply_presentation(_grey(), ps, "x", 1)
    r, c = _centres()
    visible = (r - 24) ** 2 + (c - 50) ** 2 <= 15 ** 2  # centre given as row\column
    assert np.array_equal(out == 100, visible)
    assert np.all(out[~visible] == round(0xC000 * 255 / 0xFFFF))  # a 16-bit P-Value as 8 bits


def test_a_polygonal_shutter_keeps_the_inside_of_its_row_column_vertices() -> None:
    ps = _state(_frame(), polygon=[(5, 5), (5, 75), (45, 5)])  # (row, column) vertices
    out = apply_presentation(_grey(), ps, "x", 1)
    r, c = _centres()
    # the triangle as three half-planes: row >= 5, column >= 5, and below the edge (5,75)-(45,5)
    visible = (r >= 5) & (c >= 5) & ((r - 5) * 70 + (c - 75) * 40 <= 0)
    assert np.array_equal(out == 100, visible)


def test_several_shutter_shapes_shut_the_union_of_what_each_excludes() -> None:
    ps = _state(_frame(), rectangle=(10, 70, 1, 48), circle=((24, 40), 20))
    out = apply_presentation(_grey(), ps, "x", 1)
    r, c = _centres()
    visible = (c >= 10) & (c <= 70) & ((r - 24) ** 2 + (c - 40) ** 2 <= 400)
    assert np.array_equal(out == 100, visible)


def test_a_shutter_colour_makes_the_output_rgb() -> None:
    ps = _state(_frame(), rectangle=(10, 40, 5, 30), shutter_lab=(65535, 32896, 32896))  # L*=100: white
    out = apply_presentation(_grey(), ps, "x", 1)
    assert out.shape == (ROWS, COLUMNS, 3)
    assert tuple(out[0, 0]) == (255, 255, 255) and tuple(out[10, 20]) == (100, 100, 100)


def test_a_bitmap_shutter_from_an_overlay_given_as_bulk_data() -> None:
    """PS3.3 C.7.6.15: Shutter Overlay Group names an overlay of the state; its 1 bits are shuttered."""
    ds = make_gsps(_frame())
    ds.ShutterShape = "BITMAP"
    ds.ShutterPresentationValue = 0
    ds.ShutterOverlayGroup = 0x6000
    bits = np.zeros((ROWS, COLUMNS), np.uint8)
    bits[:, :3] = 1  # the three leftmost columns: bits 0-2 of each row's first byte (PS3.5 8.1.2)
    ds.add_new(0x60000010, "US", ROWS)
    ds.add_new(0x60000011, "US", COLUMNS)
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    packed = np.packbits(bits.ravel(), bitorder="little").tobytes()
    ds.add_new(0x60003000, "OW", packed)
    stored = metadata(ds)
    stored["60003000"] = {"vr": "OW", "BulkDataURI": "http://origin/bulk/60003000"}  # as over the threshold
    ps = parse_presentation(stored, {"60003000": packed})
    out = apply_presentation(_grey(), ps, "x", 1)
    assert np.all(out[:, :3] == 0) and np.all(out[:, 3:] == 100)
    assert np.array_equal(base64.b64decode(metadata(ds)["60003000"]["InlineBinary"]), packed)


# -- Graphic Annotation (C.10.5) -------------------------------------------------------------------


def test_a_polyline_colours_the_pixels_along_it() -> None:
    """PIXEL units: 0.5\\0.5 is the centre of the top left pixel (C.10.5.1.2), so (c+0.5, r+0.5) is pixel (r, c)."""
    line = graphic("POLYLINE", [(10.5, 20.5), (40.5, 20.5), (40.5, 35.5)])
    ps = _state(_frame(), graphics=[line], layer_grey=0xFFFF)
    out = apply_presentation(_grey(0), ps, "x", 1)
    expected = np.zeros((ROWS, COLUMNS), bool)
    expected[20, 10:41] = True  # the horizontal segment
    expected[20:36, 40] = True  # the vertical one
    assert np.array_equal(out == 255, expected)


def test_a_polyline_point_belongs_to_the_pixel_it_falls_in() -> None:
    """Pixel (r, c) spans c..c+1 and r..r+1 in image relative coordinates, whatever the fraction."""
    line = graphic("POLYLINE", [(10.1, 20.9), (40.9, 20.1)])
    out = apply_presentation(_grey(0), _state(_frame(), graphics=[line]), "x", 1)
    expected = np.zeros((ROWS, COLUMNS), bool)
    expected[20, 10:41] = True
    assert np.array_equal(out == 255, expected)


def test_a_diagonal_polyline_in_a_layer_colour_gives_rgb() -> None:
    red_d50 = (round(54.29 * 65535 / 100), round((80.81 + 128) * 65535 / 255), round((69.89 + 128) * 65535 / 255))
    ps = _state(_frame(), graphics=[graphic("POLYLINE", [(5.5, 5.5), (30.5, 30.5)])], layer_lab=red_d50)
    out = apply_presentation(_grey(0), ps, "x", 1)
    assert out.shape == (ROWS, COLUMNS, 3)
    for i in range(5, 31):
        assert np.abs(out[i, i].astype(int) - (255, 0, 0)).max() <= 3  # sRGB red is L*a*b* 54.29, 80.81, 69.89 (D50)
    assert tuple(out[5, 30]) == (0, 0, 0)


def test_cielab_white_black_and_grey_convert_to_srgb() -> None:
    assert lab_to_rgb((65535, 32896, 32896)) == (255, 255, 255)
    assert lab_to_rgb((0, 32896, 32896)) == (0, 0, 0)
    mid = lab_to_rgb((round(53.39 * 65535 / 100), 32896, 32896))  # L* 53.39 is sRGB 128 grey
    assert all(abs(v - 128) <= 1 for v in mid)


@pytest.mark.parametrize("filled", [False, True])
def test_a_circle_given_by_its_centre_and_a_point_on_it(filled: bool) -> None:
    circle = graphic("CIRCLE", [(40.5, 24.5), (55.5, 24.5)], filled=filled)  # radius 15 pixels
    out = apply_presentation(_grey(0), _state(_frame(), graphics=[circle]), "x", 1)
    for row, column in ((24, 55), (24, 25), (9, 40), (39, 40)):  # the four points at the radius
        assert out[row, column] == 255
    assert bool(out[24, 40] == 255) is filled  # its centre is painted only when filled
    r, c = np.mgrid[0:ROWS, 0:COLUMNS]
    distance = np.hypot(c + 0.5 - 40.5, r + 0.5 - 24.5)
    assert not np.any(out[distance > 16.5])  # nothing beyond the circle's width
    if not filled:
        assert not np.any(out[distance < 13.5])


def test_an_ellipse_by_its_major_and_minor_axis_end_points() -> None:
    ellipse = graphic("ELLIPSE", [(20.5, 24.5), (60.5, 24.5), (40.5, 14.5), (40.5, 34.5)])
    out = apply_presentation(_grey(0), _state(_frame(), graphics=[ellipse]), "x", 1)
    for row, column in ((24, 20), (24, 60), (14, 40), (34, 40)):
        assert out[row, column] == 255
    assert out[24, 40] == 0


def test_a_text_object_is_drawn_inside_its_bounding_box() -> None:
    label = text("LEFT", box=((10.0, 8.0), (70.0, 28.0)))
    out = apply_presentation(_grey(0), _state(_frame(), texts=[label]), "x", 1)
    inside = np.zeros((ROWS, COLUMNS), bool)
    inside[8:28, 10:70] = True
    assert np.count_nonzero(out[inside]) > 30  # glyphs were drawn
    assert not np.any(out[~inside])  # and nothing outside the box


def test_an_annotation_applies_only_to_the_images_it_references(ct: Dataset, mr: Dataset) -> None:
    ps = _state(ct, others=[mr], graphics=[graphic("POLYLINE", [(0.5, 0.5), (20.5, 0.5)])], annotation_images=[mr])
    assert not np.any(apply_presentation(_grey(0), ps, ct.SOPInstanceUID, 1))
    assert np.any(apply_presentation(_grey(0), ps, mr.SOPInstanceUID, 1))


def test_display_units_are_fractions_of_the_displayed_area() -> None:
    line = graphic("POLYLINE", [(0.0, 0.5), (1.0, 0.5)], units="DISPLAY")
    ps = _state(_frame(), graphics=[line], area=((11, 11), (50, 30)))  # 40 x 20 pixels
    out = apply_presentation(_grey(0), ps, "x", 1)
    assert out.shape == (20, 40)
    lit = np.nonzero(out.any(axis=1))[0]
    assert set(lit) <= {9, 10} and np.all(out[lit[0]] == 255)  # the middle row, from edge to edge


# -- Spatial Transformation (C.10.6) and Displayed Area (C.10.4) --------------------------------


def _marked(row: int = 10, column: int = 30) -> np.ndarray:
    image = _grey(0)
    image[row, column] = 255
    return image


def test_rotation_by_90_turns_the_image_clockwise() -> None:
    out = apply_presentation(_marked(), _state(_frame(), rotation=90), "x", 1)
    assert out.shape == (COLUMNS, ROWS)
    # clockwise: the left column becomes the top row; pixel (r, c) goes to (c, rows - 1 - r)
    assert list(zip(*np.nonzero(out), strict=True)) == [(30, ROWS - 1 - 10)]


def test_a_horizontal_flip_mirrors_left_and_right() -> None:
    out = apply_presentation(_marked(), _state(_frame(), flip=True), "x", 1)
    assert list(zip(*np.nonzero(out), strict=True)) == [(10, COLUMNS - 1 - 30)]


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_comes_before_the_flip_and_annotations_follow_the_image(rotation: int) -> None:
    """Image Rotation is applied before any Image Horizontal Flip (C.10.6); PIXEL graphics move with pixels."""
    point = graphic("POLYLINE", [(30.5, 10.5), (31.5, 10.5)])  # covers pixel (10, 30) and (10, 31)
    ps = _state(_frame(), rotation=rotation, flip=True, graphics=[point])
    out = apply_presentation(_marked(), ps, "x", 1)
    expected = np.rot90(_marked(), k=-rotation // 90)[:, ::-1]  # numpy: k < 0 turns clockwise
    assert out.shape == expected.shape
    assert out[np.nonzero(expected)] == 255
    drawn = np.rot90(np.pad(np.ones((1, 2), np.uint8), ((10, ROWS - 11), (30, COLUMNS - 32))), k=-rotation // 90)
    assert np.array_equal(out > 0, drawn[:, ::-1] > 0)


def test_the_displayed_area_crops_to_its_1_based_inclusive_corners() -> None:
    image = np.arange(ROWS * COLUMNS, dtype=np.uint32).reshape(ROWS, COLUMNS) % 251
    image = image.astype(np.uint8)
    ps = _state(_frame(), area=((11, 21), (50, 40)))  # (column, row) corners
    out = apply_presentation(image, ps, "x", 1)
    assert np.array_equal(out, image[20:40, 10:50])


def test_a_displayed_area_beyond_the_image_is_padded_black() -> None:
    ps = _state(_frame(), area=((-9, 1), (COLUMNS, ROWS)))
    out = apply_presentation(_grey(), ps, "x", 1)
    assert out.shape == (ROWS, COLUMNS + 10)
    assert np.all(out[:, :10] == 0) and np.all(out[:, 10:] == 100)


def test_magnify_scales_the_displayed_area_by_its_ratio() -> None:
    ps = _state(_frame(), area=((1, 1), (20, 10)), size_mode="MAGNIFY", magnification=2.0)
    out = apply_presentation(_grey(), ps, "x", 1)
    assert out.shape == (20, 40)


def test_a_pixel_aspect_ratio_stretches_the_taller_side() -> None:
    ps = _state(_frame(), aspect=(2, 1))  # pixels twice as tall as wide
    assert apply_presentation(_grey(), ps, "x", 1).shape == (2 * ROWS, COLUMNS)


# -- the greyscale pipeline with the state's LUTs (C.11.1, C.11.8, C.11.6) -----------------------


def _linear(x: np.ndarray, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 LINEAR, onto 0..255."""
    y = ((x - (center - 0.5)) / (width - 1) + 0.5) * 255
    return np.clip(np.where(x <= center - 0.5 - (width - 1) / 2, 0, np.where(
        x > center - 0.5 + (width - 1) / 2, 255, y)), 0, 255)


def _described(ds: Dataset) -> PixelDescription:
    return PixelDescription(ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored,
                            ds.PixelRepresentation, ds.PhotometricInterpretation)


def test_display_for_substitutes_the_state_window_for_the_image_it_references(ct: Dataset, mr: Dataset) -> None:
    ps = _state(ct, others=[mr], window=(40, 400), window_images=[ct])
    ct_display, mr_display = extract_display(ct), extract_display(mr)
    assert ct_display is not None and mr_display is not None and mr_display.frame(0).windows
    shown = ps.display_for(ct.SOPInstanceUID, 1, ct_display)
    assert shown.frame(0).windows == (Window(40.0, 400.0, "LINEAR"),)
    assert shown.presentation_lut_shape == "IDENTITY"
    other = ps.display_for(mr.SOPInstanceUID, 1, mr_display)
    assert other.frame(0).windows == ()  # the MR's own window (600) is not used under a state
    # the basic pipeline then renders the CT exactly as the state says
    image = render.display_image(ct.pixel_array, _described(ct), shown, 0)
    hu = ct.pixel_array.astype(np.float64) * float(ct.RescaleSlope) + float(ct.RescaleIntercept)
    assert np.abs(image.astype(int) - np.rint(_linear(hu, 40, 400))).max() <= 1


def test_without_a_voi_for_the_image_the_voi_stage_is_the_identity(mr: Dataset) -> None:
    ps = _state(mr)
    display = extract_display(mr)
    assert display is not None
    shown = ps.display_for(mr.SOPInstanceUID, 1, display, stored_range=(-32768, 32767))
    (window,) = shown.frame(0).windows
    assert (window.center - window.width / 2, window.center + window.width / 2) == (-32768, 32767)


def test_the_state_modality_lut_and_presentation_lut_shape_replace_the_image_ones(ct: Dataset) -> None:
    ps = _state(ct, rescale=(2.0, -100.0), shape="INVERSE", window=(0, 1000, "LINEAR_EXACT"))
    display = extract_display(ct)
    assert display is not None
    shown = ps.display_for(ct.SOPInstanceUID, 1, display)
    frame = shown.frame(0)
    assert (frame.rescale_slope, frame.rescale_intercept) == (2.0, -100.0)
    assert frame.windows == (Window(0.0, 1000.0, "LINEAR_EXACT"),)
    image = render.display_image(ct.pixel_array, _described(ct), shown, 0)
    values = ct.pixel_array.astype(np.float64) * 2.0 - 100.0
    exact = np.clip((values - 0) / 1000 + 0.5, 0, 1) * 255  # C.11.2.1.3.2 LINEAR_EXACT
    assert np.abs(image.astype(int) - np.rint(255 - exact)).max() <= 1  # INVERSE (C.11.6.1.2)


def test_a_colour_softcopy_state_leaves_the_display_alone(ct: Dataset) -> None:
    ps = _state(ct, sop_class="1.2.840.10008.5.1.4.1.1.11.2", window=(40, 400))
    display = extract_display(ct)
    assert ps.colour and display is not None and ps.display_for(ct.SOPInstanceUID, 1, display) is display


def test_malformed_parts_are_left_out() -> None:
    stored = metadata(make_gsps(_frame(), rectangle=(10, 40, 5, 30)))
    stored["00181606"] = {"vr": "IS", "Value": ["x"]}  # the upper edge is no number
    stored["00700042"] = {"vr": "US", "Value": [45]}  # no such rotation
    ps = parse_presentation(stored)
    assert ps.shutter is None and ps.rotation == 0
