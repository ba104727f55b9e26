"""``web.multipart.MultipartBody``: the multipart/related response body of PS3.18 §8.6.1.2 (RFC 2387, RFC 2046).

Bodies are written from parts of real DICOM data (pydicom's CT_small.dcm and its pixel data) and read back with
Python's ``email`` package, a parser independent of this server's own (``read_parts``).
"""

from __future__ import annotations

import email.parser
import email.policy
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from dicomweb_origin.errors import NotFound
from dicomweb_origin.retrieve.payload import Part
from dicomweb_origin.web.multipart import MultipartBody

ROOT = "http://archive.example/dicomweb"
CT_PATH = get_testdata_file("CT_small.dcm")
assert isinstance(CT_PATH, str)
CT = Path(CT_PATH).read_bytes()
PIXELS = pydicom.dcmread(CT_PATH).PixelData


def _known(data: bytes, media_type: str, location: str | None) -> Part:
    """A part whose length is known before it is sent (a stored instance or frame)."""

    def body(offset: int, length: int | None) -> Iterator[bytes]:
        yield data[offset:None if length is None else offset + length]

    return Part(media_type, location, len(data), body)


def _produced(data: bytes, media_type: str, location: str) -> Part:
    """A part produced as it is sent (transcoded, rendered): its length is unknown until then."""

    def body(offset: int, length: int | None) -> Iterator[bytes]:
        for start in range(0, len(data), 1000):
            yield data[start:start + 1000]

    return Part(media_type, location, None, body)


def _read_back(body: MultipartBody, content: bytes) -> list[EmailMessage]:
    head = f"Content-Type: {body.content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + content)
    assert isinstance(message, EmailMessage) and message.get_content_type() == "multipart/related"
    assert not message.defects, message.defects
    return [part for part in message.iter_parts() if isinstance(part, EmailMessage)]


def _parts() -> list[Part]:
    return [_known(CT, "application/dicom", "/studies/1/series/2/instances/3"),
            _known(PIXELS, "application/octet-stream", "/studies/1/series/2/instances/3/frames/1")]


def test_each_part_carries_its_content_type_location_and_length_and_its_exact_bytes() -> None:
    """§8.6.1.2: each part has Content-Type and Content-Location (the resource it represents) and its value."""
    body = MultipartBody("application/dicom", _parts(), '"etag-1"', ROOT)
    parts = _read_back(body, b"".join(body.chunks()))
    assert [p.get_content_type() for p in parts] == ["application/dicom", "application/octet-stream"]
    assert [p["Content-Location"] for p in parts] == [ROOT + "/studies/1/series/2/instances/3",
                                                      ROOT + "/studies/1/series/2/instances/3/frames/1"]
    assert [p.get_payload(decode=True) for p in parts] == [CT, PIXELS]
    assert [int(p["Content-Length"]) for p in parts] == [len(CT), len(PIXELS)]


def test_the_content_type_names_the_parts_type_and_the_boundary() -> None:
    """RFC 2387 §3.1: multipart/related takes a ``type`` parameter, the media type of the root (first) part."""
    body = MultipartBody("application/dicom", _parts(), '"etag-1"', ROOT)
    assert body.content_type == f'multipart/related; type="application/dicom"; boundary={body.boundary}'
    assert len(body.boundary) <= 70  # RFC 2046 §5.1.1: at most 70 characters


def test_delimiters_and_headers_end_in_crlf() -> None:
    """RFC 2046 §5.1.1: the delimiter is CRLF "--" boundary; the close delimiter ends in "--"."""
    body = MultipartBody("application/dicom", _parts(), '"etag-1"', ROOT)
    content = b"".join(body.chunks())
    assert content.startswith(f"--{body.boundary}\r\nContent-Type: application/dicom\r\n".encode())
    assert content.endswith(f"\r\n--{body.boundary}--\r\n".encode())
    assert content.count(f"\r\n--{body.boundary}\r\n".encode()) == 1  # between the two parts
    assert b"\n" not in content.replace(CT, b"").replace(PIXELS, b"").replace(b"\r\n", b"")  # no bare LF


def test_the_length_announced_before_sending_is_the_length_sent() -> None:
    """Content-Length of the whole response is known up front when every part's length is."""
    body = MultipartBody("application/dicom", _parts(), '"etag-1"', ROOT)
    assert body.length == len(b"".join(body.chunks()))
    produced = MultipartBody("image/jpeg", [_produced(CT, "image/jpeg", "/x")], '"etag-2"', ROOT)
    assert produced.length is None


def test_one_etag_always_names_one_body_and_another_etag_another_boundary() -> None:
    first = MultipartBody("application/dicom", _parts(), '"etag-1"', ROOT)
    again = MultipartBody("application/dicom", _parts(), '"etag-1"', ROOT)
    other = MultipartBody("application/dicom", _parts(), '"etag-2"', ROOT)
    assert b"".join(first.chunks()) == b"".join(again.chunks())
    assert first.boundary != other.boundary


@pytest.mark.parametrize("chunk", [1, 4096, 1 << 20])
def test_the_body_comes_in_chunks_of_about_the_size_asked_whatever_the_parts(chunk: int) -> None:
    """Constant memory: no chunk much larger than asked, save a part value that is already larger."""
    body = MultipartBody("application/dicom", _parts(), '"etag-1"', ROOT)
    pieces = list(body.chunks(chunk=chunk))
    whole = b"".join(pieces)
    assert whole == b"".join(MultipartBody("application/dicom", _parts(), '"etag-1"', ROOT).chunks())
    largest_value = max(len(CT), len(PIXELS))
    assert all(len(piece) < chunk + largest_value for piece in pieces)


def test_a_part_produced_while_sending_gets_its_own_content_length() -> None:
    body = MultipartBody("image/jpeg", [_produced(CT, "image/jpeg", "/a"), _known(PIXELS, "image/jpeg", "/b")],
                         '"etag-3"', ROOT)
    parts = _read_back(body, b"".join(body.chunks()))
    assert [int(p["Content-Length"]) for p in parts] == [len(CT), len(PIXELS)]
    assert [p.get_payload(decode=True) for p in parts] == [CT, PIXELS]


def test_a_part_that_fails_while_sending_is_left_out_and_the_body_stays_well_formed() -> None:
    """The status line is sent already: a failing part cannot change it, so it is omitted, not half-written."""
    def failing(offset: int, length: int | None) -> Iterator[bytes]:
        raise NotFound("the stored blob is gone")
        yield b""  # a generator

    body = MultipartBody("image/jpeg", [Part("image/jpeg", "/gone", None, failing),
                                        _known(PIXELS, "image/jpeg", "/b")], '"etag-4"', ROOT)
    parts = _read_back(body, b"".join(body.chunks()))
    assert [p["Content-Location"] for p in parts] == [ROOT + "/b"]
