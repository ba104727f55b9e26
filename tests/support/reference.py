"""The reference instances every HTTP test reuses, with what each one is expected to be.

Modelled on pydicom's ``tests/pixels/pixels_reference.py``: one table, literal expectations. Files
come from pydicom's bundled test data, its charset files and the ``pydicom-data`` package (installed,
never downloaded). Many of those files share a SOP Instance UID (the same image in several encodings);
the archive holds one object per UID, so each copy here gets a *fresh* UID of the same length, patched
in place in the bytes (nothing else moves, so compressed and Big Endian files keep their exact encoding).
The copy that keeps the original UID is the one the demo generator also ships, so that loading the
demo afterwards finds the same bytes ("already present").
"""

from __future__ import annotations

import functools
import hashlib
import io
import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom import Dataset, FileMetaDataset, dcmread
from pydicom.data import get_charset_files, get_testdata_file
from pydicom.encaps import encapsulate
from pydicom.uid import UID, generate_uid

ELE = "1.2.840.10008.1.2.1"
ILE = "1.2.840.10008.1.2"
EBE = "1.2.840.10008.1.2.2"
DEFLATE = "1.2.840.10008.1.2.1.99"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
JPEG_LOSSLESS = "1.2.840.10008.1.2.4.57"
JPEG_SV1 = "1.2.840.10008.1.2.4.70"
JLS_LOSSLESS = "1.2.840.10008.1.2.4.80"
JLS_NEAR = "1.2.840.10008.1.2.4.81"
J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"
J2K = "1.2.840.10008.1.2.4.91"
J2K_PART2_LOSSLESS = "1.2.840.10008.1.2.4.92"
J2K_PART2 = "1.2.840.10008.1.2.4.93"
HTJ2K_LOSSLESS = "1.2.840.10008.1.2.4.201"
HTJ2K_RPCL = "1.2.840.10008.1.2.4.202"
HTJ2K = "1.2.840.10008.1.2.4.203"
RLE = "1.2.840.10008.1.2.5"
MPEG2 = "1.2.840.10008.1.2.4.101"
H264 = "1.2.840.10008.1.2.4.102"

# Bulk data media type of one frame per transfer syntax (PS3.18 Table 8.7.3-5).
MEDIA_TYPE = {
    ELE: "application/octet-stream", JPEG_BASELINE: "image/jpeg", JPEG_EXTENDED: "image/jpeg",
    JPEG_LOSSLESS: "image/jpeg", JPEG_SV1: "image/jpeg", JLS_LOSSLESS: "image/jls", JLS_NEAR: "image/jls",
    J2K_LOSSLESS: "image/jp2", J2K: "image/jp2", J2K_PART2_LOSSLESS: "image/jpx", J2K_PART2: "image/jpx",
    HTJ2K_LOSSLESS: "image/jph", HTJ2K_RPCL: "image/jph", HTJ2K: "image/jph", RLE: "image/dicom-rle",
}
# Syntaxes that can only hold lossy data, or are lossy-capable and used lossily by the transcoder.
LOSSY_SYNTAXES = frozenset({JPEG_BASELINE, JPEG_EXTENDED, JLS_NEAR, J2K, J2K_PART2, HTJ2K})
COMPRESSED_SYNTAXES = frozenset(MEDIA_TYPE) - {ELE}
# Every syntax a client might ask for in the transcoding matrix.
MATRIX_SYNTAXES = (
    ELE, DEFLATE, ILE, EBE, JPEG_BASELINE, JPEG_EXTENDED, JPEG_LOSSLESS, JPEG_SV1, JLS_LOSSLESS, JLS_NEAR,
    J2K_LOSSLESS, J2K, J2K_PART2_LOSSLESS, HTJ2K_LOSSLESS, HTJ2K_RPCL, HTJ2K, RLE, MPEG2,
)


