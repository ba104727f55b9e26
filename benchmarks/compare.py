"""Issue 18's figures side by side: this server, Orthanc 1.13 and nginx sending the same bytes, in one run, as ratios.

    .venv/bin/python benchmarks/compare.py [--rounds 5] [--only frame-1,retrieve] [--orthanc DIR]
                                           [--server-arg=--workers=2] [--import-arg=--jobs=2] [--tiny]

The method of shared/anchors/README.md: interleaved rounds (ours, Orthanc, nginx, then the next round starting with
the next of them), the figure of each server is the median of its per-round medians, and the ratios are of those
figures (with the range of the per-round ratios beside them, which shows the noise). Concurrency is client
processes, each with one kept-alive connection (pool.py). Every answer is checked (status, media type, part count,
payload length, DICOM JSON objects); a run with a bad answer prints it and its figure is marked invalid.
nginx serves the bodies our server answered, saved to files (sendfile on, keep-alive): the limit for a response the
server could have prepared in advance. Cold and warm are named in each label. Asserts nothing; see
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from anchors import (
    Dataset,
    ImportRun,
    Nginx,
    Orthanc,
    Series,
    cli_import,
    cpu_seconds,
    dataset,
    nginx_binary,
    orthanc_announced,
    peer_arguments,
    posted,
)
from common import MB, ROOT_PATH, Server, machine_line
from pool import STOW_TYPE, ClientPool, Expect, KeepingClient, Measured, Req, run_requests

JSON = {"Accept": "application/dicom+json", "Accept-Encoding": "identity"}
FRAME = {"Accept": "multipart/related; type=application/octet-stream; transfer-syntax=*"}  # as OHIF 3.13 asks
DECODED = {"Accept": 'multipart/related; type="application/octet-stream"'}  # Explicit VR LE: a J2K frame decoded
STUDY = {"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}
JPEG = {"Accept": "image/jpeg"}
OURS, ORTHANC, NGINX = "ours", "orthanc", "nginx"
NAMES = {OURS: "ours", ORTHANC: "Orthanc 1.13", NGINX: "nginx"}


@dataclass(frozen=True)
class Item:
    """One request, relative to a DICOMweb root (``/studies/...``)."""

    rel: str
    headers: tuple[tuple[str, str], ...]
    expect: Expect


def item(rel: str, headers: dict[str, str], expect: Expect) -> Item:
    return Item(rel, tuple(headers.items()), expect)


@dataclass(frozen=True)
class Goal:
    """Issue 18's goal for a figure: ours / peer (or ours alone, peer "abs") compared with ``value``."""

    peer: str  # ORTHANC, NGINX or "abs"
    most: bool  # True: at most value; False: at least value
    value: float

    def text(self, unit: str) -> str:
        if self.peer == "abs":
            return f"{'≤' if self.most else '≥'} {self.value:g} {unit}"
        return f"{'≤' if self.most else '≥'} {self.value:g}× {NAMES[self.peer]}"

    def met(self, ours: float, ratios: dict[str, float]) -> bool | None:
        observed = ours if self.peer == "abs" else ratios.get(self.peer)
        if observed is None:
            return None
        return observed <= self.value if self.most else observed >= self.value


@dataclass
class Workload:
    key: str
    label: str
    unit: str  # "ms" (a time: lower is better) or "MB/s" / "inst/s" (a rate: higher is better)
    clients: int
    sides: tuple[str, ...]
    rounds: Callable[[int], list[Item]]  # the items of round r (the same for every side)
    warm: list[Item] = field(default_factory=list)  # asked once of every side before the rounds, untimed
    goals: tuple[Goal, ...] = ()

    @property
    def rate(self) -> bool:
        return self.unit != "ms"


@dataclass
class Side:
    key: str
    host: str
    port: int
    prefix: str
    cpu: Callable[[], float]
    saved: dict[Item, str] = field(default_factory=dict)  # nginx: the file holding our answer to an item

    def req(self, it: Item) -> Req:
        path = self.saved[it] if self.key == NGINX else self.prefix + it.rel
        return Req(path, it.headers, it.expect)


