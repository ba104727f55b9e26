"""Peak memory of each probe of issue 16 on a real server process, at the issue's sizes (or smaller, by flags).

    .venv/bin/python benchmarks/memory.py                    # the issue's sizes (a few GB of disk, minutes)
    .venv/bin/python benchmarks/memory.py --small            # a quick run: every probe at a tenth or so
    .venv/bin/python benchmarks/memory.py --only bomb,gif-long,settle    # some probes

Probes: a ~300-byte JPEG 2000 codestream claiming 60000² in a 512² instance (STOW, and frames / rendered of one
stored before ingest compared headers); a 60-frame 512² instance as image/gif at viewport=8192,8192; a 1,000-frame
1024² instance as image/gif; a J2K instance of 100 frames of 1024² (~210 MB decoded) as native application/dicom;
a native instance of N frames of 1024² as JPEG-LS application/dicom; /renderedmpr?orientation=a and /rendered3d of
a series of 1,000 slices of 1024² (2 GB). Each probe runs on a server of its own (memory an earlier probe left
would hide the next one's peak), and its figure is the server's peak resident memory above its RSS once started
(VmHWM reset through /proc/PID/clear_refs), the answer's status, its time and size. Then every probe runs on one
server, which is left idle for a minute: its RSS then says what it kept (it runs with caches of 16 MiB for frames
and renderings and 64 MiB for volumes, smaller than what the probes make, so that what it keeps is not the caches).
Run it against another checkout with ``PYTHONPATH=OTHER/src`` (the server inherits it) to compare; ``--budget-mb``
passes ``--max-request-memory-mb`` (only servers that have it). Asserts nothing.
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
from pathlib import Path

import httpx
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from common import Server, heading, machine_line, temp_dir  # noqa: E402
from pydicom.filewriter import dcmwrite  # noqa: E402

from tests.support.probes import (  # noqa: E402
    J2K_LOSSLESS,
    JLS_LOSSLESS,
    MIB,
    MULTIFRAME_BYTE_SC,
    MULTIFRAME_WORD_SC,
    _dataset,
    ct_series,
    j2k_bomb,
    measure,
    rss,
    store_in_process,
    uids_of,
)

EXPLICIT_LE = "1.2.840.10008.1.2.1"
PROBES = ("bomb", "gif-viewport", "gif-long", "j2k-native", "native-jls", "mpr", "3d", "settle")


def write_multiframe(path: Path, frames: int, size: int, bits: int, syntax: str) -> bytes:
    """A multi-frame grayscale SC instance written to ``path`` a frame at a time; returns its first 64 KiB."""
    import imagecodecs

    ds = _dataset(MULTIFRAME_BYTE_SC if bits == 8 else MULTIFRAME_WORD_SC, size, size, bits, frames, syntax)
    if bits == 16:
        ds.BitsStored, ds.HighBit = 12, 11
    dcmwrite(path, ds, enforce_file_format=True)
    dtype = np.uint8 if bits == 8 else np.uint16
    base = np.add.outer(np.arange(size), np.arange(size))
    with open(path, "ab") as out:
        if syntax == EXPLICIT_LE:
            length = frames * size * size * (bits // 8)
            out.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB" if bits == 8 else b"OW", 0, length))
            for n in range(frames):
                out.write(((base + 3 * n) % (256 if bits == 8 else 4096)).astype(dtype).tobytes())
        else:
            out.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, 0xFFFFFFFF))
            out.write(struct.pack("<HHI", 0xFFFE, 0xE000, 0))  # empty Basic Offset Table: one fragment a frame
            for n in range(frames):
                frame = ((base + 3 * n) % (256 if bits == 8 else 4096)).astype(dtype)
                data = imagecodecs.jpeg2k_encode(frame, level=0, codecformat="J2K")
                data += b"\0" * (len(data) % 2)
                out.write(struct.pack("<HHI", 0xFFFE, 0xE000, len(data)) + data)
            out.write(struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))
    with open(path, "rb") as file:
        return file.read(1 << 16)


def store_files(data: Path, paths: list[Path]) -> None:
    from dicomweb_origin.app import Archive
    from dicomweb_origin.settings import Settings

    archive = Archive(Settings(data_dir=data))
    try:
        for path in paths:
            with open(path, "rb") as file:
                result = archive.ingest.store(file)
            if result.outcome.value == "failed":
                print(f"  could not store {path.name}: {result.reason}", file=sys.stderr)
    finally:
        archive.close()


def _path(head: bytes) -> str:
    study, series, instance = uids_of(head)
    return f"/studies/{study}/series/{series}/instances/{instance}"


Request = tuple[str, str, str, dict[str, object]]  # label, method, URL, httpx arguments


def send(pid: int, client: httpx.Client, request: Request) -> str:
    """One probe: its status, the server's peak above its RSS before, its time, its size; one line."""
    label, method, url, kwargs = request

    def call() -> tuple[int, int, str]:
        with client.stream(method, url, **kwargs) as response:  # type: ignore[arg-type]
            size = sum(len(chunk) for chunk in response.iter_raw())
            return response.status_code, size, response.headers.get("warning", "")[:80]

    probe = measure(pid, call)
    status, size, warning = probe.value
    return (f"{label:<56} {status}  peak +{probe.peak / MIB:7,.0f} MiB  {probe.seconds:7.2f} s  {size / MIB:7,.1f} MiB"
            f" out  RSS after {rss(pid) / MIB:6,.0f} MiB {warning}")


