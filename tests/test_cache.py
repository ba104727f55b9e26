"""The transcoded-frame cache: bounded by bytes, least recently used out first, one transcode per frame."""

from __future__ import annotations

import threading
import time

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


def test_concurrent_requests_for_one_frame_transcode_it_once() -> None:
    cache = BytesCache(max_bytes=1 << 20)
    calls = []

    def make() -> bytes:
        calls.append(1)
        time.sleep(0.2)
        return b"frame"

    results: list[bytes] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get_or_make("k", make))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [b"frame"] * 4
    assert len(calls) == 1


def test_a_failed_transcode_does_not_block_the_next_request() -> None:
    cache = BytesCache(max_bytes=1 << 20)

    def failing() -> bytes:
        raise ValueError("corrupt")

    try:
        cache.get_or_make("k", failing)
    except ValueError:
        pass
    assert cache.get_or_make("k", lambda: b"ok") == b"ok"
