"""Turn a pydantic/JSON Schema into a Kubernetes *structural* OpenAPI v3 schema.

The API server rejects `$ref`, `additionalProperties: false` next to `properties`, type-mixing
`anyOf`, and `null` types. This module inlines `$defs`, turns `Optional[X]` into `X`, int-or-string
unions into `x-kubernetes-int-or-string`, and drops keywords a CRD schema does not allow.
"""

from __future__ import annotations

import copy
from typing import Any

#: Keywords a CRD's JSONSchemaProps accepts (value validations and structure).
ALLOWED = frozenset(
    {
        "type", "format", "description", "default", "enum", "pattern", "items", "properties",
        "additionalProperties", "required", "minimum", "maximum", "exclusiveMinimum",
        "exclusiveMaximum", "minLength", "maxLength", "minItems", "maxItems", "uniqueItems",
        "minProperties", "maxProperties", "multipleOf", "nullable", "oneOf", "anyOf", "allOf", "not",
        "x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string",
        "x-kubernetes-validations", "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
        "x-kubernetes-map-type", "example",
    }
)  # fmt: skip


def to_structural(schema: dict[str, Any]) -> dict[str, Any]:
    """A structural copy of `schema` with every `$ref` into its `$defs` inlined."""
    defs = schema.get("$defs", {})
    return _convert(schema, defs, ())


def _convert(node: dict[str, Any], defs: dict[str, Any], stack: tuple[str, ...]) -> dict[str, Any]:
    node = copy.deepcopy(node)
    if "$ref" in node:
        name = node.pop("$ref").rsplit("/", 1)[-1]
        if name in stack:  # recursive model: keep the value, stop the schema here
            return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        merged = {**defs[name], **node}
        return _convert(merged, defs, (*stack, name))
    if "anyOf" in node:
        branches = [b for b in node.pop("anyOf") if b.get("type") != "null"]
        types = {b.get("type") for b in branches}
        if len(branches) == 1:
            inner = _convert(branches[0], defs, stack)
            return _convert_keywords({**inner, **node}, defs, stack)
        if types == {"integer", "string"} or node.get("x-kubernetes-int-or-string"):
            rest = {k: v for k, v in node.items() if k != "x-kubernetes-int-or-string"}
            return {**_convert_keywords(rest, defs, stack), "x-kubernetes-int-or-string": True}
        # A union of objects or mixed types: keep the value, let the worker validate it.
        return {"x-kubernetes-preserve-unknown-fields": True, **_convert_keywords(node, defs, stack)}
    if node.get("x-kubernetes-int-or-string"):
        node.pop("type", None)
    return _convert_keywords(node, defs, stack)


def _convert_keywords(node: dict[str, Any], defs: dict[str, Any], stack: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key not in ALLOWED:
            continue
        if key == "properties":
            out[key] = {name: _convert(sub, defs, stack) for name, sub in value.items()}
        elif key == "items" and isinstance(value, dict):
            out[key] = _convert(value, defs, stack)
        elif key == "additionalProperties":
            if isinstance(value, dict) and value:
                out[key] = _convert(value, defs, stack)
            elif value is True and "properties" not in node:
                out["x-kubernetes-preserve-unknown-fields"] = True
            # `false` (extra=forbid) is the default pruning behaviour of a CRD: drop it
        elif key in ("oneOf", "allOf") and isinstance(value, list):
            out[key] = [_convert(v, defs, stack) for v in value]
        elif key == "default" and value is None:
            continue
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            # JSON Schema 2020 (pydantic gt/lt) puts the bound here; OpenAPI v3.0 wants a flag.
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        else:
            out[key] = value
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "properties" in out:
        _default_empty_objects(out)
    return out


def _default_empty_objects(node: dict[str, Any]) -> None:
    """Give optional nested objects with defaulted fields `default: {}`, so the API server applies them."""
    required = set(node.get("required", []))
    for name, sub in node["properties"].items():
        if name in required or "default" in sub or sub.get("type") != "object":
            continue
        props = sub.get("properties") or {}
        if not sub.get("required") and any("default" in p for p in props.values()):
            sub["default"] = {}
