"""Tests for dicomweb_origin.dicom.transcode: frame and instance transcoding between transfer syntaxes.

Every output is decoded with pydicom's own decoders (an independent path from the encoders) and
compared with the source's ``pixel_array``: exactly for lossless targets, by PSNR or maximum error
for lossy ones.
"""

from __future__ import annotations

import io
import math
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate, generate_frames
from pydicom.multival import MultiValue
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.processing import convert_color_space

from dicomweb_origin.dicom import transcode as tc
from dicomweb_origin.dicom.pixels import runner_options
from dicomweb_origin.errors import DecodeError, NotAcceptable
from dicomweb_origin.model.media import TRANSFER_SYNTAXES
from dicomweb_origin.model.stored import PixelDescription

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:pydicom")  # pydicom's notes on odd test files

LOSSY_TARGETS = {tc.JPEG_BASELINE, tc.JPEG_EXTENDED, tc.JPEG_LS_NEAR, tc.J2K, tc.HTJ2K}
TARGETS = [
    tc.EXPLICIT_VR_LE, tc.RLE_LOSSLESS, tc.JPEG_BASELINE, tc.JPEG_EXTENDED, tc.JPEG_LOSSLESS,
    tc.JPEG_LOSSLESS_SV1, tc.JPEG_LS_LOSSLESS, tc.JPEG_LS_NEAR, tc.J2K_LOSSLESS, tc.J2K,
    tc.HTJ2K_LOSSLESS, tc.HTJ2K_RPCL, tc.HTJ2K,
]
# Documented quality bounds for the lossy encoders, in dB relative to the frame's value range.
# JPEG's 4:2:2 chroma subsampling caps colour PSNR near 35 dB on images with sharp coloured edges.
MIN_PSNR = {tc.JPEG_BASELINE: 30.0, tc.JPEG_EXTENDED: 38.0, tc.J2K: 45.0, tc.HTJ2K: 45.0,
            tc.JPEG_LS_NEAR: 40.0}
VIDEO = [uid for uid, ts in TRANSFER_SYNTAXES.items() if ts.video]


def _data_file(name: str) -> str:
    path = get_testdata_file(name, download=False)  # never download: pydicom-data is installed
    if path is None:
        pytest.skip(f"{name} is not available locally")
    return str(path)


@dataclass(frozen=True)
class Source:
    """First frame of a reference image as the server would store it."""

    frame: bytes
    transfer_syntax_uid: str
    pixel: PixelDescription
    reference: np.ndarray  # pydicom's pixel_array of that frame (YBR shown as RGB)
    lossy: bool