@dataclass
class Figures:
    """Per side: the value of each round, and server / client CPU per request."""

    values: dict[str, list[float]] = field(default_factory=dict)
    cpu_ms: dict[str, list[float]] = field(default_factory=dict)
    client_cpu: dict[str, list[float]] = field(default_factory=dict)
    problems: dict[str, list[str]] = field(default_factory=dict)
    bad: dict[str, int] = field(default_factory=dict)

    def add(self, side: str, value: float, cpu_ms: float, client: float, bad: int, problems: list[str]) -> None:
        self.values.setdefault(side, []).append(value)
        self.cpu_ms.setdefault(side, []).append(cpu_ms)
        self.client_cpu.setdefault(side, []).append(client)
        self.failed(side, bad, problems)

    def failed(self, side: str, bad: int, problems: list[str]) -> None:
        self.bad[side] = self.bad.get(side, 0) + bad
        self.problems.setdefault(side, []).extend(problems[: max(0, 3 - len(self.problems.get(side, [])))])

    def figure(self, side: str) -> float | None:
        values = self.values.get(side)
        return statistics.median(values) if values else None

    def ratio(self, side: str, peer: str) -> tuple[float, float, float] | None:
        """ours / peer of the figures, and the smallest and largest per-round ratio."""
        ours, theirs = self.values.get(side), self.values.get(peer)
        if not ours or not theirs:
            return None
        rounds = [a / b for a, b in zip(ours, theirs, strict=False) if b]
        return statistics.median(ours) / statistics.median(theirs), min(rounds), max(rounds)


# -- the workloads -----------------------------------------------------------------------------------------


