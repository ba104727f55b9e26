"""What our figures are held against (shared/anchors/README.md): Orthanc 1.13 and nginx, and the data all three serve.

* ``Orthanc``: the newest Orthanc (1.13.0 + DICOMweb plugin 1.24 + GDCM plugin) that ``orthanc-latest.sh`` builds in a
  minimal Debian chroot (``--orthanc DIR``, environment ``ORTHANC_DIR``, default /work/orthanc). It runs as root in
  its chroot; without root or without the build, ``orthanc_problem`` says why and the Orthanc column is left out.
* ``Nginx``: Debian's nginx-light with ``sendfile on`` and keep-alive, serving files (the bodies our server answered,
  so the same bytes) or the OHIF viewer with a proxy in front of a server under test.
* ``Dataset``: the files every comparison uses, generated once into a cache folder: a 300-slice 512x512 CT, a
  1,000-instance series of small images (metadata), a 200-frame 512x512 multi-frame instance (105 MB) and JPEG 2000
  Lossless copies of CT slices.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Self

import psutil
from common import free_port
from pool import ClientPool, Expect, Req, run_requests

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE / "orthanc-latest.sh"
DEFAULT_ORTHANC = Path(os.environ.get("ORTHANC_DIR", "/work/orthanc"))
DEFAULT_FILES = Path(os.environ.get("BENCH_FILES", "/tmp/dicomweb-bench-files"))


# -- processes ---------------------------------------------------------------------------------------


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds of these processes and their children (threads included)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            for p in [process, *process.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    times = p.cpu_times()
                    total += times.user + times.system
    return total


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float = 15.0) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


def wait_http(host: str, port: int, path: str, process: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    """Wait until ``path`` answers 200, or raise with the log's tail when the process dies or time runs out."""
    from common import RawClient

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}:\n{tail(log)}")
        with contextlib.suppress(OSError):
            client = RawClient(host, port, timeout=5)
            status, _, _ = client.get(path)
            client.close()
            if status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"did not answer {path} within {timeout:.0f} s:\n{tail(log)}")


def tail(log: Path, chars: int = 3000) -> str:
    try:
        return log.read_bytes()[-chars:].decode(errors="replace")
    except OSError:
        return ""


# -- Orthanc 1.13 ------------------------------------------------------------------------------------


def orthanc_problem(root: Path) -> str | None:
    """Why Orthanc 1.13 cannot run here (None when it can)."""
    if not (root / "usr" / "sbin" / "Orthanc").is_file():
        return f"not built in {root} (`make bench` builds it: sudo {BUILD_SCRIPT} {root}, ~40 s, ~490 MB)"
    if os.geteuid() != 0:
        return "running it needs root (it runs in a chroot)"
    return None


def peer_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every side-by-side script takes: where Orthanc and the files are, our server's extra options."""
    parser.add_argument("--orthanc", type=Path, default=DEFAULT_ORTHANC,
                        help=f"Orthanc 1.13 chroot (default $ORTHANC_DIR or {DEFAULT_ORTHANC}); 'none': leave it out")
    parser.add_argument("--files", type=Path, default=DEFAULT_FILES,
                        help=f"cache of the generated files (default $BENCH_FILES or {DEFAULT_FILES})")
    parser.add_argument("--server-arg", action="append", default=[],
                        help="extra `serve` argument for our server, repeatable (e.g. --server-arg=--workers=2)")


def orthanc_announced(root: Path) -> str | None:
    """Why Orthanc 1.13 is left out (printed, so the output says so), or None when it runs."""
    problem = orthanc_problem(root) if str(root) != "none" else "left out (--orthanc none)"
    if problem:
        print(f"  Orthanc 1.13: {problem} -- the Orthanc column is skipped", flush=True)
    return problem


