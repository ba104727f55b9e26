"""Benchmark the archive and the core of Retrieve: ingest, study retrieve, metadata latency, server memory.

    .venv/bin/python benchmarks/retrieve.py [--slices 128] [--size 512] [--big-slices 512] [--meta-slices 500]

Prints figures beside the design targets; asserts nothing. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from common import (
    MB,
    ROOT_PATH,
    Latencies,
    RssSampler,
    SendfileServer,
    Server,
    archive_records,
    blob_paths,
    common_arguments,
    figure,
    heading,
    ingest,
    latency_figure,
    machine_line,
    measure,
    mib,
    read_files,
    stream_get,
    study_uid_of,
    temp_dir,
)

from dicomweb_origin.demo import generate_demo

STORED = 'multipart/related; type="application/dicom"; transfer-syntax=*'
JSON = "application/dicom+json"
TARGET_RATIO = 2.0  # study retrieve within 2x of reading the files from the page cache
TARGET_METADATA_MS = 50.0  # metadata of a 500-instance series
TARGET_RSS_SLACK = 8 << 20  # streaming 4x the bytes may not grow the server's RSS by more than this


def ct_files(folder: Path) -> list[Path]:
    return sorted((folder / "ct").glob("*.dcm"))


def best_of(runs: list[float]) -> float:
    return min(runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--slices", type=int, default=128, help="slices of the demo CT series (default 128)")
    parser.add_argument(
        "--size", type=int, default=512, help="matrix size of the demo CT series (default 512)"
    )
    parser.add_argument(
        "--big-slices",
        type=int,
        default=512,
        help="slices of the big study streamed to show constant memory (0 skips it; default 512)",
    )
    parser.add_argument(
        "--meta-slices", type=int, default=500, help="instances of the metadata series (default 500)"
    )
    parser.add_argument(
        "--meta-size", type=int, default=64, help="matrix size of the metadata series (default 64)"
    )
    parser.add_argument("--repeat", type=int, default=5, help="timed study retrieves (default 5)")
    parser.add_argument("--requests", type=int, default=60, help="requests per metadata figure (default 60)")
    common_arguments(parser)
    args = parser.parse_args(argv)

    print(f"dicomweb-origin Retrieve benchmark on {machine_line()}")
    with temp_dir(args.keep) as tmp:
        data = tmp / "archive"

        heading("Ingest (Store use case in-process: parse, write + fsync blob, index in SQLite, commit synced)")
        start = time.perf_counter()
        demo = generate_demo(tmp / "demo", slices=args.slices, size=args.size)
        figure(
            "generate demo (pydicom, not the server)",
            f"{time.perf_counter() - start:.1f} s for {len(demo)} files",
        )
        ct = ct_files(tmp / "demo")
        result = ingest(data, ct)
        figure(
            f"ingest CT {args.slices} x {args.size}x{args.size}",
            f"{result.rate:8.1f} instances/s  {result.bytes / MB / result.seconds:7.1f} MB/s  "
            f"({result.instances} in {result.seconds:.2f} s, {mib(result.bytes)}) {result.outcomes}",
        )
        others = [p for p in demo if p not in set(ct)]
        rest = ingest(data, others)
        figure(
            "ingest rest of demo (J2K, enhanced, pydicom files)",
            f"{rest.rate:8.1f} instances/s  ({rest.instances} in {rest.seconds:.2f} s) {rest.outcomes}",
        )

        generate_demo(tmp / "meta", slices=args.meta_slices, size=args.meta_size)
        meta_files = ct_files(tmp / "meta")
        meta = ingest(data, meta_files)
        figure(
            f"ingest CT {args.meta_slices} x {args.meta_size}x{args.meta_size} (per-instance overhead)",
            f"{meta.rate:8.1f} instances/s  ({meta.instances} in {meta.seconds:.2f} s) {meta.outcomes}",
        )

        big_files: list[Path] = []
        if args.big_slices:
            generate_demo(tmp / "big", slices=args.big_slices, size=args.size)
            big_files = ct_files(tmp / "big")
            big = ingest(data, big_files)
            figure(
                f"ingest CT {args.big_slices} x {args.size}x{args.size} (big study)",
                f"{big.rate:8.1f} instances/s  {big.bytes / MB / big.seconds:7.1f} MB/s  "
                f"({big.instances} in {big.seconds:.2f} s, {mib(big.bytes)})",
            )

        study = study_uid_of(ct[0])
        records = archive_records(data, study)
        series = records[0].series_uid
        meta_study = study_uid_of(meta_files[0])
        meta_series = archive_records(data, meta_study)[0].series_uid

        with Server(data) as server:
            idle = server.rss()
            heading(f"Study retrieve, stored syntax: GET /studies/{{study}}  Accept: {STORED}")
            figure("server RSS idle (after start)", mib(idle))
            url = f"{server.base}/studies/{study}"
            with RssSampler(server.pid) as first:
                cold = stream_get(url, STORED, args.client)
            runs = [stream_get(url, STORED, args.client) for _ in range(args.repeat)]
            statuses = {cold.status, *(r.status for r in runs)}
            size = runs[0].bytes
            paths = blob_paths(data, records)
            read_files(paths)  # make sure the blobs are in the page cache
            reads = [read_files(paths)[1] for _ in range(args.repeat)]
            served = best_of([r.seconds for r in runs])
            cached = best_of(reads)
            ratio = served / cached
            figure(
                f"study: {len(records)} instances, body size", f"{mib(size)} (statuses {sorted(statuses)})"
            )
            figure(
                f"server, client {runs[0].client} (best of {args.repeat}; first request)",
                f"{size / MB / served:8.1f} MB/s  {served * 1000:7.1f} ms  "
                f"(median {statistics.median(r.mb_per_s for r in runs):.1f} MB/s; "
                f"first {cold.mb_per_s:.1f} MB/s)",
            )
            figure(
                "page cache: read the same blob files in Python",
                f"{size / MB / cached:8.1f} MB/s  {cached * 1000:7.1f} ms",
            )
            figure(
                "ratio server time / page-cache read time",
                f"{ratio:8.2f} x",
                f"<= {TARGET_RATIO:g} x",
                ratio <= TARGET_RATIO,
            )
            with SendfileServer(paths) as bare:
                ceiling = best_of(
                    [stream_get(bare.url, "*/*", args.client).seconds for _ in range(args.repeat)]
                )
            figure(
                "loopback ceiling: bare os.sendfile server, same files/client",
                f"{bare.total / MB / ceiling:8.1f} MB/s  {ceiling * 1000:7.1f} ms  "
                f"(server reaches {ceiling / served:.0%} of it)",
            )
            figure(
                "server RSS before / peak while streaming (first request)",
                f"{mib(first.before)} / {mib(first.peak)}  (+{mib(first.peak - first.before)}, "
                f"{first.samples} samples)",
            )

            heading("Metadata latency (Accept: application/dicom+json), keep-alive, 1 client")
            plain = {"Accept": JSON, "Accept-Encoding": "identity"}
            gzip = {"Accept": JSON, "Accept-Encoding": "gzip"}
            n = args.requests
            scenarios: list[tuple[str, str, dict[str, str], float | None]] = [
                (
                    f"series metadata, {len(records)} instances",
                    f"/studies/{study}/series/{series}/metadata",
                    plain,
                    None,
                ),
                (
                    f"series metadata, {len(records)} instances, gzip",
                    f"/studies/{study}/series/{series}/metadata",
                    gzip,
                    None,
                ),
                (f"study metadata, {len(records)} instances", f"/studies/{study}/metadata", plain, None),
                (f"study metadata, {len(records)} instances, gzip", f"/studies/{study}/metadata", gzip, None),
                (
                    f"series metadata, {len(meta_files)} instances",
                    f"/studies/{meta_study}/series/{meta_series}/metadata",
                    plain,
                    TARGET_METADATA_MS,
                ),
                (
                    f"series metadata, {len(meta_files)} instances, gzip",
                    f"/studies/{meta_study}/series/{meta_series}/metadata",
                    gzip,
                    TARGET_METADATA_MS,
                ),
            ]
            for label, path, headers, target in scenarios:
                latencies: Latencies = measure(
                    server.host, server.port, [ROOT_PATH + path] * n, headers, warmup=3
                )
                latency_figure(label, latencies, target)

            if big_files:
                big_study = study_uid_of(big_files[0])
                heading(f"Constant memory: stream a bigger study ({args.big_slices} instances)")
                big_url = f"{server.base}/studies/{big_study}"
                with RssSampler(server.pid) as sampler:
                    transfers = [stream_get(big_url, STORED, args.client) for _ in range(2)]
                transfer = min(transfers, key=lambda t: t.seconds)
                figure("big study body size", f"{mib(transfer.bytes)} (status {transfer.status})")
                figure(
                    "big study throughput (best of 2)",
                    f"{transfer.mb_per_s:8.1f} MB/s  {transfer.seconds * 1000:7.1f} ms",
                )
                figure(
                    "server RSS before / peak while streaming big study",
                    f"{mib(sampler.before)} / {mib(sampler.peak)}  (+{mib(sampler.peak - sampler.before)}, "
                    f"{sampler.samples} samples)",
                )
                small_growth, big_growth = first.peak - first.before, sampler.peak - sampler.before
                figure(
                    "RSS growth while streaming: first study vs big study",
                    f"+{mib(small_growth)} for {mib(size)} vs +{mib(big_growth)} for {mib(transfer.bytes)}",
                    "constant: no growth with study size",
                    big_growth - small_growth < TARGET_RSS_SLACK,
                )
            figure("server RSS at the end", mib(server.rss()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
