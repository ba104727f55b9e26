"""Rendered MPR and Rendered 3D resources through the HTTP stack (PS3.18 §10.4.1.1.7-8, §8.3.5.3, Annex K).

One archive for the module: the demo studies (CT 40 x 128 x 128, the Enhanced CT multi-frame), a
localizer stored beside the CT, a study holding two CT series (several candidates), an invalid
series (mixed orientation, a colour slice), and Volumetric Presentation States built with pydicom
from the PS3.3 modules (tests/support/volumetric_states.py), all through the normal ingest.

Golden images (tests/retrieve/golden/volumes/) follow the maths of ``render/volume``: after a deliberate change there, run
``REGENERATE_GOLDEN=1 .venv/bin/pytest tests/retrieve/test_volumes.py -k golden``, look at every PNG, commit.
"""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest
from PIL import Image
from pydicom import Dataset, dcmread
from pydicom.uid import generate_uid

from dicomweb_origin.app import build_app
from dicomweb_origin.demo import generate_demo
from dicomweb_origin.ingest import Outcome
from dicomweb_origin.settings import Settings
from tests.support.http import BASE_URL, ROOT
from tests.support.volumetric_states import make_planar_mpr, make_volume_rendering, to_bytes

pytestmark = pytest.mark.anyio

SLICES, SIZE = 40, 128
GOLDEN = Path(__file__).resolve().parent / "golden" / "volumes"
REGENERATE = os.environ.get("REGENERATE_GOLDEN") == "1"


class Archive:
    def __init__(self, root: Path) -> None:
        self.app = build_app(Settings(data_dir=root / "data", volume_cache_bytes=256 << 20))
        ingest = self.app.state.archive.ingest
        self.ingest = ingest
        paths = generate_demo(root / "demo", slices=SLICES, size=SIZE)
        self.ct = [dcmread(p) for p in paths if p.parent.name == "ct"]
        self.ct.sort(key=lambda ds: int(ds.InstanceNumber))
        enhanced = [p for p in paths if p.parent.name == "enhanced-ct"]
        self.enhanced = dcmread(enhanced[0]) if enhanced else None
        for path in paths:
            if path.parent.name in ("ct", "enhanced-ct"):
                self.store(path.read_bytes())
        first = self.ct[0]
        self.study, self.series = first.StudyInstanceUID, first.SeriesInstanceUID
        # A localizer in its own series of the CT study: one coronal slice.
        localizer = self._copy(first, series=generate_uid(), description="Localizer")
        localizer.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
        localizer.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
        self.localizer = localizer
        self.store(to_bytes(localizer))
        # Study B: two series of the same slices (two candidates).
        self.study_b = generate_uid()
        self.series_b = (generate_uid(), generate_uid())
        self.b_slices: dict[str, list[Dataset]] = {}
        ds: Dataset
        for n, series in enumerate(self.series_b):
            self.b_slices[series] = []
            for ds in self.ct[:8]:
                copy = self._copy(ds, series=series, study=self.study_b, description=f"Phase {n + 1}")
                self.b_slices[series].append(copy)
                self.store(to_bytes(copy))
        # Study C: a series whose slices cannot make a volume (one tilted slice, one colour slice).
        self.study_c, self.series_c = generate_uid(), generate_uid()
        self.c_slices = [self._copy(ds, series=self.series_c, study=self.study_c, description="Broken")
                         for ds in self.ct[:4]]
        self.c_slices[2].ImageOrientationPatient = [1, 0, 0, 0, 0.8, 0.6]
        for ds in self.c_slices:
            self.store(to_bytes(ds))
        # Volumetric presentation states of the CT.
        spacing = float(first.PixelSpacing[0])
        half = SIZE * spacing / 2
        z_mid = (float(self.ct[0].ImagePositionPatient[2]) + float(self.ct[-1].ImagePositionPatient[2])) / 2
        self.mpr_state = make_planar_mpr(  # a coronal plane through the centre, 60 mm slab
            self.ct, corner=(-half, 0.0, z_mid + 60.0), width_direction=(1.0, 0.0, 0.0),
            height_direction=(0.0, 0.0, -1.0), width=2 * half, height=120.0, slab=6.0, window=(400.0, 1800.0))
        self.vr_state = make_volume_rendering(self.ct, position=(-500.0, 0.0, z_mid), lookat=(0.0, 0.0, z_mid),
                                              up=(0.0, 0.0, 1.0))
        for ds in (self.mpr_state, self.vr_state):
            ds.StudyInstanceUID = self.study
            self.store(to_bytes(ds))

    def _copy(self, ds: Dataset, *, series: str, study: str | None = None, description: str) -> Dataset:
        copy = dcmread(io.BytesIO(to_bytes(ds)))
        copy.SOPInstanceUID = generate_uid()
        copy.file_meta.MediaStorageSOPInstanceUID = copy.SOPInstanceUID
        copy.SeriesInstanceUID = series
        copy.SeriesDescription = description
        if study is not None:
            copy.StudyInstanceUID = study
        return copy

    def store(self, data: bytes) -> None:
        result = self.ingest.store(io.BytesIO(data))
        assert result.outcome is Outcome.STORED, result.reason

    @property
    def series_path(self) -> str:
        return f"studies/{self.study}/series/{self.series}"

    def instance_path(self, ds: Dataset) -> str:
        return f"studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"


