"""`helm upgrade` applies a changed CRD on the real control plane (the CRD is a chart template, item 8).

The session's release is first upgraded to a copy of the chart whose CRD lacks `spec.disruptionBudget`
(what an older chart looked like), where the API server prunes that field from a new Crawl; then back to
the chart under test, whose CRD has the field: Helm must apply the new schema, so a Crawl created with
`disruptionBudget.maxUnavailable: 2` keeps it, and the operator builds the slaves' PodDisruptionBudget from
it. Before the CRD became a template (it was under the chart's crds/, which Helm never upgrades) the
second step left the old schema in place. Also checked: the CRD stays Helm-owned with
`helm.sh/resource-policy: keep`, and the Crawl created under the old schema survives the upgrade.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.kubecrawl_fixtures import CHART, RELEASE_NS, Release, Site, crawl_manifest, crawls_path
from tests.e2e.kubeharness.controlplane import ControlPlane
from tests.e2e.kubeharness.kube import Kube, wait_for
from tests.e2e.kubeharness.node import Node

CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/crawls.kubecrawl.io"


def older_chart(tmp: Path) -> Path:
    """The chart with its CRD as an older release shipped it: no spec.disruptionBudget, version 0.0.9."""
    copy = tmp / "kubecrawl-old"
    shutil.copytree(CHART, copy, symlinks=False)  # files/crawl.yaml: the link's content
    crd_file = copy / "files" / "crawl.yaml"
    crd = yaml.safe_load(crd_file.read_text())
    del crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["disruptionBudget"]
    crd_file.write_text(yaml.safe_dump(crd, sort_keys=False))
    chart = yaml.safe_load((copy / "Chart.yaml").read_text())
    chart["version"] = "0.0.9"
    (copy / "Chart.yaml").write_text(yaml.safe_dump(chart, sort_keys=False))
    return copy


def upgrade(cluster: ControlPlane, chart: Path) -> None:
    result = cluster.helm(
        "upgrade", "kubecrawl", str(chart), "--namespace", RELEASE_NS, "--reuse-values", "--timeout", "180s",
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def spec_properties(kube: Kube) -> dict[str, Any]:
    crd = kube.get(CRD_PATH)
    (version,) = crd["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]  # type: ignore[no-any-return]


def test_helm_upgrade_applies_a_crd_with_a_new_field_that_a_crawl_then_uses(
    kube_cluster: ControlPlane, kube: Kube, node: Node, release: Release, site: Site, namespace: str, tmp_path: Path
) -> None:
    crd = kube.get(CRD_PATH)
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert crd["metadata"]["annotations"]["meta.helm.sh/release-name"] == "kubecrawl"
    assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"

    # 1. the older chart: its CRD has no disruptionBudget, so the API server prunes it from a new Crawl
    upgrade(kube_cluster, older_chart(tmp_path))
    wait_for(kube, CRD_PATH, lambda c: "disruptionBudget" not in spec_properties(kube), timeout=60, what="old CRD")
    budget = {"maxUnavailable": 2}
    kube.post(crawls_path(namespace), crawl_manifest("before", site, replicas=0, disruptionBudget=budget))
    assert "disruptionBudget" not in kube.get(crawls_path(namespace, "before"))["spec"]

    # 2. the chart under test: `helm upgrade` applies its CRD, the field is kept and used
    upgrade(kube_cluster, CHART)
    wait_for(kube, CRD_PATH, lambda c: "disruptionBudget" in spec_properties(kube), timeout=60, what="new CRD")
    assert kube.get(CRD_PATH)["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    kube.post(crawls_path(namespace), crawl_manifest("after", site, replicas=0, disruptionBudget=budget))
    stored = kube.get(crawls_path(namespace, "after"))
    assert stored["spec"]["disruptionBudget"] == {"enabled": True, "maxUnavailable": 2}  # enabled: defaulted
    pdb = wait_for(
        kube,
        f"/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets/after-slave",
        lambda p: p is not None,
        timeout=120,
        what="the PodDisruptionBudget built from the new field",
    )
    assert pdb["spec"]["maxUnavailable"] == 2
    # the Crawl from before the upgrade is still there, now defaulted by the new schema on read
    before = kube.get(crawls_path(namespace, "before"))
    assert before["spec"]["disruptionBudget"] == {"enabled": True, "maxUnavailable": "25%"}
    history = kube_cluster.helm("history", "kubecrawl", "--namespace", RELEASE_NS, "--max", "3", "-o", "yaml")
    assert [h["chart"] for h in yaml.safe_load(history.stdout)][-2:] == ["kubecrawl-0.0.9", "kubecrawl-0.1.0"]


def test_kubectl_explain_documents_the_spec_from_the_installed_crd(
    kube_cluster: ControlPlane, release: Release
) -> None:
    """What a cluster admin reads: the descriptions generated from the models, served by the API server."""
    spec = kube_cluster.kubectl("explain", "crawl.spec")
    assert "What a user asks for" in spec.stdout, spec.stdout + spec.stderr
    for field in ("politeness", "networkPolicy", "disruptionBudget", "redis", "spider"):
        assert re.search(rf"^\s+{field}\s+<Object>", spec.stdout, re.M), field
    politeness = kube_cluster.kubectl("explain", "crawl.spec.politeness.concurrency")
    assert "Concurrent requests per slave." in politeness.stdout
    allow = kube_cluster.kubectl("explain", "crawl.spec.networkPolicy.allowCidrs")
    assert "ssrfAllow" in allow.stdout