def _from_file(name: str) -> Source:
    ds = dcmread(_data_file(name))
    uid = str(ds.file_meta.TransferSyntaxUID)
    pixel = tc._pixel_description(ds)
    if TRANSFER_SYNTAXES[uid].encapsulated:
        frame = next(generate_frames(ds.PixelData, number_of_frames=pixel.number_of_frames))
    else:
        frame = bytes(ds.PixelData[: len(ds.PixelData) // pixel.number_of_frames])
    reference = ds.pixel_array if pixel.number_of_frames == 1 else ds.pixel_array[0]
    lossy = ds.get("LossyImageCompression") == "01" or uid in {tc.JPEG_BASELINE, tc.JPEG_EXTENDED}
    return Source(frame, uid, replace(pixel, number_of_frames=1), reference, lossy)


def _signed_12_bit() -> Source:
    """A 12-bit signed frame using the full range, including both extremes."""
    ramp = np.linspace(-2048, 2047, 96 * 80).reshape(96, 80)
    noise = np.random.default_rng(12).integers(-40, 40, ramp.shape)
    arr = np.clip(ramp + noise, -2048, 2047).astype(np.int16)
    arr[0, 0], arr[0, 1] = -2048, 2047
    pixel = PixelDescription(96, 80, 1, 16, 12, 1, "MONOCHROME2")
    return Source(arr.astype("<i2").tobytes(), tc.EXPLICIT_VR_LE, pixel, arr, False)


# name -> (loader, what it exercises)
SOURCES: dict[str, tuple[Callable[[], Source], str]] = {
    "CT_small": (lambda: _from_file("CT_small.dcm"), "16-bit signed CT, native"),
    "MR_small": (lambda: _from_file("MR_small.dcm"), "16-bit signed MR, native"),
    "signed12": (_signed_12_bit, "12-bit signed, full range, synthetic"),
    "emri_small": (lambda: _from_file("emri_small.dcm"), "12-bit unsigned, multi-frame"),
    "SC_rgb": (lambda: _from_file("SC_rgb.dcm"), "8-bit RGB, native"),
    "SC_rgb_16bit": (lambda: _from_file("SC_rgb_16bit.dcm"), "16-bit RGB, native"),
    "SC_ybr_422": (lambda: _from_file("SC_ybr_full_422_uncompressed.dcm"), "native YBR_FULL_422"),
    "color_planar": (lambda: _from_file("color-pl.dcm"), "native RGB, Planar Configuration 1"),
    "palette_rle": (lambda: _from_file("OBXXXX1A_rle.dcm"), "8-bit PALETTE COLOR, RLE"),
    "liver_1bit": (lambda: _from_file("liver_1frame.dcm"), "1-bit segmentation, native"),
    "SC_rgb_32bit": (lambda: _from_file("SC_rgb_32bit.dcm"), "32-bit RGB, native"),
    "JPEG2000": (lambda: _from_file("JPEG2000.dcm"), "J2K lossy source, 16-bit signed"),
    "US1_J2KR": (lambda: _from_file("US1_J2KR.dcm"), "J2K lossless YBR_RCT source"),
    "emri_j2k": (lambda: _from_file("emri_small_jpeg_2k_lossless.dcm"), "J2K lossless 12-bit"),
    "J2K_pixrep": (lambda: _from_file("J2K_pixelrep_mismatch.dcm"), "J2K unsigned stream, signed 13-bit"),
    "JPEG_ybr": (lambda: _from_file("SC_rgb_jpeg_dcmtk.dcm"), "JPEG baseline YBR_FULL source"),
    "JPEG_ybr422": (lambda: _from_file("SC_rgb_dcmtk_+eb+cy+np.dcm"), "JPEG baseline YBR_FULL_422"),
    "JPEG_ext": (lambda: _from_file("JPGExtended.dcm"), "JPEG extended 12-bit source"),
    "JPEG_LL": (lambda: _from_file("JPEG-LL.dcm"), "JPEG lossless SV1 16-bit signed"),
    "JPEG_LL_rgb": (lambda: _from_file("SC_rgb_jpeg_gdcm.dcm"), "JPEG lossless SV1 RGB"),
    "JLS": (lambda: _from_file("MR_small_jpeg_ls_lossless.dcm"), "JPEG-LS lossless 16-bit signed"),
    "RLE": (lambda: _from_file("MR_small_RLE.dcm"), "RLE 16-bit signed"),
}


@cache
def source(name: str) -> Source:
    return SOURCES[name][0]()


# Which (source, target) pairs cannot be encoded, as rules on the decoded description (PS3.5 §8.2
# profiles, plus encoder limits).
UNENCODABLE: dict[str, Callable[[PixelDescription], bool]] = {
    tc.JPEG_BASELINE: lambda p: p.bits_allocated != 8 or p.pixel_representation == 1,
    tc.JPEG_EXTENDED: lambda p: p.samples_per_pixel != 1 or p.pixel_representation == 1
    or (p.bits_allocated, p.bits_stored) not in ((8, 8), (16, 12)),
    # pylibjpeg-libjpeg colour-converts YBR_FULL lossless JPEG: see transcode._UNRELIABLE
    tc.JPEG_LOSSLESS: lambda p: p.photometric_interpretation == "YBR_FULL",
    tc.JPEG_LOSSLESS_SV1: lambda p: p.photometric_interpretation == "YBR_FULL",
    tc.J2K_LOSSLESS: lambda p: p.bits_stored > 24,  # pylibjpeg-openjpeg's limit
    tc.J2K: lambda p: p.bits_stored > 24,
}


def _unencodable(target: str, pixel: PixelDescription) -> bool:
    if target in tc.NATIVE_SYNTAXES:
        return False
    if pixel.bits_allocated not in (8, 16) and target not in (tc.J2K_LOSSLESS, tc.J2K):
        return True  # 1-bit and 32-bit data have native encodings only (J2K allows up to 40)
    if pixel.bits_allocated == 1:
        return True
    if pixel.photometric_interpretation == "PALETTE COLOR" and target in LOSSY_TARGETS:
        return True  # indices must not be approximated
    rule = UNENCODABLE.get(target)
    return rule is not None and rule(pixel)


def _as_rgb(arr: np.ndarray, photometric: str) -> np.ndarray:
    return convert_color_space(arr, "YBR_FULL", "RGB") if photometric.startswith("YBR_FULL") else arr


def _decode_independently(frame: tc.EncodedFrame) -> np.ndarray:
    """Decode an output frame with pydicom alone, YBR shown as RGB like ``pixel_array``."""
    uid = frame.transfer_syntax_uid
    src = frame.data if uid in tc.NATIVE_SYNTAXES else encapsulate([frame.data])
    options: dict[str, Any] = dict(runner_options(frame.pixel), pixel_keyword="PixelData")
    arr, properties = get_decoder(uid).as_array(src, index=0, raw=True, **options)
    return _as_rgb(arr, str(properties["photometric_interpretation"]))


def _psnr(ref: np.ndarray, out: np.ndarray) -> float:
    mse = float(np.mean((ref.astype(np.float64) - out.astype(np.float64)) ** 2))
    peak = max(float(ref.max()) - float(ref.min()), 1.0)
    return math.inf if mse == 0 else 10 * math.log10(peak**2 / mse)


@pytest.mark.parametrize("target", TARGETS, ids=lambda uid: TRANSFER_SYNTAXES[uid].name)
@pytest.mark.parametrize("name", list(SOURCES))
def test_transcode_frame_matrix(name: str, target: str) -> None:
    src = source(name)
    decoded, described = tc.decode_frame(src.frame, src.transfer_syntax_uid, src.pixel)
    np.testing.assert_array_equal(_as_rgb(decoded, described.photometric_interpretation), src.reference)

    if _unencodable(target, described):
        assert not tc.can_encode(target, described)
        with pytest.raises(NotAcceptable, match=r"^cannot encode .* as "):
            tc.transcode_frame(src.frame, src.transfer_syntax_uid, target, src.pixel, source_lossy=src.lossy)
        return

    assert tc.can_encode(target, described)
    out = tc.transcode_frame(src.frame, src.transfer_syntax_uid, target, src.pixel, source_lossy=src.lossy)
    assert out.transfer_syntax_uid == target
    assert out.pixel.number_of_frames == 1
    if target == src.transfer_syntax_uid:  # nothing to do: the stored bitstream is passed through
        assert out.data == src.frame and out.lossy == src.lossy and out.lossy_method is None
        return

    result = _decode_independently(out)
    assert result.shape == src.reference.shape
    if target in LOSSY_TARGETS:
        assert out.lossy and out.lossy_method and out.lossy_ratio and out.lossy_ratio > 0
        assert _psnr(src.reference, result) >= MIN_PSNR[target]
        if target == tc.JPEG_LS_NEAR and src.pixel.samples_per_pixel == 1:
            error = np.abs(result.astype(np.int64) - src.reference.astype(np.int64)).max()
            # NEAR bounds the error; signed values within NEAR of the extremes are clipped first
            assert error <= tc.JPEG_LS_NEAR_ERROR * (2 if src.pixel.pixel_representation else 1)
    else:
        assert out.lossy == src.lossy and out.lossy_method is None and out.lossy_ratio is None
        np.testing.assert_array_equal(result, src.reference)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (tc.EXPLICIT_VR_LE, "RGB"),
        (tc.RLE_LOSSLESS, "RGB"),
        (tc.JPEG_BASELINE, "YBR_FULL_422"),
        (tc.JPEG_LOSSLESS_SV1, "RGB"),
        (tc.JPEG_LS_LOSSLESS, "RGB"),
        (tc.J2K_LOSSLESS, "YBR_RCT"),
        (tc.J2K, "YBR_ICT"),
        (tc.HTJ2K_LOSSLESS, "YBR_RCT"),
        (tc.HTJ2K, "YBR_ICT"),
    ],
)
def test_photometric_says_what_the_bitstream_holds(target: str, expected: str) -> None:
    src = source("SC_rgb")
    out = tc.transcode_frame(src.frame, src.transfer_syntax_uid, target, src.pixel, source_lossy=False)
    assert out.pixel.photometric_interpretation == expected
    assert out.pixel.planar_configuration == 0


