"""Compressed frames' own headers against their data set (dicom/headers.py): before any decoder, at ingest and read.

Real files from pydicom and pydicom-data are read and compared with two independent readers (OpenJPEG's header
reader through pylibjpeg-openjpeg, pydicom's JPEG / JPEG-LS parameter parser); generated bitstreams cover what
the packages do not ship (HTJ2K, JP2 files, lossless JPEG, JPEG-LS oversize dimensions); hostile headers are
refused with a message. The fuzz at the end sends random SIZ / SOF / SOF55 headers against random Rows and
Columns through STOW and Retrieve of a real server with a small memory budget: every answer within the budget,
in seconds.
"""

from __future__ import annotations

import functools
import io
import struct
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import data_store
import httpx
import imagecodecs
import numpy as np
import openjpeg
import pydicom
import pydicom.data
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels.utils import _get_jpg_parameters
from pydicom.uid import UID, generate_uid

from dicomweb_origin.dicom import headers, reader
from dicomweb_origin.dicom.pixels import check_header, decode_frame
from dicomweb_origin.errors import DecodeError, IngestError
from dicomweb_origin.model.stored import PixelDescription
from tests.support.probes import MIB, j2k_bomb, j2k_codestream, measure, rss, store_in_process
from tests.support.server import LiveServer, live_server

J2K, J2K_LOSSY, HTJ2K, JPEG, JPEG_SV1, JLS, RLE = ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",
                                                 "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.50",
                                                 "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80",
                                                 "1.2.840.10008.1.2.5")
BROKEN = {"JPEG2000-embedded-sequence-delimiter.dcm"}  # its SIZ marker holds an item tag: no decoder reads it


def _real_frames() -> Iterator[tuple[str, str, PixelDescription, bytes]]:
    # pydicom's bundled files and pydicom-data's, found on disk (get_testdata_files would try to download others)
    folders = (Path(pydicom.data.__file__).parent / "test_files", Path(data_store.__file__).parent)
    files = {str(p) for folder in folders for p in folder.rglob("*") if p.is_file()}
    for path in sorted(files):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(path, force=True)
                syntax = str(ds.file_meta.TransferSyntaxUID)
        except Exception:  # noqa: BLE001 - broken on purpose, or not DICOM
            continue
        if "PixelData" not in ds or syntax not in headers._READERS:
            continue
        pixel = reader._pixel_description(ds, 0x7FE00010)
        try:
            frames = list(generate_frames(ds.PixelData, number_of_frames=pixel.number_of_frames))
        except Exception:  # noqa: BLE001 - a file whose fragments pydicom cannot split
            continue
        for frame in frames[:4]:
            yield Path(path).name, syntax, pixel, frame


REAL = list(_real_frames())


def test_the_real_files_cover_every_format() -> None:
    formats = set()
    for _, syntax, _, frame in REAL:
        try:
            found = headers.read_header(frame, syntax)
        except headers.HeaderError:
            continue
        assert found is not None
        formats.add(found.format)
    assert formats == {headers.J2K, headers.JPEG, headers.JPEG_LS, headers.RLE}
    assert len(REAL) >= 60


