"""Field extraction for declarative spiders: XPath / CSS / JSON path / regex queries and post-processing.

Everything here is a pure function of a response (or a node inside it) and a rule from
:mod:`kubecrawl.rules`. A query yields a list of values; post-processing steps map that list to
another list; a field keeps the first value unless it is ``many``.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from jsonpath_ng import JSONPath
from jsonpath_ng.ext import parse as jsonpath_parse
from parsel import Selector

from .regex import compile_linear
from .rules import FieldRule, NodeSelector, parse_post_op
from .urls import C0_SPACE, BaseURL

log = logging.getLogger(__name__)

#: a node: a parsel Selector for HTML, any JSON value for JSON, or None for "the whole response"
Node = Any


class ExtractionError(ValueError):
    """A query that cannot apply to this node (e.g. CSS on JSON)."""


@functools.lru_cache(maxsize=512)
def compiled_jsonpath(expr: str) -> JSONPath:
    return jsonpath_parse(expr)


def compiled_regex(pattern: str) -> Any:
    """The spider's pattern, compiled by RE2 (linear time: kubecrawl/regex.py)."""
    return compile_linear(pattern)


def regex_values(pattern: str, texts: list[Any]) -> list[str]:
    """Every match of ``pattern`` in every text: group 1 if the pattern has groups, else the whole match."""
    rx = compiled_regex(pattern)
    out: list[str] = []
    for t in texts:
        if t is None:
            continue
        for m in rx.finditer(t if isinstance(t, str) else str(t)):
            out.append(m.group(1) if rx.groups else m.group(0))
    return out


def _selector_text(sel: Selector) -> str:
    root = sel.root
    if isinstance(root, str):
        return root
    return str(sel.xpath("string()").get() or "")


def _selector_link(sel: Selector) -> str | None:
    root = sel.root
    if isinstance(root, str):
        return root
    return sel.attrib.get("href") or sel.attrib.get("src")


def select_nodes(rule: NodeSelector, node: Node, text: str | None = None) -> list[Node]:
    """Nodes selected by a query: sub-selectors for HTML, JSON values for JSON, strings for regex."""
    if rule.xpath is not None or rule.css is not None:
        if not isinstance(node, Selector):
            raise ExtractionError("xpath/css queries need an HTML response (this one is JSON)")
        found = node.xpath(rule.xpath) if rule.xpath is not None else node.css(rule.css or "")
        nodes: list[Node] = list(found)
        if rule.regex is not None:
            nodes = regex_values(rule.regex, [_selector_text(n) for n in nodes])
        return nodes
    if rule.jsonpath is not None:
        if isinstance(node, Selector):
            raise ExtractionError("jsonpath queries need a JSON response (this one is HTML)")
        values = [m.value for m in compiled_jsonpath(rule.jsonpath).find(node)]
        if rule.regex is not None:
            values = regex_values(rule.regex, values)
        return values
    if rule.regex is not None:
        source = text if text is not None else (_selector_text(node) if isinstance(node, Selector) else node)
        return regex_values(rule.regex, [source])
    return []


def query_values(rule: NodeSelector, node: Node, text: str | None = None) -> list[Any]:
    """Values of a query: text of HTML nodes (attribute/text nodes as they are), JSON values as they are."""
    return [_selector_text(n) if isinstance(n, Selector) else n for n in select_nodes(rule, node, text)]


def query_links(rule: NodeSelector, node: Node, text: str | None = None) -> list[str]:
    """Link values of a query: ``href``/``src`` of selected elements, or the selected strings."""
    out: list[str] = []
    for n in select_nodes(rule, node, text):
        link = _selector_link(n) if isinstance(n, Selector) else n
        if isinstance(link, str):
            link = link.strip(C0_SPACE)  # the URL Standard's whitespace, not Python's
            if link:
                out.append(link)
    return out


# -- post-processing ------------------------------------------------------------------------
_WS = re.compile(r"\s+")


def _as_number_text(v: Any) -> str:
    return str(v).replace(",", "").replace("_", "").strip()


def _to_int(v: Any) -> int | None:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    try:
        return int(_as_number_text(v))
    except ValueError:
        try:
            f = float(_as_number_text(v))
        except ValueError:
            return None
        return int(f) if f.is_integer() else None


def _to_float(v: Any) -> float | None:
    try:
        return float(v if isinstance(v, (int, float)) else _as_number_text(v))
    except (TypeError, ValueError):
        return None