def test_decoded_colour_is_interleaved_and_jpeg_ybr_becomes_rgb() -> None:
    src = source("JPEG_ybr422")
    arr, pixel = tc.decode_frame(src.frame, src.transfer_syntax_uid, src.pixel)
    assert arr.shape == (src.pixel.rows, src.pixel.columns, 3)
    assert pixel.photometric_interpretation == "RGB" and pixel.bits_allocated == 8
    native_422 = source("SC_ybr_422")
    _, pixel = tc.decode_frame(native_422.frame, native_422.transfer_syntax_uid, native_422.pixel)
    assert pixel.photometric_interpretation == "YBR_FULL"  # upsampled, never rounded through RGB


def test_lossy_source_stays_lossy_through_lossless_targets() -> None:
    src = source("JPEG2000")
    out = tc.transcode_frame(src.frame, src.transfer_syntax_uid, tc.J2K_LOSSLESS, src.pixel,
                             source_lossy=True)
    assert out.lossy and out.lossy_method is None
    jpeg = source("JPEG_ybr")  # JPEG baseline is lossy even if the caller forgets to say so
    out = tc.transcode_frame(jpeg.frame, jpeg.transfer_syntax_uid, tc.EXPLICIT_VR_LE, jpeg.pixel,
                             source_lossy=False)
    assert out.lossy


