"""Benchmark the Rendered and Thumbnail resources (PS3.18 §10.4.1.1.3-4): JPEG, thumbnails, GIF, multipart series.

    .venv/bin/python benchmarks/rendered.py [--slices 128] [--size 512] [--requests 200] [--cold 64]

Cold: every request is a rendering the server has not made (another instance, or another window centre, so its
rendered cache misses); cached: the same URL again. Prints figures beside the targets; asserts nothing. See
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from urllib.parse import quote

from common import (
    MB,
    ROOT_PATH,
    Latencies,
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
    study_uid_of,
    temp_dir,
)
from frames import make_multiframe

from dicomweb_origin.demo import generate_demo

JPEG = {"Accept": "image/jpeg"}
GIF = {"Accept": "image/gif"}
MULTIPART_JPEG = {"Accept": 'multipart/related; type="image/jpeg"'}
# Orthanc 1.10 takes about 2.2 ms for a rendered JPEG of a 512x512 CT instance: at least as fast cold, and at most
# half of it cached.
ORTHANC_MS = 2.2
TARGET_COLD_MS = ORTHANC_MS
TARGET_CACHED_MS = ORTHANC_MS / 2


def query(**params: str) -> str:
    """A query string as a browser writes it (commas kept)."""
    return "?" + "&".join(f"{k}={quote(v, safe=',')}" for k, v in params.items()) if params else ""


def cold_and_cached(host: str, port: int, label: str, cold: list[str], headers: dict[str, str], repeat: int,
                    targets: bool) -> None:
    """One figure for distinct renderings (first request each), one for the first of them asked again."""
    latency_figure(f"{label}, cold", measure(host, port, cold, headers), TARGET_COLD_MS if targets else None)
    latency_figure(f"{label}, cached", measure(host, port, [cold[0]] * repeat, headers),
                   TARGET_CACHED_MS if targets else None)


def body_figure(label: str, result: Latencies, parts: int) -> None:
    each = result.bytes / len(result.samples)
    figure(label, f"p50 {result.p50:8.1f} ms  ({len(result.samples)} req, {mib(int(each))} each, "
                  f"{each / MB / (result.p50 / 1000):6.1f} MB/s, {result.p50 / parts:5.2f} ms per part)"
                  + (f"  statuses {sorted(result.statuses)}!" if result.statuses - {200} else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=128, help="slices of the demo CT series (default 128)")
    parser.add_argument("--size", type=int, default=512, help="matrix size of the CT (default 512)")
    parser.add_argument("--frames", type=int, default=30, help="frames of the animated GIF's instance (default 30)")
    parser.add_argument("--requests", type=int, default=200, help="requests per cached figure (default 200)")
    parser.add_argument("--cold", type=int, default=64, help="distinct renderings per cold figure (default 64)")
    parser.add_argument("--series-runs", type=int, default=3, help="requests per multipart series figure")
    common_arguments(parser)
    args = parser.parse_args(argv)
    n, cold_n = args.requests, min(args.cold, args.slices)

    print(f"dicomweb-origin rendered benchmark on {machine_line()}")
    with temp_dir(args.keep) as tmp:
        data = tmp / "archive"
        heading("Setup (not the server)")
        start = time.perf_counter()
        demo = generate_demo(tmp / "demo", slices=args.slices, size=args.size)
        ct = sorted((tmp / "demo" / "ct").glob("*.dcm"))
        multi = make_multiframe(ct[0], args.frames, args.size, tmp / "multiframe" / "0001.dcm")
        figure("generate demo and multi-frame", f"{time.perf_counter() - start:.1f} s, {len(demo) + 1} files")
        result = ingest(data, [*demo, multi])
        figure("ingest", f"{result.instances} instances in {result.seconds:.2f} s {result.outcomes}")
        records = archive_records(data, study_uid_of(ct[0]))
        series = records[0].path.rsplit("/instances/", 1)[0]
        multi_record = archive_records(data, study_uid_of(multi))[0]
        other = archive_records(data, study_uid_of(min((tmp / "demo" / "ct-j2k").glob("*.dcm"))))

        with Server(data) as server:
            host, port = server.host, server.port
            # Load the encoders and the display pipeline once, on instances measured nowhere else.
            measure(host, port, [f"{ROOT_PATH}{r.path}/rendered" for r in other[:2]], JPEG)
            measure(host, port, [f"{ROOT_PATH}{other[0].path.rsplit('/instances/', 1)[0]}/thumbnail"], JPEG)

            heading(f"Rendered JPEG of a {args.size}x{args.size} CT instance, Accept: image/jpeg (1 client, keep-alive)")
            figure("Orthanc 1.10, for comparison", f"about {ORTHANC_MS} ms",
                   f"cold p50 < {TARGET_COLD_MS:g} ms, cached p50 < {TARGET_CACHED_MS:g} ms")
            variants = [
                ("no parameters", {}),
                ("window=40,400,linear", {"window": "40,400,linear"}),
                ("viewport=256,256", {"viewport": "256,256"}),
                ("window=40,400,linear&viewport=256,256", {"window": "40,400,linear", "viewport": "256,256"}),
            ]
            for label, params in variants:  # each variant its own cache keys: the first pass is cold
                paths = [f"{ROOT_PATH}{r.path}/rendered{query(**params)}" for r in records[:cold_n]]
                cold_and_cached(host, port, f"JPEG, {label}", paths, JPEG, n, targets=True)

            heading("Series thumbnail (the middle instance, fits in 128x128 unless a viewport is given)")
            thumbs = [f"{ROOT_PATH}{series}/thumbnail{query(viewport=f'{100 + i},{100 + i}')}" for i in range(cold_n)]
            cold_and_cached(host, port, "series thumbnail, viewport=N,N", thumbs, JPEG, n, targets=False)
            plain = f"{ROOT_PATH}{series}/thumbnail"
            latency_figure("series thumbnail, no viewport, cold", measure(host, port, [plain], JPEG))
            latency_figure("series thumbnail, no viewport, cached", measure(host, port, [plain] * n, JPEG))

            heading(f"Animated GIF of a {args.frames}-frame {args.size}x{args.size} instance, Accept: image/gif")
            gifs = [f"{ROOT_PATH}{multi_record.path}/rendered{query(window=f'{2000 + 10 * i},4000,linear')}"
                    for i in range(5)]
            cold_and_cached(host, port, f"{args.frames}-frame GIF, window=C,4000,linear", gifs, GIF, 20,
                            targets=False)
            frame_list = ",".join(str(i + 1) for i in range(args.frames))
            listed = [f"{ROOT_PATH}{multi_record.path}/frames/{frame_list}/rendered" + query(viewport=f"{256 - i},"
                      f"{256 - i}") for i in range(3)]
            cold_and_cached(host, port, f"frames/1,...,{args.frames}/rendered GIF, viewport=N,N", listed, GIF, 10,
                            targets=False)

            heading(f'Rendered series of {len(records)} slices, Accept: {MULTIPART_JPEG["Accept"]}')
            runs = [f"{ROOT_PATH}{series}/rendered{query(window=f'{40 + i},400,linear')}"
                    for i in range(args.series_runs)]
            body_figure("series rendered, cold", measure(host, port, runs, MULTIPART_JPEG), len(records))
            body_figure("series rendered, cached", measure(host, port, [runs[0]] * args.series_runs, MULTIPART_JPEG),
                        len(records))
            figure("server RSS at the end", mib(server.rss()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
