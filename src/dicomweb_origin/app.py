"""Composition root: build the storage backends, the use cases and the web application."""

from __future__ import annotations

import errno
import logging
import os
import sys
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette

from .auth import Authenticator
from .cache import BytesCache
from .ingest import Ingest
from .retrieve import Lanes, Retrieve
from .search import Search
from .settings import Settings
from .storage.backends import BackendUnavailable, open_blobs, open_index
from .storage.base import BlobStore, Index, SearchQuery
from .web.application import create_app
from .web.ops import Probes

log = logging.getLogger(__name__)
HOME_STUDIES = 20  # studies the home page lists, each a link into the viewer


class ArchiveUnavailable(BackendUnavailable):
    """The archive folder, index or blob store cannot be used: the message names the option and the path."""


def _unusable(option: str, value: object, exc: Exception, folder: Path | None) -> ArchiveUnavailable:
    """One line for a user: which option, which path or URL, and what is wrong with it."""
    if isinstance(exc, BackendUnavailable):  # already says what and where (PostgreSQL, a missing package)
        return ArchiveUnavailable(str(exc))
    existing = next((p for p in ([folder, *folder.parents] if folder else []) if p.exists()), None)
    if isinstance(exc, FileExistsError | NotADirectoryError):
        reason = f"not a folder ({existing or exc.filename} is a file)"
    elif isinstance(exc, OSError) and exc.errno == errno.EROFS:
        reason = "on a read-only file system"
    elif isinstance(exc, OSError) and exc.strerror:
        reason = exc.strerror + (f": {exc.filename}" if exc.filename else "")
    else:
        reason = str(exc) or type(exc).__name__
    if existing is not None and existing.is_dir() and not os.access(existing, os.W_OK) and "read-only" not in reason:
        reason += f" ({existing} is read-only)"
    return ArchiveUnavailable(f"cannot use {option} {value}: {reason}")


