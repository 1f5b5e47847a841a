"""The Scrapy contender, run with the bench venv's python: ``scrapy_run.py START_URL CONCURRENCY RESULT``.

Configured like the others: same concurrency overall and per host, robots.txt off, no AutoThrottle,
no delay, no feed export (items are yielded, not written), INFO logging (no per-page lines).
"""

from __future__ import annotations

import sys
from typing import Any

import scrapy
from benchreport import PhaseClock
from scrapy import signals
from scrapy.crawler import CrawlerProcess


class BenchSpider(scrapy.Spider):
    name = "bench"

    def __init__(self, start: str, result: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start_urls = [start]
        self.result = result
        self.pages = 0
        self.urls: set[str] = set()
        self.clock: PhaseClock | None = None

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> BenchSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider.on_opened, signal=signals.spider_opened)
        return spider

    def on_opened(self, spider: Any) -> None:
        self.clock = PhaseClock()

    async def start(self) -> Any:
        # Scrapy marks start_urls requests dont_filter=True; the other contenders dedup the start URL too
        for url in self.start_urls:
            yield scrapy.Request(url, dont_filter=False)

    def parse(self, response: Any) -> Any:
        self.pages += 1
        self.urls.add(response.url)
        yield {"url": response.url, "title": response.css("title::text").get()}
        yield from response.follow_all(css="a")

    def closed(self, reason: str) -> None:
        assert self.clock is not None
        self.clock.report(self.result, pages=self.pages, unique=len(self.urls), reason=reason)


def main() -> None:
    start, concurrency, result = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    process = CrawlerProcess(
        settings={
            "CONCURRENT_REQUESTS": concurrency,
            "CONCURRENT_REQUESTS_PER_DOMAIN": concurrency,
            "ROBOTSTXT_OBEY": False,
            "AUTOTHROTTLE_ENABLED": False,
            "DOWNLOAD_DELAY": 0,
            "LOG_LEVEL": "INFO",
            "TELNETCONSOLE_ENABLED": False,
        }
    )
    process.crawl(BenchSpider, start=start, result=result)
    process.start()


if __name__ == "__main__":
    main()
