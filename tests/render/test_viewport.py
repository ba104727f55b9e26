"""The viewport parameter (PS3.18 §8.3.5.1.3) on ramps: crop, flip, aspect-preserving scale."""

from __future__ import annotations

import numpy as np
import pytest

from dicomweb_origin.errors import BadRequest
from dicomweb_origin.model.rendering import Viewport
from dicomweb_origin.render import apply_viewport

# A 200 wide × 100 high image: value = column (0..199) in the first channel, row in the second
COLUMNS, ROWS = 200, 100
RAMP = np.stack([*np.meshgrid(np.arange(COLUMNS), np.arange(ROWS)), np.full((ROWS, COLUMNS), 7)],
                axis=-1).astype(np.uint8)


def test_no_viewport_leaves_the_image_unchanged() -> None:
    assert apply_viewport(RAMP, None) is RAMP


def test_crop_at_scale_one_is_exact() -> None:
    """sx, sy, sw, sh select the region; vw×vh equal to it: no resampling."""
    out = apply_viewport(RAMP, Viewport(50, 40, 30, 20, 50, 40))
    assert np.array_equal(out, RAMP[20:60, 30:80])


def test_defaults_run_to_the_far_edges() -> None:
    """sx, sy default to 0; sw, sh default to the right and bottom edges."""
    out = apply_viewport(RAMP, Viewport(150, 80, 50, 20))
    assert np.array_equal(out, RAMP[20:, 50:])


@pytest.mark.parametrize(("sw", "sh", "columns", "rows"), [(-60, 30, slice(None, None, -1), slice(None)),
                                                           (60, -30, slice(None), slice(None, None, -1))])
def test_negative_width_or_height_flips(sw: float, sh: float, columns: slice, rows: slice) -> None:
    """Negative sw flips horizontally, negative sh vertically; the region is |sw|×|sh| at (sx, sy)."""
    out = apply_viewport(RAMP, Viewport(60, 30, 10, 5, sw, sh))
    assert np.array_equal(out, RAMP[5:35, 10:70][rows, columns])


def test_scale_preserves_the_aspect_ratio_inside_the_viewport() -> None:
    """200×100 into 100×100: 100×50, one side equal to the viewport, no padding."""
    out = apply_viewport(RAMP, Viewport(100, 100))
    assert out.shape == (50, 100, 3)
    # halving a linear ramp: output pixel j covers source columns 2j, 2j+1 -> mean 2j + 0.5
    expected = 2 * np.arange(100) + 0.5
    assert np.abs(out[25, 5:-5, 0] - expected[5:-5]).max() <= 1
    assert np.abs(out[5:-5, 50, 1] - (2 * np.arange(50) + 0.5)[5:-5]).max() <= 1
    assert apply_viewport(RAMP, Viewport(400, 50)).shape == (50, 100, 3)  # height bound


def test_upscaling_a_region() -> None:
    """A 20×10 region to 80×40: 4× larger, the ramp interpolated."""
    out = apply_viewport(RAMP, Viewport(80, 80, 100, 50, 20, 10))
    assert out.shape == (40, 80, 3)
    expected = 100 + (np.arange(80) + 0.5) / 4 - 0.5
    assert np.abs(out[20, 4:-4, 0] - expected[4:-4]).max() <= 1


def test_greyscale_images_scale_too() -> None:
    out = apply_viewport(RAMP[..., 0].copy(), Viewport(50, 50))
    assert out.shape == (25, 50) and out.dtype == np.uint8


@pytest.mark.parametrize("viewport", [Viewport(10, 10, 190, 0, 20, 10), Viewport(10, 10, 0, 95, 10, 10),
                                      Viewport(10, 10, 250), Viewport(10, 10, 0, 0, 0, 10)])
def test_region_outside_the_image_is_a_bad_request(viewport: Viewport) -> None:
    with pytest.raises(BadRequest, match="viewport source region .* outside the 200x100 image"):
        apply_viewport(RAMP, viewport)
