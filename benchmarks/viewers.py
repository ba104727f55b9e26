"""Capacity: how many OHIF viewers can open the 300-slice CT at once before each one's load slows by half.

    .venv/bin/python benchmarks/viewers.py [--max-viewers 32] [--trials 2] [--orthanc DIR] [--server-arg=...]

Each simulated viewer is a client process that replays what OHIF 3.13.2 (this repository's app-config.js) asks
when it opens ``/viewer?StudyInstanceUIDs=<study>`` (recorded from the real viewer in headless Chromium, see
benchmarks/README.md): the two identical study searches and the series search at once, then the patient's other
studies and the series metadata at once, then the 300 frames with at most 5 requests in flight, each over its
own kept-alive connection; the Accept and Accept-Encoding headers are the ones Chromium sent. Every answer is
checked. N viewers start together; a viewer's load time runs from its first request to its last byte.

For each N of a ladder (1, 2, 3, 4, 6, 8, 12, ...), this server and Orthanc 1.13 take turns; N passes when the
slowest viewer's load (median of ``--trials``) is within 1.5x of a viewer's time alone. The answer is the largest
N that passes, with each server's CPU seconds per viewer load. Everything shares this machine: the viewers' own
CPU is printed beside. Asserts nothing.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from anchors import (
    Orthanc,
    Series,
    cli_import,
    cpu_seconds,
    dataset,
    orthanc_announced,
    peer_arguments,
)
from common import ROOT_PATH, Server, machine_line
from pool import ClientPool, Expect, KeepingClient, Req

# What Chromium sent for OHIF 3.13.2 (recorded; see benchmarks/README.md).
SEARCH = {"Accept": "application/dicom+json", "Accept-Encoding": "gzip, deflate, br, zstd"}
FRAME = {"Accept": "multipart/related; type=application/octet-stream; transfer-syntax=*",
         "Accept-Encoding": "gzip, deflate, br, zstd"}
STUDY_FIELDS = "includefield=00081030%2C00080060%2C00080090%2C00100030"
SERIES_FIELDS = "includefield=00080021%2C00080031%2C0008103E%2C00200011"
IN_FLIGHT = 5
SLOWDOWN = 1.5


def plan(ct: Series, patient_id: str) -> list[list[Req]]:
    """OHIF's requests for opening the study, in stages: each stage starts when the one before it has ended."""
    study_search = f"/studies?limit=101&offset=0&fuzzymatching=true&{STUDY_FIELDS}&StudyInstanceUID={ct.study_uid}"
    one_study = Expect(contains=ct.study_uid.encode())
    frame = Expect(parts=1, part_bytes=ct.frame_bytes)
    return [
        [Req(study_search, tuple(SEARCH.items()), one_study)] * 2
        + [Req(f"{ct.study}/series?{SERIES_FIELDS}", tuple(SEARCH.items()), Expect(contains=ct.series_uid.encode()))],
        [Req(f"/studies?00100020={patient_id}&limit=101&offset=0&fuzzymatching=true&{STUDY_FIELDS}",
             tuple(SEARCH.items()), one_study),
         Req(f"{ct.series}/metadata", tuple(SEARCH.items()), Expect(instances=len(ct.files)))],
        [Req(f"{ct.instance(i)}/frames/1", tuple(FRAME.items()), frame) for i in range(len(ct.files))],
    ]


@dataclass
class Load:
    seconds: float
    bytes: int
    cpu: float
    problems: list[str] = field(default_factory=list)