def build_orthanc(root: Path) -> str | None:
    """Build Orthanc 1.13 in ``root`` when missing; the reason when it cannot be built (None when it is there)."""
    if (root / "usr" / "sbin" / "Orthanc").is_file():
        return None
    if os.geteuid() != 0:
        return "building it needs root (debootstrap, chroot)"
    result = subprocess.run([str(BUILD_SCRIPT), str(root)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return f"{BUILD_SCRIPT} {root} failed ({result.returncode}): {(result.stderr or result.stdout)[-1500:]}"
    return None


class Orthanc:
    """One Orthanc 1.13 process in the chroot at ``root``, with its own storage, on a free loopback port.

    The configuration is the anchors' one (shared/anchors/orthanc-latest.sh's header): DICOMweb and GDCM plugins,
    50 HTTP threads, keep-alive, TCP_NODELAY, ``SyncStorageArea: true`` (its default: files synced, as our STOW and
    import are), full study and series metadata; plus a keep-alive timeout of 5 s, as our server's.
    """

    name = "Orthanc 1.13"
    prefix = "/dicom-web"

    def __init__(self, root: Path, label: str = "bench", keep: bool = False) -> None:
        self.root = root
        self.host = "127.0.0.1"
        self.port = free_port()
        self.inside = f"/tmp/dicomweb-bench-orthanc-{label}-{self.port}"  # path in the chroot
        self.dir = root / self.inside.lstrip("/")
        self.keep = keep
        self.process: subprocess.Popen[bytes] | None = None
        self.pid = 0

    def config(self) -> dict[str, Any]:
        return {
            "Name": "bench",
            "StorageDirectory": f"{self.inside}/storage",
            "IndexDirectory": f"{self.inside}/index",
            "HttpPort": self.port,
            "Plugins": [
                "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
                "/usr/share/orthanc/plugins/libOrthancGdcm.so",
            ],
            "DicomServerEnabled": False,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "HttpThreadsCount": 50,
            "KeepAlive": True,
            "KeepAliveTimeout": 5,
            "TcpNoDelay": True,
            "SyncStorageArea": True,
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "StudiesMetadata": "Full", "SeriesMetadata": "Full"},
        }

    def start(self, timeout: float = 60.0) -> Self:
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        (self.dir / "orthanc.json").write_text(json.dumps(self.config(), indent=1))
        log = self.dir / "orthanc.log"
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [str(BUILD_SCRIPT), str(self.root), "run", f"{self.inside}/orthanc.json"],
                stdout=out, stderr=subprocess.STDOUT, cwd="/",
            )
        try:
            wait_http(self.host, self.port, "/system", self.process, timeout, log)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"Orthanc {exc}") from None
        self.pid = self._orthanc_pid()
        return self

    def _orthanc_pid(self) -> int:
        """The Orthanc process (the script execs chroot, which execs Orthanc; look below it all the same)."""
        assert self.process is not None
        process = psutil.Process(self.process.pid)
        for p in [process, *process.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                if p.name() == "Orthanc":
                    return p.pid
        return self.process.pid

    def cpu(self) -> float:
        return cpu_seconds([self.pid])

    def rss(self) -> int:
        with contextlib.suppress(psutil.Error):
            return int(psutil.Process(self.pid).memory_info().rss)
        return 0

    def count(self) -> int:
        """Instances stored (GET /statistics)."""
        from urllib.request import urlopen

        with urlopen(f"http://{self.host}:{self.port}/statistics", timeout=30) as response:
            return int(json.load(response)["CountInstances"])

    def upload(self, pool: ClientPool, files: Sequence[str], clients: int) -> ImportRun:
        """POST /instances of every file (its REST upload) from ``clients`` processes; checked, and counted after."""
        reqs = [Req("/instances", (("Content-Type", "application/dicom"),), Expect(contains=b"Success"), "POST", f)
                for f in files]
        run = posted(pool, self.host, self.port, reqs, clients, self.cpu)
        if run.problem is None and (count := self.count()) != len(files):
            run.problem = f"Orthanc holds {count} instances of {len(files)}"
        return run

    def stop(self) -> None:
        stop_process(self.process, timeout=30)
        self.process = None
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class ImportRun:
    seconds: float
    cpu: float
    stored: int
    problem: str | None = None


def cli_import(folder: Path, files: Sequence[str], extra: Sequence[str]) -> ImportRun:
    """``dicomweb-origin import`` of ``files`` (their folders) into an empty archive: wall time, CPU, stored."""
    folders = sorted({str(Path(f).parent) for f in files})
    command = [sys.executable, "-m", "dicomweb_origin.cli", "import", "--data", str(folder), *extra, *folders]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    output = process.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    match = re.search(r"stored: (\d+)", output)
    stored = int(match.group(1)) if match else 0
    problem = None
    if process.returncode != 0 or stored != len(files):
        problem = f"exit {process.returncode}, stored {stored} of {len(files)}: {output[-300:]!r}"
    return ImportRun(seconds, usage.ru_utime + usage.ru_stime, stored, problem)


def posted(pool: ClientPool, host: str, port: int, reqs: list[Req], clients: int,
           cpu: Callable[[], float]) -> ImportRun:
    """POST every request from ``clients`` processes: wall time, server CPU, answers that were right."""
    m = run_requests(pool, host, port, reqs, clients, meter=cpu)
    problem = f"{m.bad} bad answers: {m.problems[0]}" if m.bad else None
    return ImportRun(m.latencies.wall, m.meter, m.requests - m.bad, problem)


# -- nginx -------------------------------------------------------------------------------------------


def nginx_binary() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)


