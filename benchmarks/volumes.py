"""Benchmark the pure volume functions (PS3.18 §10.4.1.1.7-8) on a synthetic 512 x 512 x 300 int16 CT.

    .venv/bin/python benchmarks/volumes.py [--rows 512] [--slices 300] [--repeat 5]

Assembly from single-frame slices (cold), a warm oblique MPR, a 10 mm slab MIP, a 3D MIP, a volume rendering and
the frames of a 36-frame swivel, each 512 x 512, and the volume's memory. Prints figures beside the design targets
(2 CPU cores); asserts nothing. The HTTP end-to-end section builds on ``synthetic_ct`` and ``pure_figures``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import figure, heading, machine_line, mib  # noqa: E402

from dicomweb_origin.render.volume import (  # noqa: E402
    Slice,
    Spread,
    Volume,
    assemble,
    camera_for_orientation,
    camera_from_triple,
    swivel_cameras,
)
from dicomweb_origin.render.volume import mpr as volume_mpr  # noqa: E402
from dicomweb_origin.render.volume import project as volume_project  # noqa: E402
from dicomweb_origin.render.volume import volume_render as volume_rendering  # noqa: E402
from dicomweb_origin.retrieve.lanes import Lane  # noqa: E402

SIZE = (512, 512)


def synthetic_ct(rows: int = 512, slices: int = 300, spacing: float = 0.7, thickness: float = 1.0,
                 seed: int = 1) -> list[Slice]:
    """An int16 CT-like phantom as shuffled axial slices: air, a body of soft tissue, lungs, a spine, ribs."""
    rng = np.random.default_rng(seed)
    half = rows * spacing / 2
    axis = (np.arange(rows) + 0.5) * spacing - half
    x, y = np.meshgrid(axis, axis)
    body = (x / (0.85 * half)) ** 2 + (y / (0.6 * half)) ** 2 < 1
    lungs = (((np.abs(x) - 0.4 * half) / (0.28 * half)) ** 2 + (y / (0.4 * half)) ** 2) < 1
    spine = x ** 2 + (y - 0.35 * half) ** 2 < (0.1 * half) ** 2
    angle = np.arctan2(y, x)
    radius = np.hypot(x / 0.85, y / 0.6)
    out = []
    for n in range(slices):
        z = n * thickness - slices * thickness / 2
        image = np.full((rows, rows), -1000, dtype=np.int16)
        image[body] = 40
        image[body & lungs] = -850
        image[spine] = 700
        rib = body & (np.abs(radius - 0.8 * half) < 0.03 * half) & (np.sin(angle * 9 + z / 8) > 0.6)
        image[rib] = 500 + (n % 7) * 20
        image += rng.integers(-10, 10, size=image.shape, dtype=np.int16)
        position = (-half + spacing / 2, -half + spacing / 2, z)
        out.append(Slice(image + 1024, position, (1.0, 0.0, 0.0, 0.0, 1.0, 0.0), (spacing, spacing),
                         f"instance {n + 1}", 1.0, -1024.0, "1.2.826.0.1.3680043.8.498.1",
                         (1, "MONOCHROME2", rows, rows, 16, 16, 15, 0)))
    order = rng.permutation(slices)
    return [out[i] for i in order]


def timed(function: Callable[[], object], repeat: int) -> tuple[float, float, float]:
    """(median wall ms, best wall ms, median CPU ms of all threads) of ``repeat`` warm calls (one untimed first).

    CPU time is beside wall time because other processes on a shared machine stretch the wall clock.
    """
    function()
    walls, cpus = [], []
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        function()
        walls.append((time.perf_counter() - start) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    return statistics.median(walls), min(walls), statistics.median(cpus)


def ms_figure(label: str, median: float, best: float, cpu: float, target_ms: float | None = None) -> None:
    value = f"median {median:8.1f} ms  best {best:8.1f} ms  cpu {cpu:8.1f} ms"
    if target_ms is None:
        figure(label, value)
    else:
        figure(label, value, f"< {target_ms:g} ms", median < target_ms)


def pure_figures(rows: int, slices: int, repeat: int) -> Volume:
    """The pure-function figures; returns the volume for further sections.

    The renderings share their work with a lane of the machine's cores, as the server's heavy lane does.
    """
    heading(f"volume functions, synthetic {rows}x{rows}x{slices} int16 CT ({machine_line()})")
    lane = Lane("bench", os.cpu_count() or 2)
    spread = Spread(lane.threads, lane.fan_out)
    mpr = partial(volume_mpr, spread=spread)
    project = partial(volume_project, spread=spread)
    volume_render = partial(volume_rendering, spread=spread)
    frames = synthetic_ct(rows, slices)
    start, cpu = time.perf_counter(), time.process_time()
    volume = assemble(frames)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    figure(f"assembly from {slices} shuffled slices, cold", f"{seconds * 1000:8.1f} ms  cpu {cpu * 1000:.0f} ms",
           "< 3000 ms", seconds < 3)
    del frames
    figure("Volume.nbytes (voxels + reduced rendering level)", mib(volume.nbytes))
    centre = volume.centre
    oblique = camera_from_triple(centre + np.array([-300.0, -400.0, 150.0]), centre, (0.0, 0.0, 1.0))
    front = camera_for_orientation("a", volume)
    ms_figure("oblique MPR 512x512, warm", *timed(lambda: mpr(volume, oblique, size=SIZE), repeat), 50)
    ms_figure("axial MPR 512x512, warm", *timed(lambda: mpr(volume, camera_for_orientation("h", volume),
                                                            size=SIZE), repeat))
    ms_figure("oblique 10 mm slab MIP 512x512", *timed(lambda: mpr(volume, oblique, size=SIZE, slab=10.0,
                                                                   method="maximum_ip"), repeat))
    ms_figure("3D MIP 512x512, anterior", *timed(lambda: project(volume, front, "maximum_ip", size=SIZE),
                                                 repeat), 300)
    ms_figure("3D MIP 512x512, oblique", *timed(lambda: project(volume, oblique, "maximum_ip", size=SIZE),
                                                repeat), 300)
    start = time.perf_counter()
    volume_render(volume, front, modality="CT", size=SIZE)
    figure("volume rendering 512x512, first (makes the reduced level)",
           f"{(time.perf_counter() - start) * 1000:8.1f} ms")
    ms_figure("volume rendering 512x512, anterior", *timed(lambda: volume_render(volume, front, modality="CT",
                                                                                 size=SIZE), repeat), 1000)
    ms_figure("volume rendering 512x512, oblique", *timed(lambda: volume_render(volume, oblique, modality="CT",
                                                                                size=SIZE), repeat), 1000)
    cameras = swivel_cameras(front, 360.0, 10.0)
    for name, render in (("volume-rendered", lambda c: volume_render(volume, c, modality="CT", size=SIZE)),
                         ("MIP", lambda c: project(volume, c, "maximum_ip", size=SIZE))):
        start, cpu = time.perf_counter(), time.process_time()
        for camera in cameras:
            render(camera)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        figure(f"swivel: {len(cameras)} {name} frames 512x512 (no encoding)",
               f"{seconds * 1000:8.1f} ms ({seconds * 1000 / len(cameras):.0f} ms a frame, cpu {cpu * 1000:.0f} ms)")
    figure("Volume.nbytes after rendering", mib(volume.nbytes))
    lane.shutdown()
    return volume


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-http", action="store_true", help="skip the end-to-end section (volumes_http.py)")
    args = parser.parse_args()
    pure_figures(args.rows, args.slices, args.repeat)
    if not args.no_http:
        from volumes_http import http_figures

        http_figures(args.rows, args.slices)


if __name__ == "__main__":
    main()
