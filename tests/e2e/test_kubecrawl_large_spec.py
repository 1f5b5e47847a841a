"""Large specs on the real control plane (item 9): a Crawl over 256 KiB is reconciled and updated, one too
big for its spider ConfigMap is refused with a condition, and one over the API server's limit is refused by
the API server itself at create time.

Before, kopf kept a copy of the spec in the annotation `kubecrawl.io/last-handled-configuration`; every
annotation of an object together may hold 256 KiB, so the PATCH failed (`metadata.annotations: Too long`)
and the Crawl was wedged with no status. Now spec changes are found by `metadata.generation` against
`status.observedGeneration`, and no copy is written.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.kubecrawl_fixtures import Release, Site, crawl_manifest, crawls_path, wait_phase
from tests.e2e.kubeharness.kube import ApiError, Kube, wait_for
from tests.e2e.kubeharness.node import Node


def big_spider(site: Site, kib: int) -> dict[str, Any]:
    """The site's spider with a start URL list of about `kib` KiB (distinct URLs, as a real list would be)."""
    from tests.e2e.kubecrawl_fixtures import site_spider

    rules = site_spider(site)
    rules["start"]["urls"] = [f"{site.base}/?from=catalogue-entry-{i:07d}" for i in range(kib * 1024 // 56)]
    return rules


def size(obj: Any) -> int:
    return len(json.dumps(obj).encode())


def test_a_crawl_over_256_kib_is_reconciled_and_updated(
    kube: Kube, node: Node, release: Release, site: Site, namespace: str
) -> None:
    manifest = crawl_manifest("big", site, replicas=0, spider={"rules": big_spider(site, 600)})
    assert size(manifest) > 512 * 1024
    kube.post(crawls_path(namespace), manifest)
    crawl = wait_for(
        kube,
        crawls_path(namespace, "big"),
        lambda c: (c.get("status") or {}).get("observedGeneration") == 1,
        timeout=180,
        what="status of the big Crawl",
    )
    configmap = kube.get(f"/api/v1/namespaces/{namespace}/configmaps/big-spider")
    assert len(configmap["data"]["spider.yaml"]) > 512 * 1024
    # the seed Job ran the master over every start URL (the site answers them all)
    wait_phase(kube, namespace, "big", {"Running", "Completed", "Idle"}, timeout=300)
    annotations = crawl["metadata"].get("annotations") or {}
    assert not any("last-handled-configuration" in k for k in annotations), sorted(annotations)

    # a spec change of the big Crawl converges like any other
    kube.merge_patch(crawls_path(namespace, "big"), {"spec": {"suspend": True}})
    crawl = wait_for(
        kube,
        crawls_path(namespace, "big"),
        lambda c: (c.get("status") or {}).get("observedGeneration") == 2 and c["status"].get("phase") == "Suspended",
        timeout=120,
        what="the big Crawl Suspended",
    )
    assert sum(len(k) + len(v) for k, v in (crawl["metadata"].get("annotations") or {}).items()) < 4096


def test_a_spider_too_big_for_a_configmap_is_refused_with_a_condition(
    kube: Kube, node: Node, release: Release, site: Site, namespace: str
) -> None:
    manifest = crawl_manifest("huge", site, replicas=0, spider={"rules": big_spider(site, 1100)})
    assert 1024 * 1024 < size(manifest) < 1400 * 1024  # under etcd's 1.5 MiB request limit
    kube.post(crawls_path(namespace), manifest)
    crawl = wait_for(
        kube,
        crawls_path(namespace, "huge"),
        lambda c: any(
            x["type"] == "Ready" and x.get("reason") == "SpiderTooLarge"
            for x in (c.get("status") or {}).get("conditions") or []
        ),
        timeout=120,
        what="Ready=False SpiderTooLarge",
    )
    (ready,) = [c for c in crawl["status"]["conditions"] if c["type"] == "Ready"]
    assert ready["status"] == "False" and "1048576 bytes" in ready["message"], ready
    assert crawl["status"]["phase"] == "Failed"
    assert kube.get_or_none(f"/api/v1/namespaces/{namespace}/configmaps/huge-spider") is None
    assert kube.get_or_none(f"/api/v1/namespaces/{namespace}/secrets/huge-redis-auth") is None, "no child written"


def test_a_crawl_over_the_api_servers_limit_is_refused_at_create(
    kube: Kube, release: Release, site: Site, namespace: str
) -> None:
    manifest = crawl_manifest("vast", site, replicas=0, spider={"rules": big_spider(site, 3200)})
    assert size(manifest) > 3 * 1024 * 1024
    with pytest.raises(ApiError) as refused:
        kube.post(crawls_path(namespace), manifest)
    # kube-apiserver's request body limit (3 MiB), before any admission or storage
    assert refused.value.status == 413, refused.value
    assert "limit is 3145728" in str(refused.value), refused.value
    assert kube.get_or_none(crawls_path(namespace, "vast")) is None
