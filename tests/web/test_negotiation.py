"""Content negotiation (PS3.18 §8.3.3, §8.7.5-§8.7.9, §8.8): parsing, then selection per resource."""

from __future__ import annotations

import httpx
import pytest

from dicomweb_origin.errors import BadRequest, NotAcceptable
from dicomweb_origin.model.media import Acceptable
from dicomweb_origin.negotiation import acceptable_media_types, check_charset, parse_media_range, split_list
from tests.support.http import (
    DICOM_JSON,
    MULTIPART_DICOM,
    MULTIPART_OCTET,
    media_params,
    parse_multipart,
    path_of,
    stow,
)
from tests.support.reference import ELE, J2K_LOSSLESS, JLS_LOSSLESS, RLE, source_path

# -- parsing (§8.7.7, §8.7.3.5) -----------------------------------------------------------------------


def test_split_list_keeps_commas_inside_quotes() -> None:
    assert split_list('a/b; x="1,2", c/d, , e/f') == ['a/b; x="1,2"', "c/d", "e/f"]


def test_parse_media_range_lower_cases_and_unquotes() -> None:
    assert parse_media_range('Multipart/Related; Type="application/dicom"; boundary=xyz') == (
        "multipart/related", {"type": "application/dicom", "boundary": "xyz"})
    assert parse_media_range("not a type") is None
    assert parse_media_range("a/b; transfer-syntax=1; transfer-syntax=2") is None  # repeated (§8.7.3.5.2)


def test_multipart_type_parameter_names_the_part_type() -> None:
    (a,) = acceptable_media_types(f"{MULTIPART_DICOM}; transfer-syntax={RLE}; q=0.7", [])
    assert a == Acceptable("application/dicom", True, RLE, 0.7, False)


def test_bare_and_wildcard_ranges() -> None:
    bare, image, star = acceptable_media_types("application/dicom, */*; q=0.2, image/*; q=0.5", [])
    assert (bare.media_type, bare.multipart) == ("application/dicom", False)
    assert (image.media_type, image.multipart, image.q) == ("image/*", None, 0.5)
    assert (star.media_type, star.multipart, star.q) == ("*/*", None, 0.2)


def test_order_is_by_q_then_as_written() -> None:
    accept = "a/one; q=0.5, a/two, a/three; q=0.5, a/four; q=1.0"
    assert [a.media_type for a in acceptable_media_types(accept, [])] == ["a/two", "a/four", "a/one", "a/three"]


def test_q_zero_means_not_acceptable_and_bad_q_values_are_ignored() -> None:
    accept = "a/zero; q=0, a/big; q=1.5, a/long; q=0.1234, a/ok; q=0.125"
    result = acceptable_media_types(accept, [])
    # q=0 entries are kept last: they exclude what they name from wider ranges (§8.7.8.1)
    assert [(a.media_type, a.q) for a in result] == [("a/ok", 0.125), ("a/zero", 0.0)]


def test_legacy_names_are_aliases() -> None:
    """§8.7.3.3.2 notes: ``image/x-dicom-rle`` and ``image/x-jls`` from older peers."""
    rle, jls = acceptable_media_types('multipart/related; type="image/x-dicom-rle", image/x-jls', [])
    assert rle.media_type == "image/dicom-rle" and jls.media_type == "image/jls"


def test_query_parameter_entries_come_first_and_are_marked() -> None:
    """§8.7.8.1: the ``accept`` query parameter before the header."""
    result = acceptable_media_types("*/*", [f"{MULTIPART_DICOM}; q=0.1", "application/dicom"])
    assert [(a.media_type, a.from_query) for a in result] == [
        ("application/dicom", True), ("application/dicom", True), ("*/*", False)]


def test_no_accept_header_is_not_acceptable() -> None:
    """§8.7.5: the Accept header shall be present; the query parameter does not replace it."""
    with pytest.raises(NotAcceptable):
        acceptable_media_types(None, ["application/dicom"])


@pytest.mark.parametrize("value", ["*/*", "image/*", 'multipart/related; type="image/*"', "not-a-type"])
def test_query_parameter_wildcards_and_garbage_are_bad_requests(value: str) -> None:
    with pytest.raises(BadRequest):
        acceptable_media_types("*/*", [value])


@pytest.mark.parametrize("header", ["image/png, application/dicom", f"{MULTIPART_DICOM}, text/html",
                                    "application/dicom+json, application/pdf"])
