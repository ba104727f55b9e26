"""Client processes with one kept-alive connection each, and a check of every answer.

On a 2-core machine, client threads in one Python process take turns on the GIL, so at 8 clients the client
becomes what is measured; processes do not share a GIL (shared/anchors/README.md: "use processes, not threads,
with one keep-alive connection each"). A ``ClientPool`` forks its workers once; each run hands every worker a
``Job``, lets each one connect (and warm up) untimed, then starts them all at once and collects their timings.

Every answer is checked against an ``Expect`` after its clock stopped (status, media type, multipart part count,
payload length, DICOM JSON object count), so a fast error is never counted as a fast answer.
"""

from __future__ import annotations

import multiprocessing
import re
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

from common import MIB, Latencies, RawClient

BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
STOW_BOUNDARY = "dicomweb-bench-stow-boundary"
STOW_TYPE = f'multipart/related; type="application/dicom"; boundary={STOW_BOUNDARY}'


@dataclass(frozen=True)
class Expect:
    """What a correct answer looks like; ``problem`` says what is wrong with one, or None."""

    status: int | None = 200  # None: any status
    parts: int | None = None  # multipart/related: exactly this many parts
    part_bytes: int = 0  # every part's payload at least this long (a frame: rows x columns x 2)
    instances: int | None = None  # DICOM JSON: this many objects (SOP Instance UID "00080018" keys)
    media: str | None = None  # Content-Type starts with this (single-part answers)
    min_bytes: int = 1
    contains: bytes | None = None  # the (decoded) body holds these bytes
    lacks: bytes | None = None  # ... and not these (e.g. a STOW answer's FailedSOPSequence, "00081198")

    def problem(
        self, status: int, headers: dict[str, str], buf: bytearray, length: int, streamed: Streamed | None = None
    ) -> str | None:
        if self.status is not None and status != self.status:
            return f"status {status}"
        if length < self.min_bytes:
            return f"{length} bytes"
        content_type = headers.get("content-type", "")
        if self.media is not None and not content_type.startswith(self.media):
            return f"Content-Type {content_type!r}"
        if self.parts is not None:
            delimiter = multipart_delimiter(content_type)
            if not content_type.startswith("multipart/related") or delimiter is None:
                return f"not multipart: Content-Type {content_type!r}"
            if streamed is not None:
                closed, parts = streamed.closed, streamed.delimiters - 1
            else:
                closed, parts = buf.find(delimiter + b"--", 0, length) >= 0, buf.count(delimiter, 0, length) - 1
            if not closed:
                return "no closing multipart delimiter"
            if parts != self.parts:
                return f"{parts} parts, not {self.parts}"
            if length < parts * self.part_bytes:
                return f"{length} bytes for {parts} parts of at least {self.part_bytes}"
        if self.instances is not None or self.contains is not None or self.lacks is not None:
            if streamed is not None:
                return "a large body was not kept: its content cannot be checked"
            body: bytes | bytearray = buf[:length]
            if headers.get("content-encoding", "identity").lower() in ("gzip", "deflate"):
                body = zlib.decompress(bytes(body), 47)
            if self.instances is not None and (n := body.count(b'"00080018"')) != self.instances:
                return f"{n} DICOM JSON objects, not {self.instances}"
            if self.contains is not None and self.contains not in body:
                return f"no {self.contains!r} in the body"
            if self.lacks is not None and self.lacks in body:
                return f"{self.lacks!r} in the body"
        return None


@dataclass(frozen=True)
class Req:
    """One request of a job: GET path, or POST a file's bytes (as they are, or wrapped as a STOW body)."""

    path: str
    headers: tuple[tuple[str, str], ...]
    expect: Expect
    method: str = "GET"
    body_file: str | None = None
    stow: bool = False  # wrap the file into a one-part multipart/related; type="application/dicom" body

    def body(self) -> bytes:
        if self.body_file is None:
            return b""
        data = Path(self.body_file).read_bytes()
        if not self.stow:
            return data
        head = f"--{STOW_BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        return head + data + f"\r\n--{STOW_BOUNDARY}--\r\n".encode()


def request(path: str, headers: dict[str, str], expect: Expect) -> Req:
    return Req(path, tuple(headers.items()), expect)


