"""Command line: ``dicomweb-origin serve | import | demo``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

from .settings import Settings


def _files(paths: Sequence[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            for root, _dirs, names in os.walk(path):
                for name in sorted(names):
                    yield Path(root) / name
        else:
            yield path


def import_paths(settings: Settings, paths: Sequence[Path], quiet: bool = False) -> int:
    """Import files and folders; print a summary; return the number of failures."""
    from tqdm import tqdm

    from .app import Archive
    from .ingest import Outcome

    archive = Archive(settings)
    files = list(_files(paths))
    counts: Counter[str] = Counter()
    failures: list[tuple[Path, str]] = []
    for path in tqdm(files, unit="file", disable=quiet, file=sys.stderr):
        try:
            with open(path, "rb") as fp:
                result = archive.ingest.store(fp)
        except OSError as exc:
            counts["failed"] += 1
            failures.append((path, f"cannot read: {exc.strerror}"))
            continue
        if result.not_dicom:  # skipped, not failed: folders hold other files too
            counts["not DICOM"] += 1
            if not quiet:
                tqdm.write(f"not DICOM: {path}: {result.reason}", file=sys.stderr)
            continue
        counts[result.outcome.value] += 1
        if result.outcome is Outcome.FAILED:
            failures.append((path, result.reason or "unknown reason"))
    print(f"stored: {counts['stored']}  already present: {counts['already present']}  "
          f"not DICOM: {counts['not DICOM']}  failed: {counts['failed']}")
    for path, reason in failures:
        print(f"failed: {path}: {reason}")
    return counts["failed"]


def load_demo(settings: Settings, slices: int = 128, size: int = 512) -> int:
    from .demo import generate_demo

    with tempfile.TemporaryDirectory() as tmp:
        paths = generate_demo(Path(tmp), slices=slices, size=size)
        return import_paths(settings, paths, quiet=True)


def serve(settings: Settings, demo: bool, viewer: Path | None = None) -> None:
    from . import server
    from .app import Archive, build_app

    if demo and Archive(settings).is_empty():
        print("archive is empty: loading the demo studies ...", file=sys.stderr)
        load_demo(settings)
    app = build_app(settings, viewer)
    print(f"DICOMweb root: http://{settings.host}:{settings.port}{settings.root_path}", file=sys.stderr)
    if viewer is not None:
        print(f"viewer: http://{settings.host}:{settings.port}/", file=sys.stderr)
    server.run(app, settings)


def add_limit_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of the limits on hostile clients (docs/conformance.md, Limits)."""
    d = Settings()
    parser.add_argument("--allowed-host", action="append", default=[], metavar="NAME[:PORT]",
                        help="a name that may appear in returned URLs (repeatable; default: only the listening"
                             " address, loopback names and --public-url's host; other Hosts get 400)")
    parser.add_argument("--trusted-proxy", action="append", default=[], metavar="IP_OR_CIDR",
                        help="honour Forwarded / X-Forwarded-* headers from this address (repeatable; default none)")
    parser.add_argument("--max-header-kb", type=int, default=d.max_header_bytes >> 10,
                        help=f"request line + header fields, in KiB (default {d.max_header_bytes >> 10}); above: 431")
    parser.add_argument("--max-header-line-kb", type=int, default=d.max_header_line_bytes >> 10,
                        help=f"one header line or the request target, in KiB (default {d.max_header_line_bytes >> 10})")
    parser.add_argument("--header-timeout", type=float, default=d.header_timeout_seconds, metavar="SECONDS",
                        help=f"time to receive a request head, in s (default {d.header_timeout_seconds:g}); then 408")
    parser.add_argument("--keep-alive", type=float, default=d.keep_alive_seconds, metavar="SECONDS",
                        help=f"idle kept-alive connections close after this, in s (default {d.keep_alive_seconds:g})")
    parser.add_argument("--body-idle-timeout", type=float, default=d.body_idle_seconds, metavar="SECONDS",
                        help=f"a STOW body silent this long gets 408, in s (default {d.body_idle_seconds:g})")
    parser.add_argument("--body-min-rate", type=int, default=d.body_min_bytes_per_second, metavar="BYTES_PER_S",
                        help="after --body-idle-timeout, a STOW body slower than this on average gets 408, in"
                             f" bytes/s (default {d.body_min_bytes_per_second})")
    parser.add_argument("--max-request-mb", type=int, default=d.max_request_bytes >> 20,
                        help=f"largest STOW body, in MiB (default {d.max_request_bytes >> 20}); above: 413")
    parser.add_argument("--max-connections", type=int, default=d.max_connections,
                        help=f"open connections and requests in flight (default {d.max_connections}); past it: 503")
    parser.add_argument("--max-sequence-depth", type=int, default=d.max_sequence_depth,
                        help=f"deepest sequence nesting stored (default {d.max_sequence_depth}); deeper: 0xC000")


