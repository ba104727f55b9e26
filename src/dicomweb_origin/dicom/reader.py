"""Parse an incoming file once, at ingest: normalized bytes, dataset, frame and bulk data offsets.

Everything retrieve needs later is computed here, so that no request ever parses a stored file.
Files in Implicit VR LE, Explicit VR Big Endian or Deflate, or without File Meta Information, are
re-encoded once as Explicit VR Little Endian (PS3.18 §8.7.3: Implicit VR and Big Endian are never
sent on the web); everything else is stored byte for byte as received.
"""

from __future__ import annotations

import io
import struct
import tempfile
import warnings
import zlib
from dataclasses import dataclass
from typing import BinaryIO, cast

import numpy as np
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.filebase import DicomFileLike
from pydicom.filereader import read_dataset
from pydicom.filewriter import dcmwrite, write_file_meta_info
from pydicom.uid import UID

from ..errors import IngestError, NotDicom
from ..model.media import (
    DEFLATED_EXPLICIT_VR_LE,
    EXPLICIT_VR_BE,
    EXPLICIT_VR_LE,
    IMPLICIT_VR_LE,
    TRANSFER_SYNTAXES,
)
from ..model.stored import BulkElement, Frame, PixelDescription
from . import encapsulation, headers, prescan

# VRs whose values ingest moves out of the metadata into bulk data (PS3.18 §F.2.6 allows more; binary
# VRs are what pydicom externalizes and what clients expect as BulkDataURI).
BULK_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
# Bulk elements whatever their size: rendering reads the ICC Profile (PS3.3 C.11.15) and the
# Encapsulated Document (PS3.3 C.24.2) by their offsets.
ALWAYS_BULK = frozenset({0x00282000, 0x00420011})
PIXEL_TAGS = {0x7FE00010: "7FE00010", 0x7FE00008: "7FE00008", 0x7FE00009: "7FE00009"}
VIDEO_SYNTAXES = frozenset(uid for uid, ts in TRANSFER_SYNTAXES.items() if ts.video)
NORMALIZED_SYNTAXES = {IMPLICIT_VR_LE, EXPLICIT_VR_BE, DEFLATED_EXPLICIT_VR_LE}
_SWAP_WIDTH = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}
SPOOL_LIMIT = 64 << 20

# Reading leniently and keeping what we read: broken values are kept as they are, not "fixed".
pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE


@dataclass(slots=True)
class ParsedFile:
    """An instance ready to store: the stream to store and what was learnt from it."""

    stream: BinaryIO  # positioned at 0; the bytes to store
    dataset: Dataset  # everything but the top-level pixel data
    transfer_syntax_uid: str  # of ``stream``
    source_transfer_syntax_uid: str
    pixel: PixelDescription | None
    pixel_path: str | None
    pixel_vr: str | None
    frames: tuple[Frame, ...]
    bulk: dict[str, BulkElement]


# What pydicom, numpy and zlib raise on malformed data (found by mutating real files: see
# tests/retrieve/test_hostile_files.py; pydicom even raises TypeError while wording some of its errors).
# Errors of other types (AttributeError, NameError, ...) are taken for bugs here, not faults of
# the file, and are reported as such.
READ_ERRORS: tuple[type[BaseException], ...] = (
    InvalidDicomError, BytesLengthException, EOFError, ValueError, KeyError, IndexError, TypeError,
    struct.error, zlib.error, OSError, NotImplementedError, OverflowError, UnicodeError, MemoryError,
    RecursionError,  # a backstop: nesting is bounded before pydicom reads (prescan.py)
)


