"""Cameras, MPR, projections and volume rendering put each object where the convention says (PS3.18 §8.3.5.3).

Convention: image up = camera up, image right = direction x up, lookat = image centre, so pixel (row, col) of a
W x H image at spacing s shows lookat + ((col + 0.5) - W/2) s right - ((row + 0.5) - H/2) s up. The expected
positions below come from that formula with the camera vectors written out literally.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from dicomweb_origin.errors import BadRequest
from dicomweb_origin.render.volume import (
    Volume,
    assemble,
    camera_for_orientation,
    camera_from_triple,
    curve_cameras,
    curved_mpr,
    default_size,
    mpr,
    project,
    swivel_cameras,
    volume_render,
)
from tests.support.volume_scenes import (
    AIR,
    AXIAL,
    CORONAL,
    CUBE_CENTRE,
    CUBE_VALUE,
    OBLIQUE,
    SPHERE_CENTRE,
    SPHERE_RADIUS,
    SPHERE_VALUE,
    acquire,
)

# orientation -> (image right, image up) in LPS, from §8.3.5.3.4 and right = direction x up
EXPECTED_AXES = {
    "a": ((1, 0, 0), (0, 0, 1)),  # looking posterior: patient's left on the right
    "p": ((-1, 0, 0), (0, 0, 1)),
    "r": ((0, -1, 0), (0, 0, 1)),  # looking left: anterior on the right
    "l": ((0, 1, 0), (0, 0, 1)),  # looking right: anterior on the left
    "h": ((-1, 0, 0), (0, -1, 0)),  # looking down, anterior up: patient's right on the right
    "f": ((1, 0, 0), (0, -1, 0)),
}
SIZE = (80, 80)
SPACING = 2.0


def _volume(geometry=AXIAL, **kw):
    return assemble(acquire(*geometry, **kw))


AXIAL_VOLUME = _volume()


def expected_pixel(point, lookat, right, up, size=SIZE, spacing=SPACING) -> tuple[float, float]:
    offset = np.asarray(point, dtype=float) - np.asarray(lookat, dtype=float)
    col = float(offset @ np.asarray(right)) / spacing + size[0] / 2 - 0.5
    row = size[1] / 2 - 0.5 - float(offset @ np.asarray(up)) / spacing
    return row, col


def centroid(mask: np.ndarray) -> tuple[float, float]:
    found = np.argwhere(mask)
    assert len(found), "the object does not appear"
    return float(found[:, 0].mean()), float(found[:, 1].mean())


@pytest.mark.parametrize("keyword", list(EXPECTED_AXES))
def test_orientation_cameras(keyword: str) -> None:
    camera = camera_for_orientation(keyword, AXIAL_VOLUME)
    right, up = EXPECTED_AXES[keyword]
    assert np.allclose(camera.right, right) and np.allclose(camera.up, up)
    assert np.allclose(camera.lookat, AXIAL_VOLUME.centre)
    assert np.allclose(np.cross(camera.direction, camera.up), camera.right)
    # the camera stands outside the volume
    assert np.linalg.norm(camera.position - camera.lookat) > 100


@pytest.mark.parametrize("keyword", list(EXPECTED_AXES))
def test_mip_shows_each_object_where_the_convention_puts_it(keyword: str) -> None:
    camera = camera_for_orientation(keyword, AXIAL_VOLUME)
    image = project(AXIAL_VOLUME, camera, "maximum_ip", size=SIZE, spacing=SPACING)
    assert image.shape == (80, 80) and image.dtype == np.float32
    right, up = EXPECTED_AXES[keyword]
    for centre, value in ((SPHERE_CENTRE, SPHERE_VALUE), (CUBE_CENTRE, CUBE_VALUE)):
        mask = np.abs(image - value) < 60 if value != SPHERE_VALUE else image > 900
        row, col = centroid(mask)
        want = expected_pixel(centre, camera.lookat, right, up)
        assert row == pytest.approx(want[0], abs=0.75) and col == pytest.approx(want[1], abs=0.75), keyword
    # the sphere (x = +40) is right of centre from the front, left of it from behind
    if keyword in "ap":
        col = centroid(image > 900)[1]
        assert (col > 40 + 15) if keyword == "a" else (col < 40 - 15)


def test_mpr_plane_through_lookat() -> None:
    camera = camera_from_triple(SPHERE_CENTRE + (0, -200, 0), SPHERE_CENTRE, (0, 0, 1))
    image = mpr(AXIAL_VOLUME, camera, size=SIZE, spacing=1.0)
    # lookat (the sphere's centre) is the image centre; the sphere's radius is 12 mm = 12 pixels
    row, col = centroid(image > 900)
    assert (row, col) == pytest.approx((39.5, 39.5), abs=0.3)
    # half-way between air and sphere is its surface: the disc of radius 12 mm
    assert (image > 0).sum() == pytest.approx(np.pi * SPHERE_RADIUS ** 2, rel=0.1)
    # pixels outside the volume take its minimum value
    far = camera_from_triple((0, -200, 0), (0, 0, 0), (0, 0, 1))
    wide = mpr(AXIAL_VOLUME, far, size=(200, 200), spacing=1.0)
    assert wide[0, 0] == AIR and wide[100, 140] > 900  # x = +40 at column 100 + 40 - 0.5


def test_oblique_mpr_and_default_size() -> None:
    direction = np.array([1.0, 1.0, 1.0]) / np.sqrt(3)
    camera = camera_from_triple(SPHERE_CENTRE - 100 * direction, SPHERE_CENTRE, (0, 0, 1))
    (width, height), spacing = default_size(AXIAL_VOLUME, camera, "mpr")
    assert spacing == pytest.approx(2.0)
    assert width * spacing >= 128 and height * spacing >= 128  # the whole footprint
    image = mpr(AXIAL_VOLUME, camera)
    assert image.shape == (height, width)
    row, col = centroid(image > 900)
    assert (row, col) == pytest.approx((height / 2 - 0.5, width / 2 - 0.5), abs=0.5)
    # only the sphere's disc is in the plane (the cube and the rod lie off it)
    assert (image > 0).sum() * spacing ** 2 == pytest.approx(np.pi * SPHERE_RADIUS ** 2, rel=0.15)


def test_slab_combines_across_its_thickness() -> None:
    # a plane 15 mm in front of the sphere's centre misses it (radius 12); a 10 mm slab reaches 10 mm from it
    lookat = SPHERE_CENTRE + (0, -15, 0)
    camera = camera_from_triple(lookat + (0, -100, 0), lookat, (0, 0, 1))
    thin = mpr(AXIAL_VOLUME, camera, size=SIZE, spacing=1.0)
    assert thin.max() == AIR
    mip = mpr(AXIAL_VOLUME, camera, size=SIZE, spacing=1.0, slab=10.0, method="maximum_ip")
    average = mpr(AXIAL_VOLUME, camera, size=SIZE, spacing=1.0, slab=10.0)
    minimum = mpr(AXIAL_VOLUME, camera, size=SIZE, spacing=1.0, slab=10.0, method="minimum_ip")
    assert mip.max() == SPHERE_VALUE
    assert AIR < average.max() < SPHERE_VALUE
    assert minimum.max() == AIR
    with pytest.raises(BadRequest, match="mprslab"):
        mpr(AXIAL_VOLUME, camera, slab=-1.0)
    with pytest.raises(BadRequest, match="renderingmethod"):
        mpr(AXIAL_VOLUME, camera, method="volume_rendered")


def test_a_slab_thicker_than_the_volume_is_the_whole_volume() -> None:
    """mprslab=1e308 samples what the volume holds along the view, not 1e308 mm of empty space."""
    lookat = SPHERE_CENTRE + (0, -15, 0)
    camera = camera_from_triple(lookat + (0, -100, 0), lookat, (0, 0, 1))
    huge = mpr(AXIAL_VOLUME, camera, size=SIZE, spacing=1.0, slab=1e308, method="maximum_ip")
    assert np.array_equal(huge, mpr(AXIAL_VOLUME, camera, size=SIZE, spacing=1.0, slab=1e6, method="maximum_ip"))
    through = project(AXIAL_VOLUME, camera, "maximum_ip", size=SIZE, spacing=1.0)
    assert huge.max() == SPHERE_VALUE and np.abs(huge - through).max() <= 0.05 * (SPHERE_VALUE - AIR)


def test_minimum_and_average_projections() -> None:
    camera = camera_for_orientation("a", AXIAL_VOLUME)
    size = (100, 100)  # wider than the 128 mm volume at 2 mm: the border rays miss it
    average = project(AXIAL_VOLUME, camera, "average_ip", size=size, spacing=2.0)
    minimum = project(AXIAL_VOLUME, camera, "minimum_ip", size=size, spacing=2.0)
    maximum = project(AXIAL_VOLUME, camera, "maximum_ip", size=size, spacing=2.0)
    assert average[0, 0] == minimum[0, 0] == maximum[0, 0] == AIR
    row, col = expected_pixel(SPHERE_CENTRE, camera.lookat, (1, 0, 0), (0, 0, 1), size, 2.0)
    r, c = round(row), round(col)
    assert minimum[r, c] == AIR  # the ray also crosses air
    # mean over the 128 mm ray: 24 mm of sphere at 1000, the rest air
    assert average[r, c] == pytest.approx(AIR + 2000 * 24 / 128, abs=60)
    assert np.all(minimum <= average + 1e-3) and np.all(average <= maximum + 1e-3)
    with pytest.raises(BadRequest):
        project(AXIAL_VOLUME, camera, "volume_rendered")


ACQUISITIONS = {
    "coronal": dict(geometry=CORONAL),
    "oblique": dict(geometry=OBLIQUE),
}


def _shuffled(geometry=AXIAL):
    slices = acquire(*geometry)
    random.Random(7).shuffle(slices)
    return assemble(slices)


def _same_picture(a: np.ndarray, b: np.ndarray, fraction: float) -> None:
    differ = np.abs(a - b) > 300
    assert differ.mean() < fraction, differ.mean()


@pytest.mark.parametrize("name", ["coronal", "oblique", "reversed", "shuffled", "gap", "variable"])
def test_two_acquisitions_of_one_scene_render_the_same_picture(name: str) -> None:
    if name in ACQUISITIONS:
        volume = _volume(**ACQUISITIONS[name])
    elif name == "reversed":
        volume = assemble(acquire(*AXIAL)[::-1])
    elif name == "shuffled":
        volume = _shuffled(OBLIQUE)
    elif name == "gap":
        slices = acquire(*AXIAL)
        volume = assemble(slices[:40] + slices[41:])
    else:
        volume = _volume(offsets=[*np.arange(-63.0, 0.0, 2.0), *np.arange(1.0, 64.0, 3.0)])
    # resampling an oblique grid moves edges by up to a voxel: a few percent of edge pixels
    tolerance = 0.05 if name in ("oblique", "shuffled", "variable") else 0.01
    for keyword in ("a", "r", "h"):
        reference = camera_for_orientation(keyword, AXIAL_VOLUME)
        camera = camera_from_triple(reference.position, reference.lookat, reference.up)  # same view, any volume
        _same_picture(project(volume, camera, "maximum_ip", size=SIZE, spacing=SPACING),
                      project(AXIAL_VOLUME, camera, "maximum_ip", size=SIZE, spacing=SPACING), tolerance)
        _same_picture(mpr(volume, camera, size=SIZE, spacing=SPACING),
                      mpr(AXIAL_VOLUME, camera, size=SIZE, spacing=SPACING), tolerance)
    oblique = camera_from_triple(SPHERE_CENTRE + (-60, -80, 40), SPHERE_CENTRE, (0, 0, 1))
    _same_picture(mpr(volume, oblique, size=SIZE, spacing=SPACING),
                  mpr(AXIAL_VOLUME, oblique, size=SIZE, spacing=SPACING), tolerance)
    _same_picture(project(volume, oblique, "maximum_ip", size=SIZE, spacing=SPACING),
                  project(AXIAL_VOLUME, oblique, "maximum_ip", size=SIZE, spacing=SPACING), tolerance)


def test_oblique_projection_matches_brute_force_rays() -> None:
    """The shear-warp MIP against rays sampled one by one with trilinear interpolation."""
    from scipy import ndimage

    camera = camera_from_triple(SPHERE_CENTRE + (-60, -80, 40), SPHERE_CENTRE, (0.2, 0, 1))
    fast = project(AXIAL_VOLUME, camera, "maximum_ip", size=(40, 40), spacing=3.0)
    centres = camera.pixel_centres((40, 40), 3.0)
    steps = np.arange(-120, 120, 0.5)
    points = centres[None] + steps[:, None, None, None] * camera.direction
    ijk = AXIAL_VOLUME.to_index(points)
    values = ndimage.map_coordinates(AXIAL_VOLUME.data.astype(np.float32), np.moveaxis(ijk[..., ::-1], -1, 0),
                                     order=1, cval=float(AXIAL_VOLUME.data.min()))
    slow = values.max(axis=0) - 1024
    _same_picture(fast, slow, 0.03)


def test_camera_triple_validation() -> None:
    with pytest.raises(BadRequest, match="parallel"):
        camera_from_triple((0, -100, 0), (0, 0, 0), (0, 2, 0))
    with pytest.raises(BadRequest, match="same point"):
        camera_from_triple((1, 2, 3), (1, 2, 3), (0, 0, 1))
    with pytest.raises(BadRequest, match="zero"):
        camera_from_triple((0, -100, 0), (0, 0, 0), (0, 0, 0))
    with pytest.raises(BadRequest, match="three"):
        camera_from_triple((0, -100), (0, 0, 0), (0, 0, 1))
    with pytest.raises(BadRequest, match="orientation"):
        camera_for_orientation("x", AXIAL_VOLUME)
    # an up not perpendicular to the view is made so: the image's up is its component across the view
    camera = camera_from_triple((0, -100, 0), (0, 0, 0), (0, 1, 1))
    assert np.allclose(camera.up, (0, 0, 1)) and np.allclose(camera.right, (1, 0, 0))


def test_swivel_frames_sweep_the_range_about_lookat() -> None:
    camera = camera_for_orientation("a", AXIAL_VOLUME)
    frames = swivel_cameras(camera, 180, 10)
    assert len(frames) == 18
    odd = swivel_cameras(camera, 30, 10)
    assert len(odd) == 3 and np.allclose(odd[1].position, camera.position)  # the given camera is mid-range
    distance = np.linalg.norm(camera.position - camera.lookat)
    angles = []
    for frame in frames:
        assert np.allclose(frame.lookat, camera.lookat) and np.allclose(frame.up, camera.up)
        assert np.linalg.norm(frame.position - frame.lookat) == pytest.approx(distance)
        angles.append(np.degrees(np.arctan2(frame.direction[0], frame.direction[1])))
    assert np.allclose(np.diff(angles), -10) or np.allclose(np.diff(angles), 10)
    assert angles[0] == pytest.approx(-angles[-1])  # symmetric about the given view
    assert len(swivel_cameras(camera, 360, 10)) == 36
    with pytest.raises(BadRequest):
        swivel_cameras(camera, 90, 0)


def test_curved_mpr_and_fly_through() -> None:
    points = [(40, -40, 0), (40, 0, 0), (40, 40, 0)]  # through the sphere's centre, 80 mm long
    image = curved_mpr(AXIAL_VOLUME, points, (0, 0, 1), spacing=1.0, width=60)
    assert image.shape == (60, 80)
    row, col = centroid(image > 900)
    assert col == pytest.approx(39.5, abs=0.5) and row == pytest.approx(29.5, abs=0.5)
    cameras = curve_cameras(points, 10, (0, 0, 1))
    assert len(cameras) == 9
    assert np.allclose(cameras[4].lookat, SPHERE_CENTRE)
    assert all(np.allclose(c.direction, (0, 1, 0)) and np.allclose(c.up, (0, 0, 1)) for c in cameras)
    with pytest.raises(BadRequest):
        curve_cameras([(0, 0, 0)], 10, (0, 0, 1))


def test_volume_rendering_of_a_bone_sphere() -> None:
    camera = camera_for_orientation("a", AXIAL_VOLUME)
    image = volume_render(AXIAL_VOLUME, camera, modality="CT", size=SIZE, spacing=SPACING)
    assert image.shape == (80, 80, 3) and image.dtype == np.uint8
    row, col = (round(v) for v in expected_pixel(SPHERE_CENTRE, camera.lookat, (1, 0, 0), (0, 0, 1)))
    centre = image[row, col].astype(int)
    assert centre.min() > 170 and centre[0] >= centre[2]  # bone: bright ivory, not blue
    assert image[0, 0].max() == 0 and image[row, 2].max() == 0  # air is transparent: black
    # a headlight: the sphere's rim, seen edge-on, is darker than its centre, facing the light
    rim = image[row, col + 5].astype(int)
    assert rim.sum() < centre.sum() - 60
    # the cube (500 HU: bone) renders too, where the convention puts it
    row_c, col_c = (round(v) for v in expected_pixel(CUBE_CENTRE, camera.lookat, (1, 0, 0), (0, 0, 1)))
    assert image[row_c, col_c].min() > 120
    # from behind the sphere moves to the left
    back = volume_render(AXIAL_VOLUME, camera_for_orientation("p", AXIAL_VOLUME), modality="CT", size=SIZE,
                         spacing=SPACING)
    assert back[row, 79 - col].min() > 170
    # MR or unknown: a ramp over the value range still shows the brightest object
    generic = volume_render(AXIAL_VOLUME, camera, size=SIZE, spacing=SPACING)
    assert generic[row, col].max() > 100 and generic[0, 0].max() == 0


def _plates() -> Volume:
    """Air with a dense bone plate in front (y = -20, patient's right half) and a 200 HU plate behind (y = +20)."""
    data = np.full((40, 40, 40), AIR, dtype=np.int16)  # (k, j, i) at 2 mm, centred on the origin
    axis = (np.arange(40) - 19.5) * 2
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    data[(np.abs(y + 20) < 3) & (x < 0)] = 2000
    data[np.abs(y - 20) < 3] = 200
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = -39
    return Volume(data, affine)


def test_volume_rendering_composites_front_to_back() -> None:
    volume = _plates()
    front = volume_render(volume, camera_for_orientation("a", volume), modality="CT", size=(40, 40), spacing=2.0)
    back = volume_render(volume, camera_for_orientation("p", volume), modality="CT", size=(40, 40), spacing=2.0)
    # x = -20 (patient's right): column 9.5 from the front, 29.5 from behind; the bone plate is nearer the front
    white, through = front[20, 9].astype(int), back[20, 30].astype(int)
    assert white.min() > 150
    assert through[0] > through[2] + 10  # the reddish 200 HU plate in front of the bone tints it
    assert white[2] > through[2] + 20
    # where there is only the back plate, both sides see the same reddish plate
    assert abs(int(front[20, 30, 0]) - int(back[20, 9, 0])) < 40


def test_threaded_runs_composite_like_one_run() -> None:
    from dicomweb_origin.render.volume import SERIAL, Spread
    from dicomweb_origin.retrieve.lanes import Lane

    camera = camera_from_triple(SPHERE_CENTRE + (-60, -80, 40), SPHERE_CENTRE, (0.2, 0, 1))
    volume = _plates()
    lane = Lane("test", 2)
    results = []
    try:
        for spread in (SERIAL, Spread(lane.threads, lane.fan_out)):
            results.append((volume_render(volume, camera, modality="CT", size=(40, 40), spacing=2.0,
                                          spread=spread).astype(int),
                            project(AXIAL_VOLUME, camera, "average_ip", size=SIZE, spacing=SPACING, spread=spread)))
    finally:
        lane.shutdown()
    assert np.abs(results[0][0] - results[1][0]).max() <= 2
    assert np.allclose(results[0][1], results[1][1], atol=0.5)


@pytest.mark.parametrize("method", ["maximum_ip", "minimum_ip", "average_ip"])
def test_axis_aligned_reduction_agrees_with_the_sheared_path(method: str) -> None:
    exact = camera_for_orientation("l", AXIAL_VOLUME)
    tilted = camera_from_triple(exact.position + (0, 1e-3, 0), exact.lookat, exact.up)  # shear-warp, whole shifts
    a = project(AXIAL_VOLUME, exact, method, size=SIZE, spacing=SPACING)
    b = project(AXIAL_VOLUME, tilted, method, size=SIZE, spacing=SPACING)
    assert np.allclose(a, b, atol=1.0)


def test_slab_leaves_out_samples_outside_the_volume() -> None:
    data = np.full((20, 20, 20), 100, dtype=np.int16)
    data[0, 0, 0] = 0  # the volume's minimum, far from the slab's pixels
    volume = Volume(data, np.diag([2.0, 2.0, 2.0, 1.0]))
    lookat = volume.to_patient(np.array([10.0, 10.0, 17.0]))  # 6 mm inside the last slice
    camera = camera_from_triple(lookat - (0, 0, 50), lookat, (0, -1, 0))
    for method in ("minimum_ip", "average_ip", "maximum_ip"):
        image = mpr(volume, camera, size=(8, 8), spacing=2.0, slab=40.0, method=method)
        assert np.allclose(image, 100), method
    # a slab far thicker than the volume costs no more than the volume's depth
    huge = mpr(volume, camera, size=(8, 8), spacing=2.0, slab=1e7, method="average_ip")
    assert np.allclose(huge, 100)


def test_limits_on_output_size_and_animation_length() -> None:
    from dicomweb_origin.errors import PayloadTooLarge

    camera = camera_for_orientation("a", AXIAL_VOLUME)
    with pytest.raises(PayloadTooLarge):
        mpr(AXIAL_VOLUME, camera, size=(5000, 10))
    with pytest.raises(PayloadTooLarge):
        project(AXIAL_VOLUME, camera, "maximum_ip", spacing=0.001)
    with pytest.raises(PayloadTooLarge):
        swivel_cameras(camera, 3600, 1)
    with pytest.raises(PayloadTooLarge):
        curve_cameras([(0, 0, 0), (0, 0, 1000)], 0.5, (0, 1, 0))


# -- the interpolation kernels against scipy's, and the preview of a view being turned -------------------------------

@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.float32])
def test_trilinear_samples_agree_with_scipy(dtype: type) -> None:
    """The plane sampler equals map_coordinates(order=1, mode="constant") inside, on the faces and outside."""
    from scipy import ndimage

    from dicomweb_origin.render.volume.mpr import _trilinear

    rng = np.random.default_rng(7)
    data: np.ndarray = rng.integers(0, 4000, size=(9, 11, 13)).astype(dtype)
    points = rng.uniform(-1.5, 14.0, size=(40, 50, 3))  # (i, j, k), many outside
    points[0, :6] = [(0, 0, 0), (12, 10, 8), (12, 0, 8), (6.5, 10, 3.25), (12 + 1e-9, 5, 5), (-1e-9, 5, 5)]
    want = ndimage.map_coordinates(data, np.moveaxis(points[..., ::-1], -1, 0), order=1, mode="constant",
                                   cval=-5.0, prefilter=False, output=np.float64)
    got = _trilinear(data, points, -5.0)
    assert got.dtype == np.float32 and got.shape == (40, 50)
    assert np.allclose(got, want, atol=1e-3 * 4000)


