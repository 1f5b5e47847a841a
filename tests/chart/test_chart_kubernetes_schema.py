"""Every object the chart renders, for every documented option, is valid against the Kubernetes schema.

Built-in kinds are checked strictly (unknown fields are errors) with kubernetes-validate against the
API version our e2e control plane runs; custom resources against their own CRD's openAPIV3Schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from .helm import CHART, Helm, by_kind
from .options import OPTIONS

KUBERNETES_VERSION = "1.33"

# The Prometheus Operator's PodMonitor CRD is not ours to ship; this is the part of its published
# openAPIV3Schema (monitoring.coreos.com/v1) that the chart uses, so a typo in a field still fails.
PODMONITOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PodMonitor"},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector"],
            "properties": {
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "any": {"type": "boolean"},
                        "matchNames": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}},
                },
                "podMetricsEndpoints": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "interval": {
                                "type": "string",
                                "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$",
                            },
                            "scrapeTimeout": {
                                "type": "string",
                                "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$",
                            },
                            "relabelings": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "sourceLabels": {"type": "array", "items": {"type": "string"}},
                                        "targetLabel": {"type": "string"},
                                        "action": {"type": "string"},
                                        "regex": {"type": "string"},
                                        "replacement": {"type": "string"},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


def _crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema for every CRD the chart ships."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted((CHART / "files").glob("*.yaml")):  # the CRD a template renders (templates/crd.yaml)
        for crd in yaml.safe_load_all(Path(path).read_text()):
            if not crd:
                continue
            for version in crd["spec"]["versions"]:
                key = (f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])
                schemas[key] = version["schema"]["openAPIV3Schema"]
    return schemas


def _validate(obj: dict[str, Any], crd_schemas: dict[tuple[str, str], dict[str, Any]]) -> None:
    key = (obj["apiVersion"], obj["kind"])
    if key in crd_schemas:
        body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
        jsonschema.validate(body, crd_schemas[key])
    elif key == ("monitoring.coreos.com/v1", "PodMonitor"):
        jsonschema.validate(obj, PODMONITOR_SCHEMA)
    else:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_every_rendered_object_is_valid_kubernetes(helm: Helm, option: str) -> None:
    objects = helm.render(OPTIONS[option])
    crd_schemas = _crd_schemas()
    assert objects
    for obj in objects:
        try:
            _validate(obj, crd_schemas)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as exc:
            pytest.fail(f"{option}: {obj['kind']}/{obj['metadata']['name']} is invalid: {exc}")


def test_the_validator_rejects_what_the_api_server_would(helm: Helm) -> None:
    """Guard against a validator that accepts anything: a broken Deployment must fail."""
    (deployment,) = by_kind(helm.render(), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = "yes"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystm"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
