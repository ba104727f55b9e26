"""Which library decodes which stored bitstream: a table, not a chain of branches.

imagecodecs' OpenJPEG and OpenJPH release the GIL while they work; pydicom's plugins (pylibjpeg, pyjpegls, its
own RLE and native readers) are the default for everything else. pylibjpeg-openjpeg is not thread-safe, so its
calls are serialised here, process-wide, on import.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

from pydicom.pixels import get_decoder  # type: ignore[attr-defined]

from ..model.media import DEFLATED_EXPLICIT_VR_LE, EXPLICIT_VR_BE, EXPLICIT_VR_LE, IMPLICIT_VR_LE
from .syntaxes import HTJ2K, HTJ2K_LOSSLESS, HTJ2K_RPCL, J2K, J2K_LOSSLESS, J2K_PART2, J2K_PART2_LOSSLESS

# Frames reach this module little-endian: the dataset-level syntaxes differ only outside Pixel Data.
NATIVE_SYNTAXES = frozenset({EXPLICIT_VR_LE, IMPLICIT_VR_LE, DEFLATED_EXPLICIT_VR_LE})

# Part 2 codestreams that use only Part 1 tools decode with the Part 1 decoder (openjpeg);
# ones that use Part 2 extensions fail and raise DecodeError.
DECODE_AS: dict[str, str] = {J2K_PART2_LOSSLESS: J2K_LOSSLESS, J2K_PART2: J2K}

PYDICOM = "pydicom"  # pydicom's plugins: pylibjpeg-libjpeg/-openjpeg/-rle, pyjpegls, native reader
OPENJPEG = "openjpeg"  # imagecodecs.jpeg2k_decode (OpenJPEG 2.5, decodes HTJ2K too), GIL released
OPENJPH = "openjph"  # imagecodecs.htj2k_decode (OpenJPH, the library that encodes HTJ2K), GIL released
FAST_FUNCTIONS = {OPENJPEG: "jpeg2k_decode", OPENJPH: "htj2k_decode"}
DECODER_NAMES = {PYDICOM: "pydicom", OPENJPEG: "OpenJPEG (imagecodecs)", OPENJPH: "OpenJPH (imagecodecs)"}

_GREY = ("MONOCHROME1", "MONOCHROME2", "PALETTE COLOR")
_COLOUR = ("RGB", "YBR_FULL", "YBR_ICT", "YBR_RCT")
J2K_FAMILY = (J2K_LOSSLESS, J2K)
HT_FAMILY = (HTJ2K_LOSSLESS, HTJ2K_RPCL, HTJ2K)

# (transfer syntax, photometric interpretation, lossy codestream) -> decoder; PYDICOM otherwise.
# "Lossy" is the codestream's own wavelet (irreversible 9-7, read from its COD marker), not the
# syntax's name: .203 and .91 may hold reversible codestreams too.
# OpenJPH decodes irreversible multi-component HTJ2K wrongly (measured: ~16-20 dB PSNR against the
# source where OpenJPEG gives ~55-62 dB, with or without the ICT), so lossy colour HTJ2K goes to
# OpenJPEG; greyscale and reversible colour HTJ2K decode identically (within one grey level for
# lossy greyscale, exactly for reversible) in both, and OpenJPH is the faster of the two.
DECODERS: dict[tuple[str, str, bool], str] = {
    **{(ts, pi, lossy): OPENJPEG for ts in J2K_FAMILY for pi in (*_GREY, *_COLOUR) for lossy in (False, True)},
    **{(ts, pi, lossy): OPENJPH for ts in HT_FAMILY for pi in _GREY for lossy in (False, True)},
    **{(ts, pi, False): OPENJPH for ts in HT_FAMILY for pi in _COLOUR},
    **{(ts, pi, True): OPENJPEG for ts in HT_FAMILY for pi in _COLOUR},
}


def _quiet_plugin_fallback(record: logging.LogRecord) -> bool:
    """Drop pydicom's traceback for each decoding plugin that fails before another one succeeds.

    pydicom tries its plugins in turn and logs every failure with ``LOGGER.exception`` (e.g. Pillow
    on 12-bit JPEG Extended, which pylibjpeg then decodes): a traceback per request for a frame that
    is served. When every plugin fails, the RuntimeError it raises names each failure and becomes
    a DecodeError here, so nothing is lost.
    """
    return record.exc_info is None


logging.getLogger("pydicom.pixels.decoders.base").addFilter(_quiet_plugin_fallback)


def decoder_for(transfer_syntax_uid: str, photometric_interpretation: str, lossy: bool) -> str:
    """Return the name of the decoder ``decode_frame`` uses for such a bitstream."""
    syntax = DECODE_AS.get(transfer_syntax_uid, transfer_syntax_uid)
    return DECODERS.get((syntax, photometric_interpretation, lossy), PYDICOM)


def pydicom_plugins(transfer_syntax_uid: str) -> tuple[str, ...]:
    """Return pydicom's decoding plugins available for a syntax, in the order it tries them."""
    syntax = DECODE_AS.get(transfer_syntax_uid, transfer_syntax_uid)
    if syntax in NATIVE_SYNTAXES or syntax == EXPLICIT_VR_BE:
        return ("native",)
    try:
        return tuple(get_decoder(syntax).available_plugins)
    except NotImplementedError:
        return ()


def irreversible(codestream: bytes) -> bool:
    """Whether a JPEG 2000 / HTJ2K codestream uses the irreversible 9-7 wavelet (is lossy).

    Walks the main header's marker segments to COD (PS3.5 A.4.4 / ISO 15444-1 A.6.1: SPcod's
    last byte is the transformation, 0 = 9-7 irreversible, 1 = 5-3 reversible). A codestream
    that cannot be read counts as lossy, which picks the decoder that is right in both cases.
    """
    position = 2 if codestream[:2] == b"\xff\x4f" else -1
    while 0 <= position <= len(codestream) - 4:
        marker = codestream[position:position + 2]
        length = int.from_bytes(codestream[position + 2:position + 4], "big")
        if marker == b"\xff\x52":  # COD: Lcod, Scod, SGcod (4 bytes), levels, xcb, ycb, style, transform
            offset = position + 13
            return offset >= len(codestream) or codestream[offset] == 0
        if marker in (b"\xff\x90", b"\xff\x93") or marker[:1] != b"\xff":  # SOT/SOD: no COD
            break
        position += 2 + length
    return True


# pylibjpeg-openjpeg is not thread-safe
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
    for syntax, function in table.items():
        table[syntax] = _locked(function)


def _locked(function: Callable[..., Any]) -> Callable[..., Any]:
    if not str(getattr(function, "__module__", "")).startswith("openjpeg") or hasattr(function, "__wrapped__"):
        return function

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        with _OPENJPEG_LOCK:
            return function(*args, **kwargs)

    return call


_serialize_openjpeg()
