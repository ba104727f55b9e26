"""Real server processes: ``dicomweb-origin serve`` on a free loopback port, started, awaited and stopped here only.

``start`` runs ``python -m dicomweb_origin.cli serve ARGS --port PORT`` with its output in a log file (``spawn``) and
returns once the application answers HTTP (any status: ``/studies/1.2.3/metadata`` is a 404 on an empty archive, a 401
behind authentication); ``stop`` ends it by its pid (TERM, then KILL). ``live_server`` does both around a block.
``demo_archive`` writes the demo studies at a small size (`generate_demo(slices, size)`: a CT series, its JPEG 2000
copy, an enhanced multi-frame CT and pydicom's bundled files) and stores them through the Store use case, as
`dicomweb-origin import` does. `host_keeping_proxy` relays another loopback port to a server byte for byte,
as a reverse proxy that keeps `Host` does (OHIF's development server, nginx with `proxy_set_header Host $http_host`):
the server sees `Host: 127.0.0.1:PROXYPORT`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dicomweb_origin.app import Archive
from dicomweb_origin.demo import generate_demo
from dicomweb_origin.settings import Settings

ROOT = "/dicomweb"
PROBE = ROOT + "/studies/1.2.3/metadata"  # answered by the application (404, 401, ...) once it is up
START_TIMEOUT_S = 60
SERVE = (sys.executable, "-m", "dicomweb_origin.cli", "serve")


def free_port() -> int:
    """A loopback TCP port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class LiveServer:
    """A started process that answers HTTP: its origin, its log, the process itself."""

    origin: str  # http://127.0.0.1:PORT (https:// with TLS)
    log: Path
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        """The server process (its memory: tests/support/probes.py)."""
        return self.process.pid

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
            return json.loads(response.read() or b"[]")

    def studies(self) -> dict[str, str]:
        """StudyInstanceUID by Study Description (the demo studies have one each)."""
        return {s["00081030"]["Value"][0]: s["0020000D"]["Value"][0]
                for s in self.json("/studies?includefield=00081030") if "00081030" in s}


def wait_until_answering(server: LiveServer, probe: str = PROBE, timeout: float = START_TIMEOUT_S) -> None:
    """Return once ``server`` answers ``probe`` with any HTTP status below 500; fail if it exits or stays silent."""
    context = ssl._create_unverified_context() if server.origin.startswith("https:") else None
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.process.args!r} exited with {server.process.returncode}:\n"
                               f"{server.log_tail()}")
        try:
            with urllib.request.urlopen(server.origin + probe, timeout=2, context=context):
                return
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code < 500:
                return  # any answer from the application means it is up
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"no answer within {timeout} s:\n{server.log_tail()}")
        time.sleep(0.05)


def stop(process: subprocess.Popen[bytes], grace: float = 10, sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` (TERM: a graceful shutdown) to the process, KILL it after ``grace`` seconds, and reap it."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait()


def spawn(args: Sequence[str], log: Path, *, port: int | None = None, env: Mapping[str, str] | None = None,
          tls: bool = False, command: Sequence[str] = SERVE, append: bool = False) -> LiveServer:
    """``command ARGS --port PORT`` in a new session, its output in ``log``, without waiting for it to answer.

    ``start`` waits; a test of what happens while the server starts (its banner, its refusals) calls this.
    """
    port = port or free_port()
    with open(log, "ab" if append else "wb") as out:
        process = subprocess.Popen([*command, *args, "--port", str(port)], stdout=out, stderr=subprocess.STDOUT,
                                   env=os.environ | dict(env or {}) | {"PYTHONUNBUFFERED": "1"},
                                   start_new_session=True)
    return LiveServer(f"{'https' if tls else 'http'}://127.0.0.1:{port}", log, process)


def start(args: Sequence[str], log: Path, *, port: int | None = None, env: Mapping[str, str] | None = None,
          tls: bool = False, command: Sequence[str] = SERVE, probe: str = PROBE, append: bool = False,
          ) -> LiveServer:
    """``command ARGS --port PORT`` (``dicomweb-origin serve`` by default) in a new session, once it answers HTTP.

    Its output goes to ``log`` (appended to with ``append``); ``env`` adds to this process's environment.
    """
    server = spawn(args, log, port=port, env=env, tls=tls, command=command, append=append)
    try:
        wait_until_answering(server, probe)
    except BaseException:
        stop(server.process)
        raise
    return server


@contextlib.contextmanager
def live_server(data: Path, *args: str, env: Mapping[str, str] | None = None, tls: bool = False,
                ) -> Iterator[LiveServer]:
    """`dicomweb-origin serve --data DATA ARGS` as a process on a free port, until the block ends."""
    port = free_port()
    server = start(["--data", str(data), *args], data.parent / f"server-{port}.log", port=port, env=env, tls=tls)
    try:
        yield server
    finally:
        stop(server.process)


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
    port = free_port()

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
        async def stop_relay() -> None:
            server.close()
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop_relay(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
