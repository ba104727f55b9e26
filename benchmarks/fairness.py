"""Fair service: how long a light request waits while other clients keep the server's CPUs busy.

    .venv/bin/python benchmarks/fairness.py [--slices 64] [--size 512] [--heavy 8] [--requests 40] [--parts 10000]

Light requests (issue 16): a series' metadata, a search, a stored frame; heavy ones: cold rendered JPEGs with a
large viewport, animated GIFs of a multi-frame instance and rendered MPR of the CT series (every request a new
window or position, so no cache answers it). Prints each light kind's latency alone and under ``--heavy`` clients
that send heavy requests back to back, and the ratio; then a rendered request's latency alone and while one client
stores ``--parts`` tiny instances in one STOW. Compare ratios (loaded / alone) across versions, on the same machine
at the same time; asserts nothing. ``--server-src DIR`` serves another checkout's ``src`` (e.g. a ``git archive`` of
the commit before a change) to compare versions in one run of the same data.
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pydicom
from common import (
    ROOT_PATH,
    RawClient,
    Server,
    archive_records,
    common_arguments,
    figure,
    heading,
    ingest,
    machine_line,
    study_uid_of,
    temp_dir,
)
from frames import make_multiframe
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from dicomweb_origin.demo import generate_demo

JSON = {"Accept": "application/dicom+json", "Accept-Encoding": "identity"}
OCTET = {"Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*'}
JPEG = {"Accept": "image/jpeg"}
GIF = {"Accept": "image/gif"}


def tiny_instance(study: str, series: str, number: int) -> bytes:
    """A valid Secondary Capture instance of 2 x 2 pixels: a few hundred bytes."""
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.PatientID, ds.PatientName, ds.Modality, ds.InstanceNumber = "FAIR", "Fair^Service", "OT", number
    ds.Rows = ds.Columns = 2
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelData = bytes(4)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def stow_body(parts: int) -> tuple[bytes, str]:
    boundary = "fairness-boundary"
    study, series = generate_uid(), generate_uid()
    chunks = [f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + tiny_instance(study, series, n)
              + b"\r\n" for n in range(parts)]
    return b"".join(chunks) + f"--{boundary}--\r\n".encode(), f'multipart/related; type="application/dicom"; ' \
                                                             f"boundary={boundary}"


def timed(client: RawClient, path: str, headers: dict[str, str]) -> tuple[float, int]:
    start = time.perf_counter()
    status, _, _ = client.get(path, headers)
    return (time.perf_counter() - start) * 1000, status


def light_round(host: str, port: int, light: dict[str, tuple[str, dict[str, str]]], n: int) -> dict[str, list[float]]:
    """``n`` requests of each light kind, interleaved, from one kept-alive client."""
    client = RawClient(host, port)
    found: dict[str, list[float]] = {kind: [] for kind in light}
    try:
        for _ in range(n):
            for kind, (path, headers) in light.items():
                ms, status = timed(client, path, headers)
                if status != 200:
                    print(f"  {kind}: status {status}", file=sys.stderr)
                found[kind].append(ms)
                time.sleep(0.01)
    finally:
        client.close()
    return found


class HeavyLoad:
    """``clients`` threads sending cold heavy requests back to back until stopped."""

    def __init__(self, host: str, port: int, clients: int, paths: itertools.cycle[tuple[str, dict[str, str]]]):
        self.host, self.port, self.paths = host, port, paths
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.done = 0
        self.statuses: dict[int, int] = {}
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _run(self) -> None:
        client = RawClient(self.host, self.port)
        while not self.stop.is_set():
            with self.lock:
                path, headers = next(self.paths)
            status, _, _ = client.get(path, headers)
            with self.lock:
                self.done += 1
                self.statuses[status] = self.statuses.get(status, 0) + 1
        client.close()

    def __enter__(self) -> HeavyLoad:
        for thread in self.threads:
            thread.start()
        time.sleep(1.0)  # every client has a request in flight
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(samples):8.1f} ms  p95 {p95:8.1f} ms  max {ordered[-1]:8.1f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=64, help="slices of the demo CT series (default 64)")
    parser.add_argument("--size", type=int, default=512, help="matrix size of the CT (default 512)")
    parser.add_argument("--frames", type=int, default=30, help="frames of the GIF's multi-frame instance")
    parser.add_argument("--heavy", type=int, default=8, help="clients sending heavy requests (default 8)")
    parser.add_argument("--requests", type=int, default=40, help="requests of each light kind per figure")
    parser.add_argument("--parts", type=int, default=10_000, help="tiny instances in the big STOW (default 10000)")
    parser.add_argument("--stow-viewport", type=int, default=512,
                        help="viewport of the rendered request measured during the STOW (default 512)")
    parser.add_argument("--server-src", action="append", default=[],
                        help="serve the package under this src folder instead (repeatable: one run per folder)")
    parser.add_argument("--serve-arg", action="append", default=[], help="an extra argument for serve (repeatable)")
    common_arguments(parser)
    args = parser.parse_args(argv)

    print(f"dicomweb-origin fairness benchmark on {machine_line()}")
    with temp_dir(args.keep) as tmp:
        data = tmp / "archive"
        heading("Setup (not the server)")
        demo = generate_demo(tmp / "demo", slices=args.slices, size=args.size)
        ct = sorted((tmp / "demo" / "ct").glob("*.dcm"))
        multi = make_multiframe(ct[0], args.frames, args.size, tmp / "multiframe" / "0001.dcm")
        result = ingest(data, [*demo, multi])
        figure("ingest", f"{result.instances} instances in {result.seconds:.2f} s")
        records = archive_records(data, study_uid_of(ct[0]))
        series = records[0].path.rsplit("/instances/", 1)[0]
        multi_path = archive_records(data, study_uid_of(multi))[0].path
        light = {
            "series metadata": (f"{ROOT_PATH}{series}/metadata", JSON),
            "search": (f"{ROOT_PATH}/studies?limit=25&includefield=00081030", JSON),
            "stored frame": (f"{ROOT_PATH}{records[len(records) // 2].path}/frames/1", OCTET),
        }
        for src in args.server_src or [""]:
            if src:
                os.environ["PYTHONPATH"] = str(Path(src).resolve())
                heading(f"Server from {src}")
            run(data, args, light, records, series, multi_path)
            os.environ.pop("PYTHONPATH", None)
    return 0


def run(data: Path, args: argparse.Namespace, light: dict[str, tuple[str, dict[str, str]]], records: list[Any],
        series: str, multi_path: str) -> None:
    """Every figure against one server process."""
    counter = itertools.count()
    big = args.size * 2

    def heavy_paths() -> itertools.cycle[tuple[str, dict[str, str]]]:
        kinds = []
        for i in range(10_000):
            record = records[i % len(records)]
            kinds.append((f"{ROOT_PATH}{record.path}/rendered?window={next(counter)},400,linear"
                          f"&viewport={big},{big}", JPEG))
            kinds.append((f"{ROOT_PATH}{multi_path}/rendered?window={next(counter)},4000,linear", GIF))
            kinds.append((f"{ROOT_PATH}{series}/renderedmpr?orientation={'apl'[i % 3]}"
                          f"&window={next(counter)},400,linear", JPEG))
        return itertools.cycle(kinds)

    with Server(data, *args.serve_arg) as server:
        host, port = server.host, server.port
        light_round(host, port, light, 3)  # warm: imports, caches of the index
        with HeavyLoad(host, port, 1, heavy_paths()):
            time.sleep(3)  # the decoders, encoders and the volume loaded once

        heading(f"Light requests alone, then under {args.heavy} clients of cold heavy requests")
        alone = light_round(host, port, light, args.requests)
        with HeavyLoad(host, port, args.heavy, heavy_paths()) as load:
            started = time.perf_counter()
            loaded = light_round(host, port, light, args.requests)
            seconds = time.perf_counter() - started
        for kind in light:
            figure(f"{kind}, alone", summary(alone[kind]))
            figure(f"{kind}, under load", summary(loaded[kind]))
            ratio = statistics.median(loaded[kind]) / statistics.median(alone[kind])
            figure(f"{kind}, p50 loaded / alone", f"{ratio:8.1f} x")
        figure("heavy requests answered meanwhile", f"{load.done / seconds:8.1f} req/s  statuses {load.statuses}")

        heading(f"A rendered request alone, then while one client stores {args.parts} tiny instances in one STOW")
        body, content_type = stow_body(args.parts)
        render = [f"{ROOT_PATH}{records[i % len(records)].path}/rendered?window={900 + i},400,linear"
                  f"&viewport={args.stow_viewport},{args.stow_viewport}" for i in range(1000)]
        client = RawClient(host, port)
        quiet = [timed(client, render[i], JPEG)[0] for i in range(args.requests)]
        stow_done = threading.Event()
        stow_result: list[str] = []

        def store() -> None:
            import http.client

            connection = http.client.HTTPConnection(host, port, timeout=600)
            begun = time.perf_counter()
            connection.request("POST", f"{ROOT_PATH}/studies", body=body,
                               headers={"Content-Type": content_type, "Accept": "application/dicom+json"})
            response = connection.getresponse()
            response.read()
            stow_result.append(f"{response.status} in {time.perf_counter() - begun:.1f} s")
            stow_done.set()

        thread = threading.Thread(target=store)
        thread.start()
        during = []
        i = args.requests
        while not stow_done.is_set():
            during.append(timed(client, render[i % len(render)], JPEG)[0])
            i += 1
        thread.join()
        client.close()
        figure(f"rendered JPEG, viewport {args.stow_viewport}, alone", summary(quiet))
        figure(f"rendered JPEG, viewport {args.stow_viewport}, during the STOW",
               summary(during) + f"  ({len(during)} req)")
        figure(f"STOW of {args.parts} parts ({len(body) / 1e6:.1f} MB)", stow_result[0] if stow_result else "?")


if __name__ == "__main__":
    pydicom.config.settings.writing_validation_mode = pydicom.config.IGNORE
    sys.exit(main())
