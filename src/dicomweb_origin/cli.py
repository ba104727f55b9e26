"""Command line: ``dicomweb-origin serve | import | copy | migrate | demo``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

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
    from .app import Archive

    archive = Archive(settings)
    try:
        return _import_files(archive, paths, quiet)
    finally:
        archive.close()


def _import_files(archive: Any, paths: Sequence[Path], quiet: bool) -> int:
    from tqdm import tqdm

    from .ingest import Outcome

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


def copy_archive(source: Path, index_url: str, blob_url: str, quiet: bool = False) -> int:
    """Copy the archive under ``source`` into the target backends; print a summary; 1 if anything failed."""
    from tqdm import tqdm

    from .ingest import Ingest
    from .storage.backends import open_blobs, open_index
    from .storage.files import FileBlobStore
    from .storage.sqlite import SqliteIndex
    from .transfer import ArchiveCopy

    settings = Settings(data_dir=source, index_url=index_url, blob_url=blob_url)
    if not settings.index_path.is_file():
        print(f"copy: no archive at {source} (no {settings.index_path.name})", file=sys.stderr)
        return 2
    source_index, source_blobs = SqliteIndex(settings.index_path), FileBlobStore(settings.blob_dir)
    target_index = open_index(index_url)
    try:
        copy = ArchiveCopy(source_index, source_blobs, Ingest(target_index, open_blobs(blob_url), settings))
        with tqdm(total=source_index.count(), unit="instance", disable=quiet, file=sys.stderr) as bar:
            report = copy.run(lambda: bar.update(1))
    finally:
        target_index.close()
        source_index.close()
    print(f"copied: {report.copied}  already present (verified): {report.present}  failed: {len(report.failed)}")
    for uid, reason in report.failed:
        print(f"failed: {uid}: {reason}")
    return 1 if report.failed else 0


def serve(settings: Settings, demo: bool, viewer: Path | None = None) -> None:
    import uvicorn

    from .app import Archive, build_app

    if demo:
        archive = Archive(settings)
        empty = archive.is_empty()
        archive.close()
        if empty:
            print("archive is empty: loading the demo studies ...", file=sys.stderr)
            load_demo(settings)
    app = build_app(settings, viewer)
    print(f"DICOMweb root: http://{settings.host}:{settings.port}{settings.root_path}", file=sys.stderr)
    if viewer is not None:
        print(f"viewer: http://{settings.host}:{settings.port}/", file=sys.stderr)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", access_log=False)


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
    import_p = sub.add_parser("import", help="import DICOM files or folders (recursive)")
    import_p.add_argument("--data", type=Path, default=Path("data"))
    import_p.add_argument("paths", type=Path, nargs="+")
    for p in (serve_p, import_p):
        p.add_argument("--index", default=None, metavar="URL",
                       help="index: sqlite:///PATH, postgresql://USER@HOST/DB (default: DATA/index.sqlite)")
        p.add_argument("--blobs", default=None, metavar="URL", help="blob store: file:///DIR, s3://BUCKET?endpoint=URL (default: DATA/blobs)")
    copy_p = sub.add_parser("copy", help="copy an embedded archive (SQLite + files) into --index / --blobs,"
                            " verified and resumable")
    copy_p.add_argument("--from", dest="source", type=Path, required=True, metavar="DIR",
                        help="the archive directory to copy (its index.sqlite and blobs/)")
    copy_p.add_argument("--index", required=True, metavar="URL", help="target index, e.g. postgresql://USER@HOST/DB")
    copy_p.add_argument("--blobs", required=True, metavar="URL",
                        help="target blob store, e.g. s3://BUCKET?endpoint=http://HOST:PORT")
    migrate_p = sub.add_parser("migrate", help="create or upgrade a PostgreSQL index's schema (safe to repeat)")
    migrate_p.add_argument("--index", required=True, metavar="URL", help="postgresql://USER@HOST/DB")
    demo_p = sub.add_parser("demo", help="generate the demo studies and import them")
    demo_p.add_argument("--data", type=Path, default=Path("data"))
    demo_p.add_argument("--out", type=Path, default=None, help="only write the demo files to this folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from .storage.backends import BackendUnavailable

    try:
        return _run(parser, args)
    except BackendUnavailable as exc:  # an unknown URL scheme, a missing package, an old schema, no database
        print(f"dicomweb-origin {args.command}: {exc}", file=sys.stderr)
        return 2


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.command == "serve":
        if args.viewer is not None and not (args.viewer / "index.html").is_file():
            parser.error(f"--viewer {args.viewer}: no index.html there (scripts/fetch_ohif.py prints the folder)")
        settings = Settings(data_dir=args.data, host=args.host, port=args.port, public_url=args.public_url,
                            cors_origins=tuple(args.cors_origin), frame_cache_bytes=args.frame_cache_mb << 20,
                            index_url=args.index, blob_url=args.blobs)
        serve(settings, args.demo, args.viewer)
        return 0
    if args.command == "import":
        settings = Settings(data_dir=args.data, index_url=args.index, blob_url=args.blobs)
        return 1 if import_paths(settings, args.paths) else 0
    if args.command == "copy":
        return copy_archive(args.source, args.index, args.blobs)
    if args.command == "migrate":
        from .storage.backends import migrate_index

        before, after = migrate_index(args.index)
        print(f"schema version {before} -> {after}" if before != after else f"schema version {after}: up to date")
        return 0
    if args.out is not None:
        from .demo import generate_demo

        written = generate_demo(args.out)
        print(f"wrote {len(written)} files under {args.out}")
        return 0
    return 1 if load_demo(Settings(data_dir=args.data)) else 0


if __name__ == "__main__":
    raise SystemExit(main())
