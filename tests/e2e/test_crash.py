"""kill -9 of the real server during concurrent STOW, and of the CLI during ``import``, many times.

What must hold, whenever the kill lands:

* every instance the server acknowledged (a 200 naming it in ReferencedSOPSequence) is retrievable
  byte for byte after the restart: the blob was fsynced and the index commit synced before the 200;
* between a kill and the restart the index never points at a missing or incomplete blob (``check``
  after every kill finds no ``missing`` or ``corrupt``): blobs are written before they are indexed;
* after the restart, whose start-up removes the unfinished ``.part`` uploads, ``check`` finds
  nothing but orphans. Orphans are accepted: a kill between writing a blob and committing its index
  row leaves one (harmless, never served); ``check`` reports it and ``check --repair`` removes it,
  after which ``check`` finds nothing at all.

Timings are randomised (seeded, so a failure can be replayed) and kept short: about a minute in all.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from dicomweb_origin.check import check
from dicomweb_origin.cli import main
from dicomweb_origin.storage.files import FileBlobStore
from dicomweb_origin.storage.sqlite import SqliteIndex
from tests.support.server import start, stop
from tests.support.synthetic import instance_bytes, uid

SERVER_KILLS = 15
IMPORT_KILLS = 15
CLIENTS = 4
SEED = int(os.environ.get("CRASH_SEED", "20261202"))
ROOT = "/dicomweb"


def _instances(study: int, count: int) -> dict[str, bytes]:
    """``count`` instances over two series of one study: UID -> Part 10 bytes."""
    files = {}
    for i in range(count):
        series = uid(study, i % 2)
        instance = uid(study, i % 2, i)
        files[instance] = instance_bytes(uid(study), series, instance, instance_number=i)
    return files


def _start_server(data: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    server = start(["--data", str(data)], log, append=True)
    return server.process, server.url


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait()


def _stow(url: str, parts: list[bytes]) -> list[str]:
    """POST the instances; the SOP Instance UIDs the 200 acknowledges (nothing unless 200)."""
    boundary = f"crash{random.getrandbits(64):016x}"
    body = b"".join(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + p + b"\r\n" for p in parts)
    body += f"--{boundary}--\r\n".encode()
    request = urllib.request.Request(url + "/studies", data=body, method="POST", headers={
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        "Accept": "application/dicom+json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        if response.status != 200:
            return []
        module = json.loads(response.read())
    return [item["00081155"]["Value"][0] for item in module.get("00081199", {}).get("Value", [])]


def _client(url: str, queue: list[tuple[str, bytes]], acknowledged: dict[str, bytes], lock: threading.Lock,
            rng: random.Random) -> None:
    """Send batches of 1-3 instances until the queue is empty or the server is gone."""
    while True:
        with lock:
            batch = [queue.pop() for _ in range(min(len(queue), rng.randint(1, 3)))]
        if not batch:
            return
        try:
            uids = _stow(url, [data for _, data in batch])
        except (OSError, http.client.HTTPException):  # HTTPError is an OSError; IncompleteRead is not
            return  # killed mid-request: not acknowledged
        sent = dict(batch)
        with lock:
            acknowledged.update((u, sent[u]) for u in uids)


def _no_dangling_rows(data: Path) -> list[tuple[str, str]]:
    """Check without opening the archive (no start-up cleanup): the problems found, (kind, key)."""
    index = SqliteIndex(data / "index.sqlite")
    try:
        report = check(index, FileBlobStore(data / "blobs"), grace=0)
    finally:
        index.close()
    assert not [p for p in report.problems if p.kind in ("missing", "corrupt", "unreadable")], report.problems
    return [(p.kind, p.key) for p in report.problems]


def _repair_leaves_nothing(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--data", str(data), "--grace", "0", "--repair"]) == 0
    assert main(["check", "--data", str(data), "--grace", "0"]) == 0
    assert "problems: 0" in capsys.readouterr().out.splitlines()[-1]


def test_kill_the_server_during_concurrent_stow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(SEED)
    data, log = tmp_path / "data", tmp_path / "server.log"
    files = _instances(21, 1200)
    acknowledged: dict[str, bytes] = {}
    lock = threading.Lock()
    uploads_left, orphans = 0, set()
    for _ in range(SERVER_KILLS):
        process, url = _start_server(data, log)
        # Not yet acknowledged first, plus a few acknowledged ones again (stored again: already present).
        queue = [(u, d) for u, d in files.items() if u not in acknowledged]
        queue += rng.sample(sorted(acknowledged.items()), min(len(acknowledged), 20))
        rng.shuffle(queue)
        threads = [threading.Thread(target=_client, args=(url, queue, acknowledged, lock, random.Random(rng.random())))
                   for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        time.sleep(rng.uniform(0.1, 1.0))
        _kill(process)
        for thread in threads:
            thread.join(timeout=60)
        found = _no_dangling_rows(data)
        uploads_left += sum(kind == "upload" for kind, _ in found)
        orphans |= {key for kind, key in found if kind == "orphan"}
    assert len(acknowledged) > 50, "the kills came too early to test anything"

    process, url = _start_server(data, log)  # its start-up removes the unfinished uploads
    try:
        for instance, sent in acknowledged.items():
            request = urllib.request.Request(f"{url}/studies/{uid(21)}/series/{instance.rsplit('.', 1)[0]}/instances/"
                                             f"{instance}", headers={"Accept": "application/dicom; transfer-syntax=*"})
            with urllib.request.urlopen(request, timeout=30) as response:
                assert response.read() == sent, instance
    finally:
        stop(process)
    found = _no_dangling_rows(data)
    assert {kind for kind, _ in found} <= {"orphan"}, found  # no unfinished upload survives the start-up
    print(f"server: {SERVER_KILLS} kills, {len(acknowledged)} acknowledged, all intact; .part left by kills:"
          f" {uploads_left}, orphans left by kills: {len(orphans)}, at the end: {len(found)}", file=sys.__stderr__)
    _repair_leaves_nothing(data, capsys)


def _stored_files(data: Path) -> int:
    blobs = data / "blobs"
    return sum(len(names) for _root, _dirs, names in os.walk(blobs)) if blobs.is_dir() else 0


def test_kill_the_import_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(SEED + 1)
    folder, data = tmp_path / "files", tmp_path / "data"
    folder.mkdir()
    files: dict[str, bytes] = {}
    command = [sys.executable, "-m", "dicomweb_origin.cli", "import", "--data", str(data), str(folder)]
    uploads_left, orphans, completed = 0, set(), 0
    for round_number in range(IMPORT_KILLS):
        # New files every round, so each import has work left whatever the machine's speed; the kill lands
        # a random moment after the import has begun writing blobs (not on a fixed clock).
        fresh = _instances(22 + round_number, 40)
        for instance, content in fresh.items():
            (folder / f"{instance}.dcm").write_bytes(content)
        files |= fresh
        before = _stored_files(data)
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while process.poll() is None and _stored_files(data) <= before and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.15))
        completed += process.poll() == 0
        _kill(process)
        found = _no_dangling_rows(data)
        uploads_left += sum(kind == "upload" for kind, _ in found)
        orphans |= {key for kind, key in found if kind == "orphan"}
    assert completed < IMPORT_KILLS, "no kill landed during an import"
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    found = _no_dangling_rows(data)
    assert {kind for kind, _ in found} <= {"orphan"}, found  # the last import's start-up removed the unfinished uploads
    index, blobs = SqliteIndex(data / "index.sqlite"), FileBlobStore(data / "blobs")
    try:
        assert index.count() == len(files)
        for instance, content in files.items():
            record = index.get(instance)
            assert record is not None and blobs.read(record.blob_key) == content, instance
    finally:
        index.close()
    print(f"import: {IMPORT_KILLS} kills ({completed} runs finished first); .part left by kills: {uploads_left},"
          f" orphans left by kills: {len(orphans)}, at the end: {len(found)}", file=sys.__stderr__)
    _repair_leaves_nothing(data, capsys)
