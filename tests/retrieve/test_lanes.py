"""Light requests never queue behind heavy work (retrieve/lanes.py): the queues, observed directly.

No timings: the heavy lane is filled with jobs that wait for an event (as long renders would), and the
test asserts what gets answered while it is full (metadata, search, a stored frame, /health) and what
waits its turn (a rendering), through the real application (httpx ASGITransport) and its metrics.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Iterator

import httpx
import pytest

from dicomweb_origin.retrieve import Lanes
from dicomweb_origin.retrieve.lanes import Lane
from tests.support.archive import LoadedArchive
from tests.support.http import BASE_URL, MULTIPART_OCTET, path_of, stow
from tests.support.reference import prepared_bytes

pytestmark = pytest.mark.anyio
ANSWER_WITHIN = 30.0  # seconds: generous; a light request that queued behind the blocked lane never comes


def test_a_lane_counts_what_waits_and_what_runs() -> None:
    lane = Lane("test", 2)
    release = threading.Event()
    try:
        running = [lane.submit(release.wait) for _ in range(2)]
        waiting = [lane.submit(release.wait) for _ in range(3)]
        for _ in range(200):
            if lane.running == 2:
                break
            threading.Event().wait(0.01)
        assert (lane.queued, lane.running) == (3, 2)
        assert waiting[2].cancel()  # a job cancelled before it ran no longer waits
        assert lane.queued == 2
    finally:
        release.set()
        lane.shutdown()
    assert all(f.result() for f in running) and (lane.queued, lane.running) == (0, 0)


@pytest.fixture
def blocked(empty_archive: LoadedArchive) -> Iterator[tuple[LoadedArchive, Lanes, threading.Event]]:
    """An archive with two instances whose heavy lane is busy: every thread waits for the event."""
    ingest = empty_archive.app.state.archive.ingest
    for name in ("CT_small", "MR_small"):
        ingest.store(io.BytesIO(prepared_bytes(name)))
    lanes: Lanes = empty_archive.app.state.archive.lanes
    release = threading.Event()
    started = threading.Barrier(lanes.heavy.threads + 1)

    def long_render() -> None:
        started.wait()
        release.wait()

    jobs = [lanes.heavy.submit(long_render) for _ in range(lanes.heavy.threads)]
    started.wait(10)
    yield empty_archive, lanes, release
    release.set()
    for job in jobs:
        job.result(10)


async def test_light_requests_are_answered_while_the_heavy_lane_is_full(
        blocked: tuple[LoadedArchive, Lanes, threading.Event]) -> None:
    archive, lanes, release = blocked
    light = {  # metadata (produced on the light lane), a search, a stored frame, the liveness probe
        f"/dicomweb/{path_of('CT_small', 'series')}/metadata": "application/dicom+json",
        "/dicomweb/studies?limit=5": "application/dicom+json",
        f"/dicomweb/{path_of('CT_small')}/frames/1": f"{MULTIPART_OCTET}; transfer-syntax=*",
        f"/dicomweb/{path_of('MR_small', 'study')}/metadata": 'multipart/related; type="application/dicom+xml"',
        "/health": "*/*",
    }
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=archive.app), base_url=BASE_URL) as client:
        rendering = asyncio.ensure_future(client.get(f"/dicomweb/{path_of('CT_small')}/rendered",
                                                     headers={"Accept": "image/jpeg"}))
        for path, accept in light.items():
            response = await asyncio.wait_for(client.get(path, headers={"Accept": accept}), ANSWER_WITHIN)
            assert response.status_code == 200, (path, response.text[:300])
        assert not rendering.done()  # the rendering waits its turn on the heavy lane ...
        assert lanes.heavy.queued == 1 and lanes.heavy.running == lanes.heavy.threads
        metrics = (await client.get("/metrics")).text
        assert 'dicomweb_executor_queue_depth{lane="heavy"} 1.0' in metrics
        assert f'dicomweb_executor_running{{lane="heavy"}} {float(lanes.heavy.threads)}' in metrics
        release.set()
        rendered = await asyncio.wait_for(rendering, ANSWER_WITHIN)  # ... and comes once there is room
        assert rendered.status_code == 200 and rendered.content.startswith(b"\xff\xd8")


async def test_a_stows_response_is_made_off_the_event_loop(empty_client: httpx.AsyncClient,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """10,000 parts make a large response (JSON or XML): building it must not stall every other request."""
    from dicomweb_origin import ingest

    threads = []
    original = ingest.render_store_response

    def recording(module: dict[str, object], xml: bool) -> tuple[bytes, str]:
        threads.append(threading.current_thread())
        return original(module, xml)

    monkeypatch.setattr(ingest, "render_store_response", recording)
    response = await stow(empty_client, prepared_bytes("CT_small"))
    assert response.status_code == 200
    assert threads and threads[0] is not threading.main_thread()  # the loop runs on the main thread here
