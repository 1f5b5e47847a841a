"""Large specs: kopf keeps no copy of the spec in an annotation (all annotations together may hold 256 KiB),
so a Crawl of any size the API server stores is reconciled, updated and reported; a spider too big for its
ConfigMap (1 MiB) is refused with a condition naming the limit, before any child is written.

The same on the real control plane, through the chart: tests/e2e/test_kubecrawl_large_spec.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from kubecrawl_operator.handlers import FINALIZER, needs_pass
from kubecrawl_operator.validation import CONFIGMAP_LIMIT, check_spec
from tests.operator.cluster import Cluster, eventually
from tests.operator.conftest import OperatorProcess


def big_rules(kib: int) -> dict[str, Any]:
    """A spider whose start URL list makes its JSON about `kib` KiB (a realistic big spec)."""
    urls = [f"http://127.0.0.1:1/catalogue/item-{i:07d}.html" for i in range(kib * 1024 // 48)]
    return {"name": "big", "start": {"urls": urls}, "callbacks": {"parse": {}}}


@pytest.mark.parametrize("finalizers", [[], [FINALIZER]], ids=["new", "left-by-an-earlier-version"])
def test_needs_pass_runs_on_new_and_changed_specs_only(finalizers: list[str]) -> None:
    meta = {"generation": 3, "finalizers": finalizers}
    body = {"metadata": meta, "status": {"observedGeneration": 3}}
    assert needs_pass(None, body) and needs_pass("ADDED", body)  # listing at start-up, creation
    assert not needs_pass("MODIFIED", body)  # our own status write: a quiet crawl stays quiet
    assert needs_pass("MODIFIED", {**body, "metadata": {**meta, "generation": 4}})
    assert needs_pass("MODIFIED", {"metadata": {**meta, "generation": 1}})  # never reconciled yet
    assert not needs_pass("DELETED", {"metadata": {**meta, "generation": 4}})
    deleting = {**meta, "generation": 4, "deletionTimestamp": "2026-12-01T00:00:00Z"}
    assert not needs_pass("MODIFIED", {**body, "metadata": deleting})  # owner references take the children


def test_a_spider_over_the_configmap_limit_is_refused_with_the_numbers() -> None:
    spec, problem = check_spec({"spider": {"rules": big_rules(1100)}}, "big")
    assert spec is None and problem is not None
    assert problem.reason == "SpiderTooLarge"
    assert str(CONFIGMAP_LIMIT) in problem.message and "start.template" in problem.message
    spec, problem = check_spec({"spider": {"rules": big_rules(600)}}, "big")
    assert problem is None and spec is not None


def test_a_crawl_over_256_kib_is_reconciled_and_updated_without_a_spec_copy_in_annotations(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    rules = big_rules(400)
    cluster.create_crawl("big", {"spider": {"rules": rules}, "replicas": 1})
    configmap = eventually(lambda: cluster.get("ConfigMap", "big-spider"), "the spider ConfigMap")
    assert len(configmap["data"]["spider.yaml"]) > 300 * 1024
    eventually(lambda: cluster.status("big").get("observedGeneration") == 1, "status of generation 1")
    cluster.patch("Crawl", "big", {"spec": {"replicas": 3}})
    eventually(lambda: (cluster.get("Deployment", "big-slave") or {}).get("spec", {}).get("replicas") == 3, "3 slaves")
    eventually(lambda: cluster.status("big").get("observedGeneration") == 2, "status of generation 2")
    annotations = (cluster.get("Crawl", "big") or {})["metadata"].get("annotations") or {}
    assert sum(len(k) + len(v) for k, v in annotations.items()) < 4096, sorted(annotations)
    assert not any("last-handled-configuration" in k for k in annotations)
