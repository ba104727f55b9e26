"""display_image against pydicom and the PS3.3 formulas, for each photometric interpretation and depth.

Expected images are computed here from ``ds.pixel_array`` with pydicom's LUT functions or the
equations of PS3.3 C.11 / C.7.6.3.1.2 written out, and must agree within ±1 grey level.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest
from pydicom.pixels.processing import apply_color_lut, apply_modality_lut, apply_voi_lut, convert_color_space

from dicomweb_origin.errors import BadRequest
from dicomweb_origin.model.appearance import Display, FrameDisplay, Lut, Window
from dicomweb_origin.model.stored import PixelDescription
from dicomweb_origin.render import display_image, encode, render_frame
from tests.support.render_reference import decoded_frame, display_of, pixel_of, read


def _voi(x: np.ndarray, c: float, w: float, function: str) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 (LINEAR), C.11.2.1.3.2 (LINEAR_EXACT), C.11.2.1.3.1 (SIGMOID), y in 0..255."""
    x = x.astype(np.float64)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        return _voi_formula(x, c, w, function)


def _voi_formula(x: np.ndarray, c: float, w: float, function: str) -> np.ndarray:
    if function == "LINEAR":
        y = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255
        return np.where(x <= c - 0.5 - (w - 1) / 2, 0, np.where(x > c - 0.5 + (w - 1) / 2, 255, y))
    if function == "LINEAR_EXACT":
        y = ((x - c) / w + 0.5) * 255
        return np.where(x <= c - w / 2, 0, np.where(x > c + w / 2, 255, y))
    return 255 / (1 + np.exp(-4 * (x - c) / w))


def _close(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.dtype == np.uint8 and actual.shape == expected.shape
    assert np.abs(actual.astype(int) - np.rint(expected).astype(int)).max() <= 1


GREYSCALE_WINDOWED = ["CT_small.dcm", "MR_small.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm", "RG1_UNCR.dcm",
                      "RG3_UNCR.dcm", "693_UNCR.dcm", "MR2_UNCR.dcm"]


@pytest.mark.parametrize("name", ["MR_small.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm", "RG1_UNCR.dcm",
                                  "693_UNCR.dcm", "MR2_UNCR.dcm"])
def test_first_window_of_the_instance_is_the_default_voi(name: str) -> None:
    """No window parameter: the data set's first Window Center/Width after the Modality LUT."""
    ds = read(name)
    arr = decoded_frame(ds)
    modality = apply_modality_lut(arr, ds)
    centre = float(ds.WindowCenter if ds["WindowCenter"].VM == 1 else ds.WindowCenter[0])
    width = float(ds.WindowWidth if ds["WindowWidth"].VM == 1 else ds.WindowWidth[0])
    expected = _voi(modality, centre, width, "LINEAR")
    if ds.PhotometricInterpretation == "MONOCHROME1":
        expected = 255 - expected  # MONOCHROME1: minimum is white (PS3.3 C.7.6.3.1.2)
    _close(display_image(arr, pixel_of(ds), display_of(ds), 0), expected)


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "RG3_UNCR.dcm"])
def test_window_parameter_functions(name: str, function: str) -> None:
    """The ``window`` parameter overrides the instance's VOI, with each VOI LUT Function of C.11.2.1."""
    ds = read(name)
    arr = decoded_frame(ds)
    modality = apply_modality_lut(arr, ds)
    centre, width = float(np.median(modality)), float(np.ptp(modality)) / 3
    expected = _voi(modality, centre, width, function)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        expected = 255 - expected
    actual = display_image(arr, pixel_of(ds), display_of(ds), 0, Window(centre, width, function))
    _close(actual, expected)


def test_pydicom_windowing_agrees_on_ct() -> None:
    """Cross-check with pydicom's apply_voi_lut: a 40/400 soft-tissue window on CT Hounsfield units."""
    ds = read("CT_small.dcm")
    arr = decoded_frame(ds)
    ds.WindowCenter, ds.WindowWidth = 40, 400
    hu = apply_modality_lut(arr, ds)
    reference = apply_voi_lut(hu, ds)  # pydicom maps to the input's value range
    low, high = reference.min(), reference.max()
    expected = (reference - low) / (high - low) * 255
    _close(display_image(arr, pixel_of(ds), display_of(ds), 0, Window(40, 400)), expected)


