"""Hostile clients get bounded time and memory: each attack against a real server process, on raw sockets.

The server runs with small timeouts (``--header-timeout 1``, ``--body-idle-timeout 1``) so that the
tests wait seconds, not minutes; the limits themselves are the defaults documented in
docs/conformance.md (Limits). The Host allow-list and trusted proxies are checked through the ASGI app.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from dicomweb_origin.app import build_app
from dicomweb_origin.settings import Settings
from dicomweb_origin.slots import BODY_GRACE
from tests.support import REPO
from tests.support.server import LiveServer, host_keeping_proxy, live_server

pytestmark = pytest.mark.e2e
BOUNDARY = b"limits-boundary"
STOW_TYPE = b'multipart/related; type="application/dicom"; boundary=' + BOUNDARY
FAILURE_REASON = "00081197"


# -- hostile payloads ---------------------------------------------------------------------------


def _nested(depth: int, defined: bool, implicit: bool = False) -> bytes:
    """(0040,0275) Request Attributes Sequence nested ``depth`` deep, each level one item."""
    inner = b""
    for _ in range(depth):
        head = struct.pack("<HH", 0x0040, 0x0275) + (b"" if implicit else b"SQ\0\0")
        if defined:
            item = struct.pack("<HHI", 0xFFFE, 0xE000, len(inner)) + inner
            inner = head + struct.pack("<I", len(item)) + item
        else:
            item = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF) + inner + struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
            inner = head + struct.pack("<I", 0xFFFFFFFF) + item + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    return inner


def deep_instance(depth: int, defined: bool, implicit: bool = False) -> bytes:
    """A Part 10 Secondary Capture instance whose last element nests sequences ``depth`` deep."""
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = generate_uid()
    ds.PatientID = "DEEP"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True, implicit_vr=implicit)
    return out.getvalue() + _nested(depth, defined, implicit)


def stow_body(instance: bytes) -> bytes:
    return (b"--" + BOUNDARY + b"\r\nContent-Type: application/dicom\r\n\r\n" + instance
            + b"\r\n--" + BOUNDARY + b"--\r\n")


def stow_request(body: bytes, content_length: int | None = None) -> bytes:
    return (b"POST /dicomweb/studies HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/dicom+json\r\n"
            b"Content-Type: " + STOW_TYPE + b"\r\nContent-Length: %d\r\n\r\n" % (content_length or len(body)))


# -- raw-socket client ---------------------------------------------------------------------------


def connect(server: LiveServer, timeout: float = 10.0) -> socket.socket:
    host, port = server.origin.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=timeout)


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """Status and everything the server sent until it closed (or the socket timed out: AssertionError)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        raise AssertionError(f"the server did not close the connection; got {data[:200]!r}") from None
    assert data.startswith(b"HTTP/1.1 "), data[:200]
    return int(data[9:12]), data


