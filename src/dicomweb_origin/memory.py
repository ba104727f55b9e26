"""The memory one request may use, and giving memory back to the system after large work.

Every request that decodes, renders, transcodes or assembles a volume estimates the memory its work needs before it
starts and is refused with 413 naming the limit when that is more than ``Settings.max_request_memory_bytes``
(``--max-request-memory-mb``); the work itself is laid out so that the estimate stays small whatever the stored
data (frames one at a time, outputs spooled to disk, volumes filled in place). The estimates are calibrated by
``benchmarks/memory.py``, which measures each probe's peak.

glibc keeps what a thread freed in that thread's arena, and after a large render a process may hold gigabytes it no
longer uses; ``release`` hands the free pages back (``malloc_trim``) once large work is over.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
import time
from pathlib import Path

from .errors import PayloadTooLarge

MIB = 1 << 20
MIN_DEFAULT_BUDGET = 256 * MIB
DEFAULT_SHARE = 16  # the default budget of one request: a sixteenth of the machine (1.5 GB of 24 GB)
LARGE_WORK = 8 * MIB  # work estimated at this or more is followed by ``release``
_TRIM_INTERVAL_S = 1.0


def physical_memory() -> int:
    """Bytes of memory this process may use: the machine's, or its cgroup's limit when that is lower."""
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for limit_file in (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes")):
        try:
            text = limit_file.read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return int(total)


def default_request_budget() -> int:
    """The default ``--max-request-memory-mb``: a sixteenth of the memory this process may use, at least 256 MiB."""
    return max(MIN_DEFAULT_BUDGET, physical_memory() // DEFAULT_SHARE // MIB * MIB)


def mib(size: int) -> str:
    """A size for messages, in MiB."""
    return f"{size / MIB:,.0f} MiB" if size >= 10 * MIB else f"{size / MIB:.1f} MiB"


def check(needed: int, budget: int, what: str) -> None:
    """Refuse work estimated to need more than ``budget`` bytes: 413 naming what, how much and the limit."""
    if needed > budget:
        raise PayloadTooLarge(f"{what} would need about {mib(needed)} of memory; this server gives one request at"
                              f" most {mib(budget)} (--max-request-memory-mb)")


class _Trimmer:
    """``malloc_trim(0)`` of glibc, at most once a second; a no-op where there is no glibc."""

    def __init__(self) -> None:
        self._function = None
        name = ctypes.util.find_library("c")
        if name is not None:
            try:
                self._function = ctypes.CDLL(name).malloc_trim
            except (OSError, AttributeError):  # musl, macOS: no malloc_trim
                self._function = None
        self._lock = threading.Lock()
        self._last = 0.0
        self._pending: threading.Timer | None = None

    def __call__(self, force: bool = False) -> bool:
        """Trim now, or (within a second of the last trim) once that second is over; True when trimmed now."""
        if self._function is None:
            return False
        with self._lock:
            now = time.monotonic()
            if not force and now - self._last < _TRIM_INTERVAL_S:
                if self._pending is None:  # work ended just after a trim: its memory is returned a moment later
                    self._pending = threading.Timer(_TRIM_INTERVAL_S, self._deferred)
                    self._pending.daemon = True
                    self._pending.start()
                return False
            self._last = now
        self._function(0)
        return True

    def _deferred(self) -> None:
        with self._lock:
            self._pending = None
        self(force=True)


_trim = _Trimmer()


def release(work_bytes: int = LARGE_WORK, force: bool = False) -> None:
    """Give the free pages of the allocator back to the system after work of about ``work_bytes``.

    Small work leaves nothing worth returning; large work (a volume, an animation, a whole-instance transcode)
    leaves arenas of freed pages that glibc would otherwise keep for the life of the process.
    """
    if work_bytes >= LARGE_WORK or force:
        _trim(force)
