"""The operator's /metrics: pass counters, crawls by phase, every crawl's queue depth (metrics.py, health.py).

Served by the real probe server over HTTP and parsed with prometheus_client's own text parser.
"""

from __future__ import annotations

import socket
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from kubecrawl_operator.health import HealthServer, HealthState
from kubecrawl_operator.metrics import OperatorMetrics


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def meta(name: str, uid: str) -> dict[str, str]:
    return {"name": name, "namespace": "crawls", "uid": uid}


def test_passes_phases_and_queue_depth_per_crawl() -> None:
    m = OperatorMetrics()
    running = {"phase": "Running", "replicas": 3, "stats": {"queued": 1207, "inFlight": 64, "seededRound": 2}}
    m.record_pass(meta("books", "u1"), running, 0.02)
    m.record_pass(meta("news", "u2"), {"phase": "Idle", "replicas": 0, "stats": {"queued": 0, "inFlight": 0}}, 0.3)
    m.record_pass(meta("bad", "u3"), {"phase": "Failed", "conditions": []}, 0.001)  # an invalid spec
    m.record_error(RuntimeError("API down"), 1.5)
    got = samples(m.render().decode())
    assert got[("kubecrawl_operator_reconciles_total", (("result", "ok"),))] == 2
    assert got[("kubecrawl_operator_reconciles_total", (("result", "invalid"),))] == 1
    assert got[("kubecrawl_operator_reconciles_total", (("result", "error"),))] == 1
    assert got[("kubecrawl_operator_reconcile_errors_total", (("error", "RuntimeError"),))] == 1
    assert got[("kubecrawl_operator_reconcile_duration_seconds_count", ())] == 4
    assert got[("kubecrawl_operator_crawls", (("phase", "Running"),))] == 1
    assert got[("kubecrawl_operator_crawls", (("phase", "Idle"),))] == 1
    assert got[("kubecrawl_operator_crawls", (("phase", "Failed"),))] == 1
    assert got[("kubecrawl_operator_crawls", (("phase", "Seeding"),))] == 0
    books = (("crawl", "books"), ("namespace", "crawls"))
    assert got[("kubecrawl_crawl_queued", books)] == 1207
    assert got[("kubecrawl_crawl_in_flight", books)] == 64
    assert got[("kubecrawl_crawl_slaves", books)] == 3
    # the Idle crawl's empty queue is a 0 a scaler can act on, not a missing series
    assert got[("kubecrawl_crawl_queued", (("crawl", "news"), ("namespace", "crawls")))] == 0
    assert ("kubecrawl_crawl_queued", (("crawl", "bad"), ("namespace", "crawls"))) not in got

    # a new pass replaces the crawl's values; a deleted crawl disappears
    m.record_pass(meta("books", "u1"), {**running, "stats": {"queued": 5, "inFlight": 1}}, 0.01)
    m.crawls.forget("u2")
    got = samples(m.render().decode())
    assert got[("kubecrawl_crawl_queued", books)] == 5
    assert ("kubecrawl_crawl_queued", (("crawl", "news"), ("namespace", "crawls"))) not in got
    assert got[("kubecrawl_operator_crawls", (("phase", "Idle"),))] == 0


def test_the_probe_server_serves_metrics_next_to_the_probes() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = HealthServer(f"http://127.0.0.1:{port}/healthz", HealthState()).start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            names = {f.name for f in text_string_to_metric_families(r.read().decode())}
        assert {"kubecrawl_operator_reconciles", "kubecrawl_operator_crawls"} <= names
    finally:
        server.stop()
