"""Rendered media types (PS3.18 §8.7.4): one table of encoders, Pillow underneath.

Defaults: JPEG quality 90 (baseline, 8 bits, Huffman; 4:2:0 chroma below quality 90, 4:4:4 from
90 up); WebP quality 90; JPEG 2000 without ``quality`` is lossless, with it a PSNR target of
20 + 0.3 × quality dB; GIF frames last ``frame_time_ms`` (default 100 ms, GIF rounds to 10 ms)
and loop forever, identical consecutive frames being merged into one longer frame.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..errors import BadRequest, NotAcceptable
from .gif import gif_chunks

Array = np.ndarray
DEFAULT_QUALITY = 90
DEFAULT_FRAME_TIME_MS = 100.0


@dataclass(frozen=True, slots=True)
class Encoder:
    """What one rendered media type can carry, and the function that writes it."""

    write: Callable[[Sequence[Image.Image], int | None, float | None, bytes | None], bytes]
    multiframe: bool = False  # several images in one representation (animated)
    lossy: bool = False  # takes ``quality`` (§8.3.5.1.2)
    icc: bool = False  # can embed an ICC profile (§8.3.5.1.5)


def _save(image: Image.Image, format: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, format=format, **{k: v for k, v in options.items() if v is not None})
    return out.getvalue()


def _jpeg(images: Sequence[Image.Image], quality: int | None, _: float | None, icc: bytes | None) -> bytes:
    q = quality or DEFAULT_QUALITY
    # PS3.18 §8.7.4: baseline (SOF0) 8-bit Huffman: no progressive, no arithmetic coding
    return _save(images[0], "JPEG", quality=q, optimize=False, progressive=False,
                 subsampling=0 if q >= 90 else 2, icc_profile=icc)


def _png(images: Sequence[Image.Image], _: int | None, __: float | None, icc: bytes | None) -> bytes:
    return _save(images[0], "PNG", compress_level=4, icc_profile=icc)


def _webp(images: Sequence[Image.Image], quality: int | None, _: float | None, icc: bytes | None) -> bytes:
    return _save(images[0], "WEBP", quality=quality or DEFAULT_QUALITY, method=4, icc_profile=icc)


def _gif(images: Sequence[Image.Image], _: int | None, frame_time_ms: float | None, __: bytes | None) -> bytes:
    # One writer for every GIF, still or animated: frame by frame (gif.py), identical consecutive frames merged
    # into one frame of their summed delay (timing is kept, the frame count may be lower).
    return b"".join(gif_chunks((np.asarray(image) for image in images), frame_time_ms))


def _jp2_with_icc(jp2: bytes, icc: bytes) -> bytes:
    """Replace the JP2 header's enumerated colour box by a restricted ICC one (ISO 15444-1 I.5.3.3)."""
    colr = struct.pack(">I", 11 + len(icc)) + b"colr" + bytes([2, 0, 0]) + icc
    out, i = b"", 0
    while i < len(jp2):
        length, kind = struct.unpack(">I4s", jp2[i:i + 8])
        length = length or len(jp2) - i
        box = jp2[i:i + length]
        if kind == b"jp2h":
            inner, j = b"", 8
            while j < len(box):
                sub_length, sub_kind = struct.unpack(">I4s", box[j:j + 8])
                inner += colr if sub_kind == b"colr" \
                    else box[j:j + sub_length]
                j += sub_length
            box = struct.pack(">I", 8 + len(inner)) + b"jp2h" + inner
        out += box
        i += length
    return out


def _jp2(images: Sequence[Image.Image], quality: int | None, _: float | None, icc: bytes | None) -> bytes:
    options: dict[str, Any] = {"no_jp2": False}
    if quality is not None and quality < 100:
        options |= {"irreversible": True, "quality_mode": "dB", "quality_layers": [20 + 0.3 * quality]}
    data = _save(images[0], "JPEG2000", **options)
    return _jp2_with_icc(data, icc) if icc else data


ENCODERS: dict[str, Encoder] = {
    "image/jpeg": Encoder(_jpeg, lossy=True, icc=True),
    "image/png": Encoder(_png, icc=True),
    "image/gif": Encoder(_gif, multiframe=True),
    "image/jp2": Encoder(_jp2, lossy=True, icc=True),
    "image/webp": Encoder(_webp, lossy=True, icc=True),
}


def encode(images: Sequence[Array], media_type: str, *, quality: int | None = None,
           frame_time_ms: float | None = None, icc_profile: bytes | None = None) -> bytes:
    """Encode uint8 (rows, cols[, 3]) images as one representation of ``media_type``."""
    encoder = ENCODERS.get(media_type)
    if encoder is None:
        raise NotAcceptable(f"{media_type} is not a rendered media type this server writes")
    if not images:
        raise BadRequest(f"no image to encode as {media_type}")
    if len(images) > 1 and not encoder.multiframe:
        raise NotAcceptable(f"{media_type} holds one image, not {len(images)}")
    if quality is not None and not 1 <= quality <= 100:
        raise BadRequest(f"quality {quality} is not an integer from 1 to 100")
    if icc_profile is not None and not encoder.icc:
        raise BadRequest(f"{media_type} cannot carry an ICC profile")  # §8.3.5.1.5
    pictures = [Image.fromarray(np.ascontiguousarray(image)) for image in images]
    return encoder.write(pictures, quality if encoder.lossy else None, frame_time_ms, icc_profile)
