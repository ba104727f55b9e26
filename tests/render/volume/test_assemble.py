"""Volume assembly (PS3.3 C.11.23.1): frames sorted by position along the normal, uneven spacing resampled by the
real positions, and every Volume Input Requirement checked with a reason that names the frames."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest

from dicomweb_origin.errors import BadRequest, InvalidVolume
from dicomweb_origin.render.volume import TOLERANCE_MM, assemble
from tests.support.volume_scenes import AIR, AXIAL, CORONAL, SPHERE_CENTRE, SPHERE_VALUE, acquire


def _value_at(volume, lps) -> float:
    i, j, k = np.rint(volume.to_index(np.asarray(lps, dtype=float))).astype(int)
    return float(volume.data[k, j, i]) * volume.slope + volume.intercept


def test_invalid_volume_is_a_bad_request() -> None:
    assert issubclass(InvalidVolume, BadRequest) and InvalidVolume.status == 400


def test_axial_slices_in_any_order_give_one_volume() -> None:
    slices = acquire(*AXIAL)
    reference = assemble(slices)
    shuffled = slices[:]
    random.Random(4).shuffle(shuffled)
    for order in (shuffled, slices[::-1]):
        volume = assemble(order)
        assert np.array_equal(volume.data, reference.data)
        assert np.allclose(volume.affine, reference.affine)
    assert reference.shape == (64, 64, 64)
    assert reference.spacing == pytest.approx((2.0, 2.0, 2.0))
    # int16 stored values kept with the shared rescale (the Modality LUT is linear)
    assert reference.data.dtype == np.int16 and reference.intercept == -1024 and reference.slope == 1
    assert reference.data.flags.c_contiguous
    assert _value_at(reference, SPHERE_CENTRE) == SPHERE_VALUE
    assert _value_at(reference, (-60, -60, 60)) == AIR
    # first voxel is the top-left pixel of the most inferior slice: (i, j, k) = 0 -> its position
    assert np.allclose(reference.to_patient(np.zeros(3)), (-63, -63, -63))
    assert np.allclose(reference.centre, (0, 0, 0))
    assert reference.nbytes >= reference.data.nbytes


def test_sorted_by_position_not_by_label_or_order() -> None:
    slices = acquire(*AXIAL)
    relabelled = [replace(s, label=f"instance {64 - n}") for n, s in enumerate(slices)]
    random.Random(1).shuffle(relabelled)
    assert np.array_equal(assemble(relabelled).data, assemble(slices).data)


def test_coronal_normal_is_the_slice_axis() -> None:
    volume = assemble(acquire(*CORONAL))
    # i along +x, j along -z, k along the normal x . (-z) cross = +y
    assert np.allclose(volume.affine[:3, 2] / 2, (0, 1, 0))
    assert _value_at(volume, SPHERE_CENTRE) == SPHERE_VALUE


def test_gap_and_variable_spacing_are_resampled_by_real_positions() -> None:
    slices = acquire(*AXIAL)
    gap = slices[:30] + slices[31:]  # one slice missing
    volume = assemble(gap)
    assert volume.shape[0] == 64 and volume.spacing[2] == pytest.approx(2.0)
    assert np.array_equal(volume.data[:30], assemble(slices).data[:30])
    # the missing slice is the mean of its neighbours (linear in the real positions)
    expected = (slices[29].pixels.astype(float) + slices[31].pixels) / 2
    assert np.allclose(volume.data[30], expected, atol=1)
    uneven = acquire(*AXIAL, offsets=[*np.arange(-63.0, 0.0, 2.0), *np.arange(1.0, 64.0, 3.0)])
    volume = assemble(uneven)
    assert volume.spacing[2] == pytest.approx(2.0, abs=0.3)
    assert _value_at(volume, SPHERE_CENTRE) == pytest.approx(SPHERE_VALUE, abs=1)


def test_different_rescale_gives_float_modality_values() -> None:
    slices = acquire(*AXIAL)
    mixed = slices[:32] + acquire(*AXIAL, slope=0.5)[32:]
    volume = assemble(mixed)
    assert volume.data.dtype == np.float32 and volume.slope == 1 and volume.intercept == 0
    assert np.allclose(volume.data, assemble(slices).data.astype(np.float32) - 1024, atol=1)


def _fails(slices, *words: str) -> None:
    with pytest.raises(InvalidVolume) as error:
        assemble(slices)
    for word in words:
        assert word in error.value.message, error.value.message


def test_one_frame_is_no_volume() -> None:
    _fails(acquire(*AXIAL)[:1], "only one frame", "more than one")
    _fails([], "no frames")


def test_mixed_orientation() -> None:
    slices = acquire(*AXIAL)
    slices[5] = acquire(*CORONAL)[5]
    _fails(slices, "differ in Image Orientation (Patient)", "frame 6")


def test_mixed_size() -> None:
    slices = acquire(*AXIAL)
    slices[3] = replace(slices[3], pixels=slices[3].pixels[:32])
    _fails(slices, "differ in Rows/Columns", "frame 4")


def test_colour_frame() -> None:
    slices = acquire(*AXIAL)
    slices[2] = replace(slices[2], pixel_format=(3, "RGB", 64, 64, 8, 8, 7, 0))
    _fails(slices, "frame 3 is RGB", "MONOCHROME2")
    slices = acquire(*AXIAL)
    slices[2] = replace(slices[2], pixel_format=(1, "MONOCHROME1", 64, 64, 16, 12, 11, 0))
    _fails(slices, "frame 3 is MONOCHROME1")


def test_duplicate_positions() -> None:
    slices = acquire(*AXIAL)
    slices[10] = replace(slices[9], label="instance 9.9")
    _fails(slices, "share the Image Position (Patient)", "instance 9.9")
    near = slices[9].position
    slices[10] = replace(slices[9], position=(near[0], near[1], near[2] + TOLERANCE_MM / 2), label="x")
    _fails(slices, "share the Image Position (Patient)")


def test_different_frame_of_reference() -> None:
    slices = acquire(*AXIAL)
    slices[7] = replace(slices[7], frame_of_reference_uid="1.2.3")
    _fails(slices, "different Frames of Reference")


def test_sheared_stack_is_not_aligned() -> None:
    slices = acquire(*AXIAL)
    # gantry tilt: each slice's corner moves 0.3 mm along y per slice
    tilted = [replace(s, position=(s.position[0], s.position[1] + 0.3 * n, s.position[2]))
              for n, s in enumerate(slices)]
    _fails(tilted, "not aligned", "gantry tilt")


def test_missing_geometry_and_other_format_differences() -> None:
    slices = acquire(*AXIAL)
    slices[1] = replace(slices[1], position=None)
    _fails(slices, "frame 2 has no Image Position (Patient)")
    slices = acquire(*AXIAL)
    slices[1] = replace(slices[1], pixel_spacing=(2.1, 2.0))
    _fails(slices, "differ in Pixel Spacing")
    slices = acquire(*AXIAL)
    slices[1] = replace(slices[1], pixel_format=(1, "MONOCHROME2", 64, 64, 16, 16, 15, 1))
    _fails(slices, "differ in pixel format")
    slices = acquire(*AXIAL)
    slices[1] = replace(slices[1], orientation=(1, 0, 0, 0.5, 0.5, 0))
    _fails(slices, "not orthogonal")


def test_stored_type_keeps_every_value() -> None:
    slices = acquire(*AXIAL)
    bright = [replace(s, pixels=(s.pixels.astype(np.uint16) * 20)) for s in slices]  # up to 40480: uint16
    volume = assemble(bright)
    assert volume.data.dtype == np.uint16 and int(volume.data.max()) == int(max(s.pixels.max() for s in bright))
    # signed and unsigned frames whose values need more than 16 bits together: float32 modality values
    mixed = bright[:32] + [replace(s, pixels=(s.pixels.astype(np.int16) - 2000)) for s in slices[32:]]
    volume = assemble(mixed)
    assert volume.data.dtype == np.float32
    assert float(volume.data.max()) == float(max(s.pixels.max() for s in bright[:32])) - 1024
    assert float(volume.data.min()) == float(min(s.pixels.min() for s in slices[32:])) - 2000 - 1024


def test_a_reduced_volume_keeps_its_geometry() -> None:
    """``fill`` with factor 2 averages 2 x 2 blocks; the affine puts each block at its centre (memory budget)."""
    from dicomweb_origin.render.volume import fill, layout

    slices = acquire(*AXIAL)
    full = assemble(slices)
    plan = layout([replace(s, pixels=None) for s in slices])
    reduced = fill(slices, plan, (slices[n].pixels for n in plan.order), np.dtype(np.int16), factor=2)
    assert reduced.shape == (64, 32, 32) and reduced.data.dtype == np.int16
    assert reduced.spacing == pytest.approx((4.0, 4.0, 2.0))
    block = full.data[:, :2, :2].astype(np.float32).mean(axis=(1, 2))
    assert np.array_equal(reduced.data[:, 0, 0], np.rint(block))
    centre = full.to_patient(np.array([0.5, 0.5, 0.0]))  # the centre of the first 2 x 2 block
    assert np.allclose(reduced.to_patient(np.zeros(3)), centre)
    assert _value_at(reduced, SPHERE_CENTRE) == pytest.approx(SPHERE_VALUE, abs=1)


def test_frames_are_loaded_one_at_a_time_in_order() -> None:
    """``fill`` takes each frame when its slot comes: the caller decodes lazily, never all frames at once."""
    from dicomweb_origin.render.volume import fill, layout

    slices = acquire(*AXIAL)
    random.Random(2).shuffle(slices)
    plan = layout([replace(s, pixels=None) for s in slices])
    loaded = []

    def frames():
        for n in plan.order:
            loaded.append(n)
            yield slices[n].pixels

    volume = fill(slices, plan, frames(), np.dtype(np.int16))
    assert loaded == list(plan.order)
    assert np.array_equal(volume.data, assemble(slices).data)
    uneven = acquire(*AXIAL, offsets=np.cumsum([0.0] + [2.0, 3.0] * 31 + [2.0]))
    plan = layout(uneven)
    assert not plan.uniform
    assert np.array_equal(fill(uneven, plan, (uneven[n].pixels for n in plan.order), np.dtype(np.int16)).data,
                          assemble(uneven).data)