@dataclass
class ViewerJob:
    """One viewer: IN_FLIGHT connections (threads, the GIL released while they wait), the stages in order."""

    host: str
    port: int
    prefix: str
    stages: list[list[Req]]
    clients: list[KeepingClient] = field(default_factory=list)

    def prepare(self) -> None:
        self.clients = [KeepingClient(self.host, self.port) for _ in range(IN_FLIGHT)]
        for client in self.clients:
            client._connect()

    def run(self) -> Load:
        cpu, start = time.process_time(), time.perf_counter()
        problems: list[str] = []
        size = [0]
        lock = threading.Lock()
        for stage in self.stages:
            queue = iter(stage)

            def work(client: KeepingClient, queue: object = queue) -> None:
                while True:
                    with lock:
                        req = next(queue, None)  # type: ignore[call-overload]
                    if req is None:
                        return
                    try:
                        status, headers, length = client.request("GET", self.prefix + req.path, dict(req.headers))
                        problem = client.problem(req.expect, status, headers, length)
                    except (OSError, EOFError, ValueError) as exc:  # no answer: a bad one, the load goes on
                        client.close()
                        length, problem = 0, f"{type(exc).__name__}: {exc}"
                    with lock:
                        size[0] += length
                        if problem:
                            problems.append(f"{req.path[:80]}: {problem}")

            threads = [threading.Thread(target=work, args=(c,)) for c in self.clients[: len(stage)]]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        seconds = time.perf_counter() - start
        for client in self.clients:
            client.close()
        return Load(seconds, size[0], time.process_time() - cpu, problems)


@dataclass
class Target:
    name: str
    host: str
    port: int
    prefix: str
    pids: list[int]


@dataclass
class Trial:
    loads: list[Load]
    server_cpu: float

    @property
    def slowest(self) -> float:
        return max(load.seconds for load in self.loads)

    @property
    def problems(self) -> list[str]:
        return [p for load in self.loads for p in load.problems]


def trial(pool: ClientPool, target: Target, stages: list[list[Req]], viewers: int) -> Trial:
    jobs = [ViewerJob(target.host, target.port, target.prefix, stages) for _ in range(viewers)]
    loads, cpu = pool.run(jobs, lambda: cpu_seconds(target.pids))
    return Trial(loads, cpu)


