"""The memory probes of issue 16 as data: hostile and large instances made on demand, and a server's peak memory.

Shared by tests/e2e/test_memory.py (small sizes, a small ``--max-request-memory-mb``) and benchmarks/memory.py (the
issue's sizes). Every generated instance is real DICOM that pydicom reads; the pixels of the compressed ones are
encoded by imagecodecs (OpenJPEG) and decoded again here, so a broken generator cannot hide a broken server.
"""

from __future__ import annotations

import io
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import imagecodecs
import numpy as np
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import UID, generate_uid

T = TypeVar("T")
PREFIX = "1.2.826.0.1.3680043.10.1016."  # a test root for issue 16's probes
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
MULTIFRAME_BYTE_SC = "1.2.840.10008.5.1.4.1.1.7.2"
MULTIFRAME_WORD_SC = "1.2.840.10008.5.1.4.1.1.7.3"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"
JLS_LOSSLESS = "1.2.840.10008.1.2.4.80"
MIB = 1 << 20


def uid() -> str:
    return generate_uid(prefix=PREFIX)


def _dataset(sop_class: str, rows: int, columns: int, bits: int, frames: int, syntax: str,
             study: str | None = None, series: str | None = None) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(syntax)
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, uid()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study or uid(), series or uid()
    ds.PatientID, ds.PatientName, ds.Modality = "MEMORY", "PROBE^MEMORY", "OT"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = rows, columns, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    if frames > 1:
        ds.NumberOfFrames = frames
    return ds


def _part10(ds: Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def j2k_codestream(rows: int, columns: int, claimed: tuple[int, int] | None = None) -> bytes:
    """A reversible JPEG 2000 codestream of a 16-bit gradient; ``claimed`` (columns, rows) rewrites its SIZ marker.

    With ``claimed``, the image and tile sizes of SIZ (ISO 15444-1 A.5.1) say ``claimed`` while the codestream holds
    ``rows`` x ``columns``: a few hundred bytes that send a decoder after gigabytes.
    """
    pixels = (np.add.outer(np.arange(rows), np.arange(columns)) % 4096).astype(np.uint16)
    codestream = bytearray(imagecodecs.jpeg2k_encode(pixels, level=0, codecformat="J2K"))
    assert codestream[:4] == b"\xff\x4f\xff\x51"
    if claimed is not None:
        width, height = claimed
        struct.pack_into(">IIIIII", codestream, 8, width, height, 0, 0, width, height)
    return bytes(codestream)


def j2k_bomb(claimed: int, rows: int = 512, columns: int = 512) -> bytes:
    """A Secondary Capture instance of ``rows`` x ``columns`` whose one J2K frame claims ``claimed``² (issue 16)."""
    ds = _dataset(SECONDARY_CAPTURE, rows, columns, 16, 1, J2K_LOSSLESS)
    ds.PixelData = encapsulate([j2k_codestream(16, 16, (claimed, claimed))])  # ~300 bytes
    ds["PixelData"].VR = "OB"
    return _part10(ds)


def cine_pixels(frames: int, rows: int, columns: int, bits: int = 8) -> Iterator[np.ndarray]:
    """A moving gradient, one frame after another (every frame differs from the one before)."""
    dtype = np.uint8 if bits == 8 else np.uint16
    base = np.add.outer(np.arange(rows), np.arange(columns))
    for n in range(frames):
        yield ((base + n * 3) % (256 if bits == 8 else 4096)).astype(dtype)


def multiframe(frames: int, rows: int, columns: int, bits: int = 8, syntax: str = EXPLICIT_LE) -> bytes:
    """A multi-frame grayscale Secondary Capture instance, native or JPEG 2000 Lossless (one fragment a frame)."""
    sop = MULTIFRAME_BYTE_SC if bits == 8 else MULTIFRAME_WORD_SC
    ds = _dataset(sop, rows, columns, bits, frames, syntax)
    if bits == 16:
        ds.BitsStored, ds.HighBit = 12, 11
    if syntax == EXPLICIT_LE:
        ds.PixelData = b"".join(frame.tobytes() for frame in cine_pixels(frames, rows, columns, bits))
        ds["PixelData"].VR = "OB" if bits == 8 else "OW"
    else:
        encoded = []
        for frame in cine_pixels(frames, rows, columns, bits):
            codestream = imagecodecs.jpeg2k_encode(frame, level=0, codecformat="J2K")
            assert np.array_equal(imagecodecs.jpeg2k_decode(codestream), frame)  # the generator is right
            encoded.append(bytes(codestream))
        ds.PixelData = encapsulate(encoded, has_bot=True)
        ds["PixelData"].VR = "OB"
    return _part10(ds)


def ct_series(slices: int, size: int, spacing: float = 0.7, thickness: float = 1.0) -> Iterator[bytes]:
    """Single-frame CT slices of one series (16-bit, rescale -1024), made one at a time: a sphere of 'bone' in a
    disc of 'soft tissue'."""
    study, series, frame_of_reference = uid(), uid(), uid()
    half = size * spacing / 2
    axis = (np.arange(size) + 0.5) * spacing - half
    x, y = np.meshgrid(axis, axis)
    for n in range(slices):
        z = (n - slices / 2) * thickness
        image = np.full((size, size), 1024 - 1000, dtype=np.uint16)
        image[x ** 2 + y ** 2 < (0.8 * half) ** 2] = 1024 + 40
        image[x ** 2 + y ** 2 + z ** 2 < (0.3 * half) ** 2] = 1024 + 700
        ds = _dataset(CT_IMAGE, size, size, 16, 1, EXPLICIT_LE, study, series)
        ds.Modality, ds.BitsStored, ds.HighBit = "CT", 12, 11
        ds.FrameOfReferenceUID, ds.InstanceNumber = frame_of_reference, n + 1
        ds.ImagePositionPatient = [-half + spacing / 2, -half + spacing / 2, z]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.SliceThickness = [spacing, spacing], thickness
        ds.RescaleIntercept, ds.RescaleSlope, ds.WindowCenter, ds.WindowWidth = -1024, 1, 40, 400
        ds.PixelData = image.tobytes()
        ds["PixelData"].VR = "OW"
        yield _part10(ds)


def uids_of(instance: bytes) -> tuple[str, str, str]:
    """(study, series, instance) UIDs of a Part 10 instance."""
    from pydicom import dcmread

    ds = dcmread(io.BytesIO(instance), stop_before_pixels=True)
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)


