"""Volumetric Presentation States read from their DICOM JSON, as Rendered MPR / 3D targets (PS3.18 §8.3.5.3).

Read from the instance's stored metadata at request time (PS3.3 A.80, C.11.23-C.11.30; a few hundred
bytes of attributes): its volume inputs (Volumetric Presentation State Input Sequence, each with its
Referenced Image Sequence), its MPR geometry (Multi-Planar Reconstruction Geometry Module) or Volume
Render Geometry (Viewpoint Position / LookAt / Up), and its VOI. A state that lacks what rendering needs
is 400 naming it.

SOP Class UIDs as PS3.4 Annex B lists them (checked against pydicom's UID dictionary): 11.6 Grayscale and
11.7 Compositing Planar MPR; 11.9 Volume Rendering, 11.10 Segmented and 11.11 Multiple Volume Rendering.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import BadRequest
from ..model.appearance import Window
from ..model.rendering import Vector
from . import dicomjson as dj

PLANAR_MPR_VPS = {"1.2.840.10008.5.1.4.1.1.11.6": "Grayscale Planar MPR VPS",
                  "1.2.840.10008.5.1.4.1.1.11.7": "Compositing Planar MPR VPS"}
VOLUME_RENDERING_VPS = {"1.2.840.10008.5.1.4.1.1.11.9": "Volume Rendering VPS",
                        "1.2.840.10008.5.1.4.1.1.11.10": "Segmented Volume Rendering VPS",
                        "1.2.840.10008.5.1.4.1.1.11.11": "Multiple Volume Rendering VPS"}
VOLUMETRIC_STATES = PLANAR_MPR_VPS | VOLUME_RENDERING_VPS

INPUT_SEQUENCE = "00701201"  # Volumetric Presentation State Input Sequence
REFERENCED_IMAGES = "00081140"  # Referenced Image Sequence
REFERENCED_INSTANCE = "00081155"
REFERENCED_FRAMES = "00081160"
MPR_THICKNESS_TYPE, MPR_SLAB = "00701502", "00701503"
MPR_TOP_LEFT, MPR_WIDTH_DIRECTION, MPR_WIDTH = "00701505", "00701507", "00701508"
MPR_HEIGHT_DIRECTION, MPR_HEIGHT = "00701511", "00701512"
VIEWPOINT = ("00701603", "00701604", "00701605")  # Viewpoint Position, LookAt Point, Up Direction
SOFTCOPY_VOI = "00283110"
WINDOW_CENTER, WINDOW_WIDTH, VOI_FUNCTION = "00281050", "00281051", "00281056"


@dataclass(frozen=True, slots=True)
class VolumetricState:
    """What rendering needs from a VPS: inputs, camera, size of the view (mm), slab and VOI."""

    sop_class_uid: str
    inputs: tuple[tuple[str, tuple[int, ...]], ...]  # (SOP Instance UID, frame numbers; empty = all)
    viewpoint: tuple[Vector, Vector, Vector] | None  # position, lookat, up
    view_mm: tuple[float, float] | None  # MPR View Width, Height
    slab: float | None  # MPR Slab Thickness when the thickness type is SLAB
    window: Window | None

    @property
    def planar_mpr(self) -> bool:
        return self.sop_class_uid in PLANAR_MPR_VPS


def _vector(item: dj.Json, tag: str, what: str) -> Vector | None:
    if not dj.values(item, tag):
        return None
    found = dj.numbers(item, tag)
    if found is None or len(found) != 3:
        raise BadRequest(f"the volumetric presentation state has an invalid {what}: three numbers expected")
    return (found[0], found[1], found[2])


def _window(item: dj.Json) -> Window | None:
    """VOI of an input item or of the state: its Softcopy VOI LUT Sequence, else Window Center/Width.

    UNVERIFIED: where PS3.3 puts a grayscale VPS's VOI was not retrieved; both places are read.
    """
    for source in [*dj.items(item, SOFTCOPY_VOI), item]:
        center, width = dj.first_number(source, WINDOW_CENTER), dj.first_number(source, WINDOW_WIDTH)
        if center is not None and width is not None and width > 0:
            function = dj.code(source, VOI_FUNCTION) or "LINEAR"
            return Window(center, max(width, 1.0) if function == "LINEAR" else width, function)
    return None


def parse_state(sop_class_uid: str, metadata: dj.Json) -> VolumetricState:
    """The rendering-relevant content of a stored VPS, or 400 saying what it lacks."""
    inputs: list[tuple[str, tuple[int, ...]]] = []
    window = None
    for item in dj.items(metadata, INPUT_SEQUENCE):
        window = window or _window(item)
        for reference in dj.items(item, REFERENCED_IMAGES):
            if (instance_uid := dj.text(reference, REFERENCED_INSTANCE)) is not None:
                inputs.append((instance_uid, tuple(int(n) for n in dj.numbers(reference, REFERENCED_FRAMES) or ())))
    if not inputs:
        raise BadRequest("the volumetric presentation state references no image in its Volumetric Presentation"
                         " State Input Sequence (0070,1201)")
    window = window or _window(metadata)
    view_mm = slab = None
    if sop_class_uid in PLANAR_MPR_VPS:
        viewpoint, view_mm = _mpr_camera(metadata)
        if dj.code(metadata, MPR_THICKNESS_TYPE) == "SLAB":
            slab = dj.first_number(metadata, MPR_SLAB)
    else:
        triple = [_vector(metadata, tag, name) for tag, name in zip(
            VIEWPOINT, ("Viewpoint Position", "Viewpoint LookAt Point", "Viewpoint Up Direction"), strict=True)]
        viewpoint = None
        if all(v is not None for v in triple):
            position, lookat, up = triple
            assert position is not None and lookat is not None and up is not None
            viewpoint = (position, lookat, up)
    return VolumetricState(sop_class_uid, tuple(inputs), viewpoint, view_mm, slab, window)


def _mpr_camera(metadata: dj.Json) -> tuple[tuple[Vector, Vector, Vector] | None, tuple[float, float] | None]:
    """The camera of a planar MPR (PS3.17 XXX.8): look at the centre of the MPR rectangle, along X × Y.

    The height direction runs down the view from the top left hand corner (as an image's column
    direction does), so the camera's up is its opposite (our reading; UNVERIFIED).
    """
    corner = _vector(metadata, MPR_TOP_LEFT, "MPR Top Left Hand Corner")
    x_dir = _vector(metadata, MPR_WIDTH_DIRECTION, "MPR View Width Direction")
    y_dir = _vector(metadata, MPR_HEIGHT_DIRECTION, "MPR View Height Direction")
    width, height = dj.first_number(metadata, MPR_WIDTH), dj.first_number(metadata, MPR_HEIGHT)
    if corner is None or x_dir is None or y_dir is None or not width or not height:
        return None, None
    x, y = np.asarray(x_dir, dtype=np.float64), np.asarray(y_dir, dtype=np.float64)
    if np.linalg.norm(x) == 0 or np.linalg.norm(y) == 0 or abs(float(np.dot(x, y))) > 1e-3 * np.linalg.norm(x) * \
            np.linalg.norm(y):
        raise BadRequest("the MPR View Width and Height Directions of the state are not orthogonal unit vectors")
    x, y = x / np.linalg.norm(x), y / np.linalg.norm(y)
    lookat = np.asarray(corner) + x * width / 2 + y * height / 2
    direction = np.cross(x, y)
    position = lookat - direction * max(width, height)
    return ((_tuple(position), _tuple(lookat), _tuple(-y)), (float(width), float(height)))


def _tuple(v: Any) -> Vector:
    return (float(v[0]), float(v[1]), float(v[2]))
