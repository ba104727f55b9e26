"""What a presentation state draws over an image: shutters, bitmaps, graphics, text, and its geometry.

Pure functions over uint8 arrays (rows, cols) or (rows, cols, 3). Two coordinate systems meet here:

* shutters are 1-based pixel indices, row before column (PS3.3 C.7.6.11.1);
* graphic and text annotations are (column, row) in the "image relative" system of PS3.3
  C.10.5.1.2, sub-pixel: 0.0\\0.0 is the top left corner of the top left pixel, 0.5\\0.5 its centre,
  Columns\\Rows the bottom right corner of the bottom right pixel (PIXEL units); or fractions of the
  displayed area, 0.0\\0.0 its top left and 1.0\\1.0 its bottom right corner (DISPLAY units).

``Geometry`` maps image relative points through the displayed area selection and the spatial
transformation, so annotations land on the pixels the image put there and text stays upright.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from .annotate import _font

Array = np.ndarray
Point = tuple[float, float]
Ink = int | tuple[int, int, int]  # an 8-bit grey P-value or an sRGB colour
MAX_SIDE = 8192  # the most pixels a magnified displayed area may span on either side

# -- values ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bitmap:
    """A 1-bit overlay plane placed on the image (PS3.3 C.9.2): a bitmap shutter or an activated overlay."""

    rows: int
    columns: int
    origin: tuple[int, int]  # Overlay Origin: row, column of the overlay's first pixel, 1-based
    bits: bytes  # Overlay Data: packed, first pixel in the lowest bit (PS3.5 8.1.2)
    group: int = 0x6000

    def mask(self, rows: int, columns: int) -> Array:
        """The overlay as a bool (rows, columns) mask on an image of that size."""
        count = self.rows * self.columns
        bits = np.unpackbits(np.frombuffer(self.bits, np.uint8), bitorder="little")[:count]
        flat = np.zeros(count, bool)
        flat[: bits.size] = bits.astype(bool)
        plane = flat.reshape(self.rows, self.columns)
        out = np.zeros((rows, columns), bool)
        top, left = self.origin[0] - 1, self.origin[1] - 1
        r0, c0 = max(top, 0), max(left, 0)
        r1, c1 = min(top + self.rows, rows), min(left + self.columns, columns)
        if r1 > r0 and c1 > c0:
            out[r0:r1, c0:c1] = plane[r0 - top:r1 - top, c0 - left:c1 - left]
        return out


@dataclass(frozen=True, slots=True)
class Shutter:
    """The Display Shutter module (PS3.3 C.7.6.11) and Bitmap Display Shutter (C.7.6.15)."""

    rectangle: tuple[float, float, float, float] | None = None  # left, right, upper, lower edge (1-based)
    circle: tuple[float, float, float] | None = None  # centre row, centre column, radius (pixels)
    polygon: tuple[Point, ...] = ()  # vertices as (row, column), implicitly closed
    bitmap: Bitmap | None = None
    value: int = 0  # Shutter Presentation Value as an 8-bit grey
    colour: tuple[int, int, int] | None = None  # Shutter Presentation Color CIELab Value as sRGB


@dataclass(frozen=True, slots=True)
class Style:
    """How a graphic or text is drawn: its own colour, else its layer's (PS3.3 C.10.5.1.2, C.10.7)."""

    grey: int | None = None
    colour: tuple[int, int, int] | None = None
    thickness: float = 1.0


@dataclass(frozen=True, slots=True)
class Graphic:
    """One Graphic Object Sequence item (PS3.3 C.10.5): POINT, POLYLINE, INTERPOLATED, CIRCLE, ELLIPSE."""

    kind: str
    points: tuple[Point, ...]  # (column, row)
    units: str = "PIXEL"  # or DISPLAY
    filled: bool = False
    style: Style = field(default_factory=Style)


@dataclass(frozen=True, slots=True)
class Text:
    """One Text Object Sequence item (PS3.3 C.10.5): text in a bounding box and/or at an anchor point."""

    text: str
    box: tuple[Point, Point] | None = None  # top left, bottom right corner (column, row)
    box_units: str = "PIXEL"
    anchor: Point | None = None
    anchor_units: str = "PIXEL"
    anchor_visible: bool = False
    justification: str = "LEFT"  # LEFT, RIGHT or CENTER
    style: Style = field(default_factory=Style)