def workloads(data: Dataset, args: argparse.Namespace, sides: Sequence[str]) -> list[Workload]:
    ct, meta, multi, j2k = data.ct, data.meta, data.multiframe, data.j2k
    rounds, n = args.rounds, args.requests
    frame = Expect(parts=1, part_bytes=ct.frame_bytes)
    mframe = Expect(parts=1, part_bytes=multi.frame_bytes)
    decoded = Expect(parts=1, part_bytes=j2k.frame_bytes)
    jpeg = Expect(media="image/jpeg", min_bytes=500)
    every = tuple(sides)
    peers = tuple(s for s in sides if s != NGINX)

    def repeat(items: list[Item], count: int, offset: int = 0) -> list[Item]:
        return [items[(offset + i) % len(items)] for i in range(count)]

    series_meta = item(meta.series + "/metadata", JSON, Expect(instances=len(meta.files), min_bytes=100))
    study_meta = item(ct.study + "/metadata", JSON, Expect(instances=len(ct.files), min_bytes=100))
    frames = [item(ct.instance(i) + "/frames/1", FRAME, frame) for i in range(len(ct.files))]
    spread = [1 + (i * 37) % multi.frames for i in range(multi.frames)]
    mframes = [item(f"{multi.instance(0)}/frames/{k}", FRAME, mframe) for k in spread]
    study = item(ct.study, STUDY, Expect(parts=len(ct.files), part_bytes=ct.smallest_file))
    rendered = [item(ct.instance(i) + "/rendered", JPEG, jpeg) for i in range(len(ct.files))]
    j2k_frames = [item(j2k.instance(i) + "/frames/1", DECODED, decoded) for i in range(len(j2k.files))]
    # Cold items: distinct per round, never asked before; the first one of each list is the warm-up (it loads
    # the decoder or encoder), the cached figures repeat a few of those asked in the warm-up.
    cold_rendered = max(1, min(args.cold, (len(rendered) - 1) // rounds))
    cold_j2k = max(1, (len(j2k_frames) - 1) // rounds)
    cached_j2k = j2k_frames[:1]

    def cold(items: list[Item], per_round: int) -> Callable[[int], list[Item]]:
        return lambda r: items[1 + r * per_round : 1 + (r + 1) * per_round]

    return [
        Workload("series-metadata", f"series metadata, {len(meta.files):,} instances (warm)", "ms", 1, every,
                 lambda r: [series_meta] * max(3, n // 10), [series_meta],
                 (Goal(NGINX, True, 2.0), Goal(ORTHANC, True, 0.15))),
        Workload("study-metadata", f"study metadata, {len(ct.files):,} instances (warm)", "ms", 1, every,
                 lambda r: [study_meta] * max(3, n // 5), [study_meta],
                 (Goal(NGINX, True, 2.0), Goal(ORTHANC, True, 0.15))),
        Workload("frame-1", f"one CT frame {_size(ct)}, 1 client (warm)", "ms", 1, every,
                 lambda r: repeat(frames, n, r * n), frames, (Goal(NGINX, True, 1.5), Goal(ORTHANC, True, 0.3))),
        Workload("frame-8", f"one CT frame {_size(ct)}, 8 clients (warm)", "ms", 8, every,
                 lambda r: repeat(frames, 2 * n, r * n), frames, (Goal(NGINX, True, 2.0), Goal(ORTHANC, True, 0.5))),
        Workload("multiframe", f"one frame of a {multi.frames}-frame {multi.bytes / MB:,.0f} MB instance (warm)",
                 "ms", 1, every, lambda r: repeat(mframes, n, r * 7), mframes, (Goal(ORTHANC, True, 0.3),)),
        Workload("retrieve", f"study retrieve, {len(ct.files)} x {_size(ct)} CT (warm, stored syntax)", "MB/s", 1,
                 every, lambda r: [study] * args.retrieves, [study], (Goal(NGINX, False, 0.9),)),
        Workload("rendered-cold", f"rendered JPEG {_size(ct)}, cold (first rendering of an instance)", "ms", 1,
                 peers, cold(rendered, cold_rendered), rendered[:1], (Goal(ORTHANC, True, 0.3),)),
        Workload("rendered-cached", f"rendered JPEG {_size(ct)}, cached (the same again)", "ms", 1, every,
                 lambda r: [rendered[0]] * n, rendered[:1], (Goal(ORTHANC, True, 0.1),)),
        Workload("j2k-cold", f"J2K frame {_size(j2k)} decoded, cold (first request of the frame)", "ms", 1, peers,
                 cold(j2k_frames, cold_j2k), j2k_frames[:1], (Goal("abs", True, 20.0),)),
        Workload("j2k-cached", f"J2K frame {_size(j2k)} decoded, cached (the same again)", "ms", 1, every,
                 lambda r: repeat(cached_j2k, n), cached_j2k, (Goal("abs", True, 1.0),)),
    ]


def _size(series: Series) -> str:
    """The matrix of a series of square 16-bit frames, as 512²."""
    return f"{round((series.frame_bytes // 2) ** 0.5)}²"


# -- running them ------------------------------------------------------------------------------------------


def value_of(workload: Workload, measured: Measured) -> float:
    """The per-round value: p50 latency in ms, or the median per-request rate in MB/s."""
    samples = measured.latencies.samples
    if not workload.rate:
        return statistics.median(samples)
    each = measured.latencies.bytes / len(samples)
    return statistics.median(each / MB / (ms / 1000) for ms in samples)


def run_workload_round(pool: ClientPool, workload: Workload, side: Side, items: list[Item]) -> Measured:
    return run_requests(pool, side.host, side.port, [side.req(it) for it in items], workload.clients,
                        meter=side.cpu)


def save_bodies(ours: Side, items: Sequence[Item], folder: Path, types: dict[str, str]) -> dict[Item, str]:
    """Ask our server for each item once and save its body (nginx will send these very bytes)."""
    folder.mkdir(parents=True, exist_ok=True)
    by_type = {media: suffix for suffix, media in types.items()}
    saved: dict[Item, str] = {}
    client = KeepingClient(ours.host, ours.port)
    client.keep_limit = 1 << 40  # keep whole studies too: they are written out
    for it in dict.fromkeys(items):
        status, headers, length = client.request("GET", ours.prefix + it.rel, dict(it.headers))
        problem = client.problem(it.expect, status, headers, length)
        if problem:
            raise RuntimeError(f"our server's answer to {it.rel} is wrong ({problem}): nothing to give nginx")
        media = headers.get("content-type", "application/octet-stream")
        suffix = by_type.setdefault(media, f"t{len(by_type)}")
        types[suffix] = media
        name = f"{len(saved)}.{suffix}"
        with open(folder / name, "wb") as out, memoryview(client.kept) as view:
            out.write(view[:length])
        saved[it] = f"/b/{name}"
    client.close()
    return saved


def print_round(workload: Workload, side: str, r: int, value: float, m: Measured) -> None:
    cpu = m.meter * 1000 / max(1, m.requests)
    bad = f"  {m.bad} BAD: {m.problems[0]}" if m.bad else ""
    print(f"    round {r + 1} {NAMES[side]:<13} {value:9.2f} {workload.unit:<5} ({m.requests} req, server CPU "
          f"{cpu:6.2f} ms/req, clients {m.client_cpu / max(m.latencies.wall, 1e-9) * 100:4.0f}% CPU){bad}",
          flush=True)


def run_rounds(pool: ClientPool, loads: list[Workload], sides: dict[str, Side], rounds: int,
               verbose: bool) -> dict[str, Figures]:
    """Round-major: every workload once per round, the sides in turn (each round starts with the next side)."""
    results = {w.key: Figures() for w in loads}
    order = list(sides)
    for r in range(rounds):
        started = time.perf_counter()
        for workload in loads:
            items = workload.rounds(r)
            if not items:
                continue
            turn = [s for s in order[r % len(order):] + order[: r % len(order)] if s in workload.sides]
            for key in turn:
                m = run_workload_round(pool, workload, sides[key], items)
                if not m.requests:  # nothing answered: only the problems count
                    results[workload.key].failed(key, m.bad, m.problems)
                    continue
                value = value_of(workload, m)
                results[workload.key].add(key, value, m.meter * 1000 / max(1, m.requests),
                                          m.client_cpu / max(m.latencies.wall, 1e-9), m.bad, m.problems)
                if verbose:
                    print_round(workload, key, r, value, m)
        print(f"  round {r + 1}/{rounds} done in {time.perf_counter() - started:.0f} s, load average "
              f"{os.getloadavg()[0]:.2f}", flush=True)
    return results


# -- import ------------------------------------------------------------------------------------------------


def run_imports(pool: ClientPool, data: Dataset, args: argparse.Namespace, scratch: Path,
                orthanc_root: Path | None) -> dict[str, list[ImportRun]]:
    """Rounds of: our CLI import, STOW from N client processes, Orthanc's REST upload from N client processes,
    each into an empty archive, all durable (our fsync; Orthanc's SyncStorageArea)."""
    files = data.import_files()
    stow = Expect(lacks=b'"00081198"')  # no FailedSOPSequence
    runs: dict[str, list[ImportRun]] = {"cli": [], "stow": [], ORTHANC: []}
    for r in range(args.import_rounds):
        folder = Path(tempfile.mkdtemp(prefix=f"import-{r}-", dir=scratch))
        runs["cli"].append(cli_import(folder / "cli", files, args.import_arg))
        if orthanc_root is not None:
            with Orthanc(orthanc_root, f"import{r}") as orthanc:
                runs[ORTHANC].append(orthanc.upload(pool, files, args.import_clients))
        with Server(folder / "stow", *args.server_arg, log_path=folder / "stow.log") as server:
            reqs = [Req(ROOT_PATH + "/studies", (("Content-Type", STOW_TYPE),), stow, "POST", f, stow=True)
                    for f in files]
            runs["stow"].append(posted(pool, server.host, server.port, reqs, args.import_clients,
                                       lambda: cpu_seconds([server.pid])))
        shutil.rmtree(folder, ignore_errors=True)
        print(f"  import round {r + 1}/{args.import_rounds}: " + ", ".join(
            f"{key} {len(files) / v[-1].seconds:,.0f} inst/s" for key, v in runs.items() if v), flush=True)
    return runs


# -- printing ----------------------------------------------------------------------------------------------


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "ms":
        return f"{value:.2f} ms" if value < 100 else f"{value:,.0f} ms"
    return f"{value:,.0f} {unit}"


def fmt_ratio(r: tuple[float, float, float] | None) -> str:
    if r is None:
        return "—"
    mid, low, high = r
    return f"{mid:.2f}× ({low:.2f}–{high:.2f})"


@dataclass
class Row:
    label: str
    unit: str
    figures: dict[str, float | None]
    ratios: dict[str, tuple[float, float, float] | None]
    cpu: dict[str, float | None]
    goals: tuple[Goal, ...]
    invalid: list[str]


def rows_of(loads: list[Workload], results: dict[str, Figures], sides: Sequence[str]) -> list[Row]:
    rows = []
    for w in loads:
        f = results[w.key]
        figures = {s: f.figure(s) for s in sides if s in w.sides}
        ratios = {s: f.ratio(OURS, s) for s in (ORTHANC, NGINX) if s in w.sides and s in sides}
        cpu = {s: (statistics.median(f.cpu_ms[s]) if f.cpu_ms.get(s) else None) for s in figures}
        invalid = [f"{NAMES[s]}: {f.bad[s]} bad answers, e.g. {f.problems[s][0]}" for s in f.bad if f.bad[s]]
        rows.append(Row(w.label, w.unit, figures, ratios, cpu, w.goals, invalid))
    return rows


def import_rows(runs: dict[str, list[ImportRun]], files: int, megabytes: float, clients: int) -> list[Row]:
    def rates(key: str) -> list[float]:
        return [files / run.seconds for run in runs.get(key, [])]

    orthanc = rates(ORTHANC)
    rows = []
    for key, label in (("cli", "import, CLI `import`"), ("stow", f"import, STOW from {clients} clients")):
        ours = rates(key)
        ratio = None
        if ours and orthanc:
            per_round = [a / b for a, b in zip(ours, orthanc, strict=False)]
            ratio = (statistics.median(ours) / statistics.median(orthanc), min(per_round), max(per_round))
        invalid = [f"{key}: {run.problem}" for run in runs.get(key, []) if run.problem]
        invalid += [f"Orthanc: {run.problem}" for run in runs.get(ORTHANC, []) if run.problem]
        cpu_ours = [run.cpu * 1000 / files for run in runs.get(key, [])]
        cpu_orthanc = [run.cpu * 1000 / files for run in runs.get(ORTHANC, [])]
        rows.append(Row(
            f"{label} vs Orthanc REST upload from {clients} clients, {files:,} files {megabytes:,.0f} MB, "
            "all durable", "inst/s",
            {OURS: statistics.median(ours) if ours else None,
             ORTHANC: statistics.median(orthanc) if orthanc else None},
            {ORTHANC: ratio},
            {OURS: statistics.median(cpu_ours) if cpu_ours else None,
             ORTHANC: statistics.median(cpu_orthanc) if cpu_orthanc else None},
            (Goal(ORTHANC, False, 1.0),), invalid))
    return rows


def cpu_ratio(row: Row) -> str:
    """Server CPU per request, ours / Orthanc's: far steadier than a time on a shared machine."""
    ours, theirs = row.cpu.get(OURS), row.cpu.get(ORTHANC)
    return f"{ours / theirs:.2f}×" if ours is not None and theirs else "—"


def print_table(rows: list[Row], sides: Sequence[str]) -> None:
    peers = [s for s in (ORTHANC, NGINX) if s in sides]
    head = ["workload", *(NAMES[s] for s in sides), *(f"ours / {NAMES[s]}" for s in peers),
            "server CPU per request (" + " / ".join(NAMES[s] for s in sides) + ")",
            *(["server CPU, ours / Orthanc 1.13"] if ORTHANC in sides else []), "issue 18's goal"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        kind = "rate" if row.unit != "ms" else "time"
        goals = []
        for goal in row.goals:
            ours = row.figures.get(OURS)
            met = goal.met(ours, {k: v[0] for k, v in row.ratios.items() if v}) if ours is not None else None
            verdict = "" if met is None else (" met" if met else " **missed**")
            goals.append(goal.text(row.unit) + verdict)
        cells = [row.label + ("  **INVALID**" if row.invalid else ""),
                 *(fmt(row.figures.get(s), row.unit) for s in sides),
                 *(fmt_ratio(row.ratios.get(s)) + (f" ({kind})" if row.ratios.get(s) else "") for s in peers),
                 " / ".join("—" if row.cpu.get(s) is None else f"{row.cpu[s]:.2f} ms" for s in sides),
                 *([cpu_ratio(row)] if ORTHANC in sides else []),
                 "; ".join(goals)]
        print("| " + " | ".join(cells) + " |")
    for row in rows:
        for problem in row.invalid:
            print(f"  INVALID {row.label}: {problem}")


# -- main --------------------------------------------------------------------------------------------------


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds of every figure (default 7)")
    parser.add_argument("--requests", type=int, default=150,
                        help="requests per round of a frame figure; metadata and cached figures scale from it")
    parser.add_argument("--retrieves", type=int, default=3, help="study retrieves per round (default 3)")
    parser.add_argument("--cold", type=int, default=30, help="cold renderings per round at most (default 30)")
    parser.add_argument("--import-rounds", type=int, default=3, help="rounds of the import figures (0: none)")
    parser.add_argument("--import-clients", type=int, default=4, help="STOW / Orthanc upload clients (default 4)")
    parser.add_argument("--only", default="", help="comma-separated workload keys (import, frame-1, ...)")
    parser.add_argument("--slices", type=int, default=300, help="CT slices (default 300)")
    parser.add_argument("--size", type=int, default=512, help="CT and multi-frame matrix (default 512)")
    parser.add_argument("--meta-slices", type=int, default=1000, help="series metadata instances (default 1000)")
    parser.add_argument("--frames", type=int, default=200, help="frames of the multi-frame instance (default 200)")
    parser.add_argument("--j2k-slices", type=int, default=64, help="JPEG 2000 slices (default 64)")
    parser.add_argument("--tiny", action="store_true", help="a few small files and 2 rounds: checks the harness")
    peer_arguments(parser)
    parser.add_argument("--import-arg", action="append", default=[],
                        help="extra `import` argument, repeatable (e.g. --import-arg=--jobs=2)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (archives, bodies, logs)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every round of every side")
    args = parser.parse_args(argv)
    if args.tiny:
        args.slices, args.size, args.meta_slices, args.frames, args.j2k_slices = 6, 64, 12, 4, 5
        args.rounds, args.requests, args.retrieves, args.cold = 2, 10, 2, 2
        args.import_rounds = min(args.import_rounds, 1)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    only = {k for k in args.only.split(",") if k}
    print(f"dicomweb-origin side by side with Orthanc 1.13 and nginx on {machine_line()}", flush=True)
    pool = ClientPool(max(8, args.import_clients))  # forked before any thread starts
    problem = orthanc_announced(args.orthanc)
    if nginx_binary() is None:
        print("  nginx: not installed (apt-get install nginx-light) -- the nginx column is skipped", flush=True)
    sides = [OURS] + ([ORTHANC] if problem is None else []) + ([NGINX] if nginx_binary() else [])
    data = dataset(args.files, slices=args.slices, size=args.size, meta_slices=args.meta_slices,
                   meta_size=64 if not args.tiny else 32, frames=args.frames, j2k_slices=args.j2k_slices)
    loads = [w for w in workloads(data, args, sides) if not only or w.key in only]
    rows: list[Row] = []
    with ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="dicomweb-compare-"))
        stack.callback(lambda: print(f"(kept {tmp})") if args.keep else shutil.rmtree(tmp, ignore_errors=True))
        stack.callback(pool.close)
        if loads:
            rows += read_figures(stack, pool, data, args, loads, sides, tmp)
        if args.import_rounds and (not only or "import" in only):
            print(f"\n== import: {len(data.import_files()):,} files, {args.import_rounds} rounds, each into an "
                  "empty archive", flush=True)
            runs = run_imports(pool, data, args, tmp, args.orthanc if ORTHANC in sides else None)
            megabytes = sum(Path(f).stat().st_size for f in data.import_files()) / MB
            rows += import_rows(runs, len(data.import_files()), megabytes, args.import_clients)
    print(f"\n== Issue 18's figures: median of {args.rounds} rounds' medians (import: {args.import_rounds} rounds); "
          "ratios of the figures, per-round range in brackets; load average "
          + ", ".join(f"{x:.2f}" for x in os.getloadavg()) + "\n")
    print_table(rows, sides)
    if ORTHANC not in sides:
        print(f"\n(Orthanc 1.13 column skipped: {problem})")
    return 0


def read_figures(stack: ExitStack, pool: ClientPool, data: Dataset, args: argparse.Namespace,
                 loads: list[Workload], sides: list[str], tmp: Path) -> list[Row]:
    print("\n== setup: load the data set into each server (not timed here: see the import figures)", flush=True)
    files = data.all_files()
    run = cli_import(tmp / "ours", files, args.import_arg)
    if run.problem:
        raise RuntimeError(f"import into our archive failed: {run.problem}")
    print(f"  ours: {len(files):,} files imported in {run.seconds:.1f} s", flush=True)
    server = stack.enter_context(Server(tmp / "ours", *args.server_arg, log_path=tmp / "ours.log"))
    table = {OURS: Side(OURS, server.host, server.port, ROOT_PATH, lambda: cpu_seconds([server.pid]))}
    if ORTHANC in sides:
        orthanc = stack.enter_context(Orthanc(args.orthanc, "main", keep=args.keep))
        upload = orthanc.upload(pool, files, args.import_clients)
        if upload.problem:
            raise RuntimeError(f"upload into Orthanc failed: {upload.problem}")
        print(f"  Orthanc 1.13: {len(files):,} files uploaded in {upload.seconds:.1f} s", flush=True)
        table[ORTHANC] = Side(ORTHANC, orthanc.host, orthanc.port, Orthanc.prefix, orthanc.cpu)

    print("  warm-up: every warm item once, of each server", flush=True)
    for w in loads:
        for key in (OURS, ORTHANC):
            if key in table and key in w.sides and w.warm:
                m = run_requests(pool, table[key].host, table[key].port, [table[key].req(i) for i in w.warm])
                if m.bad:
                    print(f"  WARNING {w.key} {NAMES[key]}: {m.bad} bad answers in the warm-up: {m.problems[0]}")
    if NGINX in sides:
        types: dict[str, str] = {}
        items = [it for w in loads if NGINX in w.sides for r in range(args.rounds) for it in [*w.warm, *w.rounds(r)]]
        saved = save_bodies(table[OURS], items, tmp / "nginx" / "b", types)
        size = sum(f.stat().st_size for f in (tmp / "nginx" / "b").iterdir())
        print(f"  nginx: {len(saved)} bodies our server answered, {size / MB:,.0f} MB, saved for nginx", flush=True)
        nginx = stack.enter_context(Nginx(tmp / "nginx", "  server { listen 127.0.0.1:{port}; root {root}; }",
                                          types))
        table[NGINX] = Side(NGINX, nginx.host, nginx.port, "", nginx.cpu, saved)
        for w in loads:  # the first request of each file from disk to the page cache, untimed
            if NGINX in w.sides and w.warm:
                run_requests(pool, nginx.host, nginx.port, [table[NGINX].req(i) for i in w.warm])

    print(f"\n== {len(loads)} figures x {args.rounds} interleaved rounds x {len(sides)} servers "
          f"(server arguments: {shlex.join(args.server_arg) or 'none'})", flush=True)
    results = run_rounds(pool, loads, {k: table[k] for k in sides}, args.rounds, args.verbose)
    return rows_of(loads, results, sides)


if __name__ == "__main__":
    sys.exit(main())
