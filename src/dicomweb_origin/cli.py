"""Command line: ``dicomweb-origin serve | import | copy | migrate | check | demo | token add``.

Past 400 lines on purpose: one argparse parser and the thin command functions it dispatches to; each command's
work lives in the module it calls (app, ingest, check, demo, auth).
"""

from __future__ import annotations

import argparse
import errno
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


def import_paths(settings: Settings, paths: Sequence[Path], quiet: bool = False, data_given: bool = True) -> int:
    """Import files and folders; print a summary; return the exit status (1: a failure, or nothing was DICOM)."""
    from .app import Archive

    archive = Archive(settings)
    print(where(settings, data_given), file=sys.stderr)
    try:
        return _import_files(archive, paths, quiet)
    finally:
        archive.close()


def where(settings: Settings, data_given: bool) -> str:
    """The line that says where a command stores: the archive folder, or the --index / --blobs it was given."""
    if settings.index_url and settings.blob_url:
        return f"archive: index {settings.index_url.split('@')[-1]}, blobs {settings.blob_url}"
    default = "" if data_given else " (the default; --data DIR stores elsewhere)"
    return f"archive: {settings.data_dir.absolute()}{default}"


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
    if counts["failed"]:
        return 1
    if counts["not DICOM"] and not counts["stored"] and not counts["already present"]:
        print("nothing imported: no file was DICOM", file=sys.stderr)
        return 1
    return 0


def check_archive(settings: Settings, repair: bool, grace: float, quiet: bool = False) -> int:
    """Verify index <-> blobs (``check.py``); print what is wrong; return how many problems remain."""
    from tqdm import tqdm

    from .app import Archive
    from .check import check

    archive = Archive(settings)  # opening it removes unfinished uploads no live writer holds
    try:
        with tqdm(total=archive.index.count(), unit="instance", disable=quiet, file=sys.stderr) as bar:
            report = check(archive.index, archive.blobs, repair=repair, grace=grace, progress=bar.update)
    finally:
        archive.close()
    for problem in report.problems:
        state = "repaired" if problem.repaired else "found"
        uid = f" (instance {problem.instance_uid})" if problem.instance_uid else ""
        print(f"{state}: {problem.kind}: {problem.key}{uid}: {problem.detail}")
    for key in report.in_flight:
        print(f"in flight: orphan younger than {grace:g} s, left alone: {key}")
    remaining = report.remaining
    print(f"checked: {report.instances} instances, {report.blobs} blobs, {report.bytes / 1e6:.1f} MB  "
          f"problems: {len(report.problems)}  repaired: {len(report.problems) - len(remaining)}  "
          f"remaining: {len(remaining)}  in flight: {len(report.in_flight)}")
    return len(remaining)


def load_demo(settings: Settings, slices: int = 128, size: int = 512, data_given: bool = True) -> int:
    """Generate the demo studies and import them; the exit status (the archive is opened first)."""
    from .app import Archive
    from .demo import generate_demo

    archive = Archive(settings)  # an unusable --data is said before the demo is generated
    print(where(settings, data_given), file=sys.stderr)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            paths = generate_demo(Path(tmp), slices=slices, size=size)
            return _import_files(archive, paths, quiet=True)
    finally:
        archive.close()


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


def startup_lines(settings: Settings, counts: dict[str, int], viewer: Path | None = None) -> list[str]:
    """What ``serve`` prints once it listens: the archive, what it holds, and where to point a client."""
    origin = f"{'https' if settings.tls_cert is not None else 'http'}://{settings.host}:{settings.port}"
    lines = [f"archive: {settings.data_dir.resolve()} ({counts.get('studies', 0)} studies,"
             f" {counts.get('series', 0)} series, {counts.get('instances', 0)} instances)",
             f"DICOMweb root: {origin}{settings.root_path}"]
    if viewer is not None:
        lines.append(f"viewer: {origin}/")
    lines.append(f"health: {origin}/health  ready: {origin}/ready  metrics: {origin}/metrics")
    return lines


