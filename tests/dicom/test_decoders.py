"""Differential test of every decoding path the server uses (``dicom.pixels.decode_frame``).

Each case is a real DICOM file from pydicom's test data, or one made here from real pixels with an
encoder the project depends on (imagecodecs, pydicom's encoders, or for the server's own lossy
output the project's encoder). Every frame the server decodes is compared with pydicom's decode of
the whole dataset (a second decoder for JPEG 2000 / HTJ2K, where the server uses imagecodecs):
exactly for lossless bitstreams, within one unit for lossy ones (two implementations of one
standard may round differently). Cases made from known pixels are also compared with those
pixels: a PSNR floor, relative to the frame's value range. What the decoder must hand back
follows the module's rules: interleaved samples, lossy JPEG YCbCr as RGB, everything else in its
stored colour space with the JPEG 2000 multi-component transform undone (PS3.5 §8.2).

A few cases also go through the frames resource (PS3.18 §10.4.1.1.6, §8.7.3.3.1: native frames
are Explicit VR Little Endian bytes), and lossy frames the server encodes (HTJ2K, JPEG 2000,
JPEG) are decoded back with pydicom and held to the same floors.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import httpx
import imagecodecs
import numpy as np
import pytest
from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import UID, generate_uid

from dicomweb_origin.dicom import codecs, pixels
from dicomweb_origin.model.media import TRANSFER_SYNTAXES
from dicomweb_origin.model.stored import PixelDescription
from tests.support.archive import LoadedArchive
from tests.support.http import parse_multipart

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:pydicom")

ELE, DEFLATE, RLE = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.5"
JPEG_BASELINE, JPEG_EXTENDED = "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"
JPEG_LOSSLESS, JPEG_SV1 = "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70"
JLS, JLS_NEAR = "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"
J2K_LOSSLESS, J2K = "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"
HTJ2K_LOSSLESS, HTJ2K_RPCL, HTJ2K = "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"
LOSSY_JPEG = {JPEG_BASELINE, JPEG_EXTENDED}  # their YCbCr decodes to RGB
FLOOR_DB = 40.0  # PSNR floor for lossy encodes of known pixels (relative to the value range)
JPEG_FLOOR_DB = 30.0  # JPEG baseline's 4:2:2 chroma subsampling caps colour PSNR well below 40 dB


def _file(name: str) -> Dataset:
    path = get_testdata_file(name, download=False)
    assert path is not None, f"{name} is missing from pydicom's test data"
    return dcmread(path)


# -- real pixels the generated cases are made from ------------------------------------------------


@cache
def _pixels(kind: str) -> np.ndarray:
    """Frames (n, rows, columns[, 3]) of real pixels: 16-bit signed MR, 12-bit MRI, 8-bit, RGB."""
    if kind == "s16":
        return _file("MR_small.dcm").pixel_array[None].astype("<i2")  # 64x64, signed 16-bit
    if kind == "u12":
        return _file("emri_small.dcm").pixel_array[:2].astype("<u2")  # 64x64, 12 bits stored
    if kind == "s12":  # CT values in 12 signed bits (PS3.5 §8.1.1: sign-extended from bit 11)
        return np.clip(_file("CT_small.dcm").pixel_array[None, :64, :64], -2048, 2047).astype("<i2")
    if kind == "u8":  # the MRI stretched to the full 8-bit range
        mri = _file("emri_small.dcm").pixel_array[:2].astype(np.float64)
        return np.round(mri * 255 / mri.max()).astype("u1")
    if kind == "rgb8":
        return _file("SC_rgb_2frame.dcm").pixel_array.astype("u1")  # 2 x 100x100x3
    raise KeyError(kind)


def _bits(kind: str) -> int:
    return {"s16": 16, "u12": 12, "s12": 12, "u8": 8, "rgb8": 8}[kind]


def _instance(frames: np.ndarray, bits_stored: int, uid: str, data: list[bytes] | None, pi: str) -> Dataset:
    """A Secondary Capture instance holding ``frames`` (native) or the bitstreams ``data``."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(uid)
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName, ds.Modality = "DECODERS", "Decoders^Test", "OT"
    colour = frames.ndim == 4
    ds.Rows, ds.Columns = frames.shape[1:3]
    ds.SamplesPerPixel = 3 if colour else 1
    if colour:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = pi
    ds.BitsAllocated = frames.dtype.itemsize * 8
    ds.BitsStored, ds.HighBit = bits_stored, bits_stored - 1
    ds.PixelRepresentation = int(frames.dtype.kind == "i")
    ds.NumberOfFrames = len(frames)
    if data is None:
        ds.PixelData = frames.tobytes()
    else:
        ds.PixelData = encapsulate(data)
        ds["PixelData"].VR, ds["PixelData"].is_undefined_length = "OB", True
    if TRANSFER_SYNTAXES[uid].lossy and data is not None:
        ds.LossyImageCompression = "01"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return dcmread(io.BytesIO(buffer.getvalue()))


