"""Crawls in a namespace with a ResourceQuota on the real control plane (quota admission + the
resourcequota controller): the operator's default requests/limits get every pod admitted, and pods the
quota refuses make the Crawl `Degraded=True, FailedCreate` with the API server's own message."""

from __future__ import annotations

from typing import Any

from tests.e2e.kubecrawl_fixtures import (
    Release,
    Site,
    crawl_manifest,
    crawls_path,
    redis_for,
    stored_items,
    wait_phase,
)
from tests.e2e.kubeharness.kube import Kube, wait_for
from tests.e2e.kubeharness.node import Node

#: Room for one crawl with the default resources (Redis + seed + 2 slaves: 3Gi of memory limits).
HARD = {
    "requests.cpu": "2",
    "requests.memory": "2Gi",
    "limits.cpu": "8",
    "limits.memory": "4Gi",
    "pods": "10",
}


def quota(kube: Kube, ns: str) -> None:
    kube.post(
        f"/api/v1/namespaces/{ns}/resourcequotas",
        {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "compute"}, "spec": {"hard": HARD}},
    )
    # Admission enforces a quota only once the resourcequota controller has computed its status.
    wait_for(
        kube,
        f"/api/v1/namespaces/{ns}/resourcequotas/compute",
        lambda q: set((q.get("status") or {}).get("hard") or {}) == set(HARD),
        timeout=60,
        what="the quota's status",
    )


def degraded(crawl: dict[str, Any]) -> dict[str, Any] | None:
    conditions = (crawl.get("status") or {}).get("conditions") or []
    found = next((c for c in conditions if c["type"] == "Degraded" and c["status"] == "True"), None)
    return found


def test_a_crawl_with_default_resources_runs_to_completion_in_a_quotad_namespace(
    kube: Kube, node: Node, release: Release, site: Site, namespace: str
) -> None:
    quota(kube, namespace)
    kube.post(crawls_path(namespace), crawl_manifest("books", site, replicas=2))
    wait_phase(kube, namespace, "books", {"Completed"}, timeout=300)
    items = stored_items(redis_for(kube, node, namespace, "books"), "books")
    assert sorted(i["url"] for i in items) == sorted(f"{site.base}{p}" for p in site.pages)
    # Every pod of the crawl counted against the quota, i.e. carried requests and limits.
    used = kube.get(f"/api/v1/namespaces/{namespace}/resourcequotas/compute")["status"]["used"]
    assert used.get("limits.memory") not in (None, "0")
    pods = kube.get(f"/api/v1/namespaces/{namespace}/pods")["items"]
    assert pods
    for pod in pods:
        for c in pod["spec"]["containers"]:
            assert {"cpu", "memory"} <= set(c["resources"]["limits"]), pod["metadata"]["name"]
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]), pod["metadata"]["name"]
    redis_pod = next(p for p in pods if p["metadata"]["labels"]["app.kubernetes.io/component"] == "redis")
    command = redis_pod["spec"]["containers"][0]["command"]
    assert command[-2:] == ["--maxmemory", str(512 * 1024 * 1024 * 3 // 4)]
    info = redis_for(kube, node, namespace, "books").config_get("maxmemory*")
    assert info["maxmemory"] == str(512 * 1024 * 1024 * 3 // 4)
    assert info["maxmemory-policy"] == "noeviction"


def test_a_redis_the_quota_refuses_makes_the_crawl_degraded_until_it_fits(
    kube: Kube, node: Node, release: Release, site: Site, namespace: str
) -> None:
    quota(kube, namespace)
    manifest = crawl_manifest("big", site, replicas=1, redis={"resources": {"limits": {"memory": "8Gi"}}})
    kube.post(crawls_path(namespace), manifest)
    crawl = wait_for(kube, crawls_path(namespace, "big"), degraded, timeout=120, what="Degraded=True")
    cond = degraded(crawl)
    assert cond is not None and cond["reason"] == "FailedCreate", cond
    # The quota admission plugin's words, passed through.
    assert "StatefulSet big-redis cannot create pods" in cond["message"], cond
    assert "exceeded quota: compute" in cond["message"], cond
    ready = next(c for c in crawl["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "FailedCreate")

    # Fit it into the quota: the StatefulSet creates its pod and the condition clears.
    kube.merge_patch(crawls_path(namespace, "big"), {"spec": {"redis": {"resources": {"limits": {"memory": "1Gi"}}}}})
    wait_for(
        kube,
        crawls_path(namespace, "big"),
        lambda c: degraded(c) is None and (c.get("status") or {}).get("phase") in {"Seeding", "Running", "Completed"},
        timeout=240,
        what="the crawl no longer Degraded",
    )


def test_a_seed_job_the_quota_refuses_makes_the_crawl_degraded(
    kube: Kube, node: Node, release: Release, site: Site, namespace: str
) -> None:
    quota(kube, namespace)
    manifest = crawl_manifest("seedbig", site, replicas=1, masterResources={"limits": {"memory": "8Gi"}})
    kube.post(crawls_path(namespace), manifest)
    crawl = wait_for(
        kube,
        crawls_path(namespace, "seedbig"),
        lambda c: (d := degraded(c)) is not None and "Job seedbig-seed-" in d["message"],
        timeout=180,
        what="Degraded=True naming the seed Job",
    )
    cond = degraded(crawl)
    assert cond is not None and cond["reason"] == "FailedCreate"
    assert "exceeded quota: compute" in cond["message"], cond
