"""Encode one decoded frame in a transfer syntax, and say beforehand which encodings are possible.

Encoders go through pydicom where it has them (RLE, JPEG-LS, JPEG 2000) and imagecodecs for the
rest (JPEG, HTJ2K); no codec is written here. The table ``ENCODERS`` says which function encodes
each syntax, whether it is lossy and what photometric interpretation its bitstream holds;
``_PROFILES`` and ``_ENCODER_LIMITS`` say which pixels it may take (PS3.5 §8.2).

Rules this module keeps:

* Lossless data never comes out lossy unless the target syntax is a lossy one, and lossy data
  stays marked lossy whatever the target (PS3.3 C.7.6.1.1.5: once lossy, always lossy).
* The returned ``PixelDescription`` says what the bitstream holds (PS3.5 §8.2): RGB encoded
  with a multi-component transform is YBR_RCT (reversible) or YBR_ICT (irreversible); RGB in
  JPEG baseline is YBR_FULL_422.

Known limits: the HTJ2K encoder (OpenJPH via imagecodecs) writes the container precision
(8 or 16 bits) in the SIZ marker, not Bits Stored; decoders handle that, and Bits Stored is
left unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from pydicom.pixels import get_encoder  # type: ignore[attr-defined]
from pydicom.pixels.encoders.base import ENCODING_PROFILES
from pydicom.pixels.processing import convert_color_space
from pydicom.pixels.utils import pack_bits

from ..errors import NotAcceptable
from ..model.media import DEFLATED_EXPLICIT_VR_LE, EXPLICIT_VR_BE, EXPLICIT_VR_LE, IMPLICIT_VR_LE
from ..model.stored import PixelDescription
from .pixels import (
    NATIVE_SYNTAXES,
    Array,
    codec_failure,
    runner_options,
    short_message,
    syntax_name,
    video_reason,
)
from .syntaxes import (
    HTJ2K,
    HTJ2K_LOSSLESS,
    HTJ2K_RPCL,
    J2K,
    J2K_LOSSLESS,
    J2K_PART2,
    J2K_PART2_LOSSLESS,
    JPEG_BASELINE,
    JPEG_EXTENDED,
    JPEG_LOSSLESS,
    JPEG_LOSSLESS_SV1,
    JPEG_LS_LOSSLESS,
    JPEG_LS_NEAR,
    RLE_LOSSLESS,
)

try:  # JPEG and HTJ2K encoders; pydicom has none for these syntaxes
    import imagecodecs
except ImportError:  # pragma: no cover - a declared dependency
    imagecodecs = None  # type: ignore[assignment]

__all__ = ["ENCODERS", "EncodedFrame", "can_encode", "encode_frame"]

# Lossy settings, chosen for ~50 dB PSNR relative to the frame's own value range.
JPEG_QUALITY = 90
JPEG_LS_NEAR_ERROR = 2  # NEAR: the largest absolute error per sample
LOSSY_PSNR_DB = 50.0  # J2K rate control target, relative to the frame's value range
HTJ2K_STEPS_PER_RANGE = 128  # HTJ2K quantisation step = range / this (at least 1 grey level)


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One frame in a transfer syntax, with what a response or a dataset needs to describe it."""

    data: bytes  # native little-endian bytes, or one bare compressed bitstream (no item tags)
    transfer_syntax_uid: str
    pixel: PixelDescription  # describes ``data``; number_of_frames is 1
    lossy: bool  # these pixels went through (or came from) lossy compression
    lossy_method: str | None = None  # (0028,2114) value when *this* step compressed lossily
    lossy_ratio: float | None = None  # (0028,2112) value for this step: uncompressed / compressed


# ---------------------------------------------------------------------------------------------
# Encoders: array + description -> bitstream. ``pi`` is the photometric the bitstream will hold.
# Encoders: array + description -> bitstream. ``pi`` is the photometric the bitstream will hold.

EncodeFunction = Callable[[Array, PixelDescription, str], bytes]



def _value_range(arr: Array) -> float:
    return max(float(arr.max()) - float(arr.min()), 1.0)


def _encode_native(arr: Array, pixel: PixelDescription, pi: str) -> bytes:
    if pixel.bits_allocated == 1:
        return pack_bits(arr, pad=False)
    dtype = np.dtype(f"<{arr.dtype.kind}{pixel.bits_allocated // 8}")
    return np.ascontiguousarray(arr, dtype=dtype).tobytes()