class Nginx:
    """nginx on a free loopback port running the ``server`` blocks given (``{port}``, ``{root}`` and the keys of
    ``fill``, which may be set after construction, filled in at start).

    ``types`` maps file suffixes to the Content-Type to send for them (so a saved multipart body goes out with
    its boundary, as our server sent it). Access log off, sendfile on, keep-alive without a request limit.
    """

    name = "nginx"
    prefix = ""

    def __init__(self, root: Path, servers: str, types: dict[str, str] | None = None, workers: int = 0) -> None:
        self.root = root
        self.host = "127.0.0.1"
        self.port = free_port()
        self.servers = servers
        self.types = types or {}
        self.workers = workers or (os.cpu_count() or 1)
        self.fill: dict[str, str] = {}
        self.process: subprocess.Popen[bytes] | None = None

    def config(self) -> str:
        types = "\n".join(f'    "{media.replace(chr(34), chr(92) + chr(34))}" {suffix};'
                          for suffix, media in self.types.items())
        temp = " ".join(f"{name}_temp_path {self.root}/temp-{name};"
                        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        servers = self.servers
        for key, value in {"port": str(self.port), "root": str(self.root), **self.fill}.items():
            servers = servers.replace("{" + key + "}", value)
        # Started as root, nginx would run its workers as nobody, who may not read the files (a 0700 temporary
        # folder, a checkout under /root): keep them as the user who started it.
        user = "user root;\n" if os.geteuid() == 0 else ""
        return f"""{user}worker_processes {self.workers};
daemon off;
pid {self.root}/nginx.pid;
error_log {self.root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_timeout 65; keepalive_requests 10000000;
  types_hash_max_size 65536; types_hash_bucket_size 512;
  default_type application/octet-stream;
  types {{
    application/javascript js; text/html html; text/css css; application/wasm wasm; application/json json;
    image/png png; image/svg+xml svg; font/woff2 woff2; font/woff woff; font/ttf ttf;
{types}
  }}
  {temp}
{servers}
}}
"""

    def start(self, timeout: float = 30.0) -> Self:
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx is not installed (Debian: apt-get install nginx-light; `make services`)")
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "nginx.conf").write_text(self.config())
        log = self.root / "nginx.out"
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [binary, "-p", str(self.root), "-e", str(self.root / "error.log"), "-c", str(self.root / "nginx.conf")],
                stdout=out, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.process.returncode}:\n{tail(log)}"
                                   f"{tail(self.root / 'error.log')}")
            with contextlib.suppress(OSError), socket_to(self.host, self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not listen within {timeout:.0f} s:\n{tail(self.root / 'error.log')}")

    def cpu(self) -> float:
        return cpu_seconds([self.process.pid]) if self.process else 0.0

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def socket_to(host: str, port: int) -> Iterator[None]:
    import socket

    with socket.create_connection((host, port), timeout=1):
        yield


# -- the data set ------------------------------------------------------------------------------------


@dataclass
class Series:
    """One generated series: its UIDs, its files (in instance order) and what a frame of it holds."""

    study_uid: str
    series_uid: str
    instance_uids: list[str]
    files: list[str]
    frames: int  # frames per instance
    frame_bytes: int  # native frame size (rows x columns x bytes per sample)

    @property
    def study(self) -> str:
        return f"/studies/{self.study_uid}"

    @property
    def series(self) -> str:
        return f"{self.study}/series/{self.series_uid}"

    def instance(self, i: int) -> str:
        return f"{self.series}/instances/{self.instance_uids[i % len(self.instance_uids)]}"

    @property
    def bytes(self) -> int:
        return sum(Path(f).stat().st_size for f in self.files)

    @property
    def smallest_file(self) -> int:
        return min(Path(f).stat().st_size for f in self.files)


@dataclass
class Dataset:
    ct: Series  # the 300-slice 512x512 CT (frames, retrieve, study metadata, rendered, viewers, OHIF)
    meta: Series  # the 1,000-instance series (series metadata)
    multiframe: Series  # one 200-frame instance
    j2k: Series  # JPEG 2000 Lossless copies of CT slices (decoded frames)

    def all_files(self) -> list[str]:
        return [*self.ct.files, *self.meta.files, *self.multiframe.files, *self.j2k.files]

    def import_files(self) -> list[str]:
        """The files of the import figure: the CT and the small-image series (what a site sends most)."""
        return [*self.ct.files, *self.meta.files]


def describe(files: list[Path]) -> Series:
    import pydicom

    rows = []
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        frame = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1)) * (int(ds.BitsAllocated) // 8)
        rows.append((int(ds.get("InstanceNumber", 0) or 0), str(path), str(ds.SOPInstanceUID),
                     str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), int(ds.get("NumberOfFrames", 1) or 1),
                     frame))
    rows.sort()
    return Series(rows[0][3], rows[0][4], [r[2] for r in rows], [r[1] for r in rows], rows[0][5], rows[0][6])


