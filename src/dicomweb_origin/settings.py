"""Server settings: one frozen value passed down from the composition root, never a global."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal


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
    volume_cache_bytes: int = 1 << 30  # bounded LRU of assembled volumes (Rendered MPR / 3D)
    workers: int = 0  # threads of the one CPU executor (transcoding, rendering); 0: one per core
    max_request_bytes: int = 4 << 30  # STOW request bodies above this get 413
    body_idle_seconds: float = 60.0  # a STOW body that sends nothing for this long gets 408
    cors_origins: tuple[str, ...] = field(default=())
    gzip_min_bytes: int = 1024
    gzip_cache_bytes: int = 64 << 20  # bounded LRU of gzip-compressed metadata and search bodies
    index_url: str | None = None  # e.g. postgresql://user@host/db (storage/backends.py); None: SQLite under data_dir
    blob_url: str | None = None  # e.g. file:///srv/blobs; None: the blob folder under data_dir
    # STOW of a stored SOP Instance UID with different content: refused (409, 0xC410) or replacing it.
    on_conflict: Literal["refuse", "replace"] = "refuse"
    # Authentication (auth.py): with neither an OIDC issuer nor a token file the server is open to anyone.
    oidc_issuer: str | None = None  # JWT bearer tokens of this issuer (its discovery document gives the JWKS)
    oidc_audience: str | None = None  # the aud the tokens must name
    oidc_jwks: str | None = None  # a JWKS file or URL instead of the discovery document's jwks_uri
    tokens_file: Path | None = None  # static tokens: "sha256$SALT$HASH NAME SCOPES" lines
    tls_cert: Path | None = None  # serve HTTPS with this certificate (PEM) ...
    tls_key: Path | None = None  # ... and its private key (PEM)

    @property
    def index_path(self) -> Path:
        return self.data_dir / "index.sqlite"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"