def _unsigned_pattern(frame: np.ndarray, bits: int) -> np.ndarray:
    """Two's complement within Bits Stored: lossless JPEG has no sign (PS3.5 §8.2.1)."""
    return frame.view(frame.dtype.str.replace("i", "u")) & ((1 << bits) - 1)


def _jpeg_lossless(kind: str, predictor: int) -> Callable[[np.ndarray], bytes]:
    def encode(f: np.ndarray) -> bytes:
        colour: dict[str, Any] = {"colorspace": "RGB", "outcolorspace": "RGB"} if f.ndim == 3 else {}
        return bytes(imagecodecs.jpeg8_encode(
            _unsigned_pattern(f, _bits(kind)), lossless=True, predictor=predictor, bitspersample=_bits(kind), **colour))

    return encode


def _htj2k(*, level: float | None = None) -> Callable[[np.ndarray], bytes]:
    if level is None:
        return lambda f: bytes(imagecodecs.htj2k_encode(f, reversible=True, rgb=f.ndim == 3))
    return lambda f: bytes(imagecodecs.htj2k_encode(f, reversible=False, level=level, rgb=f.ndim == 3))


def _project(uid: str) -> Callable[[np.ndarray], bytes]:
    """The server's own encoder for ``uid`` (as transcoding uses it)."""
    def encode(f: np.ndarray) -> bytes:
        pixel = PixelDescription(f.shape[0], f.shape[1], 3 if f.ndim == 3 else 1, f.dtype.itemsize * 8,
                                 f.dtype.itemsize * 8, int(f.dtype.kind == "i"), "RGB" if f.ndim == 3 else "MONOCHROME2")
        return codecs.encode_frame(f, pixel, uid, source_lossy=False).data
    return encode


def _pydicom_compress(kind: str, uid: str, pi: str, **options: Any) -> Dataset:
    frames = _pixels(kind)
    ds = _instance(frames, _bits(kind), ELE, None, pi)
    ds.compress(uid, **options)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return dcmread(io.BytesIO(buffer.getvalue()))


# -- the reference table ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One stored instance and what its decoded frames must match."""

    id: str
    build: Callable[[], Dataset]
    truth: str | None = None  # the _pixels kind it was made from, for lossy cases
    floor: float = FLOOR_DB


def _real(name: str) -> Callable[[], Dataset]:
    return lambda: _file(name)


def _made(kind: str, uid: str, encode: Callable[[np.ndarray], bytes], pi: str) -> Callable[[], Dataset]:
    return lambda: _instance(_pixels(kind), _bits(kind), uid, [encode(f) for f in _pixels(kind)], pi)


