"""examples/autoscaling/keda-scaledobject.yaml is a valid KEDA ScaledObject that can scale a Crawl.

Checked against KEDA's own published sources, fetched as the Go module github.com/kedacore/keda/v2 from
the Go module proxy (pinned; cached by Go after the first run):
- the ScaledObject CRD's openAPIV3Schema (config/crd/bases/keda.sh_scaledobjects.yaml), strictly: an
  unknown field fails as the API server's pruning would drop it silently;
- the prometheus scaler's metadata keys (the `keda:"name=..."` tags of pkg/scalers/prometheus_scaler.go);
and against this repository: the target is a Crawl with a scale subresource, and the query's series are
ones the operator publishes (metrics.py).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from kubecrawl_operator.metrics import OperatorMetrics

from .helm import REPO

KEDA_MODULE = "github.com/kedacore/keda/v2@v2.21.0"
EXAMPLE = REPO / "examples" / "autoscaling" / "keda-scaledobject.yaml"


@pytest.fixture(scope="module")
def keda() -> Path:
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        pytest.skip("no Go toolchain: cannot fetch KEDA's CRD from the Go module proxy")
    out = subprocess.run(
        [go, "mod", "download", "-json", KEDA_MODULE], capture_output=True, text=True, timeout=600, check=False
    )
    info = json.loads(out.stdout or "{}")
    if out.returncode != 0 or "Dir" not in info:
        pytest.skip(f"cannot download {KEDA_MODULE}: {info.get('Error') or out.stderr.strip()}")
    return Path(info["Dir"])


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI (structural) schema with unknown fields refused, as jsonschema's additionalProperties."""
    out = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(out)
    return out


def scaledobject_schema(keda: Path) -> dict[str, Any]:
    crd = yaml.safe_load((keda / "config" / "crd" / "bases" / "keda.sh_scaledobjects.yaml").read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    schema = strict(version["schema"]["openAPIV3Schema"])
    schema["properties"]["metadata"] = {"type": "object"}
    return schema


def example() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE.read_text())  # type: ignore[no-any-return]


def test_the_example_is_valid_against_kedas_scaledobject_crd(keda: Path) -> None:
    obj = example()
    assert (obj["apiVersion"], obj["kind"]) == ("keda.sh/v1alpha1", "ScaledObject")
    jsonschema.validate(obj, scaledobject_schema(keda))


def test_the_schema_check_refuses_a_misspelt_field(keda: Path) -> None:
    obj = example()
    obj["spec"]["minReplicas"] = obj["spec"].pop("minReplicaCount")
    with pytest.raises(jsonschema.ValidationError, match="minReplicas"):
        jsonschema.validate(obj, scaledobject_schema(keda))


def test_the_trigger_uses_only_metadata_keys_of_kedas_prometheus_scaler(keda: Path) -> None:
    source = (keda / "pkg" / "scalers" / "prometheus_scaler.go").read_text()
    known = set(re.findall(r'keda:"name=([A-Za-z]+)', source))
    assert {"serverAddress", "query", "threshold"} <= known
    (trigger,) = example()["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    assert set(trigger["metadata"]) <= known, set(trigger["metadata"]) - known
    assert all(isinstance(v, str) for v in trigger["metadata"].values()), "trigger metadata values are strings"


def test_the_target_is_a_crawl_with_a_scale_subresource_and_the_query_reads_operator_metrics() -> None:
    obj = example()
    target = obj["spec"]["scaleTargetRef"]
    crd = yaml.safe_load((REPO / "crds" / "crawl.yaml").read_text())
    (version,) = crd["spec"]["versions"]
    assert target["apiVersion"] == f"{crd['spec']['group']}/{version['name']}" and target["kind"] == "Crawl"
    assert version["subresources"]["scale"]["specReplicasPath"] == ".spec.replicas"
    assert obj["spec"]["minReplicaCount"] == 0, "the point: slaves from zero when a round is seeded"
    query = obj["spec"]["triggers"][0]["metadata"]["query"]
    used = set(re.findall(r"(kubecrawl_[a-z_]+)\{", query))
    metrics = OperatorMetrics()
    metrics.record_pass(
        {"name": target["name"], "namespace": obj["metadata"]["namespace"], "uid": "u"},
        {"phase": "Idle", "replicas": 0, "stats": {"queued": 0, "inFlight": 0}},
        0.01,
    )
    text = metrics.render().decode()
    for name in used:
        labels = f'{{crawl="{target["name"]}",namespace="{obj["metadata"]["namespace"]}"}}'
        assert f"{name}{labels} 0.0" in text, f"{name} for this crawl is not published while it is idle"
    assert used, query
