"""Blob store on the local filesystem: temporary file, fsync, rename, fsync the folder.

An upload in progress is a ``.tmp/*.part`` file its writer holds an exclusive ``flock`` on; a crash
(even ``kill -9``) releases the lock, so a ``.part`` file nobody holds is a leftover, removed at
start-up (``remove_stale_uploads``) whatever other process (serve, import) is writing at the time.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .base import DERIVED, BlobInfo

CHUNK = 1 << 20


class FileBlobStore:
    """Blobs as files under ``root``; a blob is visible only once it is durable."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()
        self._prefix = str(self.root) + os.sep

    def _path(self, key: str) -> str:
        # Checked lexically: touching the disk (Path.resolve) on every read costs more than the read.
        if key.startswith("/") or "\\" in key or ".." in key.split("/"):
            raise ValueError(f"blob key escapes the store: {key!r}")
        return self._prefix + key

    def put(self, source: BinaryIO, name: str) -> BlobInfo:
        source.seek(0)
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = self._upload()
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := source.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            hexdigest = digest.hexdigest()
            # The digest in the name keeps two different payloads for one UID from clobbering each other.
            key = f"{name}.{hexdigest[:16]}.dcm"
            final = Path(self._path(key))
            _make_dirs(final.parent)
            os.replace(tmp_name, final)
            _fsync_dir(final.parent)
        except BaseException:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
            raise
        return BlobInfo(key, size, hexdigest)

    def _upload(self) -> tuple[int, str]:
        """A new ``.part`` file, locked: ``remove_stale_uploads`` never takes one a live writer holds."""
        tmp_dir = self.root / ".tmp"
        tmp_dir.mkdir(exist_ok=True)
        while True:
            fd, tmp_name = tempfile.mkstemp(dir=tmp_dir, suffix=".part")
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_nlink:
                return fd, tmp_name
            os.close(fd)  # a cleaner took it between mkstemp and flock: it is gone, make another

    def stale_uploads(self) -> list[str]:
        """The ``.part`` files no live writer holds (left by a crash), as names under ``.tmp``."""
        return [name for name, fd in self._stale(remove=False)]

    def remove_stale_uploads(self) -> int:
        """Delete the ``.part`` files no live writer holds; return how many."""
        return len(self._stale(remove=True))

    def _stale(self, remove: bool) -> list[tuple[str, int]]:
        found = []
        tmp_dir = self.root / ".tmp"
        try:
            names = sorted(os.listdir(tmp_dir))
        except FileNotFoundError:
            return []
        for name in names:
            if not name.endswith(".part"):
                continue
            try:
                fd = os.open(tmp_dir / name, os.O_RDONLY)
            except FileNotFoundError:
                continue  # finished (renamed) meanwhile
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue  # a live writer holds it
            try:
                if os.fstat(fd).st_nlink == 0:
                    continue  # renamed into place or removed while we waited
                if remove:
                    os.unlink(tmp_dir / name)
                found.append((name, fd))
            finally:
                os.close(fd)
        if remove and found:
            _fsync_dir(tmp_dir)
        return found

    def modified(self, key: str) -> float:
        """When the blob was written (seconds since the epoch): ``check`` leaves young orphans alone."""
        return os.stat(self._path(key)).st_mtime

    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        with open(self._path(key), "rb") as f:
            f.seek(offset)
            return f.read() if length is None else f.read(length)

    def stream(self, key: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        with open(self._path(key), "rb", buffering=0) as f:
            f.seek(offset)
            remaining = length
            while remaining is None or remaining > 0:
                chunk = f.read(CHUNK if remaining is None else min(CHUNK, remaining))
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    def delete(self, key: str) -> None:
        try:
            os.unlink(self._path(key))
        except FileNotFoundError:
            pass

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Walk the store; the ``.tmp`` folder holds uploads in progress (or left by a crash), never blobs."""
        top = self._path(prefix.rstrip("/")) if prefix else str(self.root)
        skipped = () if prefix else (".tmp", DERIVED.rstrip("/"))
        for root, dirs, names in os.walk(top):
            if root == top:
                dirs[:] = [d for d in dirs if d not in skipped]
            for name in names:
                key = os.path.relpath(os.path.join(root, name), self.root).replace(os.sep, "/")
                if key.startswith(prefix):
                    yield key

    def write(self, key: str, data: bytes) -> None:
        """Temporary file, fsync, rename: a crash leaves the old body, the new, or none, never a torn one."""
        final = Path(self._path(key))
        fd, tmp_name = self._upload()
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            final.parent.mkdir(parents=True, exist_ok=True)  # a derived body lost in a crash is built again
            os.replace(tmp_name, final)
        except BaseException:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
            raise


def _make_dirs(path: Path) -> None:
    """Create missing folders durably: each new one's entry in its parent is synced too."""
    if path.is_dir():
        return
    _make_dirs(path.parent)
    try:
        path.mkdir()
    except FileExistsError:
        pass  # a concurrent writer made it: sync its entry anyway, it may not have yet
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