def to_datetime(value: Any, fmt: str | None = None) -> str | None:
    """ISO 8601 text of a date/time: by ``fmt`` (strptime), or epoch seconds/ms, or a free-form date."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value).strip()
    if not text:
        return None
    if fmt:
        try:
            return datetime.strptime(text, fmt).isoformat()
        except ValueError:
            return None
    if re.fullmatch(r"\d{9,13}(\.\d+)?", text):
        seconds = float(text)
        if seconds > 1e11:  # milliseconds
            seconds /= 1000
        return datetime.fromtimestamp(seconds, tz=UTC).isoformat()
    try:
        return datetime.fromisoformat(text).isoformat()
    except ValueError:
        pass
    try:
        from dateutil import parser as dateparser

        return dateparser.parse(text).isoformat()
    except (ValueError, OverflowError, ImportError):
        return None


def _elementwise(fn: Callable[[Any], Any]) -> Callable[[list[Any], str | None, str], list[Any]]:
    def step(values: list[Any], arg: str | None, base_url: str) -> list[Any]:
        out = []
        for v in values:
            r = fn(v)
            if r is not None:
                out.append(r)
        return out

    return step


def _str(v: Any) -> str:
    return v if isinstance(v, str) else ("" if v is None else str(v))


def _join(values: list[Any], arg: str | None, base_url: str) -> list[Any]:
    return [(arg or "").join(_str(v) for v in values)] if values else []


def _re(values: list[Any], arg: str | None, base_url: str) -> list[Any]:
    return regex_values(arg or "", values)


def _sub(values: list[Any], arg: str | None, base_url: str) -> list[Any]:
    pattern, _, repl = (arg or "").partition("=>")
    rx = compiled_regex(pattern)
    return [rx.sub(repl, _str(v)) for v in values]


def _unique(values: list[Any], arg: str | None, base_url: str) -> list[Any]:
    seen: list[Any] = []
    for v in values:
        if v not in seen:
            seen.append(v)
    return seen


def _urljoin(values: list[Any], arg: str | None, base_url: str) -> list[Any]:
    """Each value made absolute as a browser would; one the URL Standard rejects stays as it was."""
    base = BaseURL(base_url)
    out = []
    for v in values:
        href = _str(v)
        resolved = base.resolve(href)
        out.append(href.strip(C0_SPACE) if resolved is None else resolved)
    return out


def _to_dt(values: list[Any], arg: str | None, base_url: str) -> list[Any]:
    return [d for d in (to_datetime(v, arg) for v in values) if d is not None]


STEPS: dict[str, Callable[[list[Any], str | None, str], list[Any]]] = {
    "strip": _elementwise(lambda v: _str(v).strip()),
    "normalize_space": _elementwise(lambda v: _WS.sub(" ", _str(v)).strip()),
    "lower": _elementwise(lambda v: _str(v).lower()),
    "upper": _elementwise(lambda v: _str(v).upper()),
    "nonempty": lambda vs, a, b: [v for v in vs if v not in (None, "", [], {})],
    "unique": _unique,
    "first": lambda vs, a, b: vs[:1],
    "last": lambda vs, a, b: vs[-1:],
    "join": _join,
    "int": _elementwise(_to_int),
    "float": _elementwise(_to_float),
    "to_datetime": _to_dt,
    "urljoin": _urljoin,
    "re": _re,
    "sub": _sub,
    "default": lambda vs, a, b: vs if vs else [a if a is not None else ""],
}


_parsed_step = functools.lru_cache(maxsize=1024)(parse_post_op)


def apply_post(values: list[Any], steps: list[str], base_url: str = "") -> list[Any]:
    """Run post-processing steps (validated names, see :data:`kubecrawl.rules.POST_OPS`) in order."""
    for step in steps:
        name, arg = _parsed_step(step)
        values = STEPS[name](values, arg, base_url)
    return values


def field_value(
    rule: FieldRule,
    node: Node,
    *,
    text: str | None = None,
    meta: dict[str, Any] | None = None,
    response_props: Mapping[str, Any] | None = None,
    base_url: str = "",
) -> Any:
    """The value of one field: a list when ``many``, else the first value (or ``None``)."""
    values: list[Any]
    if rule.const is not None:
        values = [rule.const]
    elif rule.meta is not None:
        v = (meta or {}).get(rule.meta)
        values = [] if v is None else (list(v) if isinstance(v, list) else [v])
    elif rule.response is not None:
        v = (response_props or {}).get(rule.response)
        values = [] if v is None else [v]
    else:
        values = query_values(rule, node, text)
    values = apply_post(values, rule.post, base_url)
    if rule.many:
        return values
    return values[0] if values else None


def is_missing(value: Any) -> bool:
    return value is None or value == "" or value == []
