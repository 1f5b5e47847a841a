"""Two operator replicas on the real control plane: exactly one holds the Lease and reconciles, the other
stands by (not Ready); when the active pod is deleted, another replica takes the Lease and serves new Crawls.

The chart's release (session fixture) is scaled to two replicas with `helm upgrade` and back to one
afterwards, so the other e2e modules keep seeing one operator pod.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.kubecrawl_fixtures import (
    CHART,
    RELEASE_NS,
    Release,
    Site,
    crawl_manifest,
    crawls_path,
)
from tests.e2e.kubeharness.controlplane import ControlPlane
from tests.e2e.kubeharness.kube import Kube, condition, wait_for
from tests.e2e.kubeharness.node import Node
from tests.e2e.kubeharness.procs import wait_until


def probe(ip: str, path: str, port: int = 8080) -> tuple[int, str]:
    """(status, body) of an operator pod's probe endpoint; (0, error) while nothing listens."""
    try:
        with urllib.request.urlopen(f"http://{ip}:{port}{path}", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, str(exc)


def operator_pods(kube: Kube) -> list[dict[str, Any]]:
    pods = kube.get(f"/api/v1/namespaces/{RELEASE_NS}/pods")["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def ready_names(kube: Kube) -> list[str]:
    return sorted(p["metadata"]["name"] for p in operator_pods(kube) if condition(p, "Ready") == "True")


def the_lease(kube: Kube) -> dict[str, Any]:
    (dep,) = kube.get(f"/apis/apps/v1/namespaces/{RELEASE_NS}/deployments")["items"]
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    (name,) = [a.split("=", 1)[1] for a in args if a.startswith("--leader-elect-name=")]
    return kube.get(f"/apis/coordination.k8s.io/v1/namespaces/{RELEASE_NS}/leases/{name}")  # type: ignore[no-any-return]


def scale(cluster: ControlPlane, replicas: int) -> None:
    cluster.helm(
        "upgrade",
        "kubecrawl",
        str(CHART),
        "--namespace",
        RELEASE_NS,
        "--reuse-values",
        "--set",
        f"operator.replicas={replicas}",
        "--timeout",
        "180s",
    )


@pytest.fixture
def two_replicas(kube_cluster: ControlPlane, kube: Kube, node: Node, release: Release) -> Iterator[None]:
    scale(kube_cluster, 2)
    wait_until(
        lambda: len(operator_pods(kube)) == 2 and len(node.live_pids(RELEASE_NS)) == 2,
        timeout=120,
        what="two operator pods running",
    )
    try:
        yield
    finally:
        scale(kube_cluster, 1)
        wait_until(  # terminating pods included: the next module expects exactly one operator pod
            lambda: (
                len(kube.get(f"/api/v1/namespaces/{RELEASE_NS}/pods")["items"]) == 1 and len(ready_names(kube)) == 1
            ),
            timeout=120,
            what="one Ready operator pod again",
        )


def reconciled(kube: Kube, ns: str, name: str) -> dict[str, Any]:
    return wait_for(  # type: ignore[no-any-return]
        kube,
        crawls_path(ns, name),
        lambda c: (
            (c.get("status") or {}).get("observedGeneration") == c["metadata"]["generation"]
            and (c.get("status") or {}).get("phase")
        ),
        timeout=120,
        what=f"Crawl {name} reconciled",
    )


def test_two_replicas_have_one_active_and_another_takes_over_when_it_is_deleted(
    kube_cluster: ControlPlane, kube: Kube, node: Node, two_replicas: None, site: Site, namespace: str
) -> None:
    # Exactly one replica is Ready (readiness = holds the Lease); it is the Lease's holder.
    (active,) = wait_until(lambda: (r := ready_names(kube)) and len(r) == 1 and r, timeout=120, what="one Ready")  # type: ignore[misc]
    (standby,) = [p["metadata"]["name"] for p in operator_pods(kube) if p["metadata"]["name"] != active]
    assert the_lease(kube)["spec"]["holderIdentity"] == active
    # The standby's own probes (its pod IP is reachable from this host): live, and not ready saying why.
    ip = wait_until(
        lambda: kube.get(f"/api/v1/namespaces/{RELEASE_NS}/pods/{standby}")["status"].get("podIP"),
        timeout=60,
        what="the standby's pod IP",
    )
    # It names the holder once it has read the Lease (its first attempt may have been a lost create).
    code, text = wait_until(
        lambda: (r := probe(str(ip), "/readyz")) and active in r[1] and r, timeout=120, what="the standby's /readyz"
    )  # type: ignore[misc]
    assert (code, text.split(":")[0]) == (503, "standby"), (code, text)
    assert probe(str(ip), "/healthz")[0] == 200, "a standby is live (liveness), only not Ready"
    assert condition(kube.get(f"/api/v1/namespaces/{RELEASE_NS}/pods/{standby}"), "Ready") == "False"

    # The active one reconciles; the standby touches nothing.
    kube.post(crawls_path(namespace), crawl_manifest("before", site, replicas=1))
    reconciled(kube, namespace, "before")
    assert ready_names(kube) == [active]
    assert f"created Secret {namespace}/" not in node.logs(RELEASE_NS, standby)

    # Delete the active pod (SIGTERM: kopf stops, the Lease is released); another replica takes over:
    # the standby, or the Deployment's replacement pod if it stands by first (both wait on the Lease).
    runner = node.runner(RELEASE_NS, active)
    assert runner is not None
    active_log = runner.pod_dir / "operator.log"  # kept after the pod is gone
    kube_cluster.kubectl("delete", "pod", "-n", RELEASE_NS, active, "--wait=false")
    leader = str(
        wait_until(
            lambda: (h := the_lease(kube)["spec"].get("holderIdentity")) not in (None, active) and h,
            timeout=120,
            what="another replica holding the Lease",
        )
    )
    assert leader in {p["metadata"]["name"] for p in operator_pods(kube)}
    wait_until(lambda: leader in ready_names(kube), timeout=120, what=f"{leader} Ready")
    wait_until(lambda: "released lease" in active_log.read_text(errors="replace"), timeout=60, what="the release")
    assert int(the_lease(kube)["spec"].get("leaseTransitions") or 0) >= 1

    # The new leader serves a new Crawl; the replacement pod stands by.
    kube.post(crawls_path(namespace), crawl_manifest("after", site, replicas=1))
    crawl = reconciled(kube, namespace, "after")
    assert crawl["status"]["conditions"]
    assert f"created Secret {namespace}/after-redis-auth" in node.logs(RELEASE_NS, leader)
    wait_until(lambda: len(operator_pods(kube)) == 2, timeout=120, what="the replacement operator pod")
    assert ready_names(kube) == [leader], "exactly one active replica again"