def serve(settings: Settings, demo: bool, viewer: Path | None = None, log_level: str = "info") -> int:
    """Bind the port, open the archive (loading the demo), then serve; the banner once it listens."""
    from . import server
    from .app import Archive, build_app

    try:  # first: a port in use is said at once, before any archive is opened or demo loaded
        sock = server.bind(settings)
    except OSError as exc:
        in_use = exc.errno == errno.EADDRINUSE
        reason = "the port is in use (another server? choose one with --port)" if in_use else (exc.strerror or str(exc))
        print(f"dicomweb-origin serve: cannot listen on {settings.host}:{settings.port}: {reason}", file=sys.stderr)
        return 2
    with sock:
        if demo:
            archive = Archive(settings)
            empty = archive.is_empty()
            archive.close()
            if empty:
                print("archive is empty: loading the demo studies ...", file=sys.stderr)
                load_demo(settings)
        app = build_app(settings, viewer)
        counts = app.state.archive.counts()

        def listening() -> None:
            for line in startup_lines(settings, counts, viewer):
                print(line, file=sys.stderr, flush=True)
            warn_if_open(settings)

        # log_config=None: uvicorn logs through the handler configure_logging installed; its access log stays
        # off (web.accesslog writes one line per request, with the user and the bytes really sent).
        # server.run: uvicorn with the limits of docs/conformance.md (Limits); options go to uvicorn.Config.
        server.run(app, settings, sock=sock, on_listening=listening, log_level=log_level, log_config=None,
                   ssl_certfile=settings.tls_cert, ssl_keyfile=settings.tls_key)
    return 0


def warn_if_open(settings: Settings) -> None:
    """Say loudly that anyone who reaches a non-loopback port reads and writes everything."""
    from urllib.parse import urlsplit

    from .auth import is_loopback

    log = logging.getLogger("dicomweb_origin")
    if settings.oidc_issuer is None and settings.tokens_file is None and not is_loopback(settings.host):
        log.warning("no authentication configured (--oidc-issuer / --tokens) and listening on %s: anyone who "
                    "reaches port %d can read and write every study", settings.host, settings.port)
    for source in (settings.oidc_issuer, settings.oidc_jwks):
        url = urlsplit(source or "")
        if url.scheme == "http" and not is_loopback(url.hostname or ""):
            log.warning("%s is plain HTTP: whoever can tamper with it can forge tokens (use https)", source)


