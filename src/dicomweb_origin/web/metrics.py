"""Prometheus metrics of one application, in a registry of its own (tests build many applications).

Requests are labelled by the kind of resource they were routed to (``ResourceRoute.resource``: ``frames``,
``metadata``, ... or ``health``, ``other``), never by path, so the number of series stays bounded. Caches,
ingest outcomes and the CPU lanes' queues (retrieve/lanes.py) are read when Prometheus scrapes, from the objects
that own them.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..cache import BytesCache

__all__ = ["CONTENT_TYPE", "Metrics", "Observed"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Seconds: a cached frame takes a millisecond, a cold rendered GIF or a study retrieve seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass
class Observed:
    """What the scrape reads from the application's parts: named caches, ingest outcomes, the CPU lanes."""

    caches: Mapping[str, BytesCache] = field(default_factory=dict)
    outcomes: Tally[str] = field(default_factory=Tally)
    lanes: Callable[[], Mapping[str, tuple[int, int]]] = dict  # lane -> (jobs waiting, jobs running)


class _Collector(Collector):
    def __init__(self, observed: Observed) -> None:
        self.observed = observed

    def collect(self) -> Iterator[Metric]:
        hits = CounterMetricFamily("dicomweb_cache_hits", "Cache lookups that found the value", labels=["cache"])
        misses = CounterMetricFamily("dicomweb_cache_misses", "Cache lookups that did not", labels=["cache"])
        size = GaugeMetricFamily("dicomweb_cache_size_bytes", "Bytes held by the cache", labels=["cache"])
        limit = GaugeMetricFamily("dicomweb_cache_limit_bytes", "Most bytes the cache may hold", labels=["cache"])
        for name, cache in self.observed.caches.items():
            hits.add_metric([name], cache.hits)
            misses.add_metric([name], cache.misses)
            size.add_metric([name], cache.size)
            limit.add_metric([name], cache.max_bytes)
        yield from (hits, misses, size, limit)
        outcomes = CounterMetricFamily("dicomweb_instances", "Instances offered to STOW-RS, by outcome",
                                       labels=["outcome"])
        for outcome in ("stored", "already present", "failed"):
            outcomes.add_metric([outcome.replace(" ", "_")], self.observed.outcomes.get(outcome, 0))
        yield outcomes
        queued = GaugeMetricFamily("dicomweb_executor_queue_depth", "CPU jobs waiting for a thread of their lane",
                                   labels=["lane"])
        running = GaugeMetricFamily("dicomweb_executor_running", "CPU jobs running on their lane", labels=["lane"])
        for lane, (waiting, busy) in self.observed.lanes().items():
            queued.add_metric([lane], waiting)
            running.add_metric([lane], busy)
        yield from (queued, running)


class Metrics:
    """The counters and histograms the access middleware feeds, and the scrape."""

    def __init__(self, observed: Observed) -> None:
        self.observed = observed
        self.registry = CollectorRegistry()
        self.requests = Counter("dicomweb_requests", "HTTP requests answered, by resource kind, method and status",
                                ["resource", "method", "status"], registry=self.registry)
        self.latency = Histogram("dicomweb_request_duration_seconds", "Time from request to the last byte sent",
                                 ["resource"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.sent = Counter("dicomweb_response_bytes", "Response body bytes sent, by resource kind",
                            ["resource"], registry=self.registry)
        self.registry.register(_Collector(observed))

    def observe(self, resource: str, method: str, status: int, seconds: float, sent: int) -> None:
        method = method if method in _METHODS else "other"
        self.requests.labels(resource, method, str(status)).inc()
        self.latency.labels(resource).observe(seconds)
        self.sent.labels(resource).inc(sent)

    def scrape(self) -> bytes:
        return generate_latest(self.registry)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})
