"""The operator's Prometheus metrics, served at `/metrics` on the probe port (health.py).

Counters of passes and their outcome, and per-crawl gauges from each pass's status: the phase and the
crawl's work as read from its Redis (queued and in-flight requests). `kubecrawl_crawl_queued` is what a
KEDA ScaledObject or an HPA with an external metric scales a Crawl's slaves on (docs/operator.md,
"Autoscaling"): it is published even while the slaves are scaled to zero, which the slaves' own
`kubecrawl_queue_depth` cannot be.

Only the active replica reconciles, so only it has per-crawl series; a standby serves the counters at 0.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from kubecrawl_operator.crd import PHASES

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class CrawlSample:
    namespace: str
    name: str
    phase: str
    stats: Mapping[str, Any]
    replicas: int


class _CrawlCollector(Collector):
    """Gauges from the last pass of every Crawl this replica serves (a deleted Crawl is forgotten)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._crawls: dict[str, CrawlSample] = {}

    def record(self, uid: str, sample: CrawlSample) -> None:
        with self._lock:
            self._crawls[uid] = sample

    def forget(self, uid: str) -> None:
        with self._lock:
            self._crawls.pop(uid, None)

    def clear(self) -> None:
        with self._lock:
            self._crawls.clear()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            samples = list(self._crawls.values())
        by_phase = GaugeMetricFamily("kubecrawl_operator_crawls", "Crawls served, by phase", labels=["phase"])
        for phase in PHASES:
            by_phase.add_metric([phase], sum(1 for s in samples if s.phase == phase))
        yield by_phase
        gauges = {
            "queued": GaugeMetricFamily(
                "kubecrawl_crawl_queued", "Requests waiting in the crawl's queue", labels=["namespace", "crawl"]
            ),
            "inFlight": GaugeMetricFamily(
                "kubecrawl_crawl_in_flight", "Requests leased by a worker", labels=["namespace", "crawl"]
            ),
            "seededRound": GaugeMetricFamily(
                "kubecrawl_crawl_seeded_round", "Last round a master finished seeding", labels=["namespace", "crawl"]
            ),
        }
        slaves = GaugeMetricFamily("kubecrawl_crawl_slaves", "Slave pods now", labels=["namespace", "crawl"])
        info = GaugeMetricFamily(
            "kubecrawl_crawl_phase", "1 for the crawl's current phase", labels=["namespace", "crawl", "phase"]
        )
        for s in samples:
            for key, family in gauges.items():
                if key in s.stats:
                    family.add_metric([s.namespace, s.name], float(s.stats[key]))
            slaves.add_metric([s.namespace, s.name], s.replicas)
            info.add_metric([s.namespace, s.name, s.phase], 1)
        yield from gauges.values()
        yield slaves
        yield info


class OperatorMetrics:
    """One registry per process (not the global one: tests run several operators in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.reconciles = Counter(
            "kubecrawl_operator_reconciles",
            "Reconcile passes, by result: ok, invalid (the spec needs a fix), error (an exception; retried)",
            ["result"],
            registry=self.registry,
        )
        self.errors = Counter(
            "kubecrawl_operator_reconcile_errors",
            "Passes that raised, by exception type (the next pass retries)",
            ["error"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "kubecrawl_operator_reconcile_duration_seconds",
            "Wall time of one reconcile pass",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        for result in ("ok", "invalid", "error"):
            self.reconciles.labels(result)  # present at 0 from the start
        self.crawls = _CrawlCollector()
        self.registry.register(self.crawls)

    def record_pass(self, meta: Mapping[str, Any], status: Mapping[str, Any], seconds: float) -> None:
        invalid = status.get("phase") == "Failed" and "replicas" not in status  # an invalid spec changes no child
        self.reconciles.labels("invalid" if invalid else "ok").inc()
        self.duration.observe(seconds)
        self.crawls.record(
            str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}"),
            CrawlSample(
                namespace=str(meta.get("namespace", "")),
                name=str(meta.get("name", "")),
                phase=str(status.get("phase", "")),
                stats=dict(status.get("stats") or {}),
                replicas=int(status.get("replicas") or 0),
            ),
        )

    def record_error(self, exc: BaseException, seconds: float) -> None:
        self.reconciles.labels("error").inc()
        self.errors.labels(type(exc).__name__).inc()
        self.duration.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


#: The process's metrics (the handlers record into it, the probe server renders it).
METRICS = OperatorMetrics()
