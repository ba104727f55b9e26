"""Interactive speed of the lite viewer's requests: N sessions dragging an oblique MPR plane, N rotating the 3D view.

    .venv/bin/python benchmarks/interactive.py [--rows 512] [--slices 300] [--sessions 1,4,8,16] [--seconds 10]

A 512 x 512 x 300 CT series (``volumes.synthetic_ct``) is written as single-frame files and stored through the normal
ingest; a real server process serves it. Each session behaves like one view of the viewer (web/lite) while the user
drags: the pointer gives a new position every 50 ms; the session keeps at most one request in flight and, when its
answer arrives, asks for the newest position at once (latest wins: positions that came and went meanwhile are never
asked for). MPR sessions drag a double-oblique plane (turning about the patient's axis, tilted, moving through the
volume), 3D sessions turn the camera about the volume; each session starts at another angle, so no two requests
are alike and the rendered cache never answers. The drag pictures are what the viewer asks for while dragging:
``viewport=256,256&quality=50`` (``--size``, ``--quality``).

Printed per N: pictures per second of each session (min / median / max), latency p50 / p95 over all requests (request
sent to last byte read), the server's CPU (cores busy: its CPU seconds over wall seconds) and its RSS (before, peak).
Before the sessions: the first MPR picture of the series on a server that has not assembled it yet (alone, and as the
viewer opens MPR: series metadata, then the three planes at once), and the full picture asked for when a drag stops.
Goals (2 cores): 8 MPR sessions each >= 10 pictures/s with p95 < 150 ms; 4 3D sessions each >= 5/s; first MPR picture
< 2 s. The client's threads run on the same machine (their CPU is printed too). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
import sys
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    ROOT_PATH,
    RawClient,
    RssSampler,
    Server,
    figure,
    heading,
    ingest,
    machine_line,
    mib,
    temp_dir,
)

TICK_S = 0.05  # a new pointer position every 50 ms
GOALS = {"mpr": (8, 10.0, 150.0), "3d": (4, 5.0, None)}  # sessions, pictures/s each, p95 ms
METHODS = {"mpr": "", "3d": "&renderingmethod=volume_rendered", "3d-mip": "&renderingmethod=maximum_ip"}
FIRST_PICTURE_S = 2.0
JPEG = {"Accept": "image/jpeg"}


@dataclass
class Session:
    """One dragging view: its latencies (ms) and the number of pictures it got."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0


def camera(kind: str, centre: tuple[float, ...], angle: float, t: float, session: int = 0) -> str:
    """The camera triple of a drag position: a view turning about the patient's axis, tilted by 20 degrees.

    Each session tilts 0.7 degrees more than the one before, so no two sessions ever ask for the same view.
    """
    a, tilt = math.radians(angle), math.radians(20 + 0.7 * session)
    d = (math.sin(a) * math.cos(tilt), math.cos(a) * math.cos(tilt), math.sin(tilt))
    shift = 30 * math.sin(t) if kind == "mpr" else 0.0  # the MPR plane also moves through the volume
    lookat = tuple(c + shift * x for c, x in zip(centre, d, strict=True))
    position = tuple(c - 1000 * x for c, x in zip(lookat, d, strict=True))
    text = ",".join
    return (f"viewpointposition={text(f'{v:.3f}' for v in position)}&viewpointlookat={text(f'{v:.3f}' for v in lookat)}"
            "&viewpointup=0,0,1")


def drag(client: RawClient, path: Callable[[int], str], seconds: float, session: Session) -> None:
    """Ask for the newest position whenever no request is in flight; wait for the next tick when none is new."""
    start = time.perf_counter()
    asked = -1
    while (now := time.perf_counter()) - start < seconds:
        tick = int((now - start) / TICK_S)
        if tick == asked:
            time.sleep(start + (tick + 1) * TICK_S - now)
            continue
        asked = tick
        sent = time.perf_counter()
        status, _, _ = client.get(path(tick), JPEG)
        if status != 200:
            session.errors += 1
        session.latencies.append((time.perf_counter() - sent) * 1000)


