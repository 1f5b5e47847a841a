"""Placement, settings checks, spider code from a ConfigMap and the lifecycle of a Crawl (issue 18 §3-§6)
on the real control plane: kube-apiserver admission, the StatefulSet and garbage collector controllers.

Run one file at a time: `.venv/bin/python -m pytest tests/e2e/test_kubecrawl_lifecycle.py -q`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.e2e.kubecrawl_fixtures import (
    GROUP,
    RELEASE_NS,
    Release,
    Site,
    crawl_manifest,
    crawls_path,
    redis_for,
    stored_items,
    wait_phase,
)
from tests.e2e.kubeharness.kube import Kube, condition, wait_for, wait_gone
from tests.e2e.kubeharness.node import Node
from tests.e2e.kubeharness.procs import wait_until

OPERATOR_DEPLOYMENT = f"/apis/apps/v1/namespaces/{RELEASE_NS}/deployments/kubecrawl"

#: A pure-Python spider, as a user would `kubectl create configmap site-spiders --from-file=site_spider.py`.
#: It takes a spider argument (`-a tag=...`, from spec.spider.args) and puts it on every item.
PY_SPIDER = """
from kubecrawl import Spider


class SiteSpider(Spider):
    name = "pysite"
    start_urls = ["__BASE__/"]
    tag = "none"

    async def parse(self, response):
        for href in response.css("a::attr(href)").getall():
            if "/page/" in href:
                yield response.follow(href, self.parse_page)

    async def parse_page(self, response):
        yield {"url": response.url, "title": response.css("h1::text").get(), "tag": self.tag}