class KeepingClient(RawClient):
    """RawClient that keeps the body of the last answer for checking (in one reused, growing buffer).

    A multipart body larger than ``keep_limit`` (a whole study) is not kept: it is read through a 4 MiB buffer
    while its multipart delimiters are counted, so a 2 GB study needs no 2 GB buffer and no page faults.
    """

    keep_limit = 32 * MIB

    def __init__(self, host: str, port: int, timeout: float = 300.0) -> None:
        super().__init__(host, port, timeout)
        self.kept = bytearray(1 << 20)
        self.used = 0
        self.streamed: Streamed | None = None

    def _request(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], int]:
        self.used = 0
        self.streamed = None
        return super()._request(method, path, headers, body)

    def _drain(self, size: int | None) -> int:
        assert self.file is not None
        delimiter = multipart_delimiter(self.response_headers.get("content-type", ""))
        if size is not None and size > self.keep_limit and delimiter is not None and not self.used:
            self.streamed = Streamed(delimiter)
            return self.streamed.read(self.file, size)
        total = 0
        while size is None or total < size:
            want = (1 << 20) if size is None else size - total
            if self.used + want > len(self.kept):
                self.kept.extend(bytes(max(self.used + want, 2 * len(self.kept)) - len(self.kept)))
            with memoryview(self.kept) as whole, whole[self.used : self.used + want] as view:
                n = self.file.readinto(view)  # type: ignore[attr-defined]
            if not n:
                if size is None:
                    break
                raise EOFError("connection closed mid-body")
            total += n
            self.used += n
        return total

    def problem(self, expect: Expect, status: int, headers: dict[str, str], length: int) -> str | None:
        return expect.problem(status, headers, self.kept, length, self.streamed)


class Streamed:
    """Multipart delimiters counted while a large body streams through one buffer (each where it ends)."""

    def __init__(self, delimiter: bytes, chunk: int = 4 * MIB) -> None:
        self.delimiter = delimiter
        self.closing = delimiter + b"--"
        self.delimiters = 0
        self.closed = False
        self.buffer = bytearray(chunk + len(self.closing))

    def read(self, source: Any, size: int) -> int:
        keep = len(self.closing) - 1
        total, carry = 0, 0
        with memoryview(self.buffer) as view:
            while total < size:
                n = source.readinto(view[carry : carry + min(size - total, len(self.buffer) - carry)])
                if not n:
                    raise EOFError("connection closed mid-body")
                total += n
                end = carry + n
                self.delimiters += self.buffer.count(self.delimiter, max(0, carry - len(self.delimiter) + 1), end)
                if not self.closed:
                    self.closed = self.buffer.find(self.closing, max(0, carry - keep), end) >= 0
                carry = min(keep, end)
                view[:carry] = view[end - carry : end]
        return total


def multipart_delimiter(content_type: str) -> bytes | None:
    match = BOUNDARY.search(content_type) if content_type.startswith("multipart/") else None
    return b"--" + match.group(1).encode("latin-1") if match else None


@dataclass
class Outcome:
    """What one worker measured: per-request latencies (ms), bytes, statuses, problems, its own CPU time."""

    samples: list[float] = field(default_factory=list)
    bytes: int = 0
    statuses: set[int] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)  # the first few, with their path
    bad: int = 0
    start: float = 0.0
    end: float = 0.0
    cpu: float = 0.0


class Job(Protocol):
    """Work for one client process: ``prepare`` (untimed: connect, warm up), then ``run`` (timed)."""

    def prepare(self) -> None: ...

    def run(self) -> Any: ...


@dataclass
class RequestJob:
    """Send ``requests`` one after another over one kept-alive connection; ``warmup`` first, untimed."""

    host: str
    port: int
    requests: Sequence[Req]
    warmup: Sequence[Req] = ()
    client: KeepingClient | None = None

    def prepare(self) -> None:
        self.client = KeepingClient(self.host, self.port)
        self.client._connect()
        for req in self.warmup:
            self.client.request(req.method, req.path, dict(req.headers), req.body())

    def run(self) -> Outcome:
        assert self.client is not None
        client, out = self.client, Outcome()
        cpu = time.process_time()
        out.start = time.perf_counter()
        for req in self.requests:
            body, headers = req.body(), dict(req.headers)
            t0 = time.perf_counter()
            try:
                status, answer, length = client.request(req.method, req.path, headers, body)
            except (OSError, EOFError, ValueError) as exc:  # no answer at all: a bad one, not a crash of the run
                client.close()
                out.bad += 1
                if len(out.problems) < 3:
                    out.problems.append(f"{req.method} {req.path}: {type(exc).__name__}: {exc}")
                continue
            out.samples.append((time.perf_counter() - t0) * 1000)
            out.bytes += length
            out.statuses.add(status)
            if (problem := client.problem(req.expect, status, answer, length)) is not None:
                out.bad += 1
                if len(out.problems) < 3:
                    out.problems.append(f"{req.method} {req.path}: {problem}")
        out.end = time.perf_counter()
        out.cpu = time.process_time() - cpu
        client.close()
        self.client = None
        return out