def test_dicom_and_rendered_together_are_bad_requests(header: str) -> None:
    with pytest.raises(BadRequest):
        acceptable_media_types(header, [])


def test_rendered_type_with_q_zero_does_not_count_as_mixing() -> None:
    result = acceptable_media_types("application/dicom, image/png; q=0", [])
    assert [a.media_type for a in result if a.q > 0] == ["application/dicom"]


def test_ambiguous_image_types_are_not_rendered_only() -> None:
    """``image/jpeg`` is both a rendered type and a compressed bulk data type (Table 8.7.3-5)."""
    result = acceptable_media_types(f"{MULTIPART_OCTET}, image/jpeg", [])
    assert [a.media_type for a in result] == ["application/octet-stream", "image/jpeg"]


@pytest.mark.parametrize("query", [[], ["utf-8"], ["UTF-8", '"ISO_IR 192"']])
def test_utf8_charset_is_accepted(query: list[str]) -> None:
    check_charset(query, None)
    check_charset(query, "utf-8")


def test_unsupported_charset_query_parameter_is_a_bad_request() -> None:
    """§8.3.3.2: invalid or unsupported values of the ``charset`` query parameter are a 400."""
    with pytest.raises(BadRequest):
        check_charset(["latin1"], None)


@pytest.mark.parametrize("header", ["iso-8859-1", "utf-8;q=0", "gb18030, iso-8859-1;q=0.5"])
def test_accept_charset_without_utf8_is_not_acceptable(header: str) -> None:
    """§8.8.5: text that cannot be transcoded into an acceptable charset: 406."""
    with pytest.raises(NotAcceptable):
        check_charset([], header)


@pytest.mark.parametrize("header", ["\xff", "utf-8;q=abc", "a b c, ;q=1"])
def test_accept_charset_with_only_invalid_entries_is_ignored(header: str) -> None:
    """§8.7.7: invalid values are ignored; what remains puts no constraint on the response."""
    check_charset([], header)


def test_invalid_entries_do_not_hide_a_valid_refusal() -> None:
    with pytest.raises(NotAcceptable):
        check_charset([], "\xff, iso-8859-1")


@pytest.mark.parametrize("header", ['multipart/related; type="image/jls", image/png', "image/png, image/dicom-rle"])
def test_bulk_data_only_types_with_rendered_types_are_a_bad_request(header: str) -> None:
    """§8.7.5: JPEG-LS and RLE are never rendered types; mixing them with rendered ones is a 400."""
    with pytest.raises(BadRequest, match="together"):
        acceptable_media_types(header, [])


def test_an_unclosed_quote_makes_a_media_range_invalid() -> None:
    assert parse_media_range('multipart/related; type="application/dicom+xml') is None
    with pytest.raises(BadRequest, match="invalid media type"):
        acceptable_media_types("*/*", ['multipart/related; type="application/dicom+xml'])


# -- selection per resource category (§8.7.8.1) over HTTP -------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(("suffix", "accept", "expected"), [
    ("", "*/*", 'multipart/related; type="application/dicom"'),
    ("/metadata", "*/*", "application/dicom+json"),
    ("/pixeldata", "*/*", 'multipart/related; type="application/octet-stream"'),
    ("/frames/1", "*/*", 'multipart/related; type="application/octet-stream"'),
    ("/bulkdata", "*/*", 'multipart/related; type="application/octet-stream"'),
    ("/metadata", "application/*", "application/dicom+json"),
])
async def test_wildcard_selects_the_default_of_each_resource(client: httpx.AsyncClient, suffix: str, accept: str,
                                                             expected: str) -> None:
    """§8.7.7: ``*/*`` matches the default media type of the target's category (Table 10.4.4-1)."""
    response = await client.get(f"{path_of('MR_small_RLE')}{suffix}", headers={"Accept": accept})
    assert response.status_code == 200, (suffix, response.text)
    media_type, params = media_params(response.headers["content-type"])
    got = f'{media_type}; type="{params["type"]}"' if media_type == "multipart/related" else media_type
    assert got == expected
    if media_type == "multipart/related":
        for part in parse_multipart(response):
            assert part.transfer_syntax in (None, ELE)


