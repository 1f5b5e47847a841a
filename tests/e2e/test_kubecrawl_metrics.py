"""The operator's /metrics on the real control plane: the queue depth a scaler reads is published while a
crawl has zero slaves, and scaling the Crawl through its scale subresource (what KEDA's ScaledObject of
examples/autoscaling does) starts the slaves that drain it.
"""

from __future__ import annotations

import re
import urllib.request
from typing import Any

from tests.e2e.kubecrawl_fixtures import RELEASE_NS, Release, Site, crawl_manifest, crawls_path, wait_phase
from tests.e2e.kubeharness.kube import Kube, condition
from tests.e2e.kubeharness.node import Node
from tests.e2e.kubeharness.procs import wait_until


def operator_metrics(kube: Kube) -> str:
    pods = kube.get(f"/api/v1/namespaces/{RELEASE_NS}/pods")["items"]
    (pod,) = [p for p in pods if condition(p, "Ready") == "True" and not p["metadata"].get("deletionTimestamp")]
    with urllib.request.urlopen(f"http://{pod['status']['podIP']}:8080/metrics", timeout=10) as r:
        return str(r.read().decode())


def gauge(text: str, name: str, **labels: str) -> float | None:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    match = re.search(rf"^{name}\{{{re.escape(want)}\}} (\S+)$", text, re.M)
    return float(match.group(1)) if match else None


def test_queue_depth_is_published_at_zero_slaves_and_scaling_the_crawl_drains_it(
    kube: Kube, node: Node, release: Release, site: Site, namespace: str
) -> None:
    kube.post(crawls_path(namespace), crawl_manifest("scaled", site, replicas=0))
    # Seeded, no slave: the work waits in Redis, and the operator publishes it.
    wait_phase(kube, namespace, "scaled", {"Running"}, timeout=240)
    labels = {"namespace": namespace, "crawl": "scaled"}
    queued = wait_until(
        lambda: (v := gauge(operator_metrics(kube), "kubecrawl_crawl_queued", **labels)) and v,
        timeout=120,
        what="kubecrawl_crawl_queued > 0 with zero slaves",
    )
    assert queued >= 1
    text = operator_metrics(kube)
    assert gauge(text, "kubecrawl_crawl_slaves", **labels) == 0
    assert gauge(text, "kubecrawl_crawl_phase", phase="Running", **labels) == 1
    assert (gauge(text, "kubecrawl_operator_reconciles_total", result="ok") or 0) > 0

    # What a ScaledObject does: PATCH the Crawl's scale subresource.
    scale: dict[str, Any] = kube._do(
        "PATCH", crawls_path(namespace, "scaled") + "/scale", {"spec": {"replicas": 1}}, "application/merge-patch+json"
    )
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 1
    wait_phase(kube, namespace, "scaled", {"Completed"}, timeout=300)
    done = wait_until(
        lambda: (t := operator_metrics(kube)) and gauge(t, "kubecrawl_crawl_phase", phase="Completed", **labels) and t,
        timeout=120,
        what="the Completed phase in the operator's metrics",
    )
    assert gauge(done, "kubecrawl_crawl_queued", **labels) == 0
    assert (gauge(done, "kubecrawl_operator_crawls", phase="Completed") or 0) >= 1
