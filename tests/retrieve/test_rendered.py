"""Rendered and Thumbnail resources through the HTTP stack (PS3.18 §10.4.1.1.3-4, §8.3.5.1-2, §8.7.4).

Expected pixels are computed here from pydicom's decoded array and the PS3.3 formulas, never from
the server's own functions.
"""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread

from tests.support.archive import LoadedArchive
from tests.support.http import parse_multipart, path_of
from tests.support.reference import REFERENCES, prepared_bytes

pytestmark = pytest.mark.anyio

BROWSER_ACCEPT = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"


def _image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _ct_expected(window: tuple[float, float] | None = None) -> np.ndarray:
    """CT_small through rescale and a LINEAR window (PS3.3 C.11.2.1.2.1), written out here."""
    ds = dcmread(io.BytesIO(prepared_bytes("CT_small")))
    values = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    center, width = window or (float(ds.WindowCenter), float(ds.WindowWidth))
    y = ((values - (center - 0.5)) / (width - 1) + 0.5) * 255
    y[values <= center - 0.5 - (width - 1) / 2] = 0
    y[values > center - 0.5 + (width - 1) / 2] = 255
    return np.clip(y, 0, 255)


# -- single-frame images: media types and the display pipeline -----------------------------------------


async def test_png_of_a_ct_applies_rescale_and_the_requested_window(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{path_of('CT_small')}/rendered?window=40,400,linear",
                                headers={"Accept": "image/png"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    got = np.asarray(_image(response.content).convert("L"), dtype=np.float64)
    assert np.abs(got - _ct_expected((40.0, 400.0))).max() <= 1


async def test_without_a_window_the_data_sets_first_window_is_used(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{path_of('CT_small')}/rendered", headers={"Accept": "image/png"})
    assert response.status_code == 200
    got = np.asarray(_image(response.content).convert("L"), dtype=np.float64)
    ds = dcmread(io.BytesIO(prepared_bytes("CT_small")))
    if "WindowCenter" in ds:
        assert np.abs(got - _ct_expected()).max() <= 1
    else:
        assert got.std() > 10  # an automatic window shows the image


async def test_default_single_frame_type_is_baseline_jpeg(client: httpx.AsyncClient) -> None:
    """Table 8.7.4-1: image/jpeg is the default; §8.7.4: baseline (SOF0), 8-bit."""
    response = await client.get(f"{path_of('CT_small')}/rendered", headers={"Accept": "*/*"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert b"\xff\xc0" in response.content[:2000] and b"\xff\xc2" not in response.content[:2000]
    assert _image(response.content).size == (128, 128)


async def test_a_browser_img_accept_header_gets_an_image(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{path_of('SC_rgb')}/rendered", headers={"Accept": BROWSER_ACCEPT})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/")
    assert _image(response.content).size == (100, 100)


async def test_rgb_colours_survive_rendering(client: httpx.AsyncClient) -> None:
    ds = dcmread(io.BytesIO(prepared_bytes("SC_rgb")))
    response = await client.get(f"{path_of('SC_rgb')}/rendered", headers={"Accept": "image/png"})
    got = np.asarray(_image(response.content).convert("RGB"), dtype=np.int16)
    assert np.abs(got - ds.pixel_array.astype(np.int16)).max() <= 1


async def test_query_accept_wins_over_the_header_as_ohif_sends_it(client: httpx.AsyncClient) -> None:
    """OHIF's thumbnail modes: ?accept=image/jpeg with a bulk data Accept header (§8.7.8.1)."""
    for resource in ("rendered", "thumbnail"):
        response = await client.get(f"{path_of('CT_small')}/{resource}?accept=image/jpeg",
                                    headers={"Accept": 'multipart/related; type="application/octet-stream"'})
        assert response.status_code == 200, (resource, response.text)
        assert response.headers["content-type"] == "image/jpeg"


async def test_unrenderable_types_get_406_naming_what_can_be_had(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{path_of('CT_small')}/rendered", headers={"Accept": "image/tiff"})
    assert response.status_code == 406
    assert "image/jpeg" in response.text and "image/png" in response.text


async def test_dicom_and_rendered_types_together_are_400(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{path_of('CT_small')}/rendered", headers={"Accept": "image/png, application/dicom"})
    assert response.status_code == 400


# -- viewport (§8.3.5.1.3) -------------------------------------------------------------------------------


async def test_viewport_scales_to_fit_preserving_the_aspect_ratio(client: httpx.AsyncClient) -> None:
    # 1024 rows x 256 columns: fitting 200x200 gives 50 x 200 (w x h)
    response = await client.get(f"{path_of('JPEG2000')}/rendered?viewport=200,200", headers={"Accept": "image/png"})
    assert response.status_code == 200, response.text
    assert _image(response.content).size == (50, 200)


async def test_viewport_source_region_and_flip(client: httpx.AsyncClient) -> None:
    plain = await client.get(f"{path_of('SC_rgb')}/rendered", headers={"Accept": "image/png"})
    full = np.asarray(_image(plain.content).convert("RGB"), dtype=np.int16)
    # columns 10..59, rows 20..49, flipped left-right, at its own size
    response = await client.get(f"{path_of('SC_rgb')}/rendered?viewport=50,30,10,20,-50,30",
                                headers={"Accept": "image/png"})
    assert response.status_code == 200, response.text
    got = np.asarray(_image(response.content).convert("RGB"), dtype=np.int16)
    assert got.shape == (30, 50, 3)
    assert np.abs(got - full[20:50, 10:60][:, ::-1]).max() <= 2


async def test_percent_encoded_commas_as_dicomweb_client_sends_them(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{path_of('CT_small')}/rendered?viewport=64%2C64&window=40%2C400%2Clinear",
                                headers={"Accept": "image/png"})
    assert response.status_code == 200, response.text
    assert _image(response.content).size == (64, 64)


@pytest.mark.parametrize("query", [
    "quality=0", "quality=101", "quality=high", "quality=",
    "window=40,400", "window=40,400,cubic", "window=a,400,linear", "window=40,0,linear",
    "viewport=0,100", "viewport=abc,100", "viewport=100", "viewport=10,10,0,0,0,5",
    "annotation=", "annotation=pat ient", "iccprofile=display-p3",
])
async def test_invalid_rendering_parameters_are_400_naming_them(client: httpx.AsyncClient, query: str) -> None:
    response = await client.get(f"{path_of('CT_small')}/rendered?{query}", headers={"Accept": "image/jpeg"})
    assert response.status_code == 400, (query, response.text)
    assert query.split("=")[0] in response.text


async def test_thumbnail_viewport_takes_only_a_size(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{path_of('CT_small')}/thumbnail?viewport=64,64,0,0,10,10",
                                headers={"Accept": "image/jpeg"})
    assert response.status_code == 400


async def test_iccprofile_with_a_type_that_cannot_carry_one_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{path_of('SC_rgb')}/rendered?iccprofile=srgb", headers={"Accept": "image/gif"})
    assert response.status_code == 400
    assert "iccprofile" in response.text


async def test_iccprofile_srgb_embeds_a_profile_in_png(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{path_of('SC_rgb')}/rendered?iccprofile=srgb", headers={"Accept": "image/png"})
    assert response.status_code == 200, response.text
    assert _image(response.content).info.get("icc_profile")


# -- annotation (§8.3.5.1.1) -------------------------------------------------------------------------------


async def test_unknown_annotation_values_are_ignored_with_a_warning(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{path_of('CT_small')}/rendered?annotation=patient,foo,bar",
                                headers={"Accept": "image/png"})
    assert response.status_code == 200
    warning = response.headers["warning"]
    assert warning.startswith("299 ") and "The following annotation values are not supported: foo, bar" in warning


async def test_annotation_burns_in_text(client: httpx.AsyncClient) -> None:
    plain = await client.get(f"{path_of('CT_small')}/rendered", headers={"Accept": "image/png"})
    annotated = await client.get(f"{path_of('CT_small')}/rendered?annotation=patient,technique",
                                 headers={"Accept": "image/png"})
    a = np.asarray(_image(plain.content).convert("L"), dtype=np.int16)
    b = np.asarray(_image(annotated.content).convert("L"), dtype=np.int16)
    assert a.shape == b.shape and (a != b).sum() > 50
    assert "warning" not in annotated.headers


# -- multi-frame, study and series (multipart) -----------------------------------------------------------


async def test_multi_frame_instance_as_animated_gif(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{path_of('emri_small')}/rendered", headers={"Accept": "image/gif"})
    assert response.status_code == 200, response.text
    image = _image(response.content)
    assert getattr(image, "n_frames", 1) == 10


async def test_multi_frame_instance_as_multipart_jpeg_is_one_part_per_frame(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{path_of('emri_small')}/rendered",
                                headers={"Accept": 'multipart/related; type="image/jpeg"'})
    assert response.status_code == 200, response.text
    parts = parse_multipart(response, "image/jpeg")
    assert len(parts) == 10
    assert parts[3].location is not None and parts[3].location.endswith("/frames/4/rendered")


async def test_rendered_frames_one_and_several(client: httpx.AsyncClient) -> None:
    one = await client.get(f"{path_of('emri_small')}/frames/3/rendered", headers={"Accept": "image/png"})
    assert one.status_code == 200 and one.headers["content-type"] == "image/png"
    ds = dcmread(io.BytesIO(prepared_bytes("emri_small")))
    assert _image(one.content).size == (int(ds.Columns), int(ds.Rows))
    several = await client.get(f"{path_of('emri_small')}/frames/1,2,5/rendered",
                               headers={"Accept": 'multipart/related; type="image/png"'})
    assert several.status_code == 200, several.text
    assert len(parse_multipart(several, "image/png")) == 3
    missing = await client.get(f"{path_of('emri_small')}/frames/11/rendered", headers={"Accept": "image/png"})
    assert missing.status_code == 404


async def test_rendered_series_is_multipart_one_part_per_instance(client: httpx.AsyncClient,
                                                                  archive: LoadedArchive) -> None:
    record = archive.record("CT_small")
    count = len(archive.instances(record.study_uid, record.series_uid))
    response = await client.get(f"{path_of('CT_small', 'series')}/rendered",
                                headers={"Accept": 'multipart/related; type="image/jpeg"'})
    assert response.status_code in (200, 206), response.text
    assert len(parse_multipart(response, "image/jpeg")) >= 1
    assert count >= 1


async def test_single_part_type_on_a_study_is_406(client: httpx.AsyncClient) -> None:
    """Table 10.4.4-1 note 3: single-part types are only for a single response item."""
    response = await client.get(f"{path_of('CT_small', 'study')}/rendered", headers={"Accept": "image/jpeg"})
    assert response.status_code == 406


# -- documents -------------------------------------------------------------------------------------------


async def test_structured_report_renders_as_html_and_text(client: httpx.AsyncClient) -> None:
    ds = dcmread(io.BytesIO(prepared_bytes("test_SR")))
    html = await client.get(f"{path_of('test_SR')}/rendered", headers={"Accept": "*/*"})
    assert html.status_code == 200, html.text
    assert html.headers["content-type"] == "text/html; charset=utf-8"
    title = ds.ConceptNameCodeSequence[0].CodeMeaning
    assert title in html.text
    text = await client.get(f"{path_of('test_SR')}/rendered", headers={"Accept": "text/plain"})
    assert text.status_code == 200 and title in text.text


async def test_non_image_thumbnails_are_images_not_errors(client: httpx.AsyncClient) -> None:
    for name in ("test_SR", "waveform_ecg", "rtplan"):
        response = await client.get(f"{path_of(name)}/thumbnail", headers={"Accept": "image/jpeg"})
        assert response.status_code == 200, (name, response.text)
        assert _image(response.content).size[0] > 0


# -- thumbnails (§10.4.1.1.4, §8.3.5.2) ----------------------------------------------------------------------


async def test_thumbnail_default_size_and_viewport(client: httpx.AsyncClient) -> None:
    default = await client.get(f"{path_of('JPEG2000')}/thumbnail", headers={"Accept": "image/jpeg"})
    assert default.status_code == 200
    assert max(_image(default.content).size) == 128
    sized = await client.get(f"{path_of('JPEG2000')}/thumbnail?viewport=64,64", headers={"Accept": "image/jpeg"})
    assert _image(sized.content).size == (16, 64)


@pytest.mark.parametrize("level", ["study", "series", "instance"])
async def test_thumbnail_of_every_level_is_one_image(client: httpx.AsyncClient, level: str) -> None:
    response = await client.get(f"{path_of('emri_small', level)}/thumbnail", headers={"Accept": "*/*"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    frames = await client.get(f"{path_of('emri_small')}/frames/2/thumbnail", headers={"Accept": "image/png"})
    assert frames.status_code == 200 and frames.headers["content-type"] == "image/png"


async def test_thumbnail_ignores_annotation(client: httpx.AsyncClient) -> None:
    plain = await client.get(f"{path_of('CT_small')}/thumbnail", headers={"Accept": "image/png"})
    asked = await client.get(f"{path_of('CT_small')}/thumbnail?annotation=patient", headers={"Accept": "image/png"})
    assert plain.content == asked.content  # never patient-identifying text on a thumbnail


# -- ETag, 304 and caching -------------------------------------------------------------------------------


async def test_rendered_responses_carry_an_etag_and_answer_304(client: httpx.AsyncClient) -> None:
    for resource in ("rendered?viewport=64,64", "thumbnail"):
        first = await client.get(f"{path_of('MR_small')}/{resource}", headers={"Accept": "image/jpeg"})
        tag = first.headers["etag"]
        again = await client.get(f"{path_of('MR_small')}/{resource}",
                                 headers={"Accept": "image/jpeg", "If-None-Match": tag})
        assert again.status_code == 304
        other = await client.get(f"{path_of('MR_small')}/rendered?viewport=32,32", headers={"Accept": "image/jpeg"})
        assert other.headers["etag"] != tag


@pytest.mark.parametrize("ref", [r for r in REFERENCES if r.decodable and "video" not in r.features],
                         ids=lambda r: r.name)
async def test_every_decodable_reference_renders(client: httpx.AsyncClient, ref: object) -> None:
    """§10.4.1.1.3: the server renders every valid instance of the SOP classes it stores."""
    name = ref.name  # type: ignore[attr-defined]
    response = await client.get(f"{path_of(name)}/frames/1/rendered", headers={"Accept": "image/png"})
    assert response.status_code == 200, (name, response.text)
    image = _image(response.content)
    assert image.size == (ref.columns, ref.rows)  # type: ignore[attr-defined]


# -- video and Encapsulated PDF instances, stored through ingest ---------------------------------------------


def _store(archive: LoadedArchive, data: bytes) -> str:
    result = archive.app.state.archive.ingest.store(io.BytesIO(data))
    assert result.record is not None, result.reason
    return result.record.path.lstrip("/")


async def test_video_renders_as_mp4_and_as_a_frame(empty_archive: LoadedArchive,
                                                   empty_client: httpx.AsyncClient) -> None:
    from tests.render.test_documents import H264_HP41, decode, encode, moving_pattern, video_instance

    frames = moving_pattern()
    path = _store(empty_archive, video_instance(encode("libx264", "mpegts", frames), H264_HP41))
    mp4 = await empty_client.get(f"{path}/rendered", headers={"Accept": "*/*"})
    assert mp4.status_code == 200, mp4.text
    assert mp4.headers["content-type"] == "video/mp4" and mp4.content[4:8] == b"ftyp"
    assert len(decode(mp4.content)) == len(frames)
    still = await empty_client.get(f"{path}/rendered", headers={"Accept": "image/png"})
    assert still.status_code == 200, still.text
    assert _image(still.content).size == (frames[0].shape[1], frames[0].shape[0])
    thumb = await empty_client.get(f"{path}/thumbnail", headers={"Accept": "image/jpeg"})
    assert thumb.status_code == 200 and max(_image(thumb.content).size) == 128


async def test_multi_frame_image_as_mp4(client: httpx.AsyncClient) -> None:
    from tests.render.test_documents import decode

    response = await client.get(f"{path_of('emri_small')}/rendered", headers={"Accept": "video/mp4"})
    assert response.status_code == 200, response.text
    assert len(decode(response.content)) == 10


async def test_encapsulated_pdf_is_served_as_the_document_and_pictured(empty_archive: LoadedArchive,
                                                                       empty_client: httpx.AsyncClient) -> None:
    from tests.render.test_documents import encapsulated_pdf_instance, handmade_pdf

    pdf = handmade_pdf([(1.0, 0.0, 0.0)])
    ds = encapsulated_pdf_instance(pdf)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3.4.5.6", "1.2.3.4.5.6.7"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    path = _store(empty_archive, buffer.getvalue())
    document = await empty_client.get(f"{path}/rendered", headers={"Accept": "*/*"})
    assert document.status_code == 200, document.text
    assert document.headers["content-type"] == "application/pdf"
    assert document.content == pdf
    page = await empty_client.get(f"{path}/rendered", headers={"Accept": "image/png"})
    assert page.status_code == 200, page.text
    red = np.asarray(_image(page.content).convert("RGB"))
    assert (red[..., 0] > 200).mean() > 0.05 and red.shape[0] > 10
    thumb = await empty_client.get(f"{path}/thumbnail", headers={"Accept": "image/jpeg"})
    assert thumb.status_code == 200


# -- presentation states as targets (a GSPS applies itself to the images it references) ----------------------


def _part10(ds: object) -> bytes:
    from pydicom import Dataset, FileMetaDataset
    from pydicom.uid import UID, generate_uid

    assert isinstance(ds, Dataset)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.TransferSyntaxUID = ds.SOPClassUID, UID("1.2.840.10008.1.2.1")
    ds.SOPInstanceUID = ds.get("SOPInstanceUID") or generate_uid()
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta = meta
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


async def test_a_presentation_state_renders_its_image_with_its_window_rotation_and_shutter(
        empty_archive: LoadedArchive, empty_client: httpx.AsyncClient) -> None:
    from tests.support.presentation_states import make_gsps

    image = dcmread(io.BytesIO(prepared_bytes("CT_small")))
    image_path = _store(empty_archive, prepared_bytes("CT_small"))
    gsps = make_gsps(image, window=(40.0, 400.0), rotation=90, rectangle=(1, 64, 1, 128))
    ps_path = _store(empty_archive, _part10(gsps))

    windowed = await empty_client.get(f"{image_path}/rendered?window=40,400,linear", headers={"Accept": "image/png"})
    expected = np.rot90(np.asarray(_image(windowed.content).convert("L"), dtype=np.int16), k=-1)  # 90° clockwise
    response = await empty_client.get(f"{ps_path}/rendered", headers={"Accept": "image/png"})
    assert response.status_code == 200, response.text
    got = np.asarray(_image(response.content).convert("L"), dtype=np.int16)
    assert got.shape == expected.shape
    # The shutter keeps columns 1-64 (1-based) of the source; after a clockwise rotation those are rows 1-64.
    assert np.abs(got[:64] - expected[:64]).max() <= 1
    assert (got[64:] == 0).all()


@pytest.mark.parametrize("query", ["window=40,400,linear", "viewport=64,64,0,0,32,32"])
async def test_window_or_a_source_region_with_a_presentation_state_target_is_400(
        empty_archive: LoadedArchive, empty_client: httpx.AsyncClient, query: str) -> None:
    from tests.support.presentation_states import make_gsps

    image = dcmread(io.BytesIO(prepared_bytes("CT_small")))
    _store(empty_archive, prepared_bytes("CT_small"))
    ps_path = _store(empty_archive, _part10(make_gsps(image)))
    response = await empty_client.get(f"{ps_path}/rendered?{query}", headers={"Accept": "image/png"})
    assert response.status_code == 400, response.text
    assert "presentation state" in response.text


@pytest.mark.parametrize("query", ["window=40,400,linear&window=10,20,linear", "quality=50&quality=60",
                                   "viewport=10,10&viewport=20,20", "charset="])
async def test_single_valued_parameters_given_twice_and_empty_charset_are_400(client: httpx.AsyncClient,
                                                                            query: str) -> None:
    response = await client.get(f"{path_of('CT_small')}/rendered?{query}", headers={"Accept": "image/png"})
    assert response.status_code == 400, (query, response.text)


async def test_repeated_annotation_values_are_one_list(client: httpx.AsyncClient) -> None:
    once = await client.get(f"{path_of('CT_small')}/rendered?annotation=patient,technique",
                            headers={"Accept": "image/png"})
    repeated = await client.get(f"{path_of('CT_small')}/rendered?annotation=patient&annotation=technique",
                                headers={"Accept": "image/png"})
    assert repeated.status_code == 200 and repeated.content == once.content


async def test_technique_annotation_names_the_data_sets_own_window(client: httpx.AsyncClient) -> None:
    """The window used is drawn even when it is the data set's (MR_small: 600/1600), not the request's."""
    url = f"{path_of('MR_small')}/rendered?annotation=technique&viewport=512,512"
    own = await client.get(url, headers={"Accept": "image/png"})
    asked = await client.get(url + "&window=600,1600,linear", headers={"Accept": "image/png"})
    other = await client.get(url + "&window=601,1600,linear", headers={"Accept": "image/png"})
    assert own.status_code == asked.status_code == other.status_code == 200
    assert np.array_equal(np.asarray(_image(own.content)), np.asarray(_image(asked.content)))
    assert not np.array_equal(np.asarray(_image(own.content)), np.asarray(_image(other.content)))


async def test_a_frame_asked_for_is_named_as_a_frame(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{path_of('CT_small')}/frames/1/rendered",
                                headers={"Accept": 'multipart/related; type="image/png"'})
    assert response.status_code == 200
    [part] = parse_multipart(response, "image/png")
    assert part.location is not None and part.location.endswith("/frames/1/rendered")


async def test_a_presentation_state_inside_a_study_does_not_refuse_the_window(
        empty_archive: LoadedArchive, empty_client: httpx.AsyncClient) -> None:
    """§8.3.5.1.4 forbids window only when the target is the presentation state itself."""
    from tests.support.presentation_states import make_gsps

    image = dcmread(io.BytesIO(prepared_bytes("CT_small")))
    _store(empty_archive, prepared_bytes("CT_small"))
    _store(empty_archive, _part10(make_gsps(image, rotation=90)))
    response = await empty_client.get(f"studies/{image.StudyInstanceUID}/rendered?window=40,400,linear",
                                      headers={"Accept": 'multipart/related; type="image/png"'})
    assert response.status_code == 200, response.text
    parts = parse_multipart(response, "image/png")
    assert len(parts) == 2  # the CT with the window, and the CT as the state shows it