@dataclass(frozen=True)
class Reference:
    """One reference instance and its expected properties once stored."""

    name: str  # test id
    file: str  # file name in pydicom's test files, charset files or pydicom-data
    syntax: str  # transfer syntax of the file as received
    frames: int  # Number of Frames; 0 for an instance without pixel data
    rows: int = 0
    columns: int = 0
    samples: int = 1
    bits_allocated: int = 0
    photometric: str = ""
    lossy: bool = False  # pixels went through lossy compression (syntax or LossyImageCompression "01")
    fresh_uid: bool = False  # the file shares its SOP Instance UID with another one: patch a new one in
    add_study: bool = False  # the file has no Study / Series Instance UID: add deterministic ones
    features: frozenset[str] = field(default_factory=frozenset)
    patient_name: str | None = None  # decoded (0010,0010), for the character set files
    bulk: tuple[str, ...] = ()  # non-pixel bulk data tag paths (values > 1024 bytes)
    matrix: bool = False  # part of the transcoding matrix

    @property
    def stored_syntax(self) -> str:
        """Implicit VR, Big Endian, Deflate and no-meta files are stored as Explicit VR LE."""
        return ELE if self.syntax in (ILE, EBE, DEFLATE, "") else self.syntax

    @property
    def encapsulated(self) -> bool:
        return self.stored_syntax not in (ELE, ILE, EBE, DEFLATE)

    @property
    def has_pixels(self) -> bool:
        return self.frames > 0

    @property
    def decodable(self) -> bool:
        """pydicom (and so the server) can decode its pixel data here."""
        return self.has_pixels and not {"video", "undecodable"} & self.features

    @property
    def byte_identical(self) -> bool:
        """The stored (and retrieved) bytes are those received."""
        return self.syntax == self.stored_syntax


def _f(*names: str) -> frozenset[str]:
    return frozenset(names)