def test_modality_lut_then_automatic_window() -> None:
    """mlut_18: the Modality LUT Sequence replaces rescale (C.11.1); no VOI: min-max automatic window."""
    ds = read("mlut_18.dcm")
    arr = decoded_frame(ds)
    values = apply_modality_lut(arr, ds).astype(np.float64)
    expected = _voi(values, (values.min() + values.max()) / 2, np.ptp(values), "LINEAR_EXACT")
    _close(display_image(arr, pixel_of(ds), display_of(ds), 0), expected)


def test_voi_lut_sequence() -> None:
    """vlut_04: the first VOI LUT maps modality values; 16-bit entries span the output range (C.11.2.1.1)."""
    ds = read("vlut_04.dcm")
    arr = decoded_frame(ds)
    bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
    expected = apply_voi_lut(apply_modality_lut(arr, ds), ds).astype(np.float64) / (2**bits - 1) * 255
    _close(display_image(arr, pixel_of(ds), display_of(ds), 0), expected)


def test_presentation_lut_shape_inverse_and_identity() -> None:
    """INVERSE reverses the grey scale of MONOCHROME2; IDENTITY keeps MONOCHROME1 from being reversed."""
    ds = read("MR_small.dcm")
    arr, pixel, display = decoded_frame(ds), pixel_of(ds), display_of(ds)
    plain = display_image(arr, pixel, display, 0).astype(int)
    inverse = display_image(arr, pixel, replace(display, presentation_lut_shape="INVERSE"), 0).astype(int)
    assert np.abs(inverse - (255 - plain)).max() <= 1
    mono1 = replace(pixel, photometric_interpretation="MONOCHROME1")
    assert np.abs(display_image(arr, mono1, display, 0).astype(int) - inverse).max() <= 1
    identity = replace(display, presentation_lut_shape="IDENTITY")
    assert np.array_equal(display_image(arr, mono1, identity, 0), plain)


def test_presentation_lut_sequence_maps_the_voi_output() -> None:
    """A Presentation LUT (C.11.6) maps VOI output; here a 12-bit square law over 256 entries."""
    ds = read("MR_small.dcm")
    arr, pixel = decoded_frame(ds), pixel_of(ds)
    table = tuple(round(4095 * (i / 255) ** 2) for i in range(256))
    display = replace(display_of(ds), presentation_lut=Lut(0, 12, table))
    voi = np.rint(_voi(apply_modality_lut(arr, ds), 600, 1600, "LINEAR"))
    expected = np.asarray(table)[voi.astype(int)] / 4095 * 255
    _close(display_image(arr, pixel, display, 0), expected)


def test_bits_above_bits_stored_are_ignored() -> None:
    """Decoders may leave high bits set: only Bits Stored count, sign-extended (PS3.5 8.1.1)."""
    ds = read("MR2_UNCR.dcm")  # 12 of 16 bits, unsigned
    arr = decoded_frame(ds)
    dirty = arr | np.uint16(0xA000)
    pixel, display = pixel_of(ds), display_of(ds)
    assert np.array_equal(display_image(dirty, pixel, display, 0), display_image(arr, pixel, display, 0))
    signed = np.array([[-2048, -1, 0, 2047]], dtype=np.int16)
    twelve = PixelDescription(1, 4, 1, 16, 12, 1, "MONOCHROME2")
    raw = (signed.view(np.uint16) & 0x0FFF).view(np.int16)  # no sign extension done by the decoder
    window = Window(0, 4096, "LINEAR_EXACT")
    assert np.array_equal(display_image(raw, twelve, None, 0, window), display_image(signed, twelve, None, 0, window))


