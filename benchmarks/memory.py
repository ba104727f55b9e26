"""Peak memory of each probe of issue 16 on a real server process, at the issue's sizes (or smaller, by flags).

    .venv/bin/python benchmarks/memory.py                    # the issue's sizes (a few GB of disk, minutes)
    .venv/bin/python benchmarks/memory.py --small            # a quick run: every probe at a tenth or so
    .venv/bin/python benchmarks/memory.py --only bomb,gif    # some probes

Probes: a ~300-byte JPEG 2000 codestream claiming 60000² in a 512² instance (STOW, and frames / rendered of one
stored before ingest compared headers); a 60-frame 512² instance as image/gif at viewport=8192,8192; a 1,000-frame
1024² instance as image/gif; a J2K instance of 100 frames of 1024² (~210 MB decoded) as native application/dicom;
a native instance of N frames of 1024² as JPEG-LS application/dicom; /renderedmpr?orientation=a and /rendered3d of
a series of 1,000 slices of 1024² (2 GB); and the server's resident memory a minute after (the server runs with
caches of 16 MiB for frames and renderings and 64 MiB for volumes, smaller than what the probes make, so that what
it keeps is not the caches). Each figure is the
server's peak resident memory above its RSS before the request (VmHWM reset through /proc/PID/clear_refs), the
answer's status and its time. Run it against another checkout with ``PYTHONPATH=OTHER/src`` (the server inherits
it) to compare; ``--budget-mb`` passes ``--max-request-memory-mb`` (only servers that have it). Asserts nothing.
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
sys.path.insert(0, str(HERE.parent / "tests"))
from common import Server, heading, machine_line, temp_dir  # noqa: E402
from probes import (  # noqa: E402
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
from pydicom.filewriter import dcmwrite  # noqa: E402

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


def report(label: str, pid: int, send: httpx.Client, method: str, url: str, **kwargs: object) -> None:
    def request() -> httpx.Response:
        with send.stream(method, url, **kwargs) as response:  # type: ignore[arg-type]
            size = sum(len(chunk) for chunk in response.iter_raw())
            response.extensions["size"] = size
            return response

    probe = measure(pid, request)
    response = probe.value
    note = response.headers.get("warning", "")[:90]
    print(f"{label:<58} {response.status_code}  peak +{probe.peak / MIB:8,.0f} MiB  {probe.seconds:7.2f} s  "
          f"{response.extensions['size'] / MIB:8,.1f} MiB out  RSS after {rss(pid) / MIB:6,.0f} MiB {note}",
          flush=True)


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
    bomb = args.bomb or (20000 if small else 60000)
    viewport = args.viewport or (2048 if small else 8192)
    cine = args.cine or (100 if small else 1000)
    j2k_frames = args.j2k_frames or (10 if small else 100)
    jls_frames = args.jls_frames or (50 if small else 1000)
    slices = args.slices or (100 if small else 1000)
    only = set(args.only.split(","))
    print(machine_line())
    with temp_dir(args.keep) as root:
        data, files = root / "data", root / "files"
        files.mkdir()
        heading("data")
        start = time.perf_counter()
        heads: dict[str, bytes] = {}
        if "bomb" in only:
            heads["bomb"] = j2k_bomb(bomb)
            store_in_process(data, [heads["bomb"]], check_headers=False)  # as an archive from before the check
        paths = []
        for name, frames, size, bits, syntax, wanted in (
                ("short cine", 60, 512, 8, EXPLICIT_LE, "gif-viewport"),
                ("long cine", cine, 1024, 8, EXPLICIT_LE, "gif-long"),
                ("j2k", j2k_frames, 1024, 16, J2K_LOSSLESS, "j2k-native"),
                ("native", jls_frames, 1024, 16, EXPLICIT_LE, "native-jls")):
            if wanted in only:
                path = files / f"{name.replace(' ', '-')}.dcm"
                heads[name] = write_multiframe(path, frames, size, bits, syntax)
                paths.append(path)
                print(f"{name}: {frames} frames of {size}², {path.stat().st_size / MIB:,.1f} MiB stored", flush=True)
        series_path = None
        if only & {"mpr", "3d"}:
            for n, instance in enumerate(ct_series(slices, 1024, 0.5, 0.5)):  # one slice in memory at a time
                path = files / f"ct-{n:05d}.dcm"
                path.write_bytes(instance)
                paths.append(path)
                if series_path is None:
                    study, series, _ = uids_of(instance)
                    series_path = f"/studies/{study}/series/{series}"
            print(f"series: {slices} slices of 1024² ({slices * 2} MiB of pixels)", flush=True)
        store_files(data, paths)
        print(f"generated and stored in {time.perf_counter() - start:.0f} s", flush=True)
        # Caches smaller than the probes' data, so that the RSS afterwards shows what is kept besides them.
        server_args = ["--frame-cache-mb", "16", "--rendered-cache-mb", "16", "--volume-cache-mb", "64"]
        if args.budget_mb:
            server_args += ["--max-request-memory-mb", str(args.budget_mb)]
        with Server(data, *server_args) as server, httpx.Client(base_url=server.base, timeout=3600) as client:
            pid = server.pid
            client.get("/studies", headers={"Accept": "application/dicom+json"})
            baseline = rss(pid)
            heading(f"probes (server RSS after start: {baseline / MIB:,.0f} MiB)")
            if "bomb" in only:
                body = (b"--b\r\nContent-Type: application/dicom\r\n\r\n" + j2k_bomb(bomb) + b"\r\n--b--\r\n")
                report(f"STOW of a {len(j2k_bomb(bomb))}-byte J2K claiming {bomb}² in 512²", pid, client, "POST",
                       "/studies", content=body,
                       headers={"Content-Type": 'multipart/related; type="application/dicom"; boundary=b'})
                path = _path(heads["bomb"])
                report("  stored one: /frames/1 as octet-stream", pid, client, "GET", path + "/frames/1",
                       headers={"Accept": 'multipart/related; type="application/octet-stream"'})
                report("  stored one: /rendered image/jpeg", pid, client, "GET", path + "/rendered",
                       headers={"Accept": "image/jpeg"})
            if "gif-viewport" in only:
                report(f"60 x 512² as image/gif, viewport={viewport},{viewport}", pid, client, "GET",
                       _path(heads["short cine"]) + "/rendered", headers={"Accept": "image/gif"},
                       params={"viewport": f"{viewport},{viewport}"})
            if "gif-long" in only:
                report(f"{cine} x 1024² as image/gif", pid, client, "GET", _path(heads["long cine"]) + "/rendered",
                       headers={"Accept": "image/gif"})
            if "j2k-native" in only:
                report(f"J2K {j2k_frames} x 1024² as native application/dicom", pid, client, "GET",
                       _path(heads["j2k"]), headers={"Accept": f"application/dicom; transfer-syntax={EXPLICIT_LE}"})
            if "native-jls" in only:
                report(f"native {jls_frames} x 1024² as JPEG-LS application/dicom", pid, client, "GET",
                       _path(heads["native"]), headers={"Accept": f"application/dicom; transfer-syntax={JLS_LOSSLESS}"})
            if "mpr" in only and series_path:
                report(f"renderedmpr?orientation=a of {slices} x 1024²", pid, client, "GET",
                       series_path + "/renderedmpr", headers={"Accept": "image/jpeg"}, params={"orientation": "a"})
            if "3d" in only and series_path:
                report(f"rendered3d of {slices} x 1024²", pid, client, "GET", series_path + "/rendered3d",
                       headers={"Accept": "image/jpeg"})
            if "settle" in only:
                deadline = time.monotonic() + args.settle
                while time.monotonic() < deadline:
                    time.sleep(1)
                print(f"RSS {args.settle:.0f} s after the probes: {rss(pid) / MIB:,.0f} MiB"
                      f" (after start: {baseline / MIB:,.0f} MiB)")


if __name__ == "__main__":
    main()
