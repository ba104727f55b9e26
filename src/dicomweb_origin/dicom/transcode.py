"""Convert pixel data between transfer syntaxes: one frame, or a whole Part 10 instance.

The server stores each frame as it arrived (native little-endian bytes, or one bare compressed
bitstream per frame) and converts only when a client asks for a syntax it does not have
(PS3.18 §8.7.3). Decoding goes through pydicom's decoders; encoding through pydicom's encoders
where it has them (RLE, JPEG-LS, JPEG 2000) and imagecodecs for the rest (JPEG, HTJ2K). No codec
is written here.

Rules this module keeps:

* Lossless data never comes out lossy unless the target syntax is a lossy one, and lossy data
  stays marked lossy whatever the target (PS3.3 C.7.6.1.1.5: once lossy, always lossy).
* Decoded colour frames are interleaved (Planar Configuration 0); lossy JPEG YCbCr decodes to
  RGB; native YBR_FULL_422 decodes to full-resolution YBR_FULL (no rounding of native data).
* The returned ``PixelDescription`` says what the bitstream holds (PS3.5 §8.2): RGB encoded
  with a multi-component transform is YBR_RCT (reversible) or YBR_ICT (irreversible); RGB in
  JPEG baseline is YBR_FULL_422.

Known limits: the HTJ2K encoder (OpenJPH via imagecodecs) writes the container precision
(8 or 16 bits) in the SIZ marker, not Bits Stored; decoders handle that, and Bits Stored is
left unchanged.
"""

from __future__ import annotations

import functools
import io
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, BinaryIO, cast

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, encapsulate_extended, generate_frames
from pydicom.multival import MultiValue
from pydicom.pixels import get_decoder, get_encoder  # type: ignore[attr-defined]
from pydicom.pixels.encoders.base import ENCODING_PROFILES
from pydicom.pixels.processing import convert_color_space
from pydicom.pixels.utils import pack_bits
from pydicom.uid import UID

from ..errors import DecodeError, NotAcceptable
from ..model import (
    DEFLATED_EXPLICIT_VR_LE,
    EXPLICIT_VR_BE,
    EXPLICIT_VR_LE,
    IMPLICIT_VR_LE,
    TRANSFER_SYNTAXES,
    PixelDescription,
)
from .reader import READ_ERRORS

try:  # JPEG and HTJ2K encoders; pydicom has none for these syntaxes
    import imagecodecs
except ImportError:  # pragma: no cover - a declared dependency
    imagecodecs = None  # type: ignore[assignment]

__all__ = [
    "EncodedFrame",
    "can_decode",
    "can_encode",
    "decode_frame",
    "encode_frame",
    "transcode_frame",
    "transcode_instance",
]

# Frames reach this module little-endian: the dataset-level syntaxes differ only outside Pixel Data.
NATIVE_SYNTAXES = frozenset({EXPLICIT_VR_LE, IMPLICIT_VR_LE, DEFLATED_EXPLICIT_VR_LE})

JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
JPEG_LOSSLESS = "1.2.840.10008.1.2.4.57"
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
JPEG_LS_LOSSLESS = "1.2.840.10008.1.2.4.80"
JPEG_LS_NEAR = "1.2.840.10008.1.2.4.81"
J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"
J2K = "1.2.840.10008.1.2.4.91"
J2K_PART2_LOSSLESS = "1.2.840.10008.1.2.4.92"
J2K_PART2 = "1.2.840.10008.1.2.4.93"
HTJ2K_LOSSLESS = "1.2.840.10008.1.2.4.201"
HTJ2K_RPCL = "1.2.840.10008.1.2.4.202"
HTJ2K = "1.2.840.10008.1.2.4.203"
RLE_LOSSLESS = "1.2.840.10008.1.2.5"

# Syntaxes whose bitstreams can only be lossy (PS3.5 §8.2.1), whatever the caller says.
_ALWAYS_LOSSY = frozenset({JPEG_BASELINE, JPEG_EXTENDED})

# Part 2 codestreams that use only Part 1 tools decode with the Part 1 decoder (openjpeg);
# ones that use Part 2 extensions fail and raise DecodeError.
_DECODE_AS = {J2K_PART2_LOSSLESS: J2K_LOSSLESS, J2K_PART2: J2K}

