"""``web.params``: the rendering query parameters of PS3.18 §8.3.5.1-3, one rule of the standard per test.

Queries are Starlette's ``QueryParams`` built from a query string, percent-decoding included, as a request has
them; a malformed value is a 400 (``BadRequest``) whose message names the parameter.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from starlette.datastructures import QueryParams

from dicomweb_origin.errors import BadRequest
from dicomweb_origin.web.params import (
    MAX_CURVE_POINTS,
    MAX_VIEWPORT,
    render_params,
    thumbnail_params,
    volume_params,
)


def _refused(parse: Callable[[QueryParams], object], query: str, *words: str) -> str:
    with pytest.raises(BadRequest) as raised:
        parse(QueryParams(query))
    assert raised.value.status == 400
    for word in words:
        assert word in raised.value.message, raised.value.message
    return str(raised.value.message)


def test_no_parameters_leave_every_choice_to_the_server() -> None:
    params, unsupported = render_params(QueryParams(""))
    assert (params.window, params.viewport, params.quality, params.annotation, params.iccprofile) == (
        None, None, None, (), None)
    assert unsupported == ()


# -- §8.3.5.1.1 annotation ------------------------------------------------------------------------------

def test_annotation_keeps_the_supported_keywords_and_reports_the_others_for_a_warning() -> None:
    """§8.3.5.1.1: unsupported annotation values are ignored, and the response says so in a Warning header."""
    params, unsupported = render_params(QueryParams("annotation=patient,overlay&annotation=technique,patient"))
    assert params.annotation == ("patient", "technique") and unsupported == ("overlay",)


def test_annotation_that_is_not_a_list_of_keywords_is_a_bad_request() -> None:
    _refused(render_params, "annotation=patient;drop", "annotation")


# -- §8.3.5.1.3 quality --------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["1", "75", "100"])
def test_quality_is_an_integer_from_1_to_100(value: str) -> None:
    assert render_params(QueryParams(f"quality={value}"))[0].quality == int(value)


@pytest.mark.parametrize("value", ["0", "101", "50.5", "high", ""])
def test_quality_outside_1_to_100_is_a_bad_request(value: str) -> None:
    _refused(render_params, f"quality={value}", "quality")


def test_a_single_valued_parameter_given_twice_is_a_bad_request() -> None:
    _refused(render_params, "quality=50&quality=60", "quality", "2 times")


# -- §8.3.5.1.2 viewport -------------------------------------------------------------------------------

def test_viewport_comes_percent_decoded_as_dicomweb_client_sends_it() -> None:
    viewport = render_params(QueryParams("viewport=256%2C128"))[0].viewport
    assert viewport is not None and (viewport.width, viewport.height) == (256, 128)
    assert (viewport.sx, viewport.sy, viewport.sw, viewport.sh) == (None, None, None, None)


def test_viewport_source_region_may_leave_values_to_their_defaults_and_flip_with_a_negative_size() -> None:
    """§8.3.5.1.2: vw,vh[,sx,sy,sw,sh]; an empty value takes its default; a negative sw or sh flips that axis."""
    viewport = render_params(QueryParams("viewport=64,64,10,,-20,30"))[0].viewport
    assert viewport is not None and (viewport.sx, viewport.sy, viewport.sw, viewport.sh) == (10.0, None, -20.0, 30.0)


@pytest.mark.parametrize(("value", "names"), [
    ("256", ["viewport"]), ("0,10", ["vw"]), (f"{MAX_VIEWPORT + 1},10", ["vw"]), ("10,x", ["vh"]),
    ("10,10,0,0,0,5", ["sw", "area"]), ("10,10,1,2,3,4,5", ["viewport"]),
])
def test_a_viewport_that_is_not_vw_vh_and_a_region_with_area_is_a_bad_request(value: str, names: list[str]) -> None:
    _refused(render_params, f"viewport={value}", *names)


def test_a_thumbnail_takes_only_the_viewport_size() -> None:
    """Table 8.3.5-2: thumbnails take viewport=vw,vh, and none of window, quality, annotation, iccprofile."""
    params, _ = thumbnail_params(QueryParams("viewport=64,64&window=40,400,linear&quality=10"))
    assert params.viewport is not None and params.window is None and params.quality is None
    _refused(thumbnail_params, "viewport=64,64,0,0,10,10", "vw,vh")


# -- §8.3.5.1.4 windowing ------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "function"), [
    ("40,400,linear", "LINEAR"), ("40,400,linear-exact", "LINEAR_EXACT"), ("-1000.5,1e3,sigmoid", "SIGMOID"),
])
def test_window_is_center_width_and_a_voi_lut_function(value: str, function: str) -> None:
    window = render_params(QueryParams(f"window={value}"))[0].window
    assert window is not None and window.function == function
    assert (window.center, window.width) == tuple(float(v) for v in value.split(",")[:2])


@pytest.mark.parametrize(("value", "words"), [
    ("40,400", ["center,width,function"]), ("40,400,gamma", ["window function"]), ("a,400,linear", ["center"]),
    ("40,0.5,linear", ["width", "at least 1"]), ("40,0,sigmoid", ["width"]), ("40,inf,linear", ["width"]),
])
def test_a_window_against_ps3_3_c_11_2_1_2_is_a_bad_request(value: str, words: list[str]) -> None:
    """PS3.3 C.11.2.1.2: Window Width at least 1 for LINEAR, above 0 for the other functions."""
    _refused(render_params, f"window={value}", *words)


# -- §8.3.5.1.5 iccprofile -----------------------------------------------------------------------------

def test_iccprofile_takes_the_first_of_a_list_of_known_profiles_and_refuses_unknown_ones() -> None:
    assert render_params(QueryParams("iccprofile=SRGB,yes"))[0].iccprofile == "srgb"
    _refused(render_params, "iccprofile=displayp3", "iccprofile")


# -- §8.3.5.3 Rendered MPR and 3D ----------------------------------------------------------------------

def test_the_camera_is_three_vectors_given_together() -> None:
    """§8.3.5.3.5-7: viewpointposition, viewpointlookat and viewpointup set the view only together."""
    params, _ = volume_params(QueryParams(
        "viewpointposition=0,-500,0&viewpointlookat=0,0,0&viewpointup=0,0,1&renderingmethod=maximum_ip"))
    assert params.viewpoint == ((0.0, -500.0, 0.0), (0.0, 0.0, 0.0), (0.0, 0.0, 1.0))
    assert params.rendering_method == "MAXIMUM_IP"
    _refused(volume_params, "viewpointposition=0,-500,0&viewpointlookat=0,0,0", "viewpointup", "missing")


@pytest.mark.parametrize(("query", "words"), [
    ("orientation=a&viewpointposition=0,1,0&viewpointlookat=0,0,0&viewpointup=0,0,1", ["mutually exclusive"]),
    ("viewpointposition=1,1,1&viewpointlookat=1,1,1&viewpointup=0,0,1", ["no view direction"]),
    ("viewpointposition=0,1,0&viewpointlookat=0,0,0&viewpointup=0,0,0", ["zero vector"]),
    ("viewpointposition=0,1&viewpointlookat=0,0,0&viewpointup=0,0,1", ["three numbers"]),
    ("viewpointposition=0,1e7,0&viewpointlookat=0,0,0&viewpointup=0,0,1", ["within"]),
    ("orientation=x", ["orientation"]), ("renderingmethod=xray", ["renderingmethod"]),
    ("mprslab=0", ["mprslab", "above 0"]), ("swivelrange=361", ["swivelrange", "360"]),
    ("animationrate=0", ["animationrate"]), ("renderedvolumetricmetadata=no", ["only value is yes"]),
    ("volumeinputreference=0", ["start at 1"]), ("volumeinputreference=1.2.x", ["volumeinputreference"]),
    ("match=ImageType", ["attribute=value"]),
])
def test_volume_parameters_against_their_rules_are_bad_requests(query: str, words: list[str]) -> None:
    _refused(volume_params, query, *words)


def test_a_curve_is_two_or_more_points_and_is_not_combined_with_a_swivel() -> None:
    """§8.3.5.3: volumetriccurvepoint and swivelrange are two animations; a curve needs two points."""
    params, _ = volume_params(QueryParams("volumetriccurvepoint=0,0,0,1,1,1&volumetriccurvepoint=2,2,2"))
    assert params.curve == ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (2.0, 2.0, 2.0))
    _refused(volume_params, "volumetriccurvepoint=0,0,0", "at least two points")
    _refused(volume_params, "volumetriccurvepoint=0,0,0,1,1,1&swivelrange=90", "give one of them")
    points = ",".join(["1,2,3"] * (MAX_CURVE_POINTS + 1))
    _refused(volume_params, f"volumetriccurvepoint={points}", f"at most {MAX_CURVE_POINTS}")


def test_volume_inputs_are_frame_numbers_or_sop_instance_uids() -> None:
    """§8.3.5.3.1: the inputs of the volume by frame number (1-based) or SOP Instance UID; match= refines them."""
    frames, _ = volume_params(QueryParams("volumeinputreference=3,1,2"))
    assert frames.selector.frame_numbers == (3, 1, 2) and frames.selector.instance_uids == ()
    uids, _ = volume_params(QueryParams("volumeinputreference=1.2.3,1.2.4&match=ImageType%3DORIGINAL"))
    assert uids.selector.instance_uids == ("1.2.3", "1.2.4") and uids.selector.match == (("ImageType", "ORIGINAL"),)