def ladder(limit: int) -> list[int]:
    """1, 2, 3, 4, 6, 9, 13, 19, 28, ...: every N at first, then half again each step."""
    steps, n = [], 1
    while n <= limit:
        steps.append(n)
        n = n + 1 if n < 4 else n + n // 2
    return steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=300, help="CT slices (default 300)")
    parser.add_argument("--size", type=int, default=512, help="CT matrix (default 512)")
    parser.add_argument("--max-viewers", type=int, default=32, help="largest N tried (default 32)")
    parser.add_argument("--trials", type=int, default=3, help="runs per N and server (default 3; median)")
    parser.add_argument("--alone", type=int, default=5, help="runs of one viewer alone per server (default 5)")
    peer_arguments(parser)
    parser.add_argument("--tiny", action="store_true", help="8 small slices, N up to 3: checks the script")
    args = parser.parse_args(argv)
    if args.tiny:
        args.slices, args.size, args.max_viewers, args.trials, args.alone = 8, 64, 3, 1, 1

    print(f"dicomweb-origin viewers capacity on {machine_line()}", flush=True)
    pool = ClientPool(2)
    problem = orthanc_announced(args.orthanc)
    data = dataset(args.files, slices=args.slices, size=args.size, **_small_rest(args.tiny))
    ct = data.ct
    import pydicom

    patient_id = str(pydicom.dcmread(ct.files[0], stop_before_pixels=True).PatientID)
    stages = plan(ct, patient_id)
    targets: list[Target] = []
    with ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="dicomweb-viewers-"))
        stack.callback(shutil.rmtree, tmp, True)
        stack.callback(pool.close)
        run = cli_import(tmp / "ours", ct.files, [])
        if run.problem:
            raise RuntimeError(f"import failed: {run.problem}")
        server = stack.enter_context(Server(tmp / "ours", *args.server_arg,
                                            log_path=tmp / "ours.log"))
        targets.append(Target("ours", server.host, server.port, ROOT_PATH, [server.pid]))
        if problem is None:
            orthanc = stack.enter_context(Orthanc(args.orthanc, "viewers"))
            upload = orthanc.upload(pool, ct.files, 4)
            if upload.problem:
                raise RuntimeError(f"upload into Orthanc failed: {upload.problem}")
            targets.append(Target("Orthanc 1.13", orthanc.host, orthanc.port, Orthanc.prefix, [orthanc.pid]))
        print(f"\n== one viewer's load: {sum(len(s) for s in stages)} requests ({len(ct.files)} frames of "
              f"{ct.frame_bytes / 1024:,.0f} KiB), at most {IN_FLIGHT} in flight", flush=True)
        for target in targets:  # warm: the page cache, the server's caches
            warm = trial(pool, target, stages, 1)
            if warm.problems:
                raise RuntimeError(f"{target.name} answered wrongly: {warm.problems[:3]}")
        alone: dict[str, list[Trial]] = {t.name: [] for t in targets}
        for _ in range(args.alone):
            for target in targets:
                alone[target.name].append(trial(pool, target, stages, 1))
        base = {name: statistics.median(t.slowest for t in trials) for name, trials in alone.items()}
        for target in targets:
            trials = alone[target.name]
            print(f"  {target.name:<13} alone: {base[target.name]:6.2f} s, server CPU "
                  f"{statistics.median(t.server_cpu for t in trials):5.2f} s per load, viewer (client) CPU "
                  f"{statistics.median(t.loads[0].cpu for t in trials):5.2f} s", flush=True)

        print(f"\n== N viewers at once: slowest load (median of {args.trials}) / alone; passes when "
              f"<= {SLOWDOWN}x", flush=True)
        print(f"  {'N':>3}  " + "  ".join(f"{t.name + ': slowest, x alone, CPU s/load, clients CPU s':<60}"
                                          for t in targets))
        best = {t.name: 1 for t in targets}  # one viewer is the time alone
        failures = {t.name: 0 for t in targets}
        for step, n in enumerate(ladder(args.max_viewers)[1:]):
            active = [t for t in targets if failures[t.name] < 2]
            if not active:
                break
            pool.ensure(n)
            cells = []
            for target in active if step % 2 == 0 else active[::-1]:
                trials = [trial(pool, target, stages, n) for _ in range(args.trials)]
                slowest = statistics.median(t.slowest for t in trials)
                ratio = slowest / base[target.name]
                bad = [p for t in trials for p in t.problems]
                passed = ratio <= SLOWDOWN and not bad
                if passed:
                    best[target.name] = max(best[target.name], n)
                    failures[target.name] = 0
                else:
                    failures[target.name] += 1
                cpu = statistics.median(t.server_cpu / n for t in trials)
                clients = statistics.median(sum(load.cpu for load in t.loads) for t in trials)
                cell = (f"{slowest:6.2f} s  {ratio:5.2f}x {'pass' if passed else 'FAIL'}  {cpu:5.2f} s/load  "
                        f"{clients:5.1f} s")
                if bad:
                    cell += f"  {len(bad)} BAD: {bad[0]}"
                cells.append((target.name, cell))
            order = {t.name: i for i, t in enumerate(targets)}
            print(f"  {n:>3}  " + "  ".join(f"{c:<60}" for _, c in sorted(cells, key=lambda x: order[x[0]])),
                  flush=True)

        print("\n== largest N whose every viewer loads within "
              f"{SLOWDOWN}x of its time alone (issue 18's goal: at least twice Orthanc's N)")
        for target in targets:
            print(f"  {target.name:<13} N = {best[target.name]}")
        if len(targets) == 2 and best[targets[1].name]:
            print(f"  ours / Orthanc 1.13: {best['ours'] / best[targets[1].name]:.2f}x")
        if len(targets) == 2:
            ours, theirs = (statistics.median(t.server_cpu for t in alone[x.name]) for x in targets)
            print(f"  server CPU per load alone, ours / Orthanc 1.13: {ours / theirs:.2f}x "
                  f"({ours:.2f} s / {theirs:.2f} s: what bounds N when the cores are the limit)")
        if problem:
            print(f"\n(Orthanc 1.13 skipped: {problem})")
    return 0


def _small_rest(tiny: bool) -> dict[str, int]:
    """The rest of the data set (not used here) small, and the same as compare.py's default or tiny run."""
    if tiny:
        return {"meta_slices": 12, "meta_size": 32, "frames": 4, "j2k_slices": 5}
    return {}


if __name__ == "__main__":
    sys.exit(main())