def limit_settings(args: argparse.Namespace) -> dict[str, object]:
    """Settings fields from the flags of ``add_limit_arguments``."""
    return {
        "allowed_hosts": tuple(args.allowed_host), "trusted_proxies": tuple(args.trusted_proxy),
        "max_header_bytes": args.max_header_kb << 10, "max_header_line_bytes": args.max_header_line_kb << 10,
        "header_timeout_seconds": args.header_timeout, "keep_alive_seconds": args.keep_alive,
        "body_idle_seconds": args.body_idle_timeout, "body_min_bytes_per_second": args.body_min_rate,
        "max_request_bytes": args.max_request_mb << 20, "max_connections": args.max_connections,
        "max_sequence_depth": args.max_sequence_depth,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dicomweb-origin", description="DICOMweb origin server")
    sub = parser.add_subparsers(dest="command", required=True)
    serve_p = sub.add_parser("serve", help="serve the archive over DICOMweb")
    serve_p.add_argument("--data", type=Path, default=Path("data"), help="archive directory (default ./data)")
    serve_p.add_argument("--host", default="127.0.0.1")
    serve_p.add_argument("--port", type=int, default=8080)
    serve_p.add_argument("--demo", action="store_true", help="load the demo studies when the archive is empty")
    serve_p.add_argument("--public-url", default=None, help="absolute DICOMweb root URL when behind a proxy")
    serve_p.add_argument("--cors-origin", action="append", default=[], help="allowed CORS origin (repeatable)")
    serve_p.add_argument("--frame-cache-mb", type=int, default=256, help="transcoded frame cache size")
    serve_p.add_argument("--viewer", type=Path, default=None, metavar="DIR",
                         help="serve this OHIF dist folder at / (python scripts/fetch_ohif.py prints it)")
    add_limit_arguments(serve_p)
    import_p = sub.add_parser("import", help="import DICOM files or folders (recursive)")
    import_p.add_argument("--data", type=Path, default=Path("data"))
    import_p.add_argument("paths", type=Path, nargs="+")
    demo_p = sub.add_parser("demo", help="generate the demo studies and import them")
    demo_p.add_argument("--data", type=Path, default=Path("data"))
    demo_p.add_argument("--out", type=Path, default=None, help="only write the demo files to this folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "serve":
        if args.viewer is not None and not (args.viewer / "index.html").is_file():
            parser.error(f"--viewer {args.viewer}: no index.html there (scripts/fetch_ohif.py prints the folder)")
        settings = Settings(data_dir=args.data, host=args.host, port=args.port, public_url=args.public_url,
                            cors_origins=tuple(args.cors_origin), frame_cache_bytes=args.frame_cache_mb << 20,
                            **limit_settings(args))  # type: ignore[arg-type]
        serve(settings, args.demo, args.viewer)
        return 0
    if args.command == "import":
        return 1 if import_paths(Settings(data_dir=args.data), args.paths) else 0
    if args.out is not None:
        from .demo import generate_demo

        written = generate_demo(args.out)
        print(f"wrote {len(written)} files under {args.out}")
        return 0
    return 1 if load_demo(Settings(data_dir=args.data)) else 0


if __name__ == "__main__":
    raise SystemExit(main())
