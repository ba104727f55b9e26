"""What every Retrieve resource returns: a target, parts and a payload, and their small helpers.

Framework-free: the web layer parses the request into a ``Target`` and writes the ``Payload``.
Parts whose bytes need work (transcoding, rendering) have ``length`` None until produced.
"""

from __future__ import annotations

import enum
import hashlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ..model import check_uid

Body = Callable[[int, int | None], Iterator[bytes]]  # (offset, length) within the part -> chunks
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Target:
    """A study, series or instance named by the request path; UIDs already validated."""

    study_uid: str
    series_uid: str | None = None
    instance_uid: str | None = None

    @classmethod
    def parse(cls, study: str, series: str | None = None, instance: str | None = None) -> Target:
        return cls(
            check_uid(study, "Study Instance"),
            None if series is None else check_uid(series, "Series Instance"),
            None if instance is None else check_uid(instance, "SOP Instance"),
        )

    @property
    def single(self) -> bool:
        return self.instance_uid is not None

    @property
    def path(self) -> str:
        """The resource path below the DICOMweb root."""
        path = f"/studies/{self.study_uid}"
        if self.series_uid is not None:
            path += f"/series/{self.series_uid}"
        return path + (f"/instances/{self.instance_uid}" if self.instance_uid is not None else "")


class Cost(enum.Enum):
    """How much CPU producing a part takes, so where it is produced (lanes.py)."""

    LIGHT = "light"  # from what the index holds (metadata as JSON or XML): milliseconds
    HEAVY = "heavy"  # decoding, rendering, transcoding, volumes: up to seconds


@dataclass(slots=True)
class Part:
    """One representation: its Content-Type, Content-Location and bytes."""

    media_type: str
    location: str | None
    length: int | None  # None until produced (transcoded or rendered parts)
    body: Body
    cost: Cost = Cost.HEAVY  # of producing a part of unknown length
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def read_all(self) -> bytes:
        return b"".join(self.body(0, None))

    def materialize(self) -> None:
        """Produce a part of unknown length now (once, whichever thread asks first)."""
        with self._lock:
            if self.length is None:
                data = self.read_all()
                self.body, self.length = bytes_body(data), len(data)


@dataclass(slots=True)
class Payload:
    parts: list[Part]
    multipart_type: str | None  # the ``type`` of multipart/related, or None for a single-part response
    etag: str
    omitted: int = 0  # items that could not be represented: 206 (Table 10.4.3-1)
    vary: tuple[str, ...] = field(default=("Accept",))
    warnings: tuple[str, ...] = ()  # Warning header texts (e.g. unsupported annotation values, §8.3.5.1.1)


def etag(*items: object) -> str:
    """A strong validator naming everything that shapes a representation's bytes."""
    digest = hashlib.sha256("\x1f".join(map(str, items)).encode()).hexdigest()[:32]
    return f'"{digest}"'


def with_syntax(media_type: str, syntax: str) -> str:
    return f"{media_type}; transfer-syntax={syntax}"


def bytes_body(data: bytes) -> Body:
    def body(offset: int, length: int | None) -> Iterator[bytes]:
        yield data[offset:] if length is None else data[offset : offset + length]

    return body


def lazy_body(make: Callable[[], bytes]) -> Body:
    """A body produced by ``make`` when first read (each read calls it: wrap it in ``Once`` to share)."""

    def body(offset: int, length: int | None) -> Iterator[bytes]:
        yield from bytes_body(make())(offset, length)

    return body


class Once(Generic[T]):
    """A value computed on first use, once, whichever thread asks first."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._value: T | None = None
        self._done = False
        self._lock = threading.Lock()

    def __call__(self) -> T:
        with self._lock:
            if not self._done:
                self._value, self._done = self._make(), True
            return self._value  # type: ignore[return-value]