# -- colours ---------------------------------------------------------------------------------------


def grey8(p_value: float) -> int:
    """A 16-bit P-Value (0..FFFFH, PS3.3 C.10.7.1.1 / C.7.6.11) as an 8-bit grey."""
    return max(0, min(255, round(p_value * 255 / 0xFFFF)))


def lab_to_rgb(lab: Sequence[float]) -> tuple[int, int, int]:
    """A DICOM CIELab triplet to 8-bit sRGB (PS3.3 C.10.7.1.1).

    The three values are 0..FFFFH for L* 0..100 and a*, b* -128..127; the white point is D50
    (the ICC profile connection space), adapted to sRGB's D65 with the Bradford matrix.
    """
    lightness = lab[0] * 100.0 / 0xFFFF
    a, b = lab[1] * 255.0 / 0xFFFF - 128.0, lab[2] * 255.0 / 0xFFFF - 128.0
    fy = (lightness + 16.0) / 116.0
    fx, fz = fy + a / 500.0, fy - b / 200.0

    def inverse(t: float) -> float:
        return t ** 3 if t > 6.0 / 29.0 else 3 * (6.0 / 29.0) ** 2 * (t - 4.0 / 29.0)

    xyz_d50 = np.array([0.9642 * inverse(fx), 1.0 * inverse(fy), 0.8249 * inverse(fz)])
    d50_to_d65 = np.array([[0.9555766, -0.0230393, 0.0631636],
                           [-0.0282895, 1.0099416, 0.0210077],
                           [0.0122982, -0.0204830, 1.3299098]])
    xyz_to_srgb = np.array([[3.2404542, -1.5371385, -0.4985314],
                            [-0.9692660, 1.8760108, 0.0415560],
                            [0.0556434, -0.2040259, 1.0572252]])
    linear = np.clip(xyz_to_srgb @ (d50_to_d65 @ xyz_d50), 0.0, 1.0)
    encoded = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    red, green, blue = (int(round(float(v) * 255)) for v in encoded)
    return red, green, blue


def as_rgb(image: Array) -> Array:
    return image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)


def _ink(ink: Ink, image: Array) -> Ink:
    """The ink in the image's own kind: a grey drawn on colour becomes (g, g, g)."""
    if image.ndim == 3 and isinstance(ink, int):
        return ink, ink, ink
    return ink


# -- shutters and bitmaps (PS3.3 C.7.6.11, C.7.6.15) ----------------------------------------------


def shutter_mask(shutter: Shutter, rows: int, columns: int) -> Array:
    """True where a pixel is shuttered: outside any of the shapes the shutter combines.

    PS3.3 C.7.6.11.1.1: with several shapes, the shuttered area is the union of the areas each
    shape excludes. Each pixel is tested at its centre, i.e. at its 1-based row and column.
    """
    r, c = np.mgrid[1:rows + 1, 1:columns + 1].astype(np.float64)
    shut = np.zeros((rows, columns), bool)
    if shutter.rectangle is not None:
        left, right, upper, lower = shutter.rectangle
        shut |= ~((c >= left) & (c <= right) & (r >= upper) & (r <= lower))
    if shutter.circle is not None:
        centre_row, centre_column, radius = shutter.circle
        shut |= (r - centre_row) ** 2 + (c - centre_column) ** 2 > radius ** 2
    if len(shutter.polygon) >= 3:
        shut |= ~_inside(shutter.polygon, r, c)
    if shutter.bitmap is not None:
        shut |= shutter.bitmap.mask(rows, columns)
    return shut


def _inside(vertices: Sequence[Point], r: Array, c: Array) -> Array:
    """Even-odd rule (a ray to the right crosses the edges an odd number of times); edges count as inside.

    The boundary is kept visible as the rectangle's edges and the circle's circumference are.
    """
    inside = np.zeros(r.shape, bool)
    edge = np.zeros(r.shape, bool)
    count = len(vertices)
    for index in range(count):
        (r1, c1), (r2, c2) = vertices[index], vertices[(index + 1) % count]
        cross = (r2 - r1) * (c - c1) - (c2 - c1) * (r - r1)
        edge |= (np.abs(cross) < 1e-9) & (np.minimum(r1, r2) <= r) & (r <= np.maximum(r1, r2)) \
            & (np.minimum(c1, c2) <= c) & (c <= np.maximum(c1, c2))
        if r1 == r2:
            continue
        spans = (r1 > r) != (r2 > r)
        crossing = c1 + (r - r1) * (c2 - c1) / (r2 - r1)
        inside ^= spans & (c < crossing)
    result: Array = inside | edge
    return result