def test_htj2k_rpcl_codestream_meets_ps3_5() -> None:
    rows, columns = 4100, 70  # needs 7 decompositions for a base resolution <= 64
    arr = np.random.default_rng(3).integers(0, 4096, (rows, columns), dtype=np.uint16)
    pixel = PixelDescription(rows, columns, 1, 16, 12, 0, "MONOCHROME2")
    out = tc.encode_frame(arr, pixel, tc.HTJ2K_RPCL, source_lossy=False)
    cod = out.data.index(b"\xff\x52")
    assert out.data[cod + 5] == 2  # SGcod progression order: RPCL
    assert math.ceil(rows / 2 ** out.data[cod + 9]) <= 64  # SPcod decomposition levels
    assert b"\xff\x55" in out.data[: out.data.index(b"\xff\x90")]  # TLM in the main header
    np.testing.assert_array_equal(_decode_independently(out), arr)


def test_j2k_needs_32_pixels_a_side() -> None:
    pixel = PixelDescription(16, 64, 1, 8, 8, 0, "MONOCHROME2")
    assert not tc.can_encode(tc.J2K_LOSSLESS, pixel)
    assert tc.can_encode(tc.HTJ2K_LOSSLESS, pixel)
    with pytest.raises(NotAcceptable, match="at least 32"):
        tc.encode_frame(np.zeros((16, 64), np.uint8), pixel, tc.J2K_LOSSLESS, source_lossy=False)


# --- whole instances -------------------------------------------------------------------------

