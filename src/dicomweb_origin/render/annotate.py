"""The ``annotation`` parameter (PS3.18 §8.3.5.1.1): patient / technique text burned in last.

Text is drawn with Noto Sans CJK JP (package ``noto-cjk-sans-jp-regular``, SIL OFL), which covers
Latin, Greek, Cyrillic, kana, Han ideographs and Hangul, so person names in any of the specific
character sets render as written. The font size follows the image (about 1/24 of its smaller
side, at least 12 px, shrunk so the longest line fits; a line still too long is shortened with an
ellipsis, and lines beyond half the height are dropped, the less important last).

White glyphs with a black outline alone do not read on a bright detail that runs through them (the demo CT's
table line under "Se 1 Im 1 Fr 1/40"): the text also gets a soft dark halo, a third of the font size wide, that
darkens only what lies right around the glyphs, as viewers and subtitles draw text over pictures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from ..dicom import dicomjson as dj
from ..errors import BadRequest
from ..model.appearance import Window

Array = np.ndarray
CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")
# Where each annotation keyword is drawn (PS3.18 §8.3.5.1.1 leaves it to the server)
PLACEMENT = {"patient": "top-left", "technique": "bottom-left"}


@cache
def _font(size: int) -> ImageFont.FreeTypeFont:
    import noto_cjk_sans_jp_regular

    with noto_cjk_sans_jp_regular.FONT_PATH.open("rb") as file:
        return ImageFont.truetype(file, size, layout_engine=ImageFont.Layout.BASIC)


MIN_FONT_PX = 12  # below this, lines are dropped or shortened rather than drawn illegibly small


def _fitted(font: ImageFont.FreeTypeFont, line: str, room: float) -> str:
    while len(line) > 1 and font.getlength(line) > room:
        line = line[:-2] + "…"
    return line


def annotate(image: Array, lines: Sequence[str], corner: str = "top-left") -> Array:
    """Burn ``lines`` of text into a uint8 (rows, cols[, 3]) image at one of its corners."""
    if corner not in CORNERS:
        raise BadRequest(f"annotation corner {corner!r} is not one of {', '.join(CORNERS)}")
    lines = [line for line in lines if line]
    if not lines:
        return image
    rows, columns = image.shape[:2]
    margin = max(2, min(rows, columns) // 64)
    room = columns - 2 * margin
    size = max(MIN_FONT_PX, round(min(rows, columns) / 24))
    widest = max(_font(size).getlength(line) for line in lines)
    if widest > room:
        size = max(MIN_FONT_PX, int(size * room / widest))
    font = _font(size)
    # two corners share each side: keep the lines that fit in half the height, most important first
    lines = [_fitted(font, line, room) for line in lines[:max(1, int((rows / 2 - margin) / (1.25 * size)))]]
    stroke = max(1, round(size / 9))
    step = round(size * 1.25)
    picture = Image.fromarray(np.ascontiguousarray(image))
    white, black = (255, 0) if picture.mode == "L" else ((255, 255, 255), (0, 0, 0))
    top = margin if corner.startswith("top") else rows - margin - step * len(lines)
    placed = [((margin if corner.endswith("left") else columns - margin - font.getlength(line), top + n * step), line)
              for n, line in enumerate(lines)]
    _halo(picture, placed, font, black)
    draw = ImageDraw.Draw(picture)
    for position, line in placed:
        draw.text(position, line, font=font, fill=white, stroke_width=stroke, stroke_fill=black)
    return np.asarray(picture)


def _halo(picture: Image.Image, placed: Sequence[tuple[tuple[float, float], str]], font: ImageFont.FreeTypeFont,
          black: int | tuple[int, int, int]) -> None:
    """Darken what lies right around the glyphs: their shapes widened by a third of the font size, blurred."""
    width = max(2, round(font.size / 3))
    mask = Image.new("L", picture.size, 0)
    draw = ImageDraw.Draw(mask)
    for position, line in placed:
        draw.text(position, line, font=font, fill=255, stroke_width=width, stroke_fill=255)
    box = mask.getbbox()
    if box is None:
        return
    # Blur only the text's corner (plus the blur's reach), not the whole picture.
    reach = 2 * width
    box = (max(0, box[0] - reach), max(0, box[1] - reach), min(picture.width, box[2] + reach),
           min(picture.height, box[3] + reach))
    region = mask.crop(box).filter(ImageFilter.GaussianBlur(width / 3))
    picture.paste(black, box, region)


# -- What is written: the instance's DICOM JSON metadata (PS3.18 Annex F), keyed by 8-hex tags --

def _number(value: Any) -> str:
    return f"{float(value):g}"


def person_name(value: Any) -> str:
    """Format a PN value of DICOM JSON: each group's components space-separated, groups with ' = '."""
    if isinstance(value, str):
        value = {"Alphabetic": value}
    if not isinstance(value, Mapping):
        return ""
    groups = (value.get(g) for g in ("Alphabetic", "Ideographic", "Phonetic"))
    return " = ".join(" ".join(p for p in g.split("^") if p) for g in groups if g)