def run_sessions(server: Server, series: str, kind: str, count: int, seconds: float, centre: tuple[float, ...],
                 extra: str) -> None:
    resource = "renderedmpr" if kind == "mpr" else "rendered3d"
    # Degrees per tick, about 60 or 80 a second: not a divisor of 360, so a turn never repeats an earlier view.
    step = 3.1 if kind == "mpr" else 4.1
    extra += METHODS[kind]

    def path_of(n: int) -> Callable[[int], str]:
        phase = 360.0 * n / count
        # count + n: unique across the runs of one server (1, 4, 8, 16 sessions), as the rendered cache is
        def path(tick: int) -> str:
            view = camera(kind, centre, phase + step * tick, tick * TICK_S, count + n)
            return f"{series}/{resource}?{view}&{extra}"

        return path

    hits_before = rendered_hits(server)
    sessions = [Session() for _ in range(count)]
    clients = [RawClient(server.host, server.port) for _ in range(count)]
    process = psutil.Process(server.pid)
    cpu_before = sum(process.cpu_times()[:2])
    own_before = time.process_time()
    with RssSampler(server.pid, 0.02) as rss, ThreadPoolExecutor(count) as pool:
        start = time.perf_counter()
        futures = [pool.submit(drag, clients[n], path_of(n), seconds, sessions[n]) for n in range(count)]
        for future in futures:
            future.result()
    wall = time.perf_counter() - start
    cpu = sum(process.cpu_times()[:2]) - cpu_before
    for client in clients:
        client.close()
    rates = sorted(len(s.latencies) / wall for s in sessions)
    latencies = sorted(x for s in sessions for x in s.latencies)
    p50, p95 = (statistics.quantiles(latencies, n=100, method="inclusive")[q - 1] for q in (50, 95))
    errors = sum(s.errors for s in sessions)
    hits = rendered_hits(server) - hits_before  # a drag never asks twice: every picture must be rendered
    label = f"{kind.upper():6} x{count:<2}"
    figure(f"{label} pictures/s per session (min / median / max)",
           f"{rates[0]:5.1f} / {statistics.median(rates):5.1f} / {rates[-1]:5.1f}"
           + (f"  {errors} errors!" if errors else "") + (f"  {hits} cache hits!" if hits else ""),
           *_goal(kind, count, rates[0], p95))
    figure(f"{label} latency", f"p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  ({len(latencies)} pictures in {wall:.1f} s)")
    per_picture = cpu * 1000 / max(1, len(latencies))
    figure(f"{label} server CPU, RSS",
           f"{cpu / wall:4.2f} cores busy, {per_picture:5.1f} ms a picture (two free cores: at most"
           f" {2000 / max(per_picture, 1e-3):.0f}/s);"
           f" RSS {mib(rss.before)} -> peak {mib(rss.peak)}"
           f"  (client threads: {(time.process_time() - own_before) / wall:4.2f} cores)")


def rendered_hits(server: Server) -> int:
    """The rendered cache's hits so far (GET /metrics)."""
    text = urllib.request.urlopen(f"http://{server.host}:{server.port}/metrics", timeout=30).read().decode()
    found = re.search(r'^dicomweb_cache_hits_total\{cache="rendered"\} ([0-9.e+]+)$', text, re.M)
    return int(float(found.group(1))) if found else 0


def _goal(kind: str, count: int, slowest: float, p95: float) -> tuple[str | None, bool | None]:
    sessions, rate, latency = GOALS.get(kind, (0, 0.0, None))
    if count != sessions:
        return None, None
    target = f">= {rate:g}/s each" + (f", p95 < {latency:g} ms" if latency else "")
    return target, slowest >= rate and (latency is None or p95 < latency)


