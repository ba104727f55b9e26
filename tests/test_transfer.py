"""``dicomweb-origin copy``: an embedded archive (SQLite + files) copied into another (here SQLite + S3).

Every object is verified (source read back against its record's sha256, target read back after storing);
an interrupted copy resumes where it stopped; a corrupt source blob is reported and not copied.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from dicomweb_origin.app import Archive
from dicomweb_origin.cli import main
from dicomweb_origin.ingest import Ingest
from dicomweb_origin.settings import Settings
from dicomweb_origin.storage.files import FileBlobStore
from dicomweb_origin.storage.s3 import S3BlobStore, S3Location
from dicomweb_origin.storage.sqlite import SqliteIndex
from dicomweb_origin.transfer import ArchiveCopy, blob_digest, source_records
from tests.support.archive import new_bucket, new_postgres_index
from tests.support.ceph import CephS3
from tests.support.postgres import PostgresServer
from tests.support.server import demo_archive


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data, _ = demo_archive(tmp_path_factory.mktemp("copy-source"), slices=4, size=32)
    return data


def target(tmp_path: Path, ceph: CephS3) -> Ingest:
    bucket = ceph.create_bucket(f"copy-{uuid.uuid4().hex[:12]}")
    os.environ.update(ceph.environment())
    blobs = S3BlobStore(S3Location(bucket=bucket, endpoint=ceph.endpoint, region="us-east-1"))
    return Ingest(SqliteIndex(tmp_path / "target.sqlite"), blobs, Settings(data_dir=tmp_path))


def test_copy_verifies_and_resumes(source: Path, tmp_path: Path, ceph: CephS3) -> None:
    index, blobs = SqliteIndex(source / "index.sqlite"), FileBlobStore(source / "blobs")
    records = list(source_records(index))
    assert len(records) == index.count() > 10
    into = target(tmp_path, ceph)
    copy = ArchiveCopy(index, blobs, into)

    done = 0

    def interrupt_after_seven() -> None:
        nonlocal done
        done += 1
        if done == 7:
            raise Interrupted

    with pytest.raises(Interrupted):
        copy.run(interrupt_after_seven)
    assert into.index.count() == 7

    report = copy.run()
    assert (report.copied, report.present, report.failed) == (len(records) - 7, 7, [])
    for record in records:
        copied = into.index.get(record.instance_uid)
        assert copied is not None and copied.digest == record.digest and copied.size == record.size
        assert blob_digest(into.blobs, copied.blob_key) == (record.digest, record.size)
        assert into.index.metadata([copied]) == index.metadata([record])
    copied_keys = sorted(into.index.get(r.instance_uid).blob_key for r in records)
    assert sorted(into.blobs.keys()) == copied_keys  # no orphan left by the interrupted run

    again = copy.run()
    assert (again.copied, again.present, again.failed) == (0, len(records), [])


def test_a_corrupt_source_blob_is_reported_not_copied(source: Path, tmp_path: Path, ceph: CephS3) -> None:
    broken = tmp_path / "source"
    os.system(f"cp -r {source} {broken}")  # noqa: S605 - a private copy to corrupt
    index, blobs = SqliteIndex(broken / "index.sqlite"), FileBlobStore(broken / "blobs")
    victim = next(iter(source_records(index)))
    path = broken / "blobs" / victim.blob_key
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    into = target(tmp_path, ceph)
    report = ArchiveCopy(index, blobs, into).run()
    assert [uid for uid, _ in report.failed] == [victim.instance_uid]
    assert "does not match" in report.failed[0][1]
    assert into.index.get(victim.instance_uid) is None
    assert report.copied == index.count() - 1


def test_copy_command_into_postgresql_and_s3(source: Path, ceph: CephS3, postgres: PostgresServer,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    index_url = new_postgres_index(postgres)
    blob_url = new_bucket(ceph)
    assert main(["copy", "--from", str(source), "--index", index_url, "--blobs", blob_url]) == 0
    count = SqliteIndex(source / "index.sqlite").count()
    assert f"copied: {count}  already present (verified): 0  failed: 0" in capsys.readouterr().out
    assert main(["copy", "--from", str(source), "--index", index_url, "--blobs", blob_url]) == 0
    assert f"copied: 0  already present (verified): {count}  failed: 0" in capsys.readouterr().out

    # The target serves what the source served, byte for byte.
    embedded, scaled = Archive(Settings(data_dir=source)), Archive(Settings(data_dir=source, index_url=index_url,
                                                                            blob_url=blob_url))
    try:
        for record in source_records(embedded.index):
            copied = scaled.index.get(record.instance_uid)
            assert copied is not None
            assert scaled.blobs.read(copied.blob_key) == embedded.blobs.read(record.blob_key)
            assert scaled.index.metadata([copied]) == embedded.index.metadata([record])
            assert [r.instance_uid for r in scaled.index.instances(record.study_uid)] == [
                r.instance_uid for r in embedded.index.instances(record.study_uid)]
    finally:
        embedded.close()
        scaled.close()


def test_copy_command_refuses_a_missing_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["copy", "--from", str(tmp_path / "nothing"), "--index", "memory:", "--blobs", "memory:"]) == 2
    assert "no archive" in capsys.readouterr().err
    assert not (tmp_path / "nothing").exists()
