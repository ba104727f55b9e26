"""``retrieve.bulk.parse_frame_list``: the ``{frames}`` path segment of PS3.18 §10.4.1.1.6 (Frame Pixel Data).

§10.1.1's template: "a comma-separated list of frame numbers, in ascending order", 1-based; a number beyond the
instance's Number of Frames names a frame that does not exist (404; whether 400 or 404 is UNVERIFIED
in the standard's text). The use case turns the numbers into 0-based indexes.
"""

from __future__ import annotations

import pytest

from dicomweb_origin.errors import BadRequest, InvalidFrameList, NotFound
from dicomweb_origin.retrieve.bulk import MAX_FRAMES_PER_REQUEST, parse_frame_list


def test_frame_numbers_are_one_based_and_come_back_as_zero_based_indexes() -> None:
    assert parse_frame_list("1", 1) == [0]
    assert parse_frame_list("10", 10) == [9]


def test_a_list_out_of_ascending_order_is_served_in_the_order_asked_rather_than_refused() -> None:
    """The template asks clients for ascending order; this server is lenient (docs/conformance.md)."""
    assert parse_frame_list("3,1,2", 3) == [2, 0, 1]
    assert parse_frame_list("2,2", 2) == [1, 1]  # a repeated frame is sent twice (docs/conformance.md)


def test_spaces_around_the_commas_and_leading_zeros_are_read_as_the_number() -> None:
    assert parse_frame_list(" 2 , 003", 3) == [1, 2]


@pytest.mark.parametrize("text", ["", ",", "1,", "a", "1.5", "-1", "+1", "1;2", "0x1", "1 2", "½"])
def test_anything_but_comma_separated_decimal_integers_is_a_bad_request(text: str) -> None:
    with pytest.raises(InvalidFrameList) as raised:
        parse_frame_list(text, 5)
    assert raised.value.status == 400 and "frame" in raised.value.message


def test_frame_zero_does_not_exist_in_a_one_based_list() -> None:
    with pytest.raises(InvalidFrameList, match="start at 1"):
        parse_frame_list("0", 5)


def test_a_frame_beyond_number_of_frames_is_not_found_and_named() -> None:
    with pytest.raises(NotFound) as raised:
        parse_frame_list("1,6", 5)
    assert raised.value.status == 404
    assert "6" in raised.value.message and "5 frame" in raised.value.message


def test_a_number_too_long_for_any_instance_is_out_of_range_without_being_converted() -> None:
    """A 4,000-digit number would cost Python's int() a noticeable time; it is out of range as it stands."""
    with pytest.raises(NotFound):
        parse_frame_list("9" * 4000, 5)


def test_a_list_longer_than_the_bound_is_refused_rather_than_served() -> None:
    with pytest.raises(BadRequest, match="too many frames"):
        parse_frame_list(",".join(["1"] * (MAX_FRAMES_PER_REQUEST + 1)), 1)
    assert len(parse_frame_list(",".join(["1"] * MAX_FRAMES_PER_REQUEST), 1)) == MAX_FRAMES_PER_REQUEST
