"""Steady state on the real control plane: once a crawl is quiet, the operator's passes only read.

Checked on the API server's audit log (every request of the operator's ServiceAccount): after the crawl
is Completed and its stats no longer change, several reconcile passes happen (each reads the slave
Deployment) and none of them writes anything in the crawl's namespace. Before the fix the Redis Service
was PATCHed on every pass (`publishNotReadyAddresses: false` is never stored, so it always looked drifted).
"""

from __future__ import annotations

from tests.e2e.kubecrawl_fixtures import Release, Site, crawl_manifest, crawls_path, wait_phase
from tests.e2e.kubeharness.controlplane import ControlPlane
from tests.e2e.kubeharness.kube import Kube, wait_for
from tests.e2e.kubeharness.node import Node
from tests.e2e.kubeharness.procs import wait_until

WRITES = {"create", "update", "patch", "delete", "deletecollection"}
PASSES = 5


def test_kubectl_waits_for_a_one_shot_crawl_to_complete_then_quiet_passes_write_nothing(
    kube_cluster: ControlPlane, kube: Kube, node: Node, release: Release, site: Site, namespace: str
) -> None:
    kube.post(crawls_path(namespace), crawl_manifest("quiet", site, replicas=1))
    # What a user (or a CI pipeline) runs: returns once the crawl's Complete condition is True.
    done = kube_cluster.kubectl(
        "wait", "--for=condition=Complete", "crawl/quiet", "-n", namespace, "--timeout=300s", timeout=330
    )
    assert "condition met" in done.stdout, done.stdout + done.stderr
    wait_phase(kube, namespace, "quiet", {"Completed"}, timeout=60)
    # Quiet: Completed, slaves scaled to zero and gone, the download rate decayed to zero.
    wait_for(
        kube,
        crawls_path(namespace, "quiet"),
        lambda c: (
            c["status"].get("readyReplicas") == 0
            and c["status"].get("replicas") == 0
            and (c["status"].get("stats") or {}).get("pagesPerMin") == 0
        ),
        timeout=180,
        what="a quiet crawl",
    )

    def calls() -> list:  # type: ignore[type-arg]
        return [c for c in release.cluster.audit_log.calls(release.sa_user) if c.namespace == namespace]

    def passes(log: list) -> int:  # type: ignore[type-arg]
        return sum(1 for c in log if c.verb == "get" and c.resource == "deployments")

    before = calls()
    wait_until(lambda: passes(calls()[len(before) :]) >= PASSES, timeout=120, what=f"{PASSES} reconcile passes")
    window = calls()[len(before) :]
    writes = sorted({(c.verb, c.resource, c.subresource) for c in window if c.verb in WRITES})
    assert writes == [], f"a quiet pass wrote: {writes}"
    reads = sorted({(c.verb, c.resource) for c in window})
    assert ("get", "services") in reads and ("get", "statefulsets") in reads, reads
