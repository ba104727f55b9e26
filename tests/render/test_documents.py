"""Renderings of instances that are not frames of pixels: video, Encapsulated PDF, SR, icons.

Video instances are generated here as the standard describes them (PS3.5 §8.2.5-§8.2.11: the
whole MPEG-2 / H.264 / HEVC bit stream encapsulated in the Pixel Data of a Video Endoscopic
Image), from a synthetic moving pattern encoded with PyAV; each stream is decoded back before
use. PDFs are written by hand; SRs are pydicom's real test files as DICOM JSON.
"""

from __future__ import annotations

import ast
import html.parser
import io
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import UID, generate_uid

from dicomweb_origin.errors import BadRequest, DecodeError, NotImplementedFeature
from dicomweb_origin.render import document, icons, report, video

MPEG2_MPML = "1.2.840.10008.1.2.4.100"
H264_HP41 = "1.2.840.10008.1.2.4.102"
HEVC_MAIN = "1.2.840.10008.1.2.4.107"
VIDEO_ENDOSCOPIC = "1.2.840.10008.5.1.4.1.1.77.1.1.1"
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
FRAMES, ROWS, COLUMNS, FRAME_TIME_MS = 10, 64, 64, 100.0
QUIET_X265: dict[str, object] = {"x265-params": "log-level=error"}


# ---------------------------------------------------------------- video fixtures

def moving_pattern(count: int = FRAMES, rows: int = ROWS, columns: int = COLUMNS) -> list[np.ndarray]:
    """A red-to-green ramp with a yellow square sliding right by 4 pixels a frame."""
    frames = []
    for index in range(count):
        rgb = np.zeros((rows, columns, 3), np.uint8)
        rgb[..., 0] = np.linspace(0, 255, columns, dtype=np.uint8)[None, :]
        rgb[..., 1] = np.linspace(255, 0, rows, dtype=np.uint8)[:, None]
        rgb[16:40, 4 + 4 * index:28 + 4 * index] = (255, 255, 0)
        frames.append(rgb)
    return frames


def encode(codec: str, container_format: str, frames: list[np.ndarray]) -> bytes:
    """Encode frames at 1000/FRAME_TIME_MS frames/s with PyAV into the given container."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=Fraction(1000, int(FRAME_TIME_MS)))
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        stream.options = QUIET_X265 if codec == "libx265" else {}
        for rgb in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def decode(data: bytes) -> list[np.ndarray]:
    """Decode every frame of a stream or file with PyAV, as RGB."""
    with av.open(io.BytesIO(data)) as container:
        assert isinstance(container, av.container.InputContainer)
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    error = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if error == 0 else 10 * np.log10(255**2 / error)


def video_instance(stream: bytes, transfer_syntax_uid: str) -> bytes:
    """A Video Endoscopic Image instance (PS3.3 A.32.5) whose Pixel Data is the whole stream."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(VIDEO_ENDOSCOPIC)
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = UID(transfer_syntax_uid)
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = VIDEO_ENDOSCOPIC, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.Modality = "Video^Test", "V1", "ES"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "YBR_PARTIAL_420", 0
    ds.Rows, ds.Columns, ds.NumberOfFrames = ROWS, COLUMNS, FRAMES
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.FrameTime, ds.FrameIncrementPointer = FRAME_TIME_MS, pydicom.tag.Tag("FrameTime")
    ds.CineRate, ds.LossyImageCompression = round(1000 / FRAME_TIME_MS), "01"
    ds.PixelData = encapsulate([stream], has_bot=False)
    ds["PixelData"].VR, ds["PixelData"].is_undefined_length = "OB", True
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def stored_stream(part10: bytes) -> tuple[bytes, str, float]:
    """Read back what the server stores: the joined fragments, the syntax and the Frame Time."""
    ds = pydicom.dcmread(io.BytesIO(part10))
    stream = next(generate_frames(ds.PixelData, number_of_frames=1))
    return stream, str(ds.file_meta.TransferSyntaxUID), float(ds.FrameTime)


