"""The declarative spider format: what validates, what fails and how the error names the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kubecrawl.errors import ConfigurationError
from kubecrawl.rules import SpiderRules, parse_post_op, spider_rules_json_schema, validate_rules

ROOT = Path(__file__).resolve().parents[2]


def minimal(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "books",
        "start": {"urls": ["http://127.0.0.1/"]},
        "callbacks": {"parse": {"items": [{"fields": {"title": {"css": "h1::text"}}}]}},
    }
    doc.update(over)
    return doc


def error_of(doc: Any) -> str:
    with pytest.raises(ConfigurationError) as info:
        validate_rules(doc, "spider.yaml")
    return str(info.value)


def test_minimal_document_validates_with_defaults() -> None:
    rules = validate_rules(minimal())
    assert rules.start.callback == "parse"
    assert rules.item_key == [] and rules.item_dedup is None and rules.incremental is None
    assert rules.callbacks["parse"].format == "auto"


def test_example_sina_roll_document_is_valid() -> None:
    doc = yaml.safe_load((ROOT / "examples" / "sina_roll.yaml").read_text(encoding="utf-8"))
    rules = validate_rules(doc)
    assert rules.item_key == ["title", "source"]
    assert rules.incremental is not None and rules.incremental.enabled
    follow = rules.callbacks["roll"].follow[0]
    assert follow.each is not None and follow.each.jsonpath == "$.result.data[*]"
    assert follow.callback == "article"


def test_typo_in_a_nested_key_is_an_error_naming_its_path() -> None:
    doc = minimal(callbacks={"parse": {"items": [{"fields": {"title": {"csss": "h1"}}}]}})
    msg = error_of(doc)
    assert "callbacks.parse.items.0.fields.title.csss" in msg
    assert "spider.yaml" in msg


def test_unknown_post_processing_step_names_the_step_and_the_known_ones() -> None:
    doc = minimal(callbacks={"parse": {"items": [{"fields": {"t": {"css": "h1", "post": ["strip", "titlecase"]}}}]}})
    msg = error_of(doc)
    assert "callbacks.parse.items.0.fields.t.post" in msg
    assert "post[1]" in msg and "'titlecase'" in msg and "to_datetime" in msg


def test_follow_to_an_undefined_callback_is_an_error() -> None:
    doc = minimal(callbacks={"parse": {"follow": [{"css": "a", "callback": "detail"}]}})
    msg = error_of(doc)
    assert "callbacks.parse.follow.0.callback" in msg and "'detail'" in msg


def test_start_callback_must_exist() -> None:
    assert "start.callback" in error_of(minimal(start={"urls": ["http://x/"], "callback": "roll"}))


def test_field_with_two_queries_or_no_source_is_an_error() -> None:
    two = minimal(callbacks={"parse": {"items": [{"fields": {"t": {"css": "h1", "xpath": "//h1"}}}]}})
    assert "only one of xpath, css, jsonpath" in error_of(two)
    none = minimal(callbacks={"parse": {"items": [{"fields": {"t": {"post": ["strip"]}}}]}})
    assert "fields.t" in error_of(none)
    mixed = minimal(callbacks={"parse": {"items": [{"fields": {"t": {"css": "h1", "const": "x"}}}]}})
    assert "give one source" in error_of(mixed)


def test_invalid_regex_is_reported_where_it_is() -> None:
    doc = minimal(callbacks={"parse": {"follow": [{"css": "a", "allow": ["(unclosed"], "callback": "parse"}]}})
    msg = error_of(doc)
    assert "follow.0.allow" in msg and "invalid regular expression" in msg


def test_start_needs_urls_or_a_template_with_page() -> None:
    assert "start.urls or start.template" in error_of(minimal(start={}))
    assert "{page}" in error_of(minimal(start={"template": "http://x/list"}))
    bad_range = minimal(start={"template": "http://x/{page}", "pages": {"first": 5, "last": 2}})
    assert "start.pages" in error_of(bad_range)


def test_names_must_be_identifiers() -> None:
    assert "name" in error_of(minimal(name="bad name"))
    doc = minimal(start={"urls": ["http://x/"], "callback": "_private"})
    doc["callbacks"] = {"_private": {}}
    assert "callback name '_private'" in error_of(doc)


def test_document_that_is_not_a_mapping_is_rejected() -> None:
    assert "must be a mapping" in error_of(["name", "x"])


def test_post_steps_parse_name_and_argument() -> None:
    assert parse_post_op("strip") == ("strip", None)
    assert parse_post_op("join: ") == ("join", " ")
    assert parse_post_op("to_datetime:%Y-%m-%d %H:%M") == ("to_datetime", "%Y-%m-%d %H:%M")
    assert parse_post_op("sub:\\s+=> ") == ("sub", "\\s+=> ")
    for bad in ("re", "sub:abc", "re:(", "JOIN"):
        with pytest.raises(ValueError):
            parse_post_op(bad)


def _walk(node: dict[str, Any], defs: dict[str, Any], path: str, out: list[str], stack: tuple[str, ...] = ()) -> None:
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        assert name not in stack, f"recursive schema at {path}"
        _walk({**defs[name], **{k: v for k, v in node.items() if k != "$ref"}}, defs, path, out, (*stack, name))
        return
    for branch in node.get("anyOf", []):
        _walk(branch, defs, path, out, stack)
    types = {b.get("type") for b in node.get("anyOf", []) if b.get("type") != "null"}
    assert len(types) <= 1, f"{path} is a union of different types {types}"
    for name, sub in node.get("properties", {}).items():
        if "description" not in sub:
            out.append(f"{path}.{name}")
        _walk(sub, defs, f"{path}.{name}", out, stack)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            _walk(node[key], defs, f"{path}[]", out, stack)


def test_json_schema_is_kubernetes_friendly() -> None:
    schema = spider_rules_json_schema()
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert set(schema["required"]) == {"name", "start", "callbacks"}
    undocumented: list[str] = []
    _walk(schema, schema.get("$defs", {}), "", undocumented)
    assert undocumented == []
    for name, d in schema["$defs"].items():
        if d.get("type") == "object" and "properties" in d:
            assert d.get("additionalProperties") is False, f"{name} accepts unknown keys"


def test_schema_and_model_agree_on_the_example() -> None:
    doc = yaml.safe_load((ROOT / "examples" / "sina_roll.yaml").read_text(encoding="utf-8"))
    rules = SpiderRules.model_validate(doc)
    again = SpiderRules.model_validate(rules.model_dump(exclude_none=True))
    assert again == rules


def _examples() -> list[dict[str, Any]]:
    sina = yaml.safe_load((ROOT / "examples" / "sina_roll.yaml").read_text(encoding="utf-8"))
    return [minimal(), sina]


def test_examples_validate_against_the_generated_json_schema() -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(spider_rules_json_schema())
    for doc in _examples():
        assert list(validator.iter_errors(doc)) == []
    typo = minimal(callbacks={"parse": {"items": [{"fields": {"title": {"csss": "h1"}}}]}})
    assert list(validator.iter_errors(typo)) != []


def _apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """What the Kubernetes API server does with `default`s of a structural schema."""
    if isinstance(value, dict):
        props = schema.get("properties", {})
        out = dict(value)
        for name, sub in props.items():
            if name not in out and "default" in sub:
                out[name] = sub["default"]
            if name in out:
                out[name] = _apply_defaults(sub, out[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for k in out:
                if k not in props:
                    out[k] = _apply_defaults(extra, out[k])
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_apply_defaults(schema["items"], v) for v in value]
    return value


def test_documents_defaulted_by_the_api_server_mean_the_same() -> None:
    """The CRD's structural schema gives optional objects `default: {}`; the result must still validate
    and describe the same crawl."""
    from kubecrawl.declarative import rules_settings, start_urls
    from kubecrawl_operator.structural import to_structural

    structural = to_structural(spider_rules_json_schema())
    for doc in _examples():
        plain = validate_rules(doc)
        defaulted = validate_rules(_apply_defaults(structural, doc))
        assert start_urls(defaulted) == start_urls(plain)
        assert rules_settings(defaulted) == rules_settings(plain)
        assert bool(defaulted.incremental and defaulted.incremental.enabled) == bool(
            plain.incremental and plain.incremental.enabled
        )
        assert defaulted.callbacks == plain.callbacks


def test_a_declarative_spider_resolves_only_its_documents_callbacks() -> None:
    from kubecrawl.declarative import spider_class_from_rules
    from kubecrawl.errors import SpiderError

    spider = spider_class_from_rules(minimal())()
    assert callable(spider.resolve_callback("parse"))
    assert callable(spider.resolve_callback(None))
    for hostile in ("start_requests", "closed", "apply_callback", "_items", "nope"):
        with pytest.raises(SpiderError):
            spider.resolve_callback(hostile)