def request_once(server: LiveServer, raw: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    with connect(server, timeout) as sock:
        sock.sendall(raw)  # no half-close: uvicorn drops a connection at EOF (asyncio's default)
        return read_response(sock)


def get(server: LiveServer, path: str = "/dicomweb/studies", timeout: float = 10.0) -> tuple[int, bytes]:
    raw = b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/dicom+json\r\nConnection: close\r\n\r\n"
    return request_once(server, raw % path.encode(), timeout)


def server_process(server: LiveServer) -> psutil.Process:
    port = server.origin.rsplit(":", 1)[1]
    return next(p for p in psutil.Process().children() if port in p.cmdline())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("limits") / "data"
    with live_server(data, "--header-timeout", "1", "--body-idle-timeout", "1", "--body-min-rate", "2000",
                     "--keep-alive", "1") as running:
        yield running


# -- request heads ---------------------------------------------------------------------------------


def test_a_huge_header_gets_431_while_another_client_is_served(server: LiveServer) -> None:
    start = b"GET /dicomweb/studies HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    with connect(server) as big:
        big.sendall(start)
        stop = threading.Event()

        def flood() -> int:  # 128 MB in 64 KiB lines, as fast as the server takes them
            sent, line = 0, b"X-Fill: " + b"a" * 8000 + b"\r\n"
            try:
                while not stop.is_set() and sent < 128 << 20:
                    big.sendall(line)
                    sent += len(line)
            except OSError:
                pass  # the server closed the connection: what this test wants
            return sent

        with ThreadPoolExecutor(1) as pool:
            flooding = pool.submit(flood)
            status, body = get(server, timeout=5)  # served while the flood goes on
            assert status == 200 or status == 204, body[:300]
            sent = flooding.result(timeout=30)
            stop.set()
    assert sent < 8 << 20, f"the server kept reading a {sent}-byte header"


def test_a_header_over_the_total_limit_gets_431(server: LiveServer) -> None:
    fields = b"".join(b"X-Field-%d: %s\r\n" % (n, b"v" * 1000) for n in range(70))  # 70 KB < line limit
    status, body = request_once(server, b"GET /dicomweb/studies HTTP/1.1\r\nHost: 127.0.0.1\r\n" + fields)
    assert status == 431 and b"head exceeds 65536 bytes" in body, body


def test_a_long_header_line_gets_431_and_a_long_target_414(server: LiveServer) -> None:
    line = b"X-Long: " + b"v" * (17 << 10) + b"\r\n"
    status, body = request_once(server, b"GET /dicomweb/studies HTTP/1.1\r\nHost: 127.0.0.1\r\n" + line + b"\r\n")
    assert status == 431 and b"header field line exceeds 16384 bytes" in body, body
    target = b"/dicomweb/studies?PatientID=" + b"1" * (17 << 10)
    status, body = request_once(server, b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert status == 414, body
    # Just under the limits: served.
    fields = b"".join(b"X-Field-%d: %s\r\n" % (n, b"v" * 1000) for n in range(50))
    status, body = request_once(server, b"GET /dicomweb/studies HTTP/1.1\r\nHost: 127.0.0.1\r\n" + fields
                                + b"Accept: application/dicom+json\r\nConnection: close\r\n\r\n")
    assert status in (200, 204), body[:300]


def test_slowloris_headers_are_cut_off_after_the_header_timeout(server: LiveServer) -> None:
    head = b"GET /dicomweb/studies HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"s" * 100
    sockets = [connect(server, timeout=8) for _ in range(28)]
    try:
        started = time.monotonic()
        closed: set[int] = set()
        statuses = []
        for byte in head:  # one byte every 0.1 s to every connection, until the server hangs up
            for n, sock in enumerate(sockets):
                if n in closed:
                    continue
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    closed.add(n)
            if time.monotonic() - started > 2.5:
                break
            time.sleep(0.1)
        for sock in sockets:
            statuses.append(read_response(sock)[0])  # AssertionError if still open after 8 s
        assert statuses == [408] * 28
        status, _ = get(server)
        assert status in (200, 204)
    finally:
        for sock in sockets:
            sock.close()


def test_an_idle_connection_is_closed(server: LiveServer) -> None:
    with connect(server, timeout=8) as sock:
        assert sock.recv(100) == b""  # closed without a word, after the header timeout


def test_a_kept_alive_connection_is_closed_when_idle(server: LiveServer) -> None:
    with connect(server, timeout=8) as sock:
        sock.sendall(b"GET /dicomweb/studies HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/dicom+json\r\n\r\n")
        time.sleep(0.3)
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 2"), first[:200]
        assert read_response_tail(sock) == b""


def read_response_tail(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


# -- request bodies ---------------------------------------------------------------------------------


def test_a_dripped_stow_body_is_cut_off(server: LiveServer) -> None:
    body = stow_body(deep_instance(1, True))
    with connect(server, timeout=10) as sock:
        sock.sendall(stow_request(body))
        started = time.monotonic()
        try:
            for byte in body:  # one byte every 0.2 s: never idle for a second, far below 2000 bytes/s
                sock.sendall(bytes([byte]))
                time.sleep(0.2)
                if time.monotonic() - started > 6:
                    break
        except OSError:
            pass
        status, response = read_response(sock)
    assert status == 408 and b"less than 2000 bytes/s" in response, response


def test_a_stalled_stow_body_is_cut_off(server: LiveServer) -> None:
    body = stow_body(deep_instance(1, True))
    with connect(server, timeout=10) as sock:
        sock.sendall(stow_request(body) + body[:100])
        status, response = read_response(sock)
    assert status == 408, response


def test_an_unread_body_does_not_hold_the_connection(server: LiveServer) -> None:
    with connect(server, timeout=8) as sock:
        sock.sendall(b"GET /dicomweb/studies HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/dicom+json\r\n"
                     b"Content-Length: 1000000\r\n\r\nx")
        status, _ = read_response(sock)  # answered, then closed rather than waiting for 999,999 bytes
    assert status in (200, 204)


# -- connection slots (slots.py), scaled down: 48 in all, 16 per client address ------------------------------


def connect_from(server: LiveServer, source: str, timeout: float = 10.0) -> socket.socket:
    """A connection from ``source``: any 127.0.0.0/8 address is this machine, a client address of its own."""
    host, port = server.origin.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.settimeout(timeout)
    sock.bind((source, 0))
    sock.connect((host, int(port)))
    return sock


def get_from(server: LiveServer, source: str, path: str) -> tuple[int, bytes]:
    with connect_from(server, source) as sock:
        sock.sendall(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/dicom+json\r\n"
                     b"Connection: close\r\n\r\n" % path.encode())
        return read_response(sock)


@pytest.fixture(scope="module")
def crowded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("slots") / "data"
    with live_server(data, "--max-connections", "48", "--max-connections-per-client", "16") as running:
        yield running


def test_slow_uploads_and_idle_sockets_do_not_lock_out_other_clients_or_health(crowded: LiveServer) -> None:
    """The issue's probe scaled down 20 times: 70 STOWs dripping ~1,100 bytes/s each and 70 idle sockets.

    Before: uvicorn's limit_concurrency answered every request 503 (/health too) while they lasted.
    Now each newcomer takes the slot of an idle socket or the slowest body; those bodies are told 503.
    """
    head = stow_request(b"", content_length=200_000)
    slow = []
    for _ in range(70):
        slow.append(connect_from(crowded, "127.0.0.1"))
        slow[-1].sendall(head)
    idle = [connect_from(crowded, f"127.0.1.{n % 5 + 1}") for n in range(70)]
    stop = threading.Event()

    def drip() -> None:  # 220 bytes every 0.2 s on each slow connection
        while not stop.is_set():
            for sock in slow:
                with contextlib.suppress(OSError):  # never blocks: a full buffer or a closed socket skips a turn
                    sock.send(b"x" * 220, socket.MSG_DONTWAIT)
            time.sleep(0.2)

    body = stow_body(deep_instance(1, True))
    try:
        with ThreadPoolExecutor(1) as pool:
            dripping = pool.submit(drip)
            try:
                time.sleep(BODY_GRACE + 0.5)  # the bodies are judged by their rate now
                for source in ("127.0.0.2", "127.0.0.1"):  # a new client, and one behind the slow uploads' address
                    for path in ("/health", "/ready", "/dicomweb/studies"):
                        status, response = get_from(crowded, source, path)
                        assert status == 200, (source, path, response[:300])
                    with connect_from(crowded, source) as sock:  # a STOW at full speed gets through too
                        sock.sendall(stow_request(body) + body)
                        status, response = read_response_until_complete(sock)
                        assert status == 200, response[:300]
            finally:
                stop.set()
            dripping.result()
        refused = 0
        for sock in slow:
            sock.setblocking(False)  # the refused ones have their answer already; the rest are still uploading
            with contextlib.suppress(OSError):
                answer = sock.recv(4096)
                refused += answer.startswith(b"HTTP/1.1 503") and b"arrived slowest" in answer
        assert refused >= 70 - 16  # the address's own slowest bodies made room for its later connections
    finally:
        for sock in slow + idle:
            sock.close()


def read_response_until_complete(sock: socket.socket) -> tuple[int, bytes]:
    """One response on a kept-alive connection: its head, then Content-Length bytes."""
    data = b""

    def more() -> bytes:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection; got {data[:300]!r}"
        return chunk

    while b"\r\n\r\n" not in data:
        data += more()
    head, rest = data.split(b"\r\n\r\n", 1)
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(rest) < length:
        rest += more()
    return int(head[9:12]), head + b"\r\n\r\n" + rest


# -- deep nesting ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("defined", [True, False], ids=["defined-length", "undefined-length"])
def test_deeply_nested_sequences_are_refused_without_traceback_in_bounded_memory(
        server: LiveServer, defined: bool) -> None:
    instance = deep_instance(10_000, defined)
    assert len(instance) > 150_000
    body = stow_body(instance)
    process = server_process(server)
    before = process.memory_info().rss
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.01)

    def post(_: int) -> tuple[int, bytes]:
        return request_once(server, stow_request(body).replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
                            + body, timeout=60)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(post, range(16)))
    finally:
        done.set()
        sampler.join()
    for status, raw in answers:
        assert status == 409, raw[:500]  # every instance failed (PS3.18 §10.5.3.2)
        module = json.loads(raw.split(b"\r\n\r\n", 1)[1])
        failed = module["00081198"]["Value"][0]
        assert failed[FAILURE_REASON]["Value"] == [0xC000]
    log = server.log.read_text(errors="replace")
    assert "Traceback" not in log and "RecursionError" not in log, log[-3000:]
    # 16 requests of 200-360 KB: the server's memory grows by a small multiple of what it received.
    growth = peak - before
    assert growth < 16 * len(body) * 8, f"RSS grew by {growth >> 20} MiB"
    assert process.memory_info().rss - before < 16 * len(body) * 4


def test_nesting_at_the_limit_is_stored_and_one_deeper_refused(tmp_path: Path) -> None:
    app = build_app(Settings(data_dir=tmp_path / "data"))
    ingest = app.state.archive.ingest
    for implicit in (False, True):
        for defined in (True, False):
            ok = ingest.store(io.BytesIO(deep_instance(32, defined, implicit)))
            assert ok.outcome.value == "stored", (implicit, defined, ok.reason)
            deep = ingest.store(io.BytesIO(deep_instance(33, defined, implicit)))
            assert deep.outcome.value == "failed" and deep.failure_reason == 0xC000
            assert "nested deeper than 32 levels" in (deep.reason or "")
    stored = pydicom.dcmread(io.BytesIO(deep_instance(32, True)))
    assert stored.RequestAttributesSequence[0].RequestAttributesSequence is not None


# -- Host and forwarded headers ------------------------------------------------------------------------


def test_a_foreign_host_gets_400_on_the_real_server(server: LiveServer) -> None:
    raw = b"GET /dicomweb/studies HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
    status, body = request_once(server, raw)
    assert status == 400 and b"evil.example" in body and b"--allowed-host" in body
    raw = b"GET /dicomweb/studies HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-Host: evil.example\r\n" \
          b"Accept: application/dicom+json\r\nConnection: close\r\n\r\n"
    assert request_once(server, raw)[0] in (200, 204)  # forwarded headers from an untrusted peer are ignored
    # RFC 9112 §3.2: more than one Host field is 400 (whichever came first would be a guess).
    for hosts in (b"Host: 127.0.0.1\r\nHost: evil.example\r\n", b"Host: localhost\r\nHost: localhost\r\n"):
        status, body = request_once(server, b"GET /dicomweb/studies HTTP/1.1\r\n" + hosts + b"Connection: close\r\n\r\n")
        assert status == 400 and b"more than one Host" in body, body
    # A Host without a port that names this machine: the links carry the port the client really reached.
    port = server.origin.rsplit(":", 1)[1].encode()
    raw = b"GET /dicomweb/studies HTTP/1.1\r\nHost: localhost\r\nAccept: application/dicom+json\r\nConnection: close\r\n\r\n"
    request_once(server, stow_request(stow_body(deep_instance(1, True))) + stow_body(deep_instance(1, True)))
    status, body = request_once(server, raw)
    assert status == 200 and b'"http://localhost:' + port + b'/dicomweb/studies/' in body, body[-300:]
    # RFC 9112 §3.2: an HTTP/1.1 request without Host is 400; HTTP/1.0 may omit it.
    assert request_once(server, b"GET /dicomweb/studies HTTP/1.1\r\nConnection: close\r\n\r\n")[0] == 400
    raw = b"GET /dicomweb/studies HTTP/1.0\r\nAccept: application/dicom+json\r\n\r\n"
    assert request_once(server, raw)[0] in (200, 204)


def test_a_client_behind_a_proxy_on_another_port_that_keeps_host_is_served(server: LiveServer) -> None:
    """A viewer at 127.0.0.1:PROXYPORT whose proxy forwards Host: answers, with links through the proxy."""
    request_once(server, stow_request(stow_body(deep_instance(1, True))) + stow_body(deep_instance(1, True)))
    with host_keeping_proxy(server.origin) as proxy:
        response = httpx.get(proxy + "/dicomweb/studies?limit=101&offset=0&fuzzymatching=true&includefield=00081030",
                             headers={"Accept": "application/dicom+json"}, timeout=30)
        assert response.status_code == 200, response.text
        assert response.json()[0]["00081190"]["Value"][0].startswith(proxy + "/dicomweb/studies/")
        for host in ("localhost:3000", "127.0.0.1:1"):  # OHIF's development server; any loopback port
            response = httpx.get(proxy + "/dicomweb/studies", headers={"Accept": "application/dicom+json",
                                                                       "Host": host}, timeout=30)
            assert response.status_code == 200, (host, response.text)
            assert response.json()[0]["00081190"]["Value"][0].startswith(f"http://{host}/dicomweb/")


def _app(tmp_path: Path, **settings: object) -> httpx.AsyncClient:
    app = build_app(Settings(data_dir=tmp_path / "data", **settings))
    store = app.state.archive.ingest.store
    result = store(io.BytesIO(deep_instance(1, True)))
    assert result.outcome.value == "stored"
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 4000))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080/dicomweb/")


