"""Rendering of frames to displayable images (PS3.18 §8.3.5.1, PS3.4 N.2): pure functions over arrays.

In the order of the PS3.4 N.2 pipeline, as if the parameters were a presentation state:
``display_image`` (Modality LUT, VOI, Presentation LUT or colour conversion; a presentation state's
shutters, overlays, displayed area and graphics in ``presentation``), then ``Finish``: ``apply_icc``
(the colour transformation), ``apply_viewport`` (the spatial transformation), ``burn_in`` (annotation,
after every other step, §8.3.5.1.1) and ``encode``.
"""

from __future__ import annotations

from .annotate import PLACEMENT, annotate, annotation_lines, burn_in
from .encode import DEFAULT_QUALITY, ENCODERS, Encoder, encode
from .finish import ANIMATED, ICC_TYPES, Finish, check_icc
from .icc import apply_icc, profile
from .pipeline import display_image, render_frame
from .viewport import apply_viewport

__all__ = [
    "ANIMATED", "DEFAULT_QUALITY", "ENCODERS", "Encoder", "Finish", "ICC_TYPES", "PLACEMENT", "annotate",
    "annotation_lines", "apply_icc", "apply_viewport", "burn_in", "check_icc", "display_image", "encode", "profile",
    "render_frame",
]