@pytest.fixture(scope="module")
def videos() -> dict[str, tuple[bytes, str, float]]:
    """Video instances per kind of stream, each decoded back and checked against its source."""
    source = moving_pattern()
    made = {
        "mpeg2-elementary": (encode("mpeg2video", "mpeg2video", source), MPEG2_MPML),
        "mpeg2-program": (encode("mpeg2video", "mpeg", source), MPEG2_MPML),
        "h264-transport": (encode("libx264", "mpegts", source), H264_HP41),
        "h264-mp4": (encode("libx264", "mp4", source), H264_HP41),
        "h264-elementary": (encode("libx264", "h264", source), H264_HP41),
        "hevc-transport": (encode("libx265", "mpegts", source), HEVC_MAIN),
    }
    instances = {}
    for name, (stream, syntax) in made.items():
        decoded = decode(stream)
        assert len(decoded) == FRAMES and all(psnr(a, b) > 28 for a, b in zip(decoded, source, strict=True)), name
        instances[name] = stored_stream(video_instance(stream, syntax))
    return instances


def mp4_facts(mp4: bytes) -> tuple[str, str, str, int, int, Fraction]:
    with av.open(io.BytesIO(mp4)) as container:
        stream = container.streams.video[0]
        return (container.format.name, stream.codec_context.name, stream.codec_context.pix_fmt or "",
                stream.width, stream.height, Fraction(stream.average_rate or 0))


def top_level_boxes(mp4: bytes) -> list[bytes]:
    """ISO/IEC 14496-12 §4.2: a file is a sequence of boxes, each size (32 bits) then type."""
    boxes, offset = [], 0
    while offset + 8 <= len(mp4):
        size = int.from_bytes(mp4[offset:offset + 4], "big")
        boxes.append(mp4[offset + 4:offset + 8])
        offset += size if size >= 8 else len(mp4)
    return boxes


# ---------------------------------------------------------------- video tests

@pytest.mark.parametrize("name", ["h264-transport", "h264-mp4"])
def test_h264_in_a_container_is_remuxed_into_mp4_without_reencoding(videos, name):
    """PS3.5 §8.2.7: H.264 in MPEG-TS or MP4 carries PTS/DTS; video/mp4 copies its packets."""
    stream, syntax, _ = videos[name]
    mp4 = video.to_mp4(stream, syntax)
    assert mp4_facts(mp4)[:2] == ("mov,mp4,m4a,3gp,3g2,mj2", "h264")
    remuxed, original = decode(mp4), decode(stream)
    assert len(remuxed) == FRAMES
    assert all(np.array_equal(a, b) for a, b in zip(remuxed, original, strict=True))  # same bits decoded
    boxes = top_level_boxes(mp4)
    assert boxes.index(b"moov") < boxes.index(b"mdat")  # index first: plays while downloading


@pytest.mark.parametrize("name", ["mpeg2-elementary", "mpeg2-program", "hevc-transport", "h264-elementary"])
def test_other_streams_are_transcoded_to_h264_yuv420p_mp4(videos, name):
    """MPEG-2 and HEVC (and H.264 without timestamps) become H.264 in MP4, close to the source."""
    stream, syntax, frame_time = videos[name]
    mp4 = video.to_mp4(stream, syntax, frame_time_ms=frame_time)
    container, codec, pix_fmt, width, height, rate = mp4_facts(mp4)
    assert (codec, pix_fmt, width, height) == ("h264", "yuv420p", COLUMNS, ROWS)
    assert rate == Fraction(1000) / Fraction(frame_time)
    transcoded, original = decode(mp4), decode(stream)
    assert len(transcoded) == FRAMES
    assert min(psnr(a, b) for a, b in zip(transcoded, original, strict=True)) > 30