async def _retrieve_urls(client: httpx.AsyncClient, headers: dict[str, str] | None = None) -> httpx.Response:
    return await client.get("studies", headers={"Accept": "application/dicom+json"} | (headers or {}))


@pytest.mark.anyio
async def test_only_configured_names_appear_in_returned_urls(tmp_path: Path) -> None:
    async with _app(tmp_path, allowed_hosts=("pacs.example",)) as client:
        response = await _retrieve_urls(client)
        assert response.status_code == 200
        assert response.json()[0]["00081190"]["Value"][0].startswith("http://127.0.0.1:8080/dicomweb/studies/")
        for host in ("pacs.example", "pacs.example:8443", "localhost:8080", "[::1]:8080", "127.0.0.1"):
            response = await _retrieve_urls(client, {"Host": host})
            assert response.status_code == 200, host
            url = response.json()[0]["00081190"]["Value"][0]
            assert url.split("/")[2].startswith(host.split(":")[0].lower()), (host, url)
        for host in ("evil.example", "evil.example:8080", "pacs.example.evil.example", "a b", ""):
            response = await _retrieve_urls(client, {"Host": host})
            assert response.status_code == 400, host
            assert "evil" not in response.headers.get("content-location", "")
        # Forwarded headers from a peer that is no trusted proxy change nothing.
        response = await _retrieve_urls(client, {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https",
                                                 "Forwarded": "host=evil.example;proto=https"})
        assert response.json()[0]["00081190"]["Value"][0].startswith("http://127.0.0.1:8080/")


