"""Connection slots: who keeps a connection when the server runs short of them.

Every connection holds a slot from its opening to its close. When a new one would pass ``max_connections``,
or its client address already holds ``max_connections_per_client``, the server makes room instead of turning
the newcomer away (uvicorn's ``limit_concurrency`` answered everyone 503 while 1,030 slow uploads or idle
sockets held the slots, ``/health`` included). It closes the connection whose loss costs least:

1. one doing nothing: idle, kept alive between requests, or a request head still arriving (longest first);
2. then a request body arriving slowest (bytes per second so far; bodies younger than ``BODY_GRACE``
   seconds last), whose client gets 503;

among those, first from the client address holding most connections (a per-client excess: only from that
address). A connection whose request is being answered is never closed. Addresses exempted (trusted proxies,
which carry many clients) have no per-client limit.

When nothing can be closed, the newcomer is admitted on probation: it may ask for ``/health`` or ``/ready``
(liveness and readiness probes must not fail because clients crowd the server), anything else gets 503
with ``Retry-After``. Probation is bounded (``PROBE_SLOTS`` above ``max_connections``, its idle holders
displaced first); past that a connection is closed as it opens.
"""

from __future__ import annotations

import enum
import ipaddress
import time
from collections.abc import Callable, Iterable
from typing import Protocol

BODY_GRACE = 2.0  # seconds: a body this young is not judged by its rate yet (the first bytes are on the way)
PROBE_SLOTS = 16  # connections beyond max_connections that may still ask for /health or /ready


class Phase(enum.IntEnum):
    """What a connection is doing, in the order connections are closed to make room."""

    IDLE = 0  # no request in flight: new, kept alive, or a head arriving
    BODY = 1  # a request body arriving, the response not begun
    YOUNG_BODY = 2  # the same, begun less than BODY_GRACE seconds ago


class Holder(Protocol):
    """A connection as the slots see it (server.py's protocol)."""

    @property
    def address(self) -> str: ...

    def standing(self, now: float) -> tuple[Phase, float] | None:
        """Its phase and a measure, lowest first to go (idle: since when; body: bytes/s); None: never close it."""

    def evict(self) -> None:
        """Close the connection to make room (answering 503 where a request is under way)."""


class Admission(enum.Enum):
    FULL = "full"  # an ordinary slot
    PROBATION = "probation"  # /health and /ready only
    REFUSED = "refused"  # closed as it opens


def in_networks(networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> Callable[[str], bool]:
    """Whether a client address is in one of ``networks`` (the exemption of trusted proxies)."""
    listed = tuple(networks)

    def exempt(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in listed)

    return exempt


class Slots:
    """The connection slots of one server; called from its event loop only."""

    def __init__(self, limit: int, per_client: int, exempt: Callable[[str], bool] = lambda address: False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit  # 0: no limit
        self.per_client = per_client  # 0: no limit
        self.exempt = exempt
        self.clock = clock
        self.by_address: dict[str, set[Holder]] = {}
        self.count = 0
        self.probation: set[Holder] = set()
        self.evicted = 0  # connections closed to make room (observable)

    def open(self, holder: Holder) -> Admission:
        """Give ``holder`` a slot, making room if need be; or probation; or nothing."""
        address = holder.address
        mine = self.by_address.get(address, set())
        if self._client_full(address, mine):
            self._evict(mine)
        if self.limit and self.count >= self.limit:
            self._evict(h for held in self.by_address.values() for h in held)
        if not self._client_full(address, mine) and not (self.limit and self.count >= self.limit):
            self.by_address.setdefault(address, set()).add(holder)
            self.count += 1
            return Admission.FULL
        if len(self.probation) >= PROBE_SLOTS:
            self._evict(self.probation, phases=(Phase.IDLE,))
        if len(self.probation) < PROBE_SLOTS:
            self.probation.add(holder)
            return Admission.PROBATION
        return Admission.REFUSED

    def promote(self, holder: Holder) -> bool:
        """Turn probation into a slot if one is free now (without closing anyone for it)."""
        if holder not in self.probation:
            return True
        mine = self.by_address.get(holder.address, set())
        if self._client_full(holder.address, mine) or (self.limit and self.count >= self.limit):
            return False
        self.probation.discard(holder)
        self.by_address.setdefault(holder.address, set()).add(holder)
        self.count += 1
        return True

    def close(self, holder: Holder) -> None:
        """Release the slot of a connection that closed (or was closed); idempotent."""
        self.probation.discard(holder)
        held = self.by_address.get(holder.address)
        if held is not None and holder in held:
            held.discard(holder)
            self.count -= 1
            if not held:
                del self.by_address[holder.address]

    def _client_full(self, address: str, mine: set[Holder]) -> bool:
        return bool(self.per_client) and len(mine) >= self.per_client and not self.exempt(address)

    def _evict(self, candidates: Iterable[Holder], phases: tuple[Phase, ...] = tuple(Phase)) -> None:
        """Close the candidate whose loss costs least (see the module doc), if any may be closed."""
        now = self.clock()
        best: tuple[tuple[Phase, int, float], Holder] | None = None
        for holder in candidates:
            standing = holder.standing(now)
            if standing is None or standing[0] not in phases:
                continue
            phase, measure = standing
            key = (phase, -len(self.by_address.get(holder.address, ())), measure)
            if best is None or key < best[0]:
                best = (key, holder)
        if best is not None:
            victim = best[1]
            self.close(victim)
            self.evicted += 1
            victim.evict()
