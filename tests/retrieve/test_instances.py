"""Retrieve Transaction, Instance Resources (PS3.18 §10.4.1.1.1, Table 10.4.1-1; §10.4.4; §8.7).

Study, Series and Instance resources as ``multipart/related; type="application/dicom"`` (Default,
Table 10.4.4-1) and the Instance as bare ``application/dicom`` (single item only, note 3).
"""

from __future__ import annotations

import io
from urllib.parse import quote

import httpx
import numpy as np
import pytest
from pydicom import Dataset, dcmread

from dicomweb_origin.web import send
from tests.support.archive import LoadedArchive
from tests.support.http import (
    MULTIPART_DICOM,
    absolute,
    get_without_accept,
    media_params,
    parse_multipart,
    path_of,
    read_dicom,
)
from tests.support.reference import (
    BY_NAME,
    EBE,
    ELE,
    ILE,
    J2K_LOSSLESS,
    JLS_LOSSLESS,
    REFERENCES,
    RLE,
    Reference,
    dataset,
    ids,
    prepared_bytes,
    uids,
    where,
)

pytestmark = pytest.mark.anyio

ENCAPSULATED = where(lambda r: r.encapsulated)
DECODABLE = where(lambda r: r.encapsulated and r.decodable)
NORMALIZED = where(lambda r: not r.byte_identical)
LEVELS = ("study", "series", "instance")


def _dicom(syntax: str | None = None, q: float | None = None) -> str:
    value = MULTIPART_DICOM
    if syntax is not None:
        value += f"; transfer-syntax={syntax}"
    if q is not None:
        value += f"; q={q}"
    return value


@pytest.mark.parametrize("level", LEVELS)
async def test_instance_resources_are_multipart_related_application_dicom(
    client: httpx.AsyncClient, archive: LoadedArchive, level: str
) -> None:
    """§10.4.1.1.1: a study retrieves all its series' instances, a series all its instances."""
    name = "MR_small"  # its study also holds the other MR_small encodings and Clunie's samples
    response = await client.get(path_of(name, level), headers={"Accept": MULTIPART_DICOM})
    assert response.status_code == 200, response.text
    parts = parse_multipart(response, "application/dicom")
    u = uids(name)
    records = archive.instances(u.study, None if level == "study" else u.series)
    if level == "instance":
        records = [r for r in records if r.instance_uid == u.instance]
    assert len(parts) == len(records) > 0
    by_location = {part.location: part for part in parts}
    assert set(by_location) == {absolute(r.path) for r in records}, "Content-Location names each instance"
    for record in records:
        part = by_location[absolute(record.path)]
        ds = read_dicom(part.content)
        assert ds.SOPInstanceUID == record.instance_uid
        # §8.7.9: the transfer-syntax parameter describes the part; the default is Explicit VR LE.
        assert part.transfer_syntax == ds.file_meta.TransferSyntaxUID
        assert part.transfer_syntax == (record.transfer_syntax_uid if record.syntax.video else ELE)


async def test_study_with_many_series_returns_every_instance(client: httpx.AsyncClient,
                                                              archive: LoadedArchive) -> None:
    u = uids("SC_rgb")
    response = await client.get(f"studies/{u.study}", headers={"Accept": _dicom("*")})
    parts = parse_multipart(response, "application/dicom")
    records = archive.instances(u.study)
    assert len({r.series_uid for r in records}) >= 1
    assert [p.location for p in parts] == [absolute(r.path) for r in records]
    assert int(response.headers["content-length"]) == len(response.content)


@pytest.mark.parametrize("ref", REFERENCES, ids=ids(REFERENCES))
async def test_transfer_syntax_star_returns_the_stored_bytes(client: httpx.AsyncClient, archive: LoadedArchive,
                                                             ref: Reference) -> None:
    """§8.7.3.5.2: ``transfer-syntax=*`` sends what is stored, untouched."""
    response = await client.get(path_of(ref.name), headers={"Accept": _dicom("*")})
    assert response.status_code == 200
    (part,) = parse_multipart(response, "application/dicom")
    assert part.content == archive.stored_bytes(ref.name)
    assert part.transfer_syntax == ref.stored_syntax
    assert part.location == absolute(path_of(ref.name))
    if ref.byte_identical:
        assert part.content == prepared_bytes(ref.name)
    assert int(response.headers["content-length"]) == len(response.content)


