"""Convert pixel data between transfer syntaxes: one frame, or a whole Part 10 instance.

The server stores each frame as it arrived (native little-endian bytes, or one bare compressed
bitstream per frame) and converts only when a client asks for a syntax it does not have
(PS3.18 §8.7.3): decode with ``pixels.decode_frame``, encode with ``codecs.encode_frame``.
This module is the one callers import: it re-exports what they use of both.

Past 400 lines on purpose: a frame and a whole instance are converted by one set of rules (the lossy
bookkeeping of PS3.3 C.7.6.1.1.5, the target's pixel description, the streamed element layout), which
would otherwise be split across modules that each need the other's private steps.
"""

from __future__ import annotations

import contextlib
import copy
import io
import itertools
import struct
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, BinaryIO

import numpy as np
import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import generate_frames
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.multival import MultiValue
from pydicom.pixels import get_decoder  # type: ignore[attr-defined]
from pydicom.uid import UID

from ..errors import DecodeError, NotAcceptable
from ..model.media import (
    DEFLATED_EXPLICIT_VR_LE,
    EXPLICIT_VR_BE,
    EXPLICIT_VR_LE,
    IMPLICIT_VR_LE,
    counts_as_lossy,
)
from ..model.stored import PixelDescription
from .codecs import (
    ENCODERS,
    JPEG_LS_NEAR_ERROR,
    NO_ENCODER,
    EncodedFrame,
    can_encode,
    encode_frame,
)
from .encapsulation import ITEM, PIXEL_TAGS, pixel_element_start, spooled_items
from .pixels import (
    ALWAYS_LOSSY,
    NATIVE_SYNTAXES,
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
    "StoredPixels",
    "can_decode",
    "can_encode",
    "can_transcode",
    "decode_frame",
    "decoded_description",
    "encode_frame",
    "pixel_element_start",
    "read_head",
    "repack_bits",
    "transcode_frame",
    "transcode_instance",
    "transcode_stream",
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


def _values(ds: Dataset, keyword: str) -> list[Any]:
    value = ds.get(keyword)
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, list | MultiValue) else [value]


@dataclass(slots=True)
class _Lossy:
    """What the frames written so far say of lossy compression (PS3.3 C.7.6.1.1.5), without holding them."""

    raw: int = 0  # uncompressed bytes of the frames this step compressed lossily
    compressed: int = 0
    method: str | None = None
    lossy: bool = False

    def add(self, frame: EncodedFrame) -> None:
        self.lossy = self.lossy or frame.lossy
        if frame.lossy_method:
            self.raw += replace(frame.pixel, number_of_frames=1).frame_length
            self.compressed += len(frame.data)
            self.method = self.method or frame.lossy_method


def _set_lossy(ds: Dataset, lossy: _Lossy, source_lossy: bool, src_uid: str) -> None:
    """Record lossy compression (PS3.3 C.7.6.1.1.5): once "01", always "01"; append this step.

    Ratio and Method values correspond one to one; a source that gave earlier ratios without their
    methods gets the method of its own lossy syntax filled in first, when there is one.
    """
    if lossy.method:
        ratio = lossy.raw / max(lossy.compressed, 1)
        ratios, methods = _values(ds, "LossyImageCompressionRatio"), _values(ds, "LossyImageCompressionMethod")
        source_method = ENCODERS[src_uid].lossy_method if src_uid in ENCODERS else None
        if len(methods) < len(ratios) and source_method is not None:
            methods += [source_method] * (len(ratios) - len(methods))
        ds.LossyImageCompressionRatio = [*ratios, f"{ratio:.2f}"]
        ds.LossyImageCompressionMethod = [*methods, lossy.method]
    if lossy.method or source_lossy or lossy.lossy:
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

_EMPTY_BOT_LIMIT = 2**32 - 8  # Basic Offset Table offsets are 32-bit (PS3.5 A.4); past it, an Extended one


@dataclass(frozen=True, slots=True)
class StoredPixels:
    """The pixel data element of a stored instance, read a frame at a time (never whole)."""

    keyword: str  # PixelData, FloatPixelData or DoubleFloatPixelData
    pixel: PixelDescription  # as stored
    frames: Callable[[], Iterator[tuple[Array, PixelDescription]]]  # each frame decoded, in order
    raw: Callable[[], Iterator[bytes]]  # the stored value as it is (native pixels only)
    raw_length: int
    raw_vr: str


