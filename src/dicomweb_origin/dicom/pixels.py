"""Decode one stored frame to a numpy array: the one decoding function retrieve, rendering and volumes use.

Frames are stored as they arrived: native little-endian bytes, or one bare compressed bitstream
per frame. Which library decodes which bitstream is a table (``DECODERS``, in decoders.py), not a
chain of branches; this module re-exports it and what callers use of it.

Rules kept here:

* Decoded colour frames are interleaved (Planar Configuration 0); lossy JPEG YCbCr decodes to
  RGB; native YBR_FULL_422 decodes to full-resolution YBR_FULL (no rounding of native data).
* JPEG 2000 / HTJ2K undo their multi-component transform: YBR_ICT and YBR_RCT decode to RGB.
* Float Pixel Data (7FE0,0008) and Double Float Pixel Data (7FE0,0009) decode to float32 and
  float64 arrays (PS3.3 C.7.6.24), never to their integer bit patterns.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

import numpy as np
from pydicom.encaps import encapsulate
from pydicom.pixels import get_decoder  # type: ignore[attr-defined]

from ..errors import DecodeError, NotAcceptable
from ..model.media import (
    EXPLICIT_VR_BE,
    EXPLICIT_VR_LE,
    TRANSFER_SYNTAXES,
)
from ..model.stored import PixelDescription
from . import headers
from .decoders import (
    DECODE_AS,
    DECODER_NAMES,
    DECODERS,
    FAST_FUNCTIONS,
    HT_FAMILY,
    J2K_FAMILY,
    NATIVE_SYNTAXES,
    OPENJPEG,
    OPENJPH,
    PYDICOM,
    decoder_for,
    irreversible,
    pydicom_plugins,
)
from .syntaxes import JPEG_BASELINE, JPEG_EXTENDED

try:  # OpenJPEG and OpenJPH with the GIL released; JPEG and HTJ2K encoders
    import imagecodecs
except ImportError:  # pragma: no cover - a declared dependency
    imagecodecs = None  # type: ignore[assignment]

__all__ = [
    "DECODERS",
    "DECODER_NAMES",
    "DECODE_AS",
    "NATIVE_SYNTAXES",
    "OPENJPEG",
    "OPENJPH",
    "PYDICOM",
    "pydicom_plugins",
    "can_decode",
    "check_header",
    "decode_frame",
    "decode_memory",
    "decoded_description",
    "decoder_for",
    "irreversible",
    "pixel_keyword",
    "repack_bits",
]

Array = np.ndarray[Any, np.dtype[Any]]


# Syntaxes whose bitstreams can only be lossy (PS3.5 §8.2.1), whatever the caller says.
ALWAYS_LOSSY = frozenset({JPEG_BASELINE, JPEG_EXTENDED})


# The pixel data element a record's ``pixel_path`` names (PS3.3 C.7.6.3, C.7.6.24).
PIXEL_KEYWORDS = {"7FE00010": "PixelData", "7FE00008": "FloatPixelData", "7FE00009": "DoubleFloatPixelData"}










# ---------------------------------------------------------------------------------------------
# Helpers shared with the encoders


def syntax_name(uid: str) -> str:
    """Return the transfer syntax's name for messages, or the UID when it is unknown."""
    ts = TRANSFER_SYNTAXES.get(uid)
    return ts.name if ts else uid


def codec_failure(exc: BaseException) -> bool:
    """Whether a codec's exception means "this data cannot be coded" rather than "stop".

    Codecs written in Rust (pylibjpeg-rle, through pyo3) turn a panic on malformed data into
    ``PanicException``, which derives from BaseException so that ``except Exception`` misses it.
    """
    return isinstance(exc, Exception) or is_panic(exc)


def is_panic(exc: BaseException) -> bool:
    """Whether ``exc`` is a Rust codec's panic (pyo3 ``PanicException``)."""
    return type(exc).__name__ == "PanicException"


def short_message(exc: BaseException) -> str:
    """Return a codec exception as one short line (pydicom lists every plugin's failure)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[-1] if lines else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def video_reason(uid: str) -> str | None:
    """Return why a video syntax is not transcoded, or None for any other syntax."""
    ts = TRANSFER_SYNTAXES.get(uid)
    if ts is not None and ts.video:
        return "video transfer syntaxes are not transcoded by this server"
    return None


def runner_options(pixel: PixelDescription, photometric: str | None = None) -> dict[str, Any]:
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


def pixel_keyword(pixel_path: str | None) -> str:
    """Return the keyword of the pixel data element a record's ``pixel_path`` names."""
    return PIXEL_KEYWORDS.get(pixel_path or "", "PixelData")


# ---------------------------------------------------------------------------------------------
# Capability