R = Reference
REFERENCES: tuple[Reference, ...] = (
    # -- Explicit VR Little Endian --------------------------------------------------------------------
    R("CT_small", "CT_small.dcm", ELE, 1, 128, 128, 1, 16, "MONOCHROME2",
      features=_f("private", "sequence", "signed", "demo"), bulk=("00431029",), matrix=True),
    R("MR_small", "MR_small.dcm", ELE, 1, 64, 64, 1, 16, "MONOCHROME2", fresh_uid=True, features=_f("signed"),
      matrix=True),
    R("SC_rgb", "SC_rgb.dcm", ELE, 1, 100, 100, 3, 8, "RGB", fresh_uid=True, matrix=True),
    R("SC_rgb_16bit_2frame", "SC_rgb_16bit_2frame.dcm", ELE, 2, 100, 100, 3, 16, "RGB", fresh_uid=True,
      features=_f("multiframe"), matrix=True),
    R("SC_rgb_32bit_2frame", "SC_rgb_32bit_2frame.dcm", ELE, 2, 100, 100, 3, 32, "RGB", fresh_uid=True,
      features=_f("multiframe")),
    R("SC_ybr_full_422", "SC_ybr_full_422_uncompressed.dcm", ELE, 1, 100, 100, 3, 8, "YBR_FULL_422",
      lossy=True, features=_f("sequence", "ybr422"), matrix=True),
    R("examples_overlay", "examples_overlay.dcm", ELE, 1, 300, 484, 1, 16, "MONOCHROME2",
      features=_f("private", "sequence", "overlay", "icon"),
      bulk=("00291110", "00880200/1/7FE00010", "60003000")),
    R("examples_palette", "examples_palette.dcm", ELE, 1, 350, 800, 1, 8, "PALETTE COLOR",
      features=_f("sequence", "palette")),
    R("emri_small", "emri_small.dcm", ELE, 10, 64, 64, 1, 16, "MONOCHROME2", features=_f("multiframe"),
      matrix=True),
    R("liver", "liver.dcm", ELE, 3, 512, 512, 1, 1, "MONOCHROME2", features=_f("multiframe", "sequence", "1bit"),
      matrix=True),
    R("waveform_ecg", "waveform_ecg.dcm", ELE, 0, features=_f("private", "sequence", "waveform"),
      bulk=("54000100/1/54001010", "54000100/2/54001010")),
    R("test_SR", "test-SR.dcm", ELE, 0, features=_f("sequence", "sr")),
    # -- no File Meta Information / Implicit VR Little Endian -------------------------------------------
    R("rtstruct", "rtstruct.dcm", "", 0, features=_f("sequence", "no-meta")),
    R("MR_small_implicit", "MR_small_implicit.dcm", ILE, 1, 64, 64, 1, 16, "MONOCHROME2", fresh_uid=True,
      features=_f("signed")),
    R("rtplan", "rtplan.dcm", ILE, 0, features=_f("sequence")),
    R("rtdose", "rtdose.dcm", ILE, 15, 10, 10, 1, 32, "MONOCHROME2", fresh_uid=True,
      features=_f("multiframe", "sequence"), matrix=True),
    R("SC_rgb_jpeg_dcmd", "SC_rgb_jpeg_dcmd.dcm", ILE, 1, 256, 256, 3, 8, "RGB", features=_f("demo")),
    R("US_ALOKA_16", "gdcm-US-ALOKA-16.dcm", ILE, 1, 480, 640, 1, 16, "PALETTE COLOR",
      features=_f("sequence", "palette"), bulk=("00281221", "00281222", "00281223")),
    # -- Explicit VR Big Endian -------------------------------------------------------------------------
    R("MR_small_bigendian", "MR_small_bigendian.dcm", EBE, 1, 64, 64, 1, 16, "MONOCHROME2", fresh_uid=True,
      features=_f("signed"), matrix=True),
    R("ExplVR_BigEnd", "ExplVR_BigEnd.dcm", EBE, 1, 60, 80, 3, 8, "RGB", features=_f("planar")),
    R("SC_rgb_expb_16bit", "SC_rgb_expb_16bit.dcm", EBE, 1, 100, 100, 3, 16, "RGB", fresh_uid=True),
    R("rtdose_expb", "rtdose_expb.dcm", EBE, 15, 10, 10, 1, 32, "MONOCHROME2", fresh_uid=True,
      features=_f("multiframe", "sequence")),
    R("liver_expb", "liver_expb.dcm", EBE, 3, 512, 512, 1, 1, "MONOCHROME2", fresh_uid=True,
      features=_f("multiframe", "sequence", "1bit")),
    R("emri_small_big_endian", "emri_small_big_endian.dcm", EBE, 10, 64, 64, 1, 16, "MONOCHROME2",
      fresh_uid=True, features=_f("multiframe")),
    # -- Deflated Explicit VR Little Endian ---------------------------------------------------------------
    R("image_dfl", "image_dfl.dcm", DEFLATE, 1, 512, 512, 1, 8, "MONOCHROME2", features=_f("demo"),
      matrix=True),
    # -- JPEG Baseline / Extended (lossy) ------------------------------------------------------------------
    R("SC_rgb_jpeg_dcmtk", "SC_rgb_jpeg_dcmtk.dcm", JPEG_BASELINE, 1, 100, 100, 3, 8, "YBR_FULL", lossy=True,
      features=_f("sequence"), matrix=True),
    R("SC_rgb_dcmtk_422", "SC_rgb_dcmtk_+eb+cy+np.dcm", JPEG_BASELINE, 1, 100, 100, 3, 8, "YBR_FULL_422",
      lossy=True, features=_f("sequence")),
    R("SC_jpeg_no_color_transform", "SC_jpeg_no_color_transform.dcm", JPEG_BASELINE, 1, 256, 256, 3, 8, "RGB",
      lossy=True),
    R("examples_ybr_color", "examples_ybr_color.dcm", JPEG_BASELINE, 30, 240, 320, 3, 8, "YBR_FULL_422",
      lossy=True, features=_f("multiframe", "private", "sequence", "demo")),
    R("SC_rgb_small_odd_jpeg", "SC_rgb_small_odd_jpeg.dcm", JPEG_BASELINE, 1, 3, 3, 3, 8, "YBR_FULL",
      lossy=True, features=_f("sequence")),
    R("JPGExtended", "JPGExtended.dcm", JPEG_EXTENDED, 1, 1024, 256, 1, 16, "MONOCHROME2", lossy=True,
      features=_f("private", "sequence"), matrix=True),
    # pydicom's JPEG-lossy.dcm: a 12-bit JPEG Extended bitstream no installed decoder accepts.
    R("JPEG_lossy_undecodable", "JPEG-lossy.dcm", JPEG_EXTENDED, 1, 1024, 256, 1, 16, "MONOCHROME2", lossy=True,
      fresh_uid=True, features=_f("private", "sequence", "undecodable")),
    # -- JPEG Lossless ----------------------------------------------------------------------------------------
    R("SC_rgb_jpeg_gdcm", "SC_rgb_jpeg_gdcm.dcm", JPEG_SV1, 1, 100, 100, 3, 8, "RGB", features=_f("demo"),
      matrix=True),
    R("JPEG_LL", "JPEG-LL.dcm", JPEG_SV1, 1, 1024, 256, 1, 16, "MONOCHROME2", fresh_uid=True,
      features=_f("private", "sequence", "signed")),
    # -- JPEG-LS -------------------------------------------------------------------------------------------------
    R("MR_small_jpeg_ls_lossless", "MR_small_jpeg_ls_lossless.dcm", JLS_LOSSLESS, 1, 64, 64, 1, 16,
      "MONOCHROME2", features=_f("signed", "demo"), matrix=True),
    R("emri_small_jpeg_ls_lossless", "emri_small_jpeg_ls_lossless.dcm", JLS_LOSSLESS, 10, 64, 64, 1, 16,
      "MONOCHROME2", fresh_uid=True, features=_f("multiframe")),
    R("JPEGLSNearLossless_16", "JPEGLSNearLossless_16.dcm", JLS_NEAR, 1, 50, 10, 1, 16, "MONOCHROME2",
      lossy=True, add_study=True),
    R("SC_rgb_jls_lossy_sample", "SC_rgb_jls_lossy_sample.dcm", JLS_NEAR, 1, 100, 100, 3, 8, "RGB",
      lossy=True, add_study=True),
    # -- JPEG 2000 ---------------------------------------------------------------------------------------------
    R("MR_small_jp2klossless", "MR_small_jp2klossless.dcm", J2K_LOSSLESS, 1, 64, 64, 1, 16, "MONOCHROME2",
      fresh_uid=True, features=_f("signed"), matrix=True),
    R("emri_small_jpeg_2k_lossless", "emri_small_jpeg_2k_lossless.dcm", J2K_LOSSLESS, 10, 64, 64, 1, 16,
      "MONOCHROME2", fresh_uid=True, features=_f("multiframe")),
    R("examples_jpeg2k", "examples_jpeg2k.dcm", J2K_LOSSLESS, 1, 480, 640, 3, 8, "YBR_RCT",
      features=_f("sequence"), matrix=True),
    R("GDCMJ2K_TextGBR", "GDCMJ2K_TextGBR.dcm", J2K_LOSSLESS, 1, 400, 400, 3, 8, "YBR_RCT"),
    R("J2K_pixelrep_mismatch", "J2K_pixelrep_mismatch.dcm", J2K_LOSSLESS, 1, 512, 512, 1, 16, "MONOCHROME2",
      features=_f("private", "charset"), bulk=("00091101",)),
    R("JPEG2000", "JPEG2000.dcm", J2K, 1, 1024, 256, 1, 16, "MONOCHROME2", lossy=True,
      features=_f("private", "sequence", "signed", "demo"), matrix=True),
    R("SC_rgb_gdcm_KY", "SC_rgb_gdcm_KY.dcm", J2K, 1, 100, 100, 3, 8, "RGB", lossy=True, features=_f("sequence")),
    R("693_J2KI", "693_J2KI.dcm", J2K, 1, 512, 512, 1, 16, "MONOCHROME2", lossy=True,
      features=_f("sequence", "signed")),
    # -- RLE Lossless ---------------------------------------------------------------------------------------
    R("MR_small_RLE", "MR_small_RLE.dcm", RLE, 1, 64, 64, 1, 16, "MONOCHROME2", fresh_uid=True,
      features=_f("signed"), matrix=True),
    R("SC_rgb_rle", "SC_rgb_rle.dcm", RLE, 1, 100, 100, 3, 8, "RGB", fresh_uid=True),
    R("SC_rgb_rle_16bit_2frame", "SC_rgb_rle_16bit_2frame.dcm", RLE, 2, 100, 100, 3, 16, "RGB", fresh_uid=True,
      features=_f("multiframe"), matrix=True),
    R("rtdose_rle", "rtdose_rle.dcm", RLE, 15, 10, 10, 1, 32, "MONOCHROME2",
      features=_f("multiframe", "sequence", "demo")),
    R("emri_small_RLE", "emri_small_RLE.dcm", RLE, 10, 64, 64, 1, 16, "MONOCHROME2", fresh_uid=True,
      features=_f("multiframe")),
    # -- Video: one H.264 bitstream for all frames (synthetic; never decoded, served only as stored) --------
    R("video_h264", "synthetic:video", H264, 10, 64, 64, 3, 8, "YBR_PARTIAL_420", lossy=True,
      features=_f("video", "multiframe")),
    # -- Specific Character Set (PS3.5 §6.1; DICOM JSON is UTF-8, PS3.18 §F.2) ------------------------------
    R("chrArab", "chrArab.dcm", ELE, 1, 32, 32, 1, 8, "MONOCHROME2", features=_f("charset"),
      patient_name="قباني^لنزار"),
    R("chrFren", "chrFren.dcm", ELE, 1, 32, 32, 1, 8, "MONOCHROME2", features=_f("charset"),
      patient_name="Buc^Jérôme"),
    R("chrFrenMulti", "chrFrenMulti.dcm", ELE, 1, 32, 32, 1, 8, "MONOCHROME2", fresh_uid=True,
      features=_f("charset"), patient_name="Buc^Jérôme"),
    R("chrGerm", "chrGerm.dcm", ELE, 1, 32, 32, 1, 8, "MONOCHROME2", features=_f("charset"),
      patient_name="Äneas^Rüdiger"),
    R("chrGreek", "chrGreek.dcm", ELE, 1, 32, 32, 1, 8, "MONOCHROME2", features=_f("charset"),
      patient_name="Διονυσιος"),
    R("chrH31", "chrH31.dcm", ELE, 1, 32, 32, 1, 8, "MONOCHROME2", features=_f("charset"),
      patient_name="Yamada^Tarou=山田^太郎=やまだ^たろう"),
    R("chrH32", "chrH32.dcm", ELE, 1, 32, 32, 1, 8, "MONOCHROME2", features=_f("charset"),
      patient_name="ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう"),
    R("chrHbrw", "chrHbrw.dcm", ELE, 1, 32, 32, 1, 8, "MONOCHROME2", features=_f("charset"),
      patient_name="שרון^דבורה"),
    R("chrI2", "chrI2.dcm", ELE, 1, 32, 32, 1, 8, "MONOCHROME2", features=_f("charset"),
      patient_name="Hong^Gildong=洪^吉洞=홍^길동"),
    R("chrJapMulti", "chrJapMulti.dcm", ELE, 0, features=_f("charset"), patient_name="やまだ^たろう"),
    R("chrJapMultiExplicitIR6", "chrJapMultiExplicitIR6.dcm", ELE, 0, fresh_uid=True, features=_f("charset"),
      patient_name="やまだ^たろう"),
    R("chrKoreanMulti", "chrKoreanMulti.dcm", ELE, 0, features=_f("charset"), patient_name="김희중"),
    R("chrRuss", "chrRuss.dcm", ELE, 1, 32, 32, 1, 8, "MONOCHROME2", features=_f("charset"),
      patient_name="Люкceмбypг"),
    R("chrX1", "chrX1.dcm", ELE, 1, 32, 32, 1, 8, "MONOCHROME2", features=_f("charset"),
      patient_name="Wang^XiaoDong=王^小東"),
    R("chrX2", "chrX2.dcm", ELE, 1, 32, 32, 1, 8, "MONOCHROME2", features=_f("charset"),
      patient_name="Wang^XiaoDong=王^小东"),
)
BY_NAME = {ref.name: ref for ref in REFERENCES}