@pytest.mark.parametrize("ref", ENCAPSULATED, ids=ids(ENCAPSULATED))
async def test_compressed_instance_in_its_stored_syntax_is_byte_identical(client: httpx.AsyncClient,
                                                                         ref: Reference) -> None:
    response = await client.get(path_of(ref.name), headers={"Accept": _dicom(ref.stored_syntax)})
    (part,) = parse_multipart(response, "application/dicom")
    assert part.content == prepared_bytes(ref.name)
    assert part.transfer_syntax == ref.stored_syntax


# Attributes that describe the encoding of the pixels, which decompression may change (PS3.18 Table
# 10.4.1-2 note 2; PS3.3 C.7.6.3.1.2 and C.7.6.1.1.5): Photometric Interpretation, Planar Configuration,
# the Lossy Image Compression attributes, and an icon whose encapsulated pixels would no longer match.
ENCODING_TAGS = frozenset({0x00280004, 0x00280006, 0x00282110, 0x00282112, 0x00282114, 0x00880200})


def _assert_equal_elements(retrieved: Dataset, source: Dataset, path: str = "", decompressed: bool = False) -> None:
    for element in source:
        if element.tag.group == 0x0002 or element.tag.element == 0 or element.tag == 0x7FE00010:
            continue
        if decompressed and not path and element.tag in ENCODING_TAGS:
            continue
        assert element.tag in retrieved, f"{path}{element.tag} missing"
        other = retrieved[element.tag]
        if element.VR == "SQ":
            assert len(other.value) == len(element.value)
            for number, (a, b) in enumerate(zip(other.value, element.value, strict=True), start=1):
                _assert_equal_elements(a, b, f"{path}{element.tag}/{number}/")
        else:
            assert other.value == element.value, f"{path}{element.tag}"


@pytest.mark.parametrize("ref", NORMALIZED, ids=ids(NORMALIZED))
async def test_implicit_and_big_endian_sources_are_sent_element_by_element_equal(client: httpx.AsyncClient,
                                                                                ref: Reference) -> None:
    """§8.7.3: never Implicit VR or Big Endian on the web; the content is the source's, element by element."""
    response = await client.get(path_of(ref.name), headers={"Accept": MULTIPART_DICOM})
    (part,) = parse_multipart(response, "application/dicom")
    assert part.transfer_syntax == ELE
    retrieved = read_dicom(part.content)
    assert retrieved.file_meta.TransferSyntaxUID == ELE
    source = dataset(ref.name)
    _assert_equal_elements(retrieved, source)
    if ref.has_pixels:
        np.testing.assert_array_equal(retrieved.pixel_array, source.pixel_array)


@pytest.mark.parametrize("ref", DECODABLE, ids=ids(DECODABLE))
async def test_no_transfer_syntax_parameter_means_explicit_le_decompressed(client: httpx.AsyncClient,
                                                                           ref: Reference) -> None:
    """§8.7.3.4: without a parameter the default, Explicit VR LE, is sent: pixels as pydicom decodes them."""
    response = await client.get(path_of(ref.name), headers={"Accept": MULTIPART_DICOM})
    assert response.status_code == 200
    (part,) = parse_multipart(response, "application/dicom")
    assert part.transfer_syntax == ELE
    retrieved = read_dicom(part.content)
    assert retrieved.file_meta.TransferSyntaxUID == ELE
    assert not retrieved["PixelData"].is_undefined_length
    source = dataset(ref.name)
    np.testing.assert_array_equal(retrieved.pixel_array, source.pixel_array)
    if ref.lossy:  # PS3.3 C.7.6.1.1.5: once lossy, always lossy
        assert retrieved.LossyImageCompression == "01"
    assert retrieved.SOPInstanceUID == source.SOPInstanceUID
    _assert_equal_elements(retrieved, source, decompressed=True)


