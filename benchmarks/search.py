"""Benchmark Search (QIDO-RS): OHIF's queries over an archive of 10,000 synthetic studies.

    .venv/bin/python benchmarks/search.py [--studies 10000] [--instances 3] [--requests 200] [--data DIR]
                                          [--index postgresql://USER@HOST/DB]  (an empty, migrated database)

Rows go in through the Index API (``SqliteIndex.add``) as synthetic ``StoredInstance`` records, the
way ingest hands them over, without writing DICOM files; requests go through the real ASGI
application with ``httpx.ASGITransport`` (no sockets). Prints p50/p95 per query; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from common import Latencies, figure, heading, latency_figure, machine_line, temp_dir

from dicomweb_origin.app import build_app
from dicomweb_origin.model.stored import InstanceRecord, StoredInstance
from dicomweb_origin.settings import Settings
from dicomweb_origin.storage.backends import open_index
from dicomweb_origin.storage.sqlite import SqliteIndex

TARGET_MS = 50.0  # a study search over 10,000 studies, p50
ROOT = "http://bench/dicomweb"
OHIF = {"Accept": "application/dicom+json", "Accept-Encoding": "gzip, deflate, br, zstd"}
STUDY_LIST = "studies?limit=101&offset=0&fuzzymatching=true&includefield=00081030,00080060,00080090,00100030"
SERIES_FIELDS = "includefield=00080021,00080031,0008103E,00200011"
FAMILY = ("SMITH", "JONES", "MÜLLER", "GARCIA", "NGUYEN", "KOWALSKI", "ROSSI", "DUBOIS", "SATO", "IVANOV",
          "OKAFOR", "SILVA", "KIM", "JOHANSSON", "NOVAK", "HANSEN", "LOPEZ", "SCHMIDT", "WANG", "PATEL")
GIVEN = ("ANNA", "JOHN", "MARIA", "LUCAS", "SOFIA", "ADAM", "ELENA", "OMAR", "YUKI", "PIETRO", "HANS", "LEA")
MODALITIES = ("CT", "MR", "CR", "US", "PT", "DX", "MG", "NM")
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


def _e(vr: str, *values: Any) -> dict[str, Any]:
    return {"vr": vr, "Value": list(values)} if values and values[0] not in (None, "") else {"vr": vr}


def synthetic(n: int, instances: int, rng: random.Random) -> list[StoredInstance]:
    """The instances of study ``n``: 1-4 series of ``instances`` each, attributes as ingest keeps them."""
    study_uid = f"1.2.826.0.1.3680043.10.1.{n}"
    patient = rng.randrange(n // 3 + 1)  # about three studies per patient
    name = f"{FAMILY[patient % len(FAMILY)]}^{GIVEN[patient % len(GIVEN)]}^{patient}"
    date = f"{2000 + n % 25:04d}{1 + n % 12:02d}{1 + n % 28:02d}"
    study = {
        "00080020": _e("DA", date), "00080030": _e("TM", f"{rng.randrange(24):02d}{rng.randrange(60):02d}00"),
        "00080050": _e("SH", f"ACC{n:07d}"), "00080090": _e("PN", {"Alphabetic": "REFERRING^DOCTOR"}),
        "00081030": _e("LO", f"Study {n} of patient {patient}"), "00100010": _e("PN", {"Alphabetic": name}),
        "00100020": _e("LO", f"P{patient:06d}"), "00100030": _e("DA", f"19{40 + patient % 60:02d}0101"),
        "00100040": _e("CS", "MF"[patient % 2]), "0020000D": _e("UI", study_uid), "00200010": _e("SH", str(n)),
    }
    result = []
    for s in range(1, rng.randint(1, 4) + 1):
        series_uid = f"{study_uid}.{s}"
        series = {"00080060": _e("CS", rng.choice(MODALITIES)), "0008103E": _e("LO", f"Series {s}"),
                  "00080021": study["00080020"], "00080031": study["00080030"], "0020000E": _e("UI", series_uid),
                  "00200011": _e("IS", s)}
        for i in range(1, instances + 1):
            instance_uid = f"{series_uid}.{i}"
            record = InstanceRecord(study_uid, series_uid, instance_uid, CT_IMAGE, "1.2.840.10008.1.2.1",
                                    "1.2.840.10008.1.2.1", f"{n}/{s}/{i}.dcm", 1000, "0" * 64, i, 1)
            attributes = {"00080016": _e("UI", CT_IMAGE), "00080018": _e("UI", instance_uid),
                          "00200013": _e("IS", i), "00280010": _e("US", 512), "00280011": _e("US", 512)}
            metadata = study | series | attributes
            result.append(StoredInstance(record, orjson.dumps(metadata), study, series, attributes))
    return result


def build(data_dir: Path, studies: int, instances: int, index_url: str | None = None) -> float:
    rng = random.Random(20240115)
    index: Any = open_index(index_url) if index_url else SqliteIndex(Settings(data_dir=data_dir).index_path)
    start = time.perf_counter()
    for n in range(studies):
        for stored in synthetic(n, instances, rng):
            index.add(stored)
    index.close()
    return time.perf_counter() - start


async def timed(client: httpx.AsyncClient, urls: list[str], headers: dict[str, str]) -> Latencies:
    for url in urls[:5]:  # warm-up
        await client.get(url, headers=headers)
    samples, size, statuses = [], 0, set()
    wall = time.perf_counter()
    for url in urls:
        start = time.perf_counter()
        response = await client.get(url, headers=headers)
        samples.append((time.perf_counter() - start) * 1000)
        size += len(response.content)
        statuses.add(response.status_code)
    return Latencies(samples, time.perf_counter() - wall, size, statuses)


async def run(data_dir: Path, studies: int, requests: int, index_url: str | None = None) -> None:
    app = build_app(Settings(data_dir=data_dir, public_url=ROOT, index_url=index_url))
    rng = random.Random(7)

    def pick() -> int:
        return rng.randrange(studies)

    scenarios: list[tuple[str, list[str], float | None]] = [
        ("OHIF study list (limit=101, fuzzy, includefield)", [STUDY_LIST] * requests, TARGET_MS),
        ("  ... page 90 (offset=9000)", [STUDY_LIST.replace("offset=0", "offset=9000")] * requests, None),
        ("by PatientID (hex tag 00100020, OHIF)",
         [f"{STUDY_LIST}&00100020=P{pick() // 3:06d}" for _ in range(requests)], TARGET_MS),
        ("by StudyInstanceUID (OHIF)",
         [f"{STUDY_LIST}&StudyInstanceUID=1.2.826.0.1.3680043.10.1.{pick()}" for _ in range(requests)], TARGET_MS),
        ("by PatientName prefix wildcard (SMI*)",
         [f"{STUDY_LIST}&PatientName={rng.choice(FAMILY)[:3]}*" for _ in range(requests)], TARGET_MS),
        ("by PatientName contains (*mit*, as OHIF's filter)",
         [f"{STUDY_LIST}&PatientName=*{rng.choice(FAMILY)[1:4].lower()}*" for _ in range(requests)], TARGET_MS),
        ("by PatientName fuzzy (given name 'ann')", [f"{STUDY_LIST}&PatientName=ann"] * requests, TARGET_MS),
        ("by StudyDate range (one year)",
         [f"{STUDY_LIST}&StudyDate={year}0101-{year}1231" for year in (2000 + pick() % 25 for _ in range(requests))],
         TARGET_MS),
        ("by ModalitiesInStudy=MR", [f"{STUDY_LIST}&ModalitiesInStudy=MR"] * requests, TARGET_MS),
        ("series of a study (OHIF includefield)",
         [f"studies/1.2.826.0.1.3680043.10.1.{pick()}/series?{SERIES_FIELDS}" for _ in range(requests)], None),
        ("first instance of a series (limit=1)",
         [f"studies/1.2.826.0.1.3680043.10.1.{n}/series/1.2.826.0.1.3680043.10.1.{n}.1/instances?limit=1"
          f"&includefield=00080018" for n in (pick() for _ in range(requests))], None),
    ]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=f"{ROOT}/") as client:
        first = await client.get(STUDY_LIST, headers=OHIF)
        figure("study list answer", f"{len(first.json())} studies, {len(first.content):,} bytes JSON, "
                                    f"Warning: {first.headers.get('warning', '-')[:70]}")
        for label, urls, target in scenarios:
            latency_figure(label, await timed(client, urls, OHIF), target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=10_000)
    parser.add_argument("--instances", type=int, default=3, help="instances per series (1-4 series per study)")
    parser.add_argument("--requests", type=int, default=200, help="requests per query")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directory")
    parser.add_argument("--data", type=Path, help="reuse (or build once into) this data directory")
    parser.add_argument("--index", default=None, metavar="URL", help="a PostgreSQL index (built when empty)")
    args = parser.parse_args()
    print(machine_line())
    with temp_dir(args.keep) as folder:
        data = args.data or folder / "data"
        if args.index:
            index = open_index(args.index)
            empty = index.count() == 0
            index.close()
            if empty:
                heading(f"Build: {args.studies:,} studies through PostgresIndex.add")
                figure("index build", f"{build(data, args.studies, args.instances, args.index):.1f} s")
        elif not (data / "index.sqlite").exists():
            heading(f"Build: {args.studies:,} studies through SqliteIndex.add")
            seconds = build(data, args.studies, args.instances)
            size = (data / "index.sqlite").stat().st_size
            figure("index build", f"{seconds:.1f} s, index file {size / (1 << 20):,.1f} MiB")
        heading("Search through the ASGI app (httpx.ASGITransport), OHIF headers (gzip)")
        asyncio.run(run(data, args.studies, args.requests, args.index))


if __name__ == "__main__":
    main()
