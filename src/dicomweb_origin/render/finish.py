"""The finishing steps of every rendering: colour management, viewport, annotation, encoding (PS3.18 §8.3.5.1).

The parameters apply "as if they were a presentation state" (§8.3.5.1), so in the order of the PS3.4 N.2 pipeline
(Figure N.2-1): the ICC profile's colour transformation belongs to the pixel values (the profile connection space
comes before the spatial transformations); the viewport is the spatial transformation and displayed area
(§8.3.5.1.3); annotation is applied after every other step (§8.3.5.1.1); the encoder writes the result with the
profile to embed. Rendered and Thumbnail (retrieve/rendered.py) and Rendered MPR / 3D (retrieve/volumes.py) both
finish their images here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import BadRequest
from ..model.appearance import Window
from ..model.rendering import Viewport
from . import video
from .annotate import burn_in
from .encode import ENCODERS, encode
from .gif import gif_chunks
from .icc import apply_icc
from .viewport import apply_viewport

Array = np.ndarray
ICC_TYPES = frozenset(t for t, e in ENCODERS.items() if e.icc)  # media types that can embed a profile (§8.3.5.1.5)
ANIMATED = frozenset({"image/gif", "video/mp4"})  # media types whose one representation holds every frame


def check_icc(media_type: str, iccprofile: str | None) -> None:
    """400 for a profile asked for with a media type that cannot carry one (§8.3.5.1.5)."""
    if media_type not in ICC_TYPES and iccprofile not in (None, "no"):
        raise BadRequest(f"iccprofile={iccprofile} cannot be honoured: {media_type} carries no ICC profile")


@dataclass(frozen=True, slots=True)
class Finish:
    """What the finishing steps of one rendering take, the same for each of its frames."""

    media_type: str
    iccprofile: str | None = None  # the request's iccprofile value
    source_profile: bytes | None = None  # the instance's ICC Profile (0028,2000), if any
    viewport: Viewport | None = None
    annotation: tuple[str, ...] = ()  # annotation keywords; drawn from ``metadata``
    metadata: Mapping[str, Any] | None = None  # the instance's DICOM JSON
    quality: int | None = None

    def image(self, image: Array, frame_number: int | None = None,
              window: Window | None = None) -> tuple[Array, bytes | None]:
        """The pixels to encode and the ICC profile to embed (None: none)."""
        profile: bytes | None = None
        if self.media_type in ICC_TYPES:
            image, profile = apply_icc(image, self.source_profile, self.iccprofile)
        image = apply_viewport(image, self.viewport)
        if self.annotation and self.metadata is not None:
            image = burn_in(image, self.metadata, self.annotation, frame_number=frame_number, window=window)
        return image, profile

    def still(self, image: Array, frame_number: int | None = None, window: Window | None = None) -> bytes:
        """One image, finished and encoded."""
        image, profile = self.image(image, frame_number, window)
        return encode([image], self.media_type, quality=self.quality, icc_profile=profile)

    def animation(self, frames: Iterable[tuple[Array, int | None, Window | None]],
                  frame_time_ms: float) -> Iterator[bytes]:
        """An animated GIF or an MP4 of (image, frame number, window) frames, finished and encoded one at a time."""
        images = (self.image(image, number, window)[0] for image, number, window in frames)
        if self.media_type == "video/mp4":
            return video.mp4_chunks(images, frame_time_ms, self.quality)
        return gif_chunks(images, frame_time_ms)