def test_one_bit_frames() -> None:
    """liver_1frame: 1-bit MONOCHROME2 shows 0 black and 1 white."""
    ds = read("liver_1frame.dcm")
    arr = decoded_frame(ds)
    _close(display_image(arr, pixel_of(ds), display_of(ds), 0), arr.astype(np.float64) * 255)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_pixel_data(dtype: type) -> None:
    """Float Pixel Data (parametric maps): rescale and windowing on the real values."""
    ds = read("MR_small.dcm")
    values = decoded_frame(ds).astype(dtype) / 1000 - 0.5
    pixel = PixelDescription(64, 64, 1, 32 if dtype is np.float32 else 64, 32, 0, "MONOCHROME2")
    display = Display(frames=(FrameDisplay(rescale_slope=2.0, rescale_intercept=1.0),))
    expected = _voi(values * 2 + 1, 1.5, 2.0, "LINEAR_EXACT")
    _close(display_image(values, pixel, display, 0, Window(1.5, 2.0, "LINEAR_EXACT")), expected)
    auto = display_image(values, pixel, display, 0)
    assert auto.min() == 0 and auto.max() == 255


def test_per_frame_values_are_used_for_each_frame() -> None:
    """Display.frame(index): Enhanced multi-frame functional groups give each frame its own VOI."""
    ds = read("MR_small.dcm")
    arr, pixel = decoded_frame(ds), pixel_of(ds)
    frames = (FrameDisplay(windows=(Window(600, 1600),)), FrameDisplay(windows=(Window(1000, 200),)))
    second = display_image(arr, pixel, Display(frames=frames), 1)
    _close(second, _voi(arr, 1000, 200, "LINEAR"))


def test_window_width_below_one_is_refused() -> None:
    ds = read("CT_small.dcm")
    with pytest.raises(BadRequest, match="width"):
        display_image(decoded_frame(ds), pixel_of(ds), display_of(ds), 0, Window(40, 0.5, "LINEAR"))


@pytest.mark.parametrize("name", ["SC_rgb.dcm", "US1_UNCR.dcm", "SC_rgb_16bit.dcm", "SC_rgb_32bit.dcm"])
def test_rgb_scaled_to_eight_bits(name: str) -> None:
    """RGB of 8, 16 and 32 bits: each sample scaled to 0..255."""
    ds = read(name)
    arr = decoded_frame(ds)
    expected = arr.astype(np.float64) * 255 / (2.0 ** ds.BitsStored - 1)
    _close(display_image(arr, pixel_of(ds), display_of(ds), 0), expected)


@pytest.mark.parametrize("name", ["SC_ybr_full_uncompressed.dcm", "SC_ybr_full_422_uncompressed.dcm",
                                  "SC_rgb_jpeg_dcmtk.dcm", "examples_ybr_color.dcm"])
def test_ybr_full_to_rgb(name: str) -> None:
    """YBR_FULL and YBR_FULL_422 (decoded full resolution) → RGB per PS3.3 C.7.6.3.1.2."""
    ds = read(name)
    arr = decoded_frame(ds)
    pixel = pixel_of(ds, "YBR_FULL" if ds.PhotometricInterpretation == "YBR_FULL_422" and
                     "Compressed" not in ds.file_meta.TransferSyntaxUID.name else None)
    expected = convert_color_space(arr, "YBR_FULL", "RGB")
    _close(display_image(arr, pixel, display_of(ds), 0), expected.astype(np.float64))


