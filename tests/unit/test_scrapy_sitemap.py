"""Sitemap reading for SitemapSpider: entries as Scrapy gives them, and hostile documents refused."""

from __future__ import annotations

import gzip

from kubecrawl.request import Request
from kubecrawl.response import Response
from kubecrawl.scrapy.sitemap import entry_locs, robots_sitemaps, sitemap_body, sitemap_entries

URLSET = b"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" xmlns:xhtml="http://www.w3.org/1999/xhtml">
  <url><loc> http://example.com/a </loc><lastmod>2024-01-01</lastmod>
       <xhtml:link rel="alternate" hreflang="de" href="http://example.com/de/a"/></url>
  <url><lastmod>2024-01-02</lastmod></url>
  <!-- a comment --><url><loc>http://example.com/b</loc></url>
</urlset>"""


def resp(body: bytes, url: str = "http://example.com/sitemap.xml", ctype: str = "application/xml") -> Response:
    return Response(url, 200, {"content-type": ctype}, body, Request(url))


def test_entries_namespaces_removed_loc_required_alternates() -> None:
    kind, entries = sitemap_entries(URLSET)
    got = list(entries)
    assert kind == "urlset"
    assert got == [
        {"loc": "http://example.com/a", "lastmod": "2024-01-01", "alternate": ["http://example.com/de/a"]},
        {"loc": "http://example.com/b"},
    ]
    assert entry_locs(got[0], True) == ["http://example.com/a", "http://example.com/de/a"]
    assert entry_locs(got[0], False) == ["http://example.com/a"]


def test_entities_are_not_resolved() -> None:
    xxe = (
        b'<?xml version="1.0"?><!DOCTYPE u [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>http://e.com/&x;</loc></url></urlset>'
    )
    _, entries = sitemap_entries(xxe)
    assert all("root:" not in e["loc"] for e in entries)


def test_gzip_within_the_limit_and_bombs_refused() -> None:
    gz = gzip.compress(URLSET)
    assert sitemap_body(resp(gz, "http://example.com/s.xml.gz", "application/x-gzip"), 1 << 20) == URLSET
    bomb = gzip.compress(b"<urlset>" + b" " * (5 << 20) + b"</urlset>")
    assert sitemap_body(resp(bomb, "http://example.com/s.xml.gz", "application/x-gzip"), 1 << 20) is None
    assert sitemap_body(resp(b"<html></html>", "http://example.com/page", "text/html"), 1 << 20) is None
    assert sitemap_body(resp(URLSET, "http://example.com/s.xml", "text/plain"), 1 << 20) == URLSET


def test_robots_sitemap_lines() -> None:
    text = "User-agent: *\nDisallow: /x\nSitemap: /sm.xml\nsitemap:http://other.example/s2.xml\nSitemap:\n"
    assert list(robots_sitemaps(text, "http://example.com/robots.txt")) == [
        "http://example.com/sm.xml",
        "http://other.example/s2.xml",
    ]