CASES = [
    # JPEG baseline / extended (real)
    Case("jpeg-baseline-ybr422", _real("SC_rgb_dcmtk_+eb+cy+s2.dcm")),
    Case("jpeg-baseline-ybrfull", _real("SC_rgb_dcmtk_+eb+cy+n1.dcm")),
    Case("jpeg-baseline-rgb", _real("SC_rgb_dcmtk_+eb+cr.dcm")),
    Case("jpeg-baseline-ybr422-multiframe", _real("examples_ybr_color.dcm")),
    Case("jpeg-extended-12bit", _real("JPGExtended.dcm")),
    # JPEG lossless: process 14 with predictor 6 (.57) and selection value 1 (.70)
    Case("jpeg-lossless-57-s16", _made("s16", JPEG_LOSSLESS, _jpeg_lossless("s16", 6), "MONOCHROME2")),
    Case("jpeg-lossless-57-u12-2frames", _made("u12", JPEG_LOSSLESS, _jpeg_lossless("u12", 7), "MONOCHROME2")),
    Case("jpeg-lossless-57-rgb", _made("rgb8", JPEG_LOSSLESS, _jpeg_lossless("rgb8", 4), "RGB")),
    Case("jpeg-lossless-70-s16", _real("JPEG-LL.dcm")),
    Case("jpeg-lossless-70-rgb", _real("SC_rgb_jpeg_gdcm.dcm")),
    Case("jpeg-lossless-70-s12", _made("s12", JPEG_SV1, _jpeg_lossless("s12", 1), "MONOCHROME2")),
    # JPEG-LS
    Case("jpeg-ls-s16", _real("MR_small_jpeg_ls_lossless.dcm")),
    Case("jpeg-ls-u12-multiframe", _real("emri_small_jpeg_ls_lossless.dcm")),
    Case("jpeg-ls-near-u8", _real("JPEGLSNearLossless_08.dcm")),
    Case("jpeg-ls-near-u16", _real("JPEGLSNearLossless_16.dcm")),
    Case("jpeg-ls-near-rgb", _real("SC_rgb_jls_lossy_line.dcm")),
    Case("jpeg-ls-near-u12-made", lambda: _pydicom_compress("u12", JLS_NEAR, "MONOCHROME2", jls_error=3), "u12"),
    # JPEG 2000
    Case("j2k-reversible-s16", _real("MR_small_jp2klossless.dcm")),
    Case("j2k-reversible-u12-multiframe", _real("emri_small_jpeg_2k_lossless.dcm")),
    Case("j2k-reversible-ybr-rct", _real("US1_J2KR.dcm")),
    Case("j2k-irreversible-s16", _real("JPEG2000.dcm")),
    Case("j2k-irreversible-ybr-ict", _real("US1_J2KI.dcm")),
    Case("j2k-irreversible-rgb", _real("SC_rgb_gdcm_KY.dcm")),
    Case("j2k-irreversible-u12-made", lambda: _pydicom_compress("u12", J2K, "MONOCHROME2", j2k_psnr=[80]), "u12"),
    # HTJ2K: no real files exist; made with OpenJPH (imagecodecs) and with the server's own encoder
    Case("htj2k-lossless-s16", _made("s16", HTJ2K_LOSSLESS, _htj2k(), "MONOCHROME2")),
    Case("htj2k-lossless-u12-2frames", _made("u12", HTJ2K_LOSSLESS, _htj2k(), "MONOCHROME2")),
    Case("htj2k-lossless-rgb-rct", _made("rgb8", HTJ2K_LOSSLESS, _htj2k(), "YBR_RCT")),
    Case("htj2k-rpcl-u8-2frames", _made("u8", HTJ2K_RPCL, _project(HTJ2K_RPCL), "MONOCHROME2")),
    Case("htj2k-rpcl-rgb-rct", _made("rgb8", HTJ2K_RPCL, _project(HTJ2K_RPCL), "YBR_RCT")),
    Case("htj2k-lossy-rgb-ict-openjph", _made("rgb8", HTJ2K, _htj2k(level=0.004), "YBR_ICT"), "rgb8"),
    Case("htj2k-lossy-rgb-ict-project", _made("rgb8", HTJ2K, _project(HTJ2K), "YBR_ICT"), "rgb8"),
    Case("htj2k-lossy-s12", _made("s12", HTJ2K, _htj2k(level=0.0002), "MONOCHROME2"), "s12"),
    Case("htj2k-lossy-u8-project", _made("u8", HTJ2K, _project(HTJ2K), "MONOCHROME2"), "u8"),
    # RLE, Deflate and native
    Case("rle-s16", _real("MR_small_RLE.dcm")),
    Case("rle-u12-multiframe", _real("emri_small_RLE.dcm")),
    Case("rle-rgb-2frames", _real("SC_rgb_rle_2frame.dcm")),
    Case("rle-rgb16", _real("SC_rgb_rle_16bit.dcm")),
    Case("deflate-u8", _real("image_dfl.dcm")),
    Case("native-ybr-full", _real("SC_ybr_full_uncompressed.dcm")),
    Case("native-ybr-full-422", _real("SC_ybr_full_422_uncompressed.dcm")),
    Case("native-u12-multiframe", _real("emri_small.dcm")),
]
BY_ID = {case.id: case for case in CASES}