def test_video_frame_is_the_middle_frame_by_default(videos):
    stream, syntax, _ = videos["hevc-transport"]
    original = decode(stream)
    assert np.array_equal(video.video_frame(stream, syntax), original[FRAMES // 2])
    assert np.array_equal(video.video_frame(stream, syntax, 0), original[0])
    assert video.frame_count(stream, syntax) == FRAMES
    frame = video.video_frame(*videos["mpeg2-program"][:2], index=3)
    assert frame.shape == (ROWS, COLUMNS, 3) and frame.dtype == np.uint8
    with pytest.raises(BadRequest):
        video.video_frame(stream, syntax, FRAMES)


def test_video_refuses_non_video_syntaxes_and_garbage():
    with pytest.raises(NotImplementedFeature):
        video.to_mp4(b"\x00" * 100, "1.2.840.10008.1.2.4.50")
    with pytest.raises(DecodeError):
        video.video_frame(b"not a video stream at all" * 10, H264_HP41)


@pytest.mark.parametrize("shape", [(63, 65), (63, 65, 3), (64, 64, 3)])
def test_frames_to_mp4_encodes_h264_yuv420p_with_even_dimensions(shape):
    """A multi-frame image rendered as video/mp4: one frame per Frame Time, even width and height."""
    source = [f if len(shape) == 3 else f[..., 0] for f in moving_pattern(6, shape[0], shape[1])]
    mp4 = video.frames_to_mp4(source, 40.0, None)
    _, codec, pix_fmt, width, height, rate = mp4_facts(mp4)
    assert (codec, pix_fmt, width % 2, height % 2) == ("h264", "yuv420p", 0, 0)
    assert (height, width) == (shape[0] + shape[0] % 2, shape[1] + shape[1] % 2)
    assert rate == 25
    decoded = decode(mp4)
    assert len(decoded) == 6
    expected = [np.dstack([f] * 3) if f.ndim == 2 else f for f in source]
    assert min(psnr(d[: shape[0], : shape[1]], e) for d, e in zip(decoded, expected, strict=True)) > 30


def test_frames_to_mp4_quality_trades_size_for_fidelity():
    """PS3.18 §8.3.5.1.2: quality 100 is best; a low quality gives a smaller, coarser file."""
    rng = np.random.default_rng(1)
    source = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(4)]
    best, worst = video.frames_to_mp4(source, 100.0, 100), video.frames_to_mp4(source, 100.0, 1)
    assert len(worst) < len(best)
    assert psnr(decode(best)[0], source[0]) > psnr(decode(worst)[0], source[0])
    with pytest.raises(BadRequest):
        video.frames_to_mp4(source, 100.0, 0)
    with pytest.raises(BadRequest):
        video.frames_to_mp4(source + [source[0][:32]], 100.0, None)


# ---------------------------------------------------------------- Encapsulated PDF

def handmade_pdf(page_colours: list[tuple[float, float, float]]) -> bytes:
    """A PDF of 200x100 pt pages, each with one filled 60x50 pt rectangle at x=20, y=40 (ISO 32000-1)."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b""]
    kids = []
    for r, g, b in page_colours:
        content = f"{r} {g} {b} rg 20 40 60 50 re f".encode()
        page_number, content_number = len(objects) + 1, len(objects) + 2
        kids.append(f"{page_number} 0 R")
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] /Contents {content_number} 0 R >>".encode())
        objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>".encode()
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF" % (len(objects) + 1, xref)
    return bytes(out)


def encapsulated_pdf_instance(pdf: bytes) -> Dataset:
    """An Encapsulated PDF instance (PS3.3 A.45.1) written and read back as Part 10."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = UID(ENCAPSULATED_PDF), generate_uid()
    meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.1")
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = ENCAPSULATED_PDF, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.MIMETypeOfEncapsulatedDocument, ds.DocumentTitle = "DOC", "application/pdf", "Test"
    ds.EncapsulatedDocument = pdf
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(out.getvalue()))


