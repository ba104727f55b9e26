"""Grayscale and Color Softcopy Presentation States (PS3.3 A.33.1, A.33.2) applied to the images they reference.

``dicom.softcopy.parse_presentation`` reads a state's stored DICOM JSON into a frozen ``PresentationState``.
Rendering one referenced frame then takes two calls around the basic pipeline:

1. ``ps.display_for(instance_uid, frame_number, display)``: the image's ``Display`` with the
   state's Modality LUT, Softcopy VOI LUT and Presentation LUT in place of the image's own
   (PS3.4 N.2.1: the presentation state's values apply, not the image's);
2. ``apply_presentation(image, ps, instance_uid, frame_number)`` on the 8-bit result: shutters,
   overlays, displayed area, spatial transformation, graphic and text annotations.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw

from ..model.appearance import Display, Lut, Window
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
    paint,
    shutter_mask,
)

Array = np.ndarray
Scope = tuple[tuple[str, tuple[int, ...]], ...]  # (instance UID, frames; () = all); () = every image
COLOR_SOFTCOPY = "1.2.840.10008.5.1.4.1.1.11.2"
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
