"""Composition root: build the storage backends, the use cases and the web application."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any, cast

from starlette.applications import Starlette

from .auth import Authenticator
from .cache import BytesCache
from .ingest import Ingest
from .retrieve import Retrieve
from .search import Search
from .settings import Settings
from .storage.backends import open_blobs, open_index
from .storage.base import BlobStore, Index, SearchIndex, SearchQuery
from .web.app import create_app
from .web.ops import Probes

log = logging.getLogger(__name__)
HOME_STUDIES = 20  # studies the home page lists, each a link into the viewer


class Archive:
    """An index and a blob store named by URL (storage/backends.py); by default SQLite and files under --data."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.index: Index = open_index(settings.index_url or settings.index_path.resolve().as_uri().replace(
            "file:", "sqlite:", 1))
        try:
            self.blobs: BlobStore = open_blobs(settings.blob_url or settings.blob_dir.resolve().as_uri())
        except BaseException:
            self.index.close()
            raise
        # Uploads a crash cut short (never indexed); those a live writer (another process) holds stay.
        remove_stale = getattr(self.blobs, "remove_stale_uploads", None)  # the file store's
        if remove_stale is not None and (removed := remove_stale()):
            log.info("removed %d unfinished upload(s) left by a crash", removed)
        self.ingest = Ingest(self.index, self.blobs, settings)
        self.ingest.fill_missing_display()  # archives written before records kept the display
        workers = settings.workers or os.cpu_count() or 2
        # One executor bounds all CPU work (transcoding, rendering): built here, once, and shared.
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cpu")
        self.retrieve = Retrieve(self.index, self.blobs, BytesCache(settings.frame_cache_bytes), self.executor,
                                 workers, BytesCache(settings.rendered_cache_bytes), settings.volume_cache_bytes)
        self.search = Search(cast(SearchIndex, self.index))  # every served backend answers Search

    def is_empty(self) -> bool:
        return self.index.count() == 0

    def close(self) -> None:
        """Release the index's connections (the app's lifespan calls this on shutdown)."""
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.index.close()

    def counts(self) -> dict[str, int]:
        """How many studies, series and instances the archive holds."""
        return {name: cast(SearchIndex, self.index).search(SearchQuery(level, limit=0)).total  # type: ignore[arg-type]
                for name, level in _LEVELS.items()}

    def first_studies(self, limit: int = HOME_STUDIES) -> list[tuple[str, str]]:
        """(Study Instance UID, "patient · date · description") of the index's first studies, for the home page."""
        found = []
        for match in cast(SearchIndex, self.index).search(SearchQuery("study", limit=limit)).matches:
            uid, name, date, description = (_text(match, tag) for tag in ("0020000D", "00100010", "00080020",
                                                                           "00081030"))
            if len(date) == 8:
                date = f"{date[:4]}-{date[4:6]}-{date[6:]}"
            found.append((uid, " · ".join(t for t in (name, date, description) if t) or uid))
        return found

    def readiness(self) -> Mapping[str, Callable[[], object]]:
        """The readiness checks of ``GET /ready``: each returns when that part of the archive answers."""
        return {"index": self.index.count, "blob store": self._blobs_answer}

    def _blobs_answer(self) -> None:
        root = getattr(self.blobs, "root", None)
        if isinstance(root, Path):  # a folder: it must be there and writable (STOW writes into it)
            if not root.is_dir():
                raise FileNotFoundError(f"the blob folder {root} is gone")
            if not os.access(root, os.W_OK | os.X_OK):
                raise PermissionError(f"the blob folder {root} is not writable")
        else:
            next(iter(self.blobs.keys()), None)


_LEVELS = {"studies": "study", "series": "series", "instances": "instance"}


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
