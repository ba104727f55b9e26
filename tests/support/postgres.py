"""Real services the tests start on loopback: PostgreSQL from Debian's packages.

``PostgresServer`` runs ``initdb`` in a fresh temporary directory and starts ``postgres`` on a free
loopback port, its unix socket inside that directory, with settings for a throwaway cluster (no fsync).
initdb refuses to run as root, so as root the cluster belongs to the ``postgres`` user of the Debian
package (or ``nobody``). A missing PostgreSQL is an error, never a skip: ``make test`` installs it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from .server import free_port

PG_BIN_DIRS = [Path(f"/usr/lib/postgresql/{v}/bin") for v in (17, 16, 15)]


def pg_bin() -> Path:
    for candidate in PG_BIN_DIRS:
        if (candidate / "initdb").is_file():
            return candidate
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise RuntimeError("PostgreSQL is not installed: `apt-get install postgresql` (make test does it)")



def _run_as() -> list[str]:
    """A prefix running a command as an unprivileged user when we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return []
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        return ["runuser", "-u", user, "--"]
    raise RuntimeError("running as root and no unprivileged user (postgres, nobody) to own the cluster")


class PostgresServer:
    """One throwaway PostgreSQL cluster; ``url()`` names a database in it (created on demand)."""

    # Fast and unsafe (tests throw the cluster away); a benchmark passes the durable settings it measures.
    SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "max_connections": "300",
                "shared_buffers": "64MB"}

    def __init__(self, settings: dict[str, str] | None = None, directory: Path | None = None) -> None:
        """``directory``: a cluster kept there (created on the first start, reused after, never removed)."""
        self.settings = self.SETTINGS | (settings or {})
        self.bin = pg_bin()
        self.kept = directory is not None
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
        self.dir = directory or Path(tempfile.mkdtemp(prefix="dicomweb-pg-"))
        self.port = free_port()
        self.user = "dicomweb"
        self.prefix = _run_as()
        if self.prefix:
            owner = pwd.getpwnam(self.prefix[2])
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
        self.process: subprocess.Popen[bytes] | None = None
        self._databases: set[str] = set()

    def start(self) -> PostgresServer:
        data = self.dir / "data"
        if not data.exists():
            subprocess.run([*self.prefix, str(self.bin / "initdb"), "-D", str(data), "-U", self.user,
                            "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"],
                           check=True, capture_output=True)
        with open(self.dir / "server.log", "wb") as log:  # the server writes to its own copy of the descriptor
            self.process = subprocess.Popen(
                [*self.prefix, str(self.bin / "postgres"), "-D", str(data), "-p", str(self.port),
                 "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.dir}",
                 *(arg for name, value in self.settings.items() for arg in ("-c", f"{name}={value}"))],
                stdout=subprocess.DEVNULL, stderr=log,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited: {(self.dir / 'server.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    pass
                ready = subprocess.run([str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                                       capture_output=True)
                if ready.returncode == 0:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("postgres did not start within 30 s")

    def url(self, database: str = "postgres") -> str:
        if database != "postgres" and database not in self._databases:
            if not self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}'").strip():  # a kept cluster's
                self.psql(f'CREATE DATABASE "{database}"')
            self._databases.add(database)
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str) -> str:
        return self.psql_db("postgres", sql)

    def psql_db(self, database: str, sql: str) -> str:
        done = subprocess.run([str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user,
                               "-d", database, "-v", "ON_ERROR_STOP=1", "-Atc", sql],
                              check=True, capture_output=True, text=True)
        return done.stdout

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # "Fast" shutdown (SIGINT to the postmaster itself: runuser does not pass it on).
            pid_file = self.dir / "data" / "postmaster.pid"
            try:
                postmaster = int(pid_file.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                postmaster = self.process.pid
            os.kill(postmaster, signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(postmaster, signal.SIGQUIT)  # immediate shutdown, children included
                self.process.wait()
        if not self.kept:
            shutil.rmtree(self.dir, ignore_errors=True)
