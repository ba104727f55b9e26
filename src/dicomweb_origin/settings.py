"""Server settings: one frozen value passed down from the composition root, never a global."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path = Path("data")
    host: str = "127.0.0.1"
    port: int = 8080
    root_path: str = "/dicomweb"  # the DICOMweb root under the server's origin
    public_url: str | None = None  # e.g. https://pacs.example/dicomweb when behind a proxy
    bulk_threshold: int = 1024  # binary values longer than this become BulkDataURIs (bytes)
    frame_cache_bytes: int = 256 << 20  # bounded LRU of transcoded frames
    rendered_cache_bytes: int = 128 << 20  # bounded LRU of rendered images and thumbnails
    workers: int = 0  # threads of the one CPU executor (transcoding, rendering); 0: one per core
    max_request_bytes: int = 4 << 30  # STOW request bodies above this get 413
    body_idle_seconds: float = 60.0  # a STOW body that sends nothing for this long gets 408
    cors_origins: tuple[str, ...] = field(default=())
    gzip_min_bytes: int = 1024
    gzip_cache_bytes: int = 64 << 20  # bounded LRU of gzip-compressed metadata and search bodies
    index_url: str | None = None  # e.g. postgresql://user@host/db (storage/backends.py); None: SQLite under data_dir
    blob_url: str | None = None  # e.g. file:///srv/blobs; None: the blob folder under data_dir

    @property
    def index_path(self) -> Path:
        return self.data_dir / "index.sqlite"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"
