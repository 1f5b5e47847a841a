"""The chart ships the same Crawl CRD as crds/crawl.yaml, the single source the operator generates."""

from __future__ import annotations

import yaml

from .helm import CHART, REPO, Helm, by_kind


def test_chart_crd_is_byte_identical_to_the_single_source() -> None:
    source = REPO / "crds" / "crawl.yaml"
    copy = CHART / "crds" / "crawl.yaml"
    assert source.read_bytes() == copy.read_bytes(), (
        "charts/kubecrawl/crds/crawl.yaml drifted from crds/crawl.yaml: run charts/sync-crds.sh"
    )


def test_helm_installs_the_crawl_crd_with_scale_and_status(helm: Helm) -> None:
    crds = {c["metadata"]["name"]: c for c in by_kind(helm.render(), "CustomResourceDefinition")}
    crawl = crds["crawls.kubecrawl.io"]
    assert crawl == yaml.safe_load((REPO / "crds" / "crawl.yaml").read_text())
    (served,) = [v for v in crawl["spec"]["versions"] if v["storage"]]
    assert "scale" in served["subresources"] and "status" in served["subresources"]
