"""The development HTTP cache (kubecrawl/httpcache.py) in a real crawl against a real local server:
what is stored, what is answered from the cache, ignored statuses, expiry and damaged entries."""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path
from typing import Any

from kubecrawl import Request, Response, Spider
from kubecrawl.runner import CrawlProcess
from kubecrawl.settings import build_settings
from tests.helpers.httpserver import TestHTTPServer


class CacheSpider(Spider):
    name = "cache"
    handle_httpstatus_list = [404]

    async def start_requests(self) -> Any:
        for path in ("/ok", "/gz", "/gone", "/moved"):
            yield Request(self.base + path)  # type: ignore[attr-defined]

    async def parse(self, response: Response) -> Any:
        yield {"url": response.url, "status": response.status, "text": response.text}


def _site() -> TestHTTPServer:
    s = TestHTTPServer()
    s.html("/ok", "<p>plain</p>")
    s.route(
        "/gz",
        lambda _r: (200, {"Content-Type": "text/html", "Content-Encoding": "gzip"}, gzip.compress(b"<p>zipped</p>")),
    )
    s.html("/gone", "<p>not here</p>", status=404)
    s.route("/moved", lambda _r: (301, {"Location": "/target"}, b""))
    s.html("/target", "<p>target</p>")
    return s.start()


def crawl(site: TestHTTPServer, cache: Path, **extra: Any) -> tuple[list[dict[str, Any]], CrawlProcess]:
    settings = build_settings(
        cli={"http_cache": True, "http_cache_dir": str(cache), "progress": "off", "log_level": "WARNING", **extra},
        environ={},
    )
    proc = CrawlProcess(CacheSpider(base=site.url("").rstrip("/")), settings)
    items: list[dict[str, Any]] = []

    class Keep:
        def process_item(self, item: dict[str, Any], spider: Any) -> dict[str, Any]:
            items.append(item)
            return item

    proc.pipelines.pipelines.append(Keep())
    assert asyncio.run(proc.run()) == 0
    return items, proc


def _norm(items: list[dict[str, Any]]) -> list[tuple[str, int, str]]:
    return sorted((i["url"], i["status"], i["text"]) for i in items)


def test_second_run_is_answered_from_the_cache(tmp_path: Path) -> None:
    site = _site()
    try:
        first, p1 = crawl(site, tmp_path / "c")
        hits = len(site.log)
        assert hits == 6  # robots.txt, four pages, the redirect's target
        assert p1.stats["httpcache/store"] == 6 and p1.stats["httpcache/hit"] == 0
        second, p2 = crawl(site, tmp_path / "c")
        assert len(site.log) == hits  # nothing asked of the server
        assert p2.stats["httpcache/hit"] == 6 and p2.stats["httpcache/miss"] == 0
        assert p2.stats.summary()["httpcache/hit"] == 6
        assert _norm(second) == _norm(first)
        assert any(t == "<p>zipped</p>" for _, _, t in _norm(second))  # the stored body is decoded on replay
        assert p2.stats["redirects"] == 1  # the 301 is replayed and still becomes a scheduled request
    finally:
        site.stop()


def test_ignored_statuses_expiry_and_damaged_entries(tmp_path: Path) -> None:
    site = _site()
    try:
        crawl(site, tmp_path / "c", http_cache_ignore_http_codes="404")
        assert site.hits["/gone"] == 1
        _, proc = crawl(site, tmp_path / "c", http_cache_ignore_http_codes="404")
        assert site.hits["/gone"] == 2 and site.hits["/ok"] == 1  # 404 never stored; the rest replayed
        assert proc.stats["httpcache/uncacheable"] == 2  # /gone and the server's 404 for robots.txt
        bodies = list((tmp_path / "c").glob("*/*/body"))
        assert len(bodies) == 4
        for body in bodies:  # a damaged entry is a miss: fetched and stored again
            if body.read_bytes() == b"<p>plain</p>":
                body.write_bytes(b"<p>changed behind the cache's back</p>")
        items, _ = crawl(site, tmp_path / "c", http_cache_ignore_http_codes="404")
        assert site.hits["/ok"] == 2
        assert "<p>plain</p>" in [i["text"] for i in items]
        crawl(site, tmp_path / "c", http_cache_expiration=0.001)
        assert site.hits["/ok"] == 3 and site.hits["/target"] == 2  # everything expired
    finally:
        site.stop()
