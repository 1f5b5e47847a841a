"""Checks a CRD schema cannot express: cron values, the spider rules, reserved settings."""

from __future__ import annotations

import logging
from typing import Any

import pydantic
from croniter import croniter

from kubecrawl_operator.builders.workers import RESERVED_SETTINGS, spider_configmap
from kubecrawl_operator.models import MAX_NAME_LENGTH, CrawlSpec, parse_spec
from kubecrawl_operator.naming import CrawlRef
from kubecrawl_operator.phase import Problem

logger = logging.getLogger(__name__)

#: A ConfigMap's data may hold at most 1 MiB (the API server refuses more); spec.spider.rules goes into one.
CONFIGMAP_LIMIT = 1024 * 1024


def _pydantic_message(exc: pydantic.ValidationError, prefix: str) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def check_rules(rules: dict[str, Any]) -> Problem | None:
    """Validate a declarative spider with the worker's own model (one source of truth)."""
    try:
        from kubecrawl.rules import SpiderRules  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        logger.debug("kubecrawl.rules not importable; spider rules are checked by the worker only")
        return None
    try:
        SpiderRules.model_validate(rules)
    except pydantic.ValidationError as exc:
        return Problem(
            "InvalidSpider", "spec.spider.rules is not a valid spider: " + _pydantic_message(exc, "spec.spider.rules")
        )
    return None


def check_spec(raw_spec: dict[str, Any], name: str = "") -> tuple[CrawlSpec | None, Problem | None]:
    """The parsed spec, or the first problem a user has to fix, in words they can act on."""
    if len(name) > MAX_NAME_LENGTH:
        return None, Problem("InvalidName", f"a Crawl's name must be at most {MAX_NAME_LENGTH} characters")
    try:
        spec = parse_spec(raw_spec)
    except pydantic.ValidationError as exc:
        return None, Problem("InvalidSpec", _pydantic_message(exc, "spec"))
    if spec.schedule is not None and not croniter.is_valid(spec.schedule):
        return None, Problem(
            "InvalidSchedule",
            f"spec.schedule {spec.schedule!r} is not a valid cron expression (e.g. '*/30 * * * *')",
        )
    reserved = sorted(set(spec.settings) & RESERVED_SETTINGS)
    if reserved:
        return None, Problem(
            "InvalidSettings",
            f"spec.settings may not set {', '.join(reserved)}: the operator sets them from the spec",
        )
    if spec.spider.rules is not None:
        problem = check_rules(spec.spider.rules)
        if problem is not None:
            return None, problem
    problem = check_size(spec, name)
    if problem is not None:
        return None, problem
    return spec, None


def check_size(spec: CrawlSpec, name: str = "") -> Problem | None:
    """spec.spider.rules must fit the spider ConfigMap; refused here, before any child is written."""
    configmap = spider_configmap(CrawlRef(name=name or "crawl", namespace="", uid=""), spec)
    if configmap is None:
        return None
    size = sum(len(v.encode()) for v in configmap["data"].values())
    if size <= CONFIGMAP_LIMIT:
        return None
    return Problem(
        "SpiderTooLarge",
        f"spec.spider.rules is {size} bytes as YAML, over the {CONFIGMAP_LIMIT} bytes a ConfigMap holds: "
        "use start.template with pages instead of a long start.urls list, or a Python spider (spec.spider.module) "
        "(docs/operator.md, 'Large specs')",
    )
