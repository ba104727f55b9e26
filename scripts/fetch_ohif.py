#!/usr/bin/env python3
"""Fetch the pinned, prebuilt OHIF viewer (`npm pack @ohif/app`) into a cache folder; print its `dist/` path.

The viewer is fetched, never committed: `npm pack` downloads the published tarball (about 50 MB) through npm's
own client and cache, its SHA-512 is checked against the pinned integrity, and `package/dist` is extracted to
`<cache>/ohif-app-<version>/dist`. A second run finds the completed folder and does nothing. Usage:

    python scripts/fetch_ohif.py [--cache DIR]      # prints the dist folder for `dicomweb-origin serve --viewer`
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

PACKAGE = "@ohif/app"
VERSION = "3.13.2"
# `npm pack @ohif/app@3.13.2 --json` -> "integrity" (the registry's dist.integrity).
INTEGRITY = "sha512-WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5xXZB9E8EA=="
DEFAULT_CACHE = Path(__file__).resolve().parent.parent / ".ohif"
# Files a usable build must hold (checked after extraction and on every cache hit).
REQUIRED = ("index.html", "app-config.js")
MARKER = ".fetched"


class FetchError(RuntimeError):
    """The viewer could not be fetched or failed verification."""


def dist_dir(cache: Path = DEFAULT_CACHE) -> Path:
    return cache / f"ohif-app-{VERSION}" / "dist"


def _complete(dist: Path) -> bool:
    return (dist.parent / MARKER).is_file() and all((dist / name).is_file() for name in REQUIRED)


def _npm_pack(destination: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise FetchError("npm is not on PATH: install Node.js and npm (Debian: apt-get install nodejs npm)")
    spec = f"{PACKAGE}@{VERSION}"
    proc = subprocess.run([npm, "pack", spec, "--json", "--pack-destination", str(destination)],
                          check=False, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-8:]
        raise FetchError(f"`npm pack {spec}` failed (exit {proc.returncode}); no network to the npm registry?\n"
                         + "\n".join(tail))
    info = json.loads(proc.stdout)[0]
    tarball = destination / str(info["filename"])
    if not tarball.is_file():
        raise FetchError(f"`npm pack {spec}` reported {info['filename']} but wrote no such file")
    return tarball


def _verify(tarball: Path) -> None:
    algorithm, _, expected = INTEGRITY.partition("-")
    digest = hashlib.new(algorithm)
    with open(tarball, "rb") as fp:
        for block in iter(lambda: fp.read(1 << 20), b""):
            digest.update(block)
    actual = base64.b64encode(digest.digest()).decode()
    if actual != expected:
        raise FetchError(f"{tarball.name}: {algorithm} {actual} does not match the pinned {expected}")


def _extract_dist(tarball: Path, into: Path) -> None:
    """Extract `package/dist/**` only, refusing links and paths that leave the folder (tarfile's data filter)."""
    with tarfile.open(tarball, "r:gz") as tar:
        members = [m for m in tar.getmembers() if m.name.startswith("package/dist/")]
        if not members:
            raise FetchError(f"{tarball.name} has no package/dist folder")
        tar.extractall(into, members=members, filter="data")


def fetch(cache: Path = DEFAULT_CACHE, log=print) -> Path:  # type: ignore[no-untyped-def]
    """Return the `dist` folder of the pinned OHIF build, fetching it first if the cache lacks it."""
    dist = dist_dir(cache)
    if _complete(dist):
        return dist
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a parallel fetch waits, then finds the folder complete
        if _complete(dist):
            return dist
        started = time.monotonic()
        with tempfile.TemporaryDirectory(dir=cache, prefix=".fetch-") as tmp:
            work = Path(tmp)
            log(f"fetching {PACKAGE}@{VERSION} with npm pack ...")
            tarball = _npm_pack(work)
            _verify(tarball)
            _extract_dist(tarball, work)
            extracted = work / "package" / "dist"
            missing = [name for name in REQUIRED if not (extracted / name).is_file()]
            if missing:
                raise FetchError(f"{tarball.name}: dist lacks {', '.join(missing)}")
            shutil.rmtree(dist.parent, ignore_errors=True)
            dist.parent.mkdir(parents=True)
            extracted.rename(dist)
            (dist.parent / MARKER).write_text(f"{PACKAGE}@{VERSION} {INTEGRITY}\n")
        log(f"fetched {PACKAGE}@{VERSION} into {dist} in {time.monotonic() - started:.1f} s")
    return dist


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"cache folder (default {DEFAULT_CACHE})")
    args = parser.parse_args(argv)
    try:
        dist = fetch(args.cache, log=lambda message: print(message, file=sys.stderr))
    except FetchError as exc:
        print(f"fetch_ohif: {exc}", file=sys.stderr)
        return 1
    print(dist)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
