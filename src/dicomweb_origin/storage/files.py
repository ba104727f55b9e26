"""Blob store on the local filesystem: temporary file, fsync, rename."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .base import BlobInfo

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
        tmp_dir = self.root / ".tmp"
        tmp_dir.mkdir(exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=tmp_dir, suffix=".part")
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
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp_name, final)
            _fsync_dir(final.parent)
        except BaseException:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
            raise
        return BlobInfo(key, size, hexdigest)

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


    def keys(self) -> Iterator[str]:
        """Walk the store; the ``.tmp`` folder holds uploads in progress (or left by a crash), never blobs."""
        for root, dirs, names in os.walk(self.root):
            if root == str(self.root):
                dirs[:] = [d for d in dirs if d != ".tmp"]
            for name in names:
                yield os.path.relpath(os.path.join(root, name), self.root).replace(os.sep, "/")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
