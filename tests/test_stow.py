"""Store Transaction, STOW-RS (PS3.18 §10.5; Store Instances Response Module, Annex I / PS3.4).

Each test writes into an empty archive of its own. Status (Table 10.5.3-1): 200 when every instance
was stored, 202 when some failed, 409 when none was stored although the request was understood,
415 for a request media type the server does not support, 400 for a malformed payload.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.types import Message

from dicomweb_origin.ingest import CANNOT_UNDERSTAND, DIFFERENT_CONTENT, STUDY_UID_MISMATCH
from tests.support.archive import LoadedArchive
from tests.support.http import (
    FAILED_SOP_SEQUENCE,
    FAILURE_REASON,
    MULTIPART_DICOM,
    REFERENCED_SOP_SEQUENCE,
    RETRIEVE_URL,
    SOP_CLASS,
    SOP_INSTANCE,
    absolute,
    failed,
    media_params,
    parse_multipart,
    referenced,
    stow_body,
    stow_result,
)
from tests.support.reference import BY_NAME, EBE, ELE, REFERENCES, prepared_bytes, source_path, uids

pytestmark = pytest.mark.anyio


def _value(element: dict[str, Any]) -> Any:
    return element.get("Value", [None])[0]


async def test_store_instances_of_several_studies(empty_client: httpx.AsyncClient,
                                                  empty_archive: LoadedArchive) -> None:
    names = ["CT_small", "MR_small_bigendian", "emri_small_jpeg_2k_lossless", "rtstruct", "video_h264"]
    response, module = await stow_result(empty_client, [prepared_bytes(n) for n in names])
    assert response.status_code == 200
    items = referenced(module)
    assert [_value(i[SOP_INSTANCE]) for i in items] == [uids(n).instance for n in names]
    for item, name in zip(items, names, strict=True):
        assert _value(item[SOP_CLASS]) == uids(name).sop_class
        assert _value(item[RETRIEVE_URL]) == absolute(uids(name).path)
    assert FAILED_SOP_SEQUENCE not in module
    assert module[RETRIEVE_URL] == {"vr": "UR"}  # several studies: no single study URL
    assert empty_archive.index.count() == len(names)


async def test_stored_instances_are_retrievable(empty_client: httpx.AsyncClient) -> None:
    name = "MR_small_bigendian"
    response, module = await stow_result(empty_client, [prepared_bytes(name)])
    assert response.status_code == 200
    url = _value(referenced(module)[0][RETRIEVE_URL])
    got = await empty_client.get(url, headers={"Accept": f"{MULTIPART_DICOM}; transfer-syntax=*"})
    (part,) = parse_multipart(got, "application/dicom")
    assert part.transfer_syntax == ELE  # Big Endian is stored as Explicit VR LE (§8.7.3)
    assert BY_NAME[name].syntax == EBE
    got = await empty_client.get(url, headers={"Accept": "application/dicom"})
    assert got.status_code == 200 and got.content == part.content


async def test_every_reference_in_one_request(empty_client: httpx.AsyncClient) -> None:
    response, module = await stow_result(empty_client, [prepared_bytes(r.name) for r in REFERENCES])
    assert response.status_code == 200, module
    assert len(referenced(module)) == len(REFERENCES)
    for ref, item in zip(REFERENCES, referenced(module), strict=True):
        stored = await empty_client.get(_value(item[RETRIEVE_URL]),
                                        headers={"Accept": f"{MULTIPART_DICOM}; transfer-syntax=*"})
        (part,) = parse_multipart(stored, "application/dicom")
        if ref.byte_identical:
            assert part.content == prepared_bytes(ref.name), ref.name


async def test_store_into_a_study(empty_client: httpx.AsyncClient) -> None:
    """§10.5.1: POST /studies/{study} stores instances of that study; the module names it."""
    study = uids("CT_small").study
    response, module = await stow_result(empty_client, [prepared_bytes("CT_small")], study)
    assert response.status_code == 200
    assert module[RETRIEVE_URL] == {"vr": "UR", "Value": [absolute(f"studies/{study}")]}


async def test_an_instance_of_another_study_fails_with_409(empty_client: httpx.AsyncClient,
                                                           empty_archive: LoadedArchive) -> None:
    study = uids("CT_small").study
    response, module = await stow_result(empty_client, [prepared_bytes("MR_small")], study)
    assert response.status_code == 409
    (item,) = failed(module)
    assert _value(item[FAILURE_REASON]) == STUDY_UID_MISMATCH
    assert _value(item[SOP_INSTANCE]) == uids("MR_small").instance
    assert REFERENCED_SOP_SEQUENCE not in module
    assert response.headers["warning"].startswith("299 ")
    assert empty_archive.index.count() == 0


async def test_some_stored_some_failed_is_202(empty_client: httpx.AsyncClient,
                                              empty_archive: LoadedArchive) -> None:
    parts: list[bytes | tuple[str, bytes]] = [
        prepared_bytes("CT_small"),
        source_path("MR_truncated.dcm").read_bytes(),
        b"not dicom at all",
        ("application/dicom+json", b"[]"),
        prepared_bytes("chrX1"),
    ]
    response, module = await stow_result(empty_client, parts)
    assert response.status_code == 202
    assert [_value(i[SOP_INSTANCE]) for i in referenced(module)] == [uids("CT_small").instance,
                                                                    uids("chrX1").instance]
    failures = failed(module)
    assert len(failures) == 3
    assert all(_value(f[FAILURE_REASON]) for f in failures)
    assert _value(failures[0][FAILURE_REASON]) == CANNOT_UNDERSTAND
    assert empty_archive.index.count() == 2


async def test_storing_again_is_success_and_different_bytes_conflict(empty_client: httpx.AsyncClient) -> None:
    first, _ = await stow_result(empty_client, [prepared_bytes("MR_small_jpeg_ls_lossless")])
    assert first.status_code == 200
    again, module = await stow_result(empty_client, [prepared_bytes("MR_small_jpeg_ls_lossless")])
    assert again.status_code == 200 and len(referenced(module)) == 1
    conflict, module = await stow_result(empty_client, [source_path("MR_small.dcm").read_bytes()])
    assert conflict.status_code == 409
    (item,) = failed(module)
    assert _value(item[FAILURE_REASON]) == DIFFERENT_CONTENT


@pytest.mark.parametrize("content_type", [
    "application/dicom",
    "application/json",
    'multipart/related; type="application/dicom+json"; boundary=x',
    'multipart/related; type="application/dicom+xml"; boundary=x',
    "",
])
async def test_unsupported_request_media_types_are_415(empty_client: httpx.AsyncClient, content_type: str) -> None:
    headers = {"Accept": "application/dicom+json"}
    if content_type:
        headers["Content-Type"] = content_type
    response = await empty_client.post("studies", content=prepared_bytes("CT_small"), headers=headers)
    assert response.status_code == 415


async def test_multipart_without_a_type_parameter_is_taken_as_dicom(empty_client: httpx.AsyncClient) -> None:
    body, _ = stow_body([prepared_bytes("CT_small")], boundary="b0undary")
    response = await empty_client.post("studies", content=body,
                                       headers={"Content-Type": "multipart/related; boundary=b0undary"})
    assert response.status_code == 200


@pytest.mark.parametrize(("body", "content_type"), [
    (b"", f"{MULTIPART_DICOM}; boundary=abc"),
    (b"no delimiter here", f"{MULTIPART_DICOM}; boundary=abc"),
    (b"--abc\r\nContent-Type: application/dicom\r\n\r\nDICM", f"{MULTIPART_DICOM}; boundary=abc"),
    (b"--abc--\r\n", f"{MULTIPART_DICOM}; boundary=abc"),
    (b"--abc\r\n\r\nx\r\n--abc--", MULTIPART_DICOM),
])
async def test_malformed_payloads_are_400(empty_client: httpx.AsyncClient, body: bytes, content_type: str) -> None:
    response = await empty_client.post("studies", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 400


async def test_malformed_study_uid_in_the_path_is_400(empty_client: httpx.AsyncClient) -> None:
    body, content_type = stow_body([prepared_bytes("CT_small")])
    response = await empty_client.post("studies/not-a-uid", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 400


async def test_part_headers_may_be_folded_case_and_preamble(empty_client: httpx.AsyncClient) -> None:
    """RFC 2046 §5.1.1: a preamble before the first delimiter is ignored; header names are case-insensitive."""
    data = prepared_bytes("chrGerm")
    body = (b"preamble text\r\n--xyz\r\ncontent-type: Application/DICOM\r\nContent-Length: "
            + str(len(data)).encode() + b"\r\n\r\n" + data + b"\r\n--xyz--\r\nepilogue")
    response = await empty_client.post("studies", content=body,
                                       headers={"Content-Type": f"{MULTIPART_DICOM}; boundary=xyz"})
    assert response.status_code == 200, response.text


async def test_request_larger_than_the_limit_is_413(tmp_path: Any, archive_settings: Any) -> None:
    from dicomweb_origin.app import build_app

    app = build_app(archive_settings(tmp_path / "small", max_request_bytes=1000))
    body, content_type = stow_body([prepared_bytes("CT_small")])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        response = await client.post("/dicomweb/studies", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 413


async def test_a_chunked_request_over_the_limit_is_413_too(tmp_path: Any, archive_settings: Any) -> None:
    """Without a Content-Length the limit is enforced while the body streams in (§8.5: 413)."""
    from dicomweb_origin.app import build_app

    app = build_app(archive_settings(tmp_path / "small", max_request_bytes=1000))
    body, content_type = stow_body([prepared_bytes("CT_small")])

    async def chunks() -> Any:
        for start in range(0, len(body), 512):
            yield body[start:start + 512]

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        response = await client.post("/dicomweb/studies", content=chunks(), headers={"Content-Type": content_type})
    assert response.status_code == 413


def _stow_scope() -> dict[str, Any]:
    """The ASGI scope of a STOW request that declares 100,000 bytes of body (for raw ASGI calls)."""
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
            "path": "/dicomweb/studies", "raw_path": b"/dicomweb/studies", "query_string": b"", "root_path": "",
            "server": ("127.0.0.1", 8080), "client": ("127.0.0.1", 50000),
            "headers": [(b"host", b"127.0.0.1:8080"), (b"content-length", b"100000"),
                        (b"content-type", b'multipart/related; type="application/dicom"; boundary=xx')]}


async def test_a_client_that_disconnects_mid_upload_is_not_an_error(empty_archive: LoadedArchive) -> None:
    """The upload ends early: the server logs it and moves on; no exception escapes to the ASGI server."""
    body = b'--xx\r\nContent-Type: application/dicom\r\n\r\n' + prepared_bytes("CT_small")[:1000]
    messages: list[Message] = [{"type": "http.request", "body": body, "more_body": True}, {"type": "http.disconnect"}]
    sent: list[Message] = []

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = _stow_scope()
    await empty_archive.app(scope, receive, send)  # raised ClientDisconnect before
    assert empty_archive.index.count() == 0


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
async def test_a_compressed_request_body_is_decoded(empty_client: httpx.AsyncClient, empty_archive: LoadedArchive,
                                                     coding: str) -> None:
    """§8.4.3 / RFC 9110 §8.4: a STOW body sent with a content coding is stored as the instances it holds."""
    import zlib

    body, content_type = stow_body([prepared_bytes("CT_small")])
    packer = zlib.compressobj(wbits=31 if coding == "gzip" else 15)
    packed = packer.compress(body) + packer.flush()
    response = await empty_client.post("studies", content=packed, headers={
        "Content-Type": content_type, "Content-Encoding": coding, "Accept": "application/dicom+json"})
    assert response.status_code == 200, response.text
    assert [_value(i[SOP_INSTANCE]) for i in referenced(response.json())] == [uids("CT_small").instance]
    assert empty_archive.index.count() == 1


@pytest.mark.parametrize(("coding", "payload", "status", "says"), [
    ("br", b"anything", 415, "'br' is not supported"),
    ("gzip", b"this is not gzip data", 400, "not valid gzip"),
    ("gzip", b"\x1f\x8b\x08\x00\x00\x00\x00\x00", 400, "ends before"),
])
async def test_unsupported_or_broken_content_codings_are_refused(empty_client: httpx.AsyncClient, coding: str,
                                                                 payload: bytes, status: int, says: str) -> None:
    response = await empty_client.post("studies", content=payload, headers={
        "Content-Type": f"{MULTIPART_DICOM}; boundary=xx", "Content-Encoding": coding})
    assert response.status_code == status
    assert says in response.text


async def test_the_size_limit_applies_to_the_decoded_body(tmp_path: Any, archive_settings: Any) -> None:
    """A few kilobytes of gzip that inflate to megabytes are a 413, not a full disk."""
    import gzip

    from dicomweb_origin.app import build_app

    app = build_app(archive_settings(tmp_path / "small", max_request_bytes=1 << 20))
    bomb = gzip.compress(bytes(64 << 20))
    assert len(bomb) < 100_000
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        response = await client.post("/dicomweb/studies", content=bomb, headers={
            "Content-Type": f"{MULTIPART_DICOM}; boundary=xx", "Content-Encoding": "gzip"})
    assert response.status_code == 413


@pytest.mark.parametrize(("accept", "expected"), [
    ("application/dicom+xml", "application/dicom+xml"),
    ('multipart/related; type="application/dicom+xml"', "application/dicom+xml"),
    ("application/dicom+json;q=0.5, application/dicom+xml", "application/dicom+xml"),
    ("application/dicom+xml;q=0.5, application/json", "application/dicom+json"),
    ("*/*", "application/dicom+json"),
    (None, "application/dicom+json"),
])
async def test_the_response_module_in_json_or_xml(empty_client: httpx.AsyncClient, accept: str | None,
                                                  expected: str) -> None:
    """Table 10.5.4-1: the Store Instances Response Module as DICOM JSON (default) or Native DICOM Model XML."""
    import xml.etree.ElementTree as ET

    body, content_type = stow_body([prepared_bytes("CT_small")])
    headers = {"Content-Type": content_type} | ({"Accept": accept} if accept else {})
    response = await empty_client.post("studies", content=body, headers=headers)
    assert response.status_code == 200
    assert media_params(response.headers["content-type"])[0] == expected
    if expected == "application/dicom+xml":
        root = ET.fromstring(response.content)
        uid = root.find("./DicomAttribute[@tag='00081199']/Item/DicomAttribute[@tag='00081155']/Value")
        assert uid is not None and uid.text == uids("CT_small").instance
    else:
        assert _value(referenced(response.json())[0][SOP_INSTANCE]) == uids("CT_small").instance


async def test_a_malformed_content_type_is_400_and_a_missing_one_415(empty_client: httpx.AsyncClient) -> None:
    repeated = await empty_client.post("studies", content=b"x", headers={
        "Content-Type": f"{MULTIPART_DICOM}; boundary=a; boundary=b"})
    assert repeated.status_code == 400
    assert "malformed Content-Type" in repeated.text
    missing = await empty_client.post("studies", content=b"x")
    assert missing.status_code == 415


async def test_a_body_that_stops_arriving_is_408(tmp_path: Any, archive_settings: Any) -> None:
    """A client that declares a body and then sends nothing does not hold a worker forever."""
    import anyio

    from dicomweb_origin.app import build_app

    app = build_app(archive_settings(tmp_path / "data", body_idle_seconds=0.2))
    first = [{"type": "http.request", "body": b"--xx\r\n", "more_body": True}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if first:
            return first.pop()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = _stow_scope()
    with anyio.fail_after(10):
        await app(scope, receive, send)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 408
    assert (b"connection", b"close") in sent[0]["headers"]


async def test_several_gzip_members_are_one_body(empty_client: httpx.AsyncClient) -> None:
    """RFC 1952 §2.2: a gzip file may be several members one after another."""
    import gzip

    body, content_type = stow_body([prepared_bytes("CT_small")])
    half = len(body) // 2
    packed = gzip.compress(body[:half]) + gzip.compress(body[half:])
    response = await empty_client.post("studies", content=packed, headers={
        "Content-Type": content_type, "Content-Encoding": "gzip"})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
async def test_data_after_the_compressed_stream_is_refused(tmp_path: Any, coding: str, archive_settings: Any) -> None:
    """Bytes after the end of the stream are not silently buffered: 400, whatever their size."""
    import zlib

    from dicomweb_origin.app import build_app

    body, content_type = stow_body([prepared_bytes("CT_small")])
    packer = zlib.compressobj(wbits=31 if coding == "gzip" else 15)
    packed = packer.compress(body) + packer.flush() + bytes(4 << 20)

    async def chunks() -> Any:  # chunked: no Content-Length to refuse it early
        for start in range(0, len(packed), 65536):
            yield packed[start:start + 65536]

    app = build_app(archive_settings(tmp_path / "data", max_request_bytes=1 << 20))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        response = await client.post("/dicomweb/studies", content=chunks(), headers={
            "Content-Type": content_type, "Content-Encoding": coding})
    assert response.status_code == 400
    assert app.state.archive.index.count() == 0


@pytest.mark.parametrize("accept", ["application/dicom+json, text/html", ", ".join(["image/jpeg"] * 100)])
async def test_an_accept_header_that_retrieve_would_refuse_gets_the_default_response(
        empty_client: httpx.AsyncClient, accept: str) -> None:
    """The instances are stored before the response is chosen: an odd Accept cannot turn that into an error."""
    body, content_type = stow_body([prepared_bytes("CT_small")])
    response = await empty_client.post("studies", content=body, headers={"Content-Type": content_type,
                                                                         "Accept": accept})
    assert response.status_code == 200
    assert media_params(response.headers["content-type"])[0] == "application/dicom+json"


async def test_a_refused_store_points_at_no_study(empty_client: httpx.AsyncClient) -> None:
    """Annex I: RetrieveURL names the study the instances went to; with none stored it is empty (Type 2)."""
    response, module = await stow_result(empty_client, [prepared_bytes("CT_small")], study="1.2.3.4")
    assert response.status_code == 409
    assert module[RETRIEVE_URL] == {"vr": "UR"}
