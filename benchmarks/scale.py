"""Scale-out figures: PostgreSQL + S3 beside SQLite + files, and 1, 2, 3 processes behind nginx.

Starts the real services on loopback, as the tests do: PostgreSQL (tests/support/postgres.py), Ceph radosgw on a
memstore OSD (tests/support/ceph.py) and nginx running deploy/nginx.conf (tests/support/nginx.py). Generates a CT
series and one large multi-frame instance, stores them into both archives, then prints, per archive:
study retrieve time and throughput, one-frame latency on the large multi-frame instance, series metadata
and search latency; and for PostgreSQL + S3, requests/s of frame and search requests through nginx in
front of 1, 2 and 3 server processes at 32 clients. Every process shares one machine: on 2 cores the
clients, nginx, Ceph and PostgreSQL compete with the servers, so read the figures as indicative.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from common import (
    ROOT_PATH,
    Server,
    figure,
    heading,
    latency_figure,
    machine_line,
    measure,
    mib,
    stream_get,
)
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dicomweb_origin.app import Archive  # noqa: E402
from dicomweb_origin.settings import Settings  # noqa: E402
from dicomweb_origin.storage.backends import migrate_index  # noqa: E402
from tests.support.ceph import ceph_s3  # noqa: E402
from tests.support.nginx import nginx, serve_shared  # noqa: E402
from tests.support.postgres import PostgresServer  # noqa: E402
from tests.support.server import free_port, stop  # noqa: E402

OCTETS = 'multipart/related; type="application/octet-stream"'
DICOM = 'multipart/related; type="application/dicom"'
JSON = "application/dicom+json"


def instance(study: str, series: str, number: int, size: int, frames: int = 1) -> bytes:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7.3" if frames > 1 else "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.Modality, ds.PatientName, ds.PatientID = "CT", f"Scale^Bench{number % 7}", "SCALE"
    ds.StudyDescription, ds.SeriesNumber, ds.InstanceNumber = "scale benchmark", 1 + (frames > 1), number
    ds.Rows = ds.Columns = size
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.random.default_rng(number).integers(0, 4096, (frames, size, size), dtype="<u2").tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def store(settings: Settings, parts: list[bytes], label: str) -> None:
    archive = Archive(settings)
    start = time.perf_counter()
    for data in parts:
        result = archive.ingest.store(io.BytesIO(data))
        assert result.outcome.value != "failed", result.reason
    seconds = time.perf_counter() - start
    archive.close()
    total = sum(len(p) for p in parts)
    figure(f"ingest into {label}", f"{len(parts) / seconds:7.1f} instances/s  {total / seconds / 1e6:7.1f} MB/s"
           f"  ({len(parts)} instances, {mib(total)})")


def single(base_port: int, label: str, paths: dict[str, str], frames: list[str], requests: int) -> None:
    host, origin = "127.0.0.1", f"http://127.0.0.1:{base_port}{ROOT_PATH}"
    runs = [stream_get(origin + paths["study"], DICOM) for _ in range(3)]
    best = min(runs, key=lambda t: t.seconds)
    figure(f"{label}: study retrieve (best of 3)",
           f"{best.seconds * 1000:7.1f} ms  {best.mb_per_s:7.0f} MB/s  ({mib(best.bytes)}, status {best.status})")
    latency_figure(f"{label}: one frame of the large multi-frame",
                   measure(host, base_port, [f"{ROOT_PATH}{p}" for p in frames], {"Accept": OCTETS}, warmup=5))
    latency_figure(f"{label}: series metadata (cold ETag, gzip off)",
                   measure(host, base_port, [ROOT_PATH + paths["metadata"]] * requests,
                           {"Accept": JSON, "Accept-Encoding": "identity"}, warmup=3))
    latency_figure(f"{label}: search studies by PatientName*",
                   measure(host, base_port, [ROOT_PATH + paths["search"]] * requests, {"Accept": JSON}, warmup=3))
    latency_figure(f"{label}: search instances of the series",
                   measure(host, base_port, [ROOT_PATH + paths["instances"]] * requests, {"Accept": JSON},
                           warmup=3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=64, help="CT series instances")
    parser.add_argument("--size", type=int, default=256, help="rows = columns of the CT series")
    parser.add_argument("--frames", type=int, default=80, help="frames of the large 512x512 multi-frame instance")
    parser.add_argument("--requests", type=int, default=200, help="requests per latency figure")
    parser.add_argument("--load-requests", type=int, default=3000, help="requests per requests/s figure")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    print(machine_line())
    study, series, big_series = generate_uid(), generate_uid(), generate_uid()
    parts = [instance(study, series, n, args.size) for n in range(1, args.slices + 1)]
    big = instance(study, big_series, 1, 512, frames=args.frames)
    from pydicom import dcmread

    big_uid = dcmread(io.BytesIO(big), stop_before_pixels=True).SOPInstanceUID
    ct_uids = [dcmread(io.BytesIO(p), stop_before_pixels=True).SOPInstanceUID for p in parts]
    paths = {"study": f"/studies/{study}", "metadata": f"/studies/{study}/series/{series}/metadata",
             "search": "/studies?PatientName=Scale*&includefield=00081030",
             "instances": f"/studies/{study}/series/{series}/instances"}
    rng = random.Random(1)
    big_frames = [f"/studies/{study}/series/{big_series}/instances/{big_uid}/frames/{rng.randint(1, args.frames)}"
                  for _ in range(args.requests)]
    ct_frames = [f"{ROOT_PATH}/studies/{study}/series/{series}/instances/{rng.choice(ct_uids)}/frames/1"
                 for _ in range(args.load_requests)]

    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dicomweb-scale-")))
        ceph = stack.enter_context(ceph_s3(root / "ceph"))
        postgres = PostgresServer().start()
        stack.callback(postgres.stop)
        os.environ.update(ceph.environment())
        index = postgres.url("scale")
        migrate_index(index)
        blobs = ceph.url(ceph.create_bucket(f"scale-{uuid.uuid4().hex[:8]}"))
        heading("ingest")
        embedded = Settings(data_dir=root / "embedded")
        store(embedded, [*parts, big], "SQLite + files")
        store(Settings(data_dir=root / "scaled", index_url=index, blob_url=blobs), [*parts, big], "PostgreSQL + S3")

        heading(f"one process, sequential requests (CT {args.slices} x {args.size}², multi-frame"
                f" {args.frames} x 512², {mib(len(big))})")
        with Server(embedded.data_dir) as server:
            single(server.port, "SQLite + files ", paths, big_frames, args.requests)
        first = serve_shared(root, index, blobs, {})
        try:
            single(int(first.origin.rsplit(":", 1)[1]), "PostgreSQL + S3", paths, big_frames, args.requests)
        finally:
            stop(first.process)

        heading(f"PostgreSQL + S3 behind nginx, {args.concurrency} clients")
        servers = []
        try:
            listen = free_port()  # one public name for every process (--public-url), as in production
            for count in (1, 2, 3):
                while len(servers) < count:
                    servers.append(serve_shared(root, index, blobs, {},
                                                public_url=f"http://127.0.0.1:{listen}/dicomweb"))
                ports = [int(s.origin.rsplit(":", 1)[1]) for s in servers]
                with nginx(root / f"nginx-{count}", ports, listen=listen) as proxy:
                    port = int(proxy.origin.rsplit(":", 1)[1])
                    measure("127.0.0.1", port, ct_frames[:100], {"Accept": OCTETS}, concurrency=8)  # warm up
                    latency_figure(f"{count} process(es): CT frame requests",
                                   measure("127.0.0.1", port, ct_frames, {"Accept": OCTETS},
                                           concurrency=args.concurrency))
                    latency_figure(f"{count} process(es): search studies",
                                   measure("127.0.0.1", port, [ROOT_PATH + paths["search"]] * (args.load_requests // 2),
                                           {"Accept": JSON}, concurrency=args.concurrency))
        finally:
            for server in servers:
                stop(server.process)


if __name__ == "__main__":
    main()
