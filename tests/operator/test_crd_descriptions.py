"""`kubectl explain crawl.spec` documents every field: each property of the CRD's schema has a description.

The descriptions come from the pydantic models (Field descriptions and class docstrings) and the worker's
spider-rules model through `crd.crawl_crd()`; `crds/crawl.yaml` is that output (test_crd.py checks it is
current), so a new field without a description fails here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from kubecrawl_operator.crd import crawl_crd

CRD_FILE = Path(__file__).resolve().parents[2] / "crds" / "crawl.yaml"


#: The API server refuses a CRD whose schema says anything about `metadata` but `type: object`
#: ("must not specify anything other than name and generateName"); kubectl explain shows ObjectMeta there.
EXEMPT = {"crawl.metadata"}


def undocumented(node: dict[str, Any], path: str) -> list[str]:
    missing: list[str] = []
    for name, sub in (node.get("properties") or {}).items():
        where = f"{path}.{name}"
        if where not in EXEMPT and not str(sub.get("description") or "").strip():
            missing.append(where)
        missing += undocumented(sub, where)
    for key, suffix in (("items", "[]"), ("additionalProperties", "{}")):
        if isinstance(node.get(key), dict):
            missing += undocumented(node[key], path + suffix)
    for key in ("oneOf", "anyOf", "allOf"):
        for branch in node.get(key) or []:
            missing += undocumented(branch, path)
    return missing


def schema_of(crd: dict[str, Any]) -> dict[str, Any]:
    (version,) = crd["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


def test_every_property_of_the_generated_schema_has_a_description() -> None:
    schema = schema_of(crawl_crd())
    assert undocumented(schema, "crawl") == []
    # the walk reaches the nested spider rules too (the worker's own model)
    rules = schema["properties"]["spec"]["properties"]["spider"]["properties"]["rules"]
    assert rules["properties"]["start"]["properties"]["urls"]["description"]


def test_the_shipped_crd_file_is_documented_too() -> None:
    assert undocumented(schema_of(yaml.safe_load(CRD_FILE.read_text())), "crawl") == []


def test_metadata_says_nothing_but_its_type() -> None:
    assert schema_of(crawl_crd())["properties"]["metadata"] == {"type": "object"}


def test_the_check_finds_a_missing_description() -> None:
    schema = schema_of(crawl_crd())
    del schema["properties"]["spec"]["properties"]["politeness"]["properties"]["perHost"]["description"]
    assert undocumented(schema, "crawl") == ["crawl.spec.politeness.perHost"]
