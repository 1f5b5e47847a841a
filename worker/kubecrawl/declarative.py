"""Turning a declarative spider document (YAML/JSON, see :mod:`kubecrawl.rules`) into a Spider class.

The generated class is an ordinary :class:`~kubecrawl.spider.Spider`: its start requests come from
``start``, and every callback name in ``callbacks`` resolves to a function that applies that
callback's item and follow rules to a response. Requests carry only the callback *name*, so the same
document drives every role (none, master, slave) without any code crossing a process boundary.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import orjson
import yaml

from .errors import ConfigurationError, SpiderError
from .extract import ExtractionError, Node, field_value, is_missing, query_links, select_nodes
from .regex import compile_linear
from .request import Request
from .response import Response
from .rules import CallbackRules, FollowRule, ItemRule, NodeSelector, SpiderRules, validate_rules
from .settings import Settings
from .spider import Spider

log = logging.getLogger(__name__)

_POLITENESS_KEYS = (
    "concurrency",
    "concurrency_per_host",
    "download_delay",
    "download_timeout",
    "max_retries",
    "obey_robots",
    "user_agent",
)


def rules_settings(rules: SpiderRules) -> dict[str, Any]:
    """The spider-level settings (``custom_settings``) a document asks for."""
    known = set(Settings.model_fields)
    out: dict[str, Any] = {}
    for key, value in rules.settings.items():
        k = key.lower().replace("-", "_")
        if k not in known:
            raise ConfigurationError(f"settings.{key}: unknown setting; see docs/settings.md for the list")
        out[k] = value
    if rules.politeness is not None:
        for k in _POLITENESS_KEYS:
            v = getattr(rules.politeness, k)
            if v is not None:
                out[k] = v
    if rules.item_dedup is not None:
        out["item_dedup"] = rules.item_dedup
    if rules.incremental is not None and rules.incremental.fingerprint_ttl is not None:
        out["fingerprint_ttl"] = rules.incremental.fingerprint_ttl
    return out


def start_urls(rules: SpiderRules, base_override: str | None = None) -> list[str]:
    """Every start URL of a round: ``urls`` then the ``template`` pages, resolved against the base URL.

    With ``base_override``, relative URLs resolve against it, and absolute URLs that begin with the
    document's own ``base_url`` are moved onto it (so a document written for the real site can be
    pointed at a local copy without editing it).
    """
    st = rules.start
    raw = list(st.urls)
    if st.template is not None:
        pages = st.pages
        first, last, step = (pages.first, pages.last, pages.step) if pages else (1, 1, 1)
        raw += [st.template.replace("{page}", str(n)) for n in range(first, last + 1, step)]
    base = base_override or rules.base_url
    out = []
    for url in raw:
        if base_override and rules.base_url and url.startswith(rules.base_url):
            url = base_override.rstrip("/") + "/" + url[len(rules.base_url) :].lstrip("/")
        elif not urlsplit(url).scheme:
            if base is None:
                raise ConfigurationError(f"start URL {url!r} is relative and the spider has no base_url")
            url = base.rstrip("/") + "/" + url.lstrip("/")
        out.append(url)
    return out


def _domain_allowed(url: str, domains: list[str]) -> bool:
    if not domains:
        return True
    host = (urlsplit(url).hostname or "").lower()
    return any(host == d or host.endswith("." + d) for d in (x.lower().lstrip(".") for x in domains))


class DeclarativeSpider(Spider):
    """Base of the classes generated from documents; ``rules`` is the validated document."""

    rules: ClassVar[SpiderRules]

    def base_url(self) -> str | None:
        settings = getattr(self, "settings", None)
        override = settings.base_url if isinstance(settings, Settings) else os.environ.get("KUBECRAWL_BASE_URL")
        return override or self.rules.base_url

    async def start_requests(self) -> AsyncIterator[Request]:
        override = self.base_url()
        for url in start_urls(self.rules, override if override != self.rules.base_url else None):
            yield Request(url, self.rules.start.callback, dont_filter=self.incremental)

    def resolve_callback(self, name: str | None) -> Any:
        name = name or "parse"
        if name in self.rules.callbacks:
            return functools.partial(self.apply_callback, name)
        # only the document's callbacks: a request naming any other method (e.g. a hostile queue
        # entry naming start_requests) is refused
        raise SpiderError(
            f"spider {self.name!r} has no callback {name!r} (callbacks: {', '.join(self.rules.callbacks)})"
        )

    def apply_callback(self, name: str, response: Response) -> Iterator[Any]:
        """Apply callback ``name``'s rules: the items and requests it yields for ``response``, one at
        a time (a page of 650k links never becomes one list of 650k requests)."""
        cb = self.rules.callbacks[name]
        root = _root_node(cb, response)
        for rule in cb.items:
            yield from self._items(rule, root, response)
        for follow in cb.follow:
            yield from self._follow(follow, root, response)

    # -- items ---------------------------------------------------------------------------------
    def _nodes(self, each: NodeSelector | None, root: Node, response: Response) -> list[Node]:
        if each is None:
            return [root]
        return select_nodes(each, root, _text_if_needed(each, response))

    def _items(self, rule: ItemRule, root: Node, response: Response) -> list[dict[str, Any]]:
        props = _response_props(response)
        items = []
        for node in self._nodes(rule.each, root, response):
            item: dict[str, Any] = {}
            missing = None
            for fname, frule in rule.fields.items():
                value = field_value(
                    frule,
                    node,
                    text=_text_if_needed(frule, response) if node is root else None,
                    meta=response.meta,
                    response_props=props,
                    base_url=response.url,
                )
                if frule.required and is_missing(value):
                    missing = fname
                    break
                item[fname] = value
            if missing is not None:
                log.debug("%s: item without required field %r skipped", response.url, missing)
                continue
            items.append(item)
        return items

    # -- links ---------------------------------------------------------------------------------
    def _follow(self, rule: FollowRule, root: Node, response: Response) -> Iterator[Request]:
        props = _response_props(response)
        allow = [compile_linear(p) for p in rule.allow]
        deny = [compile_linear(p) for p in rule.deny]
        for node in self._nodes(rule.each, root, response):
            text = _text_if_needed(rule, response) if node is root else None
            meta = {
                k: field_value(
                    f,
                    node,
                    text=_text_if_needed(f, response) if node is root else None,
                    meta=response.meta,
                    response_props=props,
                    base_url=response.url,
                )
                for k, f in rule.meta.items()
            }
            for link in query_links(rule, node, text):
                url = response.urljoin(link)
                if not url.startswith(("http://", "https://")):
                    continue
                if allow and not any(p.search(url) for p in allow):
                    continue
                if any(p.search(url) for p in deny) or not _domain_allowed(url, self.rules.allowed_domains):
                    continue
                yield Request(
                    url,
                    rule.callback,
                    meta=dict(meta),
                    priority=rule.priority,
                    dont_filter=rule.dont_filter,
                    fingerprint_ttl=rule.fingerprint_ttl,
                )


def _is_json(cb: CallbackRules, response: Response) -> bool:
    if cb.format != "auto":
        return cb.format == "json"
    ctype = response.headers.get("content-type", "").lower()
    if "json" in ctype:
        return True
    if "html" in ctype or "xml" in ctype:
        return False
    return response.body.lstrip()[:1] in (b"{", b"[")


def _root_node(cb: CallbackRules, response: Response) -> Node:
    if _is_json(cb, response):
        try:
            return response.json()
        except orjson.JSONDecodeError as exc:
            raise ExtractionError(f"{response.url}: response is not JSON: {exc}") from None
    return response.selector


def _text_if_needed(rule: NodeSelector, response: Response) -> str | None:
    """The decoded text, only for a regex used alone (it then runs over the whole response)."""
    return response.text if rule.regex is not None and not rule.queries() else None


class _ResponseProps(Mapping[str, Any]):
    """Properties a ``response:`` field may read, computed on first use (``encoding`` decodes the body)."""

    _GETTERS: ClassVar[dict[str, Callable[[Response], Any]]] = {
        "url": lambda r: r.url,
        "status": lambda r: r.status,
        "encoding": lambda r: r.encoding,
        "request_url": lambda r: r.request.url,
    }

    def __init__(self, response: Response) -> None:
        self._response = response

    def __getitem__(self, key: str) -> Any:
        return self._GETTERS[key](self._response)

    def __iter__(self) -> Iterator[str]:
        return iter(self._GETTERS)

    def __len__(self) -> int:
        return len(self._GETTERS)


def _response_props(response: Response) -> Mapping[str, Any]:
    return _ResponseProps(response)


def spider_class_from_rules(doc: dict[str, Any] | SpiderRules, source: str = "spider rules") -> type[Spider]:
    """A Spider class for an in-memory document (validated; errors name the bad field)."""
    rules = doc if isinstance(doc, SpiderRules) else validate_rules(doc, source)
    incremental = rules.incremental is not None and rules.incremental.enabled
    attrs: dict[str, Any] = {
        "__doc__": f"Declarative spider {rules.name!r} (from {source}).",
        "__module__": __name__,
        "rules": rules,
        "name": rules.name,
        "start_urls": [],
        "custom_settings": rules_settings(rules),
        "item_key": list(rules.item_key) or None,
        "incremental": incremental,
    }
    cls_name = "Declarative_" + re.sub(r"\W", "_", rules.name)
    return type(cls_name, (DeclarativeSpider,), attrs)


def read_document(path: Path) -> Any:
    """Parse a ``.yaml``/``.yml``/``.json`` spider document."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read spider file {path}: {exc}") from None
    try:
        if path.suffix == ".json":
            return orjson.loads(raw)
        return yaml.safe_load(raw)
    except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"{path}: not valid {path.suffix[1:].upper()}: {exc}") from None


def load_declarative_spider(path: Path) -> type[Spider]:
    """The Spider class for a YAML/JSON spider file (called by :mod:`kubecrawl.loader`)."""
    return spider_class_from_rules(read_document(path), str(path))