def _host_of(response: httpx.Response) -> str:
    """The host[:port] of the first RetrieveURL of a search answer."""
    return str(response.json()[0]["00081190"]["Value"][0].split("/")[2])


@pytest.mark.anyio
async def test_loopback_names_at_any_port_allowed_names_at_their_port(tmp_path: Path) -> None:
    """A viewer behind a proxy that keeps Host (OHIF's dev server at localhost:3000, a proxy at 127.0.0.1:PORT).

    Loopback names are this machine at any port; ``--allowed-host NAME`` allows NAME at any port, ``NAME:PORT``
    only at that port (a Host without a port names the scheme's default port, RFC 9110 §7.2).
    """
    async with _app(tmp_path, allowed_hosts=("pacs.example", "viewer.example:3000")) as client:
        for host in ("localhost:3000", "127.0.0.1:45678", "[::1]:1", "LOCALHOST:9999", "pacs.example:9999",
                     "viewer.example:3000"):
            response = await _retrieve_urls(client, {"Host": host})
            assert response.status_code == 200, (host, response.text)
            assert _host_of(response).lower() == host.lower()
        for host in ("viewer.example:3001", "viewer.example", "evil.example:3000", "localhost.evil.example:3000"):
            response = await _retrieve_urls(client, {"Host": host})
            assert response.status_code == 400, host
            assert "is not a name of this server" in response.text


