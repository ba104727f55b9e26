"""``negotiation.negotiate``, step by step as PS3.18 §8.7.8 states them, over small hand-made offers.

Each test names the step it checks; the offers are those a resource would give for one item (the resources'
own offers are tested through HTTP in test_negotiation.py and tests/web/test_resources.py).
"""

from __future__ import annotations

import pytest

from dicomweb_origin.model.media import Acceptable
from dicomweb_origin.negotiation import Offer, acceptable_media_types, negotiate

ELE = "1.2.840.10008.1.2.1"
J2K = "1.2.840.10008.1.2.4.90"
J2K_LOSSY = "1.2.840.10008.1.2.4.91"
JLS = "1.2.840.10008.1.2.4.80"

# What a frame stored as lossy JPEG 2000 can be sent in: octet-stream (the default), as stored, and JPEG-LS.
FRAME = (
    Offer("application/octet-stream", ELE, multipart=True, default=True),
    Offer("image/jp2", J2K_LOSSY, multipart=True, default=False, stored=True),
    Offer("image/jls", JLS, multipart=True, default=True, wildcard=False),
    Offer("application/octet-stream", ELE, multipart=False, default=True),
    Offer("image/jp2", J2K_LOSSY, multipart=False, default=False, stored=True),
)
# What a single-frame image renders as (Table 8.7.4-1), bare for a single item, default first.
RENDERED = tuple(Offer(t) for t in ("image/jpeg", "image/png", "image/gif"))
METADATA = (Offer("application/dicom+json", ELE), Offer("application/dicom+xml", ELE, multipart=True))


def select(accept: str, offers: tuple[Offer, ...], query: list[str] | None = None) -> Offer | None:
    return negotiate(acceptable_media_types(accept, query or []), offers)


def described(offer: Offer | None) -> str | None:
    if offer is None:
        return None
    text = f'multipart/related; type="{offer.media_type}"' if offer.multipart else offer.media_type
    return text + (f"; transfer-syntax={offer.syntax}" if offer.syntax else "")


# -- Step 1: the ranges best first, the accept query parameter before the header (§8.7.8.1 steps 2-3) ------


def test_the_highest_q_wins() -> None:
    accept = "image/png; q=0.5, image/gif; q=0.9"
    assert described(select(accept, RENDERED)) == "image/gif"


def test_equal_q_values_are_taken_as_written() -> None:
    assert described(select("image/png, image/jpeg", RENDERED)) == "image/png"


def test_the_query_parameter_comes_before_the_header() -> None:
    assert described(select("image/jpeg", RENDERED, query=["image/png; q=0.1"])) == "image/png"


def test_a_range_with_q_zero_selects_nothing() -> None:
    assert select("image/png; q=0", RENDERED) is None


# -- Step 2: what a range admits ----------------------------------------------------------------------------


def test_a_bare_type_takes_a_bare_offer_and_multipart_a_multipart_one() -> None:
    assert described(select("application/octet-stream", FRAME)) == f"application/octet-stream; transfer-syntax={ELE}"
    assert described(select('multipart/related; type="application/octet-stream"', FRAME)) == (
        f'multipart/related; type="application/octet-stream"; transfer-syntax={ELE}')


def test_a_resource_without_bare_offers_ignores_bare_types() -> None:
    """Table 10.4.4-1 note 3: single-part types are for single items; the resource does not offer them."""
    multipart_only = tuple(o for o in FRAME if o.multipart)
    assert select("application/octet-stream", multipart_only) is None


def test_a_wildcard_takes_the_default_in_the_default_wrapping() -> None:
    """§8.7.7: ``*/*`` matches the category's default media type; the first offer is the default wrapping."""
    assert described(select("*/*", FRAME)) == f'multipart/related; type="application/octet-stream"; transfer-syntax={ELE}'
    assert described(select("*/*", RENDERED)) == "image/jpeg"
    assert described(select("application/*", METADATA)) == f"application/dicom+json; transfer-syntax={ELE}"


def test_multipart_related_without_type_is_a_wildcard_in_multipart() -> None:
    assert described(select("multipart/related", METADATA)) == (
        f'multipart/related; type="application/dicom+xml"; transfer-syntax={ELE}')


def test_a_type_wildcard_takes_the_first_offer_it_covers() -> None:
    assert described(select("image/*", RENDERED)) == "image/jpeg"
    assert described(select('multipart/related; type="image/*"', FRAME)) == (
        f'multipart/related; type="image/jp2"; transfer-syntax={J2K_LOSSY}')


