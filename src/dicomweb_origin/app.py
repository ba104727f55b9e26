"""Composition root: build the storage backends, the use cases and the web application."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from starlette.applications import Starlette

from .cache import BytesCache
from .ingest import Ingest
from .retrieve import Retrieve
from .search import Search
from .settings import Settings
from .storage.files import FileBlobStore
from .storage.sqlite import SqliteIndex
from .web.app import create_app


class Archive:
    """The embedded archive: SQLite index and filesystem blobs under one data directory."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.index = SqliteIndex(settings.index_path)
        self.blobs = FileBlobStore(settings.blob_dir)
        self.ingest = Ingest(self.index, self.blobs, settings)
        self.ingest.fill_missing_display()  # archives written before records kept the display
        workers = settings.workers or os.cpu_count() or 2
        # One executor bounds all CPU work (transcoding, rendering): built here, once, and shared.
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cpu")
        self.retrieve = Retrieve(self.index, self.blobs, BytesCache(settings.frame_cache_bytes), self.executor,
                                 workers, BytesCache(settings.rendered_cache_bytes), settings.volume_cache_bytes)
        self.search = Search(self.index)

    def is_empty(self) -> bool:
        return self.index.count() == 0


def build_app(settings: Settings, viewer_dir: Path | None = None) -> Starlette:
    archive = Archive(settings)
    app = create_app(archive.retrieve, archive.ingest, archive.search, settings, viewer_dir)
    app.state.archive = archive
    return app