def transcode_instance(src: bytes | BinaryIO, dst_uid: str) -> bytes:
    """Rewrite a Part 10 instance held in memory in ``dst_uid``, updating File Meta, pixels and lossy attributes.

    A stored object that pydicom cannot handle on the way (a broken value read only now) is a
    DecodeError for this request, like pixel data that does not decode. For stored instances, which may be
    gigabytes, ``transcode_stream`` does the same a frame at a time.
    """
    with _instance_errors():
        return _transcode_instance(src, dst_uid)


@contextlib.contextmanager
def _instance_errors() -> Iterator[None]:
    try:
        yield
    except _INSTANCE_ERRORS as exc:
        raise DecodeError(f"cannot transcode the instance: {short_message(exc)}") from exc
    except BaseException as exc:
        if not is_panic(exc):
            raise
        raise DecodeError(f"cannot transcode the instance: {short_message(exc)}") from exc


def read_head(data: bytes) -> Dataset:
    """The elements of a stored file before its pixel data (``data`` ends where the pixel data element begins)."""
    with _instance_errors():
        return pydicom.dcmread(io.BytesIO(data), force=True)


def _transcode_instance(src: bytes | BinaryIO, dst_uid: str) -> bytes:
    raw, ds = _read(src)
    src_uid = _source_syntax(ds)
    if src_uid == dst_uid:
        return raw
    keyword = next((k for k in _PIXEL_KEYWORDS if k in ds), None)
    if keyword is None:
        return b"".join(_transcode_stream(ds, b"", dst_uid, None, _source_lossy(ds, src_uid)))
    _check_target(keyword, dst_uid)
    tag = PIXEL_TAGS[keyword]
    element = ds[keyword]
    pixel = _described(ds, keyword)
    tail = b""
    if after := [t for t in ds.keys() if t > tag]:
        fp = DicomBytesIO()
        fp.is_little_endian, fp.is_implicit_VR = True, False
        trailing = _subset(ds, after)
        if src_uid == EXPLICIT_VR_BE:
            swap_to_little_endian(trailing)
        write_dataset(fp, trailing)
        tail = fp.getvalue()
    head = _subset(ds, [t for t in ds.keys() if t < tag])
    frames = partial(_decoded_frames, ds, src_uid, pixel, element)
    vr = str(element.VR)
    if vr not in ("OB", "OW", "OF", "OD"):  # an ambiguous VR of an Implicit VR file: PS3.5 A.2 decides
        vr = "OW" if pixel.bits_allocated > 8 else "OB"
    pixels = StoredPixels(keyword, pixel, frames, partial(iter, [element.value]), len(element.value), vr)
    return b"".join(_transcode_stream(head, tail, dst_uid, pixels, _source_lossy(ds, src_uid)))


def _subset(ds: Dataset, tags: list[Any]) -> Dataset:
    """A new data set of some of ``ds``'s elements, with its File Meta, preamble and encoding (``ds`` unchanged)."""
    part = Dataset({tag: ds.get_item(tag) for tag in tags})
    meta = getattr(ds, "file_meta", None)
    part.file_meta = copy.deepcopy(meta) if isinstance(meta, FileMetaDataset) else FileMetaDataset()
    part.preamble = getattr(ds, "preamble", None)
    implicit, little = ds.original_encoding
    part.set_original_encoding(implicit, little, ds.original_character_set)
    return part


_VR = {"PixelData": "OW", "FloatPixelData": "OF", "DoubleFloatPixelData": "OD"}


def _source_syntax(ds: Dataset) -> str:
    meta = ds.file_meta if isinstance(getattr(ds, "file_meta", None), FileMetaDataset) else None
    implicit = ds.original_encoding[0]
    found = meta.get("TransferSyntaxUID") if meta is not None else None
    return str(found or (IMPLICIT_VR_LE if implicit else EXPLICIT_VR_LE))


def _source_lossy(ds: Dataset, src_uid: str) -> bool:
    return counts_as_lossy(src_uid, str(ds.get("LossyImageCompression", "")).strip())


def _check_target(keyword: str | None, dst_uid: str) -> None:
    if dst_uid not in ENCODERS:
        reason = video_reason(dst_uid) or NO_ENCODER.get(dst_uid) or "unsupported transfer syntax"
        raise NotAcceptable(f"cannot encode the instance as {syntax_name(dst_uid)}: {reason}")
    if dst_uid not in NATIVE_SYNTAXES and keyword != "PixelData":
        what = "a non-image instance" if keyword is None else keyword
        raise NotAcceptable(f"cannot encode {what} as {syntax_name(dst_uid)}: only native syntaxes can hold it")


def _described(ds: Dataset, keyword: str) -> PixelDescription:
    try:
        pixel = _pixel_description(ds)
    except (AttributeError, TypeError, ValueError) as exc:
        raise DecodeError(f"cannot decode frame: incomplete Image Pixel module ({exc})") from exc
    return _for_encoding(pixel, keyword)