INSTANCE_CASES = [
    # file, target, lossless?, expected LossyImageCompression
    ("CT_small.dcm", tc.J2K_LOSSLESS, True, None),
    ("CT_small.dcm", tc.JPEG_LS_NEAR, False, "01"),
    ("CT_small.dcm", tc.DEFLATED_EXPLICIT_VR_LE, True, None),
    ("emri_small.dcm", tc.HTJ2K_RPCL, True, "00"),
    ("emri_small_jpeg_2k_lossless.dcm", tc.EXPLICIT_VR_LE, True, "00"),
    ("SC_rgb.dcm", tc.JPEG_BASELINE, False, "01"),
    ("SC_rgb_rle_2frame.dcm", tc.JPEG_LOSSLESS_SV1, True, None),
    ("SC_rgb_jpeg_dcmtk.dcm", tc.EXPLICIT_VR_LE, True, "01"),
    ("JPGExtended.dcm", tc.J2K, False, "01"),
    ("MR_small_bigendian.dcm", tc.RLE_LOSSLESS, True, None),
]


@pytest.mark.parametrize(("name", "target", "lossless", "lossy_flag"), INSTANCE_CASES)
def test_transcode_instance(name: str, target: str, lossless: bool, lossy_flag: str | None) -> None:
    path = _data_file(name)
    before = dcmread(path)
    with open(path, "rb") as f:
        result = tc.transcode_instance(f, target)
    after = dcmread(io.BytesIO(result))
    assert after.file_meta.TransferSyntaxUID == target
    assert after.SOPInstanceUID == before.SOPInstanceUID
    assert after.get("NumberOfFrames") == before.get("NumberOfFrames")
    assert after.get("LossyImageCompression") == lossy_flag
    a, b = before.pixel_array, after.pixel_array
    if lossless:
        np.testing.assert_array_equal(a, b)
    else:
        assert _psnr(a, b) >= MIN_PSNR[target]
        methods = {tc.JPEG_BASELINE: "ISO_10918_1", tc.JPEG_LS_NEAR: "ISO_14495_1", tc.J2K: "ISO_15444_1"}
        assert _values(after, "LossyImageCompressionMethod")[-1] == methods[target]
        ratios = _values(after, "LossyImageCompressionRatio")
        assert float(ratios[-1]) > 1
        # earlier steps are kept and this one appended (PS3.3 C.7.6.1.1.5)
        assert len(ratios) == len(_values(before, "LossyImageCompressionRatio")) + 1


def _values(ds: Any, keyword: str) -> list[Any]:
    value = ds.get(keyword)
    if value is None:
        return []
    return list(value) if isinstance(value, MultiValue) else [value]


def test_big_endian_instance_is_rewritten_little_endian() -> None:
    """Lookup tables (OW) are byte-swapped too, not only the pixels."""
    big = Path(_data_file("gdcm-US-ALOKA-16_big.dcm")).read_bytes()
    after = dcmread(io.BytesIO(tc.transcode_instance(big, tc.EXPLICIT_VR_LE)))
    little = dcmread(_data_file("gdcm-US-ALOKA-16.dcm"))
    np.testing.assert_array_equal(after.pixel_array, little.pixel_array)
    for keyword in ("SegmentedRedPaletteColorLookupTableData", "SegmentedBluePaletteColorLookupTableData"):
        assert after[keyword].value == little[keyword].value


def test_transcode_instance_same_syntax_is_identity() -> None:
    raw = Path(_data_file("CT_small.dcm")).read_bytes()
    assert tc.transcode_instance(raw, tc.EXPLICIT_VR_LE) is raw


def test_transcode_instance_without_pixels() -> None:
    raw = Path(_data_file("rtplan.dcm")).read_bytes()
    for target in (tc.EXPLICIT_VR_LE, tc.DEFLATED_EXPLICIT_VR_LE):
        ds = dcmread(io.BytesIO(tc.transcode_instance(raw, target)))
        assert ds.file_meta.TransferSyntaxUID == target
        assert ds.SOPInstanceUID == dcmread(io.BytesIO(raw)).SOPInstanceUID
    with pytest.raises(NotAcceptable, match="non-image"):
        tc.transcode_instance(raw, tc.J2K_LOSSLESS)