def test_a_wildcard_never_takes_an_offer_a_wildcard_may_not_take() -> None:
    """JPEG-LS is offered when named, never for a wildcard: it is neither the default nor as stored."""
    assert described(select('multipart/related; type="image/jls"', FRAME)) == (
        f'multipart/related; type="image/jls"; transfer-syntax={JLS}')
    only_jls = tuple(o for o in FRAME if o.media_type == "image/jls")
    assert select("*/*", only_jls) is None


def test_no_transfer_syntax_means_the_media_types_default() -> None:
    """§8.7.8.2: without a transfer-syntax parameter, the default syntax of the media type.

    Lossy JPEG 2000 is not ``image/jp2``'s default (JPEG 2000 lossless is), so naming the type alone does not get it.
    """
    assert select('multipart/related; type="image/jp2"', FRAME) is None


def test_transfer_syntax_star_prefers_the_stored_bytes() -> None:
    """§8.7.3.5.2: ``transfer-syntax=*`` lets the server send what it stored."""
    assert described(select('multipart/related; type="image/jp2"; transfer-syntax=*', FRAME)) == (
        f'multipart/related; type="image/jp2"; transfer-syntax={J2K_LOSSY}')
    assert described(select("*/*; transfer-syntax=*", FRAME)) == (
        f'multipart/related; type="image/jp2"; transfer-syntax={J2K_LOSSY}')


def test_octet_stream_with_any_syntax_takes_the_stored_bytes_under_their_own_type() -> None:
    """What dicomweb-client asks for to get frames as stored: the stored bitstream, whatever its media type."""
    accept = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
    assert described(select(accept, FRAME)) == f'multipart/related; type="image/jp2"; transfer-syntax={J2K_LOSSY}'


def test_a_named_transfer_syntax_takes_that_syntax_only() -> None:
    accept = f'multipart/related; type="image/jp2"; transfer-syntax={J2K}'
    assert select(accept, FRAME) is None
    accept = f'multipart/related; type="image/jp2"; transfer-syntax={J2K_LOSSY}'
    assert described(select(accept, FRAME)) == f'multipart/related; type="image/jp2"; transfer-syntax={J2K_LOSSY}'


def test_types_without_a_transfer_syntax_ignore_ranges_that_carry_one() -> None:
    """§8.7.4: rendered media types take no transfer-syntax parameter."""
    assert select(f"image/jpeg; transfer-syntax={ELE}", RENDERED) is None
    assert described(select(f"image/jpeg; transfer-syntax={ELE}, image/png", RENDERED)) == "image/png"


# -- Step 3: the most specific range decides a representation's q (§8.7.8.1) --------------------------------


def test_q_zero_on_a_specific_type_excludes_it_from_a_wildcard() -> None:
    assert described(select("image/jpeg; q=0, */*", RENDERED)) == "image/png"


def test_q_zero_on_the_only_offer_a_wildcard_admits_leaves_nothing() -> None:
    default_only = (Offer("application/dicom", ELE, multipart=True),
                    Offer("application/dicom", ELE, multipart=False, wildcard=False))
    assert select('multipart/related; type="application/dicom"; q=0, */*', default_only) is None


def test_a_more_specific_range_with_q_above_zero_keeps_it() -> None:
    assert described(select("*/*; q=0.1, image/jpeg; q=0.5", RENDERED)) == "image/jpeg"


def test_metadata_json_excluded_leaves_the_xml() -> None:
    assert described(select("application/dicom+json; q=0, */*", METADATA)) == (
        f'multipart/related; type="application/dicom+xml"; transfer-syntax={ELE}')


# -- Step 4: nothing selected ---------------------------------------------------------------------------------


def test_nothing_acceptable_is_none_for_the_resource_to_answer_406() -> None:
    assert select("application/zip", RENDERED) is None
    assert negotiate([], RENDERED) is None


@pytest.mark.parametrize("offers", [RENDERED, FRAME, METADATA])
def test_an_offer_the_item_cannot_be_sent_in_is_skipped(offers: tuple[Offer, ...]) -> None:
    """``can`` says what this item can really become; the range then takes its next offer."""
    first = negotiate([Acceptable("*/*", None)], offers)
    assert first is not None
    second = negotiate([Acceptable("*/*", None)], offers, can=lambda offer: offer != first)
    assert second != first