def _decoded_frames(ds: Dataset, src_uid: str, pixel: PixelDescription,
                    element: DataElement) -> Iterator[tuple[Array, PixelDescription]]:
    value = element.value
    if src_uid in NATIVE_SYNTAXES or src_uid == EXPLICIT_VR_BE:
        # pydicom reads native data (either byte order, packed bits, planar, 4:2:2) from the dataset
        for arr, properties in get_decoder(src_uid).iter_array(ds, raw=True):
            yield normalize_decoded(arr, properties, pixel)
        return
    eot = None
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        eot = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
    for frame in generate_frames(value, number_of_frames=pixel.number_of_frames, extended_offsets=eot):
        yield decode_frame(frame, src_uid, pixel)



def transcode_stream(ds: Dataset, tail: bytes, dst_uid: str, pixels: StoredPixels | None,
                     source_lossy: bool) -> Iterator[bytes]:
    """Yield a Part 10 instance in ``dst_uid``: ``ds`` (the elements before its pixel data, with File Meta), the
    pixel data converted a frame at a time, then ``tail`` (the elements after it, Explicit VR Little Endian).

    Memory holds one frame. Native output streams as it is decoded (its offsets follow from the frame size);
    encapsulated output is encoded into a temporary file first, since the Basic Offset Table (or, past 4 GiB, the
    Extended Offset Table) and the lossy compression ratio before the pixels depend on every frame.
    """
    with _instance_errors():
        yield from _transcode_stream(ds, tail, dst_uid, pixels, source_lossy)


def _transcode_stream(ds: Dataset, tail: bytes, dst_uid: str, pixels: StoredPixels | None,
                      source_lossy: bool) -> Iterator[bytes]:
    src_uid = _source_syntax(ds)
    meta = ds.file_meta if isinstance(getattr(ds, "file_meta", None), FileMetaDataset) else FileMetaDataset()
    _check_target(None if pixels is None else pixels.keyword, dst_uid)
    for keyword in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
        if keyword in ds:
            del ds[keyword]
    lossy = _Lossy()
    element = b""
    body: Iterator[bytes] = iter(())
    if pixels is not None and src_uid in NATIVE_SYNTAXES and dst_uid in NATIVE_SYNTAXES:
        element = _element_header(pixels.keyword, pixels.raw_vr, pixels.raw_length)  # the stored value, untouched
        body = pixels.raw()
    elif pixels is not None and dst_uid in NATIVE_SYNTAXES:
        decoded = decoded_description(src_uid, pixels.pixel)
        native = replace(decoded, number_of_frames=pixels.pixel.number_of_frames)
        length = -(-native.frame_bits * native.number_of_frames // 8)
        vr = "OB" if native.bits_allocated <= 8 and pixels.keyword == "PixelData" else _VR[pixels.keyword]
        element = _element_header(pixels.keyword, vr, length + length % 2)
        ds.PhotometricInterpretation = decoded.photometric_interpretation
        if decoded.samples_per_pixel > 1:
            ds.PlanarConfiguration = 0
        body = _native_frames(pixels, dst_uid, source_lossy, decoded, length, lossy)
    elif pixels is not None:
        spool = tempfile.TemporaryFile(prefix="dicomweb-transcode-")  # noqa: SIM115 - closed below
        try:
            lengths, first = _encode_to(spool, pixels, dst_uid, source_lossy, lossy)
        except BaseException:
            spool.close()
            raise
        ds.PhotometricInterpretation = first.photometric_interpretation
        if first.samples_per_pixel > 1:
            ds.PlanarConfiguration = 0
        if "IconImageSequence" in ds:  # an icon's own encapsulated pixels would not match
            del ds.IconImageSequence
        element, table = _encapsulated_header(ds, lengths)
        body = spooled_items(spool, lengths, table)
    if pixels is not None:
        _set_lossy(ds, lossy, source_lossy, src_uid)
    meta.TransferSyntaxUID = UID(dst_uid)
    if "SOPClassUID" in ds:
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
    if "SOPInstanceUID" in ds:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if src_uid == EXPLICIT_VR_BE:  # retired, but it may have been stored as received
        swap_to_little_endian(ds, pixels=False)
    head = DicomBytesIO()
    head.write((getattr(ds, "preamble", None) or b"\0" * 128)[:128].ljust(128, b"\0") + b"DICM")
    try:
        write_file_meta_info(head, meta, enforce_standard=True)
        start = head.tell()
        head.is_little_endian, head.is_implicit_VR = True, False
        write_dataset(head, Dataset({t: ds[t] for t in ds.keys() if t.group != 2}))
    except Exception as exc:
        raise NotAcceptable(f"cannot encode the instance as {syntax_name(dst_uid)}: {exc}") from exc
    data = head.getvalue()
    chunks = itertools.chain([data[start:], element], body, [tail])
    if dst_uid != DEFLATED_EXPLICIT_VR_LE:
        yield data[:start]
        yield from chunks
        return
    yield data[:start]
    deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)  # raw deflate (PS3.5 A.5)
    size = 0
    for chunk in chunks:
        if out := deflate.compress(chunk):
            size += len(out)
            yield out
    end = deflate.flush()
    yield end + b"\0" * ((size + len(end)) % 2)  # a Part 10 file has an even length, as pydicom writes it