def _pydicom_encoder(uid: str, **fixed: Any) -> EncodeFunction:
    def encode(arr: Array, pixel: PixelDescription, pi: str) -> bytes:
        options = runner_options(replace(pixel, planar_configuration=0), pi) | fixed
        return bytes(get_encoder(uid).encode(arr, **options))

    return encode


def _encode_j2k_lossy(arr: Array, pixel: PixelDescription, pi: str) -> bytes:
    # openjpeg's PSNR target is relative to the nominal range 2**bits_stored - 1; a CT using a
    # tenth of its 16 bits would be crushed, so aim relative to the values actually present.
    nominal = 2.0**pixel.bits_stored - 1
    psnr = LOSSY_PSNR_DB + 20 * math.log10(nominal / _value_range(arr))
    return _pydicom_encoder(J2K, j2k_psnr=[round(psnr, 2)])(arr, pixel, pi)


def _encode_jls_near(arr: Array, pixel: PixelDescription, pi: str) -> bytes:
    if pixel.pixel_representation:
        # JPEG-LS has no sign: pydicom refuses signed values within NEAR of the extremes,
        # since the error could wrap them; clipping moves them by at most NEAR.
        top = 2 ** (pixel.bits_stored - 1) - 1 - JPEG_LS_NEAR_ERROR
        arr = np.clip(arr, -top - 1, top).astype(arr.dtype)
    return _pydicom_encoder(JPEG_LS_NEAR, jls_error=JPEG_LS_NEAR_ERROR)(arr, pixel, pi)


def _imagecodecs() -> Any:
    if imagecodecs is None:  # pragma: no cover
        raise RuntimeError("imagecodecs is not installed")
    return imagecodecs


def _encode_jpeg_lossy(arr: Array, pixel: PixelDescription, pi: str) -> bytes:
    codecs = _imagecodecs()
    if pixel.samples_per_pixel == 3:
        if pixel.photometric_interpretation != "RGB":
            arr = convert_color_space(arr, pixel.photometric_interpretation, "RGB")
        # YCbCr with 2:1 horizontal chroma subsampling is what YBR_FULL_422 means (PS3.3 C.7.6.3.1.2)
        return bytes(codecs.jpeg8_encode(arr, level=JPEG_QUALITY, colorspace="RGB",
                                         outcolorspace="YCBCR", subsampling="422"))
    return bytes(codecs.jpeg8_encode(arr, level=JPEG_QUALITY, bitspersample=pixel.bits_stored))


def _encode_jpeg_lossless(arr: Array, pixel: PixelDescription, pi: str) -> bytes:
    # Process 14 has no sign: store the two's complement bit pattern within Bits Stored and let
    # the decoder sign-extend from Pixel Representation (what pydicom's decoder does).
    unsigned = arr.view(arr.dtype.str.replace("i", "u")) & ((1 << pixel.bits_stored) - 1)
    space = "RGB" if pi == "RGB" else None  # RGB component IDs: decoders apply no colour transform
    return bytes(_imagecodecs().jpeg8_encode(
        unsigned, lossless=True, predictor=1, bitspersample=pixel.bits_stored,
        colorspace=space, outcolorspace=space))


def _htj2k_encoder(*, reversible: bool, rpcl: bool = False) -> EncodeFunction:
    def encode(arr: Array, pixel: PixelDescription, pi: str) -> bytes:
        options: dict[str, Any] = {"reversible": reversible, "rgb": pi in ("YBR_RCT", "YBR_ICT")}
        if not reversible:
            # ``level`` is OpenJPH's base quantisation step relative to the container's range.
            step = max(1.0, _value_range(arr) / HTJ2K_STEPS_PER_RANGE)
            options["level"] = step / 2.0 ** (8 * arr.dtype.itemsize)
        if rpcl:
            # PS3.5 §8.2.14: RPCL order (OpenJPH's default), TLM markers, and enough
            # decompositions for a base resolution of at most 64 (OpenJPH's default is 5).
            levels = max(0, math.ceil(math.log2(max(pixel.rows, pixel.columns) / 64)))
            options |= {"tlm": True, "tilepart": 1, "resolutions": levels if levels > 5 else None}
        return bytes(_imagecodecs().htj2k_encode(arr, **options))

    return encode