@cache
def _dataset(case_id: str) -> Dataset:
    return BY_ID[case_id].build()


def _description(ds: Dataset) -> PixelDescription:
    """The Image Pixel module as ingest records it (one frame)."""
    allocated = int(ds.BitsAllocated)
    return PixelDescription(int(ds.Rows), int(ds.Columns), int(ds.get("SamplesPerPixel", 1)), allocated,
                            int(ds.get("BitsStored", allocated)), int(ds.get("PixelRepresentation", 0)),
                            str(ds.PhotometricInterpretation), int(ds.get("PlanarConfiguration", 0)), 1)


def _stored_frames(ds: Dataset) -> list[bytes]:
    count = int(ds.get("NumberOfFrames", 1))
    if TRANSFER_SYNTAXES[str(ds.file_meta.TransferSyntaxUID)].encapsulated:
        return list(generate_frames(ds.PixelData, number_of_frames=count))
    length = _description(ds).frame_length
    return [bytes(ds.PixelData[i * length:(i + 1) * length]) for i in range(count)]


def _reference(ds: Dataset, index: int) -> np.ndarray:
    """pydicom's decode of frame ``index``: lossy JPEG as RGB, everything else as stored."""
    uid = str(ds.file_meta.TransferSyntaxUID)
    arr, _ = get_decoder(uid).as_array(ds, index=index, raw=uid not in LOSSY_JPEG)
    return arr


def _psnr(decoded: np.ndarray, truth: np.ndarray) -> float:
    error = decoded.astype(np.float64) - truth.astype(np.float64)
    mse = float(np.mean(error**2))
    peak = max(float(truth.max()) - float(truth.min()), 1.0)
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


def _check(case: Case, ds: Dataset, index: int, decoded: np.ndarray) -> None:
    reference = _reference(ds, index)
    assert decoded.shape == reference.shape and decoded.dtype == reference.dtype, (decoded.shape, decoded.dtype)
    difference = np.abs(decoded.astype(np.int64) - reference.astype(np.int64))
    lossy = TRANSFER_SYNTAXES[str(ds.file_meta.TransferSyntaxUID)].lossy
    assert int(difference.max()) <= (1 if lossy else 0), f"{case.id} frame {index + 1}: {difference.max()}"
    if case.truth is not None:
        psnr = _psnr(decoded, _pixels(case.truth)[index])
        assert psnr >= case.floor, f"{case.id} frame {index + 1}: {psnr:.1f} dB"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_decode_frame_agrees_with_pydicom_and_the_source_pixels(case: Case) -> None:
    """Every stored frame decodes as pydicom decodes it, and lossy encodes of known pixels within the floor."""
    ds = _dataset(case.id)
    uid = str(ds.file_meta.TransferSyntaxUID)
    frames = _stored_frames(ds)
    for index, frame in enumerate(frames):
        decoded, described = pixels.decode_frame(frame, uid, _description(ds))
        assert described == pixels.decoded_description(uid, _description(ds))
        _check(case, ds, index, decoded)