def requests(heads: dict[str, bytes], series_path: str | None, sizes: argparse.Namespace) -> list[Request]:
    """The probes of issue 16 as HTTP requests."""
    found: list[Request] = []
    octets = {"Accept": 'multipart/related; type="application/octet-stream"'}
    if "bomb" in heads:
        body = b"--b\r\nContent-Type: application/dicom\r\n\r\n" + j2k_bomb(sizes.bomb) + b"\r\n--b--\r\n"
        found.append((f"STOW of a {len(j2k_bomb(sizes.bomb))}-byte J2K claiming {sizes.bomb}² in 512²", "POST",
                      "/studies", {"content": body, "headers": {
                          "Content-Type": 'multipart/related; type="application/dicom"; boundary=b'}}))
        found.append(("  one stored before the check: /frames/1", "GET", _path(heads["bomb"]) + "/frames/1",
                      {"headers": octets}))
        found.append(("  one stored before the check: /rendered", "GET", _path(heads["bomb"]) + "/rendered",
                      {"headers": {"Accept": "image/jpeg"}}))
    if "short cine" in heads:
        found.append((f"60 x 512² as image/gif, viewport={sizes.viewport}²", "GET",
                      _path(heads["short cine"]) + "/rendered",
                      {"headers": {"Accept": "image/gif"}, "params": {"viewport": f"{sizes.viewport},{sizes.viewport}"}}))
    if "long cine" in heads:
        found.append((f"{sizes.cine} x 1024² as image/gif", "GET", _path(heads["long cine"]) + "/rendered",
                      {"headers": {"Accept": "image/gif"}}))
    if "j2k" in heads:
        found.append((f"J2K {sizes.j2k_frames} x 1024² as native application/dicom", "GET", _path(heads["j2k"]),
                      {"headers": {"Accept": f"application/dicom; transfer-syntax={EXPLICIT_LE}"}}))
    if "native" in heads:
        found.append((f"native {sizes.jls_frames} x 1024² as JPEG-LS application/dicom", "GET",
                      _path(heads["native"]),
                      {"headers": {"Accept": f"application/dicom; transfer-syntax={JLS_LOSSLESS}"}}))
    if series_path is not None:
        if "mpr" in sizes.probes:
            found.append((f"renderedmpr?orientation=a of {sizes.slices} x 1024²", "GET",
                          series_path + "/renderedmpr", {"headers": {"Accept": "image/jpeg"},
                                                         "params": {"orientation": "a"}}))
        if "3d" in sizes.probes:
            found.append((f"rendered3d of {sizes.slices} x 1024²", "GET", series_path + "/rendered3d",
                          {"headers": {"Accept": "image/jpeg"}}))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="every probe at a small size (about a minute)")
    parser.add_argument("--only", default=",".join(PROBES), help=f"comma-separated probes of {', '.join(PROBES)}")
    parser.add_argument("--budget-mb", type=int, default=None, help="--max-request-memory-mb for the server")
    parser.add_argument("--bomb", type=int, default=None, help="the size the J2K header claims (60000)")
    parser.add_argument("--viewport", type=int, default=None, help="viewport of the 60-frame GIF (8192)")
    parser.add_argument("--cine", type=int, default=None, help="frames of the long 1024² GIF (1000)")
    parser.add_argument("--j2k-frames", type=int, default=None, help="1024² frames of the J2K instance (100)")
    parser.add_argument("--jls-frames", type=int, default=None, help="1024² 16-bit native frames to JPEG-LS (1000)")
    parser.add_argument("--slices", type=int, default=None, help="1024² slices of the series (1000)")
    parser.add_argument("--settle", type=float, default=60.0, help="seconds to wait for the RSS afterwards")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directory")
    args = parser.parse_args()
    small = args.small
    args.bomb = args.bomb or (20000 if small else 60000)
    args.viewport = args.viewport or (2048 if small else 8192)
    args.cine = args.cine or (100 if small else 1000)
    args.j2k_frames = args.j2k_frames or (10 if small else 100)
    args.jls_frames = args.jls_frames or (50 if small else 1000)
    args.slices = args.slices or (100 if small else 1000)
    args.probes = set(args.only.split(","))
    print(machine_line())
    with temp_dir(args.keep) as root:
        heads, series_path, data = generate(root, args)
        # Caches smaller than the probes' data, so that the RSS afterwards shows what is kept besides them.
        server_args = ["--frame-cache-mb", "16", "--rendered-cache-mb", "16", "--volume-cache-mb", "64"]
        if args.budget_mb:
            server_args += ["--max-request-memory-mb", str(args.budget_mb)]
        probes = requests(heads, series_path, args)
        heading("each probe on a server of its own (peak above its RSS once started)")
        for request in probes:
            with Server(data, *server_args) as server, httpx.Client(base_url=server.base, timeout=7200) as client:
                client.get("/studies", headers={"Accept": "application/dicom+json"})
                print(send(server.pid, client, request), flush=True)
        if "settle" in args.probes:
            heading(f"every probe on one server, then {args.settle:.0f} s idle")
            with Server(data, *server_args) as server, httpx.Client(base_url=server.base, timeout=7200) as client:
                client.get("/studies", headers={"Accept": "application/dicom+json"})
                baseline = rss(server.pid)
                for request in probes:
                    print(send(server.pid, client, request), flush=True)
                time.sleep(args.settle)
                print(f"RSS {args.settle:.0f} s after the probes: {rss(server.pid) / MIB:,.0f} MiB"
                      f" (after start: {baseline / MIB:,.0f} MiB)")