# Lossy settings, chosen for ~50 dB PSNR relative to the frame's own value range.
JPEG_QUALITY = 90
JPEG_LS_NEAR_ERROR = 2  # NEAR: the largest absolute error per sample
LOSSY_PSNR_DB = 50.0  # J2K rate control target, relative to the frame's value range
HTJ2K_STEPS_PER_RANGE = 128  # HTJ2K quantisation step = range / this (at least 1 grey level)


_OPENJPEG_LOCK = threading.Lock()


def _serialize_openjpeg() -> None:
    """Make every call into pylibjpeg-openjpeg, through pydicom, run one at a time, process-wide.

    pylibjpeg-openjpeg (pydicom's JPEG 2000 and HTJ2K plugin) is not thread-safe: its C logging
    helper keeps the message it logs in static variables and calls Python's logging while holding
    them, so a second thread, encoding or decoding, swaps and frees them under the first (segfaults
    and failed decodes, seen in CI). It holds the GIL throughout anyway, so serialising costs no
    parallelism. The plugin functions are wrapped where pydicom keeps them, so that every caller in
    the process (this module, and anything else that decodes with pydicom) takes the same lock.
    """
    try:
        from pydicom.pixels.decoders import pylibjpeg as decoders
        from pydicom.pixels.encoders import pylibjpeg as encoders
    except ImportError:  # pragma: no cover - pylibjpeg is a declared dependency
        return
    for plugins in getattr(decoders, "_DECODERS", {}).values():
        for name, function in plugins.items():
            plugins[name] = _locked(function)
    table = getattr(encoders, "_ENCODERS", {})
    for uid, function in table.items():
        table[uid] = _locked(function)


def _locked(function: Callable[..., Any]) -> Callable[..., Any]:
    if not str(getattr(function, "__module__", "")).startswith("openjpeg") or hasattr(function, "__wrapped__"):
        return function

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        with _OPENJPEG_LOCK:
            return function(*args, **kwargs)

    return call


_serialize_openjpeg()


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

Array = np.ndarray[Any, np.dtype[Any]]
EncodeFunction = Callable[[Array, PixelDescription, str], bytes]


def _options(pixel: PixelDescription, photometric: str | None = None) -> dict[str, Any]:
    """Return pydicom runner options for one frame described by ``pixel``."""
    return {
        "rows": pixel.rows,
        "columns": pixel.columns,
        "samples_per_pixel": pixel.samples_per_pixel,
        "bits_allocated": pixel.bits_allocated,
        "bits_stored": pixel.bits_stored,
        "pixel_representation": pixel.pixel_representation,
        "photometric_interpretation": photometric or pixel.photometric_interpretation,
        "planar_configuration": pixel.planar_configuration,
        "number_of_frames": 1,
    }


def _value_range(arr: Array) -> float:
    return max(float(arr.max()) - float(arr.min()), 1.0)


def _encode_native(arr: Array, pixel: PixelDescription, pi: str) -> bytes:
    if pixel.bits_allocated == 1:
        return pack_bits(arr, pad=False)
    dtype = np.dtype(f"<{arr.dtype.kind}{pixel.bits_allocated // 8}")
    return np.ascontiguousarray(arr, dtype=dtype).tobytes()


def _pydicom_encoder(uid: str, **fixed: Any) -> EncodeFunction:
    def encode(arr: Array, pixel: PixelDescription, pi: str) -> bytes:
        options = _options(replace(pixel, planar_configuration=0), pi) | fixed
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
_ENCODER_LIMITS = {J2K_LOSSLESS: (32, 24), J2K: (32, 24)}
# Why the syntaxes with no entry above cannot be produced.
_NO_ENCODER = {
    J2K_PART2_LOSSLESS: "no JPEG 2000 Part 2 encoder is available",
    J2K_PART2: "no JPEG 2000 Part 2 encoder is available",
    EXPLICIT_VR_BE: "Explicit VR Big Endian is retired and never sent on the web (PS3.18 §8.7.3)",
}


# ---------------------------------------------------------------------------------------------
# Capability checks


def _name(uid: str) -> str:
    ts = TRANSFER_SYNTAXES.get(uid)
    return ts.name if ts else uid


def _codec_failure(exc: BaseException) -> bool:
    """Whether a codec's exception means "this data cannot be coded" rather than "stop".

    Codecs written in Rust (pylibjpeg-rle, through pyo3) turn a panic on malformed data into
    ``PanicException``, which derives from BaseException so that ``except Exception`` misses it.
    """
    return isinstance(exc, Exception) or _is_panic(exc)


