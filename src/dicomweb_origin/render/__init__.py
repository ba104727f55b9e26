"""Rendering of frames to displayable images (PS3.18 §8.3.5, PS3.4 N.2): pure functions over arrays.

Order, as if the parameters were a presentation state: ``display_image`` (Modality LUT, VOI,
Presentation LUT or colour conversion) → ``apply_viewport`` → ``burn_in`` / ``annotate`` →
``apply_icc`` → ``encode``.
"""

from __future__ import annotations

from .annotate import PLACEMENT, annotate, annotation_lines, burn_in
from .encode import DEFAULT_QUALITY, ENCODERS, Encoder, encode
from .icc import apply_icc, profile
from .pipeline import display_image, render_frame
from .viewport import apply_viewport

__all__ = [
    "DEFAULT_QUALITY", "ENCODERS", "Encoder", "PLACEMENT", "annotate", "annotation_lines", "apply_icc",
    "apply_viewport", "burn_in", "display_image", "encode", "profile", "render_frame",
]
