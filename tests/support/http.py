"""HTTP through the real ASGI application: URLs of the reference instances, and strict readers of what comes back.

``parse_multipart`` checks the framing of PS3.18 §8.6.1.2 / RFC 2046 byte by byte; ``stow_body`` writes a STOW-RS
request body (PS3.18 §10.5.1) and ``stow`` / ``stow_result`` send it.
"""

from __future__ import annotations

import io
import re
import secrets
from dataclasses import dataclass
from typing import Any

import httpx
from pydicom import Dataset, dcmread
from starlette.applications import Starlette

from .reference import uids

BASE_URL = "http://testserver"
ROOT = "/dicomweb"

MULTIPART_DICOM = 'multipart/related; type="application/dicom"'
MULTIPART_OCTET = 'multipart/related; type="application/octet-stream"'
MULTIPART_XML = 'multipart/related; type="application/dicom+xml"'
DICOM_JSON = "application/dicom+json"

# The Store Instances Response Module (PS3.18 Table 10.5.3-2)
RETRIEVE_URL = "00081190"
FAILED_SOP_SEQUENCE = "00081198"
REFERENCED_SOP_SEQUENCE = "00081199"
FAILURE_REASON = "00081197"
SOP_CLASS = "00081150"
SOP_INSTANCE = "00081155"