def _element_header(keyword: str, vr: str, length: int) -> bytes:
    tag = PIXEL_TAGS[keyword]
    return struct.pack("<HH2sHI", tag >> 16, tag & 0xFFFF, vr.encode(), 0, length)


def _native_frames(pixels: StoredPixels, dst_uid: str, source_lossy: bool, decoded: PixelDescription,
                   length: int, lossy: _Lossy) -> Iterator[bytes]:
    """The native value, a frame at a time; 1-bit frames packed on across frame boundaries (PS3.5 §8.1.1)."""
    written = 0
    carry = np.zeros(0, dtype=np.uint8)  # bits of a 1-bit frame left over from the byte before
    for arr, desc in pixels.frames():
        desc = _for_encoding(desc, pixels.keyword)
        if desc.photometric_interpretation != decoded.photometric_interpretation:
            raise DecodeError(f"a frame decoded as {desc.photometric_interpretation}, not"
                              f" {decoded.photometric_interpretation} like the first ones")
        if desc.bits_allocated == 1:
            bits = np.concatenate([carry, np.asarray(arr, dtype=np.uint8).ravel() & 1])
            whole = len(bits) - len(bits) % 8
            data, carry = np.packbits(bits[:whole], bitorder="little").tobytes(), bits[whole:]
        else:
            frame = encode_frame(arr, desc, dst_uid, source_lossy=source_lossy)
            lossy.add(frame)
            data = frame.data
        written += len(data)
        yield data
    if len(carry):
        written += 1
        yield np.packbits(carry, bitorder="little").tobytes()
    if written != length:
        raise DecodeError(f"the frames decoded to {written} bytes, not the {length} their description makes")
    if length % 2:
        yield b"\0"


def _for_encoding(desc: PixelDescription, keyword: str) -> PixelDescription:
    # float pixels use every bit of their samples (PS3.3 C.7.6.24)
    return desc if keyword == "PixelData" else replace(desc, bits_stored=desc.bits_allocated)


def _encode_to(spool: BinaryIO, pixels: StoredPixels, dst_uid: str, source_lossy: bool,
               lossy: _Lossy) -> tuple[list[int], PixelDescription]:
    """Encode every frame into ``spool``, one after the other; return their lengths and the first's description."""
    lengths: list[int] = []
    first: PixelDescription | None = None
    for arr, desc in pixels.frames():
        frame = encode_frame(arr, desc, dst_uid, source_lossy=source_lossy)
        lossy.add(frame)
        first = first or frame.pixel
        data = frame.data + b"\0" * (len(frame.data) % 2)  # items have even lengths (PS3.5 A.4)
        spool.write(data)
        lengths.append(len(data))
    if first is None:
        raise DecodeError("the instance has no frames to encode")
    spool.flush()
    return lengths, first


def _encapsulated_header(ds: Dataset, lengths: list[int]) -> tuple[bytes, bytes]:
    """The pixel data element's header and its Basic Offset Table item; an Extended Offset Table past 4 GiB."""
    offsets = list(itertools.accumulate((8 + n for n in lengths[:-1]), initial=0))
    if sum(8 + n for n in lengths) < _EMPTY_BOT_LIMIT:
        table = struct.pack(f"<{len(offsets)}I", *offsets)
    else:  # PS3.5 A.4: 64-bit offsets in (7FE0,0001) and lengths in (7FE0,0002), the Basic table empty
        table = b""
        ds.ExtendedOffsetTable = struct.pack(f"<{len(offsets)}Q", *offsets)
        ds.ExtendedOffsetTableLengths = struct.pack(f"<{len(lengths)}Q", *lengths)
    header = _element_header("PixelData", "OB", 0xFFFFFFFF)
    return header, ITEM + struct.pack("<I", len(table)) + table