def paint(image: Array, mask: Array, ink: Ink) -> Array:
    """``image`` with the masked pixels set to ``ink``."""
    out = image.copy()
    out[mask] = _ink(ink, image)
    return out


# -- geometry: displayed area (C.10.4) and spatial transformation (C.10.6) --------------------------


@dataclass(frozen=True, slots=True)
class Geometry:
    """Crop (and pad) to a region, scale, rotate clockwise, then flip; maps points the same way."""

    left: int  # the region's first column and row, 0-based; may be negative (padding)
    top: int
    width: int  # the region in source pixels
    height: int
    scale_x: float = 1.0
    scale_y: float = 1.0
    rotation: int = 0  # 0, 90, 180, 270 clockwise
    flip: bool = False

    @property
    def scaled(self) -> tuple[int, int]:
        """The region's (width, height) after scaling, before rotation."""
        return (max(1, min(MAX_SIDE, round(self.width * self.scale_x))),
                max(1, min(MAX_SIDE, round(self.height * self.scale_y))))

    @property
    def size(self) -> tuple[int, int]:
        """The output's (width, height)."""
        width, height = self.scaled
        return (height, width) if self.rotation in (90, 270) else (width, height)

    def point(self, x: float, y: float) -> Point:
        """An image relative point (column, row) of the source, in the output's image relative system."""
        width, height = self.scaled
        x = (x - self.left) * width / self.width
        y = (y - self.top) * height / self.height
        if self.rotation == 90:
            x, y = height - y, x
        elif self.rotation == 180:
            x, y = width - x, height - y
        elif self.rotation == 270:
            x, y = y, width - x
        if self.flip:
            x = self.size[0] - x
        return x, y

    def apply(self, image: Array) -> Array:
        """The region of ``image`` (black beyond its edges), scaled, rotated, then flipped."""
        rows, columns = image.shape[:2]
        out = np.zeros((self.height, self.width, *image.shape[2:]), image.dtype)
        r0, c0 = max(self.top, 0), max(self.left, 0)
        r1, c1 = min(self.top + self.height, rows), min(self.left + self.width, columns)
        if r1 > r0 and c1 > c0:
            out[r0 - self.top:r1 - self.top, c0 - self.left:c1 - self.left] = image[r0:r1, c0:c1]
        if self.scaled != (self.width, self.height):
            out = np.asarray(Image.fromarray(out).resize(self.scaled, Image.Resampling.BILINEAR))
        out = np.rot90(out, k=-(self.rotation // 90))  # k < 0: clockwise
        if self.flip:
            out = out[:, ::-1]
        return np.ascontiguousarray(out)


# -- graphics and text (PS3.3 C.10.5) -------------------------------------------------------------


def _outline(graphic: Graphic, points: Sequence[Point]) -> list[Point]:
    """The drawn path of a graphic, its curves sampled finely enough for the pixels they cross."""
    if graphic.kind == "CIRCLE" and len(points) >= 2:  # centre, then a point on the circumference
        (cx, cy), (px, py) = points[0], points[1]
        radius = math.hypot(px - cx, py - cy)
        return _ellipse(cx, cy, radius, radius, 0.0)
    if graphic.kind == "ELLIPSE" and len(points) >= 4:  # major axis end points, then minor axis ones
        (x1, y1), (x2, y2), (x3, y3), (x4, y4) = points[:4]
        major, minor = math.hypot(x2 - x1, y2 - y1) / 2, math.hypot(x4 - x3, y4 - y3) / 2
        return _ellipse((x1 + x2) / 2, (y1 + y2) / 2, major, minor, math.atan2(y2 - y1, x2 - x1))
    if graphic.kind == "INTERPOLATED" and len(points) >= 3:
        return _spline(points)
    return list(points)


def _ellipse(cx: float, cy: float, a: float, b: float, angle: float) -> list[Point]:
    steps = max(32, int(8 * max(a, b)))
    cos, sin = math.cos(angle), math.sin(angle)
    path = []
    for step in range(steps + 1):
        t = 2 * math.pi * step / steps
        x, y = a * math.cos(t), b * math.sin(t)
        path.append((cx + x * cos - y * sin, cy + x * sin + y * cos))
    return path


def _spline(points: Sequence[Point]) -> list[Point]:
    """A Catmull-Rom curve through every point (INTERPOLATED: "a curve through the points")."""
    closed = points[0] == points[-1]
    ends = ([points[-2]], [points[1]]) if closed else ([points[0]], [points[-1]])
    padded = ends[0] + list(points) + ends[1]
    path: list[Point] = [points[0]]
    for index in range(1, len(padded) - 2):
        p0, p1, p2, p3 = padded[index - 1:index + 3]
        steps = max(4, int(2 * math.hypot(p2[0] - p1[0], p2[1] - p1[1])))
        for step in range(1, steps + 1):
            t = step / steps
            path.append(tuple(  # type: ignore[arg-type]
                0.5 * (2 * p1[k] + (p2[k] - p0[k]) * t + (2 * p0[k] - 5 * p1[k] + 4 * p2[k] - p3[k]) * t * t
                       + (3 * p1[k] - p0[k] - 3 * p2[k] + p3[k]) * t ** 3) for k in (0, 1)))
    return path


def _pil(point: Point) -> tuple[int, int]:
    """The pixel an image relative point lies in: pixel (r, c) spans [c, c + 1) x [r, r + 1) (C.10.5.1.2)."""
    return math.floor(point[0]), math.floor(point[1])


def draw_graphic(draw: ImageDraw.ImageDraw, graphic: Graphic, points: Sequence[Point], ink: Ink) -> None:
    """Draw one graphic whose points are already in output image relative coordinates."""
    width = max(1, round(graphic.style.thickness))
    path = [_pil(p) for p in _outline(graphic, points)]
    if not path:
        return
    if graphic.kind == "POINT" or len(path) == 1:
        for x, y in path:
            draw.point([(x, y), (x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1)], fill=ink)
        return
    if graphic.filled and len(path) >= 3:
        draw.polygon(path, fill=ink, outline=ink)
    draw.line(path, fill=ink, width=width)


def draw_text(image: Image.Image, text: Text, box: tuple[Point, Point] | None, anchor: Point | None,
              ink: Ink) -> None:
    """Draw a text object: inside its bounding box (shrunk to fit, clipped to it), else beside its anchor.

    PS3.3 C.10.5.1.1: the text is rendered within the bounding box; the anchor point, when it is
    visible, is joined to the box by a line.
    """
    lines = [line for line in text.text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    draw = ImageDraw.Draw(image)
    if box is None:
        if anchor is None:
            return
        size = max(12, round(min(image.size) / 24))
        font = _font(size)
        width = max(font.getlength(line) for line in lines) + 2
        left, top = anchor[0] + 2, anchor[1] + 2
        box = ((left, top), (left + width, top + size * 1.2 * len(lines)))
    (x0, y0), (x1, y1) = box
    left, right, top, bottom = min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)
    if anchor is not None and text.anchor_visible:
        nearest = (min(max(anchor[0], left), right), min(max(anchor[1], top), bottom))
        draw.line([_pil(anchor), _pil(nearest)], fill=ink)
    box_w, box_h = int(math.floor(right) - math.ceil(left)), int(math.floor(bottom) - math.ceil(top))
    if box_w < 1 or box_h < 1 or not any(lines):
        return
    size = max(6, int(box_h / (1.2 * len(lines))))
    font = _font(size)
    widest = max(font.getlength(line) for line in lines) or 1.0
    if widest > box_w:
        size = max(6, int(size * box_w / widest))
        font = _font(size)
    mask = Image.new("L", (box_w, box_h), 0)
    pen = ImageDraw.Draw(mask)
    for number, line in enumerate(lines):
        room = box_w - font.getlength(line)
        x = {"RIGHT": room, "CENTER": room / 2}.get(text.justification, 0.0)
        pen.text((max(x, 0.0), number * size * 1.2), line, fill=255, font=font)
    corner = (math.ceil(left), math.ceil(top))
    image.paste(ink, (*corner, corner[0] + box_w, corner[1] + box_h), mask.point(lambda v: 255 if v >= 128 else 0))
