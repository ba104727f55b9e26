"""Instances made on demand from pydicom's files: MR_small under new UIDs, emri_small in fragments (PS3.5 A.4)."""

from __future__ import annotations

import functools
import io
import struct

import numpy as np
from pydicom import Dataset, FileMetaDataset, dcmread
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import UID, generate_uid

PREFIX = "1.2.826.0.1.3680043.10.1011"  # a test root: nothing real lives under it


@functools.cache
def _template() -> Dataset:
    return dcmread(str(get_testdata_file("MR_small.dcm")))


def instance_bytes(study: str, series: str, instance: str, patient_name: str = "DOE^JOHN",
                   instance_number: int = 1) -> bytes:
    """One Explicit VR Little Endian MR instance (64x64, 16-bit) with these UIDs."""
    ds = _template().copy()
    ds.file_meta = FileMetaDataset(_template().file_meta)
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, instance
    ds.file_meta.MediaStorageSOPInstanceUID = UID(instance)
    ds.PatientName = patient_name
    ds.InstanceNumber = instance_number
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def uid(*parts: int | str) -> str:
    return ".".join([PREFIX, *(str(p) for p in parts)])


def _item(data: bytes) -> bytes:
    return struct.pack("<HHI", 0xFFFE, 0xE000, len(data)) + data


def _split(frame: bytes, pieces: int) -> list[bytes]:
    """Cut one bitstream into even-length fragments (PS3.5 A.4: every fragment has an even length)."""
    size = -(-len(frame) // pieces)
    size += size % 2
    return [frame[i:i + size] for i in range(0, len(frame), size)]


def fragmented(syntax: str, layout: str) -> tuple[bytes, list[bytes], np.ndarray]:
    """Part 10 bytes, frames and pixels of emri_small (10 frames) compressed in ``syntax``, its Pixel Data laid out as ``layout`` says."""
    ds = dcmread(str(get_testdata_file("emri_small.dcm")))
    pixels = ds.pixel_array
    ds.compress(syntax, generate_instance_uid=False)
    frames = list(generate_frames(ds.PixelData, number_of_frames=10))
    fragments = [_split(frame, 3) for frame in frames]
    if layout == "basic offset table":
        value = encapsulate(frames, fragments_per_frame=3, has_bot=True)
    elif layout.startswith("extended offset table"):  # PS3.5 A.4: 64-bit offsets, an empty Basic Offset Table
        pieces = fragments if layout.endswith("several fragments") else [[frame] for frame in frames]
        items = [b"".join(_item(piece) for piece in frame_pieces) for frame_pieces in pieces]
        value = _item(b"") + b"".join(items)
        offsets = np.cumsum([0] + [len(item) for item in items[:-1]], dtype="<u8")
        ds.ExtendedOffsetTable = offsets.tobytes()
        ds.ExtendedOffsetTableLengths = np.array([len(f) for f in frames], dtype="<u8").tobytes()
    else:  # no table at all: only the fragments' contents tell where a frame begins
        value = _item(b"") + b"".join(_item(piece) for pieces in fragments for piece in pieces)
    ds.PixelData = value
    ds["PixelData"].is_undefined_length = True
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue(), frames, pixels