def store_in_process(data_dir: Path, instances: Sequence[bytes], check_headers: bool = True) -> list[Any]:
    """Store instances as ``dicomweb-origin import`` does; ``check_headers=False`` keeps a hostile frame (as an
    archive written before ingest compared frame headers would hold it). Returns the store results."""
    from dicomweb_origin.app import Archive
    from dicomweb_origin.dicom import reader
    from dicomweb_origin.settings import Settings

    archive = Archive(Settings(data_dir=data_dir))
    original = getattr(reader, "_check_headers", None)
    try:
        if not check_headers and original is not None:
            reader._check_headers = lambda *args: None
        return [archive.ingest.store(io.BytesIO(instance)) for instance in instances]
    finally:
        if original is not None:
            reader._check_headers = original
        archive.close()


# -- a server process's memory ------------------------------------------------------------------------------


def _status(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


@dataclass
class Probe:
    """What one probe cost the server: its peak above the RSS before it, its time, and its answer."""

    peak: int  # bytes above the RSS before the request
    seconds: float
    before: int  # RSS before
    value: Any = None

    @property
    def peak_mib(self) -> float:
        return self.peak / MIB

    def above(self, baseline: int) -> int:
        """The peak above ``baseline`` (the server's RSS once started): what retained memory cannot hide."""
        return self.before + self.peak - baseline


def rss(pid: int) -> int:
    return _status(pid, "VmRSS")


def measure(pid: int, request: Callable[[], T]) -> Probe:
    """Run ``request`` against the server ``pid``; its peak resident memory above the RSS before (VmHWM reset by
    ``/proc/PID/clear_refs``, Linux 4.0+), and how long it took."""
    before = rss(pid)
    with open(f"/proc/{pid}/clear_refs", "w") as refs:
        refs.write("5")  # the peak (VmHWM) starts again from the current RSS
    start = time.perf_counter()
    value = request()
    seconds = time.perf_counter() - start
    return Probe(_status(pid, "VmHWM") - before, seconds, before, value)


def settle(pid: int, seconds: float, baseline: int, slack: int) -> int:
    """The server's RSS once it is back within ``slack`` of ``baseline``, or after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        now = rss(pid)
        if now <= baseline + slack or time.monotonic() > deadline:
            return now
        time.sleep(0.2)
