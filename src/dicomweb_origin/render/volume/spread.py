"""How one rendering splits its work across threads it does not own: render/ starts no thread of its own.

The use case that runs a rendering owns the CPU (retrieve/lanes.py): it passes a ``Spread`` whose ``map`` runs
the parts on its executor. A rendering splits into at most PARTS runs: numpy releases the GIL on whole-slice
operations, and two threads halve a projection on two cores (benchmarks/volumes.py). Without a ``Spread`` the
parts run one after the other in the caller's thread, and the work is not split at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")
PARTS = 2


class Mapper(Protocol):
    """``work`` over ``items``, the results in the order of the items."""

    def __call__(self, work: Callable[[T], R], items: Sequence[T], /) -> list[R]: ...


def serial(work: Callable[[T], R], items: Sequence[T], /) -> list[R]:
    return [work(item) for item in items]


@dataclass(frozen=True, slots=True)
class Spread:
    """The threads a rendering may share its work with, and how to run parts on them."""

    threads: int = 1
    map: Mapper = serial

    @property
    def parts(self) -> int:
        """How many runs to split the work in."""
        return max(1, min(PARTS, self.threads))


SERIAL = Spread()


def runs(order: range, parts: int) -> list[range]:
    """``order`` in ``parts`` contiguous runs of nearly equal length (none empty)."""
    n = len(order)
    bounds = [n * p // parts for p in range(parts + 1)]
    return [order[bounds[p]:bounds[p + 1]] for p in range(parts) if bounds[p + 1] > bounds[p]]