@pytest.mark.parametrize("case", [c for c in CASES if c.truth is not None], ids=lambda c: c.id)
def test_generated_lossy_instances_decode_with_pydicom_near_their_source(case: Case) -> None:
    """The generators are checked too: pydicom's decode of a made instance is within the floor."""
    ds = _dataset(case.id)
    for index, truth in enumerate(_pixels(case.truth or "")):
        assert _psnr(_reference(ds, index), truth) >= case.floor, case.id


# -- which decoder serves which bitstream -------------------------------------------------------------


def test_lossy_colour_htj2k_is_decoded_by_openjpeg_and_greyscale_by_openjph() -> None:
    """Issue 7: OpenJPH decodes irreversible colour HTJ2K at ~20 dB; OpenJPEG decodes it correctly."""
    assert pixels.decoder_for(HTJ2K, "YBR_ICT", True) == pixels.OPENJPEG
    assert pixels.decoder_for(HTJ2K, "RGB", True) == pixels.OPENJPEG
    assert pixels.decoder_for(HTJ2K, "MONOCHROME2", True) == pixels.OPENJPH
    assert pixels.decoder_for(HTJ2K_LOSSLESS, "YBR_RCT", False) == pixels.OPENJPH
    assert pixels.decoder_for(J2K, "YBR_ICT", True) == pixels.OPENJPEG
    assert pixels.decoder_for(JLS, "MONOCHROME2", False) == pixels.PYDICOM


@pytest.mark.parametrize(("name", "irreversible"), [
    ("US1_J2KI.dcm", True), ("JPEG2000.dcm", True), ("US1_J2KR.dcm", False), ("MR_small_jp2klossless.dcm", False)])
def test_irreversible_reads_the_wavelet_from_the_cod_marker(name: str, irreversible: bool) -> None:
    """ISO 15444-1 A.6.1: SPcod's transformation byte is 0 for the 9-7 irreversible filter."""
    (frame, *_) = generate_frames(_file(name).PixelData, number_of_frames=1)
    assert pixels.irreversible(frame) is irreversible


# -- Float and Double Float Pixel Data ----------------------------------------------------------------


@pytest.mark.parametrize(("keyword", "dtype"), [("FloatPixelData", "<f4"), ("DoubleFloatPixelData", "<f8")])
def test_float_pixel_data_frames_decode_to_their_float_values(keyword: str, dtype: str) -> None:
    """PS3.3 C.7.6.24: Float / Double Float Pixel Data hold IEEE floats, not integers."""
    values = (_pixels("u12").astype(np.float64) / 7.3 - 100.0).astype(dtype)  # 2 frames of real values
    ds = _instance(_pixels("u12"), 12, ELE, None, "MONOCHROME2")
    del ds.PixelData, ds.BitsStored, ds.HighBit, ds.PixelRepresentation
    ds.BitsAllocated = values.dtype.itemsize * 8
    setattr(ds, keyword, values.tobytes())
    expected = ds.pixel_array  # pydicom reads the float element itself
    pixel = PixelDescription(64, 64, 1, ds.BitsAllocated, ds.BitsAllocated, 0, "MONOCHROME2", 0, 1)
    size = values[0].nbytes
    for index in range(2):
        frame = bytes(getattr(ds, keyword)[index * size:(index + 1) * size])
        decoded, _ = pixels.decode_frame(frame, ELE, pixel, keyword)
        assert decoded.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(decoded, values[index])
        np.testing.assert_array_equal(decoded, expected[index])


# -- through the frames resource ------------------------------------------------------------------------

HTTP_CASES = ["htj2k-lossy-rgb-ict-openjph", "htj2k-lossy-rgb-ict-project", "htj2k-lossy-s12",
              "j2k-irreversible-ybr-ict", "jpeg-baseline-ybr422", "jpeg-lossless-57-s16", "rle-rgb16",
              "jpeg-ls-u12-multiframe"]
OCTET = 'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1'


def _store(archive: LoadedArchive, ds: Dataset) -> str:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    result = archive.app.state.archive.ingest.store(io.BytesIO(buffer.getvalue()))
    assert result.record is not None, result.reason
    return f"studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"


