"""``dicomweb-origin check [--repair]`` and the start-up removal of unfinished uploads.

Over a real archive (SQLite + files) written by the Store use case, damaged by hand the ways a crash
or a disk can: a truncated blob, a blob with a flipped byte, a missing blob, an orphan blob, a
stale ``.part`` upload. ``check`` must find each, ``--repair`` fix each, and a second ``check`` find
nothing. Uploads a live writer holds (an flock, as ``FileBlobStore.put`` takes) are never touched.
"""

from __future__ import annotations

import fcntl
import io
import os
import time
from pathlib import Path

import pytest

from dicomweb_origin.app import Archive
from dicomweb_origin.check import check
from dicomweb_origin.cli import main
from dicomweb_origin.ingest import Ingest, Outcome
from dicomweb_origin.settings import Settings
from dicomweb_origin.storage.inmemory import MemoryBlobStore, MemoryIndex
from tests.support.synthetic import instance_bytes, uid

STUDY, SERIES = uid(9), uid(9, 1)


def _archive(tmp_path: Path, count: int = 6) -> tuple[Settings, list[str]]:
    settings = Settings(data_dir=tmp_path / "data")
    archive = Archive(settings)
    keys = []
    for i in range(count):
        result = archive.ingest.store(io.BytesIO(instance_bytes(STUDY, SERIES, uid(9, 1, i), instance_number=i)))
        assert result.outcome is Outcome.STORED and result.record is not None
        keys.append(result.record.blob_key)
    archive.index.close()
    return settings, keys


def _old(path: Path) -> None:
    past = time.time() - 3600
    os.utime(path, (past, past))


def test_a_sound_archive_has_nothing_to_repair(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings, _ = _archive(tmp_path)
    assert main(["check", "--data", str(settings.data_dir)]) == 0
    out = capsys.readouterr().out
    assert "checked: 6 instances, 6 blobs" in out and "problems: 0" in out


def test_check_finds_and_repair_fixes_every_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings, keys = _archive(tmp_path)
    blobs = settings.blob_dir
    truncated, flipped, missing = (blobs / k for k in keys[:3])
    truncated.write_bytes(truncated.read_bytes()[:-100])
    data = bytearray(flipped.read_bytes())
    data[-1] ^= 0xFF
    flipped.write_bytes(bytes(data))
    missing.unlink()
    orphan = blobs / STUDY / SERIES / "1.2.3.orphan.dcm"
    orphan.write_bytes(b"left by a crash between blob and index")
    _old(orphan)
    young = blobs / STUDY / SERIES / "1.2.4.young.dcm"  # a STOW about to index it, perhaps
    young.write_bytes(b"just written")
    stale = blobs / ".tmp" / "tmpcut.part"
    stale.write_bytes(b"half an upload")

    assert main(["check", "--data", str(settings.data_dir)]) == 1
    out = capsys.readouterr().out
    assert not stale.exists()  # opening the archive removed the stale upload already (start-up)
    assert f"found: corrupt: {keys[0]} (instance {uid(9, 1, 0)}): " in out and "the index says" in out
    assert f"found: corrupt: {keys[1]} (instance {uid(9, 1, 1)}): sha256" in out
    assert f"found: missing: {keys[2]} (instance {uid(9, 1, 2)})" in out
    assert f"found: orphan: {STUDY}/{SERIES}/1.2.3.orphan.dcm" in out
    assert f"in flight: orphan younger than 60 s, left alone: {STUDY}/{SERIES}/1.2.4.young.dcm" in out
    assert "problems: 4  repaired: 0  remaining: 4  in flight: 1" in out
    assert truncated.exists() and orphan.exists()  # check alone changes nothing

    assert main(["check", "--data", str(settings.data_dir), "--repair"]) == 0
    out = capsys.readouterr().out
    assert "problems: 4  repaired: 4  remaining: 0" in out
    assert not truncated.exists() and not flipped.exists() and not orphan.exists() and young.exists()
    assert main(["check", "--data", str(settings.data_dir), "--grace", "0", "--repair"]) == 0
    assert f"repaired: orphan: {STUDY}/{SERIES}/1.2.4.young.dcm" in capsys.readouterr().out
    assert main(["check", "--data", str(settings.data_dir), "--grace", "0"]) == 0
    assert "checked: 3 instances, 3 blobs" in capsys.readouterr().out

    archive = Archive(settings)
    for i in range(3):  # unindexed: a retrieve answers 410 (removed by check), the rest is intact
        assert archive.index.get(uid(9, 1, i)) is None and archive.index.removed(STUDY, SERIES, uid(9, 1, i))
    assert [r.instance_uid for r in archive.index.instances(STUDY)] == [uid(9, 1, i) for i in range(3, 6)]


def test_check_reports_a_stale_upload(tmp_path: Path) -> None:
    """Without opening the archive (which removes them): check lists it, repair removes it."""
    settings, _ = _archive(tmp_path, count=1)
    from dicomweb_origin.storage.files import FileBlobStore
    from dicomweb_origin.storage.sqlite import SqliteIndex

    (settings.blob_dir / ".tmp" / "tmpcut.part").write_bytes(b"half")
    index, blobs = SqliteIndex(settings.index_path), FileBlobStore(settings.blob_dir)
    report = check(index, blobs)
    assert [(p.kind, p.key) for p in report.remaining] == [("upload", "tmpcut.part")]
    report = check(index, blobs, repair=True)
    assert report.remaining == [] and len(report.problems) == 1
    assert check(index, blobs).problems == []
    index.close()


def test_uploads_a_live_writer_holds_are_left_alone(tmp_path: Path) -> None:
    settings, _ = _archive(tmp_path, count=1)
    tmp = settings.blob_dir / ".tmp"
    held, stale = tmp / "tmpheld.part", tmp / "tmpstale.part"
    held.write_bytes(b"being written")
    stale.write_bytes(b"left by kill -9")
    fd = os.open(held, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # what FileBlobStore.put holds while it writes
        archive = Archive(settings)  # start-up: removes what no live writer holds
        assert held.exists() and not stale.exists()
        assert archive.blobs.stale_uploads() == []
    finally:
        os.close(fd)
    assert Archive(settings).blobs.stale_uploads() == [] and not held.exists()


def test_check_works_on_the_memory_backends() -> None:
    index, blobs = MemoryIndex(), MemoryBlobStore()
    ingest = Ingest(index, blobs, Settings())
    records = []
    for i in range(3):
        result = ingest.store(io.BytesIO(instance_bytes(STUDY, SERIES, uid(9, 1, i))))
        assert result.record is not None
        records.append(result.record)
    blobs.delete(records[0].blob_key)
    blobs.put(io.BytesIO(b"orphan"), "x/y/z")
    report = check(index, blobs)
    assert sorted(p.kind for p in report.problems) == ["missing", "orphan"]
    assert report.instances == 3 and report.blobs == 3
    assert check(index, blobs, repair=True).remaining == []
    assert check(index, blobs).problems == [] and index.count() == 2