# --- refusals and errors ---------------------------------------------------------------------


@pytest.mark.parametrize("uid", VIDEO)
def test_video_is_not_transcoded(uid: str) -> None:
    src = source("SC_rgb")
    assert not tc.can_decode(uid)
    assert not tc.can_encode(uid, src.pixel)
    with pytest.raises(NotAcceptable, match="video"):
        tc.transcode_frame(src.frame, src.transfer_syntax_uid, uid, src.pixel, source_lossy=False)
    with pytest.raises(NotAcceptable, match="video"):
        tc.decode_frame(b"\x00\x00\x01\xba", uid, src.pixel)
    with pytest.raises(NotAcceptable, match="video"):
        tc.transcode_instance(Path(_data_file("SC_rgb.dcm")).read_bytes(), uid)


def test_every_still_image_syntax_decodes() -> None:
    still = [uid for uid, ts in TRANSFER_SYNTAXES.items() if not ts.video]
    assert [uid for uid in still if not tc.can_decode(uid)] == []


def test_big_endian_frame_decodes() -> None:
    ds = dcmread(_data_file("MR_small_bigendian.dcm"))
    arr, pixel = tc.decode_frame(ds.PixelData, tc.EXPLICIT_VR_BE, tc._pixel_description(ds))
    np.testing.assert_array_equal(arr, ds.pixel_array)
    assert arr.dtype.byteorder in "<="


@pytest.mark.parametrize(
    ("uid", "data"),
    [
        (tc.JPEG_LOSSLESS_SV1, b"\xff\xd8\xff\xc3garbage"),
        (tc.JPEG_BASELINE, b"\xff\xd8\xff\xdb\x00\x43" + bytes(20)),
        (tc.JPEG_LS_LOSSLESS, b"\xff\xd8\xff\xf7\x00\x0b" + bytes(9)),
        (tc.J2K_LOSSLESS, b"\xff\x4f\xff\x51" + bytes(30)),
        (tc.HTJ2K_LOSSLESS, b"\xff\x4f\xff\x51" + bytes(30)),
        (tc.RLE_LOSSLESS, bytes(64)),
        (tc.EXPLICIT_VR_LE, b"\x00" * 10),  # too short for the frame
    ],
)
def test_corrupt_frames_raise_decode_error(uid: str, data: bytes) -> None:
    pixel = PixelDescription(64, 64, 1, 16, 16, 1, "MONOCHROME2")
    with pytest.raises(DecodeError, match="^cannot decode frame: "):
        tc.decode_frame(data, uid, pixel)
    with pytest.raises(DecodeError):
        tc.transcode_frame(data, uid, tc.RLE_LOSSLESS if uid != tc.RLE_LOSSLESS else tc.EXPLICIT_VR_LE,
                           pixel, source_lossy=False)


def test_corrupt_instance_raises_decode_error() -> None:
    raw = bytearray(Path(_data_file("JPEG-LL.dcm")).read_bytes())
    sof = raw.index(b"\xff\xc3")  # the frame header and Huffman tables become zeros
    raw[sof : sof + 64] = bytes(64)
    with pytest.raises(DecodeError):
        tc.transcode_instance(bytes(raw), tc.EXPLICIT_VR_LE)


@pytest.mark.parametrize(
    ("uid", "reason"),
    [
        ("1.2.3.4", "unsupported transfer syntax"),
        (tc.J2K_PART2_LOSSLESS, "Part 2"),
        (tc.EXPLICIT_VR_BE, "retired"),
    ],
)
def test_unencodable_targets(uid: str, reason: str) -> None:
    src = source("CT_small")
    assert not tc.can_encode(uid, src.pixel)
    with pytest.raises(NotAcceptable, match=reason):
        tc.transcode_frame(src.frame, src.transfer_syntax_uid, uid, src.pixel, source_lossy=False)