async def test_bare_application_dicom_is_for_the_instance_resource_only(client: httpx.AsyncClient) -> None:
    """§10.4.4 note 3: single-part ``application/dicom`` only for a single item; else 406 (§8.7.8.1)."""
    response = await client.get(path_of("CT_small"), headers={"Accept": "application/dicom"})
    assert response.status_code == 200
    media_type, params = media_params(response.headers["content-type"])
    assert media_type == "application/dicom" and params["transfer-syntax"] == ELE
    assert response.content == prepared_bytes("CT_small")
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.headers["content-location"] == absolute(path_of("CT_small"))
    for level in ("study", "series"):
        response = await client.get(path_of("CT_small", level), headers={"Accept": "application/dicom"})
        assert response.status_code == 406, level


async def test_bare_application_dicom_with_transfer_syntax(client: httpx.AsyncClient) -> None:
    response = await client.get(path_of("MR_small"),
                                headers={"Accept": f"application/dicom; transfer-syntax={RLE}"})
    assert response.status_code == 200
    assert media_params(response.headers["content-type"]) == ("application/dicom", {"transfer-syntax": RLE})
    ds = read_dicom(response.content)
    assert ds.file_meta.TransferSyntaxUID == RLE
    np.testing.assert_array_equal(ds.pixel_array, dataset("MR_small").pixel_array)


async def test_a_study_with_bare_and_multipart_types_uses_the_multipart_one(client: httpx.AsyncClient) -> None:
    """§10.4.4 note 3: single-part types are ignored for a multi-item resource, the rest still applies."""
    accept = f"application/dicom, {_dicom(q=0.5)}"
    response = await client.get(path_of("CT_small", "study"), headers={"Accept": accept})
    assert response.status_code == 200
    parse_multipart(response, "application/dicom")


@pytest.mark.parametrize(("accept", "expected"), [
    (f"{_dicom(JLS_LOSSLESS, 0.5)}, {_dicom(J2K_LOSSLESS)}", J2K_LOSSLESS),
    (f"{_dicom(JLS_LOSSLESS)}, {_dicom(J2K_LOSSLESS, 0.5)}", JLS_LOSSLESS),
    (f"{_dicom(J2K_LOSSLESS, 0.2)}, {_dicom(RLE, 0.9)}, {_dicom(JLS_LOSSLESS, 0.5)}", RLE),
    (f"{_dicom('1.2.840.10008.1.2.4.102')}, {_dicom(RLE, 0.1)}", RLE),  # video for a still image: unsupported
    (f"{_dicom('1.2.3.4.5')}, {_dicom(q=0.3)}", ELE),  # unknown syntax ignored
    (f"{_dicom(ILE)}, {_dicom(EBE)}, {_dicom(JLS_LOSSLESS, 0.001)}", JLS_LOSSLESS),  # never on the web (§8.7.3)
])
async def test_several_acceptable_types_are_honoured_in_q_order(client: httpx.AsyncClient, accept: str,
                                                                expected: str) -> None:
    """§8.7.8.1: the supported type with the highest q wins (missing q means 1)."""
    response = await client.get(path_of("MR_small"), headers={"Accept": accept})
    assert response.status_code == 200, response.text
    (part,) = parse_multipart(response, "application/dicom")
    assert part.transfer_syntax == expected
    ds = read_dicom(part.content)
    assert ds.file_meta.TransferSyntaxUID == expected
    np.testing.assert_array_equal(ds.pixel_array, dataset("MR_small").pixel_array)


async def test_per_part_selection_in_a_series_of_mixed_encodings(client: httpx.AsyncClient,
                                                                 archive: LoadedArchive) -> None:
    """§8.6.1.2 / §8.7.8: each part gets its own transfer syntax; ``*`` keeps every stored one."""
    u = uids("MR_small")
    response = await client.get(f"studies/{u.study}/series/{u.series}", headers={"Accept": _dicom("*")})
    parts = parse_multipart(response, "application/dicom")
    stored = {absolute(r.path): r.transfer_syntax_uid for r in archive.instances(u.study, u.series)}
    assert {p.location: p.transfer_syntax for p in parts} == stored
    assert len(set(stored.values())) >= 4