def test_pdf_bytes_strips_the_single_pad_of_an_odd_length_document():
    """PS3.3 C.24.2.1: Encapsulated Document of odd length carries one trailing NUL pad."""
    pdf = handmade_pdf([(1, 0, 0)])
    odd = pdf if len(pdf) % 2 else pdf + b"\n"
    stored = encapsulated_pdf_instance(odd).EncapsulatedDocument
    assert len(stored) == len(odd) + 1 and stored.endswith(b"\x00")  # pydicom padded it
    assert document.pdf_bytes(stored) == odd
    even = odd + b"\n"
    assert document.pdf_bytes(encapsulated_pdf_instance(even).EncapsulatedDocument) == even
    assert document.pdf_bytes(stored, length=len(odd) - 3) == odd[:-3]  # Encapsulated Document Length


def test_pdf_page_image_draws_the_page_as_pdfium_does():
    pdf = handmade_pdf([(1, 0, 0), (0, 0.5, 1)])
    assert document.pdf_page_count(pdf) == 2
    page = document.pdf_page_image(pdf)
    assert page.shape == (100, 200, 3) and page.dtype == np.uint8  # 72 dpi: one pixel a point
    # PDF y grows upwards: the rectangle x 20..80, y 40..90 is rows 10..60 from the top
    assert (page[12:58, 22:78] == (255, 0, 0)).all()
    assert (page[65:, :] == 255).all() and (page[:, 85:] == 255).all() and (page[:8] == 255).all()
    second = document.pdf_page_image(pdf, page=1, size=400)
    assert second.shape == (200, 400, 3)
    assert np.abs(second[100, 100].astype(int) - (0, 128, 255)).max() <= 1
    with pytest.raises(BadRequest):
        document.pdf_page_image(pdf, page=2)
    with pytest.raises(DecodeError):
        document.pdf_page_image(b"%!PS-Adobe not a pdf")


# ---------------------------------------------------------------- Structured Reports

SR_FILES = ["test-SR.dcm", "reportsi.dcm"]


def walk(items: pydicom.Sequence) -> Iterator[Dataset]:
    for item in items:
        yield item
        yield from walk(item.get("ContentSequence", []))


class TagBalance(html.parser.HTMLParser):
    """Check that every element is closed in order (HTML void elements excepted)."""

    VOID = {"meta", "br", "hr", "img", "link", "input"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)


def html_text(page: str) -> str:
    """The page's text with entities decoded, as a browser would show it."""
    chunks: list[str] = []
    parser = html.parser.HTMLParser(convert_charrefs=True)
    parser.handle_data = chunks.append  # type: ignore[method-assign,assignment]
    parser.feed(page)
    return "".join(chunks)


@pytest.mark.parametrize("name", SR_FILES)
def test_sr_renderings_show_title_headings_codes_numbers_and_texts(name):
    path = get_testdata_file(name)
    assert isinstance(path, str), name
    ds = pydicom.dcmread(path)
    metadata = ds.to_json_dict()
    page, text = report.sr_html(metadata), report.sr_text(metadata)
    shown = html_text(page)
    title = ds.ConceptNameCodeSequence[0].CodeMeaning
    assert f"<title>{title}</title>" in page and text.startswith(f"{title}\n")
    assert '<meta charset="utf-8">' in page
    assert str(ds.PatientName).split("^")[0] in shown
    assert ds.CompletionFlag in shown and ds.VerificationFlag in text
    for item in walk(ds.ContentSequence):
        concept = item.ConceptNameCodeSequence[0].CodeMeaning if "ConceptNameCodeSequence" in item else None
        kind = item.get("ValueType")
        if kind == "CONTAINER" and concept:
            assert any(f">{concept}</h{n}>" in page for n in range(2, 7)), concept
        if kind == "TEXT":
            for line in item.TextValue.splitlines():
                assert line in shown and line in text
        if kind == "CODE":
            code = item.ConceptCodeSequence[0]
            label = f"{code.CodeMeaning} ({code.CodingSchemeDesignator}, {code.CodeValue})"
            assert label in shown and label in text
        if kind == "NUM":
            value = item.MeasuredValueSequence[0]
            unit = value.MeasurementUnitsCodeSequence[0]
            number = f"{float(value.NumericValue):g}"
            assert f"{number} {unit.CodeMeaning} ({unit.CodingSchemeDesignator}, {unit.CodeValue})" in shown
        if kind in ("IMAGE", "COMPOSITE"):
            assert item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID in text
        if item.get("RelationshipType"):
            assert item.RelationshipType in shown and f"[{item.RelationshipType}]" in text
    balance = TagBalance()
    balance.feed(page)
    assert balance.errors == [] and balance.stack == []