# Deliberately broken files: each must be refused at ingest, with a reason, leaving nothing behind.
BROKEN_FILES = {
    "MR_truncated.dcm": "Pixel Data shorter than its declared length",
    "rtplan_truncated.dcm": "file ends inside a sequence",
    "no_meta.dcm": "no File Meta Information and a damaged first element",
    "badVR.dcm": "invalid VR / invalid Number of Frames",
    "emri_small_jpeg_2k_lossless_too_short.dcm": "encapsulated Pixel Data without its delimiter",
    "UN_sequence.dcm": "a fragment without SOP Class / Instance UIDs",
}


def by_feature(feature: str) -> list[Reference]:
    return [ref for ref in REFERENCES if feature in ref.features]


def where(predicate: Callable[[Reference], bool]) -> list[Reference]:
    return [ref for ref in REFERENCES if predicate(ref)]


def source_path(file: str) -> Path:
    """Path of a file from pydicom's test files, charset files or pydicom-data; never downloads."""
    found = get_testdata_file(file, download=False)
    if not found:
        charset = get_charset_files(file)
        found = charset[0] if charset else None
    if not found:
        raise FileNotFoundError(f"{file} is in neither pydicom's test data nor pydicom-data")
    return Path(str(found))


def _fresh_uid(old: str, salt: str) -> str:
    """A valid UID of the same length as ``old`` (only the last component changes)."""
    prefix, last = old.rsplit(".", 1)
    digits = str(int(hashlib.sha256(f"{old}/{salt}".encode()).hexdigest(), 16))
    for start in range(len(digits) - len(last)):
        candidate = digits[start : start + len(last)]
        if candidate[0] != "0" and candidate != last:
            return f"{prefix}.{candidate}"
    raise AssertionError(f"cannot derive a fresh UID from {old}")