def dataset(
    cache: Path, *, slices: int = 300, size: int = 512, meta_slices: int = 1000, meta_size: int = 64,
    frames: int = 200, j2k_slices: int = 64, log: Any = print,
) -> Dataset:
    """The comparison's files, generated into ``cache`` once per set of sizes (a manifest marks them complete)."""
    from frames import make_j2k_series, make_multiframe

    from dicomweb_origin.demo import generate_demo

    folder = cache / f"ct{slices}x{size}-meta{meta_slices}x{meta_size}-mf{frames}-j2k{j2k_slices}"
    manifest = folder / "manifest.json"
    if manifest.is_file():
        data = json.loads(manifest.read_text())
        loaded = Dataset(**{key: Series(**value) for key, value in data.items()})
        if all(Path(f).is_file() for f in loaded.all_files()):
            return loaded
    shutil.rmtree(folder, ignore_errors=True)
    start = time.perf_counter()
    generate_demo(folder / "ct-demo", slices=slices, size=size)
    ct = sorted((folder / "ct-demo" / "ct").glob("*.dcm"))
    generate_demo(folder / "meta-demo", slices=meta_slices, size=meta_size)
    meta = sorted((folder / "meta-demo" / "ct").glob("*.dcm"))
    multi = make_multiframe(ct[0], frames, size, folder / "multiframe" / "0001.dcm")
    j2k = make_j2k_series([ct[i % len(ct)] for i in range(j2k_slices)], folder / "j2k")
    made = Dataset(describe(ct), describe(meta), describe([multi]), describe(j2k))
    manifest.write_text(json.dumps({key: asdict(value) for key, value in made.__dict__.items()}))
    log(f"  generated the data set in {time.perf_counter() - start:.0f} s: {folder}")
    return made


def main(argv: list[str]) -> int:
    """``anchors.py build DIR``: build Orthanc 1.13 in DIR when missing (for `make bench`); never fails make."""
    if len(argv) != 2 or argv[0] != "build":
        print("usage: anchors.py build DIR", file=sys.stderr)
        return 2
    root = Path(argv[1])
    if not (root / "usr" / "sbin" / "Orthanc").is_file():
        print(f"Building Orthanc 1.13 in {root} ({BUILD_SCRIPT.name}: debootstrap, ~490 MB) ...", flush=True)
    reason = build_orthanc(root) or orthanc_problem(root)
    if reason:
        print(f"Orthanc 1.13 cannot be used: {reason}. The benchmarks leave its column out.")
    else:
        print(f"Orthanc 1.13 ready in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