@pytest.mark.anyio
async def test_a_host_without_a_port_that_names_this_machine_gets_the_sockets_port(tmp_path: Path) -> None:
    """``Host: localhost`` on a socket at port 8080: URLs say localhost:8080, not port 80 (which is not us)."""
    async with _app(tmp_path, allowed_hosts=("pacs.example", "pacs.example:8443")) as client:
        for host, expected in (("localhost", "localhost:8080"), ("127.0.0.1", "127.0.0.1:8080"),
                               ("[::1]", "[::1]:8080"), ("pacs.example", "pacs.example")):
            response = await _retrieve_urls(client, {"Host": host})
            assert response.status_code == 200, (host, response.text)
            assert _host_of(response) == expected, host
    async with _app(tmp_path / "b", allowed_hosts=("pacs.example:8443",)) as client:
        # pacs.example without a port is pacs.example:80, not an allowed name
        assert (await _retrieve_urls(client, {"Host": "pacs.example"})).status_code == 400


@pytest.mark.anyio
async def test_forwarded_headers_count_only_from_trusted_proxies(tmp_path: Path) -> None:
    async with _app(tmp_path, allowed_hosts=("pacs.example",), trusted_proxies=("10.0.0.0/8",)) as client:
        response = await _retrieve_urls(client, {"X-Forwarded-Host": "pacs.example", "X-Forwarded-Proto": "https"})
        assert response.json()[0]["00081190"]["Value"][0].startswith("https://pacs.example/dicomweb/studies/")
        # RFC 7239: the last element is the one the trusted proxy appended.
        response = await _retrieve_urls(client, {
            "Forwarded": 'host=evil.example;proto=http, for="[2001:db8::1]:4711";host="pacs.example:8443";proto=https'})
        assert response.json()[0]["00081190"]["Value"][0].startswith("https://pacs.example:8443/dicomweb/")
        # A trusted proxy still cannot name a host that is not configured.
        response = await _retrieve_urls(client, {"X-Forwarded-Host": "evil.example"})
        assert response.status_code == 400
    async with _app(tmp_path / "b", allowed_hosts=("pacs.example",), trusted_proxies=("192.168.0.1",)) as client:
        response = await _retrieve_urls(client, {"X-Forwarded-Host": "pacs.example", "X-Forwarded-Proto": "https"})
        assert response.json()[0]["00081190"]["Value"][0].startswith("http://127.0.0.1:8080/")


