"""Liveness, readiness and Prometheus metrics of one crawl process, on ``health_port``.

``/healthz`` answers 200 while the event loop runs and the store answers (Redis PING for slaves);
``/readyz`` 200 once the engine runs and is not stopping; ``/metrics`` is Prometheus text from a
per-process registry: pages, items, errors by kind, in-flight, queue depth, fetch latency histogram.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .backends.base import FRONTIER_TOP, FrontierStatus

log = logging.getLogger(__name__)

_PROBE_TIMEOUT = 2.0
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _StatsCollector(Collector):
    """Exposes the process's :class:`~kubecrawl.stats.Stats` and the last sampled store gauges."""

    def __init__(self, proc: Any) -> None:
        self.proc = proc
        self.queue_depth: int | None = None
        self.crawl_in_flight: int | None = None
        self.frontier: FrontierStatus | None = None

    def collect(self) -> Iterator[Any]:
        counts = self.proc.stats.counts
        for name, key, doc in (
            ("kubecrawl_pages", "pages", "Pages downloaded by this process"),
            ("kubecrawl_items", "items", "Items stored by this process"),
            ("kubecrawl_retries", "retries", "Download retries"),
            ("kubecrawl_bytes", "bytes", "Response body bytes downloaded"),
            ("kubecrawl_requests_filtered", "filtered", "Requests dropped as already seen"),
            ("kubecrawl_items_duplicate", "items_duplicate", "Items not stored again (content seen)"),
        ):
            yield CounterMetricFamily(name, doc, value=counts.get(key, 0))
        errors = CounterMetricFamily("kubecrawl_errors", "Failed requests and callbacks, by kind", labels=["kind"])
        for key, v in sorted(counts.items()):
            if key.startswith("error:"):
                errors.add_metric([key[6:]], v)
        yield errors
        store = self.proc.backend.counters()
        if "round_trips" in store:
            yield CounterMetricFamily(
                "kubecrawl_redis_round_trips", "Redis round trips sent by this process", value=store["round_trips"]
            )
        yield CounterMetricFamily(
            "kubecrawl_rejected", "Hostile or corrupt queue entries rejected", value=store.get("rejected", 0)
        )
        engine = self.proc.engine
        held = engine.snapshot().held if engine is not None else 0
        yield GaugeMetricFamily(
            "kubecrawl_in_flight", "Requests leased by this process and not yet committed", value=held
        )
        if self.queue_depth is not None:
            yield GaugeMetricFamily(
                "kubecrawl_queue_depth", "Requests waiting in the crawl's queue", value=self.queue_depth
            )
        if self.crawl_in_flight is not None:
            yield GaugeMetricFamily(
                "kubecrawl_crawl_in_flight", "Requests leased by any worker of the crawl", value=self.crawl_in_flight
            )
        fr = self.frontier
        if fr is not None:
            yield GaugeMetricFamily(
                "kubecrawl_frontier_hosts", "Download slots with queued or leased requests", value=fr.hosts
            )
            # labelled by slot for the busiest few only (FRONTIER_TOP): bounded cardinality per scrape
            queued = GaugeMetricFamily(
                "kubecrawl_frontier_host_queued", "Requests queued for one of the busiest slots", labels=["slot"]
            )
            leased = GaugeMetricFamily(
                "kubecrawl_frontier_host_in_flight", "Requests leased of one of the busiest slots", labels=["slot"]
            )
            delay = GaugeMetricFamily(
                "kubecrawl_frontier_host_delay_seconds",
                "The delay chosen at the last pop of one of the busiest slots (0: none)",
                labels=["slot"],
            )
            for h in fr.busiest:
                queued.add_metric([h.slot], h.queued)
                leased.add_metric([h.slot], h.in_flight)
                delay.add_metric([h.slot], h.delay or 0.0)
            yield queued
            yield leased
            yield delay


class HealthServer:
    """aiohttp server for ``/healthz``, ``/readyz`` and ``/metrics`` of ``proc`` (a runner.CrawlProcess)."""

    def __init__(self, proc: Any, port: int, host: str = "0.0.0.0") -> None:
        self.proc = proc
        self.port = port
        self.host = host
        self.registry = CollectorRegistry(auto_describe=True)
        self.collector = _StatsCollector(proc)
        self.registry.register(self.collector)
        self.latency = Histogram(
            "kubecrawl_fetch_latency_seconds",
            "Time to download one request (retries and redirects included)",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self.proc.fetch_observers.append(self.latency.observe)
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        if self.port == 0:
            server: Any = site._server  # the only way to learn an ephemeral port
            if server is not None and server.sockets:
                self.port = int(server.sockets[0].getsockname()[1])
        log.info("health and metrics on http://%s:%d/ (healthz, readyz, metrics)", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _store_ok(self) -> tuple[bool, str]:
        try:
            health = await asyncio.wait_for(self.proc.backend.health(), _PROBE_TIMEOUT)
        except Exception as exc:
            return False, f"store unreachable: {exc!r}"
        return health.ok, health.detail

    async def _healthz(self, _request: web.Request) -> web.Response:
        """Alive: the engine has not failed, it commits while it has work, and the store answers."""
        engine = self.proc.engine
        if engine is not None:
            snap = engine.snapshot()
            if snap.fatal:
                return web.Response(status=503, text=f"failed: {snap.fatal}\n")
            stale = self.proc.s.liveness_commit_timeout
            if snap.running and snap.pending and snap.seconds_since_commit > stale:
                return web.Response(
                    status=503,
                    text=f"no commit for {snap.seconds_since_commit:.0f}s with {snap.pending} outcome(s) pending\n",
                )
        ok, why = await self._store_ok()
        return web.Response(status=200 if ok else 503, text=why + "\n")

    async def _readyz(self, _request: web.Request) -> web.Response:
        engine = self.proc.engine
        if engine is None:
            return web.Response(status=503, text="starting\n")
        snap = engine.snapshot()
        if snap.fatal:
            return web.Response(status=503, text=f"failed: {snap.fatal}\n")
        if snap.stopping:
            return web.Response(status=503, text="stopping\n")
        ok, why = await self._store_ok()
        return web.Response(status=200 if ok else 503, text=why + "\n")

    async def _metrics(self, _request: web.Request) -> web.Response:
        backend = self.proc.backend
        try:
            self.collector.queue_depth = await asyncio.wait_for(_one_shot(backend.queued()), _PROBE_TIMEOUT)
            self.collector.crawl_in_flight = await asyncio.wait_for(_one_shot(backend.in_flight()), _PROBE_TIMEOUT)
            self.collector.frontier = await asyncio.wait_for(backend.frontier_status(FRONTIER_TOP), _PROBE_TIMEOUT)
        except Exception as exc:
            log.debug("metrics: store gauges unavailable: %s", exc)
            self.collector.queue_depth = self.collector.crawl_in_flight = self.collector.frontier = None
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _one_shot(coro: Any) -> int:
    return int(await coro)