def test_ybr_partial_ict_and_rct_to_rgb() -> None:
    """YBR_PARTIAL_420, YBR_ICT and YBR_RCT arrays, made here from real RGB with the forward equations."""
    rgb = decoded_frame(read("US1_UNCR.dcm")).astype(np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    partial = np.stack([0.2568 * r + 0.5041 * g + 0.0979 * b + 16, -0.1482 * r - 0.2910 * g + 0.4392 * b + 128,
                        0.4392 * r - 0.3678 * g - 0.0714 * b + 128], axis=-1)
    ict = np.stack([0.299 * r + 0.587 * g + 0.114 * b, -0.16875 * r - 0.33126 * g + 0.5 * b + 128,
                    0.5 * r - 0.41869 * g - 0.08131 * b + 128], axis=-1)
    ri, gi, bi = (rgb[..., i].astype(int) - 128 for i in range(3))  # ISO 15444-1 G.2, DC level shift
    rct = np.stack([np.floor_divide(ri + 2 * gi + bi, 4) + 128, bi - gi + 128, ri - gi + 128], axis=-1)
    for photometric, ybr, tolerance in (("YBR_PARTIAL_420", partial, 2), ("YBR_ICT", ict, 1)):
        stored = np.clip(np.rint(ybr), 0, 255).astype(np.uint8)
        out = display_image(stored, PixelDescription(*rgb.shape[:2], 3, 8, 8, 0, photometric), None, 0)
        assert np.abs(out.astype(int) - rgb).max() <= tolerance, photometric
    # RCT chroma differences need one bit more than the samples: the array is wider than Bits Stored
    pixel = PixelDescription(*rgb.shape[:2], 3, 16, 8, 0, "YBR_RCT")
    assert np.array_equal(display_image(rct.astype(np.int16), pixel, None, 0), rgb.astype(np.uint8))


@pytest.mark.parametrize("name", ["OBXXXX1A.dcm", "gdcm-US-ALOKA-16.dcm"])
def test_palette_colour(name: str) -> None:
    """PALETTE COLOR through the red/green/blue LUTs (16-bit entries, segmented ones expanded)."""
    ds = read(name)
    arr = decoded_frame(ds)
    expected = apply_color_lut(arr, ds).astype(np.float64) * 255 / 65535
    _close(display_image(arr, pixel_of(ds), display_of(ds), 0), expected)


def test_palette_with_8_bit_entries_and_first_mapped_value() -> None:
    """8-bit entries are used as they are; values below the first mapped value take the first entry."""
    ds = read("OBXXXX1A.dcm")
    arr = decoded_frame(ds)
    display = display_of(ds)
    assert display.palette is not None
    eight = tuple(Lut(16, 8, tuple(v >> 8 for v in lut.data[:200])) for lut in display.palette)
    for colour, lut in zip(("Red", "Green", "Blue"), eight, strict=True):
        ds[f"{colour}PaletteColorLookupTableDescriptor"].value = [200, 16, 8]
        ds[f"{colour}PaletteColorLookupTableData"].value = bytes(lut.data)
    expected = apply_color_lut(arr, ds).astype(np.float64)
    out = display_image(arr, pixel_of(ds), replace(display, palette=eight), 0)
    _close(out, expected)
    assert np.array_equal(out[arr < 16][0], [lut.data[0] for lut in eight])


def test_render_frame_reports_the_window_used() -> None:
    ds = read("MR_small.dcm")
    _, used = render_frame(decoded_frame(ds), pixel_of(ds), display_of(ds), 0)
    assert used == Window(600.0, 1600.0, "LINEAR")


def test_ct_frame_renders_and_encodes_in_a_few_milliseconds() -> None:
    """A 512×512 int16 CT frame: display_image + JPEG encode (the figure is in the report)."""
    rng = np.random.default_rng(1)
    ct = np.clip(rng.normal(0, 400, (512, 512)), -1024, 3071).astype(np.int16)
    pixel = PixelDescription(512, 512, 1, 16, 12, 1, "MONOCHROME2")
    display = Display(frames=(FrameDisplay(1.0, -1024.0, windows=(Window(40, 400),)),))
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        encode([display_image(ct, pixel, display, 0)], "image/jpeg")
        best = min(best, time.perf_counter() - start)
    print(f"512x512 int16 CT: display_image + JPEG {best * 1000:.1f} ms")
    assert best < 0.05


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
@pytest.mark.parametrize("width", [1, 2, 5])
def test_narrow_windows_tell_the_functions_apart(function: str, width: float) -> None:
    """Narrow windows on CT: LINEAR's c - 0.5 and w - 1 (C.11.2.1.2.1) differ visibly from LINEAR_EXACT."""
    ds = read("CT_small.dcm")
    arr = decoded_frame(ds)
    hu = apply_modality_lut(arr, ds)
    centre = float(np.median(hu)) + 0.25
    if function != "LINEAR" and width == 1:
        width = 0.5
    actual = display_image(arr, pixel_of(ds), display_of(ds), 0, Window(centre, width, function))
    _close(actual, _voi(hu, centre, width, function))
