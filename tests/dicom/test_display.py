"""The display pipeline (PS3.3 C.7.6, C.11) is read once at ingest and kept in the instance record.

Expected values come from pydicom itself: its attribute values, and its own LUT functions
(``apply_modality_lut``, ``apply_voi_lut``, ``apply_color_lut``) applied to a ramp of stored values,
compared with a table lookup in the extracted ``Lut`` as PS3.3 C.11.1.1.1 describes it.
"""

from __future__ import annotations

import dataclasses
import io
import sqlite3
import time
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from PIL import ImageCms
from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file
from pydicom.pixels.processing import apply_color_lut, apply_modality_lut, apply_voi_lut
from pydicom.uid import generate_uid

from dicomweb_origin.app import build_app
from dicomweb_origin.dicom.display import extract_display
from dicomweb_origin.model.appearance import Display, Lut, Window
from dicomweb_origin.settings import Settings
from dicomweb_origin.storage.backends import open_index
from dicomweb_origin.storage.records import record_from_json, record_to_json
from dicomweb_origin.storage.sqlite import MIGRATIONS, SqliteIndex
from tests.support.archive import LoadedArchive
from tests.support.http import stow_result


def _read(name: str) -> Dataset:
    path = get_testdata_file(name)
    assert path is not None, name
    return dcmread(path, force=True)


def _extract(name: str) -> Display:
    display = extract_display(_read(name))
    assert display is not None
    return display


