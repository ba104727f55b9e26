"""Burned-in annotation (PS3.18 §8.3.5.1.1): the text of patient / technique, drawn legibly last.

Golden PNGs under tests/render/golden/ were generated once by ``_goldens()`` (run this module as a script
to regenerate) and inspected by eye: legible, correct, Japanese / Korean / Greek / Cyrillic names.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pydicom import Dataset, dcmread
from pydicom.data import get_charset_files

from dicomweb_origin.errors import BadRequest
from dicomweb_origin.model.appearance import Window
from dicomweb_origin.model.rendering import Viewport
from dicomweb_origin.render import annotate, annotation_lines, apply_viewport, burn_in, render_frame
from tests.support.render_reference import decoded_frame, display_of, pixel_of, read

GOLDEN = Path(__file__).parent / "golden"


def _metadata(name: str) -> dict[str, Any]:
    """The instance's DICOM JSON (PS3.18 Annex F) as the server stores it, from a real file."""
    ds: Dataset
    if name.startswith("chr"):
        path = next(p for p in get_charset_files(name) if os.path.basename(p) == name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = dcmread(path)
    else:
        ds = read(name)
    ds.pop(0x7FE00010, None)
    return ds.to_json_dict()


def test_patient_lines_show_every_name_group() -> None:
    """PN Alphabetic, Ideographic and Phonetic groups, components space-separated."""
    lines = annotation_lines(_metadata("chrH31.dcm"), "patient")
    assert lines[0] == "Yamada Tarou = 山田 太郎 = やまだ たろう"
    assert annotation_lines(_metadata("chrI2.dcm"), "patient")[0] == "Hong Gildong = 洪 吉洞 = 홍 길동"


def test_patient_lines_of_ct_small() -> None:
    ds = read("CT_small.dcm")
    lines = annotation_lines(_metadata("CT_small.dcm"), "patient")
    assert lines[0] == " ".join(p for p in str(ds.PatientName).split("^") if p)
    assert f"ID {ds.PatientID}" in lines
    assert lines[2] == f"Sex {ds.PatientSex}"  # CT_small has an empty Patient's Birth Date
    japanese = annotation_lines({**_metadata("CT_small.dcm"), "00100030": {"vr": "DA", "Value": ["19700102"]}},
                                "patient")
    assert japanese[2] == f"Born 1970-01-02  Sex {ds.PatientSex}"


def test_technique_lines_of_ct_small() -> None:
    """Modality and study date, series / instance numbers, the window used, slice position, kVp."""
    ds = read("CT_small.dcm")
    lines = annotation_lines(_metadata("CT_small.dcm"), "technique", window=Window(40, 400))
    date = str(ds.StudyDate)
    assert lines[0] == f"CT  {date[:4]}-{date[4:6]}-{date[6:]}"
    assert f"Se {ds.SeriesNumber}  Im {ds.InstanceNumber}" in lines
    assert "W 400 C 40" in lines
    assert any(f"Pos {float(ds.SliceLocation):g} mm" in line and f"Thk {float(ds.SliceThickness):g} mm" in line
               for line in lines)
    assert any(f"{float(ds.KVP):g} kVp" in line for line in lines)


def test_frame_number_appears_for_multi_frame() -> None:
    lines = annotation_lines(_metadata("emri_small.dcm"), "technique", frame_number=3)
    assert any("Fr 3/10" in line for line in lines)
    assert not any("Fr" in line for line in annotation_lines(_metadata("CT_small.dcm"), "technique",
                                                             frame_number=1))


def test_unknown_keyword_is_refused() -> None:
    with pytest.raises(BadRequest, match="annotation"):
        annotation_lines({}, "ward")


@pytest.mark.parametrize("background", [0, 255])
def test_text_reads_on_black_and_on_white(background: int) -> None:
    """White glyphs outlined in black: both extremes appear where the text is, on any background."""
    image = np.full((200, 300), background, np.uint8)
    out = annotate(image, ["Yamada Tarou"], "top-left")
    corner = out[:40, :200]
    assert (corner > 200).sum() > 50 and (corner < 55).sum() > 50
    assert np.array_equal(out[100:, :], image[100:, :])  # nothing drawn elsewhere


def _backgrounds(shape: tuple[int, int], rows: slice) -> dict[str, np.ndarray]:
    """Backgrounds text must read on: a bright line through it (the demo CT's table), white, grey, noise."""
    band = np.zeros(shape, np.uint8)
    band[rows] = 255
    stripes = np.zeros(shape, np.uint8)
    stripes[:, ::3] = 255
    return {"a bright line through the text": band, "white": np.full(shape, 255, np.uint8),
            "grey": np.full(shape, 160, np.uint8), "vertical stripes": stripes,
            "noise": np.random.default_rng(7).integers(0, 256, shape, dtype=np.uint8)}


@pytest.mark.parametrize("size", [(256, 256), (512, 512), (128, 300)])
def test_text_stays_legible_on_any_background(size: tuple[int, int]) -> None:
    """Around every glyph the picture is as on black: a dark halo, not a 1-pixel outline, parts text from it.

    "Se 1 Im 1 Fr 1/40" on the demo CT's bright table line could not be read with a thin outline alone: the line
    ran on between and under the glyphs. What surrounds the glyphs (2 px around them) must look the same on any
    background as on black.
    """
    from scipy import ndimage

    line = "Se 1 Im 1 Fr 1/40"
    reference = annotate(np.zeros(size, np.uint8), [line], "top-left").astype(int)
    glyphs = reference > 200
    rows = np.flatnonzero(glyphs.any(axis=1))
    middle = slice(int(rows[len(rows) // 2]), int(rows[len(rows) // 2]) + max(2, size[0] // 80))
    near = ndimage.binary_dilation(glyphs, iterations=2)
    for name, background in _backgrounds(size, middle).items():
        out = annotate(background, [line], "top-left").astype(int)
        differs = np.abs(out - reference)[near] > 64
        assert differs.mean() < 0.03, f"{name}: {differs.mean():.1%} of the text's surroundings show the background"


def _text_box(out: np.ndarray, image: np.ndarray) -> tuple[int, int]:
    changed = np.argwhere(np.any(out != image, axis=-1) if out.ndim == 3 else out != image)
    return int(np.ptp(changed[:, 0])), int(np.ptp(changed[:, 1]))


def test_font_size_follows_the_image_size() -> None:
    """Text height is proportional to the image (1/24 of its smaller side) above the 12 px minimum."""
    small, large = np.zeros((512, 512, 3), np.uint8), np.zeros((1024, 1024, 3), np.uint8)
    h_small, _ = _text_box(annotate(small, ["Se 1"], "bottom-right"), small)
    h_large, _ = _text_box(annotate(large, ["Se 1"], "bottom-right"), large)
    assert 1.8 < h_large / h_small < 2.4


def test_long_lines_shrink_to_fit_the_width() -> None:
    image = np.zeros((200, 200), np.uint8)
    out = annotate(image, ["A very long line of technique text that would not fit at all"], "top-left")
    assert not np.any(out[:, -2:])  # the right margin stays clear


def _goldens() -> dict[str, np.ndarray]:
    """Three annotated renderings of real pixels and real names."""
    ct = read("CT_small.dcm")
    image, used = render_frame(decoded_frame(ct), pixel_of(ct), display_of(ct), 0, Window(40, 400))
    image = apply_viewport(image, Viewport(256, 256))
    japanese = {**_metadata("CT_small.dcm"), **{k: v for k, v in _metadata("chrH31.dcm").items()
                                                 if k.startswith("0010")}}
    ct_golden = burn_in(image, japanese, ["patient", "technique"], window=used)
    white = np.full((180, 320, 3), 255, np.uint8)
    korean = burn_in(white, _metadata("chrI2.dcm"), ["patient"])
    korean = annotate(korean, ["Διονυσιος", "Люкceмбypг"], "bottom-right")
    us = read("US1_UNCR.dcm")
    colour = apply_viewport(render_frame(decoded_frame(us), pixel_of(us), None, 0)[0], Viewport(200, 200))
    chinese = burn_in(colour, _metadata("chrX1.dcm"), ["patient", "technique"], frame_number=1)
    return {"annotation_ct_japanese.png": ct_golden, "annotation_white_korean_greek_cyrillic.png": korean,
            "annotation_small_colour_chinese.png": chinese}


@pytest.mark.parametrize("name", ["annotation_ct_japanese.png", "annotation_white_korean_greek_cyrillic.png",
                                  "annotation_small_colour_chinese.png"])
def test_golden_images(name: str) -> None:
    """Same as the inspected goldens, allowing for FreeType anti-aliasing differences."""
    actual = _goldens()[name].astype(int)
    expected = np.asarray(Image.open(GOLDEN / name)).astype(int)
    assert actual.shape == expected.shape
    difference = np.abs(actual - expected)
    assert difference.mean() < 1.0 and (difference > 64).mean() < 0.005


if __name__ == "__main__":
    GOLDEN.mkdir(exist_ok=True)
    for file_name, picture in _goldens().items():
        Image.fromarray(picture).save(GOLDEN / file_name)