def _serve(conn: Connection) -> None:
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        try:
            job.prepare()
            conn.send(("ready", None))
            if conn.recv() != "go":
                return
            conn.send(("done", job.run()))
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class ClientPool:
    """Forked client processes, reused across runs; ``run`` starts all jobs together once all are prepared."""

    def __init__(self, processes: int = 1) -> None:
        self.context = multiprocessing.get_context("fork")
        self.workers: list[tuple[Any, Connection]] = []
        self.ensure(processes)

    def ensure(self, processes: int) -> None:
        while len(self.workers) < processes:
            parent, child = self.context.Pipe()
            process = self.context.Process(target=_serve, args=(child,), daemon=True)
            process.start()
            child.close()
            self.workers.append((process, parent))

    def run(self, jobs: Sequence[Job], meter: Callable[[], float] | None = None) -> tuple[list[Any], float]:
        """Results of ``jobs`` (one per process) and ``meter()``'s growth over the timed span (e.g. server CPU)."""
        self.ensure(len(jobs))
        used = self.workers[: len(jobs)]
        for job, (_, conn) in zip(jobs, used, strict=False):
            conn.send(job)
        answers = [conn.recv() for _, conn in used]
        errors = [message for kind, message in answers if kind != "ready"]
        if errors:
            for (kind, _), (_, conn) in zip(answers, used, strict=True):
                if kind == "ready":
                    conn.send("stop")  # it returns without running
            self.close()
            raise RuntimeError(f"a client process failed to prepare: {errors[0]}")
        before = meter() if meter else 0.0
        for _, conn in used:
            conn.send("go")
        results = [conn.recv() for _, conn in used]
        grown = (meter() - before) if meter else 0.0
        failed = [r[1] for r in results if r[0] != "done"]
        if failed:
            raise RuntimeError(f"a client process failed: {failed[0]}")
        return [r[1] for r in results], grown

    def close(self) -> None:
        for process, conn in self.workers:
            try:
                conn.send(None)
            except OSError:
                pass
            conn.close()
            process.join(5)
            if process.is_alive():
                process.kill()
        self.workers = []

    def __enter__(self) -> ClientPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Measured:
    """The merged outcome of one run over several client processes."""

    latencies: Latencies
    problems: list[str]
    bad: int
    client_cpu: float  # CPU seconds of all client processes
    meter: float  # the meter's growth (server CPU seconds)

    @property
    def requests(self) -> int:
        return len(self.latencies.samples)


def merge(outcomes: Sequence[Outcome], meter: float = 0.0) -> Measured:
    samples = [s for o in outcomes for s in o.samples]
    wall = max(o.end for o in outcomes) - min(o.start for o in outcomes)
    statuses = set().union(*(o.statuses for o in outcomes))
    return Measured(
        Latencies(samples, wall, sum(o.bytes for o in outcomes), statuses),
        [p for o in outcomes for p in o.problems],
        sum(o.bad for o in outcomes),
        sum(o.cpu for o in outcomes),
        meter,
    )


def spread(requests: Sequence[Req], clients: int) -> list[list[Req]]:
    """Deal requests to clients in turn (client k gets requests k, k + clients, ...)."""
    return [list(requests[k::clients]) for k in range(clients)]


def run_requests(
    pool: ClientPool,
    host: str,
    port: int,
    requests: Sequence[Req],
    clients: int = 1,
    warmup: Sequence[Req] = (),
    meter: Callable[[], float] | None = None,
) -> Measured:
    """Spread ``requests`` over ``clients`` processes started together; per-request latencies, checked."""
    jobs = [RequestJob(host, port, share, warmup) for share in spread(requests, clients) if share]
    outcomes, grown = pool.run(jobs, meter)
    return merge(outcomes, grown)
