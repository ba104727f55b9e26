"""Benchmark pixel data: frame latency (native, multi-frame, JPEG 2000 transcoded), transcoded retrieve.

    .venv/bin/python benchmarks/frames.py [--requests 400] [--concurrency 1 8] [--j2k-slices 48]

Prints figures beside the design targets; asserts nothing. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pydicom
from common import (
    MB,
    ROOT_PATH,
    Latencies,
    RawClient,
    Server,
    archive_records,
    common_arguments,
    figure,
    heading,
    ingest,
    latency_figure,
    machine_line,
    measure,
    mib,
    stream_get,
    study_uid_of,
    temp_dir,
)
from pydicom.uid import UID, JPEG2000Lossless, generate_uid

from dicomweb_origin.demo import generate_demo, phantom_volume

OCTET = 'multipart/related; type="application/octet-stream"'
DICOM_DEFAULT = (
    'multipart/related; type="application/dicom"'  # no transfer-syntax: Explicit VR LE (decompressed)
)
TARGET_FRAME_MS = 2.0  # an uncompressed or cached frame, p50 on loopback
MULTIFRAME_SOP_CLASS = (
    "1.2.840.10008.5.1.4.1.1.7.3"  # Multi-frame Grayscale Word Secondary Capture Image Storage
)


def make_j2k_series(sources: list[Path], out_dir: Path) -> list[Path]:
    """Copies of native CT slices, JPEG 2000 Lossless compressed, in a study of their own."""
    study, series = (
        generate_uid(entropy_srcs=["bench-j2k-study"]),
        generate_uid(entropy_srcs=["bench-j2k-series"]),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, source in enumerate(sources):
        ds = pydicom.dcmread(source)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.StudyDescription = "Benchmark CT, JPEG 2000 Lossless"
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(
            entropy_srcs=["bench-j2k", str(i)]
        )
        ds.compress(JPEG2000Lossless, generate_instance_uid=False)
        path = out_dir / f"{i + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def make_multiframe(template: Path, frames: int, size: int, path: Path) -> Path:
    """One multi-frame instance of ``frames`` native 16-bit frames (200 x 512 x 512 = 100 MiB)."""
    ds = pydicom.dcmread(template, stop_before_pixels=True)
    for keyword in ("ImagePositionPatient", "SliceLocation", "InstanceNumber"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = UID(MULTIFRAME_SOP_CLASS)
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["bench-multiframe-study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["bench-multiframe-series"])
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(
        entropy_srcs=["bench-multiframe"]
    )
    ds.StudyDescription = f"Benchmark multi-frame {frames} x {size}x{size}"
    ds.InstanceNumber = 1
    ds.set_pixel_data(phantom_volume(frames, size), "MONOCHROME2", 16, generate_instance_uid=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def frame_paths(records: list[Any], frame: int = 1) -> list[str]:
    return [f"{ROOT_PATH}{r.path}/frames/{frame}" for r in records]


def native_during(
    host: str, port: int, native: list[str], background: list[str], n: int
) -> tuple[Latencies, Latencies]:
    """Native frame latency alone, then while another client requests cold (decoded) J2K frames."""
    alone = measure(host, port, [native[i % len(native)] for i in range(n)], {"Accept": OCTET})
    done = threading.Event()

    def decode_load() -> None:
        measure(host, port, background, {"Accept": OCTET})
        done.set()

    client = RawClient(host, port)
    client.get(native[0], {"Accept": OCTET})
    thread = threading.Thread(target=decode_load)
    samples: list[float] = []
    statuses: set[int] = set()
    size = 0
    thread.start()
    start = time.perf_counter()
    while not done.is_set():
        t0 = time.perf_counter()
        status, _, length = client.get(native[len(samples) % len(native)], {"Accept": OCTET})
        samples.append((time.perf_counter() - t0) * 1000)
        statuses.add(status)
        size += length
    wall = time.perf_counter() - start
    thread.join()
    client.close()
    return alone, Latencies(samples, wall, size, statuses)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--slices", type=int, default=128, help="slices of the demo CT series (default 128)")
    parser.add_argument(
        "--size", type=int, default=512, help="matrix size of CT and multi-frame (default 512)"
    )
    parser.add_argument(
        "--frames", type=int, default=200, help="frames of the multi-frame instance (default 200)"
    )
    parser.add_argument(
        "--j2k-slices",
        type=int,
        default=48,
        help="JPEG 2000 slices made from the CT, split between cold figures (default 48)",
    )
    parser.add_argument("--requests", type=int, default=400, help="requests per warm figure (default 400)")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 8], help="client counts (default 1 8)"
    )
    common_arguments(parser)
    args = parser.parse_args(argv)
    n = args.requests

    print(f"dicomweb-origin frames benchmark on {machine_line()}")
    with temp_dir(args.keep) as tmp:
        data = tmp / "archive"
        heading("Setup (not the server)")
        start = time.perf_counter()
        demo = generate_demo(tmp / "demo", slices=args.slices, size=args.size)
        ct = sorted((tmp / "demo" / "ct").glob("*.dcm"))
        figure("generate demo", f"{time.perf_counter() - start:.1f} s, {len(demo)} files")
        start = time.perf_counter()
        j2k = make_j2k_series([ct[i % len(ct)] for i in range(args.j2k_slices)], tmp / "j2k")
        figure(
            f"compress {len(j2k)} CT slices with JPEG 2000 Lossless (pydicom)",
            f"{time.perf_counter() - start:.1f} s",
        )
        start = time.perf_counter()
        multi = make_multiframe(ct[0], args.frames, args.size, tmp / "multiframe" / "0001.dcm")
        figure(
            f"write multi-frame {args.frames} x {args.size}x{args.size}",
            f"{time.perf_counter() - start:.1f} s, {mib(multi.stat().st_size)}",
        )
        for label, files in (("demo", demo), ("JPEG 2000 series", j2k), ("multi-frame", [multi])):
            result = ingest(data, files)
            figure(
                f"ingest {label}",
                f"{result.rate:7.1f} instances/s  {result.bytes / MB / result.seconds:7.1f} MB/s  "
                f"({result.instances} in {result.seconds:.2f} s) {result.outcomes}",
            )

        ct_records = archive_records(data, study_uid_of(ct[0]))
        j2k_records = archive_records(data, study_uid_of(j2k[0]))
        multi_record = archive_records(data, study_uid_of(multi))[0]
        demo_j2k_study = study_uid_of(min((tmp / "demo" / "ct-j2k").glob("*.dcm")))
        demo_j2k_records = archive_records(data, demo_j2k_study)

        with Server(data) as server:
            host, port = server.host, server.port
            heading(f"Single frame, Accept: {OCTET}  (keep-alive; latency per request)")
            native = frame_paths(ct_records)
            measure(host, port, native, {"Accept": OCTET})  # warm: one pass over every instance
            multiframe = [
                f"{ROOT_PATH}{multi_record.path}/frames/{1 + (i * 37) % args.frames}" for i in range(n)
            ]
            measure(host, port, multiframe[: args.frames], {"Accept": OCTET})
            for clients in args.concurrency:
                latency_figure(
                    f"native CT {args.size}x{args.size} frame, {clients} client(s)",
                    measure(
                        host,
                        port,
                        [native[i % len(native)] for i in range(n)],
                        {"Accept": OCTET},
                        concurrency=clients,
                    ),
                    TARGET_FRAME_MS if clients == 1 else None,
                )
            for clients in args.concurrency:
                latency_figure(
                    f"multi-frame ({args.frames} frames, {mib(multi.stat().st_size)}) frame, "
                    f"{clients} client(s)",
                    measure(host, port, multiframe, {"Accept": OCTET}, concurrency=clients),
                    TARGET_FRAME_MS if clients == 1 else None,
                )

            heading(
                "JPEG 2000 Lossless frame transcoded to Explicit VR LE octet-stream (frame cache in server)"
            )
            groups = [j2k_records[i :: len(args.concurrency) + 1] for i in range(len(args.concurrency) + 1)]
            for clients, group in zip(args.concurrency, groups, strict=False):
                paths = frame_paths(group)
                latency_figure(
                    f"J2K {args.size}x{args.size} cold (first request per frame), {clients} client(s)",
                    measure(host, port, paths, {"Accept": OCTET}, concurrency=clients),
                )
                repeat = [paths[i % len(paths)] for i in range(n)]
                latency_figure(
                    f"J2K {args.size}x{args.size} cached (repeat), {clients} client(s)",
                    measure(host, port, repeat, {"Accept": OCTET}, concurrency=clients),
                    TARGET_FRAME_MS if clients == 1 else None,
                )
            background = frame_paths(groups[-1])
            alone, during = native_during(host, port, native, background, n)
            latency_figure("native frame, 1 client, alone", alone, TARGET_FRAME_MS)
            latency_figure(
                f"native frame, 1 client, while another decodes {len(background)} cold J2K",
                during,
                TARGET_FRAME_MS,
            )

            heading(f"Whole study transcoded to Explicit VR LE, Accept: {DICOM_DEFAULT}")
            for label, study, records in (
                (f"demo J2K study ({len(demo_j2k_records)} instances)", demo_j2k_study, demo_j2k_records),
                (
                    f"J2K {args.size}x{args.size} study ({len(j2k_records)} instances)",
                    j2k_records[0].study_uid,
                    j2k_records,
                ),
            ):
                stored = sum(r.size for r in records)
                for attempt in ("first", "again"):
                    transfer = stream_get(f"{server.base}/studies/{study}", DICOM_DEFAULT, args.client)
                    figure(
                        f"{label}, {attempt}",
                        f"{transfer.mb_per_s:8.1f} MB/s  {transfer.seconds:6.2f} s  "
                        f"({mib(transfer.bytes)} sent, "
                        f"{mib(stored)} stored, status {transfer.status})",
                    )
            with_stored = stream_get(
                f"{server.base}/studies/{j2k_records[0].study_uid}",
                DICOM_DEFAULT + "; transfer-syntax=*",
                args.client,
            )
            figure(
                f"J2K {args.size}x{args.size} study as stored (transfer-syntax=*), for comparison",
                f"{with_stored.mb_per_s:8.1f} MB/s  {with_stored.seconds:6.2f} s  ({mib(with_stored.bytes)})",
            )
            figure("server RSS at the end", mib(server.rss()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
