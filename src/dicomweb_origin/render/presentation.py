"""Grayscale and Color Softcopy Presentation States (PS3.3 A.33.1, A.33.2) applied to the images they reference.

``parse_presentation`` reads a presentation state's DICOM JSON metadata (PS3.18 Annex F, what the
server stores per instance) into a frozen ``PresentationState``. Rendering one referenced frame
then takes two calls around the basic pipeline:

1. ``ps.display_for(instance_uid, frame_number, display)``: the image's ``Display`` with the
   state's Modality LUT, Softcopy VOI LUT and Presentation LUT in place of the image's own
   (PS3.4 N.2.1: the presentation state's values apply, not the image's);
2. ``apply_presentation(image, ps, instance_uid, frame_number)`` on the 8-bit result: shutters,
   overlays, displayed area, spatial transformation, graphic and text annotations.

Values too large for inline metadata arrive as BulkDataURIs (F.2.7): pass their bytes in
``bulk`` keyed by tag path (``"60003000"`` for overlay data, ``"00282000"`` for the ICC profile).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw

from ..model import Display, Lut, Window
from . import dicomjson as dj
from .graphics import (
    Bitmap,
    Geometry,
    Graphic,
    Ink,
    Point,
    Shutter,
    Style,
    Text,
    as_rgb,
    draw_graphic,
    draw_text,
    grey8,
    lab_to_rgb,
    paint,
    shutter_mask,
)

Array = np.ndarray
Scope = tuple[tuple[str, tuple[int, ...]], ...]  # (instance UID, frames; () = all); () = every image
COLOR_SOFTCOPY = "1.2.840.10008.5.1.4.1.1.11.2"
_FUNCTIONS = frozenset({"LINEAR", "LINEAR_EXACT", "SIGMOID"})  # VOI LUT Function (PS3.3 C.11.2.1.3)
_SIZE_MODES = frozenset({"SCALE TO FIT", "TRUE SIZE", "MAGNIFY"})  # PS3.3 C.10.4.1.1
_GRAPHIC_TYPES = frozenset({"POINT", "POLYLINE", "INTERPOLATED", "CIRCLE", "ELLIPSE"})  # C.10.5.1.2
WHITE = 255  # a graphic with no recommended display value anywhere


class ReferencedImage(NamedTuple):
    """One image of the Referenced Series Sequence (PS3.3 C.11.11): frames () means every frame."""

    series_uid: str
    instance_uid: str
    frames: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class SoftcopyVoi:
    """One Softcopy VOI LUT Sequence item (PS3.3 C.11.8): windows or VOI LUTs, for some images."""

    images: Scope
    windows: tuple[Window, ...] = ()
    voi_luts: tuple[Lut, ...] = ()


@dataclass(frozen=True, slots=True)
class DisplayedArea:
    """One Displayed Area Selection Sequence item (PS3.3 C.10.4)."""

    images: Scope
    top_left: tuple[int, int]  # (column, row), 1-based: the pixel shown top left after spatial transformation
    bottom_right: tuple[int, int]
    size_mode: str = "SCALE TO FIT"
    pixel_spacing: tuple[float, float] | None = None  # Presentation Pixel Spacing: row, column (mm)
    aspect_ratio: tuple[float, float] | None = None  # Presentation Pixel Aspect Ratio: row, column
    magnification: float | None = None  # Presentation Pixel Magnification Ratio (MAGNIFY)


@dataclass(frozen=True, slots=True)
class GraphicLayer:
    """One Graphic Layer Sequence item (PS3.3 C.10.7): its order and recommended display values."""

    name: str
    order: int = 0
    grey: int | None = None  # Recommended Display Grayscale Value, 8-bit
    colour: tuple[int, int, int] | None = None  # Recommended Display CIELab Value, as sRGB


@dataclass(frozen=True, slots=True)
class Annotation:
    """One Graphic Annotation Sequence item (PS3.3 C.10.5): graphics and text on one layer."""

    layer: str
    images: Scope = ()
    graphics: tuple[Graphic, ...] = ()
    texts: tuple[Text, ...] = ()


@dataclass(frozen=True, slots=True)
class Overlay:
    """An overlay plane of the presentation state shown on a graphic layer (PS3.3 C.9.2, C.11.7)."""

    bitmap: Bitmap
    layer: str | None = None


@dataclass(frozen=True, slots=True)
class PresentationState:
    """What a GSPS or CSPS says about how to display the images it references."""

    sop_class_uid: str
    instance_uid: str
    label: str | None = None  # Content Label
    images: tuple[ReferencedImage, ...] = ()
    modality: tuple[float, float] | None = None  # Rescale Slope, Intercept (PS3.3 C.11.1)
    modality_lut: Lut | None = None
    voi: tuple[SoftcopyVoi, ...] = ()
    presentation_lut_shape: str | None = None  # IDENTITY or INVERSE (PS3.3 C.11.6)
    presentation_lut: Lut | None = None
    rotation: int = 0  # Image Rotation, clockwise (PS3.3 C.10.6)
    flip: bool = False  # Image Horizontal Flip
    areas: tuple[DisplayedArea, ...] = ()
    shutter: Shutter | None = None
    layers: tuple[GraphicLayer, ...] = ()
    annotations: tuple[Annotation, ...] = ()
    overlays: tuple[Overlay, ...] = ()
    icc_profile_path: str | None = None  # CSPS: tag path of its ICC Profile (PS3.3 C.11.15)
    icc_profile: bytes | None = None  # its bytes, when inline or passed in ``bulk``

    @property
    def colour(self) -> bool:
        """A Color Softcopy Presentation State: no greyscale pipeline, an ICC profile (A.33.2)."""
        return self.sop_class_uid == COLOR_SOFTCOPY

    def applies_to(self, series_uid: str, instance_uid: str, frame_number: int) -> bool:
        """Whether the state references this frame (PS3.3 C.11.11: no frame numbers = every frame)."""
        return any(ref.series_uid == series_uid and ref.instance_uid == instance_uid
                   and (not ref.frames or frame_number in ref.frames) for ref in self.images)

    def voi_for(self, instance_uid: str, frame_number: int) -> SoftcopyVoi | None:
        return next((v for v in self.voi if _covers(v.images, instance_uid, frame_number)), None)

    def area_for(self, instance_uid: str, frame_number: int) -> DisplayedArea | None:
        return next((a for a in self.areas if _covers(a.images, instance_uid, frame_number)), None)

    def annotations_for(self, instance_uid: str, frame_number: int) -> list[Annotation]:
        """The annotations shown on this frame, lower Graphic Layer Order first (PS3.3 C.10.7.1.1)."""
        orders = {layer.name: layer.order for layer in self.layers}
        found = [a for a in self.annotations if _covers(a.images, instance_uid, frame_number)]
        return sorted(found, key=lambda a: orders.get(a.layer, 0))

    def layer(self, name: str | None) -> GraphicLayer | None:
        return next((layer for layer in self.layers if layer.name == name), None)

    def display_for(self, instance_uid: str, frame_number: int, base: Display, *,
                    stored_range: tuple[float, float] | None = None) -> Display:
        """``base`` (the image's display) with this state's Modality, VOI and Presentation LUTs in place.

        PS3.4 N.2.1: the presentation state's transformations replace the image's own; the image's
        windows are never used. A Modality LUT module absent from the state keeps the image's
        rescale (states commonly omit it for images without one). With no Softcopy VOI LUT for the
        image, the VOI stage is the identity (PS3.3 C.11.8): given ``stored_range`` (the stored
        values' minimum and maximum), a LINEAR_EXACT window spanning their modality output; else
        no window, and the pipeline's automatic one.
        """
        if self.colour:
            return base  # CSPS: colour images keep their own pipeline (A.33.2)
        frame = base.frame(max(0, min(frame_number - 1, len(base.frames) - 1)))
        if self.modality_lut is not None:
            frame = dataclasses.replace(frame, rescale_slope=1.0, rescale_intercept=0.0, modality_lut=self.modality_lut)
        elif self.modality is not None:
            frame = dataclasses.replace(frame, rescale_slope=self.modality[0], rescale_intercept=self.modality[1],
                                        modality_lut=None)
        voi = self.voi_for(instance_uid, frame_number)
        windows, luts = (voi.windows, voi.voi_luts) if voi is not None else ((), ())
        if not windows and not luts and stored_range is not None:
            windows = (_identity_window(frame.modality_lut, frame.rescale_slope, frame.rescale_intercept,
                                        stored_range),)
        frame = dataclasses.replace(frame, windows=windows, voi_luts=luts)
        shape, lut = base.presentation_lut_shape, base.presentation_lut
        if self.presentation_lut is not None:
            shape, lut = None, self.presentation_lut
        elif self.presentation_lut_shape is not None:
            shape, lut = self.presentation_lut_shape, None
        return dataclasses.replace(base, frames=(frame,), presentation_lut_shape=shape, presentation_lut=lut)


def _covers(scope: Scope, instance_uid: str, frame_number: int) -> bool:
    """Whether an item's Referenced Image Sequence takes in a frame; absent means every image."""
    return not scope or any(uid == instance_uid and (not frames or frame_number in frames) for uid, frames in scope)


def _identity_window(lut: Lut | None, slope: float, intercept: float, stored: tuple[float, float]) -> Window:
    if lut is not None:
        low, high = 0.0, float((1 << lut.bits) - 1)
    else:
        ends = sorted(v * slope + intercept for v in stored)
        low, high = ends[0], ends[1]
    width = max(high - low, 1e-6)
    return Window(center=(low + high) / 2, width=width, function="LINEAR_EXACT")


# -- applying it to a rendered frame ---------------------------------------------------------------


def apply_presentation(image: Array, ps: PresentationState, instance_uid: str, frame_number: int) -> Array:
    """Shutters, overlays, displayed area, spatial transformation and annotations of ``ps`` on one frame.

    ``image`` is the full source frame after the greyscale (or colour) pipeline, uint8 (rows, cols)
    or (rows, cols, 3). The order follows PS3.4 N.2 (Figure N.2-1): after the Presentation LUT
    come the shutter, then overlays and graphic annotations, all in the image's pixel space;
    then the spatial transformation. PS3.3 C.10.4: the Displayed Area corners are "relative to the
    origin of the pixel data before spatial transformation" while naming the pixels shown top left
    and bottom right after it; C.10.6: Image Rotation is applied "before any Image Horizontal Flip".
    PIXEL-unit annotations are drawn after the geometry at the points it maps them to (the same
    pixels as drawing them first, but with thin lines and upright text); DISPLAY-unit ones are
    fractions of the displayed area as shown.
    """
    rows, columns = image.shape[:2]
    annotations = ps.annotations_for(instance_uid, frame_number)
    if ps.shutter is not None and ps.shutter.colour is not None or _coloured(ps, annotations):
        image = as_rgb(image)
    if ps.shutter is not None:
        shutter: Ink = ps.shutter.colour if ps.shutter.colour is not None else ps.shutter.value
        image = paint(image, shutter_mask(ps.shutter, rows, columns), shutter)
    for overlay in ps.overlays:  # PS3.3 C.11.7: shown in the colour of its layer
        image = paint(image, overlay.bitmap.mask(rows, columns), _layer_ink(ps.layer(overlay.layer), image))
    geometry = _geometry(ps, ps.area_for(instance_uid, frame_number), rows, columns)
    image = geometry.apply(image)
    if not annotations:
        return image
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    size = geometry.size
    for annotation in annotations:
        layer = ps.layer(annotation.layer)
        for graphic in annotation.graphics:
            points = [_place(p, graphic.units, geometry, size) for p in graphic.points]
            draw_graphic(draw, graphic, points, _style_ink(graphic.style, layer, image))
        for text in annotation.texts:
            box = None if text.box is None else (_place(text.box[0], text.box_units, geometry, size),
                                                 _place(text.box[1], text.box_units, geometry, size))
            anchor = None if text.anchor is None else _place(text.anchor, text.anchor_units, geometry, size)
            draw_text(canvas, text, box, anchor, _style_ink(text.style, layer, image))
    return np.asarray(canvas)


def _geometry(ps: PresentationState, area: DisplayedArea | None, rows: int, columns: int) -> Geometry:
    """The displayed area (PS3.3 C.10.4) and spatial transformation (C.10.6) as one ``Geometry``."""
    if area is None:
        return Geometry(0, 0, columns, rows, rotation=ps.rotation, flip=ps.flip)
    (c0, r0), (c1, r1) = area.top_left, area.bottom_right
    left, right, top, bottom = min(c0, c1), max(c0, c1), min(r0, r1), max(r0, r1)
    scale_x = scale_y = 1.0
    if area.size_mode == "MAGNIFY" and area.magnification and area.magnification > 0:
        scale_x = scale_y = area.magnification
    aspect = area.aspect_ratio or area.pixel_spacing  # row : column size of a pixel
    if aspect and aspect[0] > 0 and aspect[1] > 0 and aspect[0] != aspect[1]:
        if aspect[0] > aspect[1]:
            scale_y *= aspect[0] / aspect[1]
        else:
            scale_x *= aspect[1] / aspect[0]
    return Geometry(left - 1, top - 1, right - left + 1, bottom - top + 1, scale_x, scale_y, ps.rotation, ps.flip)


def _place(point: Point, units: str, geometry: Geometry, size: tuple[int, int]) -> Point:
    """An annotation point in the output's image relative coordinates (PS3.3 C.10.5.1.1)."""
    if units == "DISPLAY":
        return point[0] * size[0], point[1] * size[1]
    return geometry.point(*point)


def _coloured(ps: PresentationState, annotations: Sequence[Annotation]) -> bool:
    """Whether any annotation on the frame, its layer or an overlay's layer is drawn in colour."""
    for annotation in annotations:
        layer = ps.layer(annotation.layer)
        if layer is not None and layer.colour is not None and (annotation.graphics or annotation.texts):
            return True
        if any(g.style.colour is not None for g in annotation.graphics):
            return True
        if any(t.style.colour is not None for t in annotation.texts):
            return True
    return any((layer := ps.layer(o.layer)) is not None and layer.colour is not None for o in ps.overlays)


def _layer_ink(layer: GraphicLayer | None, image: Array) -> Ink:
    return _style_ink(Style(), layer, image)


def _style_ink(style: Style, layer: GraphicLayer | None, image: Array) -> Ink:
    """The object's own colour, else its layer's recommended colour or grey, else white."""
    colour = style.colour or (layer.colour if layer is not None else None)
    grey = style.grey if style.grey is not None else layer.grey if layer is not None and layer.grey is not None \
        else WHITE
    if image.ndim == 3:
        return colour if colour is not None else (grey, grey, grey)
    return grey


# -- parsing ---------------------------------------------------------------------------------------


def parse_presentation(metadata: Mapping[str, object], bulk: Mapping[str, bytes] | None = None) -> PresentationState:
    """Read a presentation state's DICOM JSON metadata; malformed parts are left out, never an error."""
    ds: dj.Json = metadata
    bulk = bulk or {}
    overlays = _overlays(ds, bulk)
    shutter_group = dj.first_number(ds, "00181623")
    shutter_bitmap = next((o.bitmap for o in overlays if shutter_group is not None
                           and o.bitmap.group == int(shutter_group)), None)
    icc = dj.binary(ds, "00282000", bulk, "00282000")
    slope, intercept = dj.first_number(ds, "00281053"), dj.first_number(ds, "00281052")
    presentation_luts = [lut for item in dj.items(ds, "20500010") if (lut := dj.lut(item)) is not None]
    shape = dj.code(ds, "20500020")
    rotation = int(dj.first_number(ds, "00700042") or 0)
    return PresentationState(
        sop_class_uid=dj.text(ds, "00080016") or "",
        instance_uid=dj.text(ds, "00080018") or "",
        label=dj.text(ds, "00700080"),
        images=_referenced_series(ds),
        modality=(slope, intercept) if slope is not None and intercept is not None and slope != 0 else None,
        modality_lut=next((lut for item in dj.items(ds, "00283000") if (lut := dj.lut(item))), None),
        voi=tuple(_voi(item) for item in dj.items(ds, "00283110")),
        presentation_lut_shape=shape if shape in ("IDENTITY", "INVERSE") else None,
        presentation_lut=presentation_luts[0] if presentation_luts else None,
        rotation=rotation if rotation in (0, 90, 180, 270) else 0,
        flip=dj.code(ds, "00700041") == "Y",
        areas=tuple(area for item in dj.items(ds, "0070005A") if (area := _area(item)) is not None),
        shutter=_shutter(ds, shutter_bitmap),
        layers=tuple(_layer(item) for item in dj.items(ds, "00700060")),
        annotations=tuple(_annotation(item) for item in dj.items(ds, "00700001")),
        overlays=tuple(o for o in overlays if o.layer is not None and o.bitmap is not shutter_bitmap),
        icc_profile_path="00282000" if "00282000" in ds else None,
        icc_profile=icc,
    )


def _scope(item: dj.Json) -> Scope:
    """An item's Referenced Image Sequence (0008,1140) with its Referenced Frame Numbers (0008,1160)."""
    found = []
    for ref in dj.items(item, "00081140"):
        uid = dj.text(ref, "00081155")
        if uid:
            frames = tuple(int(f) for f in dj.numbers(ref, "00081160") or () if f >= 1)
            found.append((uid, frames))
    return tuple(found)


def _referenced_series(ds: dj.Json) -> tuple[ReferencedImage, ...]:
    """Presentation State Relationship (PS3.3 C.11.11): every image of every referenced series, in order."""
    images: list[ReferencedImage] = []
    for series in dj.items(ds, "00081115"):
        series_uid = dj.text(series, "0020000E")
        if series_uid:
            images.extend(ReferencedImage(series_uid, uid, frames) for uid, frames in _scope(series))
    return tuple(images)


def _voi(item: dj.Json) -> SoftcopyVoi:
    """Windows (PS3.3 C.11.2.1.2: LINEAR needs a width of at least 1, the others more than 0) or VOI LUTs."""
    function = dj.code(item, "00281056") or "LINEAR"
    function = function if function in _FUNCTIONS else "LINEAR"
    centers, widths = dj.values(item, "00281050"), dj.values(item, "00281051")
    windows = []
    for raw_center, raw_width in zip(centers, widths, strict=False):
        center, width = dj.number(raw_center), dj.number(raw_width)
        if center is not None and width is not None and (width >= 1 if function == "LINEAR" else width > 0):
            windows.append(Window(center, width, function))
    luts = tuple(lut for lut_item in dj.items(item, "00283010") if (lut := dj.lut(lut_item)) is not None)
    return SoftcopyVoi(_scope(item), tuple(windows), luts)


def _area(item: dj.Json) -> DisplayedArea | None:
    top_left, bottom_right = dj.numbers(item, "00700052"), dj.numbers(item, "00700053")
    if not top_left or not bottom_right or len(top_left) != 2 or len(bottom_right) != 2:
        return None
    mode = dj.code(item, "00700100") or "SCALE TO FIT"
    spacing, aspect = dj.numbers(item, "00700101"), dj.numbers(item, "00700102")
    return DisplayedArea(
        images=_scope(item),
        top_left=(int(top_left[0]), int(top_left[1])),
        bottom_right=(int(bottom_right[0]), int(bottom_right[1])),
        size_mode=mode if mode in _SIZE_MODES else "SCALE TO FIT",
        pixel_spacing=(spacing[0], spacing[1]) if spacing and len(spacing) == 2 else None,
        aspect_ratio=(aspect[0], aspect[1]) if aspect and len(aspect) == 2 else None,
        magnification=dj.first_number(item, "00700103"),
    )


def _shutter(ds: dj.Json, bitmap: Bitmap | None) -> Shutter | None:
    """The Display Shutter module (PS3.3 C.7.6.11); shapes whose attributes are missing are left out."""
    shapes = {str(v).upper() for v in dj.values(ds, "00181600")}
    rectangle = [dj.first_number(ds, tag) for tag in ("00181602", "00181604", "00181606", "00181608")]
    centre, radius = dj.numbers(ds, "00181610"), dj.first_number(ds, "00181612")
    vertices = dj.pairs(ds, "00181620")
    lab = dj.numbers(ds, "00181624")
    shutter = Shutter(
        rectangle=tuple(rectangle) if "RECTANGULAR" in shapes and None not in rectangle else None,  # type: ignore[arg-type]
        circle=(centre[0], centre[1], radius) if "CIRCULAR" in shapes and centre and len(centre) == 2
        and radius is not None else None,
        polygon=vertices if "POLYGONAL" in shapes and len(vertices) >= 3 else (),
        bitmap=bitmap if "BITMAP" in shapes else None,
        value=grey8(dj.first_number(ds, "00181622") or 0),
        colour=lab_to_rgb(lab) if lab and len(lab) == 3 else None,
    )
    if shutter.rectangle is None and shutter.circle is None and not shutter.polygon and shutter.bitmap is None:
        return None
    return shutter


def _layer(item: dj.Json) -> GraphicLayer:
    grey, lab = dj.first_number(item, "00700066"), dj.numbers(item, "00700401")
    return GraphicLayer(
        name=dj.text(item, "00700002") or "",
        order=int(dj.first_number(item, "00700062") or 0),
        grey=grey8(grey) if grey is not None else None,
        colour=lab_to_rgb(lab) if lab and len(lab) == 3 else None,
    )


def _style(item: dj.Json, sequence: str, colour_tag: str) -> Style:
    """A Line Style (0070,0232) or Text Style (0070,0231) item's colour and thickness (PS3.3 C.10.5.1.2)."""
    style = next(iter(dj.items(item, sequence)), None)
    if style is None:
        return Style()
    lab = dj.numbers(style, colour_tag)
    thickness = dj.first_number(style, "00700253")
    return Style(colour=lab_to_rgb(lab) if lab and len(lab) == 3 else None,
                 thickness=thickness if thickness and thickness > 0 else 1.0)


def _annotation(item: dj.Json) -> Annotation:
    graphics = []
    for obj in dj.items(item, "00700009"):
        kind = dj.code(obj, "00700023")
        points = dj.pairs(obj, "00700022")
        if kind in _GRAPHIC_TYPES and points:
            graphics.append(Graphic(kind, points, dj.code(obj, "00700005") or "PIXEL",
                                    dj.code(obj, "00700024") == "Y", _style(obj, "00700232", "00700251")))
    texts = []
    for obj in dj.items(item, "00700008"):
        value = dj.values(obj, "00700006")
        top_left, bottom_right, anchor = dj.pairs(obj, "00700010"), dj.pairs(obj, "00700011"), dj.pairs(obj, "00700014")
        if not value or not (top_left and bottom_right or anchor):
            continue
        texts.append(Text(
            text=str(value[0]).rstrip(),
            box=(top_left[0], bottom_right[0]) if top_left and bottom_right else None,
            box_units=dj.code(obj, "00700003") or "PIXEL",
            anchor=anchor[0] if anchor else None,
            anchor_units=dj.code(obj, "00700004") or "PIXEL",
            anchor_visible=dj.code(obj, "00700015") == "Y",
            justification=dj.code(obj, "00700012") or "LEFT",
            style=_style(obj, "00700231", "00700241"),
        ))
    return Annotation(dj.text(item, "00700002") or "", _scope(item), tuple(graphics), tuple(texts))


def _overlays(ds: dj.Json, bulk: Mapping[str, bytes]) -> list[Overlay]:
    """Overlay planes of the state itself (groups 6000-601E, PS3.3 C.9.2) with their activation layer."""
    found = []
    for group in range(0x6000, 0x6020, 2):
        prefix = f"{group:04X}"
        rows, columns = dj.first_number(ds, prefix + "0010"), dj.first_number(ds, prefix + "0011")
        origin = dj.numbers(ds, prefix + "0050") or [1.0, 1.0]
        data = dj.binary(ds, prefix + "3000", bulk, prefix + "3000")
        if not rows or not columns or data is None or len(origin) != 2:
            continue
        bitmap = Bitmap(int(rows), int(columns), (int(origin[0]), int(origin[1])), data, group)
        found.append(Overlay(bitmap, dj.text(ds, prefix + "1001")))
    return found
