"""Reading sitemaps for :class:`~kubecrawl.scrapy.spiders.SitemapSpider` (sitemaps.org protocol).

A sitemap is ``<urlset>`` (pages) or ``<sitemapindex>`` (more sitemaps); each entry is a dict of its
child elements' text with namespaces removed (``loc``, ``lastmod``, ...) and, with alternate links on,
``alternate``: the ``href`` of its ``<xhtml:link>`` children, as Scrapy's entries are.
Entries without ``loc`` are left out. The XML parser resolves no entities and fetches nothing (no XXE);
a gzipped sitemap (``.xml.gz`` served without ``Content-Encoding``) is decompressed up to the crawl's
``max_body_size``; anything else that is not XML is ignored with a warning, as in Scrapy.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from lxml import etree

from ..urls import BaseURL

if TYPE_CHECKING:
    from ..response import Response

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, recover=True, remove_comments=True, huge_tree=False)


def _local(tag: Any) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def sitemap_body(response: Response, limit: int) -> bytes | None:
    """The sitemap XML of ``response``, or None if it is not one."""
    body = response.body
    if body[:2] == b"\x1f\x8b":
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out = d.decompress(body, limit + 1)
        except zlib.error:
            return None
        return None if len(out) > limit else out
    ctype = (response.headers.get("content-type") or b"").lower()
    if isinstance(ctype, str):
        ctype = ctype.encode()
    if b"xml" in ctype or response.url.split("?")[0].endswith((".xml", ".xml.gz")):
        return body
    return None


def sitemap_entries(body: bytes) -> tuple[str, Iterator[dict[str, Any]]]:
    """``("urlset" | "sitemapindex" | other, entries)``."""
    try:
        root = etree.fromstring(body, parser=_PARSER)
    except etree.XMLSyntaxError:
        return "invalid", iter(())
    if root is None:
        return "invalid", iter(())
    kind = _local(root.tag)

    def entries() -> Iterator[dict[str, Any]]:
        for el in root:
            entry: dict[str, Any] = {}
            alternates: list[str] = []
            for child in el:
                name = _local(child.tag)
                if name == "link":
                    href = child.get("href")
                    if href:
                        alternates.append(href.strip())
                elif name:
                    entry[name] = (child.text or "").strip()
            if not entry.get("loc"):
                continue
            if alternates:
                entry["alternate"] = alternates
            yield entry

    return kind, entries()


def robots_sitemaps(text: str, url: str) -> Iterator[str]:
    """The ``Sitemap:`` URLs of a robots.txt, resolved against it."""
    base = BaseURL(url)
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() == "sitemap" and value.strip():
            resolved = base.resolve(value.strip())
            if resolved is not None:
                yield resolved


def entry_locs(entry: dict[str, Any], alternate: bool) -> list[str]:
    """An entry's URL, and its alternates when ``sitemap_alternate_links`` is on."""
    return [entry["loc"], *(entry.get("alternate", []) if alternate else [])]