@pytest.mark.anyio
async def test_image_wildcard_on_frames_serves_the_stored_bitstream(client: httpx.AsyncClient) -> None:
    """``image/*`` matches the stored media type of a compressed frame (§8.7.8.1 step 3)."""
    response = await client.get(f"{path_of('MR_small_jp2klossless')}/frames/1",
                                headers={"Accept": 'multipart/related; type="image/*"'})
    assert response.status_code == 200
    (part,) = parse_multipart(response, "image/jp2")
    assert part.transfer_syntax == J2K_LOSSLESS


@pytest.mark.anyio
async def test_frames_in_the_first_supported_type_in_q_order(client: httpx.AsyncClient) -> None:
    accept = (f'multipart/related; type="image/jp2"; q=0.4, multipart/related; type="image/jls"; q=0.9, '
              f'{MULTIPART_OCTET}; q=0.5')
    response = await client.get(f"{path_of('MR_small')}/frames/1", headers={"Accept": accept})
    (part,) = parse_multipart(response, "image/jls")
    assert part.transfer_syntax == JLS_LOSSLESS


@pytest.mark.anyio
async def test_unsupported_types_fall_through_to_the_next(client: httpx.AsyncClient) -> None:
    accept = f'multipart/related; type="image/jpx", {MULTIPART_OCTET}; q=0.1'
    response = await client.get(f"{path_of('MR_small')}/frames/1", headers={"Accept": accept})
    assert response.status_code == 200
    parse_multipart(response, "application/octet-stream")


@pytest.mark.anyio
@pytest.mark.parametrize(("suffix", "accept"), [
    ("/metadata", MULTIPART_DICOM),
    ("/frames/1", DICOM_JSON),
    ("/pixeldata", "application/dicom"),
    ("", DICOM_JSON),
])
async def test_a_type_of_another_resource_is_406(client: httpx.AsyncClient, suffix: str, accept: str) -> None:
    response = await client.get(f"{path_of('MR_small')}{suffix}", headers={"Accept": accept})
    assert response.status_code == 406, suffix


@pytest.mark.anyio
async def test_not_acceptable_response_says_why(client: httpx.AsyncClient) -> None:
    response = await client.get(path_of("MR_small"), headers={"Accept": "application/zip"})
    assert response.status_code == 406
    assert response.headers["content-type"].startswith("text/plain")
    assert "406" in response.text


@pytest.mark.anyio
async def test_vary_names_the_negotiated_headers(client: httpx.AsyncClient) -> None:
    response = await client.get(path_of("MR_small"), headers={"Accept": MULTIPART_DICOM})
    assert "Accept" in response.headers["vary"]
    response = await client.get(f"{path_of('MR_small')}/metadata", headers={"Accept": DICOM_JSON})
    assert {"Accept", "Accept-Encoding"} <= {v.strip() for v in response.headers["vary"].split(",")}


@pytest.mark.anyio
@pytest.mark.parametrize("host", ['evil"x', "a b", "x/../y", "<script>", "h\\x"])
async def test_a_hostile_host_header_never_reaches_the_links(client: httpx.AsyncClient, host: str) -> None:
    """A Host that is no host[:port] is refused (RFC 9112 §3.2: 400), never spliced into links nor echoed."""
    for accept in ("application/dicom+json", 'multipart/related; type="application/dicom+xml"'):
        response = await client.get(path_of("CT_small") + "/metadata", headers={"Accept": accept, "Host": host})
        assert response.status_code == 400
        assert response.text == "400 malformed Host header\n"



@pytest.mark.anyio
@pytest.mark.parametrize("accept, status, served", [
    # §8.7.8.1: each representation gets the q of the most specific range that matches it.
    ("application/dicom+json;q=0, */*", 200, "multipart/related"),  # JSON excluded: the other metadata type
    ('application/dicom+json;q=0, multipart/related; type="application/dicom+xml";q=0, */*', 406, None),
    ("multipart/related", 200, "multipart/related"),  # the only multipart metadata type is XML
])
async def test_metadata_honours_q_zero_exclusions(client: httpx.AsyncClient, accept: str, status: int,
                                                   served: str | None) -> None:
    response = await client.get(path_of("CT_small") + "/metadata", headers={"Accept": accept})
    assert response.status_code == status
    if served:
        assert response.headers["content-type"].startswith(served)


