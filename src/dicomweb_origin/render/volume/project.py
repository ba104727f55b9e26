"""Orthographic intensity projections (PS3.18 §8.3.5.3.3): maximum_ip, minimum_ip, average_ip.

Each ray combines the trilinear samples of the volume it crosses, one per slice along the principal axis (see
``shear``). A ray that misses the volume shows the volume's minimum (black after windowing).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np

from ...errors import BadRequest
from .geometry import Camera, Volume, resolve_size
from .shear import Shear, plan_for

PROJECTIONS = ("maximum_ip", "minimum_ip", "average_ip")
# numpy releases the GIL on whole-slice operations: two threads halve a projection on two cores.
WORKERS = max(1, min(2, os.cpu_count() or 1))
T = TypeVar("T")


def _chunks(order: range, parts: int) -> list[range]:
    n = len(order)
    bounds = [n * p // parts for p in range(parts + 1)]
    return [order[bounds[p]:bounds[p + 1]] for p in range(parts) if bounds[p + 1] > bounds[p]]


def run_chunks(shear: Shear, work: Callable[[range], T]) -> list[T]:
    """``work`` over the slices front to back, split in WORKERS contiguous runs (results in front-to-back order)."""
    chunks = _chunks(shear.order(), WORKERS if shear.count >= 16 else 1)
    if len(chunks) == 1:
        return [work(chunks[0])]
    with ThreadPoolExecutor(len(chunks)) as pool:
        return list(pool.map(work, chunks))


def _project(volume: Volume, shear: Shear, method: str) -> np.ndarray:
    """The intermediate image of a projection, stored units, background where no ray sample fell."""
    data = volume.data
    lo = np.float32(volume.stored_range()[0])

    def work(slices: range) -> tuple[np.ndarray, np.ndarray | None]:
        if method == "maximum_ip":
            acc = np.full(shear.shape, -np.inf, dtype=np.float32)
        elif method == "minimum_ip":
            acc = np.full(shear.shape, np.inf, dtype=np.float32)
        else:
            acc = np.zeros(shear.shape, dtype=np.float32)
        count = np.zeros(shear.shape, dtype=np.int32) if method == "average_ip" else None
        source = shear.reader(data)
        for n in slices:
            found = shear.resampled(source, n)
            if found is None:
                continue
            (a, b, c, d), block = found
            target = acc[a:b, c:d]
            if method == "maximum_ip":
                np.maximum(target, block, out=target)
            elif method == "minimum_ip":
                np.minimum(target, block, out=target)
            else:
                target += block
                assert count is not None
                count[a:b, c:d] += 1
        return acc, count

    parts = run_chunks(shear, work)
    acc, count = parts[0]
    for other, other_count in parts[1:]:
        if method == "maximum_ip":
            np.maximum(acc, other, out=acc)
        elif method == "minimum_ip":
            np.minimum(acc, other, out=acc)
        else:
            acc += other
            assert count is not None and other_count is not None
            count += other_count
    if method == "average_ip":
        assert count is not None
        hit = count > 0
        acc = np.where(hit, acc / np.maximum(count, 1), lo).astype(np.float32)
    else:
        acc[~np.isfinite(acc)] = lo
    return acc


def project(volume: Volume, camera: Camera, method: str, *, size: tuple[int, int] | None = None,
            spacing: float | None = None) -> np.ndarray:
    """An orthographic MIP / MinIP / AvgIP of the whole volume, float32 (rows, cols) modality values."""
    if method not in PROJECTIONS:
        raise BadRequest(f"renderingmethod {method!r} is no projection; use one of {', '.join(PROJECTIONS)}")
    size, spacing = resolve_size(volume, camera, "project", size, spacing)
    shear = plan_for(volume, camera, size, spacing)
    intermediate = _project(volume, shear, method)
    lo = volume.stored_range()[0]
    return volume.to_modality(shear.warp(intermediate, size, lo))