def _replace_uid(data: bytes, old: str, new: str) -> bytes:
    """Replace every value equal to ``old`` (not a longer UID that contains it) by ``new``."""
    assert len(old) == len(new)
    padded = len(old) + len(old) % 2
    # What may precede a value: a non-UID byte, or a value length field (which may hold a digit byte).
    lengths = (struct.pack("<H", padded), struct.pack(">H", padded), struct.pack("<I", padded),
               struct.pack(">I", padded))
    out = bytearray(data)
    count = 0
    for match in re.finditer(re.escape(old.encode()) + rb"(?![0-9.])", data):
        before = data[max(0, match.start() - 4) : match.start()]
        if before[-1:] in b"0123456789." and not any(before.endswith(n) for n in lengths):
            continue
        out[match.start() : match.end()] = new.encode()
        count += 1
    assert count >= 1, f"UID {old} not found in the file"
    return bytes(out)


def _synthetic_video(ref: Reference) -> bytes:
    """A Video Endoscopic instance in MPEG-4 AVC/H.264: the fragment is opaque bytes, never decoded."""
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.77.1.1.1"
    ds.SOPInstanceUID = generate_uid(entropy_srcs=["dicomweb-origin tests instance", ref.name])
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["dicomweb-origin tests study", ref.name])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["dicomweb-origin tests series", ref.name])
    ds.Modality, ds.PatientName, ds.PatientID, ds.InstanceNumber = "ES", "Video^Synthetic", "VIDEO-1", 1
    ds.Rows, ds.Columns, ds.SamplesPerPixel = ref.rows, ref.columns, ref.samples
    ds.PhotometricInterpretation, ds.PlanarConfiguration = ref.photometric, 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.NumberOfFrames, ds.FrameTime, ds.FrameIncrementPointer = ref.frames, 40.0, 0x00181063
    ds.LossyImageCompression = "01"
    stream = b"\x00\x00\x00\x01\x67\x64\x00\x1f" + bytes(range(256)) * 8  # an H.264 start code, then filler
    ds.PixelData = encapsulate([stream])
    ds["PixelData"].VR = "OB"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(ref.syntax)
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


