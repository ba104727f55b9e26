"""The transcoded-frame cache: bounded by bytes, least recently used out first, one transcode per frame."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from dicomweb_origin import cache as cache_module
from dicomweb_origin.cache import BytesCache


def test_the_cache_is_bounded_by_bytes_and_evicts_the_least_recently_used() -> None:
    cache = BytesCache(max_bytes=30)
    cache.put("a", b"x" * 10)
    cache.put("b", b"x" * 10)
    cache.put("c", b"x" * 10)
    assert cache.get("a") is not None  # a is now the most recently used
    cache.put("d", b"x" * 10)
    assert cache.get("b") is None and cache.get("a") is not None
    assert cache.size <= 30
    cache.put("huge", b"x" * 31)  # bigger than the whole cache: not kept, nothing evicted for it
    assert cache.get("huge") is None and cache.get("a") is not None


def test_concurrent_requests_for_one_frame_transcode_it_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests that arrive while the frame is being made wait for that one transcode instead of starting theirs.

    The race is made to happen, not hoped for: the first transcode holds until every latecomer has either parked
    on the cache's wait (seen through an Event that announces its waiters) or got its answer without waiting.
    """
    decided = threading.Semaphore(0)  # released by each latecomer: parked on the wait, or answered already

    class AnnouncedEvent(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            decided.release()
            return super().wait(timeout)

    monkeypatch.setattr(cache_module, "threading", SimpleNamespace(**vars(threading) | {"Event": AnnouncedEvent}))
    cache = BytesCache(max_bytes=1 << 20)
    calls: list[str] = []
    first_started, release_first = threading.Event(), threading.Event()

    def make() -> bytes:
        calls.append(threading.current_thread().name)
        if len(calls) == 1:
            first_started.set()
            release_first.wait(60)
        return b"frame"

    results: list[bytes] = []

    def request() -> None:
        results.append(cache.get_or_make("k", make))
        decided.release()

    threads = [threading.Thread(target=request, name=f"request-{i}") for i in range(4)]
    threads[0].start()
    assert first_started.wait(60)
    for thread in threads[1:]:
        thread.start()
    for _ in threads[1:]:
        assert decided.acquire(timeout=60), "a latecomer neither waited nor answered"
    release_first.set()
    for thread in threads:
        thread.join(60)
    assert results == [b"frame"] * 4
    assert calls == ["request-0"]


def test_a_failed_transcode_does_not_block_the_next_request() -> None:
    cache = BytesCache(max_bytes=1 << 20)

    def failing() -> bytes:
        raise ValueError("corrupt")

    try:
        cache.get_or_make("k", failing)
    except ValueError:
        pass
    assert cache.get_or_make("k", lambda: b"ok") == b"ok"
