"""A real S3 server for the tests: a one-node Ceph cluster (monitor, memstore OSD, radosgw) on loopback.

Everything lives in a temporary directory: configuration, monitor store, OSD, sockets, logs. The daemons
run as plain child processes and are stopped by their pids (TERM, then KILL). The settings are those of
/work/shared/services/ceph-rgw.md: ``ms mon client mode = crc secure`` (radosgw never connects otherwise),
``mon max pg per osd`` (radosgw's pools exceed the one-OSD limit), and a short paxos interval, which
takes start-up from ~13 s to ~3 s; ``tcp_nodelay=1`` on the beast frontend (without it a small ranged GET waits
~40 ms on Nagle + delayed ACK: 48 ms for one byte, 2 ms with it). Debian's ``ceph-mon ceph-osd radosgw ceph-common`` provide the
binaries (``make test`` installs them when missing). Starting fails loudly: no test is skipped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .server import free_port

ACCESS_KEY = "dicomweb-test"
SECRET_KEY = "dicomweb-test-secret"
BINARIES = ("monmaptool", "ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph")
START_TIMEOUT_S = 60



@dataclass
class CephS3:
    """A running radosgw: its endpoint and credentials, and the daemons to stop."""

    root: Path
    endpoint: str = ""
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def conf(self) -> Path:
        return self.root / "ceph.conf"

    def environment(self) -> dict[str, str]:
        """What the AWS tools (and boto3) read: credentials and the endpoint."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_ENDPOINT_URL": self.endpoint, "AWS_DEFAULT_REGION": "us-east-1"}

    def url(self, bucket: str) -> str:
        return f"s3://{bucket}?endpoint={self.endpoint}&region=us-east-1"

    def client(self) -> object:
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name="us-east-1",
                            config=Config(s3={"addressing_style": "path"},
                                          request_checksum_calculation="when_required",
                                          response_checksum_validation="when_required"))

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)  # type: ignore[attr-defined]
        return name

    # -- lifecycle ---------------------------------------------------------------------------

    def _ceph(self, *args: str, timeout: float = 20) -> str:
        done = subprocess.run(["ceph", "-c", str(self.conf), *args], capture_output=True, text=True,
                              timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"ceph {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
        return done.stdout

    def _spawn(self, name: str, *args: str) -> None:
        with open(self.root / f"{name}.out", "wb") as log:  # the daemon writes to its own copy of the descriptor
            self.processes.append(subprocess.Popen([*args, "-c", str(self.conf), "-f"], stdout=log,
                                                   stderr=subprocess.STDOUT, start_new_session=True))

    def _wait(self, what: str, ready: object, deadline: float) -> None:
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"a Ceph daemon exited ({process.args!r}, rc {process.returncode})"
                                       f" while waiting for {what}:\n{self.logs()}")
            try:
                if ready():  # type: ignore[operator]
                    return
            except (RuntimeError, OSError, subprocess.TimeoutExpired):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"Ceph: timed out waiting for {what}:\n{self.logs()}")

    def logs(self) -> str:
        out = []
        for path in sorted(self.root.glob("*.out")) + sorted(self.root.glob("log/*.log")):
            out.append(f"--- {path.name}\n" + path.read_text(errors="replace")[-1500:])
        return "\n".join(out)

    def start(self) -> CephS3:
        missing = [b for b in BINARIES if shutil.which(b) is None]
        if missing:
            raise RuntimeError(f"Ceph is not installed (missing {', '.join(missing)}): apt-get install"
                               " --no-install-recommends ceph-mon ceph-osd radosgw ceph-common (make test does)")
        deadline = time.monotonic() + START_TIMEOUT_S
        mon_port, rgw_port = free_port(), free_port()
        fsid = str(uuid.uuid4())
        r = self.root
        for sub in ("mon", "osd", "run", "log", "crash", "rgw"):
            (r / sub).mkdir(parents=True, exist_ok=True)
        self.conf.write_text(f"""[global]
fsid = {fsid}
mon host = v2:127.0.0.1:{mon_port}
public addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc secure
run dir = {r}/run
admin socket = {r}/run/$cluster-$name.asok
log file = {r}/log/$cluster-$name.log
pid file = {r}/run/$cluster-$name.pid
crash dir = {r}/crash
keyring = {r}/keyring
mon data = {r}/mon/$cluster-$id
osd data = {r}/osd/$cluster-$id
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
paxos propose interval = 0.05
paxos min wait = 0.01
mon osd full ratio = 0.99
mon osd nearfull ratio = 0.98
osd failsafe full ratio = 0.995

[osd]
osd objectstore = memstore
memstore device bytes = {4 << 30}

[client.rgw.0]
rgw frontends = beast endpoint=127.0.0.1:{rgw_port} tcp_nodelay=1
rgw data = {r}/rgw
rgw dns name = 127.0.0.1
""")
        subprocess.run(["monmaptool", "--create", "--fsid", fsid, "--addv", "a", f"[v2:127.0.0.1:{mon_port}]",
                        str(r / "monmap")], check=True, capture_output=True)
        subprocess.run(["ceph-mon", "-c", str(self.conf), "--mkfs", "-i", "a", "--monmap", str(r / "monmap")],
                       check=True, capture_output=True)
        self._spawn("mon", "ceph-mon", "-i", "a")
        self._wait("the monitor", lambda: "1 mons" in self._ceph("mon", "stat", timeout=5), deadline)
        osd_uuid = str(uuid.uuid4())
        osd_id = self._ceph("osd", "new", osd_uuid).strip()
        (r / "osd" / f"ceph-{osd_id}").mkdir(parents=True, exist_ok=True)  # memstore asserts otherwise
        subprocess.run(["ceph-osd", "-c", str(self.conf), "-i", osd_id, "--mkfs", "--osd-uuid", osd_uuid],
                       check=True, capture_output=True)
        self._spawn("osd", "ceph-osd", "-i", osd_id)
        self._wait("the OSD", lambda: "1 up" in self._ceph("osd", "stat", timeout=5), deadline)
        self._spawn("rgw", "radosgw", "-n", "client.rgw.0")
        self.endpoint = f"http://127.0.0.1:{rgw_port}"

        def rgw_ready() -> bool:
            try:
                with urllib.request.urlopen(self.endpoint + "/", timeout=2) as response:
                    return bool(response.status == 200)
            except urllib.error.HTTPError as exc:
                return exc.code < 500
            except (urllib.error.URLError, OSError):
                return False

        self._wait("radosgw", rgw_ready, deadline)
        done = subprocess.run(["radosgw-admin", "-c", str(self.conf), "user", "create", "--uid", "dicomweb",
                               "--display-name", "dicomweb", "--access-key", self.access_key,
                               "--secret", self.secret_key], capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"radosgw-admin user create failed: {done.stderr[-2000:]}")
        return self

    def stop(self) -> None:
        """TERM every daemon (radosgw first), KILL what is still there after a few seconds."""
        for process in reversed(self.processes):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for process in reversed(self.processes):
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        self.processes.clear()


@contextlib.contextmanager
def ceph_s3(root: Path) -> Iterator[CephS3]:
    """Start Ceph under ``root`` (which must be empty or absent); stop it and remove ``root`` afterwards."""
    server = CephS3(root)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