def parse(source: BinaryIO, threshold: int, max_depth: int = 32) -> ParsedFile:
    """Read ``source`` (seekable), normalizing its encoding when it cannot be served as stored.

    Sequences nested deeper than ``max_depth`` are refused before pydicom reads them (prescan.py).
    """
    source.seek(0)
    head = source.read(132)
    source.seek(0)
    has_preamble = len(head) == 132 and head[128:132] == b"DICM"
    if problem := prescan.start_problem(source, 132 if has_preamble else 0):
        raise (IngestError if has_preamble else NotDicom)(problem)
    prescan.check_depth(source, 132 if has_preamble else 0, max_depth)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = pydicom.dcmread(source, stop_before_pixels=True, defer_size=threshold, force=True)
    except READ_ERRORS as exc:
        # With the Part 10 preamble it is a broken DICOM file; without it, most likely not DICOM at all.
        error = IngestError if has_preamble else NotDicom
        raise error(f"not a readable DICOM file: {exc}") from exc
    if not _looks_like_dicom(dataset):
        if has_preamble:
            raise IngestError("the dataset has no SOP Class UID / SOP Instance UID (truncated or incomplete?)")
        raise NotDicom("not DICOM: no SOP Class UID / SOP Instance UID")
    meta = getattr(dataset, "file_meta", None)
    if meta is not None:
        try:  # File Meta values are read lazily: a broken one would fail every later rewrite of the file
            for element in meta:
                _ = element.value
        except Exception as exc:  # noqa: BLE001 - pydicom raises many types on a broken value
            raise IngestError(f"broken File Meta Information: {exc}") from exc
    source_ts = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    if source_ts != DEFLATED_EXPLICIT_VR_LE:  # a truncated deflate stream fails in zlib instead
        implicit, little = dataset.original_encoding
        prescan.check_complete(source, 132 if has_preamble else 0, bool(implicit), little is not False)
    implicit, little = dataset.original_encoding
    # A file whose body is not encoded as its transfer syntax says (e.g. Implicit VR under a JPEG
    # syntax) would be served with wrong offsets: re-encode it too.
    miscoded = source_ts not in NORMALIZED_SYNTAXES and (bool(implicit) or little is False)
    if not has_preamble or not source_ts or source_ts in NORMALIZED_SYNTAXES or miscoded:
        return _parse_normalized(source, source_ts, source_ts or IMPLICIT_VR_LE, threshold, max_depth)
    pixel_start = source.tell()
    try:
        pixel, pixel_path, pixel_vr, frames = _scan_pixel_data(source, pixel_start, dataset, source_ts)
    except _Miscoded:
        return _parse_normalized(source, source_ts, source_ts, threshold, max_depth)
    if pixel is not None:
        _read_trailing(source, dataset, threshold)
    bulk = _bulk_offsets(dataset, threshold, "")
    source.seek(0)
    return ParsedFile(source, dataset, source_ts, source_ts, pixel, pixel_path, pixel_vr, frames, bulk)


def _parse_normalized(source: BinaryIO, source_ts: str, reported_ts: str, threshold: int,
                      max_depth: int) -> ParsedFile:
    """Parse the re-encoded copy of ``source``; the copy (a temporary file) is closed here if that fails."""
    stream = _normalize(source, source_ts)
    try:
        parsed = parse(stream, threshold, max_depth)
    except BaseException:
        stream.close()
        raise
    parsed.source_transfer_syntax_uid = reported_ts
    return parsed



def _looks_like_dicom(dataset: Dataset) -> bool:
    return "SOPInstanceUID" in dataset and "SOPClassUID" in dataset and len(dataset) > 2


class _Miscoded(Exception):
    """The file is not encoded as its transfer syntax says: re-encode it before storing."""



def _normalize(source: BinaryIO, source_ts: str) -> BinaryIO:
    """Re-encode as Explicit VR Little Endian Part 10 into a spooled temporary file.

    Compressed pixel data stays as it is, under its own (encapsulated) transfer syntax.
    """
    source.seek(0)
    out: BinaryIO | None = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = pydicom.dcmread(source, force=True)
            for _ in dataset.iterall():  # resolve every VR now (elements read as Implicit VR have none)
                pass
            big_endian = source_ts == EXPLICIT_VR_BE
            if big_endian:
                swap_to_little_endian(dataset)
            dataset.ensure_file_meta()
            meta = dataset.file_meta
            keep = TRANSFER_SYNTAXES.get(source_ts)
            meta.TransferSyntaxUID = UID(source_ts if keep is not None and keep.encapsulated else EXPLICIT_VR_LE)
            meta.MediaStorageSOPClassUID = dataset.SOPClassUID
            meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
            out = cast(BinaryIO, tempfile.SpooledTemporaryFile(max_size=SPOOL_LIMIT))  # noqa: SIM115
            out.write(b"\0" * 128 + b"DICM")
            write_file_meta_info(DicomFileLike(out), meta, enforce_standard=True)
            # The body alone, so that pydicom lets us change its byte order (force_encoding).
            body = Dataset(dataset)
            body.set_original_encoding(dataset.is_implicit_VR, dataset.is_little_endian, dataset.original_character_set)
            dcmwrite(out, body, implicit_vr=False, little_endian=True, force_encoding=True)
    except Exception as exc:  # pydicom raises many types on broken input; report, never crash
        if out is not None:
            out.close()  # the half-written copy
        if isinstance(exc, IngestError):
            raise
        raise IngestError(f"cannot re-encode as Explicit VR Little Endian: {exc}") from exc
    out.seek(0)
    return out