@pytest.mark.anyio
async def test_public_url_is_allowed_and_used(tmp_path: Path) -> None:
    async with _app(tmp_path, allowed_hosts=(), public_url="https://pacs.example/dicomweb") as client:
        response = await _retrieve_urls(client, {"Host": "pacs.example"})
        assert response.json()[0]["00081190"]["Value"][0].startswith("https://pacs.example/dicomweb/")
        assert (await _retrieve_urls(client, {"Host": "evil.example"})).status_code == 400


def test_bad_allowed_host_and_trusted_proxy_values_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--allowed-host"):
        build_app(Settings(data_dir=tmp_path / "a", allowed_hosts=("a b",)))
    with pytest.raises(ValueError, match="--trusted-proxy"):
        build_app(Settings(data_dir=tmp_path / "b", trusted_proxies=("not-an-ip",)))


def test_every_limit_flag_is_documented_with_its_default() -> None:
    import argparse

    from dicomweb_origin.cli import add_limit_arguments

    parser = argparse.ArgumentParser()
    add_limit_arguments(parser)
    limits = (REPO / "docs" / "conformance.md").read_text().split("\n## Limits\n", 1)[1].split("\n## ", 1)[0]
    readme = (REPO / "README.md").read_text()
    for action in parser._actions[1:]:
        flag = action.option_strings[0]
        assert flag in limits and flag in readme, flag
        if action.default not in ([], None):
            assert f"{flag} {action.default:g}" in readme if isinstance(action.default, float) \
                else f"{flag} {action.default}" in readme, flag


def test_listening_on_every_address_allows_the_machines_own_names() -> None:
    """``--host 0.0.0.0``: clients on the network reach it by the machine's name; other names stay refused."""
    import socket

    from dicomweb_origin.web.hosts import allowed_names

    names = allowed_names(Settings(host="0.0.0.0", port=8080, allowed_hosts=()))
    assert names is not None
    assert (socket.gethostname().lower(), None) in names and ("localhost", None) in names  # at any port
    assert not [name for name, _port in names if name == "evil.example"]
