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
    # What one request may use to decode, render, transcode or assemble a volume (memory.py); past it: 413.
    # 0: the default, a sixteenth of the machine's (or the cgroup's) memory, at least 256 MiB.
    max_request_memory_bytes: int = 0
    max_request_bytes: int = 4 << 30  # STOW request bodies above this get 413
    body_idle_seconds: float = 60.0  # a STOW body that sends nothing for this long gets 408
    # Limits on hostile clients (docs/conformance.md, Limits; server.py, web/hosts.py, dicom/reader.py).
    body_min_bytes_per_second: int = 1024  # after body_idle_seconds, a slower STOW body gets 408
    max_header_bytes: int = 64 << 10  # request line + header fields; above: 431 (RFC 6585 §5)
    max_header_line_bytes: int = 16 << 10  # one header field line or the request target; above: 431 / 414
    header_timeout_seconds: float = 10.0  # a request head (or a new connection's first one) must arrive in this
    keep_alive_seconds: float = 5.0  # an idle kept-alive connection is closed after this
    max_connections: int = 1024  # open connections; past it an idle one or the slowest body makes room (slots.py)
    max_connections_per_client: int = 256  # open connections of one client address (not a trusted proxy); 0: none
    max_sequence_depth: int = 32  # nesting of sequences in a stored instance; deeper: refused (0xC000)
    # Names that may appear in returned URLs (Host, or X-Forwarded-Host from a trusted proxy), as
    # NAME or NAME:PORT. None: any well-formed Host (in-process use, tests); `serve` always sets a
    # tuple, to which the listening address, loopback names and public_url's host are added.
    allowed_hosts: tuple[str, ...] | None = None
    trusted_proxies: tuple[str, ...] = field(default=())  # IPs or CIDRs whose forwarded headers count
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
