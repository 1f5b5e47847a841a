"""Responses handed to spider callbacks: decoded text, XPath/CSS selectors, JSON, link helpers."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import orjson
from parsel import Selector, SelectorList
from parsel.csstranslator import HTMLTranslator

from .encoding import decode_body
from .request import CallbackRef, Request, _callback_name

_UTF8 = {"utf-8", "utf_8", "ascii"}


class Response:
    """The result of downloading a :class:`Request` (after redirects).

    ``text`` is decoded lazily (see :mod:`kubecrawl.encoding`); ``xpath``/``css`` use a parsel
    :class:`~parsel.Selector` built once per response.
    """

    __slots__ = ("_encoding", "_origin", "_selector", "_text", "body", "headers", "request", "status", "url")

    def __init__(
        self,
        url: str,
        status: int,
        headers: httpx.Headers | dict[str, str],
        body: bytes,
        request: Request,
    ) -> None:
        self.url = url
        self.status = status
        self.headers = headers if isinstance(headers, httpx.Headers) else httpx.Headers(headers)
        self.body = body
        self.request = request
        self._encoding: str | None = None
        self._text: str | None = None
        self._selector: Selector | None = None
        self._origin: str | None = None

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.url}>"

    @property
    def meta(self) -> dict[str, Any]:
        return self.request.meta

    def _decode(self) -> None:
        self._encoding, self._text = decode_body(self.body, self.headers.get("content-type"))

    @property
    def encoding(self) -> str:
        if self._encoding is None:
            self._decode()
        assert self._encoding is not None
        return self._encoding

    @property
    def text(self) -> str:
        if self._text is None:
            self._decode()
        assert self._text is not None
        return self._text

    @property
    def selector(self) -> Selector:
        sel = self._selector
        if sel is None:
            enc = self.encoding
            if enc in _UTF8 and not self.body.startswith(b"\xef\xbb\xbf"):
                # lxml parses the raw UTF-8 bytes directly: no decode/encode round trip
                sel = Selector(body=self.body, encoding="utf-8", base_url=self.url, type=_selector_type(self))
            else:
                sel = Selector(text=self.text, base_url=self.url, type=_selector_type(self))
            self._selector = sel
        return sel

    def xpath(self, query: str, **kwargs: Any) -> SelectorList[Selector]:
        return self.selector.xpath(query, **kwargs)

    def css(self, query: str) -> SelectorList[Selector]:
        return self.selector.css(query)

    def json(self) -> Any:
        return orjson.loads(self.body)

    def urljoin(self, url: str) -> str:
        # fast paths for the two commonest link forms (absolute, and root-relative without dot
        # segments); they give what urllib's urljoin gives, at a fraction of its cost
        if url.startswith(("http://", "https://")):
            return url
        if (
            url.startswith("/")
            and not url.startswith("//")
            and "/." not in url
            and not url.endswith(("?", "#", ";"))
            and "?#" not in url
        ):
            origin = self._origin
            if origin is None:
                parts = urlsplit(self.url)
                origin = self._origin = f"{parts.scheme}://{parts.netloc}"
            return origin + url
        return urljoin(self.url, url)

    def follow(self, url: str | Selector, callback: CallbackRef = None, **kwargs: Any) -> Request:
        """A new request for ``url`` (relative, absolute, or an ``<a>``/attribute selector)."""
        if isinstance(url, Selector):
            url = _selector_href(url)
        return Request(self.urljoin(url.strip()), callback, **kwargs)

    def follow_all(
        self,
        urls: Iterable[str | Selector] | None = None,
        callback: CallbackRef = None,
        *,
        css: str | None = None,
        xpath: str | None = None,
        **kwargs: Any,
    ) -> list[Request]:
        """Requests for many links: ``urls`` given, or every ``href`` under ``css``/``xpath``."""
        hrefs: Iterable[Any]
        if urls is None:
            # straight to lxml: no Selector object per link
            query = _css_to_xpath(css) if css else (xpath or "//a[@href]")
            hrefs = self.selector.root.xpath(query)
        else:
            hrefs = urls
        out = []
        cb = _callback_name(callback)
        make = (lambda u: Request._link(u, cb)) if not kwargs else (lambda u: Request(u, callback, **kwargs))
        for u in hrefs:
            if isinstance(u, str):
                href: str | None = u
            elif isinstance(u, Selector):
                root = u.root
                href = root if isinstance(root, str) else (u.attrib.get("href") or u.attrib.get("src"))
            else:  # an lxml element
                href = u.get("href") or u.get("src")
            if not href:
                continue
            href = href.strip()
            # other schemes (javascript:, mailto:, ...) are refused and counted where the request is
            # yielded (skipped_scheme); a bare fragment is this page again
            if href and not href.startswith("#"):
                out.append(make(self.urljoin(href)))
        return out


@lru_cache(maxsize=256)
def _css_to_xpath(query: str) -> str:
    return str(HTMLTranslator().css_to_xpath(query))


def _selector_href(sel: Selector) -> str:
    root = sel.root
    if isinstance(root, str):
        return root
    href = sel.attrib.get("href") or sel.attrib.get("src")
    if href is None:
        raise ValueError(f"cannot follow {sel!r}: it has no href/src attribute")
    return href


def _selector_type(resp: Response) -> str:
    """html or xml from the Content-Type; never "let parsel guess" (it tries json.loads on every page)."""
    ctype = resp.headers.get("content-type", "").lower()
    return "xml" if ("xml" in ctype and "html" not in ctype) else "html"
