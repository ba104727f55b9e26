"""Composition root: build the storage backends, the use cases and the web application."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import cast

from starlette.applications import Starlette

from .cache import BytesCache
from .ingest import Ingest
from .retrieve import Retrieve
from .search import Search
from .settings import Settings
from .storage.backends import open_blobs, open_index
from .storage.base import BlobStore, Index, SearchIndex
from .web.app import create_app


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
        self.ingest = Ingest(self.index, self.blobs, settings)
        self.ingest.fill_missing_display()  # archives written before records kept the display
        workers = settings.workers or os.cpu_count() or 2
        # One executor bounds all CPU work (transcoding, rendering): built here, once, and shared.
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cpu")
        self.retrieve = Retrieve(self.index, self.blobs, BytesCache(settings.frame_cache_bytes), self.executor,
                                 workers, BytesCache(settings.rendered_cache_bytes))
        self.search = Search(cast(SearchIndex, self.index))  # every served backend answers Search

    def is_empty(self) -> bool:
        return self.index.count() == 0

    def close(self) -> None:
        """Release the index's connections (the app's lifespan calls this on shutdown)."""
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.index.close()


def build_app(settings: Settings, viewer_dir: Path | None = None) -> Starlette:
    archive = Archive(settings)
    app = create_app(archive.retrieve, archive.ingest, archive.search, settings, viewer_dir,
                     on_shutdown=archive.close)
    app.state.archive = archive
    return app
