"""The Scrapy spider API over kubecrawl's engine, against a real HTTP server on 127.0.0.1.

What a Scrapy callback uses every day: ``meta['depth']`` and ``DEPTH_LIMIT``, offsite filtering from
``allowed_domains``, one-argument errbacks receiving a failure (and kubecrawl's ``(request, exc)``
errbacks still working), ``async def start()``, ``self.crawler.stats``/``self.settings``,
``from_crawler``, ``CloseSpider``, and Scrapy item pipelines ordered by ``ITEM_PIPELINES``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

import kubecrawl.scrapy as scrapy
from kubecrawl import Request, Spider
from kubecrawl.runner import CrawlProcess
from kubecrawl.scrapy.exceptions import CloseSpider, DropItem, NotConfigured
from kubecrawl.scrapy.spidermiddlewares.httperror import HttpError
from kubecrawl.settings import build_settings
from tests.helpers.httpserver import TestHTTPServer


async def run(cls: type, tmp: Path, **spider_args: Any) -> tuple[list[dict[str, Any]], CrawlProcess]:
    out = tmp / "items.jsonl"
    settings = build_settings(
        cli={"output": out, "progress": "off", "retry_backoff": 0.01, "max_retries": 0},
        spider_settings=dict(cls.custom_settings or {}),
        environ={},
    )
    proc = CrawlProcess(cls, settings, spider_args=spider_args)
    assert await proc.run() == 0
    items = [orjson.loads(line) for line in out.read_bytes().splitlines()] if out.exists() else []
    return items, proc


def chain_site(server: TestHTTPServer, n: int) -> None:
    for i in range(n):
        nxt = f'<a href="/d/{i + 1}">next</a>' if i + 1 < n else ""
        server.html(f"/d/{i}", f'<html><body>{nxt}<a href="http://offsite.invalid/x">away</a></body></html>')


class DepthSpider(scrapy.Spider):
    name = "depth"
    custom_settings = {"DEPTH_LIMIT": 2, "ROBOTSTXT_OBEY": False}

    def parse(self, response: Any) -> Any:
        yield {"path": response.url.rsplit("/", 1)[1], "depth": response.meta["depth"]}
        yield from response.follow_all(css="a")


async def test_depth_limit_and_offsite(http_server: TestHTTPServer, tmp_path: Path) -> None:
    chain_site(http_server, 6)
    items, proc = await run(DepthSpider, tmp_path, start_urls=[http_server.url("/d/0")], allowed_domains=["127.0.0.1"])
    assert sorted((i["path"], i["depth"]) for i in items) == [("0", 0), ("1", 1), ("2", 2)]
    # /d/2's two links are one beyond the limit; depth is checked first, as Scrapy's depth middleware
    # runs before its offsite filter, so only the offsite links of /d/0 and /d/1 count as offsite
    assert proc.stats["depth_limited"] == 2
    assert proc.stats["offsite"] == 2
    assert not [p for p in http_server.paths() if p.startswith("/d/3")]


class ErrbackSpider(scrapy.Spider):
    name = "errbacks"
    custom_settings = {"ROBOTSTXT_OBEY": False}

    async def start(self) -> Any:  # Scrapy 2.13's start()
        yield scrapy.Request(self.base + "/missing", errback=self.scrapy_style)
        yield scrapy.Request("http://127.0.0.1:9/refused", errback=self.scrapy_style)
        yield scrapy.Request(self.base + "/gone", errback=self.kubecrawl_style)

    def scrapy_style(self, failure: Any) -> Any:
        http = failure.check(HttpError)
        yield {
            "url": failure.request.url,
            "http": http is HttpError,
            "status": failure.value.response.status if http else None,
            "message": bool(failure.getErrorMessage()),
        }

    def kubecrawl_style(self, request: Any, exc: Any) -> Any:
        yield {"url": request.url, "kind": exc.kind}


async def test_errbacks_by_signature_and_async_start(http_server: TestHTTPServer, tmp_path: Path) -> None:
    http_server.html("/gone", "gone", status=410)
    items, _ = await run(ErrbackSpider, tmp_path, base=http_server.url(""))
    by_url = {i["url"].rsplit("/", 1)[1]: i for i in items}
    assert by_url["missing"] == {"url": http_server.url("/missing"), "http": True, "status": 404, "message": True}
    assert by_url["refused"]["http"] is False and by_url["refused"]["message"] is True
    assert by_url["gone"] == {"url": http_server.url("/gone"), "kind": "http_410"}


class OrderA:
    def process_item(self, item: dict[str, Any], spider: Any) -> Any:
        item["order"] = [*item.get("order", []), "A"]
        if item.get("drop"):
            raise DropItem("asked to")
        return item


class OrderB:
    opened: list[str] = []
    closed: list[str] = []

    def __init__(self, bot: str) -> None:
        self.bot = bot

    @classmethod
    def from_crawler(cls, crawler: Any) -> OrderB:
        return cls(crawler.settings.get("BOT_NAME"))

    def open_spider(self, spider: Any) -> None:
        OrderB.opened.append(spider.name)

    def close_spider(self, spider: Any) -> None:
        OrderB.closed.append(spider.name)

    def process_item(self, item: dict[str, Any], spider: Any) -> Any:
        item["order"] = [*item["order"], "B"]
        item["bot"] = self.bot
        return item


class Disabled:
    @classmethod
    def from_crawler(cls, crawler: Any) -> Disabled:
        raise NotConfigured("no credentials")


class ApiSpider(scrapy.Spider):
    name = "api"
    custom_settings = {
        "ROBOTSTXT_OBEY": False,
        "CONCURRENT_REQUESTS": 3,
        "BOT_NAME": "quotebot",
        "ITEM_PIPELINES": {
            f"{__name__}.OrderB": 500,
            f"{__name__}.Disabled": 100,
            f"{__name__}.OrderA": 300,
        },
    }

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> ApiSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.seen_concurrency = crawler.settings.getint("CONCURRENT_REQUESTS")
        return spider  # type: ignore[return-value]

    def parse(self, response: Any) -> Any:
        self.crawler.stats.inc_value("custom/pages")
        self.logger.info("parsed %s", response.url)
        yield {
            "concurrency": self.seen_concurrency,
            "robots": self.settings.getbool("ROBOTSTXT_OBEY"),
            "ctype": response.headers.get("Content-Type").decode(),
            "ctypes": len(response.headers.getlist(b"content-type")),
        }
        yield {"drop": True}

    def closed(self, reason: str) -> None:  # sync, as Scrapy's
        self.reason = reason


async def test_spider_api_and_scrapy_pipelines(http_server: TestHTTPServer, tmp_path: Path) -> None:
    http_server.html("/", "<p>hi</p>")
    OrderB.opened.clear()
    OrderB.closed.clear()
    items, proc = await run(ApiSpider, tmp_path, start_urls=[http_server.url("/")])
    assert items == [
        {
            "concurrency": 3,
            "robots": False,
            "ctype": "text/html; charset=utf-8",
            "ctypes": 1,
            "order": ["A", "B"],
            "bot": "quotebot",
        }
    ]
    assert proc.stats["dropped"] == 1 and proc.stats["custom/pages"] == 1
    assert OrderB.opened == ["api"] and OrderB.closed == ["api"]
    assert proc.spider.reason == "finished"  # type: ignore[attr-defined]


class ClosingSpider(scrapy.Spider):
    name = "closing"
    custom_settings = {"ROBOTSTXT_OBEY": False, "CONCURRENT_REQUESTS": 1}

    def parse(self, response: Any) -> Any:
        yield {"path": response.url}
        raise CloseSpider("enough")

    def closed(self, reason: str) -> None:
        self.reason = reason


async def test_close_spider_stops_the_crawl_with_its_reason(http_server: TestHTTPServer, tmp_path: Path) -> None:
    for i in range(50):
        http_server.html(f"/c/{i}", "<p>page</p>")
    urls = [http_server.url(f"/c/{i}") for i in range(50)]
    items, proc = await run(ClosingSpider, tmp_path, start_urls=urls)
    assert 1 <= len(items) < 50
    assert proc.spider.reason == "enough"  # type: ignore[attr-defined]


class NativeStartSpider(Spider):
    """A kubecrawl spider written as for Scrapy 2.13 (``import kubecrawl as scrapy``): ``async def start()``."""

    name = "native-start"
    custom_settings = {"obey_robots": False}

    async def start(self) -> Any:
        yield Request(self.base + "/s", callback=self.parse)

    async def parse(self, response: Any) -> Any:
        yield {"status": response.status}


async def test_kubecrawl_spider_with_async_start(http_server: TestHTTPServer, tmp_path: Path) -> None:
    http_server.html("/s", "<p>s</p>")
    items, _ = await run(NativeStartSpider, tmp_path, base=http_server.url(""))
    assert items == [{"status": 200}]