@pytest.mark.parametrize(("name", "syntax", "pixel", "frame"), REAL, ids=[f"{r[0]}-{n}" for n, r in enumerate(REAL)])
def test_real_frames_agree_with_their_data_set_and_an_independent_reader(name: str, syntax: str,
                                                                         pixel: PixelDescription,
                                                                         frame: bytes) -> None:
    if name in BROKEN:
        with pytest.raises(headers.HeaderError, match="tiles"):
            headers.read_header(frame, syntax)
        with pytest.raises(DecodeError):
            check_header(frame, syntax, pixel)
        return
    found = headers.read_header(frame, syntax)
    assert found is not None
    assert headers.frame_problem(found, pixel) is None
    if found.format == headers.J2K:
        oracle = openjpeg.get_parameters(frame)  # type: ignore[attr-defined]  # openjpeg re-exports without __all__
        assert (found.columns, found.rows, found.samples, found.precision) == (
            oracle["columns"], oracle["rows"], oracle["samples_per_pixel"], oracle["precision"])
    elif found.format in (headers.JPEG, headers.JPEG_LS):
        oracle = _get_jpg_parameters(frame)
        assert (found.columns, found.rows, found.samples, found.precision) == (
            oracle["width"], oracle["height"], oracle["components"], oracle["precision"])
    else:
        assert found.segments == pixel.samples_per_pixel * (pixel.bits_allocated // 8)


def _grey(rows: int = 48, columns: int = 40, dtype: Any = np.uint8) -> np.ndarray:
    return (np.add.outer(np.arange(rows), np.arange(columns)) % 200).astype(dtype)


def test_generated_htj2k_jp2_lossless_jpeg_and_jpeg_ls() -> None:
    grey, rgb = _grey(), np.stack([_grey(), _grey()[::-1], _grey()[:, ::-1]], axis=-1)
    cases = [
        (imagecodecs.htj2k_encode(grey.astype(np.uint16) * 20), HTJ2K, (40, 48, 1)),
        (imagecodecs.jpeg2k_encode(rgb, codecformat="JP2"), J2K, (40, 48, 3)),  # a JP2 file, not a codestream
        (imagecodecs.ljpeg_encode(grey.astype(np.uint16) * 300, bitspersample=16), JPEG_SV1, (40, 48, 1)),
        (imagecodecs.jpeg8_encode(rgb), JPEG, (40, 48, 3)),
        (imagecodecs.jpegls_encode(grey.astype(np.uint16) * 300), JLS, (40, 48, 1)),
    ]
    for data, syntax, (columns, rows, samples) in cases:
        found = headers.read_header(data, syntax)
        assert found is not None
        assert (found.columns, found.rows, found.samples) == (columns, rows, samples), syntax


def _jls_oversize(rows: int, columns: int, width: int) -> bytes:
    """A JPEG-LS bitstream whose SOF55 says 0 x 0 and an LSE segment of ID 4 the size (ISO 14495-1 C.2.4.1.4)."""
    plain = imagecodecs.jpegls_encode(_grey())
    sof = plain.index(b"\xff\xf7")
    length = int.from_bytes(plain[sof + 2:sof + 4], "big")
    patched = bytearray(plain)
    struct.pack_into(">HH", patched, sof + 5, 0, 0)
    lse = b"\xff\xf8" + struct.pack(">HBB", 4 + 2 * width, 4, width) + rows.to_bytes(width, "big") \
        + columns.to_bytes(width, "big")
    return bytes(patched[:sof + 2 + length]) + lse + bytes(patched[sof + 2 + length:])


def test_jpeg_ls_oversize_dimensions_are_read_from_lse() -> None:
    found = headers.read_header(_jls_oversize(70000, 80000, 3), JLS)
    assert found is not None and (found.columns, found.rows) == (80000, 70000)
    with pytest.raises(headers.HeaderError, match="1-byte"):
        headers.read_header(_jls_oversize(7, 8, 1), JLS)


PIXEL = PixelDescription(64, 64, 1, 16, 12, 0, "MONOCHROME2")


@pytest.mark.parametrize(("data", "syntax", "message"), [
    (j2k_codestream(64, 64, (60000, 60000)), J2K, "60000 x 60000 pixels where Columns x Rows say 64 x 64"),
    (j2k_codestream(64, 64)[:30], J2K, "cut short"),
    (b"\xff\x4f\xff\x52" + bytes(60), J2K, "first marker is not SIZ"),
    (b"garbage!" * 4, J2K, "codestream box|cut short"),
    (imagecodecs.jpeg8_encode(np.zeros((64, 64, 3), np.uint8)), JPEG, "3 components where Samples per Pixel says 1"),
    (imagecodecs.jpeg8_encode(np.zeros((64, 65), np.uint8)), JPEG, "65 x 64 pixels"),
    (b"\xff\xd8\xff\xda\x00\x08" + bytes(8), JPEG, "without a frame header"),
    (b"\xff\xd8\xff\xe0\x00\x01", JPEG, "length 1"),
    (b"\xff\xd8\x00\x00", JPEG, "bytes between marker segments"),
    (b"\x00\x00", JPEG, "no SOI"),
    (struct.pack("<16I", 3, 64, 70, 80, *[0] * 12) + bytes(100), RLE, "3 segments where"),
    (struct.pack("<16I", 2, 64, 64, *[0] * 13) + bytes(100), RLE, "in order"),
    (struct.pack("<16I", 16, *[0] * 15), RLE, "16 segments"),
])
def test_hostile_headers_are_refused_with_a_message(data: bytes, syntax: str, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        check_header(data, syntax, PIXEL)
    with pytest.raises(DecodeError, match=message):  # decode_frame checks before any decoder sees the frame
        decode_frame(data, syntax, PIXEL)


def test_too_many_tiles_is_refused() -> None:
    codestream = bytearray(j2k_codestream(64, 64))
    struct.pack_into(">IIIIII", codestream, 8, 60000, 60000, 0, 0, 1, 1)  # 3.6 billion 1 x 1 tiles
    with pytest.raises(headers.HeaderError, match="3600000000 tiles"):
        headers.read_header(bytes(codestream), J2K)


def test_precision_beyond_bits_allocated_is_refused() -> None:
    data = j2k_codestream(64, 64)
    with pytest.raises(DecodeError, match="16 bits per sample where Bits Allocated says 8"):
        check_header(data, J2K, PixelDescription(64, 64, 1, 8, 8, 0, "MONOCHROME2"))


def _instance(frames: list[bytes], rows: int, columns: int, syntax: str, samples: int = 1, bits: int = 16) -> bytes:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(syntax)
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.7", generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.PatientID = generate_uid(), generate_uid(), "HEADERS"
    ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, columns, samples
    ds.PhotometricInterpretation = "MONOCHROME2" if samples == 1 else "RGB"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    if samples > 1:
        ds.PlanarConfiguration = 0
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
    ds.PixelData = encapsulate(frames, has_bot=len(frames) > 1)
    ds["PixelData"].VR = "OB"
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _parse(source: BinaryIO) -> None:
    """Parse as ingest does, and close the re-encoded copy if the reader made one (ingest closes it too)."""
    parsed = reader.parse(source, 1024)
    if parsed.stream is not source:
        parsed.stream.close()


def test_ingest_refuses_the_frame_that_disagrees() -> None:
    good, bad = j2k_codestream(64, 64), j2k_codestream(64, 64, (60000, 60000))
    instance = _instance([good, good, bad], 64, 64, J2K)
    with pytest.raises(IngestError, match="frame 3 does not match the Image Pixel module: its JPEG 2000 header says"
                                          " 60000 x 60000"):
        _parse(io.BytesIO(instance))
    _parse(io.BytesIO(_instance([good, good], 64, 64, J2K)))  # a matching one is stored


def test_ingest_reads_a_header_past_its_first_kilobytes() -> None:
    """A JPEG whose SOF comes after a 60 KB APP segment (an ICC profile, a comment): read in larger steps."""
    plain = bytes(imagecodecs.jpeg8_encode(_grey(64, 64)))
    app = b"\xff\xe2" + struct.pack(">H", 60002) + bytes(60000)
    frame = plain[:2] + app + plain[2:]
    assert frame.index(b"\xff\xc0") > reader.HEADER_READ * 8
    _parse(io.BytesIO(_instance([frame], 64, 64, JPEG, bits=8)))
    truncated = plain[:2] + app[:30000]
    with pytest.raises(IngestError, match="cut short"):
        _parse(io.BytesIO(_instance([truncated], 64, 64, JPEG, bits=8)))


def test_a_real_multiframe_rle_and_jpeg_ls_file_still_store() -> None:
    for name in ("SC_rgb_rle_2frame.dcm", "emri_small_jpeg_ls_lossless.dcm", "JPEG2000.dcm", "SC_rgb_jpeg.dcm"):
        path = get_testdata_file(name, download=False)
        assert path is not None
        with open(path, "rb") as fp:
            _parse(fp)


# -- the fuzz: random headers against random Rows / Columns, through a real server --------------------------------

BUDGET_MB = 48
SLACK = 8 * MIB
SECONDS = 20.0
BOUNDARY = "header-fuzz"


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, httpx.Client, int]]:
    data = tmp_path_factory.mktemp("header-fuzz") / "data"
    store_in_process(data, [j2k_bomb(64, 64, 64)])  # an archive to start on (the frame matches)
    with live_server(data, "--max-request-memory-mb", str(BUDGET_MB), "--frame-cache-mb", "1",
                     "--rendered-cache-mb", "1") as server, httpx.Client(base_url=server.url, timeout=120) as client:
        client.get("/studies", headers={"Accept": "application/dicom+json"})
        yield server, client, rss(server.pid)


