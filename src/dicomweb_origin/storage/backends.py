"""One table of URL schemes -> storage backends, for ``--index URL`` and ``--blobs URL``.

``sqlite:///path/index.sqlite``, ``postgresql://user@host/db`` (or ``postgres://``), ``memory:``;
``file:///path/blobs``, ``s3://bucket[/prefix]?endpoint=URL``, ``memory:``. A backend is imported only when its scheme is used, so a missing optional
package (psycopg for PostgreSQL) is reported with the package to install, not at start-up of every server.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from .base import BlobStore, Index


def _path(url: str) -> Path:
    """``scheme:///abs/path`` or ``scheme:relative/path`` as a filesystem path."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ValueError(f"{url}: a file URL names a local path (scheme:///path), not host {parts.netloc!r}")
    return Path(unquote(parts.path))


def _load(module: str, name: str, package: str) -> Any:
    try:
        loaded = importlib.import_module(module, __package__)
    except ImportError as exc:
        raise BackendUnavailable(f"{module.lstrip('.')} backend needs {package}: pip install {package}"
                                 f" ({exc})") from exc
    return getattr(loaded, name)


def _sqlite(url: str) -> Index:
    return _load(".sqlite", "SqliteIndex", "sqlite3")(_path(url))  # type: ignore[no-any-return]


def _postgres(url: str) -> Index:
    return _load(".postgres", "PostgresIndex", "'dicomweb-origin[postgresql]'")(url)  # type: ignore[no-any-return]


def _memory_index(url: str) -> Index:
    return _load(".inmemory", "MemoryIndex", "dicomweb-origin")()  # type: ignore[no-any-return]


def _files(url: str) -> BlobStore:
    return _load(".files", "FileBlobStore", "dicomweb-origin")(_path(url))  # type: ignore[no-any-return]


def _s3(url: str) -> BlobStore:
    location = _load(".s3", "S3Location", "boto3").parse(url)
    return _load(".s3", "S3BlobStore", "boto3")(location)  # type: ignore[no-any-return]


def _memory_blobs(url: str) -> BlobStore:
    return _load(".inmemory", "MemoryBlobStore", "dicomweb-origin")()  # type: ignore[no-any-return]


INDEX_SCHEMES: dict[str, Callable[[str], Index]] = {
    "sqlite": _sqlite,
    "postgresql": _postgres,
    "postgres": _postgres,
    "memory": _memory_index,
}

BLOB_SCHEMES: dict[str, Callable[[str], BlobStore]] = {
    "file": _files,
    "memory": _memory_blobs,
    "s3": _s3,  # s3://bucket[/prefix]?endpoint=http://host:port&region=R, credentials from the environment
}


class BackendUnavailable(RuntimeError):
    """A storage URL names no known scheme, or its backend's package is not installed."""


def _scheme(url: str, table: dict[str, Any], what: str) -> str:
    scheme = urlsplit(url).scheme.lower()
    if scheme not in table:
        raise BackendUnavailable(f"{what} URL {url!r}: unknown scheme {scheme!r} (known: {', '.join(table)})")
    return scheme


def open_index(url: str) -> Index:
    return INDEX_SCHEMES[_scheme(url, INDEX_SCHEMES, "index")](url)


def open_blobs(url: str) -> BlobStore:
    return BLOB_SCHEMES[_scheme(url, BLOB_SCHEMES, "blob store")](url)


def is_postgres(url: str) -> bool:
    return urlsplit(url).scheme.lower() in ("postgresql", "postgres")


def migrate_index(url: str) -> tuple[int, int]:
    """Create or upgrade a PostgreSQL index's schema: (version before, version after)."""
    if not is_postgres(url):
        raise BackendUnavailable(f"{url!r}: migrate is for a PostgreSQL index (SQLite migrates itself on open)")
    result: tuple[int, int] = _load(".postgres", "migrate", "'dicomweb-origin[postgresql]'")(url)
    return result
