"""Where Retrieve's CPU work runs: two bounded lanes, so that light requests never queue behind heavy ones.

Heavy work decodes, renders, transcodes and assembles volumes: one job can take seconds and a busy viewer
sends many. Light work is producing a response from what the index holds (metadata as JSON or XML): a
few milliseconds. With one executor for both, another client's metadata waited 2.3 s behind 8 large
renders. Each lane has threads of its own; which lane a part's production goes to is the use case's
choice (``Part.cost``), never the web layer's. The heavy lane has as many threads as the machine has
cores (``--workers``), so heavy requests share the CPUs and wait for one another; the light lane is as
wide, and nothing heavy ever runs on it.

Each lane says how many jobs wait for a thread and how many run (``queued``, ``running``): the figures
the metrics publish. Blocking I/O (index lookups, blob reads) holds no CPU: it waits in anyio's worker threads
(``blocking``, ``iterate``), never on a lane. Every ``async`` method here may be awaited on the event loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from functools import partial
from typing import Any, ParamSpec, TypeVar

import anyio.to_thread

from .payload import Cost

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")


class Lane(Executor):
    """A fixed number of threads for one kind of work, counting what waits and what runs."""

    def __init__(self, name: str, threads: int) -> None:
        self.name = name
        self.threads = threads
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._queued = 0
        self._running = 0

    @property
    def queued(self) -> int:
        """Jobs waiting for a thread."""
        return self._queued

    @property
    def running(self) -> int:
        """Jobs running now (at most ``threads``)."""
        return self._running

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        started = threading.Event()

        def job() -> T:
            with self._lock:
                self._queued -= 1
                self._running += 1
            started.set()
            try:
                return fn(*args, **kwargs)
            finally:
                with self._lock:
                    self._running -= 1

        def cancelled(future: Future[T]) -> None:
            if future.cancelled() and not started.is_set():  # never ran: it no longer waits either
                with self._lock:
                    self._queued -= 1

        with self._lock:
            self._queued += 1
        future = self._pool.submit(job)
        future.add_done_callback(cancelled)
        return future

    def fan_out(self, work: Callable[[T], R], items: Sequence[T], /) -> list[R]:
        """``work`` over ``items`` from a job of this lane: the first runs here, the others on the lane's threads.

        A part still waiting for a thread when this one gets to it is taken back and run here, so a job waiting
        for its parts never waits for a thread of its own lane (no deadlock however busy the lane), and on a busy
        lane the parts run one after the other instead of adding threads. ``render.volume.Spread.map``.
        """
        futures: list[Future[R]] = []
        try:
            for item in items[1:]:
                futures.append(self.submit(work, item))
        except RuntimeError:  # the lane is shut down: the rest runs here
            pass
        try:
            results = [work(item) for item in items[:1]]
            for future, item in zip(futures, items[1:], strict=False):
                results.append(work(item) if future.cancel() else future.result())
            results += [work(item) for item in items[1 + len(futures):]]
            return results
        finally:
            for future in futures:
                future.cancel()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)


class Lanes:
    """The light and the heavy lane of one application."""

    def __init__(self, workers: int) -> None:
        self.heavy = Lane("heavy", max(workers, 1))
        self.light = Lane("light", max(workers, 2))

    def of(self, cost: Cost) -> Lane:
        return self.heavy if cost is Cost.HEAVY else self.light

    async def run(self, cost: Cost, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run CPU work on the lane of its cost and wait for it without blocking the event loop."""
        return await asyncio.wrap_future(self.of(cost).submit(fn, *args, **kwargs))

    @staticmethod
    async def blocking(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run blocking I/O (index lookups, blob reads, waiting on lanes) in anyio's worker threads."""
        return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs))

    @staticmethod
    async def iterate(chunks: Iterable[T]) -> AsyncIterator[T]:
        """Iterate blocking ``chunks`` (blob reads, parts produced on the lanes) one item per worker-thread trip."""
        iterator = iter(chunks)
        done = object()
        while (item := await anyio.to_thread.run_sync(next, iterator, done)) is not done:
            yield item  # type: ignore[misc]

    def figures(self) -> dict[str, tuple[int, int]]:
        """(queued, running) of each lane by name: what the metrics read."""
        return {lane.name: (lane.queued, lane.running) for lane in (self.light, self.heavy)}

    def shutdown(self, **options: Any) -> None:
        for lane in (self.light, self.heavy):
            lane.shutdown(**options)