def test_sr_coordinates_references_and_by_reference_relationships():
    """test-SR.dcm: SCOORD points, TCOORD offsets, frames, and a by-reference item (C.17.3.2.5)."""
    path = get_testdata_file("test-SR.dcm")
    assert isinstance(path, str)
    ds = pydicom.dcmread(path)
    text = report.sr_text(ds.to_json_dict())
    items = list(walk(ds.ContentSequence))
    scoord = next(i for i in items if i.get("ValueType") == "SCOORD")
    points = [f"{v:g}" for v in scoord.GraphicData]
    assert f"{scoord.GraphicType} ({points[0]}, {points[1]})" in text
    tcoord = next(i for i in items if i.get("ValueType") == "TCOORD")
    assert tcoord.TemporalRangeType in text
    assert all(f"{v:g}" in text for v in tcoord.ReferencedTimeOffsets)
    image = next(i for i in items if "ReferencedFrameNumber" in i.get("ReferencedSOPSequence", [Dataset()])[0])
    frames = ", ".join(str(n) for n in image.ReferencedSOPSequence[0].ReferencedFrameNumber)
    assert f"frames {frames}" in text
    by_reference = next(i for i in items if "ReferencedContentItemIdentifier" in i)
    target = ".".join(str(n) for n in by_reference.ReferencedContentItemIdentifier)
    assert f"see item {target}" in text


def comprehensive_sr(text_value: str, observer: str) -> dict[str, object]:
    """A small Comprehensive SR: a NUM in UCUM mm, a PNAME, a DATE, a TEXT, in nested sections."""
    def code(value: str, scheme: str, meaning: str) -> Dataset:
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
        return item

    def content(relationship: str, value_type: str, name: Dataset, **values: object) -> Dataset:
        item = Dataset()
        item.RelationshipType, item.ValueType, item.ConceptNameCodeSequence = relationship, value_type, [name]
        for keyword, value in values.items():
            setattr(item, keyword, value)
        return item

    measured = Dataset()
    measured.NumericValue = "12.5"
    measured.MeasurementUnitsCodeSequence = [code("mm", "UCUM", "millimeter")]
    findings = content("CONTAINS", "CONTAINER", code("121070", "DCM", "Findings"), ContinuityOfContent="SEPARATE",
                       ContentSequence=[
                           content("CONTAINS", "NUM", code("G-D7FE", "SRT", "Diameter"), MeasuredValueSequence=[measured]),
                           content("CONTAINS", "TEXT", code("121071", "DCM", "Finding"), TextValue=text_value)])
    ds = Dataset()
    ds.SOPClassUID, ds.ValueType = "1.2.840.10008.5.1.4.1.1.88.33", "CONTAINER"
    ds.PatientName, ds.PatientID = observer, "P<1>"
    ds.ConceptNameCodeSequence = [code("18748-4", "LN", "Diagnostic Imaging Report")]
    ds.CompletionFlag, ds.VerificationFlag, ds.ContinuityOfContent = "PARTIAL", "UNVERIFIED", "SEPARATE"
    ds.ContentSequence = [
        content("HAS OBS CONTEXT", "PNAME", code("121008", "DCM", "Person Observer Name"), PersonName=observer),
        content("HAS OBS CONTEXT", "DATE", code("111060", "DCM", "Study Date"), Date="20240229"),
        findings,
    ]
    return ds.to_json_dict()