def _date(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else value


def _patient(metadata: Mapping[str, Any]) -> list[str]:
    names = dj.values(metadata, "00100010")
    birth, sex = _date(dj.string(metadata, "00100030")), dj.string(metadata, "00100040")
    return [
        person_name(names[0]) if names else "",
        f"ID {dj.string(metadata, '00100020')}" if dj.string(metadata, "00100020") else "",
        "  ".join(p for p in (f"Born {birth}" if birth else "", f"Sex {sex}" if sex else "") if p),
    ]


def _technique(metadata: Mapping[str, Any], frame_number: int | None, window: Window | None) -> list[str]:
    modality, date = dj.string(metadata, "00080060"), _date(dj.string(metadata, "00080020"))
    series, instance = dj.string(metadata, "00200011"), dj.string(metadata, "00200013")
    frames = dj.string(metadata, "00280008")
    position = dj.string(metadata, "00201041")
    if not position and len(dj.values(metadata, "00200032")) == 3:
        position = str(dj.values(metadata, "00200032")[2])
    thickness = dj.string(metadata, "00180050")
    kvp, mas = dj.string(metadata, "00180060"), dj.string(metadata, "00181152")
    numbers = [f"Se {series}" if series else "", f"Im {instance}" if instance else ""]
    if frame_number is not None and frames and int(float(frames)) > 1:
        numbers.append(f"Fr {frame_number}/{int(float(frames))}")
    geometry = [f"Pos {_number(position)} mm" if position else "",
                f"Thk {_number(thickness)} mm" if thickness else ""]
    exposure = [f"{_number(kvp)} kVp" if kvp else "", f"{_number(mas)} mAs" if mas else ""]
    voi = f"W {window.width:g} C {window.center:g}" if window is not None else ""
    if window is not None and window.function.upper() != "LINEAR":
        voi += f" {window.function.lower().replace('_', '-')}"
    return ["  ".join(p for p in part if p) for part in
            ([modality, date], numbers, [voi], geometry, exposure)]


def annotation_lines(metadata: Mapping[str, Any], keyword: str, *, frame_number: int | None = None,
                     window: Window | None = None) -> list[str]:
    """The text lines of one annotation keyword (``patient`` or ``technique``) for an instance."""
    if keyword == "patient":
        lines = _patient(metadata)
    elif keyword == "technique":
        lines = _technique(metadata, frame_number, window)
    else:
        raise BadRequest(f"annotation value {keyword!r} is not patient or technique")
    return [line for line in lines if line]


def burn_in(image: Array, metadata: Mapping[str, Any], keywords: Sequence[str], *,
            frame_number: int | None = None, window: Window | None = None) -> Array:
    """Draw each requested annotation at its corner of ``PLACEMENT`` (after every other step)."""
    for keyword in keywords:
        image = annotate(image, annotation_lines(metadata, keyword, frame_number=frame_number,
                                                 window=window), PLACEMENT[keyword])
    return image