def can_decode(transfer_syntax_uid: str) -> bool:
    """Return True when frames stored in this syntax can be decoded here."""
    if transfer_syntax_uid in NATIVE_SYNTAXES:
        return True
    if video_reason(transfer_syntax_uid):
        return False
    try:
        return bool(get_decoder(DECODE_AS.get(transfer_syntax_uid, transfer_syntax_uid)).is_available)
    except NotImplementedError:
        return False


def decoded_description(transfer_syntax_uid: str, pixel: PixelDescription) -> PixelDescription:
    """What ``decode_frame`` will say of pixels stored like ``pixel``, without decoding them."""
    pi = pixel.photometric_interpretation
    if pi in ("YBR_ICT", "YBR_RCT"):  # the codestream's colour transform is undone by the decoder
        pi = "RGB"
    elif pi.startswith("YBR_FULL") and transfer_syntax_uid in ALWAYS_LOSSY:
        pi = "RGB"
    elif pi == "YBR_FULL_422":
        pi = "YBR_FULL"
    return replace(pixel, photometric_interpretation=pi, planar_configuration=0, number_of_frames=1)


def repack_bits(data: bytes, shift: int, bits: int) -> bytes:
    """Cut ``bits`` bits starting ``shift`` bits into ``data`` and pack them from bit 0 (PS3.5 §8.1.1)."""
    unpacked = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")
    return np.packbits(unpacked[shift:shift + bits], bitorder="little").tobytes()


# ---------------------------------------------------------------------------------------------
# Decoding


def decode_frame(
    data: bytes, transfer_syntax_uid: str, pixel: PixelDescription, pixel_keyword: str = "PixelData"
) -> tuple[Array, PixelDescription]:
    """Decode one stored frame; return the pixels and a description of them.

    The array is shaped (rows, columns[, samples]), interleaved, little-endian, with a dtype of
    Bits Allocated (float32 / float64 for Float / Double Float Pixel Data). Colour may change:
    JPEG YBR becomes RGB, J2K YBR_ICT/YBR_RCT becomes RGB.
    """
    uid = DECODE_AS.get(transfer_syntax_uid, transfer_syntax_uid)
    if not can_decode(uid):
        reason = video_reason(uid) or "no decoder is available"
        raise NotAcceptable(f"cannot decode frames stored as {syntax_name(transfer_syntax_uid)}: {reason}")
    options = runner_options(pixel) | {"pixel_keyword": pixel_keyword}
    if pixel_keyword != "PixelData":  # float samples use all their bits (PS3.3 C.7.6.24)
        options |= {"bits_stored": pixel.bits_allocated, "pixel_representation": 0}
    if uid in NATIVE_SYNTAXES:
        native = _native_view(data, pixel, pixel_keyword)
        if native is not None:
            return native, replace(pixel, planar_configuration=0, number_of_frames=1)
        decoder, src = get_decoder(EXPLICIT_VR_LE), data
    elif uid == EXPLICIT_VR_BE:  # retired; only a frame cut from such a file would be big endian
        decoder, src = get_decoder(uid), data
        options["pixel_vr"] = {"PixelData": "OW" if pixel.bits_allocated > 8 else "OB",
                               "FloatPixelData": "OF", "DoubleFloatPixelData": "OD"}[pixel_keyword]
    else:
        check_header(data, uid, pixel)
        fast = _decode_fast(data, uid, pixel)
        if fast is not None:
            colour = decoded_description(uid, pixel).photometric_interpretation
            return normalize_decoded(fast, {"photometric_interpretation": colour}, pixel)
        decoder, src = get_decoder(uid), encapsulate([data], has_bot=False)
    try:
        arr, properties = decoder.as_array(src, index=0, raw=uid not in ALWAYS_LOSSY, **options)
    except BaseException as exc:
        if not codec_failure(exc):
            raise
        raise DecodeError(f"cannot decode frame: {short_message(exc)}") from exc
    # YCbCr from lossy JPEG goes to RGB (``raw=False``: its precision is gone anyway); everything
    # else is returned as stored so that a lossless transcode never rounds through a colour transform.
    return normalize_decoded(arr, properties, pixel)


def check_header(data: bytes, transfer_syntax_uid: str, pixel: PixelDescription) -> None:
    """Refuse a compressed frame whose own header disagrees with the data set, before a decoder allocates for it.

    A decoder believes the bitstream: a few hundred bytes whose header claims 60000 x 60000 would cost gigabytes
    and seconds before failing (see headers.py). DecodeError (406), as for any frame that cannot be decoded.
    """
    try:
        header = headers.read_header(data, transfer_syntax_uid)
    except headers.HeaderError as exc:
        raise DecodeError(f"cannot decode frame: {exc}") from exc
    problem = None if header is None else headers.frame_problem(header, pixel)
    if problem is not None:
        raise DecodeError(f"cannot decode frame: {problem}")


