"""A bounded LRU of bytes (transcoded frames, compressed bodies): what one request made, the next reuses."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class SizedCache(Generic[V]):
    """Thread-safe LRU bounded by the total size of its values, in bytes (``size_of`` measures one)."""

    def __init__(self, max_bytes: int, size_of: Callable[[V], int]) -> None:
        self.max_bytes = max_bytes
        self._size_of = size_of
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self._making: dict[Hashable, threading.Event] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: Hashable, value: V) -> None:
        if self._size_of(value) > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._size -= self._size_of(old)
            self._items[key] = value
            self._size += self._size_of(value)
            while self._size > self.max_bytes:
                _, evicted = self._items.popitem(last=False)
                self._size -= self._size_of(evicted)

    def get_or_make(self, key: Hashable, make: Callable[[], V]) -> V:
        """The cached value, or ``make()`` run once however many requests ask for it at the same time.

        A viewer asks for the frame under the cursor twice (thumbnail and viewport) before the
        first transcode ends: the second waits for the first instead of decoding again.
        """
        value = self.get(key)
        if value is not None:
            return value
        with self._lock:
            event = self._making.get(key)
            owner = event is None
            if event is None:
                event = self._making[key] = threading.Event()
        if not owner:
            event.wait()
            value = self.get(key)
            return value if value is not None else make()  # the first one failed (or was too big to keep)
        try:
            value = make()
            self.put(key, value)
            return value
        finally:
            with self._lock:
                self._making.pop(key, None)
            event.set()

    @property
    def size(self) -> int:
        return self._size

    def __len__(self) -> int:
        return len(self._items)


class BytesCache(SizedCache[bytes]):
    """A ``SizedCache`` of bytes values."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(max_bytes, len)
