"""Icons for thumbnails of instances that have nothing to picture (reports, documents, waveforms).

PS3.18 §8.3.5.2 leaves what a thumbnail shows to the server ("a per-modality icon") and forbids
patient-identifying information in it: an icon is drawn from its kind alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont


@dataclass(frozen=True, slots=True)
class IconStyle:
    """How one kind of icon looks: its label, its colours and the glyph behind the label."""

    label: str
    background: tuple[int, int, int]
    ink: tuple[int, int, int]
    glyph: str  # "page", "wave", "film", "cube" or "none"


ICONS: dict[str, IconStyle] = {
    "sr": IconStyle("SR", (28, 78, 128), (255, 255, 255), "page"),
    "pdf": IconStyle("PDF", (170, 30, 30), (255, 255, 255), "page"),
    "document": IconStyle("DOC", (70, 90, 110), (255, 255, 255), "page"),
    "waveform": IconStyle("ECG", (20, 100, 60), (255, 255, 255), "wave"),
    "video": IconStyle("VIDEO", (60, 40, 110), (255, 255, 255), "film"),
    "model": IconStyle("3D", (110, 80, 20), (255, 255, 255), "cube"),
    "other": IconStyle("DICOM", (60, 60, 60), (255, 255, 255), "none"),
}


def icon(kind: str, size: tuple[int, int]) -> np.ndarray:
    """Draw the icon of ``kind`` (a key of ICONS) at ``size`` = (width, height) as HxWx3 uint8 RGB."""
    try:
        style = ICONS[kind]
    except KeyError:
        raise ValueError(f"no icon for kind {kind!r}; known kinds: {', '.join(ICONS)}") from None
    width, height = size
    if width < 1 or height < 1:
        raise ValueError(f"icon size {size} is not positive")
    image = Image.new("RGB", (width, height), style.background)
    draw = ImageDraw.Draw(image)
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    _GLYPHS[style.glyph](draw, (left, top, side), style)
    _label(draw, (width, height), side, style)
    return np.asarray(image, dtype=np.uint8).copy()


def _label(draw: ImageDraw.ImageDraw, size: tuple[int, int], side: int, style: IconStyle) -> None:
    """Write the label centred, as large as fits in 80% of the icon's width."""
    points = max(6, side // 3)
    font = ImageFont.load_default(size=points)
    while points > 6 and draw.textlength(style.label, font=font) > 0.8 * size[0]:
        points -= 1
        font = ImageFont.load_default(size=points)
    centre = (size[0] / 2, size[1] / 2 + side * 0.12)
    draw.text(centre, style.label, font=font, fill=style.ink, anchor="mm",
              stroke_width=max(1, points // 12), stroke_fill=style.background)


def _page(draw: ImageDraw.ImageDraw, box: tuple[float, float, float], style: IconStyle) -> None:
    """Draw a sheet with a folded corner and a few text lines."""
    left, top, side = box
    x0, y0, x1, y1 = left + side * 0.22, top + side * 0.1, left + side * 0.78, top + side * 0.9
    fold = side * 0.14
    line = max(1, round(side / 40))
    draw.polygon([(x0, y0), (x1 - fold, y0), (x1, y0 + fold), (x1, y1), (x0, y1)],
                 outline=style.ink, width=line)
    draw.line([(x1 - fold, y0), (x1 - fold, y0 + fold), (x1, y0 + fold)], fill=style.ink, width=line)
    for row in range(3):
        y = y0 + side * (0.14 + row * 0.08)
        draw.line([(x0 + side * 0.07, y), (x1 - fold - side * 0.04, y)], fill=style.ink, width=line)


def _wave(draw: ImageDraw.ImageDraw, box: tuple[float, float, float], style: IconStyle) -> None:
    """Draw one heartbeat of an ECG trace above the label."""
    left, top, side = box
    shape = [(0.05, 0.0), (0.3, 0.0), (0.36, -0.05), (0.42, 0.0), (0.47, 0.04), (0.52, -0.3),
             (0.57, 0.12), (0.62, 0.0), (0.74, -0.07), (0.82, 0.0), (0.95, 0.0)]
    baseline = top + side * 0.35
    points = [(left + x * side, baseline + y * side) for x, y in shape]
    draw.line(points, fill=style.ink, width=max(1, round(side / 32)), joint="curve")


def _film(draw: ImageDraw.ImageDraw, box: tuple[float, float, float], style: IconStyle) -> None:
    """Draw a strip of film with sprocket holes above the label."""
    left, top, side = box
    x0, y0, x1, y1 = left + side * 0.12, top + side * 0.12, left + side * 0.88, top + side * 0.46
    draw.rectangle([x0, y0, x1, y1], outline=style.ink, width=max(1, round(side / 40)))
    hole = side * 0.05
    for index in range(6):
        x = x0 + side * 0.05 + index * (x1 - x0 - side * 0.1) / 5
        for y in (y0 + side * 0.03, y1 - side * 0.03 - hole):
            draw.rectangle([x, y, x + hole, y + hole], fill=style.ink)


def _cube(draw: ImageDraw.ImageDraw, box: tuple[float, float, float], style: IconStyle) -> None:
    """Draw the outline of a cube above the label."""
    left, top, side = box
    s = side * 0.22
    x, y = left + side * 0.38, top + side * 0.2
    line = max(1, round(side / 40))
    draw.rectangle([x, y, x + s, y + s], outline=style.ink, width=line)
    draw.rectangle([x + s * 0.5, y - s * 0.5, x + s * 1.5, y + s * 0.5], outline=style.ink, width=line)
    for dx, dy in ((0, 0), (s, 0), (0, s), (s, s)):
        draw.line([(x + dx, y + dy), (x + dx + s * 0.5, y + dy - s * 0.5)], fill=style.ink, width=line)


def _none(draw: ImageDraw.ImageDraw, box: tuple[float, float, float], style: IconStyle) -> None:
    """Draw a plain frame: the label says it all."""
    left, top, side = box
    inset = side * 0.08
    draw.rectangle([left + inset, top + inset, left + side - inset, top + side - inset],
                   outline=style.ink, width=max(1, round(side / 48)))


_GLYPHS = {"page": _page, "wave": _wave, "film": _film, "cube": _cube, "none": _none}
