"""dicomweb-client, as Python users call it, against a real server process: the Rendered resources (§10.4.1.1.3).

`retrieve_instance_rendered`, `retrieve_instance_frames_rendered` and `retrieve_series_rendered` with `media_types`
(a plain comma-separated Accept, or none: requests' `*/*`) and `params` (quote_plus-encoded: `viewport=32%2C32`).
A requests session hook records what went over the wire. Every answer is decoded with Pillow; the expected pixels
are computed here from pydicom's pixel data with the standard's formulas (PS3.3 C.11.1 Modality LUT, C.11.2.1.2.1
linear VOI), never by the code under test.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pydicom
import pytest
import requests
from dicomweb_client import DICOMwebClient
from PIL import Image

from tests.support.http import parse_multipart
from tests.support.server import LiveServer, demo_server

pytestmark = pytest.mark.e2e

SLICES, SIZE = 4, 64  # the demo CT (and its enhanced multi-frame copy: SLICES frames) at SIZE x SIZE
LUNG = (-600.0, 1500.0)  # a window other than the stored 40/400, so the parameter shows


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, dict[str, list[Path]]]]:
    with demo_server(tmp_path_factory.mktemp("e2e-rendered"), SLICES, SIZE) as served:
        yield served


@pytest.fixture(scope="module")
def server(demo: tuple[LiveServer, dict[str, list[Path]]]) -> LiveServer:
    return demo[0]


@pytest.fixture
def wire() -> list[requests.Response]:
    return []


@pytest.fixture
def client(server: LiveServer, wire: list[requests.Response]) -> DICOMwebClient:
    """A DICOMwebClient whose session records every response (and so its request) in `wire`."""
    session = requests.Session()
    session.hooks["response"].append(lambda response, *args, **kwargs: wire.append(response))
    return DICOMwebClient(server.url, session=session)


def uids(path: Path) -> tuple[str, str, str]:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)


@pytest.fixture(scope="module")
def ct(demo: tuple[LiveServer, dict[str, list[Path]]]) -> list[Path]:
    return demo[1]["ct"]


@pytest.fixture(scope="module")
def enhanced(demo: tuple[LiveServer, dict[str, list[Path]]]) -> Path:
    (path,) = demo[1]["enhanced-ct"]
    return path


def _rescale(ds: Any, frame: int) -> tuple[float, float]:
    """Rescale Slope and Intercept of a frame: the dataset's, else its per-frame or shared functional group."""
    if "RescaleSlope" in ds:
        return float(ds.RescaleSlope), float(ds.RescaleIntercept)
    for groups in (ds.PerFrameFunctionalGroupsSequence[frame], ds.SharedFunctionalGroupsSequence[0]):
        if "PixelValueTransformationSequence" in groups:
            transform = groups.PixelValueTransformationSequence[0]
            return float(transform.RescaleSlope), float(transform.RescaleIntercept)
    return 1.0, 0.0


def linear_voi(path: Path, frame: int, center: float, width: float) -> np.ndarray:
    """8-bit display values of a frame: modality LUT then linear VOI (PS3.3 C.11.1, C.11.2.1.2.1), to 0..255."""
    ds = pydicom.dcmread(path)
    pixels = ds.pixel_array
    stored = pixels[frame] if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1 else pixels
    slope, intercept = _rescale(ds, frame)
    x = stored.astype(np.float64) * slope + intercept
    low, high = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
    y = ((x - (center - 0.5)) / (width - 1) + 0.5) * 255
    return np.where(x <= low, 0.0, np.where(x > high, 255.0, y))


def decode(body: bytes, media_type: str) -> Image.Image:
    image = Image.open(io.BytesIO(body))
    assert image.format == {"image/jpeg": "JPEG", "image/png": "PNG", "image/gif": "GIF"}[media_type], image.format
    return image