async def test_etag_and_if_none_match_give_304(client: httpx.AsyncClient) -> None:
    """RFC 9110 §13.1.2 conditional GET (PS3.18 §8.5: 304 Not Modified)."""
    url, headers = path_of("CT_small"), {"Accept": MULTIPART_DICOM}
    first = await client.get(url, headers=headers)
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    again = await client.get(url, headers=headers)
    assert again.headers["etag"] == etag, "a stored instance never changes: a stable ETag"
    cached = await client.get(url, headers=headers | {"If-None-Match": etag})
    assert cached.status_code == 304 and cached.content == b""
    weak = await client.get(url, headers=headers | {"If-None-Match": f'"nope", W/{etag}'})
    assert weak.status_code == 304
    other = await client.get(url, headers=headers | {"If-None-Match": '"something else"'})
    assert other.status_code == 200
    changed = await client.get(url, headers={"Accept": _dicom(RLE)})
    assert changed.headers["etag"] != etag, "another representation, another ETag"


@pytest.mark.parametrize("level", LEVELS)
async def test_unknown_uids_are_404(client: httpx.AsyncClient, level: str) -> None:
    """Table 10.4.3-1: 404 when the target resource does not exist."""
    u = uids("CT_small")
    paths = {
        "study": "studies/1.2.3.999",
        "series": f"studies/{u.study}/series/1.2.3.999",
        "instance": f"studies/{u.study}/series/{u.series}/instances/1.2.3.999",
    }
    response = await client.get(paths[level], headers={"Accept": MULTIPART_DICOM})
    assert response.status_code == 404
    assert response.text


async def test_an_instance_under_the_wrong_series_or_study_is_404(client: httpx.AsyncClient) -> None:
    a, b = uids("CT_small"), uids("rtplan")
    for path in (f"studies/{a.study}/series/{b.series}/instances/{a.instance}",
                 f"studies/{b.study}/series/{a.series}/instances/{a.instance}",
                 f"studies/{b.study}/series/{a.series}"):
        response = await client.get(path, headers={"Accept": MULTIPART_DICOM})
        assert response.status_code == 404, path


@pytest.mark.parametrize("bad", ["abc", "1.2.x", "1..2", "1.2.", "1" * 65, "1.2.3.4.5.6.7.8.9." + "1" * 50])
@pytest.mark.parametrize("level", LEVELS)
async def test_malformed_uids_are_400(client: httpx.AsyncClient, level: str, bad: str) -> None:
    """PS3.5 §9.1: digits and dots, at most 64 characters; otherwise 400 (Table 10.4.3-1).

    Leading zeros in a component are accepted (tests/test_uids.py): real modalities write them.
    """
    u = uids("CT_small")
    paths = {
        "study": f"studies/{bad}",
        "series": f"studies/{u.study}/series/{bad}",
        "instance": f"studies/{u.study}/series/{u.series}/instances/{bad}",
    }
    response = await client.get(paths[level], headers={"Accept": MULTIPART_DICOM})
    assert response.status_code == 400, response.text


@pytest.mark.parametrize("level", LEVELS)
async def test_no_accept_header_is_406(client: httpx.AsyncClient, level: str) -> None:
    """§8.7.5: a request that may get a payload without an Accept header gets 406."""
    response = await get_without_accept(client, path_of("CT_small", level))
    assert response.status_code == 406


@pytest.mark.parametrize("accept", [
    "application/zip",
    "text/csv",
    "multipart/related; type=\"application/zip\"",
    _dicom("1.2.3.4"),
    _dicom(ILE),
    _dicom(EBE),
    "multipart/related; type=\"application/dicom\"; q=0",
])
async def test_unsupported_types_are_406(client: httpx.AsyncClient, accept: str) -> None:
    """§8.7.8.1: none of the Acceptable Media Types supported, no wildcard: 406."""
    response = await client.get(path_of("CT_small"), headers={"Accept": accept})
    assert response.status_code == 406, response.headers.get("content-type")


@pytest.mark.parametrize("accept", [
    f"{MULTIPART_DICOM}, image/png",
    "application/dicom, image/gif; q=0.5",
    f"{MULTIPART_DICOM}, text/html",
])
async def test_dicom_and_rendered_types_together_are_400(client: httpx.AsyncClient, accept: str) -> None:
    """§8.7.5 / §8.3.3.1: Acceptable Media Types are all DICOM or all rendered."""
    response = await client.get(path_of("CT_small"), headers={"Accept": accept})
    assert response.status_code == 400