@pytest.fixture(scope="module")
def volumes(tmp_path_factory: pytest.TempPathFactory) -> Archive:
    return Archive(tmp_path_factory.mktemp("volumes"))


@pytest.fixture
async def client(volumes: Archive) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=volumes.app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL + ROOT + "/", timeout=120) as c:
        yield c


def _image(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("L"), dtype=np.float64)


def _json(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/dicom+json")
    return dict(response.json())


def _value(module: dict[str, Any], tag: str) -> list[Any]:
    return list(module[tag]["Value"])


# -- resources, levels, aliases ---------------------------------------------------------------------------


LEVELS = [(level, resource) for level in ("study", "series", "instance", "frames")
          for resource in ("renderedmpr", "renderedMPR", "rendered3d", "rendered3D")]
LEVELS += [("seed-study", "rendered3d"), ("seed-study", "rendered3D")]  # the seed's /studies/{study}/series/rendered3d


@pytest.mark.parametrize(("level", "resource"), LEVELS)
async def test_every_level_and_alias_answers_a_jpeg(client: httpx.AsyncClient, volumes: Archive, resource: str,
                                                    level: str) -> None:
    enhanced = volumes.enhanced
    assert enhanced is not None
    base = {
        "study": f"studies/{volumes.study}",
        "seed-study": f"studies/{volumes.study}/series",
        "series": volumes.series_path,
        "instance": volumes.instance_path(enhanced),
        "frames": volumes.instance_path(enhanced) + "/frames/1,2,3,4",
    }[level]
    # the CT study holds one volume: the localizer and the presentation states are no candidates
    response = await client.get(f"{base}/{resource}", params={"viewport": "64,64"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    image = Image.open(io.BytesIO(response.content))
    assert max(image.size) <= 64


async def test_study_with_a_localizer_is_not_ambiguous(client: httpx.AsyncClient, volumes: Archive) -> None:
    study = await client.get(f"studies/{volumes.study}/renderedmpr", params={"orientation": "a"},
                             headers={"Accept": "image/png"})
    series = await client.get(f"{volumes.series_path}/renderedmpr", params={"orientation": "a"},
                              headers={"Accept": "image/png"})
    assert np.array_equal(_image(study), _image(series))


async def test_several_candidates_are_listed(client: httpx.AsyncClient, volumes: Archive) -> None:
    response = await client.get(f"studies/{volumes.study_b}/renderedmpr")
    assert response.status_code == 400
    text = response.text
    assert "2 volumes" in text
    for series in volumes.series_b:
        assert series in text
    assert "'Phase 1'" in text and "8 slices" in text


async def test_match_and_volumeinputreference_select_one(client: httpx.AsyncClient, volumes: Archive) -> None:
    first, second = volumes.series_b
    by_match = await client.get(f"studies/{volumes.study_b}/renderedmpr",
                                params={"match": f"SeriesInstanceUID={second}", "orientation": "a"})
    by_description = await client.get(f"studies/{volumes.study_b}/renderedmpr",
                                      params={"match": "SeriesDescription=Phase 2", "orientation": "a"})
    uids = ",".join(ds.SOPInstanceUID for ds in volumes.b_slices[second])
    by_reference = await client.get(f"studies/{volumes.study_b}/renderedmpr",
                                    params={"volumeinputreference": uids, "orientation": "a"})
    assert np.array_equal(_image(by_match), _image(by_reference))
    assert np.array_equal(_image(by_match), _image(by_description))
    wildcard = await client.get(f"studies/{volumes.study_b}/renderedmpr", params={"match": "SeriesDescription=Ph*"})
    assert wildcard.status_code == 400 and "2 volumes" in wildcard.text
    none = await client.get(f"studies/{volumes.study_b}/renderedmpr", params={"match": "SeriesDescription=Nope"})
    assert none.status_code == 400 and "match selects no instance" in none.text


async def test_invalid_volumes_are_400_with_the_reason(client: httpx.AsyncClient, volumes: Archive) -> None:
    uids = ",".join(ds.SOPInstanceUID for ds in volumes.c_slices)
    mixed = await client.get(f"studies/{volumes.study_c}/series/{volumes.series_c}/renderedmpr",
                             params={"volumeinputreference": uids})
    assert mixed.status_code == 400
    assert "Orientation" in mixed.text, mixed.text
    one = await client.get(f"studies/{volumes.study}/series/{volumes.localizer.SeriesInstanceUID}/renderedmpr")
    assert one.status_code == 400
    assert "frame" in one.text.lower() or "slice" in one.text.lower(), one.text
    unknown = await client.get(f"{volumes.series_path}/renderedmpr", params={"volumeinputreference": "1.2.3"})
    assert unknown.status_code == 400 and "1.2.3" in unknown.text


# -- parameters ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("query", "words"), [
    ("renderingmethod=mip", "renderingmethod"),
    ("renderingmethod=maximum_ip&renderingmethod=average_ip", "given 2 times"),
    ("orientation=x", "orientation"),
    ("orientation=a&viewpointposition=0,0,0&viewpointlookat=0,1,0&viewpointup=0,0,1", "mutually exclusive"),
    ("viewpointposition=0,0,0&viewpointlookat=0,1,0", "viewpointup missing"),
    ("viewpointposition=0,0&viewpointlookat=0,1,0&viewpointup=0,0,1", "three numbers"),
    ("viewpointposition=0,0,a&viewpointlookat=0,1,0&viewpointup=0,0,1", "decimal"),
    ("viewpointposition=0,0,nan&viewpointlookat=0,1,0&viewpointup=0,0,1", "decimal"),
    ("viewpointposition=0,0,0&viewpointlookat=0,1,0&viewpointup=0,2,0", "parallel"),
    ("viewpointposition=0,0,0&viewpointlookat=0,0,0&viewpointup=0,0,1", "view direction"),
    ("mprslab=-2", "mprslab"),
    ("mprslab=0", "mprslab"),
    ("swivelrange=abc", "swivelrange"),
    ("swivelrange=90&animationstepsize=0", "animationstepsize"),
    ("swivelrange=90&animationstepsize=2.5", "animationstepsize"),
    ("swivelrange=90&animationrate=-1", "animationrate"),
    ("animationstepsize=5", "needs swivelrange"),
    ("volumetriccurvepoint=1,2", "x,y,z"),
    ("renderedvolumetricmetadata=no", "renderedvolumetricmetadata"),
    ("window=40,400", "window"),
    ("quality=0", "quality"),
    ("viewport=0,10", "viewport"),
    ("match=SeriesDescription", "match"),
    ("match=NoSuchKeyword=1", "match attribute"),
    ("volumeinputreference=1.2.x", "volumeinputreference"),
    ("renderingmethod=volume_rendered", "for /rendered3d"),
])
async def test_invalid_parameters_are_400_naming_the_problem(client: httpx.AsyncClient, volumes: Archive,
                                                             query: str, words: str) -> None:
    response = await client.get(f"{volumes.series_path}/renderedmpr?{query}")
    assert response.status_code == 400, (query, response.text)
    assert words in response.text, (query, response.text)


async def test_3d_refuses_mpr_only_parameters(client: httpx.AsyncClient, volumes: Archive) -> None:
    slab = await client.get(f"{volumes.series_path}/rendered3d", params={"mprslab": "5"})
    assert slab.status_code == 400 and "mprslab" in slab.text
    curve = await client.get(f"{volumes.series_path}/rendered3d", params={"volumetriccurvepoint": "0,0,0,0,0,10"})
    assert curve.status_code == 400 and "volumetriccurvepoint" in curve.text


async def test_icc_profile_needs_a_type_that_carries_one(client: httpx.AsyncClient, volumes: Archive) -> None:
    gif = await client.get(f"{volumes.series_path}/renderedmpr", params={"iccprofile": "srgb"},
                           headers={"Accept": "image/gif"})
    assert gif.status_code == 400 and "iccprofile" in gif.text
    png = await client.get(f"{volumes.series_path}/renderedmpr", params={"iccprofile": "srgb"},
                           headers={"Accept": "image/png"})
    assert png.status_code == 200 and Image.open(io.BytesIO(png.content)).info.get("icc_profile")


async def test_not_acceptable_is_406(client: httpx.AsyncClient, volumes: Archive) -> None:
    response = await client.get(f"{volumes.series_path}/renderedmpr", headers={"Accept": "application/pdf"})
    assert response.status_code == 406
    metadata = await client.get(f"{volumes.series_path}/renderedmpr", params={"renderedvolumetricmetadata": "yes"},
                                headers={"Accept": "image/jpeg"})
    assert metadata.status_code == 406


async def test_png_window_and_slab_change_the_picture(client: httpx.AsyncClient, volumes: Archive) -> None:
    url = f"{volumes.series_path}/renderedmpr"
    thin = _image(await client.get(url, params={"orientation": "a"}, headers={"Accept": "image/png"}))
    bone = _image(await client.get(url, params={"orientation": "a", "window": "400,1800,linear"},
                                   headers={"Accept": "image/png"}))
    slab = _image(await client.get(url, params={"orientation": "a", "mprslab": "40", "renderingmethod": "maximum_ip"},
                                   headers={"Accept": "image/png"}))
    assert thin.shape == bone.shape == slab.shape
    assert not np.array_equal(thin, bone) and not np.array_equal(thin, slab)
    assert slab.mean() >= thin.mean()  # a maximum over a slab is never darker than its middle plane
    whole = await client.get(url, params={"orientation": "a", "mprslab": "1e308", "renderingmethod": "maximum_ip"},
                             headers={"Accept": "image/png"})
    assert whole.status_code == 200 and _image(whole).shape == thin.shape  # the whole volume, not 1e308 mm of air


async def test_low_quality_3d_is_a_preview_of_the_same_view(client: httpx.AsyncClient, volumes: Archive) -> None:
    """quality under 60 on /rendered3d (what a viewer asks while a view turns): fewer samples, the same look.

    PNG, so the difference is the rendering's, not JPEG's; /renderedmpr samples the same either way.
    """
    png = {"Accept": "image/png"}
    for method, most in (("volume_rendered", 16.0), ("maximum_ip", 8.0)):  # within about 6 % (of 255)
        params = {"viewpointposition": "-300,-400,100", "viewpointlookat": "0,0,0", "viewpointup": "0,0,1",
                  "renderingmethod": method, "viewport": "96,96"}  # oblique: every slice is resampled
        full, preview = [_image(await client.get(f"{volumes.series_path}/rendered3d", params=params | {"quality": q},
                                                 headers=png)) for q in ("90", "50")]
        assert full.shape == preview.shape, method
        assert np.abs(full.astype(int) - preview.astype(int)).mean() < most, method
        # a volume rendering preview is cast through a smaller level; a MIP's level of block maxima is this small
        # CT itself (no axis over 160 voxels), so its preview is the picture
        assert np.array_equal(full, preview) == (method == "maximum_ip"), method
    mpr = [_image(await client.get(f"{volumes.series_path}/renderedmpr", params={"orientation": "a", "quality": q},
                                   headers=png)) for q in ("90", "50")]
    assert np.array_equal(mpr[0], mpr[1])


async def test_the_candidates_are_kept_by_digest_and_never_served_stale(tmp_path: Path) -> None:
    """A viewer dragging asks the same target many times: its candidates are grouped once; a deleted slice is seen."""
    app = build_app(Settings(data_dir=tmp_path / "data"))
    paths = [p for p in generate_demo(tmp_path / "demo", slices=6, size=32) if p.parent.name == "ct"]
    for path in paths:
        with open(path, "rb") as fp:
            assert app.state.archive.ingest.store(fp).outcome is Outcome.STORED
    ds = dcmread(paths[-1], stop_before_pixels=True)
    series = f"studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
    memo = app.state.archive.retrieve.volumes.candidates
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL + ROOT + "/") as client:
        metadata = {"renderedvolumetricmetadata": "yes"}
        json_accept = {"Accept": "application/dicom+json"}
        first = _json(await client.get(f"{series}/renderedmpr", params=metadata, headers=json_accept))
        for z in range(3):
            await client.get(f"{series}/renderedmpr", params={"viewpointposition": f"0,-500,{z}",
                                                              "viewpointlookat": f"0,0,{z}", "viewpointup": "0,0,1"})
        assert (memo.misses, memo.hits) == (1, 3) and len(memo) == 1
        deleted = await client.delete(f"{series}/instances/{ds.SOPInstanceUID}")  # the top slice
        assert deleted.status_code == 204
        after = _json(await client.get(f"{series}/renderedmpr", params=metadata, headers=json_accept))
    assert memo.misses == 2 and len(memo) == 2
    z_before, z_after = _value(first, "00701604")[2], _value(after, "00701604")[2]
    assert z_after < z_before  # the volume's centre moved down: five slices, not six