def decode_memory(transfer_syntax_uid: str, pixel: PixelDescription) -> int:
    """Bytes decoding (or encoding) one frame may hold at its peak: the array and the codec's own buffers.

    Measured by benchmarks/memory.py on 2048² frames: decoders hold up to ~7x the output (JPEG-LS, lossless JPEG,
    RLE), YCbCr baseline JPEG ~10x (8-bit RGB), OpenJPEG ~9 bytes per sample when encoding. 12 bytes a sample plus
    4x the array covers them all; native frames need at most a copy.
    """
    samples = pixel.rows * pixel.columns * pixel.samples_per_pixel
    size = samples * max(1, -(-pixel.bits_allocated // 8))
    if transfer_syntax_uid in NATIVE_SYNTAXES:
        return 2 * size
    return samples * 12 + size * 4


_NATIVE_DTYPES = {(8, 0): "<u1", (8, 1): "<i1", (16, 0): "<u2", (16, 1): "<i2", (32, 0): "<u4", (32, 1): "<i4"}


def _native_view(data: bytes, pixel: PixelDescription, pixel_keyword: str) -> Array | None:
    """Native little-endian samples that need no decoder: a view of the bytes (a frame in ~µs, not ~0.4 ms).

    Only the layouts whose reading is unambiguous: interleaved samples, whole bytes, and values that
    fill Bits Allocated or are unsigned (pydicom sign-extends signed values narrower than that).
    Everything else (planar, 4:2:2, packed bits, narrow signed) goes through pydicom's decoder.
    """
    dtype = _NATIVE_DTYPES.get((pixel.bits_allocated, pixel.pixel_representation))
    if (dtype is None or pixel_keyword != "PixelData" or pixel.photometric_interpretation == "YBR_FULL_422"
            or pixel.samples_per_pixel not in (1, 3) or pixel.samples_per_pixel == 3 and pixel.planar_configuration
            or pixel.pixel_representation and pixel.bits_stored != pixel.bits_allocated):
        return None
    count = pixel.rows * pixel.columns * pixel.samples_per_pixel
    if len(data) < count * pixel.bits_allocated // 8:
        return None
    shape = (pixel.rows, pixel.columns) + ((3,) if pixel.samples_per_pixel == 3 else ())
    return np.frombuffer(data, dtype, count).reshape(shape)


def normalize_decoded(
    arr: Array, properties: dict[str, Any], pixel: PixelDescription
) -> tuple[Array, PixelDescription]:
    """Normalise one decoded frame: little-endian, contiguous, Bits Allocated unchanged."""
    pi = str(properties.get("photometric_interpretation", pixel.photometric_interpretation))
    if pi == "YBR_FULL_422":  # pydicom upsamples; the array is full resolution
        pi = "YBR_FULL"
    arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
    return arr, replace(pixel, photometric_interpretation=pi, planar_configuration=0, number_of_frames=1)


def _decode_fast(data: bytes, uid: str, pixel: PixelDescription) -> Array | None:
    """Decode JPEG 2000 and HTJ2K with imagecodecs, which releases the GIL while it works.

    pydicom's plugin (pylibjpeg-openjpeg) holds the GIL for a whole decode and runs one decode at a
    time (see ``_serialize_openjpeg``), stalling every other request; this path is taken only when
    ``DECODERS`` names a fast decoder and its result is unambiguous (shape, width and signedness as
    the dataset says), otherwise pydicom's decoder (with its sign corrections) does the work. Both
    undo a codestream's colour transform (YBR_RCT/ICT become RGB, as ``decoded_description`` says).
    """
    if uid not in J2K_FAMILY and uid not in HT_FAMILY:
        return None
    decoder = decoder_for(uid, pixel.photometric_interpretation, irreversible(data))
    if decoder not in FAST_FUNCTIONS or imagecodecs is None:
        return None
    if pixel.samples_per_pixel not in (1, 3) or pixel.bits_allocated not in (8, 16):
        return None
    try:
        arr = getattr(imagecodecs, FAST_FUNCTIONS[decoder])(data)
    except Exception:
        return None
    signed = arr.dtype.kind == "i"
    shape = (pixel.rows, pixel.columns) + ((3,) if pixel.samples_per_pixel == 3 else ())
    if arr.shape != shape or arr.dtype.itemsize * 8 != pixel.bits_allocated:
        return None
    if signed != bool(pixel.pixel_representation):
        return None
    return cast(Array, arr)
