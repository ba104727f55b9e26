"""Convert pixel data between transfer syntaxes: one frame, or a whole Part 10 instance.

The server stores each frame as it arrived (native little-endian bytes, or one bare compressed
bitstream per frame) and converts only when a client asks for a syntax it does not have
(PS3.18 §8.7.3): decode with ``pixels.decode_frame``, encode with ``codecs.encode_frame``.
This module is the one callers import: it re-exports what they use of both.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, BinaryIO

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, encapsulate_extended, generate_frames
from pydicom.multival import MultiValue
from pydicom.pixels import get_decoder  # type: ignore[attr-defined]
from pydicom.uid import UID

from ..errors import DecodeError, NotAcceptable
from ..model import (
    DEFLATED_EXPLICIT_VR_LE,
    EXPLICIT_VR_BE,
    EXPLICIT_VR_LE,
    IMPLICIT_VR_LE,
    PixelDescription,
    counts_as_lossy,
)
from .codecs import (
    ENCODERS,
    JPEG_LS_NEAR_ERROR,
    NO_ENCODER,
    EncodedFrame,
    can_encode,
    encode_frame,
)
from .pixels import (
    ALWAYS_LOSSY,
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
    NATIVE_SYNTAXES,
    RLE_LOSSLESS,
    Array,
    can_decode,
    decode_frame,
    decoded_description,
    is_panic,
    normalize_decoded,
    repack_bits,
    short_message,
    syntax_name,
    video_reason,
)
from .reader import READ_ERRORS, swap_to_little_endian

__all__ = [
    "DEFLATED_EXPLICIT_VR_LE",
    "EXPLICIT_VR_BE",
    "EXPLICIT_VR_LE",
    "HTJ2K",
    "HTJ2K_LOSSLESS",
    "HTJ2K_RPCL",
    "IMPLICIT_VR_LE",
    "J2K",
    "J2K_LOSSLESS",
    "J2K_PART2",
    "J2K_PART2_LOSSLESS",
    "JPEG_BASELINE",
    "JPEG_EXTENDED",
    "JPEG_LOSSLESS",
    "JPEG_LOSSLESS_SV1",
    "JPEG_LS_LOSSLESS",
    "JPEG_LS_NEAR",
    "JPEG_LS_NEAR_ERROR",
    "NATIVE_SYNTAXES",
    "RLE_LOSSLESS",
    "EncodedFrame",
    "can_decode",
    "can_encode",
    "can_transcode",
    "decode_frame",
    "decoded_description",
    "encode_frame",
    "repack_bits",
    "transcode_frame",
    "transcode_instance",
]


def can_transcode(src_uid: str, dst_uid: str, pixel: PixelDescription) -> bool:
    """Return True when frames stored in ``src_uid`` can be delivered in ``dst_uid``."""
    if src_uid == dst_uid:
        return True
    return can_decode(src_uid) and can_encode(dst_uid, decoded_description(src_uid, pixel))




def transcode_frame(data: bytes, src_uid: str, dst_uid: str, pixel: PixelDescription, *,
                    source_lossy: bool, pixel_keyword: str = "PixelData") -> EncodedFrame:
    """Convert one stored frame from ``src_uid`` to ``dst_uid``; pass it through when no change is needed."""
    source_lossy = source_lossy or src_uid in ALWAYS_LOSSY
    if src_uid == dst_uid or (src_uid in NATIVE_SYNTAXES and dst_uid in NATIVE_SYNTAXES):
        return EncodedFrame(bytes(data), dst_uid, replace(pixel, number_of_frames=1), lossy=source_lossy)
    array, decoded = decode_frame(data, src_uid, pixel, pixel_keyword)
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
            yield normalize_decoded(arr, properties, pixel)
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
        raise DecodeError(f"cannot transcode the instance: {short_message(exc)}") from exc
    except BaseException as exc:
        if not is_panic(exc):
            raise
        raise DecodeError(f"cannot transcode the instance: {short_message(exc)}") from exc


def _transcode_instance(src: bytes | BinaryIO, dst_uid: str) -> bytes:
    raw, ds = _read(src)
    meta = ds.file_meta if isinstance(getattr(ds, "file_meta", None), FileMetaDataset) else FileMetaDataset()
    implicit = ds.original_encoding[0]
    src_uid = str(meta.get("TransferSyntaxUID") or (IMPLICIT_VR_LE if implicit else EXPLICIT_VR_LE))
    if src_uid == dst_uid:
        return raw
    keyword = next((k for k in _PIXEL_KEYWORDS if k in ds), None)
    if dst_uid not in ENCODERS:
        reason = video_reason(dst_uid) or NO_ENCODER.get(dst_uid) or "unsupported transfer syntax"
        raise NotAcceptable(f"cannot encode the instance as {syntax_name(dst_uid)}: {reason}")
    if dst_uid not in NATIVE_SYNTAXES and keyword != "PixelData":
        what = "a non-image instance" if keyword is None else keyword
        raise NotAcceptable(f"cannot encode {what} as {syntax_name(dst_uid)}: only native syntaxes can hold it")

    source_lossy = counts_as_lossy(src_uid, str(ds.get("LossyImageCompression", "")).strip())
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
        swap_to_little_endian(ds, pixels=False)  # the pixels were re-encoded little endian above
    out = io.BytesIO()
    try:
        pydicom.dcmwrite(out, ds, enforce_file_format=True)
    except Exception as exc:
        raise NotAcceptable(f"cannot encode the instance as {syntax_name(dst_uid)}: {exc}") from exc
    return out.getvalue()
