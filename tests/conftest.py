"""Shared fixtures: one archive per test worker loaded with the reference instances and the demo.

The archive is session-scoped (built once per xdist worker, in well under a second); tests that
write (STOW, ingest of broken files) get an empty archive of their own from ``empty_archive``.
HTTP goes through the real ASGI application with ``httpx.ASGITransport``.

Helpers the test modules import (``from conftest import ...``) live here too: the strict
multipart parser checks the framing of PS3.18 §8.6.1.2 / RFC 2046 byte by byte.
"""

from __future__ import annotations

import io
import itertools
import os
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from ceph_server import CephS3, ceph_s3
from pydicom import Dataset, dcmread
from reference import REFERENCES, Reference, Uids, check_table, prepared_bytes, uids
from services import PostgresServer
from starlette.applications import Starlette

from dicomweb_origin.app import build_app
from dicomweb_origin.demo import generate_demo
from dicomweb_origin.ingest import Outcome, StoreResult
from dicomweb_origin.model import InstanceRecord
from dicomweb_origin.settings import Settings
from dicomweb_origin.storage.backends import migrate_index

BASE_URL = "http://testserver"
ROOT = "/dicomweb"
DEMO_SLICES, DEMO_SIZE = 6, 48

MULTIPART_DICOM = 'multipart/related; type="application/dicom"'
MULTIPART_OCTET = 'multipart/related; type="application/octet-stream"'
MULTIPART_XML = 'multipart/related; type="application/dicom+xml"'
DICOM_JSON = "application/dicom+json"


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class LoadedArchive:
    """The session archive: its application, where it lives, and what was stored in it."""

    app: Starlette
    settings: Settings
    results: dict[str, StoreResult]  # per reference name
    demo: dict[Path, StoreResult] = field(default_factory=dict)

    @property
    def index(self) -> Any:
        return self.app.state.archive.index

    @property
    def blobs(self) -> Any:
        return self.app.state.archive.blobs

    def record(self, name: str) -> InstanceRecord:
        record = self.results[name].record
        assert record is not None
        return record

    def stored_bytes(self, name: str) -> bytes:
        record = self.record(name)
        return bytes(self.blobs.read(record.blob_key))

    def instances(self, study: str, series: str | None = None) -> list[InstanceRecord]:
        return list(self.index.instances(study, series))


# Which index the archives of the fixtures use: ``sqlite`` (default) or ``postgresql`` (a throwaway cluster
# per test worker, one schema per archive). `make test` runs the suite once with each.
TEST_INDEX = os.environ.get("DICOMWEB_TEST_INDEX", "sqlite")
if TEST_INDEX not in ("sqlite", "postgresql"):
    raise RuntimeError(f"DICOMWEB_TEST_INDEX={TEST_INDEX!r}: sqlite or postgresql")
_SCHEMAS = itertools.count()
# Which blob store: ``files`` (default) or ``s3`` (a bucket per archive in this worker's Ceph radosgw).
TEST_BLOBS = os.environ.get("DICOMWEB_TEST_BLOBS", "files")
if TEST_BLOBS not in ("files", "s3"):
    raise RuntimeError(f"DICOMWEB_TEST_BLOBS={TEST_BLOBS!r}: files or s3")
_BUCKETS = itertools.count()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL (Debian's package) for this test worker; a missing one fails the tests, never skips."""
    server = PostgresServer().start()
    yield server
    server.stop()


def new_postgres_index(server: PostgresServer) -> str:
    """The URL of a new, migrated, empty index: a schema of its own in the worker's database."""
    schema = f"a{os.getpid()}_{next(_SCHEMAS)}"
    url = server.url("dicomweb")
    server.psql_db("dicomweb", f"CREATE SCHEMA {schema}")
    url += f"?options=-csearch_path%3D{schema}"
    migrate_index(url)
    return url


def new_bucket(ceph: CephS3) -> str:
    """The URL of a new, empty bucket; the credentials go where boto3 reads them (the environment)."""
    os.environ.update(ceph.environment())
    return ceph.url(ceph.create_bucket(f"archive-{os.getpid()}-{next(_BUCKETS)}"))


@pytest.fixture(scope="session")
def archive_settings(request: pytest.FixtureRequest) -> Any:
    """``make(data_dir, **fields) -> Settings`` for a new archive on the backends DICOMWEB_TEST_INDEX / _BLOBS name."""

    def make(data_dir: Path, **fields: Any) -> Settings:
        if TEST_INDEX == "postgresql":
            fields["index_url"] = new_postgres_index(request.getfixturevalue("postgres"))
        if TEST_BLOBS == "s3":
            fields["blob_url"] = new_bucket(request.getfixturevalue("ceph"))
        return Settings(data_dir=data_dir, **fields)

    return make


def _build(root: Path, make_settings: Any = Settings) -> LoadedArchive:
    check_table()
    settings = make_settings(data_dir=root / "data")
    app = build_app(settings)
    ingest = app.state.archive.ingest
    results = {}
    for ref in REFERENCES:
        result = ingest.store(io.BytesIO(prepared_bytes(ref.name)))
        assert result.outcome is Outcome.STORED, (ref.name, result.reason)
        results[ref.name] = result
    loaded = LoadedArchive(app, settings, results)
    for path in generate_demo(root / "demo", slices=DEMO_SLICES, size=DEMO_SIZE):
        with open(path, "rb") as fp:
            loaded.demo[path] = ingest.store(fp)
    return loaded


@pytest.fixture(scope="session")
def archive(tmp_path_factory: pytest.TempPathFactory, archive_settings: Any) -> Iterator[LoadedArchive]:
    loaded = _build(tmp_path_factory.mktemp("archive"), archive_settings)
    yield loaded
    loaded.app.state.archive.close()


@pytest.fixture
def empty_archive(tmp_path: Path, archive_settings: Any) -> Iterator[LoadedArchive]:
    """A fresh, empty archive for tests that write."""
    settings = archive_settings(tmp_path / "data")
    loaded = LoadedArchive(build_app(settings), settings, {})
    yield loaded
    loaded.app.state.archive.close()


def _client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL + ROOT + "/")


@pytest.fixture
async def client(archive: LoadedArchive) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(archive.app) as c:
        yield c


@pytest.fixture
async def empty_client(empty_archive: LoadedArchive) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(empty_archive.app) as c:
        yield c


# -- helpers for the test modules -------------------------------------------------------------------


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


async def stow(client: httpx.AsyncClient, *instances: bytes, boundary: str = "test-stow") -> httpx.Response:
    """POST the Part 10 ``instances`` to ``studies`` as one STOW-RS request (relative to the client's base URL)."""
    body = b"".join(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + instance + b"\r\n"
                    for instance in instances) + f"--{boundary}--\r\n".encode()
    return await client.post("studies", content=body, headers={
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'})


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


def stored_frames(ref: Reference, archive: LoadedArchive) -> list[bytes]:
    """The stored bytes of each frame: native frame slices or encapsulated bitstreams."""
    record = archive.record(ref.name)
    return [b"".join(archive.blobs.read(record.blob_key, o, n) for o, n in frame) for frame in record.frames]


@pytest.fixture(scope="session")
def reference_uids() -> Iterator[dict[str, Uids]]:
    yield {ref.name: uids(ref.name) for ref in REFERENCES}


@pytest.fixture(scope="session")
def ceph(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CephS3]:
    """A real S3 server (Ceph radosgw on loopback) for this test worker; fails loudly when it cannot start."""
    with ceph_s3(tmp_path_factory.mktemp("ceph") / "cluster") as server:
        yield server