def _native(part: bytes, ds: Dataset, like: np.ndarray) -> np.ndarray:
    return np.frombuffer(part, dtype=like.dtype.newbyteorder("<")).reshape(like.shape)


@pytest.mark.anyio
@pytest.mark.parametrize("case_id", HTTP_CASES)
async def test_frames_resource_serves_what_pydicom_decodes(case_id: str, empty_archive: LoadedArchive,
                                                          empty_client: httpx.AsyncClient) -> None:
    """§8.7.3.3.1: frames asked for as Explicit VR LE are the decoded pixels, little-endian, interleaved."""
    case, ds = BY_ID[case_id], _dataset(case_id)
    path = _store(empty_archive, ds)
    count = int(ds.get("NumberOfFrames", 1))
    numbers = ",".join(str(n) for n in range(1, min(count, 2) + 1))
    response = await empty_client.get(f"{path}/frames/{numbers}", headers={"Accept": OCTET})
    assert response.status_code == 200, response.text
    parts = parse_multipart(response, "application/octet-stream")
    for index, part in enumerate(parts):
        _check(case, ds, index, _native(part.content, ds, _reference(ds, index)))


# Lossy encodes made by the server: target syntax, media type, bitstream photometric for colour, floor.
ENCODED = [
    (HTJ2K, "image/jph", "YBR_ICT", FLOOR_DB),
    (J2K, "image/jp2", "YBR_ICT", FLOOR_DB),
    (JPEG_BASELINE, "image/jpeg", "YBR_FULL_422", JPEG_FLOOR_DB),
]


# JPEG baseline holds 8-bit samples only (PS3.5 §8.2.1): it is not asked for the 16-bit source.
SOURCES = [("rgb8", "RGB"), ("u8", "MONOCHROME2"), ("s16", "MONOCHROME2")]
ENCODE_CASES = [(kind, pi, *target) for target in ENCODED for kind, pi in SOURCES
                if not (target[0] == JPEG_BASELINE and kind == "s16")]


@pytest.mark.anyio
@pytest.mark.parametrize(("kind", "pi", "uid", "media_type", "colour_pi", "floor"), ENCODE_CASES,
                         ids=[f"{c[3]}-{c[0]}" for c in ENCODE_CASES])
async def test_lossy_frames_the_server_encodes_decode_back_within_the_floor(
        kind: str, pi: str, uid: str, media_type: str, colour_pi: str, floor: float,
        empty_archive: LoadedArchive, empty_client: httpx.AsyncClient) -> None:
    """§8.7.3.5: frames transcoded to a lossy syntax decode (with pydicom) close to the stored pixels."""
    truth = _pixels(kind)
    ds = _instance(truth, _bits(kind), ELE, None, pi)
    path = _store(empty_archive, ds)
    numbers = ",".join(str(n) for n in range(1, len(truth) + 1))
    accept = f'multipart/related; type="{media_type}"; transfer-syntax={uid}'
    response = await empty_client.get(f"{path}/frames/{numbers}", headers={"Accept": accept})
    assert response.status_code == 200, response.text
    parts = parse_multipart(response, media_type)
    assert len(parts) == len(truth)
    colour = truth.ndim == 4
    for index, part in enumerate(parts):
        # pydicom types **kwargs as DecodeOptions per value (no Unpack): pass the options as a typed dict
        options: dict[str, Any] = dict(
            rows=truth.shape[1], columns=truth.shape[2],
            samples_per_pixel=3 if colour else 1, bits_allocated=truth.dtype.itemsize * 8,
            bits_stored=_bits(kind), pixel_representation=int(truth.dtype.kind == "i"),
            photometric_interpretation=colour_pi if colour else pi, planar_configuration=0,
            number_of_frames=1, pixel_keyword="PixelData")
        arr, _ = get_decoder(uid).as_array(encapsulate([part.content]), **options)
        assert _psnr(arr, truth[index]) >= floor, f"{media_type} {kind} frame {index + 1}"
