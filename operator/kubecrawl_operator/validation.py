"""Checks a CRD schema cannot express: cron values, the spider rules, reserved settings."""

from __future__ import annotations

import difflib
import logging
from typing import Any
from urllib.parse import urlsplit

import pydantic
from croniter import croniter

from kubecrawl_operator.builders.workers import (
    RESERVED_SETTINGS,
    SETTINGS_WITH_SPEC_FIELDS,
    spider_configmap,
    user_settings,
)
from kubecrawl_operator.models import MAX_NAME_LENGTH, CrawlSpec, parse_spec
from kubecrawl_operator.naming import CrawlRef
from kubecrawl_operator.phase import Problem
from kubecrawl_operator.worker_settings import SCRAPY_ALIASES, SETTINGS

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
    problem = check_settings(spec)
    if problem is not None:
        return None, problem
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


def _closest(key: str) -> str:
    """`; did you mean 'x'?` for a misspelt worker setting, or nothing."""
    if key in SCRAPY_ALIASES:
        return f"; Scrapy's {key.upper()} is {SCRAPY_ALIASES[key]!r} here"
    close = difflib.get_close_matches(key, sorted(SETTINGS - RESERVED_SETTINGS), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def check_settings(spec: CrawlSpec) -> Problem | None:
    """Every `spec.settings` key a worker setting (the worker exits 2 on an unknown KUBECRAWL_* variable),
    none set twice (a spec field and the same setting), and spec.env not shadowing what the operator sets."""
    unknown = sorted(k for k in spec.settings if k not in SETTINGS)
    if unknown:
        what = "; ".join(f"spec.settings.{k} is not a worker setting{_closest(k)}" for k in unknown)
        return Problem("UnknownSetting", f"{what} (docs/settings.md lists them)")
    # A spec field and the same key in spec.settings: which one wins would be a guess.
    fields = user_settings(spec.model_copy(update={"settings": {}}))
    twice = sorted(k for k in spec.settings if k in fields and k in SETTINGS_WITH_SPEC_FIELDS)
    if "feeds" in spec.settings and spec.output:
        twice.append("feeds")
    if twice:
        return Problem(
            "InvalidSettings",
            "; ".join(f"spec.settings.{k} and {SETTINGS_WITH_SPEC_FIELDS[k]} are both set: keep one" for k in twice),
        )
    for var in spec.env:
        if var.name.startswith("KUBECRAWL_"):
            key = var.name[len("KUBECRAWL_") :].lower()
            if key in RESERVED_SETTINGS:
                return Problem("InvalidEnv", f"spec.env {var.name}: the operator sets it from the spec")
            if key not in SETTINGS and var.name != "KUBECRAWL_WORKER_ID":
                return Problem(
                    "UnknownSetting", f"spec.env {var.name} is not a worker setting{_closest(key)} (docs/settings.md)"
                )
        if var.name == "PYTHONPATH" and spec.spider.source is not None:
            return Problem("InvalidEnv", "spec.env PYTHONPATH: spec.spider.source sets it")
    return check_output(spec)


def check_output(spec: CrawlSpec) -> Problem | None:
    """`spec.output` checked with the worker's own feed parser where it knows the scheme."""
    try:
        from kubecrawl.errors import ConfigurationError  # type: ignore[import-not-found,unused-ignore]
        from kubecrawl.feeds.spec import SCHEMES, make_spec  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    seen: set[str] = set()
    for i, sink in enumerate(spec.output):
        if sink.uri in seen:
            return Problem("InvalidOutput", f"spec.output[{i}]: {sink.uri!r} is given twice")
        seen.add(sink.uri)
        scheme = sink.uri.split("://", 1)[0].lower()
        if urlsplit(sink.uri).password is not None:
            return Problem(
                "InvalidOutput",
                f"spec.output[{i}].uri holds a password: put it in a Secret named by spec.output[{i}].secretRef "
                "(PGPASSWORD, AWS_SECRET_ACCESS_KEY...)",
            )
        if scheme not in SCHEMES:
            continue  # s3:// with a worker that predates the S3 sink: the worker checks it
        options = dict(sink.options)
        if sink.format is not None:
            options["format"] = sink.format
        try:
            make_spec(sink.uri, options)
        except ConfigurationError as exc:
            return Problem("InvalidOutput", f"spec.output[{i}]: {exc}")
    return None


def redact(uri: str) -> str:
    """A sink URI safe for status and events (any password replaced by ***)."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    user, _, host = parts.netloc.rpartition("@")
    return parts._replace(netloc=f"{user.split(':', 1)[0]}:***@{host}").geturl()
