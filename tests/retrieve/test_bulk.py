"""Bulk Data, Pixel Data and Frames (PS3.18 §10.4.1.1.5-6, Tables 10.4.1.5-1 / 10.4.1.6-1; §8.7.3.3).

Uncompressed bulk data is ``application/octet-stream`` in Explicit VR Little Endian (§8.7.3.3.1):
the raw little-endian value bytes. Compressed bulk data is the bare bitstream of one frame per part,
no item tags (§8.7.3.3.2). The transcoding matrix asks every reference of the matrix for every
transfer syntax, as an instance (``application/dicom; transfer-syntax=X``) and as frames
(``multipart/related; type="image/jls"`` ...), and decodes the answers with pydicom: exact for
lossless syntaxes, a PSNR bound for lossy ones.
"""

from __future__ import annotations

import copy
import io
import math
from typing import Any

import httpx
import numpy as np
import pytest
from pydicom import Dataset, FileMetaDataset, dcmread
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels.utils import pack_bits
from pydicom.uid import UID

from dicomweb_origin.dicom import transcode
from tests.support.archive import LoadedArchive
from tests.support.http import (
    MULTIPART_DICOM,
    MULTIPART_OCTET,
    absolute,
    media_params,
    parse_multipart,
    path_of,
    read_dicom,
    stow,
)
from tests.support.reference import (
    COMPRESSED_SYNTAXES,
    DEFLATE,
    EBE,
    ELE,
    H264,
    HTJ2K_LOSSLESS,
    ILE,
    J2K,
    J2K_LOSSLESS,
    JLS_LOSSLESS,
    JPEG_BASELINE,
    JPEG_SV1,
    LOSSY_SYNTAXES,
    MATRIX_SYNTAXES,
    MEDIA_TYPE,
    MPEG2,
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

WITH_PIXELS = where(lambda r: r.has_pixels)
DECODABLE = where(lambda r: r.decodable)
NOT_VIDEO = where(lambda r: r.has_pixels and "video" not in r.features)
MATRIX = where(lambda r: r.matrix)
WITH_BULK = where(lambda r: bool(r.bulk))
MIN_PSNR_DB = 35.0  # lossy transcodes aim at ~50 dB relative to the pixel value range

VIDEO_SYNTAXES = (MPEG2, H264)


# -- oracles ------------------------------------------------------------------------------------------


def source_arrays(name: str) -> list[np.ndarray[Any, Any]]:
    """pydicom's decoded frames of a reference (colour converted to RGB as pydicom does by default)."""
    array = dataset(name).pixel_array
    frames = dataset(name).get("NumberOfFrames") or 1
    return list(array) if int(frames) > 1 else [array]


def native_frames(ref: Reference) -> list[bytes]:
    """Raw little-endian bytes of each frame of natively stored pixel data (§8.7.3.3.1)."""
    ds = dataset(ref.name)
    if ref.photometric == "YBR_FULL_422":  # two samples per pixel as stored, 8-bit: the raw value bytes
        size = ref.rows * ref.columns * 2
        return [bytes(ds.PixelData[i * size : (i + 1) * size]) for i in range(ref.frames)]
    raw = []
    from pydicom.pixels.utils import pixel_array

    frames = pixel_array(ds, raw=True)
    for frame in (list(frames) if ref.frames > 1 else [frames]):
        if ref.bits_allocated == 1:
            raw.append(pack_bits(frame, pad=False))
            continue
        if ref.samples > 1 and ds.get("PlanarConfiguration", 0) == 1:
            frame = frame.transpose(2, 0, 1)
        raw.append(np.ascontiguousarray(frame).astype(frame.dtype.newbyteorder("<")).tobytes())
    return raw


def stored_frames(ref: Reference) -> list[bytes]:
    """What is stored for each frame: the native bytes, or the compressed bitstream (no item tags)."""
    if not ref.encapsulated:
        return native_frames(ref)
    ds = dataset(ref.name)
    if "video" in ref.features:
        return [b"".join(generate_frames(ds.PixelData, number_of_frames=1))]
    return list(generate_frames(ds.PixelData, number_of_frames=ref.frames))


def decoded_frames(ref: Reference) -> list[bytes]:
    """Explicit VR LE octet-stream of each frame: native bytes as stored, compressed ones decoded."""
    if not ref.encapsulated:
        return native_frames(ref)
    return [np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes() for a in source_arrays(ref.name)]


def psnr(reference: np.ndarray[Any, Any], test: np.ndarray[Any, Any]) -> float:
    """PSNR in dB relative to the value range of the reference."""
    a, b = reference.astype(np.float64), test.astype(np.float64)
    mse = float(np.mean((a - b) ** 2))
    peak = max(float(a.max()) - float(a.min()), 1.0)
    return math.inf if mse == 0 else 20 * math.log10(peak) - 10 * math.log10(mse)


def frame_url(name: str, frames: list[int] | range) -> str:
    return f"{path_of(name)}/frames/{','.join(map(str, frames))}"


def all_frames(ref: Reference) -> range:
    return range(1, ref.frames + 1)


def frame_location(ref: Reference, number: int, resource: str = "frames") -> set[str]:
    """Content-Location of a frame part: the frame, or for a single-frame instance its pixel data."""
    base = absolute(path_of(ref.name))
    if ref.frames == 1:
        return {f"{base}/pixeldata", f"{base}/frames/1"}
    return {f"{base}/frames/{number}"}


def _bulk_uris(obj: Any) -> list[str]:
    if isinstance(obj, dict):
        found = [obj["BulkDataURI"]] if "BulkDataURI" in obj else []
        for value in obj.values():
            found += _bulk_uris(value)
        return found
    if isinstance(obj, list):
        return [uri for item in obj for uri in _bulk_uris(item)]
    return []


# -- Bulk Data resources --------------------------------------------------------------------------------


@pytest.mark.parametrize("ref", REFERENCES, ids=ids(REFERENCES))
async def test_every_bulk_data_uri_in_the_metadata_resolves(client: httpx.AsyncClient, ref: Reference) -> None:
    """§F.2.6: a BulkDataURI can be retrieved; pixel data as its stored frames with ``transfer-syntax=*``."""
    metadata = (await client.get(f"{path_of(ref.name)}/metadata", headers={"Accept": "application/dicom+json"}))
    uris = _bulk_uris(metadata.json())
    assert len(uris) == len(ref.bulk) + (1 if ref.has_pixels else 0)
    accept = f"{MULTIPART_OCTET}; transfer-syntax=*"
    for uri in uris:
        response = await client.get(uri, headers={"Accept": accept})
        assert response.status_code == 200, (uri, response.text)
        parts = parse_multipart(response)
        if uri.endswith("/pixeldata"):
            assert [p.content for p in parts] == stored_frames(ref)
            media = MEDIA_TYPE.get(ref.stored_syntax, "video/mp4")
            for number, part in enumerate(parts, start=1):
                assert part.media_type == media
                assert part.transfer_syntax == ref.stored_syntax
                if ref.frames == 1 or "video" in ref.features:
                    assert part.location == uri, "§10.4.3.3.6: the part's Content-Location is the metadata URI"
                else:
                    assert part.location in frame_location(ref, number)
        else:
            (part,) = parts
            assert part.media_type == "application/octet-stream" and part.transfer_syntax == ELE
            assert part.location == uri
            assert len(part.content) > 1024


@pytest.mark.parametrize("ref", WITH_BULK, ids=ids(WITH_BULK))
async def test_instance_bulkdata_resource_holds_pixel_and_other_bulk_data(client: httpx.AsyncClient,
                                                                          ref: Reference) -> None:
    """Table 10.4.1.5-1 Instance Bulk Data: every bulk data element of the instance."""
    response = await client.get(f"{path_of(ref.name)}/bulkdata", headers={"Accept": MULTIPART_OCTET})
    assert response.status_code == 200
    parts = parse_multipart(response)
    locations = [p.location for p in parts]
    for path in ref.bulk:
        assert absolute(f"{path_of(ref.name)}/bulkdata/{path}") in locations
    assert len(parts) == len(ref.bulk) + ref.frames


@pytest.mark.parametrize("accept", ["application/octet-stream", "image/jp2", "image/jpeg; transfer-syntax=*"])
async def test_bulkdata_with_only_single_part_types_is_406(client: httpx.AsyncClient, accept: str) -> None:
    """Table 10.4.4-1 note 3: single-part types do not apply to a multi-item resource such as Bulk Data."""
    response = await client.get(f"{path_of('CT_small')}/bulkdata", headers={"Accept": accept})
    assert response.status_code == 406, response.headers.get("content-type")


async def test_bulkdata_items_no_acceptable_type_can_carry_are_left_out_with_206(client: httpx.AsyncClient) -> None:
    """Table 10.4.3-1: some but not all of the target is 206 with a Warning, never a silent 200.

    JPEG 2000 can carry CT_small's pixel data (transcoded), not its other bulk element (00431029).
    """
    url = f"{path_of('CT_small')}/bulkdata"
    response = await client.get(url, headers={"Accept": 'multipart/related; type="image/jp2"'})
    assert response.status_code == 206
    assert "1 of the items" in response.headers["warning"]
    (part,) = parse_multipart(response, "image/jp2")
    assert part.location == absolute(f"{path_of('CT_small')}/pixeldata")
    both = await client.get(url, headers={"Accept": f'multipart/related; type="image/jp2", {MULTIPART_OCTET};q=0.5'})
    assert both.status_code == 200
    assert [p.headers["content-type"].split(";")[0] for p in parse_multipart(both)] == [
        "image/jp2", "application/octet-stream"]


async def test_pixeldata_of_instances_no_acceptable_type_can_carry_is_206(empty_archive: LoadedArchive,
                                                                          empty_client: httpx.AsyncClient) -> None:
    """Table 10.4.3-1: a series whose instances are only partly representable is 206 with a Warning.

    JPEG baseline holds 8-bit samples: the 8-bit copy of CT_small is encoded, the 16-bit original is left out.
    """
    from pydicom.uid import generate_uid

    ingest = empty_archive.app.state.archive.ingest
    original = read_dicom(prepared_bytes("CT_small"))
    eight = read_dicom(prepared_bytes("CT_small"))
    eight.SOPInstanceUID = eight.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    eight.BitsAllocated, eight.BitsStored, eight.HighBit, eight.PixelRepresentation = 8, 8, 7, 0
    eight.PixelData = (original.pixel_array.astype("i4") - original.pixel_array.min()).clip(0, 255).astype("u1").tobytes()
    for ds in (original, eight):
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        assert ingest.store(io.BytesIO(buffer.getvalue())).record is not None
    series = f"studies/{original.StudyInstanceUID}/series/{original.SeriesInstanceUID}/pixeldata"
    response = await empty_client.get(series, headers={
        "Accept": f'multipart/related; type="image/jpeg"; transfer-syntax={JPEG_BASELINE}'})
    assert response.status_code == 206
    assert "1 of the items" in response.headers["warning"]
    (part,) = parse_multipart(response, "image/jpeg")
    assert part.location is not None and part.location.endswith(f"/instances/{eight.SOPInstanceUID}/pixeldata")


async def test_series_and_study_pixeldata_hold_every_instance(client: httpx.AsyncClient,
                                                              archive: LoadedArchive) -> None:
    """Table 10.4.1.6-1: Study / Series Pixel Data, one part per frame of each instance."""
    u = uids("emri_small")
    for path in (f"studies/{u.study}/series/{u.series}/pixeldata", f"studies/{u.study}/pixeldata"):
        response = await client.get(path, headers={"Accept": f"{MULTIPART_OCTET}; transfer-syntax=*"})
        assert response.status_code == 200
        parts = parse_multipart(response)
        records = archive.instances(u.study, None if path.startswith(f"studies/{u.study}/pixeldata") else u.series)
        assert len(parts) == sum(len(r.frames) for r in records if r.pixel is not None)


async def test_pixeldata_of_an_instance_without_pixels_is_404(client: httpx.AsyncClient) -> None:
    for name in ("test_SR", "rtplan"):
        response = await client.get(f"{path_of(name)}/pixeldata", headers={"Accept": MULTIPART_OCTET})
        assert response.status_code == 404
        response = await client.get(frame_url(name, [1]), headers={"Accept": MULTIPART_OCTET})
        assert response.status_code == 404


async def test_unknown_bulk_data_path_is_404_and_malformed_is_400(client: httpx.AsyncClient) -> None:
    base = f"{path_of('CT_small')}/bulkdata"
    assert (await client.get(f"{base}/00100010", headers={"Accept": MULTIPART_OCTET})).status_code == 404
    assert (await client.get(f"{base}/not-a-tag", headers={"Accept": MULTIPART_OCTET})).status_code == 400


# -- Pixel Data and Frames: stored and decompressed --------------------------------------------------------


@pytest.mark.parametrize("ref", DECODABLE, ids=ids(DECODABLE))
async def test_pixeldata_as_octet_stream_is_explicit_le(client: httpx.AsyncClient, ref: Reference) -> None:
    """§8.7.3.3.1: default for bulk data: uncompressed, Explicit VR LE, one part per frame."""
    response = await client.get(f"{path_of(ref.name)}/pixeldata", headers={"Accept": MULTIPART_OCTET})
    assert response.status_code == 200
    parts = parse_multipart(response, "application/octet-stream")
    assert all(p.transfer_syntax == ELE for p in parts)
    assert [p.content for p in parts] == decoded_frames(ref)


@pytest.mark.parametrize("ref", NOT_VIDEO, ids=ids(NOT_VIDEO))
async def test_frames_with_transfer_syntax_star_are_the_stored_bitstreams(client: httpx.AsyncClient,
                                                                         ref: Reference) -> None:
    """§8.7.3.5.2 ``*``: each frame as stored; a compressed one in its own media type (Table 8.7.3-5)."""
    accept = f"{MULTIPART_OCTET}; transfer-syntax=*"
    response = await client.get(frame_url(ref.name, all_frames(ref)), headers={"Accept": accept})
    assert response.status_code == 200
    parts = parse_multipart(response)
    expected_media = MEDIA_TYPE[ref.stored_syntax]
    assert media_params(response.headers["content-type"])[1]["type"] == expected_media
    assert [p.content for p in parts] == stored_frames(ref)
    for number, part in enumerate(parts, start=1):
        assert part.headers["content-type"] == f"{expected_media}; transfer-syntax={ref.stored_syntax}"
        assert part.location in frame_location(ref, number)


@pytest.mark.parametrize("ref", DECODABLE, ids=ids(DECODABLE))
async def test_frames_as_octet_stream_are_decompressed(client: httpx.AsyncClient, ref: Reference) -> None:
    """§8.7.3.3.1: frames without a transfer-syntax: uncompressed, equal to pydicom's pixel_array bytes."""
    response = await client.get(frame_url(ref.name, all_frames(ref)), headers={"Accept": MULTIPART_OCTET})
    assert response.status_code == 200
    parts = parse_multipart(response, "application/octet-stream")
    assert [p.content for p in parts] == decoded_frames(ref)
    assert all(p.headers["content-type"] == f"application/octet-stream; transfer-syntax={ELE}" for p in parts)


@pytest.mark.parametrize("ref", DECODABLE, ids=ids(DECODABLE))
async def test_one_frame_as_single_part_octet_stream(client: httpx.AsyncClient, ref: Reference) -> None:
    """Table 10.4.4-1 note 3: bare ``application/octet-stream`` for a single frame."""
    number = ref.frames  # the last frame
    response = await client.get(frame_url(ref.name, [number]), headers={"Accept": "application/octet-stream"})
    assert response.status_code == 200
    assert response.headers["content-type"] == f"application/octet-stream; transfer-syntax={ELE}"
    assert response.content == decoded_frames(ref)[number - 1]
    assert int(response.headers["content-length"]) == len(response.content)


async def test_several_frames_as_single_part_is_406(client: httpx.AsyncClient) -> None:
    response = await client.get(frame_url("emri_small", [1, 2]), headers={"Accept": "application/octet-stream"})
    assert response.status_code == 406


async def test_frames_in_order_and_repeated(client: httpx.AsyncClient) -> None:
    ref = next(r for r in REFERENCES if r.name == "emri_small_RLE")
    response = await client.get(frame_url(ref.name, [2, 5, 10]), headers={"Accept": f"{MULTIPART_OCTET}; transfer-syntax=*"})
    parts = parse_multipart(response, "image/dicom-rle")
    frames = stored_frames(ref)
    assert [p.content for p in parts] == [frames[1], frames[4], frames[9]]
    assert [p.location for p in parts] == [absolute(f"{path_of(ref.name)}/frames/{n}") for n in (2, 5, 10)]


async def test_multipart_framing_byte_by_byte(client: httpx.AsyncClient) -> None:
    """§8.6.1.2 / RFC 2046: the exact bytes of a two-part response."""
    ref = next(r for r in REFERENCES if r.name == "emri_small")
    response = await client.get(frame_url(ref.name, [1, 2]), headers={"Accept": MULTIPART_OCTET})
    boundary = media_params(response.headers["content-type"])[1]["boundary"]
    assert response.headers["content-type"] == (
        f'multipart/related; type="application/octet-stream"; boundary={boundary}')
    frames = native_frames(ref)
    expected = b""
    for number in (1, 2):
        expected += (f"--{boundary}\r\n"
                     f"Content-Type: application/octet-stream; transfer-syntax={ELE}\r\n"
                     f"Content-Location: {absolute(path_of(ref.name))}/frames/{number}\r\n"
                     f"Content-Length: {len(frames[number - 1])}\r\n\r\n").encode() + frames[number - 1] + b"\r\n"
    expected += f"--{boundary}--\r\n".encode()
    assert response.content == expected
    assert response.headers["content-length"] == str(len(expected))


@pytest.mark.parametrize("frames", ["0", "a", "1,,2", "-1", "1.5", "1,a", "", ",1", "1,"])
async def test_invalid_frame_lists_are_400(client: httpx.AsyncClient, frames: str) -> None:
    """§10.4.1.1.6: ``{frames}`` is a comma-separated list of 1-based frame numbers."""
    response = await client.get(f"{path_of('emri_small')}/frames/{frames}", headers={"Accept": MULTIPART_OCTET})
    assert response.status_code in ((400,) if frames else (400, 404)), response.text


@pytest.mark.parametrize("frames", ["11", "1,11", "99999", "9999999999", "1" * 5000])
async def test_frames_out_of_range_are_404(client: httpx.AsyncClient, frames: str) -> None:
    """A frame beyond Number of Frames does not exist (Table 10.4.3-1: 404), however many digits it has."""
    response = await client.get(f"{path_of('emri_small')}/frames/{frames}", headers={"Accept": MULTIPART_OCTET})
    assert response.status_code == 404
    assert len(response.text) < 200


async def test_leading_zeros_name_the_same_frame(client: httpx.AsyncClient) -> None:
    url = f"{path_of('emri_small')}/frames/"
    padded = await client.get(url + "0" * 30 + "3", headers={"Accept": MULTIPART_OCTET})
    plain = await client.get(url + "3", headers={"Accept": MULTIPART_OCTET})
    assert padded.status_code == 200
    assert parse_multipart(padded)[0].content == parse_multipart(plain)[0].content


# -- Range requests (RFC 9110 §14) on single-part bulk data ------------------------------------------------


@pytest.mark.parametrize("name", ["emri_small", "emri_small_jpeg_2k_lossless"])
async def test_range_requests_on_a_single_frame(client: httpx.AsyncClient, name: str) -> None:
    ref = next(r for r in REFERENCES if r.name == name)
    url, accept = frame_url(name, [3]), {"Accept": "application/octet-stream"}
    full = await client.get(url, headers=accept)
    body = decoded_frames(ref)[2]
    assert full.content == body and full.headers["accept-ranges"] == "bytes"
    etag = full.headers["etag"]
    cases = {"bytes=0-9": (0, 10), "bytes=-5": (len(body) - 5, len(body)), "bytes=100-": (100, len(body)),
             f"bytes=10-{len(body) + 50}": (10, len(body))}
    for header, (start, end) in cases.items():
        response = await client.get(url, headers=accept | {"Range": header})
        assert response.status_code == 206, header
        assert response.headers["content-range"] == f"bytes {start}-{end - 1}/{len(body)}"
        assert response.content == body[start:end]
        assert int(response.headers["content-length"]) == end - start
    for header in (f"bytes={len(body)}-", "bytes=-0"):
        response = await client.get(url, headers=accept | {"Range": header})
        assert response.status_code == 416, header
        assert response.headers["content-range"] == f"bytes */{len(body)}"
    stale = await client.get(url, headers=accept | {"Range": "bytes=0-9", "If-Range": '"stale"'})
    assert stale.status_code == 200 and stale.content == body
    fresh = await client.get(url, headers=accept | {"Range": "bytes=0-9", "If-Range": etag})
    assert fresh.status_code == 206
    ignored = await client.get(url, headers=accept | {"Range": "bytes=0-1,5-6"})
    assert ignored.status_code == 200 and ignored.content == body


async def test_range_request_on_a_bulk_data_element(client: httpx.AsyncClient) -> None:
    uri = f"{path_of('CT_small')}/bulkdata/00431029"
    full = await client.get(uri, headers={"Accept": "application/octet-stream"})
    assert full.status_code == 200 and len(full.content) == 2068
    part = await client.get(uri, headers={"Accept": "application/octet-stream", "Range": "bytes=2000-"})
    assert part.status_code == 206 and part.content == full.content[2000:]
    assert part.headers["content-range"] == "bytes 2000-2067/2068"


NATIVE_MULTIFRAME = where(lambda r: r.frames > 1 and not r.encapsulated)


@pytest.mark.parametrize("ref", NATIVE_MULTIFRAME, ids=ids(NATIVE_MULTIFRAME))
async def test_the_pixel_data_of_a_native_multiframe_instance_is_one_part_with_ranges(
        client: httpx.AsyncClient, ref: Reference) -> None:
    """Its BulkDataURI (``/pixeldata``) names one value, every frame in a row: one part, and Range applies.

    Bare ``application/octet-stream`` asks for it; so does ``*/*`` with a Range header (a range of the
    multipart envelope would mean nothing to a client that follows a BulkDataURI).
    """
    url = f"{path_of(ref.name)}/pixeldata"
    value = b"".join(native_frames(ref))
    whole = await client.get(url, headers={"Accept": "application/octet-stream"})
    assert whole.status_code == 200, whole.text
    assert whole.headers["content-type"] == f"application/octet-stream; transfer-syntax={ELE}"
    assert whole.content == value and whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-location"] == absolute(url)
    middle = len(value) // 2
    for accept in ("application/octet-stream", "*/*", "application/*"):
        ranged = await client.get(url, headers={"Accept": accept, "Range": f"bytes={middle}-{middle + 99}"})
        assert ranged.status_code == 206, (accept, ranged.text)
        assert ranged.content == value[middle:middle + 100]
        assert ranged.headers["content-range"] == f"bytes {middle}-{middle + 99}/{len(value)}"
    tail = await client.get(url, headers={"Accept": "*/*", "Range": "bytes=-7"})
    assert tail.status_code == 206 and tail.content == value[-7:]
    # Without Range, */* keeps the default: multipart, one part per frame (Table 10.4.4-1).
    default = await client.get(url, headers={"Accept": "*/*"})
    assert [p.content for p in parse_multipart(default, "application/octet-stream")] == native_frames(ref)


async def test_the_pixel_data_of_packed_one_bit_frames_is_their_value_as_stored(
        empty_client: httpx.AsyncClient) -> None:
    """3 frames of 5 x 5 1-bit pixels: 75 bits, 10 bytes; frames 2 and 3 start inside a byte."""
    rng = np.random.default_rng(7)
    frames = rng.integers(0, 2, (3, 5, 5), dtype=np.uint8)
    ds = copy.deepcopy(dataset("MR_small"))  # the cached dataset stays as read
    ds.Rows, ds.Columns, ds.NumberOfFrames = 5, 5, 3
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 1, 0, 0
    ds.PixelData = pack_bits(frames)
    ds["PixelData"].VR = "OB"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = UID("1.2.826.0.1.3680043.10.1011.77.1")
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    stored = await stow(empty_client, out.getvalue())
    assert stored.status_code == 200, stored.text
    url = f"studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}/pixeldata"
    whole = await empty_client.get(url, headers={"Accept": "application/octet-stream"})
    assert whole.status_code == 200 and whole.content == pack_bits(frames, pad=False) and len(whole.content) == 10
    ranged = await empty_client.get(url, headers={"Accept": "*/*", "Range": "bytes=3-5"})
    assert ranged.status_code == 206 and ranged.content == pack_bits(frames, pad=False)[3:6]


async def test_a_range_with_a_wildcard_applies_to_one_frame_and_a_bulk_data_element(
        client: httpx.AsyncClient) -> None:
    """``*/*`` + Range on a resource that has a single-part form: that form, and the range of it."""
    frame = decoded_frames(next(r for r in REFERENCES if r.name == "emri_small"))[2]
    response = await client.get(frame_url("emri_small", [3]), headers={"Accept": "*/*", "Range": "bytes=10-19"})
    assert response.status_code == 206 and response.content == frame[10:20]
    uri = f"{path_of('CT_small')}/bulkdata/00431029"
    element = await client.get(uri, headers={"Accept": "*/*", "Range": "bytes=2000-"})
    assert element.status_code == 206 and len(element.content) == 68


COMPRESSED_MULTIFRAME = where(lambda r: r.frames > 1 and r.encapsulated and r.decodable)


@pytest.mark.parametrize("ref", COMPRESSED_MULTIFRAME, ids=ids(COMPRESSED_MULTIFRAME))
async def test_the_pixel_data_of_a_compressed_multiframe_instance_decoded_is_one_part_with_ranges(
        client: httpx.AsyncClient, ref: Reference) -> None:
    """Uncompressed bulk data is one value (§8.7.3.3.1): the decoded frames in a row, and Range applies to it.

    Compressed frames still go one per part (§8.7.3.3.2): a bare compressed type cannot carry them, and
    ``*/*`` without Range keeps the multipart default. The decoded value is checked against pydicom's
    decoding (exact for lossless sources, a PSNR bound for lossy ones).
    """
    url = f"{path_of(ref.name)}/pixeldata"
    frames = decoded_frames(ref)
    value = b"".join(frames)
    whole = await client.get(url, headers={"Accept": "application/octet-stream"})
    assert whole.status_code == 200, whole.text
    assert whole.headers["content-type"] == f"application/octet-stream; transfer-syntax={ELE}"
    assert whole.headers["accept-ranges"] == "bytes" and whole.headers["content-location"] == absolute(url)
    assert len(whole.content) == len(value) == int(whole.headers["content-length"])
    if ref.lossy:
        dtype = np.dtype(f"<u{ref.bits_allocated // 8}")
        assert psnr(np.frombuffer(value, dtype), np.frombuffer(whole.content, dtype)) >= MIN_PSNR_DB
        value = whole.content  # the ranges below are of the server's own decoding
    else:
        assert whole.content == value
    frame = len(frames[0])
    for accept in ("application/octet-stream", "*/*", "application/*"):
        # across the boundary of frames 1 and 2
        start = frame - 50
        ranged = await client.get(url, headers={"Accept": accept, "Range": f"bytes={start}-{start + 99}"})
        assert ranged.status_code == 206, (accept, ranged.text)
        assert ranged.content == value[start:start + 100]
        assert ranged.headers["content-range"] == f"bytes {start}-{start + 99}/{len(value)}"
    tail = await client.get(url, headers={"Accept": "*/*", "Range": "bytes=-7"})
    assert tail.status_code == 206 and tail.content == value[-7:]
    beyond = await client.get(url, headers={"Accept": "*/*", "Range": f"bytes={len(value)}-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(value)}"
    assert (await client.get(url, headers={"Accept": ref_media(ref)})).status_code == 406
    default = await client.get(url, headers={"Accept": "*/*"})
    assert default.status_code == 200 and len(parse_multipart(default)) == ref.frames


def ref_media(ref: Reference) -> str:
    """The bare media type of the reference's compressed frames (Table 8.7.3-5)."""
    return MEDIA_TYPE[ref.syntax]


async def test_a_range_of_decoded_frames_decodes_only_the_frames_it_covers(
        archive: LoadedArchive, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """A range inside frame 7 of 10 decodes frame 7 and no other (the value is produced frame by frame)."""
    from dicomweb_origin.retrieve.sources import Sources

    decoded: list[int] = []
    original = Sources.transcoded_frame

    def counting(self: Sources, record: Any, index: int, syntax: str) -> bytes:
        decoded.append(index)
        return original(self, record, index, syntax)

    monkeypatch.setattr(Sources, "transcoded_frame", counting)
    ref = next(r for r in REFERENCES if r.name == "emri_small_RLE")
    frame = len(decoded_frames(ref)[0])
    url = f"{path_of(ref.name)}/pixeldata"
    ranged = await client.get(url, headers={"Accept": "application/octet-stream",
                                            "Range": f"bytes={6 * frame + 10}-{6 * frame + 20}"})
    assert ranged.status_code == 206 and ranged.content == decoded_frames(ref)[6][10:21]
    assert decoded == [6]


# -- Compressed bulk data media types -------------------------------------------------------------------


@pytest.mark.parametrize(("media", "expected"), [
    ("image/jls", JLS_LOSSLESS), ("image/jp2", J2K_LOSSLESS), ("image/jpeg", JPEG_SV1),
    ("image/dicom-rle", RLE), ("image/x-dicom-rle", RLE), ("image/x-jls", JLS_LOSSLESS),
    ("image/jph", HTJ2K_LOSSLESS),
])
async def test_a_compressed_media_type_without_parameter_means_its_default_syntax(
    client: httpx.AsyncClient, media: str, expected: str
) -> None:
    """Table 8.7.3-5: the D row of each media type is what it means without a transfer-syntax."""
    ref = next(r for r in REFERENCES if r.name == "emri_small")
    response = await client.get(frame_url(ref.name, [1, 2]),
                                headers={"Accept": f'multipart/related; type="{media}"'})
    assert response.status_code == 200, response.text
    parts = parse_multipart(response)
    for part, source in zip(parts, source_arrays(ref.name)[:2], strict=True):
        assert part.transfer_syntax == expected
        np.testing.assert_array_equal(_decode_frame(part.content, expected, dataset(ref.name)), source)


async def test_a_single_compressed_frame_as_a_bare_media_type(client: httpx.AsyncClient) -> None:
    ref = next(r for r in REFERENCES if r.name == "emri_small_jpeg_2k_lossless")
    response = await client.get(frame_url(ref.name, [4]), headers={"Accept": "image/jp2"})
    assert response.status_code == 200
    assert response.headers["content-type"] == f"image/jp2; transfer-syntax={J2K_LOSSLESS}"
    assert response.content == stored_frames(ref)[3]


@pytest.mark.parametrize("name", ["SC_rgb_jpeg_dcmtk", "JPEG2000", "JPGExtended", "SC_rgb_jls_lossy_sample"])
@pytest.mark.parametrize("media", ["image/jp2", "image/jls", "image/dicom-rle", "image/jpeg", "image/jph"])
async def test_a_lossy_source_is_never_served_as_lossless_compressed(client: httpx.AsyncClient, name: str,
                                                                    media: str) -> None:
    """PS3.3 C.7.6.1.1.5: lossy pixels must not pass for lossless ones (the D syntaxes are lossless)."""
    response = await client.get(frame_url(name, [1]), headers={"Accept": f'multipart/related; type="{media}"'})
    assert response.status_code == 406
    for syntax in (J2K_LOSSLESS, JLS_LOSSLESS, RLE, HTJ2K_LOSSLESS):
        instance = await client.get(path_of(name), headers={"Accept": f"{MULTIPART_DICOM}; transfer-syntax={syntax}"})
        assert instance.status_code == 406, syntax


# -- Video: served only as stored -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["MR_small", "SC_rgb", "examples_ybr_color"])
@pytest.mark.parametrize("syntax", VIDEO_SYNTAXES)
async def test_video_syntaxes_are_not_produced(client: httpx.AsyncClient, name: str, syntax: str) -> None:
    """This server encodes no video: asking a still image for one is 406."""
    media = "video/mpeg" if syntax == MPEG2 else "video/mp4"
    instance = await client.get(path_of(name), headers={"Accept": f"{MULTIPART_DICOM}; transfer-syntax={syntax}"})
    assert instance.status_code == 406
    pixels = await client.get(f"{path_of(name)}/pixeldata", headers={"Accept": f'multipart/related; type="{media}"'})
    assert pixels.status_code == 406


async def test_a_video_is_served_only_as_stored(client: httpx.AsyncClient) -> None:
    """§8.7.3.3.2: a video is one part holding all frames; it cannot be decoded here, so never transcoded."""
    name = "video_h264"
    default = await client.get(path_of(name), headers={"Accept": MULTIPART_DICOM})
    assert default.status_code == 200  # §8.7.3: lossy-only pixel data may be sent in its stored syntax
    (part,) = parse_multipart(default, "application/dicom")
    assert part.transfer_syntax == H264 and part.content == prepared_bytes(name)
    explicit = await client.get(path_of(name), headers={"Accept": f"{MULTIPART_DICOM}; transfer-syntax={ELE}"})
    assert explicit.status_code == 406
    whole = await client.get(f"{path_of(name)}/pixeldata", headers={"Accept": 'multipart/related; type="video/mp4"'})
    assert whole.status_code == 200
    (video,) = parse_multipart(whole, "video/mp4")
    assert video.transfer_syntax == H264
    assert video.content == stored_frames(next(r for r in REFERENCES if r.name == name))[0]
    octet = await client.get(f"{path_of(name)}/pixeldata", headers={"Accept": MULTIPART_OCTET})
    assert octet.status_code == 406
    frame = await client.get(frame_url(name, [1]), headers={"Accept": f"{MULTIPART_OCTET}; transfer-syntax=*"})
    assert frame.status_code == 406


# -- the transcoding matrix ---------------------------------------------------------------------------------


def expected_outcome(ref: Reference, syntax: str, archive: LoadedArchive) -> str:
    """``identical``, ``exact`` (lossless), ``lossy`` (PSNR bound) or ``406``."""
    if syntax == ref.stored_syntax:
        return "identical"
    if syntax in (ILE, EBE) or syntax in VIDEO_SYNTAXES:
        return "406"  # §8.7.3: never Implicit VR or Big Endian on the web; no video encoder
    if syntax in COMPRESSED_SYNTAXES:
        if not transcode.can_transcode(ref.stored_syntax, syntax, archive.record(ref.name).pixel):
            return "406"
        if ref.lossy and syntax not in LOSSY_SYNTAXES:
            return "406"
        return "lossy" if syntax in LOSSY_SYNTAXES else "exact"
    return "exact"


def _matrix_cases() -> list[Any]:
    return [pytest.param(ref, syntax, id=f"{ref.name}->{syntax.rsplit('.', 2)[-2]}.{syntax.rsplit('.', 1)[-1]}")
            for ref in MATRIX for syntax in MATRIX_SYNTAXES]


def _assert_pixels(ref: Reference, decoded: list[np.ndarray[Any, Any]], outcome: str, where: str) -> None:
    sources = source_arrays(ref.name)
    assert len(decoded) == len(sources), where
    for number, (got, source) in enumerate(zip(decoded, sources, strict=True), start=1):
        assert got.shape == source.shape, f"{where} frame {number}"
        if outcome == "lossy":
            assert psnr(source, got) >= MIN_PSNR_DB, f"{where} frame {number}: PSNR {psnr(source, got):.1f} dB"
        else:
            np.testing.assert_array_equal(got, source, err_msg=f"{where} frame {number}")


@pytest.mark.parametrize(("ref", "syntax"), _matrix_cases())
async def test_instance_transcoding_matrix(client: httpx.AsyncClient, archive: LoadedArchive, ref: Reference,
                                          syntax: str) -> None:
    """``multipart/related; type="application/dicom"; transfer-syntax=X`` for every X (§8.7.3.5.2)."""
    outcome = expected_outcome(ref, syntax, archive)
    response = await client.get(path_of(ref.name), headers={"Accept": f"{MULTIPART_DICOM}; transfer-syntax={syntax}"})
    if outcome == "406":
        assert response.status_code == 406, response.headers.get("content-type")
        return
    assert response.status_code == 200, response.text
    (part,) = parse_multipart(response, "application/dicom")
    assert part.transfer_syntax == syntax
    if outcome == "identical":
        assert part.content == archive.stored_bytes(ref.name)
        return
    ds = read_dicom(part.content)
    assert ds.file_meta.TransferSyntaxUID == syntax
    assert ds.SOPInstanceUID == uids(ref.name).instance
    frames = ds.pixel_array
    _assert_pixels(ref, list(frames) if ref.frames > 1 else [frames], outcome, f"{ref.name} as {syntax}")
    if outcome == "lossy" or ref.lossy:
        assert ds.LossyImageCompression == "01", "PS3.3 C.7.6.1.1.5: once lossy, always lossy"
    if outcome == "lossy":
        methods = ds.LossyImageCompressionMethod
        last = methods[-1] if isinstance(methods, (list, tuple)) or hasattr(methods, "__getitem__") and not isinstance(
            methods, str) else methods
        assert last in ("ISO_10918_1", "ISO_14495_1", "ISO_15444_1", "ISO_15444_15")
    if syntax in COMPRESSED_SYNTAXES:
        assert ds["PixelData"].is_undefined_length
        fragments = list(generate_frames(ds.PixelData, number_of_frames=ref.frames))
        assert len(fragments) == ref.frames


def _decode_frame(data: bytes, syntax: str, like: Dataset) -> np.ndarray[Any, Any]:
    """Decode one bare frame with pydicom, given the pixel module that describes it."""
    ds = Dataset()
    for keyword in ("Rows", "Columns", "SamplesPerPixel", "BitsAllocated", "BitsStored", "HighBit",
                    "PixelRepresentation", "PhotometricInterpretation", "PlanarConfiguration"):
        if keyword in like:
            setattr(ds, keyword, like[keyword].value)
    ds.NumberOfFrames = 1
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(syntax)
    if syntax in COMPRESSED_SYNTAXES:
        ds.PixelData = encapsulate([data])
    else:
        ds.PixelData = data
    ds["PixelData"].VR = "OB" if syntax in COMPRESSED_SYNTAXES or ds.BitsAllocated <= 8 else "OW"
    return ds.pixel_array


FRAME_SYNTAXES = tuple(s for s in MATRIX_SYNTAXES if s != DEFLATE)


def _frame_cases() -> list[Any]:
    return [pytest.param(ref, syntax, id=f"{ref.name}->{syntax.rsplit('.', 2)[-2]}.{syntax.rsplit('.', 1)[-1]}")
            for ref in MATRIX for syntax in FRAME_SYNTAXES]


@pytest.mark.parametrize(("ref", "syntax"), _frame_cases())
async def test_frame_transcoding_matrix(client: httpx.AsyncClient, archive: LoadedArchive, ref: Reference,
                                       syntax: str) -> None:
    """``multipart/related; type="image/jls"; transfer-syntax=X`` etc. for every frame (Table 8.7.3-5)."""
    outcome = expected_outcome(ref, syntax, archive)
    media = MEDIA_TYPE.get(syntax, "video/mp4" if syntax == H264 else "video/mpeg" if syntax == MPEG2
                           else "application/octet-stream")
    accept = f'multipart/related; type="{media}"; transfer-syntax={syntax}'
    response = await client.get(frame_url(ref.name, all_frames(ref)), headers={"Accept": accept})
    if outcome == "406":
        assert response.status_code == 406, response.headers.get("content-type")
        return
    assert response.status_code == 200, response.text
    parts = parse_multipart(response, media)
    assert len(parts) == ref.frames
    for number, part in enumerate(parts, start=1):
        assert part.headers["content-type"] == f"{media}; transfer-syntax={syntax}"
        assert part.location in frame_location(ref, number)
    if outcome == "identical":
        assert [p.content for p in parts] == stored_frames(ref)
        return
    if syntax == ELE:
        assert [p.content for p in parts] == decoded_frames(ref)
        return
    # The same frames as in the instance transcoded to that syntax (whose pixels pydicom checks) ...
    instance = await client.get(path_of(ref.name), headers={"Accept": f"{MULTIPART_DICOM}; transfer-syntax={syntax}"})
    (instance_part,) = parse_multipart(instance, "application/dicom")
    ds = read_dicom(instance_part.content)
    fragments = list(generate_frames(ds.PixelData, number_of_frames=ref.frames))
    for part, fragment in zip(parts, fragments, strict=True):
        # PS3.5 A.4: a fragment is padded to even length with one trailing NUL; the bare bitstream needs not be
        assert part.content == fragment or (len(part.content) % 2 and part.content + b"\x00" == fragment)
    # ... and each bare bitstream decodes on its own to the source frame.
    decoded = [_decode_frame(p.content, syntax, ds) for p in parts]
    _assert_pixels(ref, decoded, outcome, f"{ref.name} frames as {syntax}")


def test_matrix_covers_the_encoders() -> None:
    """Every syntax the transcoder can encode is asked for at least once, from a lossless source."""
    probe = transcode.can_encode
    assert probe(JLS_LOSSLESS, _pixel("MR_small")) and probe(J2K, _pixel("MR_small"))
    assert probe(JPEG_BASELINE, _pixel("SC_rgb"))
    assert {ref.stored_syntax for ref in MATRIX} >= {ELE, RLE, JLS_LOSSLESS, J2K_LOSSLESS, J2K, JPEG_BASELINE}


def _pixel(name: str) -> Any:
    from dicomweb_origin.model.stored import PixelDescription

    ds = dataset(name)
    return PixelDescription(int(ds.Rows), int(ds.Columns), int(ds.SamplesPerPixel), int(ds.BitsAllocated),
                            int(ds.BitsStored), int(ds.PixelRepresentation), str(ds.PhotometricInterpretation))


def test_oracle_native_frames_match_the_file() -> None:
    """The oracle itself: native frames rebuilt from pixel_array equal the file's own bytes (LE sources)."""
    for name in ("emri_small", "SC_rgb_16bit_2frame", "liver", "CT_small"):
        ref = next(r for r in REFERENCES if r.name == name)
        assert b"".join(native_frames(ref)) == bytes(dcmread(io.BytesIO(prepared_bytes(name))).PixelData)[
            : len(b"".join(native_frames(ref)))]


async def test_a_transcoded_frame_honours_range_like_a_stored_one(client: httpx.AsyncClient) -> None:
    """RFC 9110 §14 on a single-part frame, whether its bytes are stored or transcoded (cold or cached)."""
    path = path_of("JPEG2000") + "/frames/1"
    whole = await client.get(path, headers={"Accept": "application/octet-stream"})
    assert whole.status_code == 200
    for _ in range(2):  # cold, then from the frame cache
        ranged = await client.get(path, headers={"Accept": "application/octet-stream", "Range": "bytes=10-19"})
        assert ranged.status_code == 206
        assert ranged.headers["content-range"] == f"bytes 10-19/{len(whole.content)}"
        assert ranged.content == whole.content[10:20]


@pytest.mark.parametrize("frames", ["%C2%B2", "1x" * 2500, "１"])
async def test_hostile_frame_lists_are_400(client: httpx.AsyncClient, frames: str) -> None:
    """§10.4.1.1.6: frame numbers are ASCII digits; anything else is a bad request, never a 500."""
    response = await client.get(path_of("CT_small") + f"/frames/{frames}", headers={"Accept": "*/*"})
    assert response.status_code == 400


async def test_every_representation_has_its_own_etag(client: httpx.AsyncClient) -> None:
    """RFC 9110 §8.8.3: a strong ETag names one sequence of bytes; 304 only for that one."""
    path = path_of("emri_small") + "/frames/"
    bare = {"Accept": "application/octet-stream"}
    wrapped = {"Accept": MULTIPART_OCTET}
    first = await client.get(path + "1", headers=bare)
    second = await client.get(path + "2", headers=bare)
    multipart_first = await client.get(path + "1", headers=wrapped)
    tags = {first.headers["etag"], second.headers["etag"], multipart_first.headers["etag"]}
    assert len(tags) == 3
    again = await client.get(path + "1", headers=wrapped)
    assert again.content == multipart_first.content  # one ETag, one body (the boundary is derived from it)
    stale = await client.get(path + "1", headers=wrapped | {"If-None-Match": first.headers["etag"]})
    assert stale.status_code == 200
    fresh = await client.get(path + "1", headers=wrapped | {"If-None-Match": multipart_first.headers["etag"]})
    assert fresh.status_code == 304


@pytest.mark.parametrize("header, status", [("bytes=5-3", 200), ("bytes=0-", 206), ("bytes=999999999-", 416)])
async def test_invalid_ranges_are_ignored_and_unsatisfiable_ones_are_416(client: httpx.AsyncClient, header: str,
                                                                        status: int) -> None:
    """RFC 9110 §14.1.1 / §15.5.17."""
    response = await client.get(path_of("CT_small") + "/frames/1",
                                headers={"Accept": "application/octet-stream", "Range": header})
    assert response.status_code == status


async def test_if_range_that_does_not_match_sends_everything(client: httpx.AsyncClient) -> None:
    """RFC 9110 §13.1.5: a stale If-Range turns the request into a plain GET, even for a bad range."""
    response = await client.get(path_of("CT_small") + "/frames/1", headers={
        "Accept": "application/octet-stream", "Range": "bytes=999999999-", "If-Range": '"stale"'})
    assert response.status_code == 200
