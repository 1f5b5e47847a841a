"""Scrapy's ``LinkExtractor``, with links resolved by the WHATWG URL Standard (:mod:`kubecrawl.urls`).

As Scrapy documents it: links are taken from the ``attrs`` (``href``) of the ``tags`` (``a``, ``area``)
anywhere on the page or only inside ``restrict_xpaths``/``restrict_css``, in document order; each value
is stripped of HTML whitespace, resolved against the page (its ``<base href>`` if any), passed to
``process_value`` (``None`` drops it), and kept if its scheme is http, https, file or ftp, it matches one
of ``allow`` (if any) and none of ``deny`` (regular expressions, searched), its host is one of
``allow_domains`` or a subdomain (if any) and not of ``deny_domains``, its path does not end with one of
``deny_extensions`` (default :data:`IGNORED_EXTENSIONS`), and its text matches ``restrict_text`` (if
any). ``unique`` (default) keeps the first of links to the same canonical URL (fragments count);
``canonicalize`` replaces each URL by its canonical form (w3lib, fragment dropped).

One difference, by design: URLs are resolved as browsers resolve them, so an ``href`` Scrapy would
resolve differently (a backslash, a tab inside the URL, an IDNA host) gives the browser's URL here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from lxml import etree
from parsel.csstranslator import HTMLTranslator
from w3lib.url import canonicalize_url

from ...urls import BaseURL
from ..http.request.form import page_base_url
from ..link import Link

if TYPE_CHECKING:
    from ...response import Response

#: the extensions Scrapy's link extractor ignores by default (its documented ``IGNORED_EXTENSIONS``)
IGNORED_EXTENSIONS = [
    "7z",
    "7zip",
    "bz2",
    "rar",
    "tar",
    "tar.gz",
    "xz",
    "zip",
    "mng",
    "pct",
    "bmp",
    "gif",
    "jpg",
    "jpeg",
    "png",
    "pst",
    "psp",
    "tif",
    "tiff",
    "ai",
    "drw",
    "dxf",
    "eps",
    "ps",
    "svg",
    "cdr",
    "ico",
    "webp",
    "mp3",
    "wma",
    "ogg",
    "wav",
    "ra",
    "aac",
    "mid",
    "au",
    "aiff",
    "3gp",
    "asf",
    "asx",
    "avi",
    "mov",
    "mp4",
    "mpg",
    "qt",
    "rm",
    "swf",
    "wmv",
    "m4a",
    "m4v",
    "flv",
    "webm",
    "xls",
    "xlsm",
    "xlsx",
    "xltm",
    "xltx",
    "potm",
    "potx",
    "ppt",
    "pptm",
    "pptx",
    "pps",
    "doc",
    "docb",
    "docm",
    "docx",
    "dotm",
    "dotx",
    "odt",
    "ods",
    "odg",
    "odp",
    "css",
    "pdf",
    "exe",
    "bin",
    "rss",
    "dmg",
    "iso",
    "apk",
    "jar",
    "sh",
    "rb",
    "js",
    "hta",
    "bat",
    "cpl",
    "msi",
    "msp",
    "py",
]

_HTML5_SPACE = " \t\n\r\x0c"
_VALID_SCHEMES = frozenset({"http", "https", "file", "ftp"})
_string_content = etree.XPath("string()")


def _as_tuple(value: Any) -> tuple[Any, ...]:
    if value is None:
        return ()
    if isinstance(value, str | re.Pattern):
        return (value,)
    return tuple(value)


def _regexes(value: Any) -> list[re.Pattern[str]]:
    return [x if isinstance(x, re.Pattern) else re.compile(x) for x in _as_tuple(value)]


def _host_in(url: str, domains: Iterable[str]) -> bool:
    """Scrapy's ``url_is_from_any_domain``: the URL's host (with its port, if any) is a domain or below it."""
    host = urlsplit(url).netloc.lower()
    if not host:
        return False
    return any(host == d or host.endswith(f".{d}") for d in (d.lower() for d in domains))


def _nofollow(rel: str | None) -> bool:
    return bool(rel) and "nofollow" in rel.lower().replace(",", " ").split()  # type: ignore[union-attr]


def _local(tag: Any) -> Any:
    return tag.rpartition("}")[2] if isinstance(tag, str) and tag.startswith("{") else tag


class LinkExtractor:
    def __init__(
        self,
        allow: Any = (),
        deny: Any = (),
        allow_domains: Any = (),
        deny_domains: Any = (),
        restrict_xpaths: Any = (),
        tags: Any = ("a", "area"),
        attrs: Any = ("href",),
        canonicalize: bool = False,
        unique: bool = True,
        process_value: Callable[[str], str | None] | None = None,
        deny_extensions: Any = None,
        restrict_css: Any = (),
        strip: bool = True,
        restrict_text: Any = None,
    ) -> None:
        self.allow_res = _regexes(allow)
        self.deny_res = _regexes(deny)
        self.allow_domains = set(_as_tuple(allow_domains))
        self.deny_domains = set(_as_tuple(deny_domains))
        self.restrict_xpaths = _as_tuple(restrict_xpaths) + tuple(
            HTMLTranslator().css_to_xpath(c) for c in _as_tuple(restrict_css)
        )
        self.tags = frozenset(_as_tuple(tags))
        self.attrs = frozenset(_as_tuple(attrs))
        self.canonicalize = canonicalize
        self.unique = unique
        self.process_value = process_value or (lambda v: v)
        exts = IGNORED_EXTENSIONS if deny_extensions is None else _as_tuple(deny_extensions)
        self.deny_extensions = tuple(f".{e}" for e in exts)
        self.restrict_text = _regexes(restrict_text)
        self.strip = strip

    def _key(self, link: Link) -> str:
        return link.url if self.canonicalize else canonicalize_url(link.url, keep_fragments=True)

    def _raw_links(self, response: Response) -> list[Link]:
        sel = response.selector
        roots: list[Any]
        if self.restrict_xpaths:
            roots = [s.root for x in self.restrict_xpaths for s in sel.xpath(x) if not isinstance(s.root, str)]
        else:
            roots = [sel.root]
        base = BaseURL(page_base_url(response))
        out: list[Link] = []
        for root in roots:
            for el in root.iter(etree.Element):
                if _local(el.tag) not in self.tags:
                    continue
                for name, value in el.attrib.items():
                    if name not in self.attrs:
                        continue
                    if self.strip:
                        value = value.strip(_HTML5_SPACE)
                    joined = base.resolve(value)
                    if joined is None:
                        continue
                    url = self.process_value(joined)
                    if url is None:
                        continue
                    url = base.resolve(url) or url
                    out.append(Link(url, str(_string_content(el)) or "", nofollow=_nofollow(el.get("rel"))))
        return out

    def _allowed(self, link: Link) -> bool:
        url = link.url
        if url.split("://", 1)[0] not in _VALID_SCHEMES:
            return False
        if self.allow_res and not any(r.search(url) for r in self.allow_res):
            return False
        if self.deny_res and any(r.search(url) for r in self.deny_res):
            return False
        if self.allow_domains and not _host_in(url, self.allow_domains):
            return False
        if self.deny_domains and _host_in(url, self.deny_domains):
            return False
        if self.deny_extensions and urlsplit(url).path.lower().endswith(self.deny_extensions):
            return False
        return not (self.restrict_text and not any(r.search(link.text) for r in self.restrict_text))

    def extract_links(self, response: Response) -> list[Link]:
        links = [lnk for lnk in self._raw_links(response) if self._allowed(lnk)]
        if self.canonicalize:
            for lnk in links:
                lnk.url = canonicalize_url(lnk.url)
        if not self.unique:
            return links
        seen: set[str] = set()
        out = []
        for lnk in links:
            key = self._key(lnk)
            if key not in seen:
                seen.add(key)
                out.append(lnk)
        return out

    def matches(self, url: str) -> bool:
        if self.allow_domains and not _host_in(url, self.allow_domains):
            return False
        if self.deny_domains and _host_in(url, self.deny_domains):
            return False
        allowed = any(r.search(url) for r in self.allow_res) if self.allow_res else True
        return allowed and not any(r.search(url) for r in self.deny_res)


__all__ = ["IGNORED_EXTENSIONS", "Link", "LinkExtractor"]