async def test_mixing_in_the_accept_query_parameter_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get(path_of("CT_small"), params={"accept": "image/png"},
                                headers={"Accept": MULTIPART_DICOM})
    assert response.status_code == 400


async def test_accept_query_parameter_takes_precedence_over_the_header(client: httpx.AsyncClient) -> None:
    """§8.3.3.1 / §8.7.8.1 step 2: the ``accept`` query parameter before the Accept header."""
    query = _dicom(JLS_LOSSLESS)
    response = await client.get(path_of("MR_small"), params={"accept": query}, headers={"Accept": "*/*"})
    (part,) = parse_multipart(response, "application/dicom")
    assert part.transfer_syntax == JLS_LOSSLESS
    response = await client.get(path_of("MR_small"), params={"accept": query},
                                headers={"Accept": _dicom(RLE)})
    (part,) = parse_multipart(response, "application/dicom")
    assert part.transfer_syntax == JLS_LOSSLESS
    # percent-encoded by hand, as a browser link would carry it
    raw = f"{path_of('MR_small')}?accept={quote(_dicom(RLE), safe='')}"
    response = await client.get(raw, headers={"Accept": "*/*"})
    (part,) = parse_multipart(response, "application/dicom")
    assert part.transfer_syntax == RLE


@pytest.mark.parametrize("value", ["*/*", "application/*", 'multipart/related; type="application/*"',
                                   'multipart/related; type="*/*"'])
async def test_wildcards_in_the_accept_query_parameter_are_400(client: httpx.AsyncClient, value: str) -> None:
    """§8.3.3.1: the ``accept`` query parameter has no wildcards."""
    response = await client.get(path_of("CT_small"), params={"accept": value}, headers={"Accept": "*/*"})
    assert response.status_code == 400


@pytest.mark.parametrize("accept", ["*/*", "application/*", "multipart/related", "multipart/*"])
async def test_wildcards_in_the_header_match_the_default(client: httpx.AsyncClient, accept: str) -> None:
    """§8.7.7: ``*/*`` matches the category default: multipart/related application/dicom, Explicit VR LE."""
    response = await client.get(path_of("MR_small_RLE", "series"), headers={"Accept": accept})
    assert response.status_code == 200
    parts = parse_multipart(response, "application/dicom")
    assert parts and all(p.transfer_syntax == ELE for p in parts)


async def test_invalid_accept_values_are_ignored(client: httpx.AsyncClient) -> None:
    """§8.7.7: invalid or unsupported values in the header are ignored, not an error."""
    accept = f"garbage, ;;;, image/, {_dicom(RLE)}; transfer-syntax=1.2.840.10008.1.2.5, {_dicom(q=0.1)}"
    response = await client.get(path_of("MR_small"), headers={"Accept": accept})
    assert response.status_code == 200
    (part,) = parse_multipart(response, "application/dicom")
    assert part.transfer_syntax == ELE  # the range with a repeated parameter is invalid (§8.7.3.5.2)


async def test_instance_level_octet_stream_means_the_bulkdata_resource(client: httpx.AsyncClient) -> None:
    """Table 10.4.4-1 note 2: ``multipart/related; type="application/octet-stream"`` on an Instance resource."""
    response = await client.get(path_of("CT_small"),
                                headers={"Accept": 'multipart/related; type="application/octet-stream"'})
    assert response.status_code == 200
    parts = parse_multipart(response, "application/octet-stream")
    bulk = await client.get(f"{path_of('CT_small')}/bulkdata",
                            headers={"Accept": 'multipart/related; type="application/octet-stream"'})
    assert [(p.location, p.content) for p in parts] == [(p.location, p.content) for p in parse_multipart(bulk)]


async def test_lossy_source_keeps_lossy_flag_when_decompressed(client: httpx.AsyncClient) -> None:
    response = await client.get(path_of("JPGExtended"), headers={"Accept": MULTIPART_DICOM})
    (part,) = parse_multipart(response, "application/dicom")
    ds = read_dicom(part.content)
    assert ds.LossyImageCompression == "01"
    assert ds.file_meta.TransferSyntaxUID == ELE


async def test_head_has_the_headers_and_no_body(client: httpx.AsyncClient) -> None:
    response = await client.head(path_of("CT_small"), headers={"Accept": "application/dicom"})
    assert response.status_code == 200
    assert response.content == b""
    assert media_params(response.headers["content-type"])[0] == "application/dicom"