@pytest.mark.parametrize("channels", [0, 3])
def test_bilinear_warp_agrees_with_scipy(channels: int) -> None:
    from scipy import ndimage

    from dicomweb_origin.render.volume.shear import _bilinear

    rng = np.random.default_rng(8)
    image = rng.random((17, 23, channels) if channels else (17, 23), dtype=np.float32)
    u1, u2 = rng.uniform(-2, 18, (30, 31)), rng.uniform(-2, 24, (30, 31))
    u1[0, :3], u2[0, :3] = (0, 16, 16.0000001), (0, 22, 3)
    planes = image[..., None] if not channels else image
    want = np.stack([ndimage.map_coordinates(np.ascontiguousarray(planes[..., c]), np.stack([u1, u2]), order=1,
                                             mode="constant", cval=0.25, prefilter=False)
                     for c in range(planes.shape[2])], axis=-1)
    got = _bilinear(image, u1, u2, 0.25)
    assert np.allclose(got, want if channels else want[..., 0], atol=1e-5)


def test_preview_takes_half_the_samples_and_looks_alike() -> None:
    camera = camera_from_triple(SPHERE_CENTRE + (-60, -80, 40), SPHERE_CENTRE, (0.2, 0, 1))
    full = volume_render(AXIAL_VOLUME, camera, modality="CT", size=SIZE, spacing=SPACING).astype(int)
    preview = volume_render(AXIAL_VOLUME, camera, modality="CT", size=SIZE, spacing=SPACING, preview=True).astype(int)
    assert not np.array_equal(full, preview)
    assert np.abs(full - preview).mean() < 6  # opacity corrected for the longer step: the same look
    mip = project(AXIAL_VOLUME, camera, "maximum_ip", size=SIZE, spacing=SPACING)
    quick = project(AXIAL_VOLUME, camera, "maximum_ip", size=SIZE, spacing=SPACING, preview=True)
    assert np.all(quick <= mip + 1e-3)  # a subset of the samples along each ray
    assert np.abs(quick - mip).mean() < 0.05 * (mip.max() - mip.min())


