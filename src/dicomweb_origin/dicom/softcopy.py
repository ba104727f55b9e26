"""Grayscale and Color Softcopy Presentation States (PS3.3 A.33.1, A.33.2) read from their DICOM JSON.

``parse_presentation`` reads a presentation state's stored metadata (PS3.18 Annex F) into the frozen
``render.presentation.PresentationState`` that rendering applies to the images it references. Values
too large for inline metadata arrive as BulkDataURIs (F.2.7): pass their bytes in ``bulk`` keyed by
tag path (``"60003000"`` for overlay data, ``"00282000"`` for the ICC profile). Malformed parts are
left out, never an error: a state with one broken attribute still renders the rest.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..model.appearance import Window
from ..render.graphics import Bitmap, Graphic, Shutter, Style, Text, grey8, lab_to_rgb
from ..render.presentation import (
    Annotation,
    DisplayedArea,
    GraphicLayer,
    Overlay,
    PresentationState,
    ReferencedImage,
    Scope,
    SoftcopyVoi,
)
from . import dicomjson as dj

_FUNCTIONS = frozenset({"LINEAR", "LINEAR_EXACT", "SIGMOID"})  # VOI LUT Function (PS3.3 C.11.2.1.3)
_SIZE_MODES = frozenset({"SCALE TO FIT", "TRUE SIZE", "MAGNIFY"})  # PS3.3 C.10.4.1.1
_GRAPHIC_TYPES = frozenset({"POINT", "POLYLINE", "INTERPOLATED", "CIRCLE", "ELLIPSE"})  # C.10.5.1.2


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
