"""Volumes from frames and their renderings (PS3.18 §10.4.1.1.7-8, §8.3.5.3; PS3.3 C.11.23.1): pure numpy/scipy.

``assemble`` checks and stacks frames into a ``Volume`` (array + LPS affine); a ``Camera`` (from an orientation
keyword or the viewpoint triple) then gives planar or curved MPR (``mpr``, ``curved_mpr``), intensity projections
(``project``) and shaded volume renderings (``volume_render``); ``swivel_cameras`` and ``curve_cameras`` give the
frames of the animations. The geometry convention is stated once, in ``geometry``. The renderings start no thread:
a ``Spread`` from the caller shares their work with the caller's executor (``spread``).
"""

from __future__ import annotations

from .assemble import TOLERANCE_MM, Layout, assemble, fill, layout
from .geometry import (
    MAX_DEFAULT_SIDE,
    ORIENTATIONS,
    Camera,
    Slice,
    Volume,
    camera_for_orientation,
    camera_from_triple,
    default_size,
    swivel_cameras,
)
from .mpr import SLAB_METHODS, curve_cameras, curved_mpr, mpr
from .project import PROJECTIONS, project
from .raycast import CT_TRANSFER, TransferFunction, volume_render
from .spread import SERIAL, Spread

__all__ = [
    "CT_TRANSFER", "MAX_DEFAULT_SIDE", "ORIENTATIONS", "PROJECTIONS", "SERIAL", "SLAB_METHODS", "TOLERANCE_MM",
    "Camera", "Layout", "Slice", "Spread", "TransferFunction", "Volume", "assemble", "camera_for_orientation",
    "camera_from_triple", "curve_cameras", "curved_mpr", "default_size", "fill", "layout", "mpr", "project",
    "swivel_cameras", "volume_render",
]