def _patched_size(data: bytes, syntax: str, columns: int, rows: int, extra: dict[str, int]) -> bytes:
    out = bytearray(data)
    if syntax in (J2K, J2K_LOSSY, HTJ2K):  # SIZ: Xsiz, Ysiz, XOsiz, YOsiz, XTsiz, YTsiz (A.5.1)
        x_offset, y_offset = extra["x_offset"] % (columns + 1), extra["y_offset"] % (rows + 1)
        struct.pack_into(">IIIIII", out, 8, columns + x_offset, rows + y_offset, x_offset, y_offset,
                         max(1, extra["tile"]), max(1, extra["tile"]))
        return bytes(out)
    marker = b"\xff\xf7" if syntax == JLS else b"\xff\xc0"
    at = out.index(marker)
    struct.pack_into(">BHH", out, at + 4, extra["precision"], rows % 65536, columns % 65536)
    if syntax == JLS and extra["oversize"]:
        return _jls_oversize(rows, columns, 4)
    return bytes(out)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(
    syntax=st.sampled_from([J2K, J2K_LOSSY, HTJ2K, JPEG, JLS]),
    claimed=st.tuples(st.integers(1, 70000), st.integers(1, 70000)),
    same=st.booleans(),
    data_set=st.tuples(st.integers(1, 65535), st.integers(1, 65535)),
    extra=st.fixed_dictionaries({"x_offset": st.integers(0, 1 << 20), "y_offset": st.integers(0, 1 << 20),
                                 "tile": st.integers(0, 1 << 17), "precision": st.integers(0, 255),
                                 "oversize": st.booleans()}),
)
def test_random_frame_headers_against_rows_and_columns(fuzz_server: tuple[LiveServer, httpx.Client, int],
                                                       syntax: str, claimed: tuple[int, int], same: bool,
                                                       data_set: tuple[int, int], extra: dict[str, int]) -> None:
    server, client, baseline = fuzz_server
    grey = _grey(64, 64)
    plain = {J2K: j2k_codestream(64, 64), J2K_LOSSY: j2k_codestream(64, 64), HTJ2K: imagecodecs.htj2k_encode(grey),
             JPEG: imagecodecs.jpeg8_encode(grey), JLS: imagecodecs.jpegls_encode(grey)}[syntax]
    columns, rows = claimed if syntax in (J2K, J2K_LOSSY, HTJ2K) else (claimed[0] % 65536, claimed[1] % 65536)
    frame = _patched_size(bytes(plain), syntax, columns, rows, extra)
    ds_columns, ds_rows = (max(columns, 1), max(rows, 1)) if same else data_set
    instance = _instance([frame], min(ds_rows, 65535), min(ds_columns, 65535), syntax, bits=16 if syntax != JPEG
                         else 8)
    body = (f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode() + instance
            + f"\r\n--{BOUNDARY}--\r\n".encode())
    stow = measure(server.pid, lambda: client.post("/studies", content=body, headers={
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={BOUNDARY}',
        "Accept": "application/dicom+json"}))
    probes = [stow]
    assert stow.value.status_code in (200, 409), stow.value.text[:300]
    if stow.value.status_code == 200:
        url = stow.value.json()["00081199"]["Value"][0]["00081190"]["Value"][0].split("/dicomweb", 1)[1]
        for resource, accept in (("/frames/1", 'multipart/related; type="application/octet-stream"'),
                                 ("/rendered", "image/jpeg")):
            got = measure(server.pid, functools.partial(client.get, url + resource, headers={"Accept": accept}))
            assert got.value.status_code in (200, 406, 413), got.value.text[:300]
            probes.append(got)
    for probe in probes:
        assert probe.above(baseline) <= BUDGET_MB * MIB + SLACK, f"{probe.above(baseline) / MIB:.0f} MiB"
        assert probe.seconds < SECONDS
