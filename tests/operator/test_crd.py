"""crds/crawl.yaml: generated from the model and current, a valid structural CRD, with the
example Crawls accepted by its schema and the invalid ones rejected."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import kubernetes_validate
import pytest
import yaml

from kubecrawl_operator.crd import crawl_crd
from kubecrawl_operator.validation import check_spec

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "crds" / "crawl.yaml"
EXAMPLES = sorted(ROOT.glob("examples/crawl*.yaml"))
INVALID = sorted((ROOT / "examples" / "invalid").glob("*.yaml"))
JUNCTORS = ("oneOf", "anyOf", "allOf", "not")


def openapi_validate(instance: Any, schema: dict[str, Any]) -> None:
    """A CRD schema is OpenAPI v3.0, i.e. JSON Schema draft 4 semantics (boolean exclusiveMinimum...)."""
    jsonschema.Draft4Validator(schema).validate(instance)


def crd() -> dict[str, Any]:
    return yaml.safe_load(CRD_FILE.read_text())  # type: ignore[no-any-return]


def crawl_schema() -> dict[str, Any]:
    return crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


def test_crd_file_is_generated_from_the_current_model() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "operator" / "scripts" / "gen_crd.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert crd() == crawl_crd()


@pytest.mark.parametrize("version", ["1.33", "1.37"])
def test_crd_is_a_valid_custom_resource_definition(version: str) -> None:
    kubernetes_validate.validate(crd(), version, strict=True)


def structural_violations(node: dict[str, Any], path: str = "", in_junctor: bool = False) -> list[str]:
    """The rules of https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#specifying-a-structural-schema."""
    out: list[str] = []
    if "$ref" in node or "$defs" in node or "definitions" in node:
        out.append(f"{path}: $ref/$defs are not allowed")
    if in_junctor:
        for key in (
            "type",
            "description",
            "default",
            "additionalProperties",
            "nullable",
            "x-kubernetes-preserve-unknown-fields",
            "x-kubernetes-int-or-string",
        ):
            if key in node:
                out.append(f"{path}: {key} inside a logical junctor")
    elif not ({"type", "x-kubernetes-int-or-string"} & set(node)) and not node.get(
        "x-kubernetes-preserve-unknown-fields"
    ):
        out.append(f"{path}: no type")
    if "properties" in node and "additionalProperties" in node:
        out.append(f"{path}: properties and additionalProperties together")
    if node.get("additionalProperties") is False:
        out.append(f"{path}: additionalProperties: false")
    if node.get("x-kubernetes-int-or-string") and "type" in node:
        out.append(f"{path}: int-or-string with a type")
    if isinstance(node.get("type"), list) or node.get("type") == "null":
        out.append(f"{path}: type must be one string, not null")
    if "default" in node and not in_junctor:
        try:
            openapi_validate(node["default"], node)
        except jsonschema.ValidationError as exc:
            out.append(f"{path}: default does not validate: {exc.message}")
    for name, sub in (node.get("properties") or {}).items():
        out += structural_violations(sub, f"{path}.{name}", in_junctor)
    if isinstance(node.get("items"), dict):
        out += structural_violations(node["items"], f"{path}[]", in_junctor)
    if isinstance(node.get("additionalProperties"), dict):
        out += structural_violations(node["additionalProperties"], f"{path}{{}}", in_junctor)
    for junctor in JUNCTORS:
        branches = node.get(junctor)
        for i, branch in enumerate(branches if isinstance(branches, list) else [branches] if branches else []):
            out += structural_violations(branch, f"{path}.{junctor}[{i}]", True)
    return out


def test_crd_schema_is_structural() -> None:
    assert structural_violations(crawl_schema()) == []


def test_spider_rules_schema_comes_from_the_worker() -> None:
    from kubecrawl.rules import spider_rules_json_schema

    rules = crawl_schema()["properties"]["spec"]["properties"]["spider"]["properties"]["rules"]
    assert set(rules["properties"]) == set(spider_rules_json_schema()["properties"])
    assert not rules.get("x-kubernetes-preserve-unknown-fields")


def test_crd_has_status_and_scale_subresources_and_printer_columns() -> None:
    version = crd()["spec"]["versions"][0]
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    assert version["subresources"]["status"] == {}
    assert [c["name"] for c in version["additionalPrinterColumns"]][:8] == [
        "Phase",
        "Replicas",
        "Ready",
        "Pages",
        "Items",
        "Queued",
        "Schedule",
        "Age",
    ]
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert status["x-kubernetes-preserve-unknown-fields"] is True  # kopf's bookkeeping is not pruned
    assert crd()["spec"]["scope"] == "Namespaced" and crd()["spec"]["names"]["shortNames"]


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """What the API server does before validation: fill `default`s of absent fields, recursively."""
    if isinstance(value, dict) and "properties" in schema:
        for name, sub in schema["properties"].items():
            if name not in value and "default" in sub:
                value[name] = sub["default"]
            if name in value:
                value[name] = apply_defaults(sub, value[name])
    return value


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_crawls_are_accepted(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    schema = crawl_schema()
    openapi_validate(apply_defaults(schema, doc), schema)
    spec, problem = check_spec(doc["spec"])
    assert problem is None and spec is not None


def test_defaults_are_applied_by_the_schema() -> None:
    doc = {
        "apiVersion": "kubecrawl.io/v1alpha1",
        "kind": "Crawl",
        "metadata": {"name": "x"},
        "spec": {"spider": {"module": "a.b:C"}},
    }
    spec = apply_defaults(crawl_schema(), doc)["spec"]
    assert (spec["replicas"], spec["suspend"], spec["scaleToZero"]) == (1, False, True)
    # Politeness has no defaults: what the Crawl leaves unset stays the spider's custom_settings'.
    assert not spec.get("politeness")
    assert "requests" not in (spec.get("dedup") or {})
    assert spec["redis"]["storage"] == "1Gi"
    assert spec["redis"]["retainOnDelete"] is False


def cel_failures(schema: dict[str, Any], value: Any) -> list[str]:
    """Evaluate every `x-kubernetes-validations` rule where its value is present, as the API server does."""
    out: list[str] = []
    env = celpy.Environment()
    for rule in schema.get("x-kubernetes-validations") or []:
        program = env.program(env.compile(rule["rule"]))
        if not program.evaluate({"self": celpy.json_to_cel(value)}):
            out.append(rule["message"])
    if isinstance(value, dict):
        for name, sub in (schema.get("properties") or {}).items():
            if name in value:
                out += cel_failures(sub, value[name])
    return out


def api_server_rejects(doc: dict[str, Any]) -> bool:
    """The OpenAPI schema or a CEL rule rejects the object (after defaulting, like the API server)."""
    schema = crawl_schema()
    try:
        openapi_validate(doc, schema)
    except jsonschema.ValidationError:
        return True
    return bool(cel_failures(schema, apply_defaults(schema, doc)))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_crawls_pass_the_cel_rules(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    assert cel_failures(crawl_schema(), apply_defaults(crawl_schema(), doc)) == []


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_crawls_are_rejected_by_the_api_server_checks_and_the_operator(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    assert api_server_rejects(doc)
    spec, problem = check_spec(doc["spec"], doc["metadata"]["name"])
    assert spec is None and problem is not None and problem.message