def _bytes(ds: Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _fresh(ds: Dataset) -> Dataset:
    """A copy under new UIDs, so that it can be stored beside the file it comes from."""
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    return ds


def _lookup(lut: Lut, values: np.ndarray) -> np.ndarray:
    """PS3.3 C.11.1.1.1: inputs below the first mapped value take the first entry, above the last the last."""
    index = np.clip(values.astype(np.int64) - lut.first_mapped, 0, len(lut.data) - 1)
    return np.asarray(lut.data)[index]


# -- Modality LUT: Rescale Slope / Intercept, or the Modality LUT Sequence (C.11.1) ----------------


def test_rescale_and_geometry_of_a_ct_image() -> None:
    ds = _read("CT_small.dcm")
    frame = _extract("CT_small.dcm").frames[0]
    assert (frame.rescale_slope, frame.rescale_intercept) == (float(ds.RescaleSlope), float(ds.RescaleIntercept))
    assert frame.modality_lut is None and frame.windows == ()
    assert frame.position == tuple(float(v) for v in ds.ImagePositionPatient)
    assert frame.orientation == tuple(float(v) for v in ds.ImageOrientationPatient)
    assert frame.pixel_spacing == tuple(float(v) for v in ds.PixelSpacing)
    display = _extract("CT_small.dcm")
    assert display.modality == "CT" and display.frame_of_reference_uid == ds.FrameOfReferenceUID


def test_a_modality_lut_sequence_maps_like_pydicom_and_keeps_a_signed_first_value() -> None:
    ds = _read("mlut_18.dcm")
    lut = _extract("mlut_18.dcm").frames[0].modality_lut
    assert lut is not None
    assert lut.first_mapped == ds.ModalityLUTSequence[0].LUTDescriptor[1] < 0  # SS: Pixel Representation 1
    assert lut.bits == 16 and len(lut.data) == ds.ModalityLUTSequence[0].LUTDescriptor[0]
    ramp = np.arange(-2100, 2100, dtype=np.int16)  # beyond both ends of the table
    np.testing.assert_array_equal(_lookup(lut, ramp), apply_modality_lut(ramp, ds))


# -- VOI LUT: windows and VOI LUT Sequence (C.11.2) ------------------------------------------------


def test_a_window_of_an_mr_image() -> None:
    ds = _read("MR_small.dcm")
    assert _extract("MR_small.dcm").frames[0].windows == (Window(float(ds.WindowCenter), float(ds.WindowWidth)),)


def test_multi_valued_windows_give_one_window_per_pair() -> None:
    ds = _read("examples_overlay.dcm")
    assert ds["WindowCenter"].VM == 2
    expected = tuple(Window(float(c), float(w)) for c, w in zip(ds.WindowCenter, ds.WindowWidth, strict=True))
    assert _extract("examples_overlay.dcm").frames[0].windows == expected


@pytest.mark.parametrize("function", ["LINEAR_EXACT", "SIGMOID"])
def test_the_voi_lut_function_is_kept(function: str) -> None:
    ds = _read("MR_small.dcm")
    ds.VOILUTFunction = function
    (window,) = extract_display(dcmread(io.BytesIO(_bytes(ds)))).frames[0].windows
    assert window.function == function


def test_malformed_windows_and_widths_below_1_are_dropped() -> None:
    """PS3.3 C.11.2.1.2: Window Width >= 1 (LINEAR); a value that is no number loses only its pair."""
    ds = _read("MR_small.dcm")
    ds.WindowCenter = [40, 50, 60, 70]
    ds.WindowWidth = ["999", "0.5", "100", "0"]
    data = _bytes(ds).replace(b"999\\0.5\\100\\0", b"abc\\0.5\\100\\0")  # "abc": no DS value
    windows = extract_display(dcmread(io.BytesIO(data))).frames[0].windows
    assert windows == (Window(60.0, 100.0),)


def test_a_voi_lut_sequence_maps_like_pydicom() -> None:
    ds = _read("vlut_04.dcm")
    (lut,) = _extract("vlut_04.dcm").frames[0].voi_luts
    ramp = np.arange(-10, 300, dtype=np.int16)
    np.testing.assert_array_equal(_lookup(lut, ramp), apply_voi_lut(ramp, ds))


def test_a_lut_whose_length_disagrees_with_its_descriptor_is_dropped() -> None:
    ds = _read("vlut_04.dcm")
    item = ds.VOILUTSequence[0]
    item.LUTData = list(item.LUTData)[:-3]
    assert extract_display(dcmread(io.BytesIO(_bytes(ds)))).frames[0].voi_luts == ()


# -- Presentation LUT, MONOCHROME1 -----------------------------------------------------------------


def test_monochrome1_keeps_its_window_and_gets_no_invented_shape() -> None:
    """The Presentation LUT Shape is what the data set says; MONOCHROME1 alone is not INVERSE here."""
    ds = _read("RG1_UNCI.dcm")
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    display = _extract("RG1_UNCI.dcm")
    assert display.frames[0].windows == (Window(float(ds.WindowCenter), float(ds.WindowWidth)),)
    assert display.presentation_lut_shape is None
    assert display.frames[0].pixel_spacing is None  # "0.000\0.000" is no spacing (C.7.6.2.1.1)


def test_presentation_lut_shape_and_sequence() -> None:
    assert _extract("OBXXXX1A.dcm").presentation_lut_shape == _read("OBXXXX1A.dcm").PresentationLUTShape
    ds = _read("MR_small.dcm")
    item = Dataset()
    item.add_new(0x00283002, "US", [256, 0, 10])  # LUT Descriptor
    item.add_new(0x00283006, "US", [i * 4 for i in range(256)])  # LUT Data
    ds.PresentationLUTSequence = [item]
    display = extract_display(dcmread(io.BytesIO(_bytes(ds))))
    assert display is not None and display.presentation_lut == Lut(0, 10, tuple(i * 4 for i in range(256)))


# -- Palette Color (C.7.6.3.1.5) and Segmented Palette Color (C.7.9) -------------------------------


def _check_palette(ds: Dataset, display: Display | None) -> None:
    assert display is not None and display.palette is not None
    entries = ds.RedPaletteColorLookupTableDescriptor[0] or 65536
    # Past the last entry too, but within the entries' type: pydicom clips 8-bit inputs in uint8.
    ramp = np.arange(0, min(entries + 5, 2 ** ds.RedPaletteColorLookupTableDescriptor[2]), dtype=np.uint16)
    expected = apply_color_lut(ramp, ds)
    for channel, lut in enumerate(display.palette):
        assert len(lut.data) == entries and lut.bits == ds.RedPaletteColorLookupTableDescriptor[2]
        np.testing.assert_array_equal(_lookup(lut, ramp), expected[..., channel])


@pytest.mark.parametrize("name", ["OT-PAL-8-face.dcm", "OBXXXX1A.dcm", "gdcm-US-ALOKA-16.dcm"])
def test_palettes_expand_like_pydicom(name: str) -> None:
    """16-bit entries, and a segmented 65536-entry palette (gdcm-US-ALOKA-16) expanded."""
    _check_palette(_read(name), _extract(name))


def test_a_palette_of_8_bit_entries() -> None:
    ds = _read("OBXXXX1A.dcm")
    for color in ("Red", "Green", "Blue"):
        words = np.frombuffer(ds[f"{color}PaletteColorLookupTableData"].value, "<u2")
        ds[f"{color}PaletteColorLookupTableData"].value = (words >> 8).astype(np.uint8).tobytes()
        ds[f"{color}PaletteColorLookupTableDescriptor"].value = [256, 0, 8]
    ds = dcmread(io.BytesIO(_bytes(ds)))
    _check_palette(ds, extract_display(ds))


def test_a_supplemental_palette_of_a_grayscale_image_is_no_palette() -> None:
    assert "RedPaletteColorLookupTableData" in _read("eCT_Supplemental.dcm")
    assert _extract("eCT_Supplemental.dcm").palette is None


# -- Enhanced multi-frame: Shared and Per-frame Functional Groups (C.7.6.16) ------------------------


def test_enhanced_ct_functional_groups() -> None:
    ds = _read("eCT_Supplemental.dcm")
    shared = ds.SharedFunctionalGroupsSequence[0]
    display = _extract("eCT_Supplemental.dcm")
    assert len(display.frames) == ds.NumberOfFrames == 2  # positions differ: one entry per frame
    voi = shared.FrameVOILUTSequence[0]
    transform = shared.PixelValueTransformationSequence[0]
    for index, frame in enumerate(display.frames):
        per_frame = ds.PerFrameFunctionalGroupsSequence[index]
        assert frame.position == tuple(float(v) for v in per_frame.PlanePositionSequence[0].ImagePositionPatient)
        assert frame.orientation == tuple(float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient)
        assert frame.pixel_spacing == tuple(float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing)
        assert frame.windows == (Window(float(voi.WindowCenter), float(voi.WindowWidth)),)
        assert (frame.rescale_slope, frame.rescale_intercept) == (float(transform.RescaleSlope),
                                                                  float(transform.RescaleIntercept))
        assert display.frame(index) is frame


def test_frames_that_share_every_value_share_one_entry() -> None:
    ds = _read("eCT_Supplemental.dcm")
    for item in ds.PerFrameFunctionalGroupsSequence:
        item.PlanePositionSequence[0].ImagePositionPatient = [1, 2, 3]
    display = extract_display(dcmread(io.BytesIO(_bytes(ds))))
    assert display is not None and len(display.frames) == 1
    assert display.frame(1).position == (1.0, 2.0, 3.0) and display.frame(1).rescale_intercept == -1024.0


def test_a_per_frame_window_overrides_the_shared_one() -> None:
    ds = _read("eCT_Supplemental.dcm")
    voi = Dataset()
    voi.WindowCenter, voi.WindowWidth, voi.VOILUTFunction = 300, 1500, "SIGMOID"
    ds.PerFrameFunctionalGroupsSequence[1].FrameVOILUTSequence = [voi]
    display = extract_display(dcmread(io.BytesIO(_bytes(ds))))
    assert display is not None
    assert display.frame(0).windows == (Window(49.0, 102.0),)
    assert display.frame(1).windows == (Window(300.0, 1500.0, "SIGMOID"),)


# -- cine, no pixels, ICC Profile ------------------------------------------------------------------


def test_frame_time_frame_time_vector_and_cine_rate() -> None:
    """PS3.3 C.7.6.5: Frame Time in ms; a Frame Time Vector's increments; Cine Rate in frames/s."""
    ds = _read("examples_ybr_color.dcm")
    assert _extract("examples_ybr_color.dcm").frame_time_ms == float(ds.FrameTime)
    del ds.FrameTime
    ds.FrameTimeVector = [0, 40, 60]
    assert extract_display(dcmread(io.BytesIO(_bytes(ds)))).frame_time_ms == 50.0
    del ds.FrameTimeVector
    ds.CineRate = 25
    assert extract_display(dcmread(io.BytesIO(_bytes(ds)))).frame_time_ms == 40.0


def test_an_instance_without_pixel_data_has_no_display() -> None:
    assert extract_display(_read("rtplan.dcm")) is None


def _with_icc(name: str) -> tuple[bytes, bytes]:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    assert len(profile) < 1024  # under the bulk threshold: ingest still makes it a bulk element
    ds = _fresh(_read(name))
    ds.ICCProfile = profile
    return _bytes(ds), profile


@pytest.mark.anyio
async def test_stow_keeps_the_display_and_the_icc_profile_bytes(empty_archive: LoadedArchive,
                                                                empty_client: httpx.AsyncClient) -> None:
    """Through STOW-RS: the record in the index holds the display; the ICC Profile is read by its offset."""
    data, profile = _with_icc("SC_rgb.dcm")
    ct = _bytes(_fresh(_read("CT_small.dcm")))
    response, _ = await stow_result(empty_client, [data, ct])
    assert response.status_code == 200
    url = empty_archive.settings.index_url  # a new index object: no cache, the record comes from its JSON
    reopened = open_index(url) if url else SqliteIndex(empty_archive.settings.index_path)
    for sent in (data, ct):
        ds = dcmread(io.BytesIO(sent))
        record = reopened.get(ds.SOPInstanceUID)
        assert record is not None and record.display == extract_display(ds)
    record = reopened.get(dcmread(io.BytesIO(data)).SOPInstanceUID)
    assert record is not None and record.display is not None and record.display.icc_profile_path == "00282000"
    element = record.bulk_element(record.display.icc_profile_path)
    assert element is not None
    assert empty_archive.blobs.read(record.blob_key, element.offset, element.length) == profile
    reopened.close()


# -- storage: the record JSON round trip, and the migration of older archives ----------------------


def test_records_round_trip_through_their_json(archive: LoadedArchive) -> None:
    ds = _read("gdcm-US-ALOKA-16.dcm")
    palette = extract_display(ds)
    record = dataclasses.replace(archive.record("CT_small"), display=palette)
    assert record_from_json(record_to_json(record)) == record
    for name in ("eCT_Supplemental.dcm", "mlut_18.dcm", "vlut_04.dcm", "examples_overlay.dcm"):
        record = dataclasses.replace(record, display=_extract(name))
        assert record_from_json(record_to_json(record)) == record


def test_a_16_bit_palette_keeps_the_record_small_and_fast_to_load(archive: LoadedArchive) -> None:
    """3 x 65536 entries: base64 of uint16 in the JSON (2 bytes an entry, not 5-6 as integers)."""
    record = dataclasses.replace(archive.record("CT_small"), display=_extract("gdcm-US-ALOKA-16.dcm"))
    encoded = record_to_json(record)
    assert len(encoded) < 3 * 65536 * 2 * 4 / 3 + 20_000
    start = time.perf_counter()
    loaded = record_from_json(encoded)
    assert time.perf_counter() - start < 0.5 and loaded == record


def _make_old(index_path: Path, icc_path: str = "00282000") -> int:
    """Rewrite an index as the code before this change left it: schema 3, records without display.

    That code wrote ``orjson.dumps(record)`` of a record without ``display`` and made an ICC
    Profile under the bulk threshold no bulk element.
    """
    conn = sqlite3.connect(index_path, isolation_level=None)
    conn.execute("DROP TABLE display_pending")
    conn.execute("DROP TABLE IF EXISTS tombstone")  # schema 5
    conn.execute("DROP TABLE counter")  # schema 6: counters, record revisions, instance indexes
    conn.execute("DROP INDEX instance_in_series")
    conn.execute("DROP INDEX instance_by_study")
    conn.execute("DROP INDEX study_by_referring")
    conn.execute("DROP INDEX study_by_study_id")
    conn.execute("DROP INDEX study_by_patient_name")
    conn.execute("CREATE INDEX study_by_patient_name ON study(patient_name_folded)")
    conn.execute("ALTER TABLE instance DROP COLUMN revision")
    conn.execute("CREATE INDEX instance_by_series ON instance(study_uid, series_uid, instance_number, instance_uid)")
    rows = conn.execute("SELECT instance_uid, record FROM instance").fetchall()
    for uid, blob in rows:
        raw = orjson.loads(blob)
        raw.pop("display")
        raw["bulk"] = [b for b in raw["bulk"] if b["path"] != icc_path]
        conn.execute("UPDATE instance SET record = ? WHERE instance_uid = ?", (orjson.dumps(raw), uid))
    conn.execute("PRAGMA user_version = 3")
    conn.close()
    return len(rows)


def test_opening_an_older_archive_fills_the_display_of_its_records(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")  # SQLite: the migration of its schema is under test
    empty_archive = LoadedArchive(build_app(settings), settings, {})
    data, profile = _with_icc("SC_rgb.dcm")
    sent = [data, _bytes(_fresh(_read("eCT_Supplemental.dcm"))), _bytes(_fresh(_read("rtplan.dcm")))]
    ingest = empty_archive.app.state.archive.ingest
    uids = [str(dcmread(io.BytesIO(d)).SOPInstanceUID) for d in sent]
    for item in sent:
        assert ingest.store(io.BytesIO(item)).record is not None
    empty_archive.index.close()
    assert _make_old(empty_archive.settings.index_path) == 3
    old_records = [record_from_json(b) for (b,) in sqlite3.connect(empty_archive.settings.index_path).execute(
        "SELECT record FROM instance ORDER BY instance_uid")]
    assert len(old_records) == 3 and all(r.display is None for r in old_records)

    app = build_app(empty_archive.settings)  # opening the archive migrates it
    index = app.state.archive.index
    for uid, item in zip(uids, sent, strict=True):
        record = index.get(uid)
        assert record is not None
        assert record.display == extract_display(dcmread(io.BytesIO(item)))
    icc = index.get(uids[0])
    element = icc.bulk_element(icc.display.icc_profile_path)
    assert element is not None and app.state.archive.blobs.read(icc.blob_key, element.offset, element.length) == profile
    assert index.records_missing_display() == []
    conn = sqlite3.connect(empty_archive.settings.index_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert conn.execute("SELECT count(*) FROM display_pending").fetchone()[0] == 0
    conn.close()
