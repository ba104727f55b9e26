"""Who keeps a connection when slots run short (slots.py): the policy alone, on stand-in connections.

The same policy on a real server, with real sockets, is in tests/e2e/test_limits.py (slow STOWs and idle sockets).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from dicomweb_origin.slots import PROBE_SLOTS, Admission, Phase, Slots, in_networks

NOW = 1000.0


@dataclass(eq=False)
class Conn:
    """A connection as slots.Holder: its address, what it is doing, and whether it was closed."""

    address: str
    phase: Phase | None = Phase.IDLE  # None: being answered
    measure: float = 0.0  # idle since (IDLE) or bytes/s (BODY)
    evicted: bool = field(default=False)

    def standing(self, now: float) -> tuple[Phase, float] | None:
        return None if self.phase is None else (self.phase, self.measure)

    def evict(self) -> None:
        self.evicted = True


def slots(limit: int = 4, per_client: int = 0) -> Slots:
    return Slots(limit, per_client, clock=lambda: NOW)


def test_room_is_made_by_closing_an_idle_connection_before_a_body() -> None:
    s = slots(limit=3)
    body = Conn("a", Phase.BODY, measure=10.0)
    idle_new, idle_old = Conn("a", Phase.IDLE, NOW - 1), Conn("a", Phase.IDLE, NOW - 5)
    for conn in (body, idle_new, idle_old):
        assert s.open(conn) is Admission.FULL
    assert s.open(Conn("b")) is Admission.FULL
    assert idle_old.evicted and not idle_new.evicted and not body.evicted  # the longest idle goes first
    assert s.count == 3 and s.evicted == 1


def test_the_slowest_body_goes_first_and_young_bodies_last() -> None:
    s = slots(limit=3)
    fast, slow = Conn("a", Phase.BODY, 1e6), Conn("a", Phase.BODY, 1100.0)
    young = Conn("a", Phase.YOUNG_BODY, 0.0)  # no bytes yet, but only just begun
    for conn in (fast, slow, young):
        s.open(conn)
    assert s.open(Conn("b")) is Admission.FULL
    assert slow.evicted and not fast.evicted and not young.evicted


def test_among_equals_the_address_holding_most_connections_loses_one() -> None:
    s = slots(limit=4)
    crowd = [Conn("crowd", Phase.IDLE, NOW) for _ in range(3)]
    lone = Conn("lone", Phase.IDLE, NOW - 100)  # idle longer, but its address holds one connection
    for conn in (*crowd, lone):
        s.open(conn)
    s.open(Conn("new"))
    assert not lone.evicted and sum(c.evicted for c in crowd) == 1


def test_a_connection_being_answered_is_never_closed_and_probes_still_get_in() -> None:
    s = slots(limit=2)
    busy = [Conn("a", None), Conn("a", None)]
    for conn in busy:
        s.open(conn)
    assert s.open(Conn("b", None)) is Admission.PROBATION  # may ask for /health or /ready only
    assert not any(c.evicted for c in busy)
    for _ in range(PROBE_SLOTS - 1):
        assert s.open(Conn("c", None)) is Admission.PROBATION
    assert s.open(Conn("d")) is Admission.REFUSED  # probation is bounded too


def test_idle_probation_is_displaced_by_the_next_newcomer() -> None:
    s = slots(limit=1)
    s.open(Conn("a", None))
    idle = [Conn("x", Phase.IDLE, NOW - i) for i in range(PROBE_SLOTS)]
    for conn in idle:
        assert s.open(conn) is Admission.PROBATION
    assert s.open(Conn("probe", None)) is Admission.PROBATION
    assert sum(c.evicted for c in idle) == 1 and idle[-1].evicted  # the longest idle


def test_probation_becomes_a_slot_when_one_is_free() -> None:
    s = slots(limit=1)
    first, second = Conn("a", None), Conn("b", None)
    s.open(first)
    assert s.open(second) is Admission.PROBATION
    assert not s.promote(second)
    s.close(first)
    assert s.promote(second) and s.count == 1 and not s.probation


def test_a_client_over_its_limit_loses_its_own_connection_not_anothers() -> None:
    s = slots(limit=100, per_client=2)
    other = Conn("other", Phase.IDLE, NOW - 100)
    mine = [Conn("me", Phase.BODY, 5.0), Conn("me", Phase.BODY, 50.0)]
    for conn in (other, *mine):
        s.open(conn)
    assert s.open(Conn("me")) is Admission.FULL
    assert mine[0].evicted and not mine[1].evicted and not other.evicted
    assert len(s.by_address["me"]) == 2


def test_a_trusted_proxy_has_no_per_client_limit() -> None:
    networks = (ipaddress.ip_network("10.0.0.0/24"), ipaddress.ip_network("fd00::1/128"))
    s = Slots(100, 2, in_networks(networks), clock=lambda: NOW)
    proxied = [Conn(address, None) for address in ("10.0.0.1", "fd00::1") for _ in range(10)]
    assert all(s.open(conn) is Admission.FULL for conn in proxied)
    outside = [Conn("10.0.1.1", None) for _ in range(3)]
    assert [s.open(conn) for conn in outside] == [Admission.FULL, Admission.FULL, Admission.PROBATION]
    assert not in_networks(networks)("not an address")


def test_closing_is_idempotent_and_frees_the_slot() -> None:
    s = slots(limit=1)
    conn = Conn("a")
    s.open(conn)
    s.close(conn)
    s.close(conn)
    assert s.count == 0 and not s.by_address