@functools.cache
def prepared_bytes(name: str) -> bytes:
    """The bytes of a reference instance exactly as the tests send and store them."""
    ref = BY_NAME[name]
    if ref.file == "synthetic:video":
        return _synthetic_video(ref)
    data = source_path(ref.file).read_bytes()
    if ref.add_study:
        ds = dcmread(io.BytesIO(data))
        ds.StudyInstanceUID = generate_uid(entropy_srcs=["dicomweb-origin tests study", ref.name])
        ds.SeriesInstanceUID = generate_uid(entropy_srcs=["dicomweb-origin tests series", ref.name])
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        data = out.getvalue()
    if ref.fresh_uid:
        assert ref.syntax != DEFLATE, "cannot patch a UID inside a deflated dataset"
        old = str(dcmread(io.BytesIO(data), stop_before_pixels=True, force=True).SOPInstanceUID)
        data = _replace_uid(data, old, _fresh_uid(old, ref.name))
    return data


@functools.cache
def dataset(name: str) -> Dataset:
    """pydicom's own reading of the prepared bytes: the oracle for every comparison."""
    return dcmread(io.BytesIO(prepared_bytes(name)), force=True)


@dataclass(frozen=True)
class Uids:
    study: str
    series: str
    instance: str
    sop_class: str

    @property
    def path(self) -> str:
        return f"/studies/{self.study}/series/{self.series}/instances/{self.instance}"


@functools.cache
def uids(name: str) -> Uids:
    ds = dcmread(io.BytesIO(prepared_bytes(name)), stop_before_pixels=True, force=True)
    return Uids(str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID), str(ds.SOPClassUID))


def check_table() -> None:
    """Fail early if two references end up with one SOP Instance UID."""
    seen: dict[str, str] = {}
    for ref in REFERENCES:
        uid = uids(ref.name).instance
        assert uid not in seen, f"{ref.name} and {seen[uid]} share SOP Instance UID {uid}"
        assert pydicom.uid.UID(uid).is_valid, (ref.name, uid)
        seen[uid] = ref.name


def ids(refs: Sequence[Reference]) -> list[str]:
    return [ref.name for ref in refs]
