"""Mixed load: N clients for D seconds of metadata, frames, search, retrieve, rendered and STOW against a real server.

    .venv/bin/python benchmarks/load.py [--clients 32] [--seconds 300] [--slices 128] [--size 512]

Generates the demo (the same studies `make serve` loads), ingests it into a temporary archive, starts
`python -m dicomweb_origin.cli serve` on a free loopback port and runs `--clients` asyncio clients (httpx, one
kept-alive connection each) that pick a request kind at random by weight (``KINDS``) until the time is up. Each STOW
stores a new instance (a demo CT slice under fresh UIDs), so the archive grows while it is read. Prints requests/s,
p50 / p99 latency per kind, errors (by kind and status), and the server's RSS before, at its peak and after.
Asserts nothing; on a shared machine the figures are indicative (the client shares the CPUs with the server).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import statistics
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from common import ROOT_PATH, RssSampler, Server, ingest, machine_line, mib, temp_dir

from dicomweb_origin.demo import generate_demo

JSON = {"Accept": "application/dicom+json", "Accept-Encoding": "gzip"}
OCTET = {"Accept": 'multipart/related; type="application/octet-stream"'}
DICOM = {"Accept": 'multipart/related; type="application/dicom"'}
JPEG = {"Accept": "image/jpeg"}
# Kind -> weight: a viewer's mix (frames dominate, metadata and searches next, rendered thumbnails, a few stores).
KINDS = {"frames": 35, "metadata": 20, "search": 15, "rendered": 15, "retrieve": 10, "stow": 5}


@dataclass
class Instance:
    study: str
    series: str
    uid: str
    frames: int

    @property
    def path(self) -> str:
        return f"{ROOT_PATH}/studies/{self.study}/series/{self.series}/instances/{self.uid}"


@dataclass
class Results:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[str] = field(default_factory=Counter)
    bytes: int = 0


def _value(item: dict[str, object], tag: str) -> str:
    return str(item[tag]["Value"][0])  # type: ignore[index]


async def catalogue(client: httpx.AsyncClient) -> list[Instance]:
    """Every instance with pixel data, found through QIDO-RS as a client would."""
    response = await client.get(f"{ROOT_PATH}/instances", params={"includefield": "00280008", "limit": "10000"},
                                headers=JSON)
    response.raise_for_status()
    found = []
    for item in response.json():
        frames = item.get("00280008", {}).get("Value", [0])[0] if "00280008" in item else 0
        if "00280010" in item or frames:
            found.append(Instance(_value(item, "0020000D"), _value(item, "0020000E"), _value(item, "00080018"),
                                  int(frames or 1)))
    return found


class Stow:
    """New instances to store: a demo slice under fresh Study / Series / SOP Instance UIDs."""

    def __init__(self, source: Path) -> None:
        import pydicom

        self.dataset = pydicom.dcmread(source)
        self.count = 0

    def body(self) -> tuple[bytes, str]:
        from pydicom.uid import generate_uid

        ds = self.dataset
        self.count += 1
        if self.count % 20 == 1:  # twenty instances per series
            ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        boundary = "load-boundary-42"
        data = (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + buffer.getvalue()
                + f"\r\n--{boundary}--\r\n".encode())
        return data, f'multipart/related; type="application/dicom"; boundary={boundary}'


def request_for(kind: str, rng: random.Random, instances: list[Instance], multiframe: list[Instance],
                stow: Stow) -> tuple[str, str, dict[str, str], bytes | None]:
    """(method, URL path with query, headers, body) for one request of a kind."""
    instance = rng.choice(instances)
    if kind == "frames":
        chosen = rng.choice(multiframe) if multiframe and rng.random() < 0.3 else instance
        return "GET", f"{chosen.path}/frames/{rng.randint(1, chosen.frames)}", OCTET, None
    if kind == "metadata":
        series = f"{ROOT_PATH}/studies/{instance.study}/series/{instance.series}"
        return "GET", f"{series}/metadata" if rng.random() < 0.7 else f"{instance.path}/metadata", JSON, None
    if kind == "search":
        return "GET", rng.choice([
            f"{ROOT_PATH}/studies?PatientName=demo*&fuzzymatching=true&includefield=all",
            f"{ROOT_PATH}/studies?limit=25",
            f"{ROOT_PATH}/series?Modality=CT",
            f"{ROOT_PATH}/studies/{instance.study}/series",
            f"{ROOT_PATH}/studies/{instance.study}/instances?limit=50&offset={rng.randint(0, 80)}",
        ]), JSON, None
    if kind == "rendered":
        if rng.random() < 0.3:
            return "GET", f"{ROOT_PATH}/studies/{instance.study}/series/{instance.series}/thumbnail", JPEG, None
        centre = rng.choice((40, 60, 300, -600))  # a few presets: some cached, some cold
        return "GET", f"{instance.path}/rendered?window={centre},400,linear&viewport=256,256", JPEG, None
    if kind == "retrieve":
        return "GET", instance.path, DICOM, None
    body, content_type = stow.body()
    return "POST", f"{ROOT_PATH}/studies", {"Content-Type": content_type, "Accept": "application/dicom+json"}, body


async def client_loop(base: str, deadline: float, seed: int, instances: list[Instance], multiframe: list[Instance],
                      stow: Stow, results: Results) -> None:
    rng = random.Random(seed)
    kinds, weights = list(KINDS), list(KINDS.values())
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=httpx.Limits(max_connections=1)) as client:
        while time.monotonic() < deadline:
            kind = rng.choices(kinds, weights)[0]
            method, url, headers, body = request_for(kind, rng, instances, multiframe, stow)
            start = time.perf_counter()
            try:
                response = await client.request(method, url, headers=headers, content=body)
                size = len(response.content)
            except httpx.HTTPError as exc:
                results.errors[f"{kind}: {type(exc).__name__}"] += 1
                continue
            results.latencies[kind].append(time.perf_counter() - start)
            results.bytes += size
            if response.status_code >= 400:
                results.errors[f"{kind}: {response.status_code}"] += 1


def percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


async def run(base: str, clients: int, seconds: float, instances: list[Instance], stow: Stow) -> Results:
    multiframe = [i for i in instances if i.frames > 1]
    results = Results()
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(client_loop(base, deadline, seed, instances, multiframe, stow, results)
                           for seed in range(clients)))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (one connection each)")
    parser.add_argument("--seconds", type=float, default=300, help="duration of the load, in seconds")
    parser.add_argument("--slices", type=int, default=128, help="demo CT slices (the demo `make serve` loads)")
    parser.add_argument("--size", type=int, default=512, help="demo CT rows and columns, in pixels")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directory")
    args = parser.parse_args(argv)
    print(machine_line())
    with temp_dir(args.keep) as tmp:
        paths = generate_demo(tmp / "demo", slices=args.slices, size=args.size)
        figures = ingest(tmp / "data", paths)
        print(f"archive: {figures.instances} demo files ingested in {figures.seconds:.1f} s")
        with Server(tmp / "data", "--log-level", "warning") as server:
            base = f"http://{server.host}:{server.port}"
            instances = asyncio.run(_catalogue(base))
            print(f"load: {args.clients} clients x {args.seconds:g} s over {len(instances)} instances, mix "
                  + ", ".join(f"{k} {w}%" for k, w in KINDS.items()))
            stow = Stow(sorted(p for p in paths if p.parent.name == paths[0].parent.name)[0])
            with RssSampler(server.pid, interval=0.05) as rss:
                start = time.perf_counter()
                results = asyncio.run(run(base, args.clients, args.seconds, instances, stow))
                elapsed = time.perf_counter() - start
                time.sleep(1.0)  # let the last responses' buffers go before "after"
        report(results, elapsed, rss)
    return 0


async def _catalogue(base: str) -> list[Instance]:
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        return await catalogue(client)


def report(results: Results, elapsed: float, rss: RssSampler) -> None:
    total = sum(len(v) for v in results.latencies.values())
    errors = sum(results.errors.values())
    print(f"requests: {total} in {elapsed:.1f} s = {total / elapsed:,.1f} requests/s,"
          f" {results.bytes / elapsed / 1e6:,.1f} MB/s; errors: {errors}")
    print(f"{'kind':<10} {'requests':>9} {'req/s':>8} {'p50 ms':>9} {'p99 ms':>9}")
    for kind in KINDS:
        values = results.latencies.get(kind, [])
        print(f"{kind:<10} {len(values):>9} {len(values) / elapsed:>8.1f} {percentile(values, 50) * 1000:>9.1f}"
              f" {percentile(values, 99) * 1000:>9.1f}")
    for what, count in sorted(results.errors.items()):
        print(f"  error {what}: {count}")
    print(f"server RSS: before {mib(rss.before)}, peak {mib(rss.peak)}, after {mib(rss.after)}")


if __name__ == "__main__":
    sys.exit(main())
