"""nginx on loopback running the committed ``deploy/nginx.conf`` in front of server processes (the production layout).

``nginx`` runs deploy/nginx.conf (its listen port and upstream ports rewritten) inside a minimal main configuration
whose pid, logs and temporary files live in a temporary directory; ``serve_shared`` starts
``dicomweb-origin serve --index URL --blobs URL`` (tests/support/server.py) for it to balance. Everything started
here is stopped by its pid. Used by tests/e2e/test_multiprocess.py and benchmarks/scale.py.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from . import REPO
from .server import LiveServer, free_port, start, stop, wait_until_answering

NGINX_CONF = REPO / "deploy" / "nginx.conf"


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


def serve_shared(root: Path, index: str, blobs: str, env: Mapping[str, str], public_url: str | None = None,
                 extra: Sequence[str] = ()) -> LiveServer:
    """``dicomweb-origin serve`` on a shared index and blob store, its own data folder and log under ``root``."""
    port = free_port()
    args = ["--index", index, "--blobs", blobs, "--data", str(root / f"data-{port}"), *extra]
    if public_url:
        args += ["--public-url", public_url]
    return start(args, root / f"server-{port}.log", port=port, env=env)


@contextlib.contextmanager
def nginx(root: Path, upstreams: Sequence[int], listen: int | None = None) -> Iterator[LiveServer]:
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
    proxy = LiveServer(f"http://127.0.0.1:{listen}", log, popen)
    try:
        wait_until_answering(proxy)
        yield proxy
    finally:
        stop(popen, sig=signal.SIGQUIT)  # graceful: finish the requests in flight
