"""A rendering shares its work with the heavy lane it runs on (retrieve/lanes.py ``Lane.fan_out``), never deadlocks it.

No timings: events and barriers say which thread ran which part, and a lane whose every thread is taken shows that a
job waiting for its parts takes them back instead of waiting for a thread of its own lane.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from dicomweb_origin.render.volume import SERIAL, Spread, Volume, camera_from_triple, mpr
from dicomweb_origin.retrieve.lanes import Lane

WAIT = 30.0  # seconds: generous; a deadlocked lane never answers


@pytest.fixture
def lane() -> Lane:
    lane = Lane("fan-out", 2)
    yield lane
    lane.shutdown(wait=False, cancel_futures=True)


def test_results_come_in_the_order_of_the_items(lane: Lane) -> None:
    assert lane.fan_out(lambda n: n * n, list(range(7))) == [n * n for n in range(7)]
    assert lane.fan_out(lambda n: n, []) == []


def test_an_idle_lane_runs_the_parts_on_two_threads_at_once(lane: Lane) -> None:
    both = threading.Barrier(2, timeout=WAIT)  # passes only when two parts run at the same time

    def part(n: int) -> str:
        both.wait()
        return threading.current_thread().name

    def job() -> list[str]:
        return lane.fan_out(part, [0, 1])

    names = lane.submit(job).result(timeout=WAIT)
    assert len(set(names)) == 2 and all(name.startswith("fan-out") for name in names)


def test_a_job_on_a_full_lane_runs_its_parts_itself() -> None:
    """One thread, taken by the job itself: its second part can only run if the job takes it back."""
    lane = Lane("one", 1)
    try:
        threads: list[str] = []

        def part(n: int) -> int:
            threads.append(threading.current_thread().name)
            return n

        assert lane.submit(lane.fan_out, part, [1, 2, 3]).result(timeout=WAIT) == [1, 2, 3]
        assert len(set(threads)) == 1  # every part on the job's own thread
        assert lane.queued == 0  # nothing left waiting
    finally:
        lane.shutdown(wait=False, cancel_futures=True)  # a deadlocked job is freed, the test fails


def test_a_failing_part_fails_the_job_and_leaves_nothing_queued(lane: Lane) -> None:
    def part(n: int) -> int:
        if n == 2:
            raise ValueError("part 2")
        return n

    with pytest.raises(ValueError, match="part 2"):
        lane.fan_out(part, [0, 1, 2, 3])
    assert lane.queued == 0


def test_a_slab_mpr_is_the_same_on_the_lane_as_in_one_thread(lane: Lane) -> None:
    data = np.random.default_rng(5).integers(0, 2000, (40, 48, 56)).astype(np.int16)
    volume = Volume(data, np.diag([1.0, 1.0, 1.5, 1.0]))
    centre = volume.centre
    camera = camera_from_triple(centre + np.array([-30.0, -40.0, 15.0]), centre, (0.0, 0.0, 1.0))
    for method in ("maximum_ip", "average_ip"):
        serial = mpr(volume, camera, size=(32, 32), slab=12.0, method=method, spread=SERIAL)
        shared = mpr(volume, camera, size=(32, 32), slab=12.0, method=method, spread=Spread(2, lane.fan_out))
        assert np.allclose(serial, shared, atol=1e-3), method