@dataclass(frozen=True, slots=True)
class _Codec:
    encode: EncodeFunction
    lossy_method: str | None = None  # (0028,2114) Defined Term when the codec is lossy
    bitstream_pi: tuple[tuple[str, str], ...] = ()  # input photometric -> what the bitstream holds
    needs_imagecodecs: bool = False


_UNRELIABLE = {(JPEG_LOSSLESS, "YBR_FULL"), (JPEG_LOSSLESS_SV1, "YBR_FULL")}
_HT_PROFILES = [
    ("MONOCHROME1", 1, (0, 1), (8, 16), range(1, 17)),
    ("MONOCHROME2", 1, (0, 1), (8, 16), range(1, 17)),
    ("YBR_FULL", 3, (0,), (8, 16), range(1, 17)),
]
_HT_LOSSLESS_PROFILES = [*_HT_PROFILES, ("PALETTE COLOR", 1, (0,), (8, 16), range(1, 17)),
                         ("YBR_RCT", 3, (0,), (8, 16), range(1, 17))]
# (Photometric, Samples per Pixel, Pixel Representations, Bits Allocated, Bits Stored): PS3.5 §8.2
# YBR_FULL is left out of lossless JPEG: pylibjpeg-libjpeg colour-converts 3-component streams
# without RGB component IDs, so such frames would not decode to the source pixels.
_PROFILES: dict[str, list[Any]] = {  # rows: (photometric, samples, representations, allocated, stored)
    **{str(uid): [row for row in rows if (uid, row[0]) not in _UNRELIABLE]
       for uid, rows in ENCODING_PROFILES.items()},
    HTJ2K_LOSSLESS: _HT_LOSSLESS_PROFILES,
    HTJ2K_RPCL: _HT_LOSSLESS_PROFILES,
    HTJ2K: [*_HT_PROFILES, ("YBR_ICT", 3, (0,), (8, 16), range(1, 17))],
}

_native = _Codec(_encode_native)
_RCT = (("RGB", "YBR_RCT"),)
_ICT = (("RGB", "YBR_ICT"),)
ENCODERS: dict[str, _Codec] = {
    EXPLICIT_VR_LE: _native,
    IMPLICIT_VR_LE: _native,
    DEFLATED_EXPLICIT_VR_LE: _native,
    RLE_LOSSLESS: _Codec(_pydicom_encoder(RLE_LOSSLESS)),
    JPEG_BASELINE: _Codec(_encode_jpeg_lossy, "ISO_10918_1",
                          (("RGB", "YBR_FULL_422"), ("YBR_FULL", "YBR_FULL_422")), True),
    JPEG_EXTENDED: _Codec(_encode_jpeg_lossy, "ISO_10918_1", needs_imagecodecs=True),
    JPEG_LOSSLESS: _Codec(_encode_jpeg_lossless, needs_imagecodecs=True),
    JPEG_LOSSLESS_SV1: _Codec(_encode_jpeg_lossless, needs_imagecodecs=True),
    JPEG_LS_LOSSLESS: _Codec(_pydicom_encoder(JPEG_LS_LOSSLESS)),
    JPEG_LS_NEAR: _Codec(_encode_jls_near, "ISO_14495_1"),
    J2K_LOSSLESS: _Codec(_pydicom_encoder(J2K_LOSSLESS), bitstream_pi=_RCT),
    J2K: _Codec(_encode_j2k_lossy, "ISO_15444_1", _ICT),
    HTJ2K_LOSSLESS: _Codec(_htj2k_encoder(reversible=True), None, _RCT, True),
    HTJ2K_RPCL: _Codec(_htj2k_encoder(reversible=True, rpcl=True), None, _RCT, True),
    HTJ2K: _Codec(_htj2k_encoder(reversible=False), "ISO_15444_15", _ICT, True),
}
# openjpeg (via pydicom) always uses 6 resolutions, so neither side may be under 2**5 pixels,
# and pylibjpeg-openjpeg takes at most 24 bits per sample: (minimum side, maximum Bits Stored).
_ENCODER_LIMITS: dict[str, tuple[int, int]] = {J2K_LOSSLESS: (32, 24), J2K: (32, 24)}
# Why the syntaxes with no entry above cannot be produced.
NO_ENCODER = {
    J2K_PART2_LOSSLESS: "no JPEG 2000 Part 2 encoder is available",
    J2K_PART2: "no JPEG 2000 Part 2 encoder is available",
    EXPLICIT_VR_BE: "Explicit VR Big Endian is retired and never sent on the web (PS3.18 §8.7.3)",
}


