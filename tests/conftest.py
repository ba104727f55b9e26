"""Shared fixtures: one archive per test worker loaded with the reference instances and the demo.

The archive is session-scoped (built once per xdist worker, in well under a second); tests that
write (STOW, ingest of broken files) get an empty archive of their own from ``empty_archive``.
HTTP goes through the real ASGI application with ``httpx.ASGITransport``. What test modules
import by name is in tests/support.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dicomweb_origin.settings import Settings
from tests.support.archive import (
    TEST_BLOBS,
    TEST_INDEX,
    LoadedArchive,
    empty,
    loaded,
    new_bucket,
    new_postgres_index,
)
from tests.support.ceph import CephS3, ceph_s3
from tests.support.http import asgi_client
from tests.support.postgres import PostgresServer
from tests.support.reference import REFERENCES, Uids, uids


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL (Debian's package) for this test worker; a missing one fails the tests, never skips."""
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ceph(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CephS3]:
    """A real S3 server (Ceph radosgw on loopback) for this test worker; fails loudly when it cannot start."""
    with ceph_s3(tmp_path_factory.mktemp("ceph") / "cluster") as server:
        yield server


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


@pytest.fixture(scope="session")
def archive(tmp_path_factory: pytest.TempPathFactory, archive_settings: Any) -> Iterator[LoadedArchive]:
    """The session archive: every reference instance and the small demo (read only: tests must not write)."""
    archive = loaded(tmp_path_factory.mktemp("archive"), archive_settings)
    yield archive
    archive.close()


@pytest.fixture
def empty_archive(tmp_path: Path, archive_settings: Any) -> Iterator[LoadedArchive]:
    """A fresh, empty archive for tests that write."""
    archive = empty(archive_settings(tmp_path / "data"))
    yield archive
    archive.close()


@pytest.fixture
async def client(archive: LoadedArchive) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(archive.app) as c:
        yield c


@pytest.fixture
async def empty_client(empty_archive: LoadedArchive) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(empty_archive.app) as c:
        yield c


@pytest.fixture(scope="session")
def reference_uids() -> Iterator[dict[str, Uids]]:
    yield {ref.name: uids(ref.name) for ref in REFERENCES}
