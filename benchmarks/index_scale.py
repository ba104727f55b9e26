"""The index as the archive grows: Search, DELETE, the operator's pages, ingest and reads at 1k ... 10M instances.

    .venv/bin/python benchmarks/index_scale.py [--sizes 1000,100000,1000000] [--backends sqlite,postgresql]
                                               [--requests 30] [--data DIR] [--keep]
    .venv/bin/python benchmarks/index_scale.py --sizes 1000,100000,1000000,10000000   # the 10 M run (hours, ~60 GB)

For each backend the index is filled to each size in turn, through the index's own write path
(``SqlIndex.add_all``, 1,000 instances a transaction, the same inserts and counters as a STOW), with generated
records of realistic spread: about three studies per patient, names from a few hundred families and given names
(accents included), dates over 25 years arriving roughly in time order, eight modalities with their usual series
and image counts, accession numbers, referring physicians, a few studies without date or time, a 2 KB DICOM JSON
metadata object per instance as ingest makes for a CT image. Blobs are not written (records point at keys that
do not exist): this measures the index.

At each size it prints, one client at a time, p50 / p95 of every request through the real application
(``httpx.ASGITransport``, no sockets): the study list, study searches by each of OHIF's matching keys, all series
and all instances at a deep offset (85-95 % of the result, a different offset each request), the series and
instances of a study, DELETE of a 100-instance study, ``GET /``, ``/ready``, ``/metrics``; the reads Retrieve
makes (a record for a frame, a study's records and metadata); the rate of single-instance writes (one
transaction each, ``add``) beside the rate on the empty index; and the index's disk per instance. A request
slower than the target, or more than three times slower than at the first size, is printed with the query plan
of its slowest statement (EXPLAIN QUERY PLAN on SQLite, EXPLAIN ANALYZE on PostgreSQL). The first request of a
deep-offset search walks to its offset once (printed as ``first``); later ones start from the keys it left.

PostgreSQL is a cluster of its own (tests/services.py) with the durable settings a deployment runs
(fsync, synchronous_commit and full_page_writes on) and 1 GB of shared buffers.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from common import heading, machine_line, temp_dir

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dicomweb_origin.app import build_app  # noqa: E402
from dicomweb_origin.model.appearance import Display, FrameDisplay, Window  # noqa: E402
from dicomweb_origin.model.stored import InstanceRecord, PixelDescription, StoredInstance  # noqa: E402
from dicomweb_origin.settings import Settings  # noqa: E402
from dicomweb_origin.storage import sql  # noqa: E402
from dicomweb_origin.storage.backends import migrate_index, open_index  # noqa: E402
from tests.support.postgres import PostgresServer  # noqa: E402

TARGET_MS = {"search": 20.0, "delete": 50.0}
ROOT = "http://bench/dicomweb"
JSON = {"Accept": "application/dicom+json"}
BATCH = 1000

# -- realistic records ---------------------------------------------------------------------------------

FAMILY = ("SMITH JONES MÜLLER GARCÍA NGUYEN KOWALSKI ROSSI DUBOIS SATO IVANOV OKAFOR SILVA KIM JOHANSSON NOVÁK "
          "HANSEN LÓPEZ SCHMIDT WANG PATEL BROWN WILSON TAYLOR ANDERSON THOMAS MOORE MARTIN JACKSON WHITE HARRIS "
          "CLARK LEWIS ROBINSON WALKER YOUNG ALLEN KING WRIGHT SCOTT GREEN BAKER ADAMS NELSON HILL CAMPBELL "
          "MITCHELL ROBERTS CARTER PHILLIPS EVANS TURNER TORRES PARKER COLLINS EDWARDS STEWART MORRIS MURPHY COOK "
          "ROGERS MORGAN PETERSON COOPER REED BAILEY BELL GÓMEZ KELLY HOWARD WARD COX DÍAZ RICHARDSON WOOD WATSON "
          "BROOKS BENNETT GRAY JAMES REYES CRUZ HUGHES PRICE MYERS LONG FOSTER SANDERS ROSS MORALES POWELL SULLIVAN "
          "RUSSELL ORTIZ JENKINS GUTIÉRREZ PERRY BUTLER BARNES FISHER HENDERSON COLEMAN SIMMONS PATTERSON JORDAN "
          "REYNOLDS HAMILTON GRAHAM KIMURA TANAKA WEBER WAGNER BECKER HOFFMANN SCHÄFER KOCH RICHTER KLEIN WOLF "
          "SCHRÖDER NEUMANN SCHWARZ ZIMMERMANN BRAUN KRÜGER HOFMANN HARTMANN LANGE WERNER LEHMANN KÖHLER").split()
GIVEN = ("ANNA JOHN MARIA LUCAS SOFIA ADAM ELENA OMAR YUKI PIETRO HANS LEA JAMES MARY ROBERT PATRICIA MICHAEL "
         "LINDA WILLIAM ELIZABETH DAVID BARBARA RICHARD SUSAN JOSEPH JESSICA THOMAS SARAH CHARLES KAREN CHRISTOPHER "
         "NANCY DANIEL LISA MATTHEW BETTY ANTHONY MARGARET MARK SANDRA DONALD ASHLEY STEVEN KIMBERLY PAUL EMILY "
         "ANDREW DONNA JOSHUA MICHELLE KENNETH DOROTHY KEVIN CAROL BRIAN AMANDA GEORGE MELISSA ÉMILE ZOË JÜRGEN "
         "FRANÇOIS SØREN ÅSA").split()
# modality: weight, series per study, images per series, SOP Class UID, rows
MODALITIES: dict[str, tuple[float, tuple[int, int], tuple[int, int], str, int]] = {
    "CT": (0.22, (2, 4), (20, 200), "1.2.840.10008.5.1.4.1.1.2", 512),
    "MR": (0.18, (3, 8), (10, 60), "1.2.840.10008.5.1.4.1.1.4", 256),
    "CR": (0.16, (1, 2), (1, 2), "1.2.840.10008.5.1.4.1.1.1", 2048),
    "DX": (0.12, (1, 3), (1, 2), "1.2.840.10008.5.1.4.1.1.1.1", 2500),
    "US": (0.12, (1, 3), (1, 40), "1.2.840.10008.5.1.4.1.1.6.1", 600),
    "MG": (0.08, (4, 4), (1, 1), "1.2.840.10008.5.1.4.1.1.1.2", 3328),
    "PT": (0.05, (2, 3), (100, 250), "1.2.840.10008.5.1.4.1.1.128", 200),
    "NM": (0.03, (1, 4), (1, 60), "1.2.840.10008.5.1.4.1.1.20", 128),
    "XA": (0.04, (2, 8), (10, 80), "1.2.840.10008.5.1.4.1.1.12.1", 1024),
}
DESCRIPTIONS = {"CT": ("CT HEAD W/O CONTRAST", "CT CHEST ABD PELVIS W CONTRAST", "CTA CHEST"),
                "MR": ("MRI BRAIN W/WO", "MR KNEE LEFT", "MR LUMBAR SPINE"), "CR": ("XR CHEST 2 VIEWS", "XR HAND"),
                "DX": ("DX CHEST PA", "DX ANKLE 3 VIEWS"), "US": ("US ABDOMEN COMPLETE", "US OB > 14 WKS"),
                "MG": ("MAMMO SCREENING BILATERAL",), "PT": ("PET/CT WHOLE BODY",), "NM": ("NM BONE SCAN WHOLE BODY",),
                "XA": ("CORONARY ANGIOGRAPHY",)}
SR = "1.2.840.10008.5.1.4.1.1.88.22"
ROOT_UID = "1.2.826.0.1.3680043.10.1137"
EXPLICIT = "1.2.840.10008.1.2.1"


def _e(vr: str, *values: Any) -> dict[str, Any]:
    return {"vr": vr, "Value": list(values)} if values and values[0] is not None else {"vr": vr}


@dataclass
class Generated:
    """What the generator made so far, and samples of it for the requests."""

    studies: int = 0
    series: int = 0
    instances: int = 0
    ct_series: int = 0
    samples: list[dict[str, Any]] = field(default_factory=list)  # a reservoir of studies


class Generator:
    """Studies of realistic spread, in the order an archive receives them (roughly by date)."""

    def __init__(self, seed: int = 20240115) -> None:
        self.rng = random.Random(seed)
        self.patients = 0
        self.made = Generated()
        self.next_study = 0

    def save(self, path: Path) -> None:
        """What was made, so that a later run goes on filling (and measuring) the kept index."""
        state = {"rng": self.rng.getstate(), "patients": self.patients, "next_study": self.next_study,
                 "made": self.made.__dict__}
        path.write_bytes(orjson.dumps(state))

    def load(self, path: Path) -> None:
        state = orjson.loads(path.read_bytes())
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
        self.patients, self.next_study = state["patients"], state["next_study"]
        self.made = Generated(**state["made"])

    def patient(self) -> tuple[str, str, str, str]:
        if self.patients == 0 or self.rng.random() < 0.35:
            self.patients += 1
            number = self.patients
        else:
            number = self.rng.randrange(1, self.patients + 1)
        r = random.Random(number)
        name = f"{r.choice(FAMILY)}^{r.choice(GIVEN)}^{r.choice('ABCDEFGHJKLMNPRSTW')}"
        return name, f"MRN{number:08d}", f"{r.randrange(1925, 2022)}{r.randrange(1, 13):02d}{r.randrange(1, 29):02d}", "MF"[number % 2]

    def study(self, modality: str | None = None, series_count: int | None = None,
              images: int | None = None, sample: bool = True) -> list[StoredInstance]:
        rng, n = self.rng, self.next_study
        self.next_study += 1
        modality = modality or rng.choices(list(MODALITIES), [m[0] for m in MODALITIES.values()])[0]
        _, series_range, image_range, sop_class, rows = MODALITIES[modality]
        name, patient_id, birth, sex = self.patient()
        day = int(n * 0.095) - (rng.randrange(3650) if rng.random() < 0.1 else 0)  # priors arrive late
        year, rest = 2000 + max(day, 0) // 365, max(day, 0) % 365
        date = f"{min(year, 2025)}{1 + rest // 31 % 12:02d}{1 + rest % 28:02d}" if rng.random() > 0.005 else None
        time_ = f"{rng.randrange(24):02d}{rng.randrange(60):02d}{rng.randrange(60):02d}" if rng.random() > 0.01 else None
        study_uid = f"{ROOT_UID}.{date or '0'}.{n}"
        referring = f"{rng.choice(FAMILY)}^{rng.choice(GIVEN)}^^DR"
        study = {
            "00080020": _e("DA", date), "00080030": _e("TM", time_), "00080050": _e("SH", f"A{n:09d}"),
            "00080090": _e("PN", {"Alphabetic": referring}), "00081030": _e("LO", rng.choice(DESCRIPTIONS[modality])),
            "00100010": _e("PN", {"Alphabetic": name}), "00100020": _e("LO", patient_id), "00100030": _e("DA", birth),
            "00100040": _e("CS", sex), "0020000D": _e("UI", study_uid), "00200010": _e("SH", str(n % 100000)),
            "00080005": _e("CS", "ISO_IR 192"), "00101010": _e("AS", f"{rng.randrange(1, 99):03d}Y"),
        }
        plan = [(modality, sop_class, rows, images or rng.randint(*image_range))
                for _ in range(series_count or rng.randint(*series_range))]
        if rng.random() < 0.05:
            plan.append(("SR", SR, 0, 1))
        out = []
        for number, (series_modality, series_class, series_rows, count) in enumerate(plan, start=1):
            out += self.series(study, study_uid, number, series_modality, series_class, series_rows, count)
        self.made.studies += 1
        if sample:
            self._sample({"study": study_uid, "series": out[0].record.series_uid, "patient_id": patient_id,
                          "name": name, "accession": f"A{n:09d}", "date": date, "referring": referring})
        return out

    def series(self, study: dict[str, Any], study_uid: str, number: int, modality: str, sop_class: str, rows: int,
               count: int) -> list[StoredInstance]:
        rng = self.rng
        series_uid = f"{study_uid}.{number}"
        series = {"00080060": _e("CS", modality), "0008103E": _e("LO", f"{modality} series {number}"),
                  "00080021": study["00080020"], "00080031": study["00080030"], "0020000E": _e("UI", series_uid),
                  "00200011": _e("IS", number), "00080070": _e("LO", rng.choice(("SIEMENS", "GE MEDICAL SYSTEMS",
                                                                                "Philips", "CANON_MEC")))}
        frame = f"{series_uid}.9999"
        common = study | series | {
            "00080008": _e("CS", "ORIGINAL", "PRIMARY", "AXIAL"), "00080016": _e("UI", sop_class),
            "00080060": _e("CS", modality), "00080080": _e("LO", "GENERAL HOSPITAL"), "00081010": _e("SH", "STATION1"),
            "00081090": _e("LO", "SOMATOM Definition AS+"), "00180015": _e("CS", "CHEST"),
            "00180050": _e("DS", 1.0), "00180060": _e("DS", 120), "00181030": _e("LO", "Thorax 1.0 B31f"),
            "00181100": _e("DS", 380.0), "00181150": _e("IS", 500), "00181151": _e("IS", 180),
            "00181210": _e("SH", "B31f"), "00185100": _e("CS", "HFS"), "00200052": _e("UI", frame),
            "00280002": _e("US", 1), "00280004": _e("CS", "MONOCHROME2"), "00280010": _e("US", rows or 1),
            "00280011": _e("US", rows or 1), "00280030": _e("DS", 0.7, 0.7), "00280100": _e("US", 16),
            "00280101": _e("US", 12), "00280102": _e("US", 11), "00280103": _e("US", 0),
            "00281050": _e("DS", 40), "00281051": _e("DS", 400), "00281052": _e("DS", -1024),
            "00281053": _e("DS", 1), "00281054": _e("LO", "HU"),
        }
        pixel = None if modality == "SR" else PixelDescription(rows, rows, 1, 16, 12, 0, "MONOCHROME2")
        out = []
        for i in range(1, count + 1):
            uid = f"{series_uid}.{i}"
            z = -100.0 + i * 1.0
            instance = {"00080016": _e("UI", sop_class), "00080018": _e("UI", uid), "00200013": _e("IS", i),
                        "00080023": study["00080020"], "00080033": study["00080030"],
                        "00200032": _e("DS", -180.0, -180.0, z), "00200037": _e("DS", 1, 0, 0, 0, 1, 0),
                        "00200052": _e("UI", frame), "00280010": _e("US", rows or 1), "00280011": _e("US", rows or 1)}
            display = None if pixel is None else Display(
                frames=(FrameDisplay(1.0, -1024.0, None, (Window(40.0, 400.0),), (), (-180.0, -180.0, z),
                                     (1.0, 0.0, 0.0, 0.0, 1.0, 0.0), (0.7, 0.7)),), modality=modality,
                frame_of_reference_uid=frame)
            size = 2 * rows * rows + 1500 if rows else 4000
            record = InstanceRecord(
                study_uid, series_uid, uid, sop_class, EXPLICIT, EXPLICIT, f"{study_uid}/{series_uid}/{uid}.dcm",
                size, hashlib.sha256(uid.encode()).hexdigest(), i, 1 if pixel else 0, pixel,
                "7FE00010" if pixel else None, (((1500, 2 * rows * rows),),) if pixel else (), (), False, display)
            metadata = orjson.dumps(common | instance | {"7FE00010": {"vr": "OW", "BulkDataURI": f"{uid}/pixeldata"}})
            out.append(StoredInstance(record, metadata, study, series, instance))
        self.made.series += 1
        self.made.ct_series += modality == "CT"
        self.made.instances += count
        return out

    def _sample(self, sample: dict[str, Any]) -> None:
        samples = self.made.samples
        if len(samples) < 200:
            samples.append(sample)
        elif (k := self.rng.randrange(self.made.studies)) < 200:
            samples[k] = sample

    def instances_up_to(self, total: int) -> Iterator[list[StoredInstance]]:
        """Batches of instances until the generated archive holds ``total`` (whole studies)."""
        batch: list[StoredInstance] = []
        while self.made.instances < total:
            batch += self.study()
            if len(batch) >= BATCH:
                yield batch
                batch = []
        if batch:
            yield batch


# -- measuring ------------------------------------------------------------------------------------------

RECORDED: list[tuple[float, str, Sequence[Any]]] | None = None
_execute = sql.Session.execute


def _recording_execute(self: sql.Session, text: str, args: Sequence[Any] = ()) -> Any:
    if RECORDED is None:
        return _execute(self, text, args)
    start = time.perf_counter()
    cursor = _execute(self, text, args)
    RECORDED.append((time.perf_counter() - start, text, args))
    return cursor


sql.Session.execute = _recording_execute  # type: ignore[method-assign]


@dataclass
class Result:
    label: str
    samples: list[float]  # ms
    first: float | None = None
    statuses: set[int] = field(default_factory=set)

    @property
    def p50(self) -> float:
        return statistics.median(self.samples)

    @property
    def p95(self) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]

    def line(self, target: float | None) -> str:
        mark = "" if target is None else " [met]" if self.p50 < target else " [MISSED]"
        first = f", first {self.first:.1f}" if self.first is not None else ""
        return (f"  {self.label:<46} p50 {self.p50:8.2f} ms  p95 {self.p95:8.2f} ms{first}"
                f"  {sorted(self.statuses)}{mark}")


class Bench:
    """One backend: its index filled step by step, measured at each size."""

    def __init__(self, name: str, folder: Path, index_url: str | None, empty_url: str | None, requests: int) -> None:
        self.name = name
        self.settings = Settings(data_dir=folder / name, index_url=index_url, public_url=ROOT)
        self.app = build_app(self.settings)
        self.index = self.app.state.archive.index
        self.empty = open_index(empty_url or f"sqlite://{folder.resolve()}/empty-{name}.sqlite")  # the ingest baseline
        self.generator = Generator()
        self.state = folder / f"state-{name}.json"
        if self.state.exists():
            self.generator.load(self.state)
            print(f"  (going on from the kept index: {self.generator.made.instances:,} instances)")
        self.requests = requests
        self.rng = random.Random(7)
        self.first_p50: dict[str, float] = {}
        self.table: dict[int, dict[str, float]] = {}
        self.notes: dict[int, dict[str, str]] = {}

    def fill(self, total: int) -> None:
        before, start = self.generator.made.instances, time.perf_counter()
        for batch in self.generator.instances_up_to(total):
            assert all(r is None for r in self.index.add_all(batch))
            done = self.generator.made.instances
            if done // 250_000 != (done - len(batch)) // 250_000:
                rate = (done - before) / (time.perf_counter() - start)
                print(f"  ... {done:,} instances ({rate:,.0f}/s)", flush=True)
        seconds = time.perf_counter() - start
        self.generator.save(self.state)
        made = self.generator.made
        print(f"  filled to {made.instances:,} instances ({made.studies:,} studies, {made.series:,} series) in"
              f" {seconds:,.0f} s: {(made.instances - before) / max(seconds, 1e-9):,.0f} instances/s (add_all)")

    def ingest_rate(self, rounds: int = 4, count: int = 100) -> tuple[float, float]:
        """Instances/s of ``add`` (one synced transaction per instance, as STOW stores them) into this index and
        into the empty one, in alternating rounds (the disk is shared: both see the same neighbours)."""
        seconds = {"this": 0.0, "empty": 0.0}
        for _ in range(rounds):
            for which, index in (("this", self.index), ("empty", self.empty)):
                instances = self.generator.study("CT", 1, count, sample=False)
                start = time.perf_counter()
                for stored in instances:
                    assert index.add(stored) is None
                seconds[which] += time.perf_counter() - start
        return rounds * count / seconds["this"], rounds * count / seconds["empty"]

    async def timed(self, label: str, make: Callable[[int], tuple[str, str]], requests: int | None = None,
                    first: bool = False) -> Result:
        transport = httpx.ASGITransport(app=self.app)
        result = Result(label, [])
        async with httpx.AsyncClient(transport=transport, base_url=f"{ROOT}/") as client:
            for k in range((self.requests if requests is None else requests) + 1):
                method, url = make(k)
                start = time.perf_counter()
                response = await client.request(method, url, headers=JSON)
                elapsed = (time.perf_counter() - start) * 1000
                result.statuses.add(response.status_code)
                if k == 0:
                    result.first = elapsed
                    if first:
                        continue
                result.samples.append(elapsed)
        if not first:
            result.first = None
        return result

    def direct(self, label: str, call: Callable[[int], object]) -> Result:
        result = Result(label, [])
        for k in range(self.requests):
            start = time.perf_counter()
            call(k)
            result.samples.append((time.perf_counter() - start) * 1000)
        return result

    async def measure(self, size: int) -> None:
        made, rng, n = self.generator.made, self.rng, self.requests
        samples = made.samples

        def pick(k: int) -> dict[str, Any]:
            return samples[(k * 7919) % len(samples)]

        def deep(total: int) -> Callable[[int], int]:
            return lambda k: int(total * rng.uniform(0.85, 0.95))

        study_offset, series_offset, instance_offset = deep(made.studies), deep(made.ct_series), deep(made.instances)
        victims = []
        for _ in range(n + 2):  # the last one for the plan, if DELETE is slow
            batch = self.generator.study("CT", 1, 100, sample=False)
            self.index.add_all(batch)
            victims.append(batch[0].record.study_uid)
        searches: list[tuple[str, Callable[[int], tuple[str, str]], bool, str]] = [
            ("study list (limit=100)", lambda k: ("GET", "studies?limit=100&offset=0&fuzzymatching=true"
                                                  "&includefield=00081030,00080060"), False, "search"),
            ("studies at a deep offset (limit=100)",
             lambda k: ("GET", f"studies?limit=100&offset={study_offset(k)}"), True, "search"),
            ("studies?PatientID=", lambda k: ("GET", f"studies?PatientID={pick(k)['patient_id']}"), False, "search"),
            ("studies?PatientName=FAM* (prefix)",
             lambda k: ("GET", f"studies?limit=100&PatientName={pick(k)['name'][:3]}*"), False, "search"),
            ("studies?PatientName=given (fuzzy)",
             lambda k: ("GET", f"studies?limit=100&fuzzymatching=true&PatientName={pick(k)['name'].split('^')[1]}"),
             False, "search"),
            ("studies?StudyDate= (one month)",
             lambda k: ("GET", f"studies?limit=100&StudyDate={(pick(k)['date'] or '20100101')[:6]}01-"
                               f"{(pick(k)['date'] or '20100101')[:6]}28"), False, "search"),
            ("studies?AccessionNumber=", lambda k: ("GET", f"studies?AccessionNumber={pick(k)['accession']}"),
             False, "search"),
            ("studies?StudyInstanceUID=", lambda k: ("GET", f"studies?StudyInstanceUID={pick(k)['study']}"),
             False, "search"),
            ("studies?ModalitiesInStudy=MR (limit=100)", lambda k: ("GET", "studies?limit=100&ModalitiesInStudy=MR"),
             False, "search"),
            ("studies?ReferringPhysicianName=",
             lambda k: ("GET", f"studies?limit=100&ReferringPhysicianName={pick(k)['referring']}"), False, "search"),
            ("series?Modality=CT at a deep offset (limit=25)",
             lambda k: ("GET", f"series?Modality=CT&limit=25&offset={series_offset(k)}"), True, "search"),
            ("instances at a deep offset (limit=25)",
             lambda k: ("GET", f"instances?limit=25&offset={instance_offset(k)}"), True, "search"),
            ("series of a study", lambda k: ("GET", f"studies/{pick(k)['study']}/series"), False, "search"),
            ("instances of a series (limit=100)",
             lambda k: ("GET", f"studies/{pick(k)['study']}/series/{pick(k)['series']}/instances?limit=100"), False,
             "search"),
            ("DELETE a study of 100 instances", lambda k: ("DELETE", f"studies/{victims[k]}"), False, "delete"),
        ]
        results: list[tuple[Result, str | None, Callable[[int], tuple[str, str]]]] = []
        for label, make, first, kind in searches:
            result = await self.timed(label, make, first=first)
            results.append((result, kind, make))
            print(result.line(TARGET_MS[kind]), flush=True)
        for label, path in (("GET / (home page, counts)", "/"), ("GET /ready", "/ready"), ("GET /metrics", "/metrics")):
            result = await self.timed(label, lambda k, p=path: ("GET", f"http://bench{p}"))  # type: ignore[misc]
            results.append((result, None, lambda k: ("GET", "")))
            print(result.line(None), flush=True)
        records = [self.index.instances(pick(k)["study"]) for k in range(n)]
        for label, call in (
            ("a record (frame retrieve)", lambda k: self.index.get(records[k][k % len(records[k])].instance_uid)),
            ("a study's records (retrieve)", lambda k: self.index.instances(pick(k + n)["study"])),
            ("a study's records + metadata", lambda k: self.index.metadata(self.index.instances(pick(k)["study"]))),
        ):
            result = self.direct(label, call)
            results.append((result, None, lambda k: ("GET", "")))
            print(result.line(None), flush=True)
        rate, empty_rate = self.ingest_rate()
        print(f"  {'add (one synced transaction each)':<46} {rate:8.0f} instances/s,"
              f" {rate / empty_rate:.0%} of an empty index's {empty_rate:.0f}/s (alternating rounds)", flush=True)
        self.generator.save(self.state)
        per_instance = self.disk()
        row = self.table.setdefault(size, {})
        row.update({r.label: r.p50 for r, _, _ in results})
        row["ingest % of empty"] = 100 * rate / empty_rate
        row["disk bytes / instance"] = per_instance
        for result, kind, make in results:
            base = self.first_p50.setdefault(result.label, result.p50)
            if kind is not None and (result.p50 > TARGET_MS[kind] or result.p50 > max(3 * base, 5.0)):
                await self.explain(result.label, make)

    async def explain(self, label: str, make: Callable[[int], tuple[str, str]]) -> None:
        """The plan of the slowest statement of one more such request."""
        global RECORDED
        RECORDED = []
        await self.timed(label, lambda k: make(self.requests + 1 + k), requests=0)
        statements, RECORDED = RECORDED, None
        if not statements:
            return
        seconds, text, args = max(statements, key=lambda s: s[0])
        print(f"    not flat: slowest of {len(statements)} statements ({seconds * 1000:.1f} ms): {text[:300]}")
        for line in self.plan(text, args):
            print(f"      {line}")

    def plan(self, text: str, args: Sequence[Any]) -> list[str]:
        if self.settings.index_url is None:
            conn = sqlite3.connect(self.settings.index_path)
            conn.create_function("dicomweb_fold", 1, lambda v: v, deterministic=True)
            return [f"{'  ' * (parent != 0)}{detail}" for _, parent, _, detail in
                    conn.execute("EXPLAIN QUERY PLAN " + text, list(args))]
        import psycopg

        with psycopg.connect(self.settings.index_url) as conn:
            translated = text.replace("%", "%%").replace("?", "%s")
            return [row[0] for row in conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + translated, list(args))]

    def disk(self) -> float:
        if self.settings.index_url is None:
            conn = sqlite3.connect(self.settings.index_path)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            pages = conn.execute("PRAGMA page_count").fetchone()[0] * conn.execute("PRAGMA page_size").fetchone()[0]
            parts = conn.execute("SELECT avg(length(metadata)), avg(length(record)), avg(length(attributes))"
                                 " FROM (SELECT metadata, record, attributes FROM instance LIMIT 5000)").fetchone()
            conn.close()
        else:
            import psycopg

            with psycopg.connect(self.settings.index_url) as pg:
                pages = pg.execute("SELECT pg_database_size(current_database())").fetchone()[0]  # type: ignore[index]
                parts = pg.execute("SELECT avg(pg_column_size(metadata)), avg(pg_column_size(record)),"
                                   " avg(pg_column_size(attributes)) FROM (SELECT metadata, record, attributes"
                                   " FROM instance LIMIT 5000) AS s").fetchone()
        per_instance = pages / max(self.index.count(), 1)
        print(f"  {'disk':<46} {pages / 2**20:,.0f} MiB, {per_instance:,.0f} bytes per instance"
              f" (of which metadata JSON {parts[0]:,.0f}, record {parts[1]:,.0f}, attributes {parts[2]:,.0f})")
        return per_instance

    def close(self) -> None:
        self.app.state.archive.close()
        self.empty.close()


def print_table(benches: Sequence[Bench]) -> None:
    heading("p50 in ms (c=1); ingest as % of the empty index's rate; disk in bytes per instance")
    sizes = sorted({size for b in benches for size in b.table})
    columns = [(b, size) for size in sizes for b in benches if size in b.table]
    labels = list(dict.fromkeys(label for b in benches for row in b.table.values() for label in row))
    print("| request | " + " | ".join(f"{_size(size)} {b.name}" for b, size in columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for label in labels:
        cells = [b.table[size].get(label) for b, size in columns]
        print(f"| {label} | " + " | ".join("" if c is None else f"{c:,.0f}" if c >= 100 else f"{c:.2f}"
                                         for c in cells) + " |")


def _size(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1000}k" if n >= 1000 else str(n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000,1000000", help="instances, comma-separated, ascending")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--requests", type=int, default=30, help="requests per figure")
    parser.add_argument("--data", type=Path, help="where the indexes go and stay (default: a temporary folder);"
                        " a later run with the same folder goes on from them")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder afterwards")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(machine_line())
    benches = []
    with temp_dir(args.keep) as folder:
        folder = args.data or folder
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o755)  # PostgreSQL runs as its own user when we are root
        for backend in args.backends.split(","):
            server = url = empty_url = None
            if backend == "postgresql":
                server = PostgresServer({"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on",
                                         "shared_buffers": "1GB", "max_wal_size": "8GB", "work_mem": "16MB"},
                                        directory=folder / "postgresql-cluster").start()
                url, empty_url = server.url("dicomweb"), server.url("empty")
                migrate_index(url)
                migrate_index(empty_url)
            bench = Bench(backend, folder, url, empty_url, args.requests)
            try:
                for size in sizes:
                    if bench.generator.made.instances >= size and size != sizes[-1]:
                        continue  # a kept index already past it
                    heading(f"{backend}: {size:,} instances")
                    bench.fill(size)
                    asyncio.run(bench.measure(size))
                benches.append(bench)
            finally:
                bench.close()
                if server is not None:
                    server.stop()  # a cluster under --data stays
        print_table(benches)


if __name__ == "__main__":
    main()