@pytest.mark.anyio
@pytest.mark.parametrize("accept, status, served", [
    (f"{MULTIPART_DICOM}; q=0, */*", 406, "text/plain"),  # */* means the default, which q=0 excludes
    (f"{MULTIPART_OCTET}, {MULTIPART_DICOM}; q=0.5", 200, "multipart/related; type=\"application/octet-stream\""),
    (f"{MULTIPART_OCTET}; q=0.5, {MULTIPART_DICOM}", 200, "multipart/related; type=\"application/dicom\""),
])
async def test_instances_choose_dicom_or_bulk_data_by_q(client: httpx.AsyncClient, accept: str, status: int,
                                                         served: str) -> None:
    """Table 10.4.4-1 note 2: octet-stream on an Instance resource is its Bulkdata resource, chosen by q."""
    response = await client.get(path_of("CT_small"), headers={"Accept": accept})
    assert response.status_code == status
    assert response.headers["content-type"].startswith(served)


@pytest.mark.parametrize("header, acceptable", [
    ("utf-8;q=0, *", False),  # the explicit entry is more specific than the wildcard
    ("*;q=0, utf-8", True),
    ("iso-8859-1, *;q=0.1", True),
    ("iso-8859-1", False),
    ("UTF-8", True),
])
def test_accept_charset_most_specific_entry_wins(header: str, acceptable: bool) -> None:
    """§8.8.5 with RFC 9110 §12.5.2: UTF-8's q is that of its own entry, else of ``*``."""
    if acceptable:
        check_charset([], header)
    else:
        with pytest.raises(NotAcceptable):
            check_charset([], header)


def test_an_accept_header_with_too_many_ranges_is_400() -> None:
    """Bounded work per request: selection weighs each range against each instance."""
    with pytest.raises(BadRequest, match="too many media ranges"):
        acceptable_media_types(", ".join(f"a/t{n}" for n in range(65)), [])
    assert len(acceptable_media_types(", ".join(f"a/t{n}" for n in range(64)), [])) == 64


# -- 406 texts: what was asked, what is available, nothing internal ----------------------------------------


@pytest.mark.anyio
async def test_a_frame_that_does_not_decode_is_406_naming_it_and_what_is_available(
        empty_client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """12-bit JPEG Extended relabelled 8-bit: 406 naming the frame, why, and what can still be had.

    STOW refuses such a frame (its header disagrees with Bits Allocated); an archive written before ingest
    compared frame headers holds it, so it is stored here as then (without the header check).
    """
    import io

    from pydicom import dcmread

    from dicomweb_origin.dicom import reader

    ds = dcmread(source_path("JPEG-lossy.dcm"))
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    out = io.BytesIO()
    ds.save_as(out)
    with monkeypatch.context() as patch:
        patch.setattr(reader, "_check_headers", lambda *args: None)
        stored = await stow(empty_client, out.getvalue())
    assert stored.status_code == 200, stored.text
    instance = f"studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    for suffix, accept in (("/frames/1", "application/octet-stream"), ("/frames/1/rendered", "image/png"),
                           ("/pixeldata", "application/octet-stream"), ("", "application/dicom; transfer-syntax="
                                                                           "1.2.840.10008.1.2.1")):
        response = await empty_client.get(instance + suffix, headers={"Accept": accept})
        assert response.status_code == 406, (suffix, response.text)
        assert " at 0x" not in response.text and "object" not in response.text, (suffix, response.text)
        assert "where Bits Allocated says 8" in response.text, (suffix, response.text)
    frame = await empty_client.get(instance + "/frames/1", headers={"Accept": "application/octet-stream"})
    assert frame.text.startswith(f"406 frame 1 of instance {ds.SOPInstanceUID} (stored as JPEG Extended"
                                 " (Process 2 & 4)) does not decode: "), frame.text
    assert frame.text.endswith("; it can be retrieved only as stored: image/jpeg;"
                               " transfer-syntax=1.2.840.10008.1.2.4.51\n"), frame.text


def test_codec_errors_reach_the_client_without_python_reprs_or_errno() -> None:
    """Pillow quotes a BytesIO repr ("cannot identify image file <_io.BytesIO object at 0x...>"): never sent."""
    from dicomweb_origin.errors import NotAcceptable

    error = NotAcceptable("frame 1 does not decode: pillow: cannot identify image file"
                          " <_io.BytesIO object at 0x7f3a5c1d2e80>; [Errno 28] No space left on device")
    assert " at 0x" not in error.message and "_io.BytesIO" not in error.message and "Errno" not in error.message
    assert "cannot identify image file" in error.message and "No space left on device" in error.message