"""


def pods_of(kube: Kube, ns: str, crawl: str) -> list[dict[str, Any]]:
    return kube.get(f"/api/v1/namespaces/{ns}/pods", labelSelector=f"app.kubernetes.io/instance={crawl}")["items"]


def cond(crawl: dict[str, Any], ctype: str) -> dict[str, Any]:
    return next((c for c in (crawl.get("status") or {}).get("conditions") or [] if c["type"] == ctype), {})


def test_pod_template_placement_lands_on_every_pod_under_the_enforced_security(
    kube: Kube, node: Node, release: Release, site: Site, namespace: str
) -> None:
    placement = {
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "crawl", "effect": "NoSchedule"}],
        "labels": {"team": "search"},
        "annotations": {"cost-center": "42"},
        "serviceAccountName": "default",
        "imagePullSecrets": [{"name": "regcred"}],
    }
    manifest = crawl_manifest(
        "placed",
        site,
        replicas=1,
        podTemplate={**placement, "securityContext": {"runAsUser": 0}},
        redis={"podTemplate": {"nodeSelector": {"kubernetes.io/arch": "amd64"}, "labels": {"team": "search"}}},
    )
    kube.post(crawls_path(namespace), manifest)
    wait_phase(kube, namespace, "placed", {"Completed"}, timeout=300)
    pods = pods_of(kube, namespace, "placed")
    by_component: dict[str, list[dict[str, Any]]] = {}
    for pod in pods:
        by_component.setdefault(pod["metadata"]["labels"]["app.kubernetes.io/component"], []).append(pod)
    assert {"redis", "seed", "slave"} <= set(by_component), sorted(by_component)
    for component in ("seed", "slave"):
        for pod in by_component[component]:
            spec = pod["spec"]
            assert spec["nodeSelector"] == {"kubernetes.io/os": "linux"}
            assert {"key": "dedicated", "operator": "Equal", "value": "crawl", "effect": "NoSchedule"} in spec[
                "tolerations"
            ]
            assert spec["imagePullSecrets"] == [{"name": "regcred"}]
            assert pod["metadata"]["labels"]["team"] == "search"
            assert pod["metadata"]["annotations"]["cost-center"] == "42"
            # runAsUser 0 was asked for and not applied
            assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] == 10001
    (redis_pod,) = by_component["redis"]
    assert redis_pod["spec"]["nodeSelector"] == {"kubernetes.io/arch": "amd64"}
    crawl = kube.get(crawls_path(namespace, "placed"))
    enforced = cond(crawl, "SecurityContextEnforced")
    assert enforced["status"] == "True" and "spec.podTemplate.securityContext.runAsUser=0" in enforced["message"]
    items = stored_items(redis_for(kube, node, namespace, "placed"), "placed")
    assert sorted(i["url"] for i in items) == sorted(f"{site.base}{p}" for p in site.pages)


def test_a_misspelt_settings_key_makes_the_crawl_not_ready_with_the_closest_name(
    kube: Kube, release: Release, site: Site, namespace: str
) -> None:
    kube.post(crawls_path(namespace), crawl_manifest("typo", site, replicas=1, settings={"concurency": "4"}))
    crawl = wait_for(
        kube,
        crawls_path(namespace, "typo"),
        lambda c: cond(c, "Ready").get("reason") == "UnknownSetting",
        timeout=120,
        what="Ready=False UnknownSetting",
    )
    ready = cond(crawl, "Ready")
    assert ready["status"] == "False"
    assert "spec.settings.concurency is not a worker setting; did you mean 'concurrency'?" in ready["message"]
    assert crawl["status"]["phase"] == "Failed"
    # an invalid spec changes no child
    assert not kube.get(f"/apis/apps/v1/namespaces/{namespace}/deployments")["items"]
    events = kube.get(f"/api/v1/namespaces/{namespace}/events", fieldSelector="reason=UnknownSetting")["items"]
    assert events and "did you mean 'concurrency'" in events[0]["message"]
    # fixed, it runs
    kube.merge_patch(crawls_path(namespace, "typo"), {"spec": {"settings": {"concurency": None, "concurrency": "4"}}})
    slave = wait_for(
        kube,
        f"/apis/apps/v1/namespaces/{namespace}/deployments/typo-slave",
        lambda d: True,
        timeout=120,
        what="the slaves once fixed",
    )
    env = slave["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "KUBECRAWL_CONCURRENCY", "value": "4"} in env
    # nothing the Crawl did not set: the spider's custom_settings keep their meaning
    assert not {e["name"] for e in env} & {"KUBECRAWL_DOWNLOAD_DELAY", "KUBECRAWL_OBEY_ROBOTS", "KUBECRAWL_ITEM_KEY"}


def test_a_pod_template_the_api_server_refuses_is_reported_with_its_message(
    kube: Kube, release: Release, site: Site, namespace: str
) -> None:
    """spec.podTemplate.affinity is free-form in the CRD; the API server checks it on the children."""
    bad = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}}
    kube.post(crawls_path(namespace), crawl_manifest("badaff", site, replicas=1, podTemplate={"affinity": bad}))
    crawl = wait_for(
        kube,
        crawls_path(namespace, "badaff"),
        lambda c: cond(c, "Ready").get("reason") == "ChildRejected",
        timeout=120,
        what="Ready=False ChildRejected",
    )
    message = cond(crawl, "Ready")["message"]
    assert "the API server refused Deployment badaff-slave" in message, message
    assert "nodeSelectorTerms" in message, message
    assert cond(crawl, "Degraded")["status"] == "True"


def test_a_python_spider_from_a_configmap_crawls_on_the_stock_worker_image(
    kube: Kube, node: Node, release: Release, site: Site, namespace: str
) -> None:
    kube.post(
        f"/api/v1/namespaces/{namespace}/configmaps",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "site-spiders"},
            "data": {"site_spider.py": PY_SPIDER.replace("__BASE__", site.base)},
        },
    )
    manifest = crawl_manifest("pyspider", site, replicas=2)
    manifest["spec"]["spider"] = {
        "module": "site_spider:SiteSpider",
        "source": {"configMap": "site-spiders"},
        "args": {"tag": "from-args"},
    }
    kube.post(crawls_path(namespace), manifest)
    wait_phase(kube, namespace, "pyspider", {"Completed"}, timeout=300)
    items = stored_items(redis_for(kube, node, namespace, "pyspider"), "pyspider")
    assert sorted(i["url"] for i in items) == sorted(f"{site.base}{p}" for p in site.pages)
    assert {i["tag"] for i in items} == {"from-args"}


@contextmanager
def operator_stopped(kube: Kube) -> Iterator[None]:
    """The chart's operator scaled to 0 (its pod gone), and back to 1 and Ready afterwards."""
    kube.merge_patch(OPERATOR_DEPLOYMENT, {"spec": {"replicas": 0}})
    wait_until(
        lambda: not kube.get(f"/api/v1/namespaces/{RELEASE_NS}/pods")["items"], timeout=120, what="operator pod gone"
    )
    try:
        yield
    finally:
        kube.merge_patch(OPERATOR_DEPLOYMENT, {"spec": {"replicas": 1}})
        wait_until(
            lambda: any(
                condition(p, "Ready") == "True" for p in kube.get(f"/api/v1/namespaces/{RELEASE_NS}/pods")["items"]
            ),
            timeout=180,
            what="the operator back",
        )