def _redacted(url: str) -> str:
    """A storage URL without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()


def _local_folder(url: str) -> Path | None:
    """The folder a ``sqlite:`` or ``file:`` URL writes into (None for a remote backend)."""
    parts = urlsplit(url)
    if parts.scheme.lower() == "sqlite":
        return Path(parts.path).parent
    return Path(parts.path) if parts.scheme.lower() == "file" else None


class Archive:
    """An index and a blob store named by URL (storage/backends.py); by default SQLite and files under --data.

    Whatever keeps it from opening (a --data that is a file or read-only, an --index or --blobs that cannot be
    reached) is an ``ArchiveUnavailable`` naming the option and the path: the command line prints that line.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        data = settings.data_dir.absolute()
        # An --index or --blobs URL names its own place; otherwise the trouble is the --data folder's.
        index_option: tuple[str, object] = ("--index", _redacted(settings.index_url)) if settings.index_url \
            else ("--data", data)
        blobs_option: tuple[str, object] = ("--blobs", settings.blob_url) if settings.blob_url else ("--data", data)
        index_url = settings.index_url or settings.index_path.absolute().as_uri().replace("file:", "sqlite:", 1)
        blob_url = settings.blob_url or settings.blob_dir.absolute().as_uri()
        try:
            if not (settings.index_url and settings.blob_url):
                data.mkdir(parents=True, exist_ok=True)
        except Exception as exc:  # noqa: BLE001 - said in one line, then the command exits
            raise _unusable("--data", data, exc, data) from exc
        if not (settings.index_url and settings.blob_url) and not os.access(data, os.W_OK | os.X_OK):
            raise ArchiveUnavailable(f"cannot use --data {data}: the folder is read-only")
        try:
            self.index: Index = open_index(index_url)
        except Exception as exc:  # noqa: BLE001
            raise _unusable(index_option[0], index_option[1], exc, _local_folder(index_url)) from exc
        try:
            self.blobs: BlobStore = open_blobs(blob_url)
            # Uploads a crash cut short (never indexed); those a live writer (another process) holds stay.
            remove_stale = getattr(self.blobs, "remove_stale_uploads", None)  # the file store's
            if remove_stale is not None and (removed := remove_stale()):
                log.info("removed %d unfinished upload(s) left by a crash", removed)
        except Exception as exc:  # noqa: BLE001
            self.index.close()
            raise _unusable(blobs_option[0], blobs_option[1], exc, _local_folder(blob_url)) from exc
        self.ingest = Ingest(self.index, self.blobs, settings)
        try:
            self.ingest.fill_missing_display()  # archives written before records kept the display
        except Exception as exc:  # noqa: BLE001
            self.index.close()
            raise _unusable(index_option[0], index_option[1], exc, _local_folder(index_url)) from exc
        workers = settings.workers or os.cpu_count() or 2
        # Two lanes bound all CPU work, light (metadata) and heavy (decoding, rendering): built here, once.
        self.lanes = Lanes(workers)
        self.retrieve = Retrieve(self.index, self.blobs, BytesCache(settings.frame_cache_bytes), self.lanes,
                                 workers, BytesCache(settings.rendered_cache_bytes), settings.volume_cache_bytes,
                                 settings.max_request_memory_bytes)
        self.search = Search(self.index)

    def is_empty(self) -> bool:
        return self.index.count() == 0

    def close(self) -> None:
        """Release the index's connections (the app's lifespan calls this on shutdown)."""
        self.lanes.shutdown(wait=False, cancel_futures=True)
        self.index.close()

    def counts(self) -> dict[str, int]:
        """How many studies, series and instances the archive holds (the index's counters: constant time)."""
        counts = self.index.counts()
        return {"studies": counts.studies, "series": counts.series, "instances": counts.instances}

    def first_studies(self, limit: int = HOME_STUDIES) -> list[tuple[str, str]]:
        """(Study Instance UID, "patient · date · description") of the index's first studies, for the home page."""
        found = []
        for match in self.index.search(SearchQuery("study", limit=limit)).matches:
            uid, name, date, description = (_text(match, tag) for tag in ("0020000D", "00100010", "00080020",
                                                                           "00081030"))
            if len(date) == 8:
                date = f"{date[:4]}-{date[4:6]}-{date[6:]}"
            found.append((uid, " · ".join(t for t in (name, date, description) if t) or uid))
        return found

    def readiness(self) -> Mapping[str, Callable[[], object]]:
        """The readiness checks of ``GET /ready``: each returns when that part of the archive answers."""
        return {"index": self.index.counts, "blob store": self._blobs_answer}

    def _blobs_answer(self) -> None:
        root = getattr(self.blobs, "root", None)
        if isinstance(root, Path):  # a folder: it must be there and writable (STOW writes into it)
            if not root.is_dir():
                raise FileNotFoundError(f"the blob folder {root} is gone")
            if not os.access(root, os.W_OK | os.X_OK):
                raise PermissionError(f"the blob folder {root} is not writable")
        else:
            next(iter(self.blobs.keys()), None)



def _text(match: Mapping[str, Any], tag: str) -> str:
    """The first value of an attribute of a DICOM JSON object as text (a person name's alphabetic group)."""
    value = (match.get(tag, {}).get("Value") or [""])[0]
    return str(value.get("Alphabetic", "") if isinstance(value, dict) else value).replace("^", " ").strip()


def version() -> str:
    """The installed package's version (what ``--version`` and the home page say)."""
    try:
        return metadata.version("dicomweb-origin")
    except metadata.PackageNotFoundError:
        return "unknown"


def conformance_statement() -> Path | None:
    """docs/conformance.md beside the source (a checkout, an editable install) or in the installed data files."""
    for candidate in (Path(__file__).resolve().parents[2] / "docs" / "conformance.md",
                      Path(sys.prefix) / "share" / "dicomweb-origin" / "conformance.md"):
        if candidate.is_file():
            return candidate
    return None


def build_app(settings: Settings, viewer_dir: Path | None = None) -> Starlette:
    archive = Archive(settings)
    probes = Probes(version=version(), checks=archive.readiness(), counts=archive.counts,
                    conformance=conformance_statement(), studies=archive.first_studies)
    app = create_app(archive.retrieve, archive.ingest, archive.search, settings, viewer_dir,
                     authenticator=Authenticator.from_settings(settings), probes=probes,
                     on_shutdown=archive.close)
    app.state.archive = archive
    return app
