"""A real server process over a small generated demo archive, for the end-to-end client tests.

`demo_archive` writes the demo studies at a small size (`generate_demo(slices, size)`: a CT series, its JPEG 2000
copy, an enhanced multi-frame CT and pydicom's bundled files) and stores them through the Store use case, as
`dicomweb-origin import` does; `live_server` runs `python -m dicomweb_origin.cli serve` over it on a free loopback
port and stops it (by its pid) afterwards. `host_keeping_proxy` relays another loopback port to it byte for byte,
as a reverse proxy that keeps `Host` does (OHIF's development server, nginx with `proxy_set_header Host $http_host`):
the server sees `Host: 127.0.0.1:PROXYPORT`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dicomweb_origin.app import Archive
from dicomweb_origin.demo import generate_demo
from dicomweb_origin.settings import Settings

ROOT = "/dicomweb"
START_TIMEOUT_S = 60


def demo_archive(root: Path, slices: int, size: int) -> tuple[Path, list[Path]]:
    """Generate the demo at `slices` x `size`², store every file; return the data folder and the files."""
    data = root / "data"
    archive = Archive(Settings(data_dir=data))
    paths = generate_demo(root / "demo", slices=slices, size=size)
    try:
        for path in paths:
            with open(path, "rb") as fp:
                result = archive.ingest.store(fp)
            assert result.outcome.value != "failed", f"{path}: {result.reason}"
    finally:
        archive.index.close()
    return data, paths


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class LiveServer:
    origin: str  # http://127.0.0.1:PORT
    log: Path
    pid: int = 0  # of the server process (its memory: tests/probes.py)

    @property
    def url(self) -> str:
        """The DICOMweb root."""
        return self.origin + ROOT

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def json(self, path: str) -> list[dict[str, Any]]:
        """A QIDO-RS or metadata answer (application/dicom+json) of a path under the DICOMweb root."""
        request = urllib.request.Request(self.url + path, headers={"Accept": "application/dicom+json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"[]")  # type: ignore[no-any-return]

    def studies(self) -> dict[str, str]:
        """StudyInstanceUID by Study Description (the demo studies have one each)."""
        return {s["00081030"]["Value"][0]: s["0020000D"]["Value"][0]
                for s in self.json("/studies?includefield=00081030") if "00081030" in s}


@contextlib.contextmanager
def live_server(data: Path, *args: str) -> Iterator[LiveServer]:
    """`dicomweb-origin serve --data DATA` as a process on a free port, until the block ends."""
    port = _free_port()
    log_path = data.parent / f"server-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "dicomweb_origin.cli", "serve", "--data", str(data), "--port", str(port), *args],
            stdout=log, stderr=subprocess.STDOUT, env=os.environ | {"PYTHONUNBUFFERED": "1"})
    server = LiveServer(f"http://127.0.0.1:{port}", log_path, process.pid)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with {process.returncode}:\n{server.log_tail()}")
            try:
                urllib.request.urlopen(server.url + "/studies/1.2.3/metadata", timeout=2)
            except urllib.error.HTTPError:
                break  # any HTTP answer (404 here) means the application is up
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not answer within {START_TIMEOUT_S} s:\n{server.log_tail()}")
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def demo_server(root: Path, slices: int, size: int) -> Iterator[tuple[LiveServer, dict[str, list[Path]]]]:
    """A live server over a small demo archive, with the demo files by folder (one folder per study)."""
    data, paths = demo_archive(root, slices, size)
    by_folder: dict[str, list[Path]] = {}
    for path in sorted(paths):
        by_folder.setdefault(path.parent.name, []).append(path)
    with live_server(data) as server:
        yield server, by_folder


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(1 << 16):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


@contextlib.contextmanager
def host_keeping_proxy(origin: str) -> Iterator[str]:
    """A TCP relay from a free loopback port to ``origin`` (http://127.0.0.1:PORT); yields its own origin.

    Every byte goes through unchanged, the request's ``Host`` (the proxy's address and port) included.
    """
    target_host, target_port = origin.removeprefix("http://").split(":")
    loop = asyncio.new_event_loop()
    port = _free_port()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(target_host, int(target_port))
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))

    server = loop.run_until_complete(asyncio.start_server(relay, "127.0.0.1", port))
    thread = threading.Thread(target=loop.run_forever, name="host-keeping-proxy", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        async def stop() -> None:
            server.close()
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