def first_pictures(data: Path, series: str, centre: tuple[float, ...]) -> None:
    """The first MPR picture of a series the server has not assembled yet, alone and as the viewer opens MPR."""
    axial = (f"viewpointposition={centre[0]:.3f},{centre[1]:.3f},{centre[2] - 1000:.3f}"
             f"&viewpointlookat={centre[0]:.3f},{centre[1]:.3f},{centre[2]:.3f}&viewpointup=0,-1,0")
    with Server(data) as server:
        start = time.perf_counter()
        status, _, size = RawClient(server.host, server.port).get(
            f"{series}/renderedmpr?{axial}&viewport=512,512&quality=90", JPEG)
        seconds = time.perf_counter() - start
        figure("first MPR picture, series not yet assembled (512x512)", f"{seconds:6.2f} s  ({status}, {size} bytes)",
               f"< {FIRST_PICTURE_S:g} s", seconds < FIRST_PICTURE_S and status == 200)
    with Server(data) as server:
        start = time.perf_counter()
        RawClient(server.host, server.port).get(f"{series}/metadata", {"Accept": "application/dicom+json",
                                                                          "Accept-Encoding": "gzip"})
        metadata = time.perf_counter() - start
        planes = [axial, "orientation=a", "orientation=l"]

        def get(view: str) -> int:
            return RawClient(server.host, server.port).get(
                f"{series}/renderedmpr?{view}&viewport=512,512&quality=90", JPEG)[0]

        with ThreadPoolExecutor(3) as pool:
            statuses = list(pool.map(get, planes))
        seconds = time.perf_counter() - start
        figure("viewer opens MPR: series metadata, then three planes at once",
               f"{seconds:6.2f} s  (metadata {metadata * 1000:.0f} ms; {statuses})")


def full_pictures(server: Server, series: str, centre: tuple[float, ...]) -> None:
    """The picture asked for when a drag stops: full size and quality, warm volume, one at a time."""
    for kind, resource, extra in (("MPR", "renderedmpr", ""), ("3D", "rendered3d", "&renderingmethod=volume_rendered"),
                                  ("3D MIP", "rendered3d", "&renderingmethod=maximum_ip")):
        client = RawClient(server.host, server.port)
        times = []
        for n in range(5):
            view = camera("mpr" if kind == "MPR" else "3d", centre, 37.0 * n + 11, n)
            start = time.perf_counter()
            client.get(f"{series}/{resource}?{view}&viewport=512,512&quality=90{extra}", JPEG)
            times.append((time.perf_counter() - start) * 1000)
        client.close()
        figure(f"{kind} full picture when the drag stops (512x512, q90)",
               f"median {statistics.median(times):6.1f} ms  (best {min(times):.1f} ms, 5 views)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--sessions", default="1,4,8,16", help="comma-separated session counts")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long each drag lasts")
    parser.add_argument("--size", type=int, default=256, help="drag pictures: viewport=SIZE,SIZE")
    parser.add_argument("--quality", type=int, default=50, help="drag pictures: JPEG quality")
    parser.add_argument("--kinds", default="mpr,3d", help="mpr, 3d (volume rendering), 3d-mip")
    parser.add_argument("--skip-cold", action="store_true", help="skip the first-picture figures")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    from volumes import synthetic_ct
    from volumes_http import write_series

    from dicomweb_origin.render.volume import assemble

    with temp_dir(args.keep) as tmp:
        heading(f"Interactive sessions on a {args.rows}x{args.rows}x{args.slices} CT ({machine_line()})")
        slices = synthetic_ct(args.rows, args.slices)
        centre = tuple(float(v) for v in assemble(slices).centre)
        paths, study_uid, series_uid = write_series(slices, tmp / "series")
        del slices
        result = ingest(tmp / "archive", paths)
        figure("ingest (setup)", f"{result.instances} instances in {result.seconds:.1f} s")
        series = f"{ROOT_PATH}/studies/{study_uid}/series/{series_uid}"
        if not args.skip_cold:
            first_pictures(tmp / "archive", series, centre)
        extra = f"viewport={args.size},{args.size}&quality={args.quality}"
        with Server(tmp / "archive", "--log-level", "warning") as server:
            RawClient(server.host, server.port).get(f"{series}/renderedmpr?renderedvolumetricmetadata=yes",
                                                     {"Accept": "application/dicom+json"})  # assemble once
            full_pictures(server, series, centre)
            for kind in args.kinds.split(","):
                heading(f"{kind.upper()} drag sessions: {args.size}x{args.size} q{args.quality}, a new position every"
                        f" {TICK_S * 1000:.0f} ms, latest wins ({machine_line()})")
                for count in (int(n) for n in args.sessions.split(",")):
                    run_sessions(server, series, kind, count, args.seconds, centre, extra)


if __name__ == "__main__":
    main()