def test_sr_num_is_value_and_ucum_unit_and_names_dates_are_readable():
    metadata = comprehensive_sr("Nodule", "Doe^Jane")
    for rendering in (report.sr_text(metadata), html_text(report.sr_html(metadata))):
        assert "Diameter: 12.5 mm" in rendering
        assert "Person Observer Name: Doe, Jane" in rendering
        assert "Study Date: 2024-02-29" in rendering
        assert "Diagnostic Imaging Report" in rendering and "PARTIAL" in rendering
    assert ">Findings</h2>" in report.sr_html(metadata)


def test_sr_html_escapes_everything_from_the_data():
    """A TEXT value or a name holding markup is shown as text, never run as markup (XSS)."""
    metadata = comprehensive_sr("<script>alert('x')</script>", 'Evil^"><img src=x onerror=alert(1)>')
    page = report.sr_html(metadata)
    assert "<script>" not in page and "<img" not in page and "P<1>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "<script>alert('x')</script>" in html_text(page)
    balance = TagBalance()
    balance.feed(page)
    assert balance.errors == [] and balance.stack == []


# ---------------------------------------------------------------- icons

@pytest.mark.parametrize("kind", sorted(icons.ICONS))
@pytest.mark.parametrize("size", [(64, 64), (256, 256), (200, 120)])
def test_icons_are_rgb_images_of_the_asked_size_with_a_label(kind, size):
    image = icons.icon(kind, size)
    assert image.shape == (size[1], size[0], 3) and image.dtype == np.uint8
    style = icons.ICONS[kind]
    ink = (image == style.ink).all(axis=2)
    height, width = image.shape[:2]
    side = min(height, width)
    # the label is centred a little below the middle, where no glyph draws
    middle_row, middle_column = height // 2 + side // 8, width // 2
    label_box = ink[middle_row - side // 12: middle_row + side // 12, middle_column - side // 5: middle_column + side // 5]
    assert label_box.mean() > 0.05, "label is drawn"
    assert (image[0, 0] == style.background).all()


def test_icons_differ_by_kind_and_unknown_kinds_are_refused():
    drawn = {kind: icons.icon(kind, (96, 96)).tobytes() for kind in icons.ICONS}
    assert len(set(drawn.values())) == len(drawn)
    assert {"sr", "pdf", "waveform", "other"} <= set(icons.ICONS)
    with pytest.raises(ValueError):
        icons.icon("patient-photo", (64, 64))


# ---------------------------------------------------------------- layering

RENDER = Path(video.__file__).parent
ALLOWED_ROOTS = {"__future__", "collections", "dataclasses", "fractions", "html", "io", "itertools", "os", "tempfile",
                 "threading", "typing", "numpy", "PIL", "av", "pypdfium2"}


@pytest.mark.parametrize("module", ["video", "document", "report", "icons"])
def test_render_modules_import_no_dicom_storage_or_web_code(module):
    """STYLE.md: render/ is pure functions over numpy/Pillow (plus PyAV, PDFium): model and errors only, and
    DICOM JSON through its one reader (stdlib and numpy)."""
    tree = ast.parse((RENDER / f"{module}.py").read_text(encoding="utf-8"))
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    parents = {1: "dicomweb_origin.render", 2: "dicomweb_origin"}  # relative imports, resolved
    names |= {".".join(filter(None, (parents.get(node.level), node.module, alias.name)))
              for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names}
    ours = {n for n in names if n.startswith("dicomweb_origin")}
    allowed = ("dicomweb_origin.errors.", "dicomweb_origin.model.", "dicomweb_origin.dicom.dicomjson")
    assert all(n.startswith(allowed) for n in ours), ours
    assert {n.split(".")[0] for n in names - ours} <= ALLOWED_ROOTS