def test_nbytes_counts_every_level_before_it_is_made() -> None:
    """A memory-bounded cache sizes a volume once, when it stores it: nbytes must not grow as levels are made."""
    data = np.random.default_rng(3).integers(0, 2000, (70, 340, 200)).astype(np.int16)
    # levels: 70 x 170 x 200 -> 70 x 85 x 100, then 35 x 42 x 50
    volume = Volume(data, np.diag([1.0, 1.0, 2.0, 1.0]))
    counted = volume.nbytes
    camera = camera_for_orientation("a", volume)
    volume_render(volume, camera, size=(32, 32))
    volume_render(volume, camera, size=(32, 32), preview=True)
    project(volume, camera, "maximum_ip", size=(32, 32), preview=True)
    made = [volume.derived[name][0] for name in ("level", "preview", "maximum")]
    assert [m.shape for m in made] == [(70, 85, 100), (35, 42, 50), (70, 85, 100)]
    assert np.all(made[2] >= made[0])  # block maxima, block means
    assert counted == volume.nbytes == data.nbytes + sum(m.nbytes for m in made)


def test_a_volume_of_one_value_renders_black_not_an_error() -> None:
    """An all-zero MR-like volume: the generic transfer ramp had no width (ZeroDivisionError, a 500)."""
    volume = Volume(np.zeros((4, 8, 8), dtype=np.int16), np.eye(4))
    image = volume_render(volume, camera_for_orientation("a", volume), size=(8, 8))
    assert image.shape == (8, 8, 3) and image.max() == 0


@pytest.mark.parametrize("shape", [(2, 8, 8), (40, 128, 128), (161, 161, 161), (300, 512, 512), (2, 4000, 170)])
def test_the_levels_take_at_most_their_share_of_the_volume(shape: tuple[int, int, int]) -> None:
    from dicomweb_origin.render.volume import levels

    voxels = np.lib.stride_tricks.as_strided(np.zeros(1, np.int16), shape, (0, 0, 0))  # sized, not allocated
    volume = Volume(voxels, np.eye(4))
    assert levels.nbytes(volume.shape, voxels.itemsize) <= levels.MOST_SHARE * voxels.nbytes
