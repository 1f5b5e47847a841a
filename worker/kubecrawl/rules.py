"""The declarative spider format (YAML/JSON): one pydantic model, and the JSON Schema generated from it.

``SpiderRules`` is the single source of truth for the format: ``kubecrawl crawl spider.yaml`` validates
a document against it, and the operator embeds :func:`spider_rules_json_schema` in the Crawl CRD at
``spec.spider.rules``. The model stays friendly to Kubernetes structural schemas: every field has a
description, unknown keys are errors (``extra="forbid"``), no recursion, and no unions of different
types (post-processing steps are plain strings such as ``"join: "`` rather than string-or-object).
See docs/declarative.md for the format with examples.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigurationError
from .regex import compile_linear

#: post-processing steps and whether they take an argument (``name`` or ``name:arg``)
POST_OPS: dict[str, str] = {
    "strip": "strip whitespace from each value",
    "normalize_space": "collapse runs of whitespace to one space and strip",
    "lower": "lower-case each value",
    "upper": "upper-case each value",
    "nonempty": "drop empty values",
    "unique": "drop repeated values, keeping the first",
    "first": "keep only the first value",
    "last": "keep only the last value",
    "join": "join all values into one string; the argument is the separator (default empty)",
    "int": "convert to an integer (commas and spaces ignored); values that fail are dropped",
    "float": "convert to a float (commas and spaces ignored); values that fail are dropped",
    "to_datetime": "parse a date/time into ISO 8601; the argument is a strptime format, else "
    "epoch seconds/milliseconds or a free-form date are accepted",
    "urljoin": "make each value an absolute URL against the response URL",
    "re": "keep group 1 (or the whole match) of the regular expression argument; non-matches are dropped",
    "sub": "regular-expression substitution, argument PATTERN=>REPLACEMENT",
    "default": "if no value is left, use the argument",
}

_NAME = r"^[A-Za-z][A-Za-z0-9_]{0,62}$"
_OP_RE = re.compile(r"^([a-z_]+)(?::(.*))?$", re.S)


def parse_post_op(step: str) -> tuple[str, str | None]:
    """``"join: "`` → ``("join", " ")``; ``"strip"`` → ``("strip", None)``. Raises ValueError if unknown."""
    m = _OP_RE.match(step)
    if m is None or m.group(1) not in POST_OPS:
        known = ", ".join(sorted(POST_OPS))
        raise ValueError(f"unknown post-processing step {step!r}; known steps: {known} (arguments as name:arg)")
    name, arg = m.group(1), m.group(2)
    if name in ("re", "sub") and not arg:
        raise ValueError(f"post-processing step {name!r} needs an argument, e.g. '{name}:PATTERN'")
    if name == "sub" and "=>" not in (arg or ""):
        raise ValueError("post-processing step 'sub' takes PATTERN=>REPLACEMENT")
    if name in ("re", "sub"):
        _check_regex((arg or "").split("=>", 1)[0])
    return name, arg


def _check_regex(pattern: str) -> str:
    compile_linear(pattern)  # RegexError (a ValueError) says what RE2 refuses and why
    return pattern


class _Rules(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class NodeSelector(_Rules):
    """Where to find values or nodes: exactly one of ``xpath``, ``css``, ``jsonpath``; ``regex`` may refine it."""

    xpath: str | None = Field(None, description="XPath query (HTML/XML responses).")
    css: str | None = Field(None, description="CSS selector; ::text and ::attr(name) pseudo-elements work.")
    jsonpath: str | None = Field(
        None, description="JSON path (jsonpath-ng syntax), e.g. $.result.data[*] or url relative to a node."
    )
    regex: str | None = Field(
        None,
        description="Regular expression: applied to what the other query found, or to the response text "
        "when used alone. Group 1 (or the whole match) is kept.",
    )

    @field_validator("regex")
    @classmethod
    def _valid_regex(cls, v: str | None) -> str | None:
        return None if v is None else _check_regex(v)

    def queries(self) -> list[str]:
        return [k for k in ("xpath", "css", "jsonpath") if getattr(self, k) is not None]

    @model_validator(mode="after")
    def _one_query(self) -> NodeSelector:
        q = self.queries()
        if len(q) > 1:
            raise ValueError(f"give only one of xpath, css, jsonpath (got {', '.join(q)})")
        if not q and self.regex is None and not self._has_other_source():
            raise ValueError("give one of xpath, css, jsonpath or regex")
        return self

    def _has_other_source(self) -> bool:
        return False


class FieldRule(NodeSelector):
    """How one item field gets its value: a query (with optional regex), or ``const``/``meta``/``response``."""

    const: str | None = Field(None, description="A constant value.")
    meta: str | None = Field(
        None, description="Take the value carried in the request's meta under this key (see follow.meta)."
    )
    response: Literal["url", "status", "encoding", "request_url"] | None = Field(
        None, description="Take a property of the response: url (after redirects), status, encoding, request_url."
    )
    many: bool = Field(False, description="Keep every value as a list (default: the first value only).")
    post: list[str] = Field(
        default_factory=list,
        description="Post-processing steps applied in order, each 'name' or 'name:argument', e.g. strip, "
        "'join: ', 'to_datetime:%Y-%m-%d %H:%M', int, urljoin, 're:(\\d+)', 'sub:\\s+=> ', 'default:n/a'.",
    )
    required: bool = Field(False, description="Drop the item (counted as dropped) when this field has no value.")

    def _has_other_source(self) -> bool:
        return any(v is not None for v in (self.const, self.meta, self.response))

    @model_validator(mode="after")
    def _one_source(self) -> FieldRule:
        sources = [k for k in ("const", "meta", "response") if getattr(self, k) is not None]
        if len(sources) > 1 or (sources and (self.queries() or self.regex is not None)):
            raise ValueError(
                f"give one source: a query (xpath/css/jsonpath, optionally with regex) or one of "
                f"const, meta, response (got {', '.join(self.queries() + sources)})"
            )
        return self

    @field_validator("post")
    @classmethod
    def _valid_post(cls, v: list[str]) -> list[str]:
        for i, step in enumerate(v):
            try:
                parse_post_op(step)
            except ValueError as exc:
                raise ValueError(f"post[{i}]: {exc}") from None
        return v


class ItemRule(_Rules):
    """Items a callback yields: one per response, or one per node selected by ``each``."""

    each: NodeSelector | None = Field(
        None, description="Select nodes (e.g. list rows or JSON records); fields are then relative to each node."
    )
    fields: dict[str, FieldRule] = Field(description="Item field name → how to extract it.", min_length=1)

    @field_validator("fields")
    @classmethod
    def _field_names(cls, v: dict[str, FieldRule]) -> dict[str, FieldRule]:
        for name in v:
            if not name or len(name) > 128:
                raise ValueError(f"item field name {name!r} must be 1 to 128 characters")
        return v


class FollowRule(NodeSelector):
    """Links to follow from a response: found by a query, filtered by allow/deny, sent to a callback."""

    each: NodeSelector | None = Field(
        None, description="Select nodes first; the link query and meta fields are then relative to each node."
    )
    callback: str = Field(description="Name of the callback (a key of `callbacks`) that parses the linked pages.")
    allow: list[str] = Field(default_factory=list, description="Follow only URLs matching one of these regexes.")
    deny: list[str] = Field(default_factory=list, description="Never follow URLs matching one of these regexes.")
    meta: dict[str, FieldRule] = Field(
        default_factory=dict,
        description="Values to carry to the linked request's meta (read there with a field's `meta: KEY`).",
    )
    priority: int = Field(0, description="Priority of the new requests (higher first).")
    dont_filter: bool = Field(False, description="Fetch even if the URL was seen before (no request dedup).")
    fingerprint_ttl: float | None = Field(
        None, gt=0, description="Seconds after which a seen URL of this rule may be fetched again (re-visit age)."
    )

    @field_validator("allow", "deny")
    @classmethod
    def _valid_patterns(cls, v: list[str]) -> list[str]:
        for p in v:
            _check_regex(p)
        return v


class CallbackRules(_Rules):
    """A named callback: how to read the response, which items it yields and which links it follows."""

    format: Literal["auto", "html", "json"] = Field(
        "auto",
        description="Response format: json uses jsonpath queries, html uses xpath/css; auto decides "
        "by Content-Type (or a body starting with { or [).",
    )
    items: list[ItemRule] = Field(default_factory=list, description="Item rules applied to every response.")
    follow: list[FollowRule] = Field(default_factory=list, description="Link rules applied to every response.")


class PageRange(_Rules):
    """Page numbers substituted for ``{page}`` in a start URL template."""

    first: int = Field(1, ge=0, description="First page number.")
    last: int = Field(1, ge=0, description="Last page number (inclusive).")
    step: int = Field(1, ge=1, description="Increment between page numbers.")

    @model_validator(mode="after")
    def _ordered(self) -> PageRange:
        if self.last < self.first:
            raise ValueError(f"last ({self.last}) must not be smaller than first ({self.first})")
        if (self.last - self.first) // self.step >= 100_000:
            raise ValueError("a page range may hold at most 100000 pages")
        return self


class StartRules(_Rules):
    """The start requests of every round."""

    urls: list[str] = Field(default_factory=list, description="Start URLs; relative ones resolve against base_url.")
    template: str | None = Field(None, description="A URL template with {page}, expanded for every number in `pages`.")
    pages: PageRange | None = Field(None, description="Page numbers for `template` (default: page 1 only).")
    callback: str = Field("parse", description="Callback that parses the start pages.")

    @model_validator(mode="after")
    def _some_url(self) -> StartRules:
        if not self.urls and self.template is None:
            raise ValueError("give start.urls or start.template")
        if self.template is not None and "{page}" not in self.template:
            raise ValueError("start.template must contain {page}")
        return self


class IncrementalRules(_Rules):
    """Incremental crawling: run with --every/--cron (or a Crawl's spec.schedule) to repeat rounds."""

    enabled: bool = Field(
        False, description="Start requests of every round bypass request dedup, so list pages are re-fetched."
    )
    fingerprint_ttl: float | None = Field(
        None, gt=0, description="Seconds after which any seen page may be fetched again (re-visit age)."
    )


class Politeness(_Rules):
    """Politeness and download limits; unset values use the settings (CLI/env/file) or the defaults."""

    concurrency: int | None = Field(None, ge=1, le=10_000, description="Concurrent requests per process.")
    concurrency_per_host: int | None = Field(None, ge=1, le=10_000, description="Concurrent requests per host.")
    download_delay: float | None = Field(None, ge=0, description="Seconds between requests to one host.")
    download_timeout: float | None = Field(None, gt=0, description="Seconds before a request times out.")
    max_retries: int | None = Field(None, ge=0, le=100, description="Retries on network errors, 5xx and 429.")
    obey_robots: bool | None = Field(None, description="Respect robots.txt.")
    user_agent: str | None = Field(None, description="User-Agent header.")


class SpiderRules(_Rules):
    """A spider described as data. ``kubecrawl crawl spider.yaml`` runs it; a Crawl embeds it."""

    name: str = Field(pattern=_NAME, description="Spider name (default crawl name and Redis key prefix).")
    base_url: str | None = Field(
        None,
        pattern=r"^https?://",
        description="Base for relative start URLs. Override it without editing the document with "
        "-s base_url=URL or KUBECRAWL_BASE_URL (e.g. to point the spider at a local copy of the site).",
    )
    start: StartRules = Field(description="Start requests of every round.")
    callbacks: dict[str, CallbackRules] = Field(
        min_length=1, description="Callbacks by name: how each kind of page is parsed."
    )
    item_key: list[str] = Field(
        default_factory=list,
        description="Item fields that form the content key; an item whose key was stored before is not "
        "stored again (default: the item_key setting; empty means no content dedup).",
    )
    item_dedup: Literal["skip", "update", "off"] | None = Field(
        None, description="skip: store a key once; update: store a new version when the content changed; off."
    )
    incremental: IncrementalRules | None = Field(None, description="Incremental crawling (rounds).")
    allowed_domains: list[str] = Field(
        default_factory=list,
        description="Follow links only to these domains (and their subdomains); empty allows any.",
    )
    politeness: Politeness | None = Field(None, description="Politeness and download limits.")
    settings: dict[str, Any] = Field(
        default_factory=dict, description="Other kubecrawl settings by key (lowest precedence), e.g. item_pipelines."
    )

    @field_validator("callbacks")
    @classmethod
    def _callback_names(cls, v: dict[str, CallbackRules]) -> dict[str, CallbackRules]:
        for name in v:
            if not re.match(_NAME, name):
                raise ValueError(f"callback name {name!r} must be an identifier not starting with _")
        return v

    @model_validator(mode="after")
    def _callbacks_exist(self) -> SpiderRules:
        known = set(self.callbacks)
        refs = [("start.callback", self.start.callback)]
        for cname, cb in self.callbacks.items():
            refs += [(f"callbacks.{cname}.follow.{i}.callback", f.callback) for i, f in enumerate(cb.follow)]
        for where, ref in refs:
            if ref not in known:
                raise ValueError(f"{where}: no callback named {ref!r} (callbacks: {', '.join(sorted(known))})")
        return self


def spider_rules_json_schema() -> dict[str, Any]:
    """The JSON Schema of :class:`SpiderRules` (with ``$defs``), as the operator embeds it in the CRD."""
    return SpiderRules.model_json_schema(mode="validation")


def validate_rules(doc: Any, source: str = "spider document") -> SpiderRules:
    """Validate a parsed document; errors name every bad field by its path."""
    if not isinstance(doc, dict):
        raise ConfigurationError(f"{source}: a declarative spider must be a mapping, got {type(doc).__name__}")
    try:
        return SpiderRules.model_validate(doc)
    except ValidationError as exc:
        raise ConfigurationError(f"{source}: invalid spider rules: {format_errors(exc)}") from None


def format_errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(document)"
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)