def swap_to_little_endian(dataset: Dataset, *, pixels: bool = True) -> None:
    """Byte-swap multi-byte binary values read from Big Endian; pydicom decodes the numeric VRs itself.

    OW Pixel Data holds one value per pixel sample: 32- and 64-bit samples swap as wholes, like
    pydicom's own reading of such files (e.g. ``rtdose_expb.dcm``), not as pairs of 16-bit words.
    ``pixels=False`` leaves the top-level pixel data alone (a caller that re-encoded it already).
    """
    for element in dataset:
        if element.VR == "SQ":
            for item in element.value:
                swap_to_little_endian(item)
            continue
        if not pixels and element.tag in PIXEL_TAGS:
            continue
        width = _SWAP_WIDTH.get(element.VR) or (2 if element.VR == "US or OW" else 0)
        if element.tag == 0x7FE00010 and width == 2 and dataset.get("BitsAllocated") in (32, 64):
            width = int(dataset.BitsAllocated) // 8
        if width and isinstance(element.value, bytes) and len(element.value) % width == 0:
            element.value = np.frombuffer(element.value, dtype=f">u{width}").astype(f"<u{width}").tobytes()


def bulk_offsets(dataset: Dataset, threshold: int) -> dict[str, BulkElement]:
    """Offsets of the bulk elements of a data set read from the start of a stored blob."""
    return _bulk_offsets(dataset, threshold, "")


def _bulk_offsets(dataset: Dataset, threshold: int, prefix: str, base: int = 0) -> dict[str, BulkElement]:
    """Offsets of every bulk-data-sized binary value, including those inside sequences.

    pydicom parses a defined-length sequence later, from a buffer of its value: the positions it
    records inside are relative to that value (``base``), not to the file.
    """
    found: dict[str, BulkElement] = {}
    for tag in list(dataset.keys()):
        raw = dataset._dict[tag]
        path = f"{prefix}{int(tag):08X}"
        if isinstance(raw, RawDataElement):
            vr, length, tell = raw.VR, raw.length, raw.value_tell
        else:
            vr, length, tell = raw.VR, 0, -1
        if vr == "SQ":
            nested = base + tell if isinstance(raw, RawDataElement) else base
            for number, item in enumerate(dataset[tag].value, start=1):
                found.update(_bulk_offsets(item, threshold, f"{path}/{number}/", nested))
        elif vr in BULK_VRS and length != 0xFFFFFFFF and tell >= 0 and (
            length > threshold or int(tag) in ALWAYS_BULK and length > 0
        ):
            found[path] = BulkElement(path, vr, base + tell, length)
    return found


