"""The archives the fixtures build: on SQLite + files, or on PostgreSQL and S3 when the environment says so.

``make test`` runs the suite twice: once on the embedded archive, once with ``DICOMWEB_TEST_INDEX=postgresql``
(a throwaway cluster per test worker, one schema per archive) and ``DICOMWEB_TEST_BLOBS=s3`` (a bucket per archive
in the worker's Ceph radosgw).
"""

from __future__ import annotations

import io
import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from dicomweb_origin.app import build_app
from dicomweb_origin.demo import generate_demo
from dicomweb_origin.ingest import Outcome, StoreResult
from dicomweb_origin.model.stored import InstanceRecord
from dicomweb_origin.settings import Settings
from dicomweb_origin.storage.backends import migrate_index

from .ceph import CephS3
from .postgres import PostgresServer
from .reference import REFERENCES, Reference, check_table, prepared_bytes

DEMO_SLICES, DEMO_SIZE = 6, 48

TEST_INDEX = os.environ.get("DICOMWEB_TEST_INDEX", "sqlite")
if TEST_INDEX not in ("sqlite", "postgresql"):
    raise RuntimeError(f"DICOMWEB_TEST_INDEX={TEST_INDEX!r}: sqlite or postgresql")
TEST_BLOBS = os.environ.get("DICOMWEB_TEST_BLOBS", "files")
if TEST_BLOBS not in ("files", "s3"):
    raise RuntimeError(f"DICOMWEB_TEST_BLOBS={TEST_BLOBS!r}: files or s3")
_SCHEMAS = itertools.count()
_BUCKETS = itertools.count()

MakeSettings = Callable[..., Settings]  # (data_dir, **fields) -> Settings: the archive_settings fixture


@dataclass
class LoadedArchive:
    """An archive's application, where it lives, and what was stored in it."""

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

    def close(self) -> None:
        self.app.state.archive.close()


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


def empty(settings: Settings) -> LoadedArchive:
    """A new archive with nothing stored in it."""
    return LoadedArchive(build_app(settings), settings, {})


def loaded(root: Path, make_settings: MakeSettings = Settings) -> LoadedArchive:
    """An archive under ``root`` holding every reference instance and the small demo, stored through ingest."""
    check_table()
    archive = empty(make_settings(data_dir=root / "data"))
    ingest = archive.app.state.archive.ingest
    for ref in REFERENCES:
        result = ingest.store(io.BytesIO(prepared_bytes(ref.name)))
        assert result.outcome is Outcome.STORED, (ref.name, result.reason)
        archive.results[ref.name] = result
    for path in generate_demo(root / "demo", slices=DEMO_SLICES, size=DEMO_SIZE):
        with open(path, "rb") as fp:
            archive.demo[path] = ingest.store(fp)
    return archive


def stored_frames(ref: Reference, archive: LoadedArchive) -> list[bytes]:
    """The stored bytes of each frame: native frame slices or encapsulated bitstreams."""
    record = archive.record(ref.name)
    return [b"".join(archive.blobs.read(record.blob_key, o, n) for o, n in frame) for frame in record.frames]