def generate(root: Path, args: argparse.Namespace) -> tuple[dict[str, bytes], str | None, Path]:
    """Write and store the probes' instances; return their first bytes by name, the series path and the archive."""
    data, files = root / "data", root / "files"
    files.mkdir()
    heading("data")
    start = time.perf_counter()
    heads: dict[str, bytes] = {}
    if "bomb" in args.probes:
        heads["bomb"] = j2k_bomb(args.bomb)
        store_in_process(data, [heads["bomb"]], check_headers=False)  # as an archive from before the check
    paths = []
    for name, frames, size, bits, syntax, wanted in (
            ("short cine", 60, 512, 8, EXPLICIT_LE, "gif-viewport"),
            ("long cine", args.cine, 1024, 8, EXPLICIT_LE, "gif-long"),
            ("j2k", args.j2k_frames, 1024, 16, J2K_LOSSLESS, "j2k-native"),
            ("native", args.jls_frames, 1024, 16, EXPLICIT_LE, "native-jls")):
        if wanted in args.probes:
            path = files / f"{name.replace(' ', '-')}.dcm"
            heads[name] = write_multiframe(path, frames, size, bits, syntax)
            paths.append(path)
            print(f"{name}: {frames} frames of {size}², {path.stat().st_size / MIB:,.1f} MiB stored", flush=True)
    series_path = None
    if args.probes & {"mpr", "3d"}:
        for n, instance in enumerate(ct_series(args.slices, 1024, 0.5, 0.5)):  # one slice in memory at a time
            path = files / f"ct-{n:05d}.dcm"
            path.write_bytes(instance)
            paths.append(path)
            if series_path is None:
                study, series, _ = uids_of(instance)
                series_path = f"/studies/{study}/series/{series}"
        print(f"series: {args.slices} slices of 1024² ({args.slices * 2} MiB of pixels)", flush=True)
    store_files(data, paths)
    for path in paths:
        path.unlink()  # the archive holds them now
    print(f"generated and stored in {time.perf_counter() - start:.0f} s", flush=True)
    return heads, series_path, data


if __name__ == "__main__":
    main()
