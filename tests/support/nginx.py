"""The production layout on loopback: N server processes sharing one index and one blob store, behind nginx.

``nginx`` runs the committed ``deploy/nginx.conf`` (its listen port and upstream ports rewritten) inside
a minimal main configuration whose pid, logs and temporary files live in a temporary directory.
``server`` starts ``dicomweb-origin serve --index URL --blobs URL`` as a process. Everything started here
is stopped by its pid. Used by tests/test_multiprocess.py and benchmarks/scale.py.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NGINX_CONF = REPO / "deploy" / "nginx.conf"
ROOT = "/dicomweb"
START_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if found is None:
        raise RuntimeError("nginx is not installed: apt-get install nginx-light (make test does it)")
    return found


def render_nginx_conf(listen: int, upstreams: Sequence[int]) -> str:
    """deploy/nginx.conf with its listen port and its upstream servers replaced."""
    text = NGINX_CONF.read_text()
    servers = "".join(f"    server 127.0.0.1:{port};\n" for port in upstreams)
    text, n = re.subn(r"(    server 127\.0\.0\.1:\d+;\n)+", servers, text)
    assert n == 1, "deploy/nginx.conf: the upstream block changed shape"
    text, n = re.subn(r"listen \d+;", f"listen 127.0.0.1:{listen};", text)
    assert n == 1, "deploy/nginx.conf: the listen directive changed shape"
    return text


@dataclass
class Process:
    origin: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return self.origin + ROOT

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def _wait_http(process: Process, probe: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.process.poll() is not None:
            raise RuntimeError(f"{process.process.args!r} exited with {process.process.returncode}:\n"
                               f"{process.log_tail()}")
        try:
            urllib.request.urlopen(process.origin + probe, timeout=2)
            return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return  # any answer from the application (404 here) means it is up
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"no answer within {START_TIMEOUT_S} s:\n{process.log_tail()}")
        time.sleep(0.1)


def stop(process: subprocess.Popen[bytes], grace: float = 10) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_server(root: Path, index: str, blobs: str, env: dict[str, str], public_url: str | None = None,
                 extra: Sequence[str] = ()) -> Process:
    port = free_port()
    log = root / f"server-{port}.log"
    args = [sys.executable, "-m", "dicomweb_origin.cli", "serve", "--index", index, "--blobs", blobs,
            "--data", str(root / f"data-{port}"), "--port", str(port), *extra]
    if public_url:
        args += ["--public-url", public_url]
    with open(log, "wb") as out:
        popen = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                 env=os.environ | env | {"PYTHONUNBUFFERED": "1"}, start_new_session=True)
    process = Process(f"http://127.0.0.1:{port}", popen, log)
    try:
        _wait_http(process, ROOT + "/studies/1.2.3/metadata")
    except BaseException:
        stop(popen)
        raise
    return process


@contextlib.contextmanager
def nginx(root: Path, upstreams: Sequence[int], listen: int | None = None) -> Iterator[Process]:
    """nginx running deploy/nginx.conf in front of ``upstreams``, all its files under ``root``."""
    listen = listen or free_port()
    root.mkdir(parents=True, exist_ok=True)
    (root / "dicomweb-origin.conf").write_text(render_nginx_conf(listen, upstreams))
    temp = "\n".join(f"    {kind}_temp_path {root}/{kind};" for kind in ("client_body", "proxy", "fastcgi",
                                                                            "uwsgi", "scgi"))
    (root / "nginx.conf").write_text(f"""worker_processes 2;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
{temp}
    include {root}/dicomweb-origin.conf;
}}
""")
    log = root / "nginx.out"
    with open(log, "wb") as out:
        popen = subprocess.Popen([nginx_binary(), "-p", str(root), "-e", str(root / "error.log"),
                                  "-c", str(root / "nginx.conf")], stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    process = Process(f"http://127.0.0.1:{listen}", popen, log)
    try:
        _wait_http(process, ROOT + "/studies/1.2.3/metadata")
        yield process
    finally:
        if popen.poll() is None:
            popen.send_signal(signal.SIGQUIT)  # graceful: finish the requests in flight
            try:
                popen.wait(10)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()