def _is_panic(exc: BaseException) -> bool:
    return type(exc).__name__ == "PanicException"


def _message(exc: BaseException) -> str:
    """Return a codec exception as one short line (pydicom lists every plugin's failure)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[-1] if lines else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


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


def _video_reason(uid: str) -> str | None:
    ts = TRANSFER_SYNTAXES.get(uid)
    if ts is not None and ts.video:
        return "video transfer syntaxes are not transcoded by this server"
    return None


def _encode_problem(uid: str, pixel: PixelDescription) -> str | None:
    """Return why ``pixel`` cannot be encoded as ``uid``, or None when it can."""
    if reason := _video_reason(uid) or _NO_ENCODER.get(uid):
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


def can_decode(transfer_syntax_uid: str) -> bool:
    """Return True when frames stored in this syntax can be decoded here."""
    if transfer_syntax_uid in NATIVE_SYNTAXES:
        return True
    if _video_reason(transfer_syntax_uid):
        return False
    try:
        return get_decoder(_DECODE_AS.get(transfer_syntax_uid, transfer_syntax_uid)).is_available
    except NotImplementedError:
        return False


def can_encode(transfer_syntax_uid: str, pixel: PixelDescription) -> bool:
    """Return True when pixels like ``pixel`` can be encoded in this syntax."""
    return _encode_problem(transfer_syntax_uid, pixel) is None


def decoded_description(transfer_syntax_uid: str, pixel: PixelDescription) -> PixelDescription:
    """What ``decode_frame`` will say of pixels stored like ``pixel``, without decoding them."""
    pi = pixel.photometric_interpretation
    if pi in ("YBR_ICT", "YBR_RCT"):  # the codestream's colour transform is undone by the decoder
        pi = "RGB"
    elif pi.startswith("YBR_FULL") and transfer_syntax_uid in _ALWAYS_LOSSY:
        pi = "RGB"
    elif pi == "YBR_FULL_422":
        pi = "YBR_FULL"
    return replace(pixel, photometric_interpretation=pi, planar_configuration=0, number_of_frames=1)


def repack_bits(data: bytes, shift: int, bits: int) -> bytes:
    """Cut ``bits`` bits starting ``shift`` bits into ``data`` and pack them from bit 0 (PS3.5 §8.1.1)."""
    unpacked = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")
    return np.packbits(unpacked[shift:shift + bits], bitorder="little").tobytes()


def can_transcode(src_uid: str, dst_uid: str, pixel: PixelDescription) -> bool:
    """Return True when frames stored in ``src_uid`` can be delivered in ``dst_uid``."""
    if src_uid == dst_uid:
        return True
    return can_decode(src_uid) and can_encode(dst_uid, decoded_description(src_uid, pixel))


# ---------------------------------------------------------------------------------------------
# Frames


def _decoded(
    arr: Array, properties: dict[str, Any], pixel: PixelDescription
) -> tuple[Array, PixelDescription]:
    """Normalise one decoded frame: little-endian, contiguous, Bits Allocated unchanged."""
    pi = str(properties.get("photometric_interpretation", pixel.photometric_interpretation))
    if pi == "YBR_FULL_422":  # pydicom upsamples; the array is full resolution
        pi = "YBR_FULL"
    arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
    return arr, replace(pixel, photometric_interpretation=pi, planar_configuration=0, number_of_frames=1)


def _raw(uid: str) -> bool:
    # YCbCr from lossy JPEG goes to RGB (its precision is gone anyway); everything else is
    # returned as stored so that a lossless transcode never rounds through a colour transform.
    return uid not in _ALWAYS_LOSSY


def decode_frame(
    data: bytes, transfer_syntax_uid: str, pixel: PixelDescription
) -> tuple[Array, PixelDescription]:
    """Decode one stored frame; return the pixels and a description of them.

    The array is shaped (rows, columns[, samples]), interleaved, little-endian, with a dtype of
    Bits Allocated. Colour may change: JPEG YBR becomes RGB, J2K YBR_ICT/YBR_RCT becomes RGB.
    """
    uid = _DECODE_AS.get(transfer_syntax_uid, transfer_syntax_uid)
    if not can_decode(uid):
        reason = _video_reason(uid) or "no decoder is available"
        raise NotAcceptable(f"cannot decode frames stored as {_name(transfer_syntax_uid)}: {reason}")
    options = _options(pixel) | {"pixel_keyword": "PixelData"}
    if uid in NATIVE_SYNTAXES:
        decoder, src = get_decoder(EXPLICIT_VR_LE), data
    elif uid == EXPLICIT_VR_BE:  # retired; only a frame cut from such a file would be big endian
        decoder, src = get_decoder(uid), data
        options["pixel_vr"] = "OW" if pixel.bits_allocated > 8 else "OB"
    else:
        fast = _decode_j2k_fast(data, uid, pixel)
        if fast is not None:
            colour = decoded_description(uid, pixel).photometric_interpretation
            return _decoded(fast, {"photometric_interpretation": colour}, pixel)
        decoder, src = get_decoder(uid), encapsulate([data], has_bot=False)
    try:
        arr, properties = decoder.as_array(src, index=0, raw=_raw(uid), **options)
    except BaseException as exc:
        if not _codec_failure(exc):
            raise
        raise DecodeError(f"cannot decode frame: {_message(exc)}") from exc
    return _decoded(arr, properties, pixel)


def _decode_j2k_fast(data: bytes, uid: str, pixel: PixelDescription) -> Array | None:
    """Decode JPEG 2000 and HTJ2K with imagecodecs, which releases the GIL while it works.

    pydicom's plugin (pylibjpeg-openjpeg) holds the GIL for a whole decode and runs one decode at a
    time (see ``_serialize_openjpeg``), stalling every other request; this path is taken only when its
    result is unambiguous (shape, width and signedness as the dataset says), otherwise pydicom's decoder
    (with its sign corrections) does the work. Both undo a codestream's colour transform (YBR_RCT/ICT
    become RGB, as ``decoded_description`` says). HTJ2K goes through OpenJPH, the library that encodes it.
    """
    decoder = _J2K_FAST.get(uid)
    if decoder is None or pixel.samples_per_pixel not in (1, 3) or pixel.bits_allocated not in (8, 16):
        return None
    try:
        arr = getattr(_imagecodecs(), decoder)(data)
    except Exception:
        return None
    signed = arr.dtype.kind == "i"
    shape = (pixel.rows, pixel.columns) + ((3,) if pixel.samples_per_pixel == 3 else ())
    if arr.shape != shape or arr.dtype.itemsize * 8 != pixel.bits_allocated:
        return None
    if signed != bool(pixel.pixel_representation):
        return None
    return cast(Array, arr)


_J2K_FAST = {J2K_LOSSLESS: "jpeg2k_decode", J2K: "jpeg2k_decode",
             HTJ2K_LOSSLESS: "htj2k_decode", HTJ2K_RPCL: "htj2k_decode", HTJ2K: "htj2k_decode"}


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
        raise NotAcceptable(f"cannot encode {_describe(pixel)} as {_name(uid)}: {reason}")
    codec = ENCODERS[uid]
    pi = _bitstream_pi(codec, pixel) if uid not in NATIVE_SYNTAXES else pixel.photometric_interpretation
    try:
        data = codec.encode(array, pixel, pi)
    except BaseException as exc:
        if not _codec_failure(exc):
            raise
        raise NotAcceptable(f"cannot encode {_describe(pixel)} as {_name(uid)}: {_message(exc)}") from exc
    described = replace(pixel, photometric_interpretation=pi, planar_configuration=0, number_of_frames=1)
    if codec.lossy_method is None:
        return EncodedFrame(data, uid, described, lossy=source_lossy)
    ratio = round(replace(pixel, number_of_frames=1).frame_length / max(len(data), 1), 2)
    return EncodedFrame(data, uid, described, lossy=True, lossy_method=codec.lossy_method, lossy_ratio=ratio)


def transcode_frame(data: bytes, src_uid: str, dst_uid: str, pixel: PixelDescription, *,
                    source_lossy: bool) -> EncodedFrame:
    """Convert one stored frame from ``src_uid`` to ``dst_uid``; pass it through when no change is needed."""
    source_lossy = source_lossy or src_uid in _ALWAYS_LOSSY
    if src_uid == dst_uid or (src_uid in NATIVE_SYNTAXES and dst_uid in NATIVE_SYNTAXES):
        return EncodedFrame(bytes(data), dst_uid, replace(pixel, number_of_frames=1), lossy=source_lossy)
    array, decoded = decode_frame(data, src_uid, pixel)
    return encode_frame(array, decoded, dst_uid, source_lossy=source_lossy)


# ---------------------------------------------------------------------------------------------
# Whole instances

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def _pixel_description(ds: Dataset) -> PixelDescription:
    allocated = int(ds.BitsAllocated)
    return PixelDescription(
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        samples_per_pixel=int(ds.get("SamplesPerPixel") or 1),
        bits_allocated=allocated,
        bits_stored=int(ds.get("BitsStored") or allocated),
        pixel_representation=int(ds.get("PixelRepresentation") or 0),
        photometric_interpretation=str(ds.PhotometricInterpretation),
        planar_configuration=int(ds.get("PlanarConfiguration") or 0),
        number_of_frames=int(ds.get("NumberOfFrames") or 1),
    )


def _decoded_frames(
    ds: Dataset, src_uid: str, pixel: PixelDescription
) -> Iterator[tuple[Array, PixelDescription]]:
    if src_uid in NATIVE_SYNTAXES or src_uid == EXPLICIT_VR_BE:
        # pydicom reads native data (either byte order, packed bits, planar, 4:2:2) from the dataset
        decoder = get_decoder(src_uid)
        for arr, properties in decoder.iter_array(ds, raw=True):
            yield _decoded(arr, properties, pixel)
        return
    eot = None
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        eot = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
    frames = generate_frames(ds.PixelData, number_of_frames=pixel.number_of_frames, extended_offsets=eot)
    for frame in frames:
        yield decode_frame(frame, src_uid, pixel)


def _values(ds: Dataset, keyword: str) -> list[Any]:
    value = ds.get(keyword)
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, list | MultiValue) else [value]


def _set_pixels(ds: Dataset, encoded: list[EncodedFrame], dst_uid: str) -> None:
    first = encoded[0].pixel
    for keyword in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
        if keyword in ds:
            del ds[keyword]
    if dst_uid in NATIVE_SYNTAXES:
        value = b"".join(frame.data for frame in encoded)
        value += b"\x00" * (len(value) % 2)
        vr = "OW" if first.bits_allocated > 8 else "OB"
    else:
        frames = [frame.data for frame in encoded]
        if sum(len(f) + 8 for f in frames) < 2**32 - 8:
            value, vr = encapsulate(frames), "OB"
        else:  # Basic Offset Table offsets are 32-bit; PS3.5 A.4 Extended Offset Table
            value, offsets, lengths = encapsulate_extended(frames)
            ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths = offsets, lengths
            vr = "OB"
        if "IconImageSequence" in ds:  # an icon's own encapsulated pixels would not match
            del ds.IconImageSequence
    ds.PixelData = value
    ds["PixelData"].VR = vr
    ds["PixelData"].is_undefined_length = dst_uid not in NATIVE_SYNTAXES
    ds.PhotometricInterpretation = first.photometric_interpretation
    if first.samples_per_pixel > 1:
        ds.PlanarConfiguration = 0


def _set_lossy(ds: Dataset, encoded: list[EncodedFrame], source_lossy: bool, src_uid: str) -> None:
    """Record lossy compression (PS3.3 C.7.6.1.1.5): once "01", always "01"; append this step.

    Ratio and Method values correspond one to one; a source that gave earlier ratios without their
    methods gets the method of its own lossy syntax filled in first, when there is one.
    """
    steps = [frame for frame in encoded if frame.lossy_method]
    if steps:
        raw = sum(replace(frame.pixel, number_of_frames=1).frame_length for frame in steps)
        ratio = raw / max(sum(len(frame.data) for frame in steps), 1)
        ratios, methods = _values(ds, "LossyImageCompressionRatio"), _values(ds, "LossyImageCompressionMethod")
        source_method = ENCODERS[src_uid].lossy_method if src_uid in ENCODERS else None
        if len(methods) < len(ratios) and source_method is not None:
            methods += [source_method] * (len(ratios) - len(methods))
        ds.LossyImageCompressionRatio = [*ratios, f"{ratio:.2f}"]
        ds.LossyImageCompressionMethod = [*methods, steps[0].lossy_method]
    if steps or source_lossy or any(frame.lossy for frame in encoded):
        ds.LossyImageCompression = "01"


_WORD_SIZES = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


def _swap_to_little_endian(ds: Dataset) -> None:
    """Byte-swap the binary values pydicom leaves as read (pixels are re-encoded separately)."""
    for elem in ds.iterall():
        size = _WORD_SIZES.get(elem.VR)
        if size and isinstance(elem.value, bytes) and elem.keyword not in _PIXEL_KEYWORDS:
            elem.value = np.frombuffer(elem.value, f">u{size}").astype(f"<u{size}").tobytes()


def _read(src: bytes | BinaryIO) -> tuple[bytes, Dataset]:
    raw = src if isinstance(src, bytes) else src.read()
    try:
        return raw, pydicom.dcmread(io.BytesIO(raw), force=True)
    except Exception as exc:
        raise DecodeError(f"cannot read instance: {exc}") from exc


# Malformed stored data, or pydicom's RuntimeError "no plugin could ..." (DecodeError and NotAcceptable
# pass through untouched: they are no READ_ERRORS).
_INSTANCE_ERRORS: tuple[type[BaseException], ...] = (*READ_ERRORS, RuntimeError)


def transcode_instance(src: bytes | BinaryIO, dst_uid: str) -> bytes:
    """Rewrite a Part 10 instance in ``dst_uid``, updating File Meta, pixels and lossy attributes.

    A stored object that pydicom cannot handle on the way (a broken value read only now) is a
    DecodeError for this request, like pixel data that does not decode.
    """
    try:
        return _transcode_instance(src, dst_uid)
    except _INSTANCE_ERRORS as exc:
        raise DecodeError(f"cannot transcode the instance: {_message(exc)}") from exc
    except BaseException as exc:
        if not _is_panic(exc):
            raise
        raise DecodeError(f"cannot transcode the instance: {_message(exc)}") from exc


def _transcode_instance(src: bytes | BinaryIO, dst_uid: str) -> bytes:
    raw, ds = _read(src)
    meta = ds.file_meta if isinstance(getattr(ds, "file_meta", None), FileMetaDataset) else FileMetaDataset()
    implicit = ds.original_encoding[0]
    src_uid = str(meta.get("TransferSyntaxUID") or (IMPLICIT_VR_LE if implicit else EXPLICIT_VR_LE))
    if src_uid == dst_uid:
        return raw
    keyword = next((k for k in _PIXEL_KEYWORDS if k in ds), None)
    if dst_uid not in ENCODERS:
        reason = _video_reason(dst_uid) or _NO_ENCODER.get(dst_uid) or "unsupported transfer syntax"
        raise NotAcceptable(f"cannot encode the instance as {_name(dst_uid)}: {reason}")
    if dst_uid not in NATIVE_SYNTAXES and keyword != "PixelData":
        what = "a non-image instance" if keyword is None else keyword
        raise NotAcceptable(f"cannot encode {what} as {_name(dst_uid)}: only native syntaxes can hold it")

    # A syntax that allows lossy coding (.81, .91, .203) counts as lossy unless the dataset says "00".
    declared = str(ds.get("LossyImageCompression", "")).strip()
    source_lossy = declared == "01" or src_uid in _ALWAYS_LOSSY or (
        declared != "00" and src_uid in TRANSFER_SYNTAXES and TRANSFER_SYNTAXES[src_uid].lossy
    )
    native_to_native = src_uid in NATIVE_SYNTAXES and dst_uid in NATIVE_SYNTAXES
    if keyword is not None and not native_to_native:
        try:
            pixel = _pixel_description(ds)
        except (AttributeError, TypeError, ValueError) as exc:
            raise DecodeError(f"cannot decode frame: incomplete Image Pixel module ({exc})") from exc
        if keyword != "PixelData":  # float pixels stored big endian: decode, write little endian
            pixel = replace(pixel, bits_stored=pixel.bits_allocated)
        encoded = [encode_frame(arr, desc, dst_uid, source_lossy=source_lossy)
                   for arr, desc in _decoded_frames(ds, src_uid, pixel)]
        if keyword == "PixelData":
            _set_pixels(ds, encoded, dst_uid)
        else:
            setattr(ds, keyword, b"".join(frame.data for frame in encoded))
        _set_lossy(ds, encoded, source_lossy, src_uid)

    meta.TransferSyntaxUID = UID(dst_uid)
    if "SOPClassUID" in ds:
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
    if "SOPInstanceUID" in ds:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta = meta
    if src_uid == EXPLICIT_VR_BE:  # retired, but it may have been stored as received
        _swap_to_little_endian(ds)
    out = io.BytesIO()
    try:
        pydicom.dcmwrite(out, ds, enforce_file_format=True)
    except Exception as exc:
        raise NotAcceptable(f"cannot encode the instance as {_name(dst_uid)}: {exc}") from exc
    return out.getvalue()
