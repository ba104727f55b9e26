"""Shared helpers for the benchmark scripts: a real server process, RSS sampling, clients, timing, printing.

Benchmarks print figures; they never assert on timings (tests do not measure speed). Everything runs
on loopback against ``python -m dicomweb_origin.cli serve`` started on a free port, over a temporary
data directory that is removed afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Self

import psutil

ROOT_PATH = "/dicomweb"
MB = 1_000_000  # throughput figures are in decimal megabytes (MB/s), sizes in MiB where noted
MIB = 1 << 20


# -- data -------------------------------------------------------------------------------------


@contextlib.contextmanager
def temp_dir(keep: bool = False) -> Iterator[Path]:
    """A scratch directory for generated files and the archive; removed unless ``keep``."""
    path = Path(tempfile.mkdtemp(prefix="dicomweb-bench-"))
    try:
        yield path
    finally:
        if keep:
            print(f"(kept {path})")
        else:
            shutil.rmtree(path, ignore_errors=True)


@dataclass
class IngestFigures:
    instances: int
    bytes: int
    seconds: float
    outcomes: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.instances / self.seconds if self.seconds else float("nan")


def ingest(data_dir: Path, paths: Sequence[Path]) -> IngestFigures:
    """Store files into the archive in-process (the Store use case, as ``dicomweb-origin import`` does)."""
    from dicomweb_origin.app import Archive
    from dicomweb_origin.settings import Settings

    archive = Archive(Settings(data_dir=data_dir))
    outcomes: dict[str, int] = {}
    size = 0
    start = time.perf_counter()
    for path in paths:
        with open(path, "rb") as fp:
            result = archive.ingest.store(fp)
        outcomes[result.outcome.value] = outcomes.get(result.outcome.value, 0) + 1
        if result.outcome.value == "failed":
            print(f"  ingest failed: {path}: {result.reason}", file=sys.stderr)
        size += path.stat().st_size
    seconds = time.perf_counter() - start
    archive.index.close()
    return IngestFigures(len(paths), size, seconds, outcomes)


def archive_records(data_dir: Path, study_uid: str) -> list[Any]:
    """The index records of one study (to find blob files and instance URLs)."""
    from dicomweb_origin.storage.sqlite import SqliteIndex

    index = SqliteIndex(data_dir / "index.sqlite")
    try:
        return list(index.instances(study_uid))
    finally:
        index.close()


def blob_paths(data_dir: Path, records: Sequence[Any]) -> list[Path]:
    return [data_dir / "blobs" / r.blob_key for r in records]


def study_uid_of(path: Path) -> str:
    import pydicom

    return str(
        pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["StudyInstanceUID"]).StudyInstanceUID
    )


def read_files(paths: Sequence[Path], chunk: int = MIB) -> tuple[int, float]:
    """Read whole files in 1 MiB chunks into one reused buffer (like ``cat``): (bytes, seconds)."""
    buffer = bytearray(chunk)
    view = memoryview(buffer)
    total = 0
    start = time.perf_counter()
    for path in paths:
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(view):
                total += n
    return total, time.perf_counter() - start


# -- server -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``python -m dicomweb_origin.cli serve`` on a free loopback port, as a context manager."""

    def __init__(self, data_dir: Path, *args: str, log_path: Path | None = None) -> None:
        self.data_dir = data_dir
        self.args = args
        self.port = free_port()
        self.host = "127.0.0.1"
        self.log_path = log_path or data_dir.parent / f"server-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}{ROOT_PATH}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def rss(self) -> int:
        return int(psutil.Process(self.pid).memory_info().rss)

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "dicomweb_origin.cli",
            "serve",
            "--data",
            str(self.data_dir),
            "--host",
            self.host,
            "--port",
            str(self.port),
            *self.args,
        ]

    def start(self, timeout: float = 60.0) -> Self:
        command = self.command()
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed with the process
        env = os.environ | {"PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n{self.log()}")
            try:
                # Any HTTP answer (404 here) means the application is up.
                status, _, _ = RawClient(self.host, self.port).get(f"{ROOT_PATH}/studies/1.2.3/metadata")
                if status:
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the server did not answer within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SendfileServer:
    """A bare HTTP responder that sends the given files with ``os.sendfile``: the loopback ceiling.

    Same bytes, same client, no framework, no multipart framing: what this machine's loopback TCP
    stack and the client can move at best. Runs in a daemon thread of the benchmark process.
    """

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)
        self.total = sum(p.stat().st_size for p in self.paths)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = int(self.sock.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(
                    f"HTTP/1.1 200 OK\r\nContent-Length: {self.total}\r\nConnection: close\r\n\r\n".encode()
                )
                for path in self.paths:
                    with open(path, "rb") as f:
                        size, offset = os.fstat(f.fileno()).st_size, 0
                        while offset < size:
                            offset += os.sendfile(conn.fileno(), f.fileno(), offset, size - offset)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self.sock.close()


class RssSampler:
    """Sample a process's RSS every ``interval`` seconds in a thread; ``peak`` is the largest sample."""

    def __init__(self, pid: int, interval: float = 0.005) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.before = int(self.process.memory_info().rss)
        self.peak = self.before
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss = int(self.process.memory_info().rss)
            except psutil.Error:
                return
            self.peak = max(self.peak, rss)
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.after = int(self.process.memory_info().rss)


# -- clients ----------------------------------------------------------------------------------


class RawClient:
    """A minimal HTTP/1.1 keep-alive client over one socket: a few microseconds of Python per request.

    On a 2-core machine the client shares the CPU with the server, so per-request client cost shows
    up in every latency figure; httpx spends a few hundred microseconds per request, this spends
    tens. Bodies are read (Content-Length or chunked) and counted, never decoded.
    """

    def __init__(self, host: str, port: int, timeout: float = 120.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.sock: socket.socket | None = None
        self.file: BinaryIO | None = None
        self.buffer = bytearray(MIB)
        self.response_headers: dict[str, str] = {}  # of the answer being read

    def _connect(self) -> None:
        self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb", buffering=1 << 16)  # type: ignore[assignment]

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.sock is not None:
            self.sock.close()
        self.sock = self.file = None

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], int]:
        """(status, response headers with lower-case names, body length as received)."""
        return self.request("GET", path, headers)

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> tuple[int, dict[str, str], int]:
        """Send one request (with ``body`` when given) and read the whole answer."""
        for attempt in (0, 1):
            if self.sock is None:
                self._connect()
            try:
                return self._request(method, path, headers or {}, body)
            except (ConnectionError, EOFError):  # server closed the kept-alive connection: retry once
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _request(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], int]:
        assert self.sock is not None and self.file is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body or method in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if len(body) < 65536:
            self.sock.sendall(head + body)
        else:
            self.sock.sendall(head)
            self.sock.sendall(body)
        status_line = self.file.readline()
        if not status_line:
            raise EOFError("connection closed")
        status = int(status_line.split()[1])
        response: dict[str, str] = {}
        while (line := self.file.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            response[name.strip().lower()] = value.strip()
        self.response_headers = response
        if "content-length" in response:
            length = self._drain(int(response["content-length"]))
        elif response.get("transfer-encoding", "").lower() == "chunked":
            length = 0
            while True:
                size = int(self.file.readline().split(b";")[0], 16)
                if size == 0:
                    while self.file.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                length += self._drain(size)
                self.file.readline()
        else:
            length = self._drain(None)
            self.close()
        if response.get("connection", "").lower() == "close":
            self.close()
        return status, response, length

    def _drain(self, size: int | None) -> int:
        assert self.file is not None
        view = memoryview(self.buffer)
        total = 0
        while size is None or total < size:
            want = len(view) if size is None else min(len(view), size - total)
            n = self.file.readinto(view[:want])  # type: ignore[attr-defined]
            if not n:
                if size is None:
                    break
                raise EOFError("connection closed mid-body")
            total += n
        return total


@dataclass
class Transfer:
    status: int
    bytes: int
    seconds: float
    client: str

    @property
    def mb_per_s(self) -> float:
        return self.bytes / MB / self.seconds if self.seconds else float("nan")


def stream_get(url: str, accept: str, client: str = "auto") -> Transfer:
    """GET a (large) body and discard it: curl when available (C, not the bottleneck), else RawClient."""
    curl = shutil.which("curl")
    if client in ("auto", "curl") and curl:
        out = subprocess.run(
            [
                curl,
                "-s",
                "-o",
                "/dev/null",
                "-H",
                f"Accept: {accept}",
                "-H",
                "Accept-Encoding: identity",
                "-w",
                "%{http_code} %{size_download} %{time_total}",
                url,
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        return Transfer(int(out[0]), int(out[1]), float(out[2]), "curl")
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    raw = RawClient(parts.hostname or "127.0.0.1", parts.port or 80)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    start = time.perf_counter()
    status, _, size = raw.get(path, {"Accept": accept, "Accept-Encoding": "identity"})
    seconds = time.perf_counter() - start
    raw.close()
    return Transfer(status, size, seconds, "raw socket")


@dataclass
class Latencies:
    """Per-request wall times (ms) of one scenario, possibly from several concurrent clients."""

    samples: list[float]
    wall: float  # seconds for the whole scenario
    bytes: int
    statuses: set[int]

    def p(self, q: int) -> float:
        if len(self.samples) == 1:
            return self.samples[0]
        return statistics.quantiles(self.samples, n=100, method="inclusive")[q - 1]

    @property
    def p50(self) -> float:
        return self.p(50)

    @property
    def p95(self) -> float:
        return self.p(95)

    @property
    def rps(self) -> float:
        return len(self.samples) / self.wall if self.wall else float("nan")


def measure(
    host: str,
    port: int,
    paths: Sequence[str],
    headers: dict[str, str],
    *,
    concurrency: int = 1,
    warmup: int = 0,
) -> Latencies:
    """Request every path once, spread over ``concurrency`` keep-alive clients; per-request latencies.

    One client runs here; several are client processes (pool.py), so the GIL does not serialise them.
    """
    if concurrency > 1:
        return _measure_in_processes(host, port, paths, headers, concurrency, warmup)
    clients = [RawClient(host, port) for _ in range(concurrency)]
    for i in range(warmup):
        clients[0].get(paths[i % len(paths)], headers)
    samples: list[float] = []
    statuses: set[int] = set()
    total = [0]
    lock = threading.Lock()
    queue = list(enumerate(paths))
    cursor = [0]

    def worker(client: RawClient) -> None:
        local: list[float] = []
        size = 0
        seen: set[int] = set()
        while True:
            with lock:
                if cursor[0] >= len(queue):
                    break
                _, path = queue[cursor[0]]
                cursor[0] += 1
            start = time.perf_counter()
            status, _, n = client.get(path, headers)
            local.append((time.perf_counter() - start) * 1000)
            size += n
            seen.add(status)
        with lock:
            samples.extend(local)
            statuses.update(seen)
            total[0] += size

    # Open every connection before the clock starts.
    for client in clients:
        if client.sock is None:
            client._connect()
    threads = [threading.Thread(target=worker, args=(c,)) for c in clients]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    for client in clients:
        client.close()
    return Latencies(samples, wall, total[0], statuses)


_POOL: Any = None


def _measure_in_processes(
    host: str, port: int, paths: Sequence[str], headers: dict[str, str], concurrency: int, warmup: int
) -> Latencies:
    """``measure`` over client processes; answers are not checked here beyond their status (as before)."""
    from pool import ClientPool, Expect, request, run_requests

    global _POOL
    if _POOL is None:
        _POOL = ClientPool(concurrency)
    reqs = [request(path, headers, Expect(status=None, min_bytes=0)) for path in paths]
    warm = reqs[: min(warmup, len(reqs))]
    return run_requests(_POOL, host, port, reqs, concurrency, warm).latencies


# -- printing ---------------------------------------------------------------------------------


def heading(text: str) -> None:
    print(f"\n== {text}")


def figure(label: str, value: str, target: str | None = None, met: bool | None = None) -> None:
    """One printed figure, with its design target beside it when there is one."""
    line = f"  {label:<58} {value}"
    if target is not None:
        verdict = "" if met is None else ("  [met]" if met else "  [MISSED]")
        line = f"{line:<100} target: {target}{verdict}"
    print(line, flush=True)


def latency_figure(label: str, result: Latencies, target_ms: float | None = None, *, on: str = "p50") -> None:
    bad = result.statuses - {200}
    value = (
        f"p50 {result.p50:7.2f} ms  p95 {result.p95:7.2f} ms  ({len(result.samples)} req, "
        f"{result.rps:6.0f} req/s, {result.bytes / len(result.samples) / 1024:,.0f} KiB each)"
    )
    if bad:
        value += f"  statuses {sorted(result.statuses)}!"
    if target_ms is None:
        figure(label, value)
    else:
        observed = result.p50 if on == "p50" else result.p95
        figure(label, value, f"{on} < {target_ms:g} ms", observed < target_ms and not bad)


def mib(n: int) -> str:
    return f"{n / MIB:,.1f} MiB"


def machine_line() -> str:
    cpu = psutil.cpu_count(logical=True)
    memory = psutil.virtual_memory().total / (1 << 30)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{sys.implementation.name} {sys.version.split()[0]}, {cpu} logical CPUs, {memory:.0f} GiB RAM, "
        f"load average {load} (other processes on the machine add noise)"
    )


def common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directory")
    parser.add_argument(
        "--client",
        choices=("auto", "curl", "raw"),
        default="auto",
        help="client for large downloads: curl when installed (auto), or a raw socket",
    )
