"""Responses handed to spider callbacks: decoded text, XPath/CSS selectors, JSON, link helpers."""

from __future__ import annotations

import codecs
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import httpx
import orjson
from parsel import Selector, SelectorList
from parsel.csstranslator import HTMLTranslator

from .encoding import declared_codec, decode_as, decode_body
from .request import CallbackRef, Request, _callback_name
from .urls import C0_SPACE, BaseURL

_UTF8 = {"utf-8", "utf_8", "ascii"}


class Response:
    """The result of downloading a :class:`Request` (after redirects).

    ``text`` is decoded lazily (see :mod:`kubecrawl.encoding`); ``xpath``/``css`` use a parsel
    :class:`~parsel.Selector` built once per response.
    """

    __slots__ = ("_base", "_encoding", "_selector", "_text", "body", "headers", "request", "status", "url")

    def __init__(
        self,
        url: str,
        status: int = 200,
        headers: httpx.Headers | dict[str, str] | None = None,
        body: bytes | str = b"",
        request: Request = None,  # type: ignore[assignment]  # set by a middleware chain when omitted
        *,
        encoding: str | None = None,
    ) -> None:
        # Scrapy's ``HtmlResponse(url, status=200, headers=None, body=b"", request=None, encoding=...)``
        # shape, for a middleware that answers a request itself
        self.url = url
        self.status = status
        self.headers = headers if isinstance(headers, httpx.Headers) else httpx.Headers(headers or {})
        if isinstance(body, str):
            body = body.encode(encoding or "utf-8")
        self.body = body
        self.request = request
        self._encoding: str | None = codecs.lookup(encoding).name if encoding else None
        self._text: str | None = None
        self._selector: Selector | None = None
        self._base: BaseURL | None = None

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.url}>"

    @property
    def meta(self) -> dict[str, Any]:
        return self.request.meta

    def _decode(self) -> None:
        self._encoding, self._text = decode_body(self.body, _content_type(self.headers))

    @property
    def encoding(self) -> str:
        """The Python codec the body decodes with (WHATWG Encoding Standard, see :mod:`kubecrawl.encoding`)."""
        enc = self._encoding
        if enc is None:
            # a declared encoding needs no decoding yet: the selector parses UTF-8 bytes directly
            enc = self._encoding = declared_codec(self.body, _content_type(self.headers))
            if enc is None:
                self._decode()
                enc = self._encoding
        assert enc is not None
        return enc

    @property
    def text(self) -> str:
        text = self._text
        if text is None:
            if self._encoding is not None:
                text = self._text = decode_as(self.body, self._encoding)
            else:
                self._decode()
                text = self._text
        assert text is not None
        return text

    @property
    def selector(self) -> Selector:
        sel = self._selector
        if sel is None:
            enc = self.encoding
            if enc in _UTF8 and self.body and not self.body.startswith(b"\xef\xbb\xbf"):
                # lxml parses the raw UTF-8 bytes directly: no decode/encode round trip (an empty
                # body goes the text way: parsel refuses body=b"", and Scrapy selects nothing in it)
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
        """``url`` made absolute against this page as a browser does (WHATWG URL Standard, see
        :mod:`kubecrawl.urls`). A URL the standard rejects comes back unchanged: a request for it
        is refused and counted (``bad_url``) by the engine, never sent."""
        base = self._base
        if base is None:
            base = self._base = BaseURL(self.url)
        resolved = base.resolve(url)
        return url if resolved is None else resolved

    def follow(self, url: str | Selector, callback: CallbackRef = None, **kwargs: Any) -> Request:
        """A new request for ``url`` (relative, absolute, an ``<a>``/attribute selector, or a link
        extractor's ``Link``)."""
        if isinstance(url, Selector):
            url = _selector_href(url)
        elif not isinstance(url, str):
            url = url.url  # a kubecrawl.scrapy Link
        return Request(self.urljoin(url), callback, **kwargs)

    def follow_all(
        self,
        urls: Iterable[str | Selector] | None = None,
        callback: CallbackRef = None,
        *,
        css: str | None = None,
        xpath: str | None = None,
        **kwargs: Any,
    ) -> list[Request]:
        """Requests for many links: ``urls`` given, or every ``href`` under ``css``/``xpath``.

        Every link is resolved as a browser would (:meth:`urljoin`). Links to this same document
        (``#fragment`` only, or an empty href) are not requests and are left out; links of other
        schemes (``mailto:``, ``javascript:``...) and URLs the standard rejects are returned, so
        that the engine counts them (``skipped_scheme``, ``bad_url``) rather than lose them silently.
        """
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
        base = self._base
        if base is None:
            base = self._base = BaseURL(self.url)
        resolve = base.resolve
        for u in hrefs:
            if isinstance(u, str):
                href: str | None = u
            elif isinstance(u, Selector):
                root = u.root
                href = root if isinstance(root, str) else (u.attrib.get("href") or u.attrib.get("src"))
            elif hasattr(u, "get"):  # an lxml element
                href = u.get("href") or u.get("src")
            else:  # a kubecrawl.scrapy Link
                href = u.url
            if not href or _same_document(href):
                continue
            resolved = resolve(href)
            out.append(make(href if resolved is None else resolved))
        return out


def _content_type(headers: Any) -> str | None:
    """The Content-Type, from httpx headers or (a Scrapy spider's response) Scrapy's bytes ``Headers``."""
    value = headers.get("content-type")
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _same_document(href: str) -> bool:
    """An href that points into this page (``#top``, or only spaces): nothing to fetch."""
    first = href[0]
    if first == "#":
        return True
    if first <= " " or href[-1] <= " ":
        stripped = href.strip(C0_SPACE)
        return not stripped or stripped[0] == "#"
    return False


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
    ctype = (_content_type(resp.headers) or "").lower()
    return "xml" if ("xml" in ctype and "html" not in ctype) else "html"
