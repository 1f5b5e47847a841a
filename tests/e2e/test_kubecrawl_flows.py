"""kubecrawl end to end: the chart installed by helm, the operator running as a pod with its chart RBAC,
Crawls whose Redis, seed Job and slaves run as processes on the node helper, crawling a local site."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import yaml

from tests.e2e.kubecrawl_fixtures import (
    RELEASE_NS,
    ROOT,
    SITE_HOST,
    Release,
    Site,
    crawl_manifest,
    crawls_path,
    redis_for,
    slave_pids,
    stored_items,
    wait_phase,
)
from tests.e2e.kubeharness.controlplane import ControlPlane
from tests.e2e.kubeharness.kube import Kube, condition, wait_for, wait_gone
from tests.e2e.kubeharness.node import Node
from tests.e2e.kubeharness.procs import wait_until

CHILD_KINDS = {
    "Secret": "/api/v1/namespaces/{ns}/secrets",
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps",
    "Service": "/api/v1/namespaces/{ns}/services",
    "StatefulSet": "/apis/apps/v1/namespaces/{ns}/statefulsets",
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
    "Job": "/apis/batch/v1/namespaces/{ns}/jobs",
    "CronJob": "/apis/batch/v1/namespaces/{ns}/cronjobs",
}


def children(kube: Kube, ns: str, uid: str) -> dict[str, list[str]]:
    """Kind → names of the objects in ns owned (controller reference) by the Crawl with this uid."""
    out: dict[str, list[str]] = {}
    for kind, path in CHILD_KINDS.items():
        for obj in kube.get(path.format(ns=ns))["items"]:
            if any(r.get("uid") == uid and r.get("controller") for r in obj["metadata"].get("ownerReferences") or []):
                out.setdefault(kind, []).append(obj["metadata"]["name"])
    return out


def create_crawl(kube: Kube, ns: str, manifest: dict) -> dict:
    return kube.post(crawls_path(ns), manifest)


def test_helm_install_runs_the_operator_as_a_pod_with_the_charts_service_account(
    kube: Kube, node: Node, release: Release
) -> None:
    (pod,) = kube.get(f"/api/v1/namespaces/{RELEASE_NS}/pods")["items"]
    assert pod["spec"]["serviceAccountName"] == release.service_account
    assert condition(pod, "Ready") == "True"
    crd = kube.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/crawls.{'kubecrawl.io'}")
    assert condition(crd, "Established") == "True"
    wait_until(
        lambda: release.cluster.audit_log.calls(release.sa_user),
        timeout=60,
        what="API calls made with the chart's ServiceAccount token",
    )


def test_example_crawl_applied_with_kubectl_gets_every_child(
    kube_cluster: ControlPlane, kube: Kube, node: Node, release: Release, site: Site, namespace: str
) -> None:
    example = ROOT / "examples" / "crawl.yaml"
    if not example.exists():
        pytest.xfail("examples/crawl.yaml is not in the repository yet (install issue)")
    # The example crawls the internet: point its start URLs at the local site (no traffic leaves the host).
    manifest = yaml.safe_load(example.read_text())
    manifest["spec"]["spider"]["rules"]["start"]["urls"] = [f"{site.base}/"]
    manifest["spec"]["ssrfAllow"] = [SITE_HOST]
    kube_cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest))
    (crawl,) = kube.get(crawls_path(namespace))["items"]
    name, uid = crawl["metadata"]["name"], crawl["metadata"]["uid"]

    owned = wait_until(
        lambda: (
            (c := children(kube, namespace, uid))
            and {"Secret", "Service", "StatefulSet", "Deployment", "Job"} <= set(c)
            and c
        ),
        timeout=120,
        what="the Crawl's children",
    )

    for kind, names in owned.items():  # type: ignore[union-attr]
        for child in names:
            obj = kube.get(f"{CHILD_KINDS[kind].format(ns=namespace)}/{child}")
            assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == name, (kind, child)
            assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kubecrawl-operator"
            template = (obj.get("spec") or {}).get("template") or (
                ((obj.get("spec") or {}).get("jobTemplate") or {}).get("spec", {}).get("template")
            )
            if template:
                pod_sc = template["spec"].get("securityContext") or {}
                assert pod_sc.get("runAsNonRoot") is True, (kind, child)
                for c in template["spec"]["containers"]:
                    sc = c.get("securityContext") or {}
                    assert sc.get("allowPrivilegeEscalation") is False, (kind, child, c["name"])
                    assert sc.get("readOnlyRootFilesystem") is True, (kind, child, c["name"])
                    assert sc.get("capabilities", {}).get("drop") == ["ALL"], (kind, child, c["name"])
    header = kube_cluster.kubectl("get", "crawls", "-n", namespace).stdout.splitlines()[0].split()
    assert header[:8] == ["NAME", "PHASE", "REPLICAS", "READY", "PAGES", "ITEMS", "QUEUED", "SCHEDULE"]


def test_whole_crawl_runs_on_the_cluster_and_stores_exactly_the_sites_pages(
    kube: Kube, node: Node, release: Release, site: Site, namespace: str
) -> None:
    create_crawl(kube, namespace, crawl_manifest("books", site, replicas=2))

    wait_until(lambda: len(slave_pids(node, namespace, "books")) == 2, timeout=180, what="two slave processes")
    crawl = wait_phase(kube, namespace, "books", {"Completed"})

    (seed,) = [
        j
        for j in kube.get(f"/apis/batch/v1/namespaces/{namespace}/jobs")["items"]
        if j["metadata"]["name"].startswith("books-seed-")
    ]
    assert condition(seed, "Complete") == "True"
    assert crawl["status"]["stats"]["pages"] >= len(site.pages)
    assert crawl["status"]["stats"]["items"] == len(site.pages)
    items = stored_items(redis_for(kube, node, namespace, "books"), "books")
    assert sorted(i["url"] for i in items) == sorted(f"{site.base}{p}" for p in site.pages)
    assert sorted(i["title"] for i in items) == sorted(site.pages.values())


@pytest.fixture
def slow_site() -> Iterator[Site]:
    s = Site()
    s.add(40)
    original = s.body

    def slow(path: str) -> bytes | None:
        time.sleep(0.25)
        return original(path)

    s.body = slow  # type: ignore[method-assign]
    s.start()
    yield s
    s.stop()


def test_scaling_the_crawl_moves_slave_processes_and_a_deleted_slave_loses_nothing(
    kube_cluster: ControlPlane, kube: Kube, node: Node, release: Release, slow_site: Site, namespace: str
) -> None:
    create_crawl(
        kube, namespace, crawl_manifest("scaled", slow_site, replicas=1, politeness={"concurrency": 2, "perHost": 2})
    )
    wait_until(lambda: len(slave_pids(node, namespace, "scaled")) == 1, timeout=180, what="one slave process")

    kube_cluster.kubectl("scale", "-n", namespace, "crawl/scaled", "--replicas=3")

    wait_for(
        kube,
        f"/apis/apps/v1/namespaces/{namespace}/deployments/scaled-slave",
        lambda d: d["spec"]["replicas"] == 3,
        timeout=60,
        what="slave Deployment at 3 replicas",
    )
    wait_until(lambda: len(slave_pids(node, namespace, "scaled")) == 3, timeout=120, what="three slave processes")
    victim = sorted(slave_pids(node, namespace, "scaled"))[0]
    kube_cluster.kubectl("delete", "pod", "-n", namespace, victim, "--wait=false")
    wait_until(
        lambda: victim not in slave_pids(node, namespace, "scaled") and len(slave_pids(node, namespace, "scaled")) == 3,
        timeout=120,
        what="the deleted slave replaced",
    )

    wait_phase(kube, namespace, "scaled", {"Completed"}, timeout=300)
    items = stored_items(redis_for(kube, node, namespace, "scaled"), "scaled")
    assert sorted(i["url"] for i in items) == sorted(f"{slow_site.base}{p}" for p in slow_site.pages)


def test_scheduled_crawl_round_stores_only_new_items_and_idles_between_rounds(
    kube_cluster: ControlPlane, kube: Kube, node: Node, release: Release, namespace: str
) -> None:
    s = Site()
    s.add(5)
    s.start()
    try:
        manifest = crawl_manifest("news", s, replicas=2, schedule="0 3 * * *")
        manifest["spec"]["spider"]["rules"]["incremental"] = {"enabled": True}  # re-read the index every round
        create_crawl(kube, namespace, manifest)
        wait_for(
            kube,
            f"/apis/batch/v1/namespaces/{namespace}/cronjobs/news-schedule",
            lambda c: True,
            timeout=120,
            what="the CronJob",
        )
        wait_phase(kube, namespace, "news", {"Idle", "Completed"}, timeout=300)
        first = stored_items(redis_for(kube, node, namespace, "news"), "news")
        assert len(first) == 5
        s.add(3)

        kube_cluster.kubectl("create", "job", "-n", namespace, "--from=cronjob/news-schedule", "news-manual-1")

        wait_for(
            kube,
            f"/apis/batch/v1/namespaces/{namespace}/jobs/news-manual-1",
            lambda j: condition(j, "Complete") == "True",
            timeout=180,
            what="manual round Job Complete",
        )
        wait_until(
            lambda: len(stored_items(redis_for(kube, node, namespace, "news"), "news")) == 8,
            timeout=180,
            what="the three new items",
        )
        crawl = wait_phase(kube, namespace, "news", {"Idle"}, timeout=180)
        items = stored_items(redis_for(kube, node, namespace, "news"), "news")
        assert sorted(i["url"] for i in items) == sorted(f"{s.base}{p}" for p in s.pages)  # no duplicates
        assert crawl["status"]["phase"] == "Idle"
        wait_for(
            kube,
            f"/apis/apps/v1/namespaces/{namespace}/deployments/news-slave",
            lambda d: d["spec"]["replicas"] == 0,
            timeout=60,
            what="slaves at zero between rounds",
        )
        # the status follows once the slave pods have terminated (graceful stop, then gone)
        wait_for(
            kube,
            f"/apis/kubecrawl.io/v1alpha1/namespaces/{namespace}/crawls/news",
            lambda c: c.get("status", {}).get("readyReplicas", 0) == 0,
            timeout=120,
            what="no ready slaves in the Crawl's status",
        )
    finally:
        s.stop()


INVALID: dict[str, tuple[dict, str]] = {
    "negative replicas": ({"replicas": -1}, "spec.replicas"),
    "too many replicas": ({"replicas": 5000}, "spec.replicas"),
    "image with capitals": ({"image": "Kubecrawl/Worker"}, "spec.image"),
    "unknown pull policy": ({"imagePullPolicy": "Sometimes"}, "spec.imagePullPolicy"),
    "schedule that is not cron": ({"schedule": "every five minutes"}, "spec.schedule"),
    "grace period too short": ({"terminationGracePeriodSeconds": 1}, "spec.terminationGracePeriodSeconds"),
    "zero concurrency": ({"politeness": {"concurrency": 0}}, "spec.politeness.concurrency"),
    "negative delay": ({"politeness": {"delaySeconds": -1}}, "spec.politeness.delaySeconds"),
    "unknown dedup": ({"dedup": {"requests": "hash"}}, "spec.dedup.requests"),
    "empty item key": ({"dedup": {"itemKey": []}}, "spec.dedup.itemKey"),
    "password without url": (
        {"redis": {"passwordSecretRef": {"name": "s", "key": "k"}}},
        "redis.passwordSecretRef needs redis.url",
    ),
    "redis url not redis": ({"redis": {"url": "http://x"}}, "spec.redis.url"),
    "bad storage size": ({"redis": {"storage": "lots"}}, "spec.redis.storage"),
    "both spider kinds": (
        {"spider": {"rules": {"name": "x"}, "module": "a.b:C"}},
        "spec.spider",
    ),
    "bad spider module": ({"spider": {"module": "not a module"}}, "spec.spider.module"),
    "suspend not boolean": ({"suspend": "yes"}, "spec.suspend"),
}


def test_invalid_crawls_are_rejected_by_the_api_server_with_actionable_messages(
    kube_cluster: ControlPlane, kube: Kube, namespace: str, site: Site
) -> None:
    messages = {}
    for i, (case, (spec, _expected)) in enumerate(INVALID.items()):
        manifest = crawl_manifest(f"bad-{i}", site)
        manifest["spec"].update(spec)
        result = kube_cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest), check=False)
        messages[case] = (result.returncode, result.stderr.strip())
    assert len(INVALID) >= 10
    for case, (code, message) in messages.items():
        assert code != 0, f"{case}: accepted"
        assert INVALID[case][1] in message, f"{case}: {message}"
    assert kube.get(crawls_path(namespace))["items"] == []


def test_suspend_resume_spec_change_restore_and_deletion(
    kube_cluster: ControlPlane, kube: Kube, node: Node, release: Release, slow_site: Site, namespace: str
) -> None:
    created = create_crawl(
        kube, namespace, crawl_manifest("life", slow_site, replicas=2, politeness={"concurrency": 1, "perHost": 1})
    )
    uid = created["metadata"]["uid"]
    slave = f"/apis/apps/v1/namespaces/{namespace}/deployments/life-slave"
    wait_until(lambda: len(slave_pids(node, namespace, "life")) == 2, timeout=180, what="two slave processes")

    kube.merge_patch(crawls_path(namespace, "life"), {"spec": {"suspend": True}})
    wait_for(kube, slave, lambda d: d["spec"]["replicas"] == 0, timeout=60, what="suspend scales slaves to 0")
    wait_until(lambda: not slave_pids(node, namespace, "life"), timeout=60, what="slave processes stopped")
    kube.merge_patch(crawls_path(namespace, "life"), {"spec": {"suspend": False}})
    wait_until(lambda: len(slave_pids(node, namespace, "life")) == 2, timeout=120, what="resume restarts slaves")

    kube.merge_patch(crawls_path(namespace, "life"), {"spec": {"politeness": {"concurrency": 3, "perHost": 1}}})
    wait_for(
        kube,
        slave,
        lambda d: (
            {"name": "KUBECRAWL_CONCURRENCY", "value": "3"} in d["spec"]["template"]["spec"]["containers"][0]["env"]
        ),
        timeout=60,
        what="spec change patched",
    )

    kube.delete(f"/api/v1/namespaces/{namespace}/services/life-redis")
    wait_for(
        kube,
        f"/api/v1/namespaces/{namespace}/services/life-redis",
        lambda s: True,
        timeout=60,
        what="deleted Service restored",
    )

    (op_pod,) = kube.get(f"/api/v1/namespaces/{RELEASE_NS}/pods")["items"]
    kube_cluster.kubectl("delete", "pod", "-n", RELEASE_NS, op_pod["metadata"]["name"], "--wait=false")
    wait_until(
        lambda: [
            p
            for p in kube.get(f"/api/v1/namespaces/{RELEASE_NS}/pods")["items"]
            if p["metadata"]["name"] != op_pod["metadata"]["name"] and condition(p, "Ready") == "True"
        ],
        timeout=120,
        what="the operator pod replaced",
    )
    wait_phase(kube, namespace, "life", {"Completed"}, timeout=300)
    items = stored_items(redis_for(kube, node, namespace, "life"), "life")
    assert sorted(i["url"] for i in items) == sorted(f"{slow_site.base}{p}" for p in slow_site.pages)

    kube.delete(crawls_path(namespace, "life"), {"propagationPolicy": "Background"})
    wait_gone(kube, crawls_path(namespace, "life"), timeout=120)
    wait_until(lambda: not children(kube, namespace, uid), timeout=120, what="the garbage collector")
    wait_until(lambda: not node.live_pids(namespace), timeout=60, what="every crawl process stopped")


def test_operator_service_account_was_never_forbidden(release: Release) -> None:
    """Runs last: every call the operator made with its chart RBAC was allowed."""
    calls = release.cluster.audit_log.calls(release.sa_user)
    assert calls, "the operator made no API calls with its ServiceAccount"
    forbidden = sorted(
        {
            (c.verb, c.api_group, c.resource, c.subresource, c.namespace)
            for c in release.cluster.audit_log.forbidden(release.sa_user)
        }
    )
    assert forbidden == [], f"RBAC denied the operator: {forbidden}"


def test_invalid_examples_are_rejected_by_the_api_server(kube_cluster: ControlPlane, namespace: str) -> None:
    examples = sorted((ROOT / "examples" / "invalid").glob("*.yaml"))
    if not examples:
        pytest.xfail("examples/invalid/ has no examples yet")
    accepted = []
    for example in examples:
        result = kube_cluster.kubectl("apply", "-n", namespace, "-f", str(example), check=False)
        if result.returncode == 0:
            accepted.append(example.name)
        else:
            assert (
                "Invalid value" in result.stderr
                or "Required value" in result.stderr
                or "unknown field" in (result.stderr)
                or "must" in result.stderr
            ), f"{example.name}: {result.stderr}"
    assert accepted == []


def test_every_resource_the_chart_grants_is_used(release: Release) -> None:
    """Runs last, after every flow: no (group, resource) is granted to the operator that it never touches.

    Verb-level use is wider than these flows (deleting a CronJob when a schedule is removed, patching
    a StatefulSet on a Redis change...); those calls are exercised by tests/operator against the
    emulator, where the operator's client refuses any call outside kubecrawl_operator.rbac.RULES."""
    from kubecrawl_operator.rbac import LEASE_RULES, RULES

    used = {
        (c.api_group or "", c.resource + (f"/{c.subresource}" if c.subresource else ""))
        for c in release.cluster.audit_log.calls(release.sa_user)
    }
    granted = {(g, r) for rule in RULES + LEASE_RULES for g in rule["apiGroups"] for r in rule["resources"]}
    assert sorted(granted - used) == [], "granted to the operator but never used"