def test_reference_names_are_unique() -> None:
    assert len(BY_NAME) == len(REFERENCES)
    assert dcmread(io.BytesIO(prepared_bytes("CT_small"))).SOPInstanceUID == uids("CT_small").instance


async def test_an_undecodable_instance_fails_cleanly(client: httpx.AsyncClient) -> None:
    """A stored bitstream no decoder accepts: an error status with a reason, never a cut-off stream."""
    name = "JPEG_lossy_undecodable"
    for accept in (MULTIPART_DICOM, "application/dicom"):
        response = await client.get(path_of(name), headers={"Accept": accept})
        assert response.status_code == 406, accept
        assert "decode" in response.text
    stored = await client.get(path_of(name), headers={"Accept": _dicom("*")})
    assert stored.status_code == 200
    (part,) = parse_multipart(stored, "application/dicom")
    assert part.content == prepared_bytes(name)


async def test_an_undecodable_instance_is_omitted_from_its_series_with_206(client: httpx.AsyncClient,
                                                                          archive: LoadedArchive) -> None:
    """Table 10.4.3-1: 206 when the payload has some but not all targets; a Warning says why."""
    u = uids("JPEG_lossy_undecodable")
    response = await client.get(f"studies/{u.study}/series/{u.series}", headers={"Accept": MULTIPART_DICOM})
    assert response.status_code == 206
    assert response.headers["warning"].startswith("299 ")
    parts = parse_multipart(response, "application/dicom")
    records = archive.instances(u.study, u.series)
    assert len(parts) == len(records) - 1
    assert absolute(u.path) not in {p.location for p in parts}


async def test_a_browser_accept_header_does_not_spoil_the_accept_query_parameter(client: httpx.AsyncClient) -> None:
    """§8.3.3.1: a link with ?accept= opened by a browser (Accept: text/html, ..., */*) is served."""
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
    response = await client.get(path_of("CT_small") + "/metadata", params={"accept": "application/dicom+json"},
                                headers={"Accept": browser})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/dicom+json"


@pytest.fixture
def stream_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every body large enough to stream (the writer's streaming path, not the one-shot one)."""
    monkeypatch.setattr(send, "SMALL_BODY", 0)


@pytest.mark.usefixtures("stream_everything")
async def test_streamed_multipart_of_stored_bytes_has_content_length(client: httpx.AsyncClient,
                                                                     archive: LoadedArchive) -> None:
    """§8.6: Content-Length when no content coding is applied (all part lengths are known up front)."""
    u = uids("MR_small")
    response = await client.get(f"studies/{u.study}/series/{u.series}", headers={"Accept": _dicom("*")})
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(response.content)
    parts = parse_multipart(response, "application/dicom")
    assert [p.content for p in parts] == [archive.blobs.read(r.blob_key) for r in archive.instances(u.study, u.series)]


@pytest.mark.usefixtures("stream_everything")
async def test_streamed_multipart_of_transcoded_parts(client: httpx.AsyncClient) -> None:
    u = uids("MR_small")
    response = await client.get(f"studies/{u.study}/series/{u.series}", headers={"Accept": _dicom(RLE)})
    assert response.status_code == 200
    parts = parse_multipart(response, "application/dicom")
    assert parts and all(p.transfer_syntax == RLE for p in parts)
    for part in parts:
        assert read_dicom(part.content).file_meta.TransferSyntaxUID == RLE


@pytest.mark.usefixtures("stream_everything")
async def test_a_part_failing_after_the_status_line_is_left_out_of_a_well_formed_body(
    client: httpx.AsyncClient, archive: LoadedArchive
) -> None:
    """Past the first produced part a failure cannot change the status any more: the part is left out."""
    u = uids("JPEG_lossy_undecodable")
    records = archive.instances(u.study, u.series)
    assert records[0].instance_uid != u.instance, "the undecodable instance must not be the first part"
    response = await client.get(f"studies/{u.study}/series/{u.series}", headers={"Accept": MULTIPART_DICOM})
    assert response.status_code == 200
    parts = parse_multipart(response, "application/dicom")
    assert len(parts) == len(records) - 1
