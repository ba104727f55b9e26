"""Every request on a connection gets its response: kept-alive and pipelined requests, against a real server.

The server is a real process (``live_server``) over an archive with one instance larger than the size
above which responses stream (``SMALL_BODY``), so the requests that follow a response arrive while its
last bytes are still on their way: what a pooled client does after a study retrieve.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from pydicom import dcmread

from dicomweb_origin.app import Archive
from dicomweb_origin.server import guarded_protocol
from dicomweb_origin.settings import Settings
from dicomweb_origin.web.send import SMALL_BODY
from tests.support.server import LiveServer, live_server
from tests.support.synthetic import instance_bytes, uid

pytestmark = pytest.mark.e2e
BOUNDARY = "connections-boundary"
STOW_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
STUDY, SERIES, INSTANCE = uid(7001), uid(7001, 1), uid(7001, 1, 1)
BIG = f"/dicomweb/studies/{STUDY}/series/{SERIES}/instances/{INSTANCE}"


def big_instance() -> bytes:
    """A 16-bit 2048 x 2304 instance: 9.4 MB, above SMALL_BODY, so its retrieve streams."""
    ds = dcmread(io.BytesIO(instance_bytes(STUDY, SERIES, INSTANCE)))
    ds.Rows, ds.Columns = 2048, 2304
    ds.PixelData = np.arange(2048 * 2304, dtype=np.uint16).tobytes()
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    assert len(out.getvalue()) > SMALL_BODY
    return out.getvalue()


def stow_body(number: int, pixel_bytes: int = 512 * 512 * 2) -> bytes:
    """A STOW-RS body of one 512 x 512 16-bit instance (about 525 KB) of a study of its own."""
    ds = dcmread(io.BytesIO(instance_bytes(uid(7002), uid(7002, 1), uid(7002, 1, number))))
    ds.Rows = ds.Columns = 512
    ds.PixelData = bytes(pixel_bytes)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return (f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode() + out.getvalue()
            + f"\r\n--{BOUNDARY}--\r\n".encode())


def stow_request(body: bytes) -> bytes:
    return (b"POST /dicomweb/studies HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/dicom+json\r\n"
            b"Content-Type: %s\r\nContent-Length: %d\r\n\r\n" % (STOW_TYPE.encode(), len(body))) + body


def responses(sock: socket.socket, count: int) -> list[tuple[int, bytes]]:
    """Read up to ``count`` responses (status, body) with a Content-Length each; fewer if the server closes."""
    buffer, found = b"", list[tuple[int, bytes]]()

    def fill() -> bool:
        nonlocal buffer
        try:
            data = sock.recv(1 << 20)
        except ConnectionResetError:
            data = b""
        buffer += data
        return bool(data)

    while len(found) < count:
        while b"\r\n\r\n" not in buffer:
            if not fill():
                return found
        head, buffer = buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        fields = dict(line.lower().split(": ", 1) for line in lines[1:])
        length = int(fields["content-length"])
        while len(buffer) < length:
            if not fill():
                return found
        found.append((int(lines[0].split()[1]), buffer[:length]))
        buffer = buffer[length:]
    return found


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("connections") / "data"
    archive = Archive(Settings(data_dir=data))
    try:
        assert archive.ingest.store(io.BytesIO(big_instance())).outcome.value == "stored"
    finally:
        archive.index.close()
    with live_server(data) as running:
        yield running


def _connect(server: LiveServer) -> socket.socket:
    host, port = server.origin.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def test_a_stow_pipelined_after_a_streamed_response_gets_its_own_response(server: LiveServer) -> None:
    get = f"GET {BIG} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/dicom; transfer-syntax=*\r\n\r\n".encode()
    with _connect(server) as sock:
        sock.sendall(get + stow_request(stow_body(1)))  # both requests at once, on one socket
        answered = responses(sock, 2)
    assert [status for status, _ in answered] == [200, 200], [(s, b[:200]) for s, b in answered]
    assert answered[0][1] == big_instance()  # the first response whole, not cut by a reset
    assert uid(7002, 1, 1).encode() in answered[1][1]


def test_pooled_stows_after_study_retrieves_are_all_answered(server: LiveServer) -> None:
    """A kept-alive connection's STOW sent the moment a study retrieve's last byte arrives, 10 times over.

    Other clients keep the server busy (rendering), as under the mixed load where the STOWs were lost.
    """
    stop = threading.Event()

    def other_client() -> None:
        with httpx.Client(base_url=server.origin, timeout=30) as other:
            while not stop.is_set():
                other.get(BIG + "/rendered", headers={"Accept": "image/jpeg"})

    study = f"GET /dicomweb/studies/{STUDY} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: multipart/related; " \
            'type="application/dicom"; transfer-syntax=*\r\n\r\n'
    with ThreadPoolExecutor(2) as pool, _connect(server) as sock:
        busy = [pool.submit(other_client) for _ in range(2)]
        try:
            for number in range(2, 12):
                sock.sendall(study.encode())
                [(status, body)] = responses(sock, 1)
                assert status == 200 and len(body) > SMALL_BODY
                sock.sendall(stow_request(stow_body(number)))  # at once, as a pooled client does
                answered = responses(sock, 1)
                assert [status for status, _ in answered] == [200], (number, answered)
        finally:
            stop.set()
        for future in busy:
            future.result()
    with httpx.Client(base_url=server.origin, timeout=30) as client:
        head = client.head(f"/dicomweb/studies/{uid(7002)}/series/{uid(7002, 1)}/instances/{uid(7002, 1, 11)}",
                           headers={"Accept": "application/dicom; transfer-syntax=*"})
    assert head.status_code == 200


# -- a response whose end comes late: the next request is already there --------------------------------

LATE = 0.3  # seconds between a response's last byte and its end (what a busy server takes)


async def late_ending_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """GET: 64 KB whose end (the ASGI message with ``more_body`` False) comes LATE s after the bytes.

    POST: the number of body bytes received. A pooled client has read the GET's bytes and sent its POST
    by the time the GET's response ends, so the POST's body is arriving when the guard sees that end.
    """
    assert scope["type"] == "http"
    if scope["method"] == "GET":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"65536")]})
        await send({"type": "http.response.body", "body": bytes(65536), "more_body": True})
        await asyncio.sleep(LATE)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size, more = size + len(message.get("body", b"")), message.get("more_body", False)
    body = str(size).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


@contextlib.contextmanager
def in_process(app: Any) -> Iterator[str]:
    """``app`` served by uvicorn with the server's guarded protocol, in a thread, on a free loopback port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    running = uvicorn.Server(uvicorn.Config(app, http=guarded_protocol(Settings()), lifespan="off",
                                            log_level="warning"))
    thread = threading.Thread(target=running.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not running.started:
            time.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        running.should_exit = True
        thread.join(10)
        sock.close()


def test_a_request_sent_before_the_previous_response_ended_is_answered() -> None:
    """The previous response's end must not be judged by the next request's body (which is still arriving)."""
    with in_process(late_ending_app) as origin, httpx.Client(base_url=origin, timeout=10) as client:
        for _ in range(3):  # one pooled connection
            assert len(client.get("/").content) == 65536
            stored = client.post("/", content=bytes(525_000))
            assert stored.status_code == 200 and stored.text == "525000"


# -- client data in response headers ---------------------------------------------------------------------


def _stow_parts(*instances: bytes) -> bytes:
    return b"".join(f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode() + instance + b"\r\n"
                    for instance in instances) + f"--{BOUNDARY}--\r\n".encode()


@pytest.mark.parametrize("bad", ["\x00x", "\x01", "\nx", "\u00e9\""], ids=["nul", "soh", "newline", "non-ascii"])
@pytest.mark.parametrize("accept", ["application/dicom+json", "application/dicom+xml"])
def test_a_part_whose_uid_holds_a_control_character_still_gets_a_response(
        server: LiveServer, bad: str, accept: str) -> None:
    """The Warning header quotes the refused UID escaped; the valid part of the same request is stored."""
    number = 100 + ord(bad[0]) + (1000 if accept.endswith("xml") else 0)
    valid = uid(7003, 1, number)
    body = _stow_parts(instance_bytes(uid(7003), uid(7003, 1), valid),
                       instance_bytes(uid(7003), uid(7003, 1), uid(7003, 1, number, 2) + bad))
    response = httpx.post(server.url + "/studies", content=body, timeout=30,
                          headers={"Content-Type": STOW_TYPE, "Accept": accept})
    assert response.status_code == 202, response.text  # some stored, some failed (Table 10.5.3-1)
    warning = response.headers["warning"]
    assert warning.isascii() and warning.isprintable() and warning.startswith('299 dicomweb-origin "')
    assert warning.count('"') == 2  # one quoted-string: the client's quote did not end it
    assert "a UID is digits and dots" in warning
    assert valid in response.text  # reported as stored ...
    stored = httpx.head(f"{server.url}/studies/{uid(7003)}/series/{uid(7003, 1)}/instances/{valid}",
                        headers={"Accept": "application/dicom; transfer-syntax=*"})
    assert stored.status_code == 200  # ... and stored