def token_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``token add NAME``: append a new static token to the file and print it, once; ``token remove NAME``."""
    from .auth import add_token, remove_token

    try:
        if args.token_command == "remove":
            remove_token(args.tokens, args.name)
            print(f"token {args.name!r} removed from {args.tokens}", file=sys.stderr)
            return 0
        token = add_token(args.tokens, args.name, args.scopes.split(","))
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    print(token)
    print(f"token {args.name!r} added to {args.tokens}; it is shown only now (the file keeps a salted hash)",
          file=sys.stderr)
    return 0


def _check_auth_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if (args.oidc_audience or args.oidc_jwks) and not args.oidc_issuer:
        parser.error("--oidc-audience and --oidc-jwks need --oidc-issuer")
    if args.oidc_issuer and not args.oidc_audience:
        parser.error("--oidc-issuer needs --oidc-audience (the aud the tokens must name)")
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    for path in (args.tls_cert, args.tls_key):
        if path is not None and not path.is_file():
            parser.error(f"{path}: no such file")
    if args.tokens is not None:
        from .auth import read_tokens

        try:
            read_tokens(args.tokens)
        except (OSError, ValueError) as exc:
            parser.error(f"--tokens: {exc} (dicomweb-origin token add NAME --tokens FILE makes one)")


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default (none for flags and options without one)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, [], argparse.SUPPRESS) or "%(default)" in text or "(default" in text:
            return text
        return text + " (default: %(default)s)"


def add_limit_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The flags of the limits on hostile clients (docs/conformance.md, Limits)."""
    d = Settings()
    parser.add_argument("--allowed-host", action="append", default=[], metavar="NAME[:PORT]",
                        help="a name that may appear in returned URLs, NAME at any port, NAME:PORT at that port"
                             " (repeatable; default: only this machine's names, at any port, and --public-url's"
                             " host; other Hosts get 400)")
    parser.add_argument("--trusted-proxy", action="append", default=[], metavar="IP_OR_CIDR",
                        help="honour Forwarded / X-Forwarded-* headers from this address (repeatable; default: none)")
    parser.add_argument("--max-header-kb", type=int, default=d.max_header_bytes >> 10,
                        help="request line + header fields, in KiB; above: 431")
    parser.add_argument("--max-header-line-kb", type=int, default=d.max_header_line_bytes >> 10,
                        help="one header line or the request target, in KiB")
    parser.add_argument("--header-timeout", type=float, default=d.header_timeout_seconds, metavar="SECONDS",
                        help="time to receive a request head, in s; then 408")
    parser.add_argument("--keep-alive", type=float, default=d.keep_alive_seconds, metavar="SECONDS",
                        help="idle kept-alive connections close after this, in s")
    parser.add_argument("--body-idle-timeout", type=float, default=d.body_idle_seconds, metavar="SECONDS",
                        help="a STOW body silent this long gets 408, in s")
    parser.add_argument("--body-min-rate", type=int, default=d.body_min_bytes_per_second, metavar="BYTES_PER_S",
                        help="after --body-idle-timeout, a STOW body slower than this on average gets 408, in"
                             " bytes/s")
    parser.add_argument("--max-request-mb", type=int, default=d.max_request_bytes >> 20,
                        help="largest STOW body, in MiB; above: 413")
    parser.add_argument("--max-connections", type=int, default=d.max_connections,
                        help="open connections; past it an idle connection or the slowest request body makes room,"
                             " and when none can, only /health and /ready are answered (503)")
    parser.add_argument("--max-connections-per-client", type=int, default=d.max_connections_per_client,
                        help="open connections of one client address (a --trusted-proxy has none); 0: no limit")
    parser.add_argument("--max-sequence-depth", type=int, default=d.max_sequence_depth,
                        help="deepest sequence nesting stored; deeper: 0xC000")


def limit_settings(args: argparse.Namespace) -> dict[str, object]:
    """Settings fields from the flags of ``add_limit_arguments``."""
    return {
        "allowed_hosts": tuple(args.allowed_host), "trusted_proxies": tuple(args.trusted_proxy),
        "max_header_bytes": args.max_header_kb << 10, "max_header_line_bytes": args.max_header_line_kb << 10,
        "header_timeout_seconds": args.header_timeout, "keep_alive_seconds": args.keep_alive,
        "body_idle_seconds": args.body_idle_timeout, "body_min_bytes_per_second": args.body_min_rate,
        "max_request_bytes": args.max_request_mb << 20, "max_connections": args.max_connections,
        "max_connections_per_client": args.max_connections_per_client,
        "max_sequence_depth": args.max_sequence_depth,
    }