def _scan_pixel_data(
    fp: BinaryIO, start: int, dataset: Dataset, ts: str
) -> tuple[PixelDescription | None, str | None, str | None, tuple[Frame, ...]]:
    """Locate the top-level pixel data and the byte ranges of each frame, without reading it."""
    fp.seek(start)
    header = fp.read(12)
    if len(header) < 8:
        return None, None, None, ()
    group, element = struct.unpack("<HH", header[:4])
    tag = (group << 16) | element
    if tag not in PIXEL_TAGS:
        return None, None, None, ()
    if not (header[4:6].isalpha() and header[4:6].isupper()):
        raise _Miscoded  # an Implicit VR element inside an Explicit VR file: pydicom copes, offsets would not
    vr = header[4:6].decode("ascii")
    length = struct.unpack("<I", header[8:12])[0]
    value_start = start + 12
    pixel = _pixel_description(dataset, tag)
    count = pixel.number_of_frames
    if length != 0xFFFFFFFF and value_start + length > fp.seek(0, io.SEEK_END):
        raise IngestError(f"the file is truncated: Pixel Data declares {length} bytes past the end of the file")
    if length != 0xFFFFFFFF:
        frame_length = pixel.frame_length
        if pixel.bits_allocated == 1 and pixel.frame_bits % 8:
            # Packed 1-bit frames that do not start on byte boundaries: record the bytes that cover
            # each frame; where in its first byte a frame starts follows from its index (frame_bit_offset).
            bits = pixel.frame_bits
            if (bits * count + 7) // 8 > length:
                raise IngestError(f"Pixel Data holds {length} bytes, fewer than {count} 1-bit frame(s) need")
            covers = tuple(((value_start + i * bits // 8, ((i + 1) * bits + 7) // 8 - i * bits // 8),)
                           for i in range(count))
            fp.seek(value_start + length)
            return pixel, PIXEL_TAGS[tag], vr, covers
        if frame_length * count > length:
            raise IngestError(
                f"Pixel Data holds {length} bytes, fewer than the {frame_length * count} that"
                f" {count} frame(s) of {pixel.rows}x{pixel.columns} need"
            )
        native: tuple[Frame, ...] = tuple(((value_start + i * frame_length, frame_length),) for i in range(count))
        fp.seek(value_start + length)
        return pixel, PIXEL_TAGS[tag], vr, native
    fragments, offsets = encapsulation.read_fragments(fp, value_start)
    end = fp.tell()
    if ts in VIDEO_SYNTAXES:
        # A video is one bitstream holding every frame: served whole, never frame by frame (§8.7.3.3.2).
        whole: tuple[Frame, ...] = (tuple(fragments),)
        return pixel, PIXEL_TAGS[tag], vr, whole
    frames = encapsulation.group_fragments(fp, fragments, offsets, dataset, count, value_start)
    _check_headers(fp, frames, ts, pixel)
    fp.seek(end)
    return pixel, PIXEL_TAGS[tag], vr, frames


HEADER_READ = 4 << 10  # bytes of a frame read for its header at first; more only when it does not end there


def _check_headers(fp: BinaryIO, frames: tuple[Frame, ...], ts: str, pixel: PixelDescription) -> None:
    """Refuse a frame whose bitstream header disagrees with the Image Pixel module (headers.py), now.

    Stored, such a frame would send a decoder after what its header claims (gigabytes for a few hundred bytes)
    on every request that decodes it. Reads the first kilobytes of each frame.
    """
    for number, fragments in enumerate(frames, start=1):
        size = sum(length for _, length in fragments)
        wanted = HEADER_READ
        while True:
            head = _read_frame_start(fp, fragments, wanted)
            try:
                header = headers.read_header(head, ts, size)
            except headers.Truncated as exc:
                if len(head) < wanted:  # the whole frame was read: it ends inside its header
                    raise IngestError(f"frame {number} cannot be decoded: {exc}") from exc
                wanted *= 8
                continue
            except headers.HeaderError as exc:
                raise IngestError(f"frame {number} cannot be decoded: {exc}") from exc
            break
        problem = None if header is None else headers.frame_problem(header, pixel)
        if problem is not None:
            raise IngestError(f"frame {number} does not match the Image Pixel module: {problem}")


def _read_frame_start(fp: BinaryIO, fragments: Frame, wanted: int) -> bytes:
    """Up to ``wanted`` bytes from the start of a frame, across its fragments."""
    chunks = []
    for start, length in fragments:
        fp.seek(start)
        chunks.append(fp.read(min(length, wanted)))
        wanted -= len(chunks[-1])
        if wanted <= 0:
            break
    return b"".join(chunks)


def _read_trailing(fp: BinaryIO, dataset: Dataset, threshold: int) -> None:
    """Add the elements stored after Pixel Data (e.g. Digital Signatures) so metadata loses nothing.

    ``fp`` is positioned just after the pixel data value. Data Set Trailing Padding is padding,
    not data, and is left out (PS3.10 §7.2).
    """
    start = fp.tell()
    if not fp.read(8):
        return
    fp.seek(start)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trailing = read_dataset(fp, is_implicit_VR=False, is_little_endian=True, bytelength=None,
                                    defer_size=threshold)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on broken input
        raise IngestError(f"cannot read the elements after Pixel Data: {exc}") from exc
    for tag in list(trailing.keys()):
        if tag != 0xFFFCFFFC and tag not in PIXEL_TAGS:
            dataset._dict[tag] = trailing._dict[tag]



def _pixel_description(dataset: Dataset, tag: int) -> PixelDescription:
    """The Image Pixel attributes that describe Pixel Data; IngestError naming what is missing or unreadable."""
    fixed = None if tag == 0x7FE00010 else (32 if tag == 0x7FE00008 else 64)  # Float / Double Float Pixel Data
    allocated = fixed or _pixel_int(dataset, "BitsAllocated", None)
    return PixelDescription(
        rows=_pixel_int(dataset, "Rows", None),
        columns=_pixel_int(dataset, "Columns", None),
        samples_per_pixel=_pixel_int(dataset, "SamplesPerPixel", 1),
        bits_allocated=allocated,
        bits_stored=_pixel_int(dataset, "BitsStored", allocated),
        pixel_representation=_pixel_int(dataset, "PixelRepresentation", 0),
        photometric_interpretation=str(dataset.get("PhotometricInterpretation") or "MONOCHROME2").strip(),
        planar_configuration=_pixel_int(dataset, "PlanarConfiguration", 0),
        number_of_frames=max(_pixel_int(dataset, "NumberOfFrames", 1), 1),
    )


def _pixel_int(dataset: Dataset, keyword: str, default: int | None) -> int:
    """One integer attribute of the Image Pixel module; ``default`` when absent or empty (None: required)."""
    value = dataset.get(keyword)
    if value is None or value == "":
        if default is None:
            raise IngestError(f"Pixel Data without {keyword}, which the Image Pixel module requires")
        return default
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise IngestError(f"Pixel Data with an unreadable {keyword}: {str(value)[:40]!r}") from exc