# ---------------------------------------------------------------------------------------------
# Capability checks


# Capability checks


def _describe(pixel: PixelDescription) -> str:
    sign = "signed" if pixel.pixel_representation else "unsigned"
    return f"{pixel.bits_stored}-bit {sign} {pixel.photometric_interpretation} pixels"


def _input_pi(pixel: PixelDescription) -> str:
    # Arrays are always full resolution, so subsampled YBR has become YBR_FULL by now.
    pi = pixel.photometric_interpretation
    return "YBR_FULL" if pi == "YBR_FULL_422" else pi


def _bitstream_pi(codec: _Codec, pixel: PixelDescription) -> str:
    pi = _input_pi(pixel)
    return dict(codec.bitstream_pi).get(pi, pi)


def _encode_problem(uid: str, pixel: PixelDescription) -> str | None:
    """Return why ``pixel`` cannot be encoded as ``uid``, or None when it can."""
    if reason := video_reason(uid) or NO_ENCODER.get(uid):
        return reason
    codec = ENCODERS.get(uid)
    if codec is None:
        return "unsupported transfer syntax"
    if codec.needs_imagecodecs and imagecodecs is None:
        return "the imagecodecs package is not installed"
    if uid in NATIVE_SYNTAXES:
        return None
    min_side, max_bits = _ENCODER_LIMITS.get(uid, (1, 64))
    if min(pixel.rows, pixel.columns) < min_side:
        return f"the encoder needs at least {min_side} rows and columns"
    if pixel.bits_stored > max_bits:
        return f"the encoder takes at most {max_bits} bits per sample"
    pi = _bitstream_pi(codec, pixel)
    for p_pi, spp, representations, allocated, stored in _PROFILES.get(uid, []):
        if (pi == p_pi and pixel.samples_per_pixel == spp and pixel.pixel_representation in representations
                and pixel.bits_allocated in allocated and pixel.bits_stored in stored):
            return None
    return "not permitted or not supported for this syntax (PS3.5 §8.2)"


def can_encode(transfer_syntax_uid: str, pixel: PixelDescription) -> bool:
    """Return True when pixels like ``pixel`` can be encoded in this syntax."""
    return _encode_problem(transfer_syntax_uid, pixel) is None


def encode_frame(
    array: Array, pixel: PixelDescription, transfer_syntax_uid: str, *, source_lossy: bool
) -> EncodedFrame:
    """Encode one decoded frame (as returned by ``decode_frame``) in ``transfer_syntax_uid``.

    ``source_lossy`` says the pixels already went through lossy compression; the result is then
    lossy whatever the target.
    """
    uid = transfer_syntax_uid
    if array.dtype.kind == "f" and uid in ENCODERS and uid not in NATIVE_SYNTAXES:
        reason: str | None = "floating point pixels have only native encodings"
    else:
        reason = _encode_problem(uid, pixel)
    if reason is not None:
        raise NotAcceptable(f"cannot encode {_describe(pixel)} as {syntax_name(uid)}: {reason}")
    codec = ENCODERS[uid]
    pi = _bitstream_pi(codec, pixel) if uid not in NATIVE_SYNTAXES else pixel.photometric_interpretation
    try:
        data = codec.encode(array, pixel, pi)
    except BaseException as exc:
        if not codec_failure(exc):
            raise
        raise NotAcceptable(f"cannot encode {_describe(pixel)} as {syntax_name(uid)}: {short_message(exc)}") from exc
    described = replace(pixel, photometric_interpretation=pi, planar_configuration=0, number_of_frames=1)
    if codec.lossy_method is None:
        return EncodedFrame(data, uid, described, lossy=source_lossy)
    ratio = round(replace(pixel, number_of_frames=1).frame_length / max(len(data), 1), 2)
    return EncodedFrame(data, uid, described, lossy=True, lossy_method=codec.lossy_method, lossy_ratio=ratio)