def test_float_pixels_only_native() -> None:
    pixel = PixelDescription(4, 4, 1, 32, 32, 0, "MONOCHROME2")
    arr = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    out = tc.encode_frame(arr, pixel, tc.EXPLICIT_VR_LE, source_lossy=False)
    assert out.data == arr.astype("<f4").tobytes()
    with pytest.raises(NotAcceptable, match="floating point"):
        tc.encode_frame(arr, pixel, tc.RLE_LOSSLESS, source_lossy=False)


# Run in a child process so that a crash fails this test instead of killing the test worker.
# A switch interval of a microsecond makes threads interleave inside the codecs' Python callbacks:
# without the process-wide lock, pylibjpeg-openjpeg's logging helper crashed this script every time.
_CONCURRENT_SCRIPT = """
import sys, threading
sys.setswitchinterval(1e-6)
from pydicom import dcmread
from pydicom.data import get_testdata_file
from dicomweb_origin.dicom import transcode as tc
# 16-bit grey (encoded by openjpeg, decoded by imagecodecs) and 8-bit RGB (decoded by openjpeg too)
sources = []
for name in ("emri_small.dcm", "SC_rgb.dcm"):
    ds = dcmread(get_testdata_file(name))
    frames = ds.pixel_array.reshape(-1, *ds.pixel_array.shape[-3 if ds.SamplesPerPixel > 1 else -2:])
    sources += [(tc._pixel_description(ds), frame.tobytes()) for frame in frames]
targets = [tc.J2K, tc.J2K_LOSSLESS, tc.HTJ2K_LOSSLESS]
def there_and_back(i, target):
    pixel, frame = sources[i]
    out = tc.transcode_frame(frame, tc.EXPLICIT_VR_LE, target, pixel, source_lossy=False)
    back = tc.transcode_frame(out.data, target, tc.EXPLICIT_VR_LE, out.pixel, source_lossy=False)
    return out.data, back.data
expected = {(i, t): there_and_back(i, t) for i in range(len(sources)) for t in targets}
# ... and pydicom used directly, as any other code in the process may: the lock is process-wide
j2k = [get_testdata_file(name) for name in ("MR_small_jp2klossless.dcm", "emri_small_jpeg_2k_lossless.dcm")]
pixels = [dcmread(path).pixel_array.tobytes() for path in j2k]
mismatches = []
def work(k):
    for n in range(60):
        i, t = (n + k) % len(sources), targets[(n + k) % len(targets)]
        if there_and_back(i, t) != expected[(i, t)]:
            mismatches.append((i, t))
        if dcmread(j2k[n % 2]).pixel_array.tobytes() != pixels[n % 2]:
            mismatches.append(j2k[n % 2])
threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
for thread in threads: thread.start()
for thread in threads: thread.join()
print("mismatches", len(mismatches))
"""


def test_concurrent_jpeg2000_transcodes_neither_crash_nor_differ() -> None:
    """The server transcodes in a thread pool: JPEG 2000 and HTJ2K codecs run in eight threads at once."""
    done = subprocess.run([sys.executable, "-c", _CONCURRENT_SCRIPT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["mismatches", "0"]


@pytest.mark.parametrize(("name", "first_method"), [("examples_ybr_color.dcm", "ISO_10918_1"),
                                                    ("US1_J2KI.dcm", "ISO_15444_1")])
def test_lossy_ratio_and_method_values_correspond(name: str, first_method: str) -> None:
    """PS3.3 C.7.6.1.1.5: one Method per Ratio; a source's missing Method is its lossy syntax's."""
    source = dcmread(_data_file(name))
    assert "LossyImageCompressionMethod" not in source  # only a Ratio, as received
    out = dcmread(io.BytesIO(tc.transcode_instance(Path(_data_file(name)).read_bytes(), tc.JPEG_LS_NEAR)))
    ratios, methods = list(out.LossyImageCompressionRatio), list(out.LossyImageCompressionMethod)
    assert len(ratios) == len(methods) == 2
    assert methods == [first_method, "ISO_14495_1"]
    assert out.LossyImageCompression == "01"