def asgi_client(app: Starlette) -> httpx.AsyncClient:
    """A client of ``app`` through httpx's ASGI transport, with the DICOMweb root as its base URL."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL + ROOT + "/")


def path_of(name: str, level: str = "instance") -> str:
    """The resource path (relative to the DICOMweb root) of a reference at a level."""
    u = uids(name)
    return {
        "study": f"studies/{u.study}",
        "series": f"studies/{u.study}/series/{u.series}",
        "instance": f"studies/{u.study}/series/{u.series}/instances/{u.instance}",
    }[level]


def absolute(path: str) -> str:
    """The absolute URL the server uses in Content-Location and BulkDataURI for a resource path."""
    return f"{BASE_URL}{ROOT}/{path.lstrip('/')}"


async def get_without_accept(client: httpx.AsyncClient, url: str) -> httpx.Response:
    """GET with no Accept header at all (httpx adds ``*/*`` by default)."""
    request = client.build_request("GET", url)
    del request.headers["accept"]
    return await client.send(request)


_PARAM = re.compile(r';\s*([A-Za-z0-9_.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]+)')


def media_params(content_type: str) -> tuple[str, dict[str, str]]:
    """``type/subtype`` (lower case) and its parameters (quotes removed) of a Content-Type value."""
    base, _, rest = content_type.partition(";")
    params = {}
    for name, value in _PARAM.findall(";" + rest):
        params[name.lower()] = value[1:-1] if value.startswith('"') else value
    return base.strip().lower(), params


@dataclass
class BodyPart:
    headers: dict[str, str]  # lower-case names
    content: bytes

    @property
    def media_type(self) -> str:
        return media_params(self.headers["content-type"])[0]

    @property
    def transfer_syntax(self) -> str | None:
        return media_params(self.headers["content-type"])[1].get("transfer-syntax")

    @property
    def location(self) -> str | None:
        return self.headers.get("content-location")


_HEADER_LINE = re.compile(rb"^([!#$%&'*+.^_`|~0-9A-Za-z-]+): ?([^\r\n]*)$")


def parse_multipart(response: httpx.Response, expected_type: str | None = None) -> list[BodyPart]:
    """Split a multipart/related response strictly (RFC 2046 §5.1.1, PS3.18 §8.6.1.2, §8.7.1).

    Checks: ``type`` and ``boundary`` parameters, the ``type`` equal to every part's media type,
    CRLF line endings only, Content-Type and Content-Length on every part, each Content-Length
    exactly the bytes up to the next delimiter, the close delimiter last, and the whole body
    length equal to the response Content-Length when one is sent.
    """
    media_type, params = media_params(response.headers["content-type"])
    assert media_type == "multipart/related", response.headers["content-type"]
    assert "type" in params and "boundary" in params, response.headers["content-type"]
    assert re.search(r'type="[^"]+"', response.headers["content-type"]), "type must be quoted (§8.7.3.5.1)"
    boundary = params["boundary"].encode()
    assert 1 <= len(boundary) <= 70 and not boundary.endswith(b" ")
    if expected_type is not None:
        assert params["type"] == expected_type, response.headers["content-type"]
    body = response.content
    if "content-length" in response.headers and "content-encoding" not in response.headers:
        assert int(response.headers["content-length"]) == len(body)
    delimiter = b"--" + boundary
    assert body.startswith(delimiter + b"\r\n"), body[:100]
    position = len(delimiter) + 2
    parts = []
    while True:
        end_of_headers = body.index(b"\r\n\r\n", position)
        raw_headers = body[position:end_of_headers]
        assert b"\n" not in raw_headers.replace(b"\r\n", b""), "bare LF in part headers"
        assert b"\r" not in raw_headers.replace(b"\r\n", b""), "bare CR in part headers"
        headers: dict[str, str] = {}
        for line in raw_headers.split(b"\r\n"):
            match = _HEADER_LINE.match(line)
            assert match, f"malformed part header line {line!r}"
            name = match.group(1).decode("ascii").lower()
            assert name not in headers, f"repeated part header {name}"
            headers[name] = match.group(2).decode("latin-1")
        assert "content-type" in headers, headers
        assert "content-length" in headers, f"every part carries Content-Length (§8.6.1.2): {headers}"
        start = end_of_headers + 4
        length = int(headers["content-length"])
        content = body[start : start + length]
        assert len(content) == length
        assert delimiter not in content, "the boundary occurs inside a part"
        following = body[start + length : start + length + 2 + len(delimiter) + 2]
        assert following[:2 + len(delimiter)] == b"\r\n" + delimiter, "Content-Length does not end at a delimiter"
        parts.append(BodyPart(headers, content))
        tail = following[2 + len(delimiter):]
        position = start + length + 2 + len(delimiter) + 2
        if tail == b"--":
            rest = body[position:]
            assert rest in (b"", b"\r\n"), f"data after the close delimiter: {rest[:40]!r}"
            break
        assert tail == b"\r\n", f"bad delimiter line ending {tail!r}"
    if expected_type is not None:
        for part in parts:
            assert part.media_type == expected_type, (part.headers, expected_type)
    return parts


def read_dicom(data: bytes) -> Dataset:
    return dcmread(io.BytesIO(data))


# -- STOW-RS (PS3.18 §10.5) -----------------------------------------------------------------------------------

StowPart = bytes | tuple[str, bytes]  # Part 10 bytes, or (part Content-Type, bytes)


def stow_body(parts: list[StowPart], boundary: str | None = None) -> tuple[bytes, str]:
    """A ``multipart/related; type="application/dicom"`` request body and its Content-Type."""
    boundary = boundary or f"stow{secrets.token_hex(8)}"
    body = b""
    for part in parts:
        content_type, data = part if isinstance(part, tuple) else ("application/dicom", part)
        body += f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode() + data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, f"{MULTIPART_DICOM}; boundary={boundary}"


async def stow(client: httpx.AsyncClient, *instances: bytes, boundary: str = "test-stow") -> httpx.Response:
    """POST the Part 10 ``instances`` to ``studies`` as one STOW-RS request (relative to the client's base URL)."""
    body, content_type = stow_body(list(instances), boundary)
    return await client.post("studies", content=body, headers={"Content-Type": content_type})


async def stow_result(client: httpx.AsyncClient, parts: list[StowPart], study: str | None = None,
                      ) -> tuple[httpx.Response, dict[str, Any]]:
    """STOW ``parts`` (to a study when given); the response and its Store Instances Response Module."""
    body, content_type = stow_body(parts)
    url = "studies" if study is None else f"studies/{study}"
    response = await client.post(url, content=body, headers={"Content-Type": content_type, "Accept": DICOM_JSON})
    assert media_params(response.headers["content-type"])[0] == DICOM_JSON, response.text
    return response, response.json()


def referenced(module: dict[str, Any]) -> list[dict[str, Any]]:
    """The Referenced SOP Sequence items of a Store Instances Response Module."""
    return module.get(REFERENCED_SOP_SEQUENCE, {}).get("Value", [])


def failed(module: dict[str, Any]) -> list[dict[str, Any]]:
    """The Failed SOP Sequence items of a Store Instances Response Module."""
    return module.get(FAILED_SOP_SEQUENCE, {}).get("Value", [])