def pvcs(kube: Kube, ns: str) -> set[str]:
    return {p["metadata"]["name"] for p in kube.get(f"/api/v1/namespaces/{ns}/persistentvolumeclaims")["items"]}


def test_deleting_crawls_with_the_operator_stopped_does_not_hang_and_the_pvc_follows_retain_on_delete(
    kube: Kube, node: Node, release: Release, site: Site, namespace: str
) -> None:
    # A Crawl as an earlier operator version left it: with its finalizer. The running operator removes it.
    old = crawl_manifest("old", site, replicas=1)
    old["metadata"]["finalizers"] = [f"{GROUP}/operator"]
    kube.post(crawls_path(namespace), old)
    kube.post(crawls_path(namespace), crawl_manifest("gone", site, replicas=1))
    kube.post(crawls_path(namespace), crawl_manifest("kept", site, replicas=1, redis={"retainOnDelete": True}))
    for name in ("old", "gone", "kept"):
        wait_phase(kube, namespace, name, {"Completed"}, timeout=300)
    assert not kube.get(crawls_path(namespace, "old"))["metadata"].get("finalizers"), "the old finalizer stays"
    assert {"data-old-redis-0", "data-gone-redis-0", "data-kept-redis-0"} <= pvcs(kube, namespace)
    sts = kube.get(f"/apis/apps/v1/namespaces/{namespace}/statefulsets/kept-redis")
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"

    with operator_stopped(kube):
        for name in ("old", "gone", "kept"):
            kube.delete(crawls_path(namespace, name), {"propagationPolicy": "Background"})
        for name in ("old", "gone", "kept"):
            wait_gone(kube, crawls_path(namespace, name), timeout=60)
        # the garbage collector: StatefulSets, their pods, and the PVCs of the crawls that do not retain them
        wait_until(
            lambda: not kube.get(f"/apis/apps/v1/namespaces/{namespace}/statefulsets")["items"],
            timeout=120,
            what="the StatefulSets collected",
        )
        wait_until(
            lambda: pvcs(kube, namespace) == {"data-kept-redis-0"},
            timeout=180,
            what=f"only the retained PVC left (have {pvcs(kube, namespace)})",
        )

    # A new Crawl of the kept name binds the kept PVC: it says it found an earlier Crawl's data.
    kube.post(crawls_path(namespace), crawl_manifest("kept", site, replicas=1))
    crawl = wait_for(
        kube,
        crawls_path(namespace, "kept"),
        lambda c: cond(c, "ExistingData").get("status") == "True",
        timeout=240,
        what="ExistingData=True",
    )
    assert "data of an earlier Crawl 'kept'" in cond(crawl, "ExistingData")["message"]
    assert "data-kept-redis-0" in crawl["status"]["existingData"]