async def test_viewport_fits_and_annotation_burns_in(client: httpx.AsyncClient, volumes: Archive) -> None:
    url = f"{volumes.series_path}/renderedmpr"
    fitted = _image(await client.get(url, params={"viewport": "100,50"}, headers={"Accept": "image/png"}))
    assert fitted.shape[0] <= 50 and fitted.shape[1] <= 100 and 50 in fitted.shape or 100 in fitted.shape
    plain = _image(await client.get(url, headers={"Accept": "image/png"}))
    annotated = await client.get(url, params={"annotation": "patient,bogus"}, headers={"Accept": "image/png"})
    assert "bogus" in annotated.headers.get("warning", "")
    assert not np.array_equal(plain, _image(annotated))


async def test_etag_and_304(client: httpx.AsyncClient, volumes: Archive) -> None:
    url = f"{volumes.series_path}/rendered3d?renderingmethod=maximum_ip"
    first = await client.get(url)
    assert first.status_code == 200
    again = await client.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304


# -- Annex K ---------------------------------------------------------------------------------------------


async def test_annex_k_reports_every_value_and_is_deterministic(client: httpx.AsyncClient, volumes: Archive) -> None:
    url = f"{volumes.series_path}/rendered3d"
    params = {"orientation": "a", "swivelrange": "180", "animationrate": "20", "renderedvolumetricmetadata": "yes"}
    first = await client.get(url, params=params, headers={"Accept": "application/dicom+json"})
    second = await client.get(url, params=params, headers={"Accept": "application/dicom+json"})
    assert first.content == second.content
    module = _json(first)
    assert _value(module, "00720510") == ["3D_RENDERING"]
    assert _value(module, "0070120D") == ["VOLUME_RENDERED"]  # chosen by the server for /rendered3d
    position, lookat = np.array(_value(module, "00701603")), np.array(_value(module, "00701604"))
    direction = (lookat - position) / np.linalg.norm(lookat - position)
    assert np.allclose(direction, [0, 1, 0])  # from anterior, looking posterior
    assert np.allclose(_value(module, "00701605"), [0, 0, 1])
    assert _value(module, "00701A06") == [180.0]
    assert _value(module, "00701A05") == [10.0]  # the server's step
    assert _value(module, "00701A03") == [20.0]
    assert "00281050" not in module  # no VOI for VOLUME_RENDERED
    assert set(module) <= {"00720510", "0070120D", "00701603", "00701604", "00701605", "00701503", "00281056",
                           "00281051", "00281050", "00701A06", "00701A05", "00701A03", "00701A01", "0070150D"}