def assert_close(image: Image.Image, expected: np.ndarray, tolerance: float = 1.0) -> None:
    actual = np.asarray(image.convert("L"), dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert np.abs(actual - expected).max() <= tolerance, np.abs(actual - expected).max()


# -- instance ---------------------------------------------------------------------------------------


def test_instance_rendered_without_media_types_is_a_jpeg_of_the_instance_matrix(
    client: DICOMwebClient, wire: list[requests.Response], ct: list[Path]
) -> None:
    """No media_types: requests' `Accept: */*`; a single-frame image's default is image/jpeg (Table 8.7.4-1)."""
    body = client.retrieve_instance_rendered(*uids(ct[0]))
    assert wire[-1].request.headers["Accept"] == "*/*"
    assert wire[-1].headers["Content-Type"] == "image/jpeg"
    image = decode(body, "image/jpeg")
    assert image.size == (SIZE, SIZE) and image.mode == "L"
    assert_close(image, linear_voi(ct[0], 0, 40, 400), tolerance=24)  # the stored window, JPEG's error


def test_instance_rendered_png_with_window_applies_the_linear_voi_function(
    client: DICOMwebClient, wire: list[requests.Response], ct: list[Path]
) -> None:
    """`window=C,W,linear` replaces the stored VOI (§8.3.5.1.4); PNG is lossless, so pixel for pixel."""
    center, width = LUNG
    body = client.retrieve_instance_rendered(*uids(ct[1]), media_types=("image/png",),
                                             params={"window": f"{center:g},{width:g},linear"})
    assert wire[-1].request.headers["Accept"] == "image/png"
    url = wire[-1].request.url
    assert url is not None
    assert "window=-600%2C1500%2Clinear" in url
    assert_close(decode(body, "image/png"), linear_voi(ct[1], 0, center, width))


def test_instance_rendered_viewport_sent_percent_encoded_scales_to_it(
    client: DICOMwebClient, wire: list[requests.Response], ct: list[Path]
) -> None:
    """dicomweb-client sends `viewport=32%2C32` (quote_plus); decoded, it is vw,vh (§8.3.5.1.3)."""
    body = client.retrieve_instance_rendered(*uids(ct[0]), media_types=("image/jpeg",), params={"viewport": "32,32"})
    url = wire[-1].request.url
    assert url is not None
    assert "viewport=32%2C32" in url
    assert decode(body, "image/jpeg").size == (32, 32)
    body = client.retrieve_instance_rendered(*uids(ct[0]), media_types=("image/png",),
                                             params={"viewport": "32,16"})
    assert decode(body, "image/png").size == (16, 16)  # fits inside 32x16, the aspect ratio kept


def test_instance_rendered_quality_trades_size_for_fidelity(
    client: DICOMwebClient, ct: list[Path]
) -> None:
    """`quality` (§8.3.5.1.2): a lower quality JPEG is smaller and further from the exact rendering."""
    expected = linear_voi(ct[0], 0, 40, 400)
    bodies = {q: client.retrieve_instance_rendered(*uids(ct[0]), media_types=("image/jpeg",), params={"quality": q})
              for q in (10, 95)}
    assert len(bodies[10]) < len(bodies[95])
    errors = {q: np.abs(np.asarray(decode(b, "image/jpeg"), dtype=np.float64) - expected).mean()
              for q, b in bodies.items()}
    assert errors[10] > errors[95]


def test_instance_rendered_annotation_burns_in_text_and_warns_of_unknown_values(
    client: DICOMwebClient, wire: list[requests.Response], ct: list[Path]
) -> None:
    """`annotation=patient,technique` changes pixels, same size (§8.3.5.1.1); an unknown value gets a 299 Warning."""
    plain = np.asarray(decode(client.retrieve_instance_rendered(*uids(ct[0]), media_types=("image/png",)),
                              "image/png"))
    body = client.retrieve_instance_rendered(*uids(ct[0]), media_types=("image/png",),
                                             params={"annotation": "patient,technique,bogus"})
    annotated = np.asarray(decode(body, "image/png"))
    assert annotated.shape[:2] == plain.shape[:2]
    assert (np.asarray(Image.fromarray(annotated).convert("L")) != plain).any()
    warning = wire[-1].headers.get("Warning", "")
    assert warning.startswith("299 ") and "bogus" in warning, warning


# -- frames -----------------------------------------------------------------------------------------


def test_frames_rendered_one_frame_of_a_multi_frame_instance_as_png(
    client: DICOMwebClient, enhanced: Path
) -> None:
    """`frames/2/rendered` is that frame alone: a single-frame image (Table 8.7.4-1)."""
    center, width = LUNG
    body = client.retrieve_instance_frames_rendered(*uids(enhanced), [2], media_types=("image/png",),
                                                    params={"window": f"{center:g},{width:g},linear"})
    assert_close(decode(body, "image/png"), linear_voi(enhanced, 1, center, width))


def test_frames_rendered_as_gif_animates_the_frames_asked_for(
    client: DICOMwebClient, wire: list[requests.Response], enhanced: Path
) -> None:
    """`frames/1,2,3/rendered`, Accept image/gif: one animated GIF of exactly those frames, in that order."""
    center, width = LUNG
    body = client.retrieve_instance_frames_rendered(*uids(enhanced), [1, 2, 3], media_types=("image/gif",),
                                                    params={"window": f"{center:g},{width:g},linear"})
    url = wire[-1].request.url
    assert url is not None
    assert url.split("?")[0].endswith("/frames/1,2,3/rendered")
    assert wire[-1].headers["Content-Type"] == "image/gif"
    image = decode(body, "image/gif")
    assert image.n_frames == 3 and image.size == (SIZE, SIZE)  # type: ignore[attr-defined]  # Pillow's stubs lack n_frames
    for index in range(3):
        image.seek(index)
        assert_close(image, linear_voi(enhanced, index, center, width))


def test_instance_rendered_of_a_multi_frame_instance_as_gif_has_every_frame(
    client: DICOMwebClient, enhanced: Path
) -> None:
    body = client.retrieve_instance_rendered(*uids(enhanced), media_types=("image/gif",), params={"viewport": "32,32"})
    image = decode(body, "image/gif")
    assert image.n_frames == SLICES and image.size == (32, 32)  # type: ignore[attr-defined]  # Pillow's stubs lack n_frames


# -- series: multipart, one part per instance -----------------------------------------------------------


def test_series_rendered_is_multipart_with_one_image_part_per_instance(
    client: DICOMwebClient, wire: list[requests.Response], server: LiveServer, ct: list[Path]
) -> None:
    """dicomweb-client returns the multipart body unsplit: it must be well formed (§8.7.1), one JPEG per instance."""
    study, series, _ = uids(ct[0])
    body = client.retrieve_series_rendered(study, series, params={"viewport": "32,32"})
    answer = wire[-1]
    assert answer.request.headers["Accept"] == "*/*"
    response = httpx.Response(200, headers={"content-type": answer.headers["Content-Type"],
                                            "content-length": str(len(body))}, content=body)
    parts = parse_multipart(response, "image/jpeg")
    locations = {part.headers["content-location"] for part in parts}
    expected = {f"{server.url}/studies/{study}/series/{series}/instances/{uids(path)[2]}/rendered" for path in ct}
    assert len(parts) == len(ct) and locations == expected
    for part in parts:
        assert decode(part.content, "image/jpeg").size == (32, 32)


def test_series_rendered_with_a_single_part_media_type_is_not_acceptable(
    client: DICOMwebClient, ct: list[Path]
) -> None:
    """media_types=("image/jpeg",) sends a bare `Accept: image/jpeg`: single-part types are for single response
    items only (Table 10.4.4-1 note 3), so a series of several instances answers 406."""
    study, series, _ = uids(ct[0])
    with pytest.raises(requests.HTTPError) as raised:
        client.retrieve_series_rendered(study, series, media_types=("image/jpeg",))
    assert raised.value.response is not None
    assert raised.value.response.status_code == 406