def parser() -> argparse.ArgumentParser:
    """The command line; every option says its default and its unit."""
    from .app import version
    from .logs import FORMATS, LEVELS

    parser = argparse.ArgumentParser(prog="dicomweb-origin", description="DICOMweb origin server",
                                     formatter_class=_Help)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve_p = sub.add_parser("serve", help="serve the archive over DICOMweb", formatter_class=_Help)
    serve_p.add_argument("--data", type=Path, default=Path("data"), help="archive directory")
    serve_p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve_p.add_argument("--port", type=int, default=8080, help="TCP port to listen on")
    serve_p.add_argument("--demo", action="store_true", help="load the demo studies when the archive is empty")
    serve_p.add_argument("--public-url", default=None,
                         help="absolute DICOMweb root URL when behind a proxy (default: from the request's Host)")
    serve_p.add_argument("--cors-origin", action="append", default=[],
                         help="allowed CORS origin, repeatable (default: none, no CORS headers)")
    serve_p.add_argument("--frame-cache-mb", type=int, default=256, help="transcoded frame cache size, in MiB")
    serve_p.add_argument("--rendered-cache-mb", type=int, default=128,
                         help="rendered images and thumbnails cache size, in MiB")
    serve_p.add_argument("--volume-cache-mb", type=int, default=1024,
                         help="assembled volumes cache size (Rendered MPR / 3D), in MiB")
    serve_p.add_argument("--max-request-memory-mb", type=int, default=0, metavar="MB",
                         help="memory one request may use to decode, render, transcode or build a volume, in MiB;"
                              " past it: 413 (default: 0, a sixteenth of the machine's memory, at least 256)")
    serve_p.add_argument("--viewer", type=Path, default=None, metavar="DIR",
                         help="serve this OHIF dist folder at / (python scripts/fetch_ohif.py prints it;"
                              " default: no viewer)")
    serve_p.add_argument("--log-level", choices=LEVELS, default="info", help="least severe log records written")
    serve_p.add_argument("--log-format", choices=FORMATS, default="json",
                         help="json: one JSON object per line (access log: time, method, path, query, status,"
                              " bytes, duration_ms, client, user); text: one readable line")
    serve_p.add_argument("--on-conflict", choices=("refuse", "replace"), default="refuse",
                         help="STOW of a stored SOP Instance UID with different content: refuse it (409) or"
                              " replace the stored instance")
    add_limit_arguments(serve_p.add_argument_group("limits on hostile clients (docs/conformance.md, Limits)"))
    check_p = sub.add_parser("check", help="verify the index against the stored files (digests, orphans)",
                             formatter_class=_Help)
    check_p.add_argument("--data", type=Path, default=Path("data"), help="archive directory")
    check_p.add_argument("--repair", action="store_true",
                         help="delete orphan files and unfinished uploads; unindex instances whose file is"
                              " missing or corrupt")
    check_p.add_argument("--grace", type=float, default=60.0, metavar="SECONDS",
                         help="orphans younger than this may be a STOW in progress: left alone"
                              " (0 on an archive nothing writes to)")
    auth_g = serve_p.add_argument_group("authentication (none: open to anyone who reaches the port)")
    auth_g.add_argument("--oidc-issuer", default=None, metavar="URL",
                        help="accept JWT bearer tokens of this OpenID Connect issuer (its iss)")
    auth_g.add_argument("--oidc-audience", default=None, metavar="AUD", help="the aud the tokens must name")
    auth_g.add_argument("--oidc-jwks", default=None, metavar="FILE_OR_URL",
                        help="the issuer's JWKS (default: jwks_uri of URL/.well-known/openid-configuration)")
    auth_g.add_argument("--tokens", type=Path, default=None, metavar="FILE",
                        help="accept the static tokens of this file (dicomweb-origin token add makes them)")
    auth_g.add_argument("--tls-cert", type=Path, default=None, metavar="FILE", help="serve HTTPS: certificate (PEM)")
    auth_g.add_argument("--tls-key", type=Path, default=None, metavar="FILE", help="serve HTTPS: private key (PEM)")
    token_p = sub.add_parser("token", help="manage the static tokens of a --tokens file", formatter_class=_Help)
    token_sub = token_p.add_subparsers(dest="token_command", required=True, metavar="{add,remove}")
    token_add = token_sub.add_parser("add", help="add a token and print it (once)", formatter_class=_Help)
    token_add.add_argument("name", help="who the token is for (one word; appears in the access log)")
    token_add.add_argument("--scopes", default="dicomweb.read",
                           help="comma-separated: dicomweb.read, dicomweb.write")
    token_add.add_argument("--tokens", type=Path, required=True, metavar="FILE", help="the token file (created 0600)")
    token_remove = token_sub.add_parser("remove", help="remove (revoke) a token; a running server sees it at once",
                                        formatter_class=_Help)
    token_remove.add_argument("name", help="the token's name")
    token_remove.add_argument("--tokens", type=Path, required=True, metavar="FILE", help="the token file")
    import_p = sub.add_parser("import", help="import DICOM files or folders (recursive)", formatter_class=_Help)
    import_p.add_argument("--data", type=Path, default=None, help="archive directory (default: data)")
    import_p.add_argument("paths", type=Path, nargs="+", help="DICOM files or folders (searched recursively)")
    for p in (serve_p, import_p, check_p):
        p.add_argument("--index", default=None, metavar="URL",
                       help="index: sqlite:///PATH, postgresql://USER@HOST/DB (default: DATA/index.sqlite)")
        p.add_argument("--blobs", default=None, metavar="URL",
                       help="blob store: file:///DIR, s3://BUCKET?endpoint=URL (default: DATA/blobs)")
    copy_p = sub.add_parser("copy", help="copy an embedded archive (SQLite + files) into --index / --blobs,"
                            " verified and resumable", formatter_class=_Help)
    copy_p.add_argument("--from", dest="source", type=Path, required=True, metavar="DIR",
                        help="the archive directory to copy (its index.sqlite and blobs/)")
    copy_p.add_argument("--index", required=True, metavar="URL", help="target index, e.g. postgresql://USER@HOST/DB")
    copy_p.add_argument("--blobs", required=True, metavar="URL",
                        help="target blob store, e.g. s3://BUCKET?endpoint=http://HOST:PORT")
    migrate_p = sub.add_parser("migrate", help="create or upgrade a PostgreSQL index's schema (safe to repeat)",
                               formatter_class=_Help)
    migrate_p.add_argument("--index", required=True, metavar="URL", help="postgresql://USER@HOST/DB")
    demo_p = sub.add_parser("demo", help="generate the demo studies and import them", formatter_class=_Help)
    demo_p.add_argument("--data", type=Path, default=None, help="archive directory (default: data)")
    demo_p.add_argument("--out", type=Path, default=None,
                        help="only write the demo files to this folder (default: import them into --data)")
    sub.metavar = "{" + ",".join(sub.choices) + "}"  # a missing command is named by its choices, not "command"
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from .logs import configure_logging

    cli = parser()
    args = cli.parse_args(argv)
    configure_logging(getattr(args, "log_level", "info"), getattr(args, "log_format", "text"))
    from .storage.backends import BackendUnavailable

    try:
        return _run(cli, args)
    except BackendUnavailable as exc:  # an unknown URL scheme, a missing package, an old schema, no database,
        # a --data that is a file or read-only (app.ArchiveUnavailable): one line, whatever the library said
        print(f"dicomweb-origin {args.command}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2


def serve_settings(args: argparse.Namespace) -> Settings:
    """The frozen Settings of ``serve``'s parsed options (sizes in MiB become bytes)."""
    return Settings(data_dir=args.data, host=args.host, port=args.port, public_url=args.public_url,
                   cors_origins=tuple(args.cors_origin), frame_cache_bytes=args.frame_cache_mb << 20,
                   rendered_cache_bytes=args.rendered_cache_mb << 20,
                   volume_cache_bytes=args.volume_cache_mb << 20,
                   max_request_memory_bytes=args.max_request_memory_mb << 20,
                   index_url=args.index, blob_url=args.blobs, on_conflict=args.on_conflict,
                   oidc_issuer=args.oidc_issuer, oidc_audience=args.oidc_audience,
                   oidc_jwks=args.oidc_jwks, tokens_file=args.tokens, tls_cert=args.tls_cert,
                   tls_key=args.tls_key, **limit_settings(args))  # type: ignore[arg-type]


def _run(cli: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.command == "serve":
        if args.viewer is not None and not (args.viewer / "index.html").is_file():
            cli.error(f"--viewer {args.viewer}: no index.html there (scripts/fetch_ohif.py prints the folder)")
        _check_auth_args(args, cli)
        return serve(serve_settings(args), args.demo, args.viewer, args.log_level)
    if args.command == "check":
        settings = Settings(data_dir=args.data, index_url=args.index, blob_url=args.blobs)
        return 1 if check_archive(settings, args.repair, args.grace) else 0
    if args.command == "token":
        return token_command(args, cli)
    if args.command == "import":
        settings = Settings(data_dir=args.data or Path("data"), index_url=args.index, blob_url=args.blobs)
        return import_paths(settings, args.paths, data_given=args.data is not None)
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
    return load_demo(Settings(data_dir=args.data or Path("data")), data_given=args.data is not None)


if __name__ == "__main__":
    raise SystemExit(main())