async def test_annex_k_of_an_mpr_has_its_window_and_slab(client: httpx.AsyncClient, volumes: Archive) -> None:
    module = _json(await client.get(f"{volumes.series_path}/renderedmpr",
                                    params={"mprslab": "10", "renderedvolumetricmetadata": "yes"}))
    assert _value(module, "00720510") == ["SLAB"]
    assert _value(module, "0070120D") == ["AVERAGE_IP"]
    assert _value(module, "00701503") == [10.0]
    assert _value(module, "00281050") == [40] and _value(module, "00281051") == [400]  # the stored window (DS: numbers)
    assert np.allclose(_value(module, "00701605"), [0, -1, 0])  # default f: axial, anterior up
    asked = _json(await client.get(f"{volumes.series_path}/renderedmpr",
                                   params={"window": "100,200,sigmoid", "renderedvolumetricmetadata": "yes"}))
    assert _value(asked, "00281056") == ["SIGMOID"] and _value(asked, "00281050") == [100]


# -- animations ------------------------------------------------------------------------------------------


async def test_swivel_gif_has_range_over_step_frames_at_the_rate(client: httpx.AsyncClient, volumes: Archive) -> None:
    response = await client.get(f"{volumes.series_path}/rendered3d",
                                params={"swivelrange": "90", "animationstepsize": "15", "animationrate": "5",
                                        "renderingmethod": "maximum_ip", "viewport": "64,64"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/gif"  # the default of an animation
    gif = Image.open(io.BytesIO(response.content))
    assert gif.n_frames == 6  # type: ignore[attr-defined]  # Pillow's stubs lack n_frames
    assert gif.info["duration"] == 200
    frames = []
    for n in range(gif.n_frames):  # type: ignore[attr-defined]  # Pillow's stubs lack n_frames
        gif.seek(n)
        frames.append(np.asarray(gif.convert("L"), dtype=np.float64))
    assert not np.array_equal(frames[0], frames[-1])


async def test_swivel_mp4_frames_and_rate(client: httpx.AsyncClient, volumes: Archive) -> None:
    response = await client.get(f"{volumes.series_path}/rendered3d",
                                params={"orientation": "a", "swivelrange": "180", "animationstepsize": "10",
                                        "animationrate": "20", "renderingmethod": "maximum_ip",
                                        "viewport": "64,64"},
                                headers={"Accept": "video/mp4"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(response.content)) as container:
        assert isinstance(container, av.container.InputContainer)
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        assert frames == 18
        assert stream.average_rate == 20


async def test_curve_fly_through_and_curved_mpr(client: httpx.AsyncClient, volumes: Archive) -> None:
    z0, z1 = float(volumes.ct[5].ImagePositionPatient[2]), float(volumes.ct[-5].ImagePositionPatient[2])
    points = f"0,0,{z0},0,0,{(z0 + z1) / 2},20,0,{z1}"
    response = await client.get(f"{volumes.series_path}/renderedmpr",
                                params={"volumetriccurvepoint": points, "animationstepsize": "20",
                                        "viewport": "48,48"}, headers={"Accept": "image/gif"})
    assert response.status_code == 200, response.text
    gif = Image.open(io.BytesIO(response.content))
    length = (z1 - z0) / 2 + np.hypot(20, (z1 - z0) / 2)
    assert gif.n_frames == int(length // 20) + 1  # type: ignore[attr-defined]  # Pillow's stubs lack n_frames
    assert gif.info["duration"] == 100  # the server's rate: 10 steps per second
    still = await client.get(f"{volumes.series_path}/renderedmpr",
                             params={"volumetriccurvepoint": points, "viewpointposition": "0,-100,0",
                                     "viewpointlookat": "0,0,0", "viewpointup": "0,0,1"},
                             headers={"Accept": "image/png"})
    assert _image(still).shape[1] >= int(length / 3)  # the curve unrolled along the image's width
    module = _json(await client.get(f"{volumes.series_path}/renderedmpr", params={
        "volumetriccurvepoint": points, "animationstepsize": "20", "renderedvolumetricmetadata": "yes"}))
    assert _value(module, "00701A01") == ["CROSSCURVE"] and _value(module, "00701A05") == [20.0]
    import base64

    curve = np.frombuffer(base64.b64decode(module["0070150D"]["InlineBinary"]), dtype="<f8").reshape(-1, 3)
    assert np.allclose(curve, np.array([float(v) for v in points.split(",")]).reshape(-1, 3))


# -- volumetric presentation states -----------------------------------------------------------------------


async def test_planar_mpr_state_renders_its_geometry_and_voi(client: httpx.AsyncClient, volumes: Archive) -> None:
    state = volumes.instance_path(volumes.mpr_state)
    image = _image(await client.get(f"{state}/renderedmpr", headers={"Accept": "image/png"}))
    spacing = min(float(volumes.ct[0].PixelSpacing[0]), 160.0 / SLICES)
    assert abs(image.shape[0] - 120.0 / spacing) <= 1  # MPR View Height, mm
    # the same plane asked for with the camera triple and the state's window and slab
    half = SIZE * float(volumes.ct[0].PixelSpacing[0]) / 2
    z_mid = (float(volumes.ct[0].ImagePositionPatient[2]) + float(volumes.ct[-1].ImagePositionPatient[2])) / 2
    same = _image(await client.get(f"{volumes.series_path}/renderedmpr", params={
        "viewpointposition": f"0,-300,{z_mid}", "viewpointlookat": f"0,0,{z_mid}", "viewpointup": "0,0,1",
        "mprslab": "6", "window": "400,1800,linear"},
        headers={"Accept": "image/png"}))
    assert half > 0
    rows = min(same.shape[0], image.shape[0])
    centre = same.shape[0] // 2 - rows // 2
    assert np.abs(image[:rows] - same[centre:centre + rows, :image.shape[1]]).mean() < 8
    overridden = _image(await client.get(f"{state}/renderedmpr", params={"orientation": "h"},
                                         headers={"Accept": "image/png"}))
    assert not np.array_equal(overridden, image)


async def test_volume_rendering_state_is_for_rendered3d(client: httpx.AsyncClient, volumes: Archive) -> None:
    state = volumes.instance_path(volumes.vr_state)
    from_state = _image(await client.get(f"{state}/rendered3d", headers={"Accept": "image/png"}))
    from_right = _image(await client.get(f"{volumes.series_path}/rendered3d", params={"orientation": "r"},
                                         headers={"Accept": "image/png"}))
    assert np.abs(from_state - from_right).mean() < 2  # the state's camera stands on the patient's right
    mpr = await client.get(f"{state}/renderedmpr")
    assert mpr.status_code == 400 and "/rendered3d" in mpr.text
    as_mpr_3d = await client.get(f"{volumes.instance_path(volumes.mpr_state)}/rendered3d")
    assert as_mpr_3d.status_code == 200, as_mpr_3d.text


@pytest.mark.parametrize("query", ["renderingmethod=maximum_ip", "swivelrange=90", "animationstepsize=5",
                                   "animationrate=5", "renderedvolumetricmetadata=yes", "window=40,400,linear",
                                   "volumeinputreference=1.2.3"])
async def test_state_targets_refuse_what_the_standard_forbids(client: httpx.AsyncClient, volumes: Archive,
                                                              query: str) -> None:
    response = await client.get(f"{volumes.instance_path(volumes.vr_state)}/rendered3d?{query}")
    assert response.status_code == 400, query
    assert "volumetric presentation state" in response.text, response.text


# -- golden images of the demo CT -------------------------------------------------------------------------

GOLDEN_VIEWS = {
    "mpr_axial": ("renderedmpr", {"orientation": "f"}),
    "mpr_coronal": ("renderedmpr", {"orientation": "a"}),
    "mpr_sagittal": ("renderedmpr", {"orientation": "l"}),
    "mpr_oblique": ("renderedmpr", {"viewpointposition": "-100,-100,100", "viewpointlookat": "0,0,0",
                                    "viewpointup": "0,0,1"}),
    "mpr_slab_mip": ("renderedmpr", {"orientation": "a", "mprslab": "30", "renderingmethod": "maximum_ip",
                                     "window": "300,1500,linear"}),
    "mip_3d": ("rendered3d", {"orientation": "a", "renderingmethod": "maximum_ip", "window": "300,1500,linear"}),
    "vr_front": ("rendered3d", {"orientation": "a"}),
    "vr_side": ("rendered3d", {"orientation": "l"}),
}


@pytest.mark.parametrize("name", sorted(GOLDEN_VIEWS))
async def test_golden_images_of_the_demo_ct(client: httpx.AsyncClient, volumes: Archive, name: str) -> None:
    resource, params = GOLDEN_VIEWS[name]
    response = await client.get(f"{volumes.series_path}/{resource}", params=params, headers={"Accept": "image/png"})
    assert response.status_code == 200, response.text
    path = GOLDEN / f"{name}.png"
    if REGENERATE or not path.exists():
        GOLDEN.mkdir(parents=True, exist_ok=True)
        path.write_bytes(response.content)
        if not REGENERATE:
            pytest.fail(f"wrote the missing golden image {path.name}: look at it and commit it")
    got = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"), dtype=np.float64)
    want = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
    assert got.shape == want.shape
    assert np.abs(got - want).mean() < 1.0, f"{name} differs from tests/retrieve/golden/volumes/{name}.png"


# -- multi-frame volumes ------------------------------------------------------------------------------------


async def test_enhanced_ct_is_the_same_volume_as_the_series(client: httpx.AsyncClient, volumes: Archive) -> None:
    """The demo's Enhanced CT samples the phantom as the CT series does: per-frame geometry, same picture."""
    assert volumes.enhanced is not None and int(volumes.enhanced.NumberOfFrames) == SLICES
    enhanced = volumes.instance_path(volumes.enhanced)
    for params in ({"orientation": "a"}, {"orientation": "l", "mprslab": "10", "renderingmethod": "maximum_ip"}):
        series = _image(await client.get(f"{volumes.series_path}/renderedmpr", params=params,
                                         headers={"Accept": "image/png"}))
        multi = _image(await client.get(f"{enhanced}/renderedmpr", params=params, headers={"Accept": "image/png"}))
        assert np.array_equal(series, multi)


async def test_frame_numbers_select_part_of_a_multi_frame_volume(client: httpx.AsyncClient,
                                                                 volumes: Archive) -> None:
    assert volumes.enhanced is not None
    enhanced = volumes.instance_path(volumes.enhanced)
    full = _json(await client.get(f"{enhanced}/renderedmpr", params={"renderedvolumetricmetadata": "yes",
                                                                     "orientation": "a"}))
    half = ",".join(str(n) for n in range(1, SLICES // 2 + 1))
    by_reference = await client.get(f"{enhanced}/renderedmpr", params={"volumeinputreference": half,
                                                                       "orientation": "a"},
                                    headers={"Accept": "image/png"})
    by_frames = await client.get(f"{enhanced}/frames/{half}/renderedmpr", params={"orientation": "a"},
                                 headers={"Accept": "image/png"})
    assert np.array_equal(_image(by_reference), _image(by_frames))
    part = _json(await client.get(f"{enhanced}/frames/{half}/renderedmpr",
                                  params={"renderedvolumetricmetadata": "yes", "orientation": "a"}))
    assert _value(part, "00701604")[2] < _value(full, "00701604")[2]  # the look-at point: the lower half's centre
    beyond = await client.get(f"{enhanced}/renderedmpr", params={"volumeinputreference": f"1,{SLICES + 1}"})
    assert beyond.status_code == 400 and f"no frame {SLICES + 1}" in beyond.text
    one = await client.get(f"{enhanced}/frames/3/renderedmpr")
    assert one.status_code == 400
    not_multi = await client.get(f"{volumes.series_path}/renderedmpr", params={"volumeinputreference": "1,2"})
    assert not_multi.status_code == 400 and "multi-frame" in not_multi.text


async def test_concurrent_requests_share_one_assembled_volume(client: httpx.AsyncClient, volumes: Archive) -> None:
    import asyncio

    cache = volumes.app.state.archive.retrieve.volumes
    before = len(cache)
    uids = ",".join(ds.SOPInstanceUID for ds in volumes.b_slices[volumes.series_b[0]][:5])  # asked nowhere else
    responses = await asyncio.gather(*(
        client.get(f"studies/{volumes.study_b}/renderedmpr", params={"volumeinputreference": uids,
                                                                     "orientation": orientation})
        for orientation in ("a", "a", "l", "h")))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    assert responses[0].content == responses[1].content
    assert len(cache) == before + 1  # one volume for the four views
    assert cache.size <= cache.max_bytes


async def test_out_of_range_camera_and_oversized_animations_are_refused(client: httpx.AsyncClient,
                                                                        volumes: Archive) -> None:
    """A camera a light-year away overflows the maths (400); frames x pixels beyond the budget is 413, up front."""
    url = f"{volumes.series_path}/renderedmpr"
    far = await client.get(url, params={"viewpointposition": "1e308,1e308,1e308", "viewpointlookat": "0,0,0",
                                        "viewpointup": "0,1,0"})
    assert far.status_code == 400 and "viewpointposition" in far.text and "mm" in far.text
    huge = await client.get(f"{volumes.series_path}/rendered3d",
                            params={"swivelrange": "360", "animationstepsize": "1", "viewport": "4096,4096"},
                            headers={"Accept": "image/gif"})
    assert huge.status_code == 413 and "million pixels" in huge.text
