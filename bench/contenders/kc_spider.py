"""The kubecrawl contender: an idiomatic spider (title item + follow every link), run by ``kubecrawl crawl``.

Start URL from ``KC_BENCH_START``; counts and crawl-phase CPU go to ``KC_BENCH_RESULT`` when it closes.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

from benchreport import PhaseClock  # the loader puts this file's directory on sys.path

from kubecrawl import Request, Response, Spider


class BenchSpider(Spider):
    name = "bench"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pages = 0
        self.urls: set[str] = set()
        self.clock: PhaseClock | None = None

    async def opened(self) -> None:
        self.clock = PhaseClock()

    async def start_requests(self) -> AsyncIterator[Request]:
        yield Request(os.environ["KC_BENCH_START"])

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        self.pages += 1
        self.urls.add(response.url)
        yield {"url": response.url, "title": response.css("title::text").get()}
        for req in response.follow_all(css="a"):
            yield req

    async def closed(self, reason: str) -> None:
        assert self.clock is not None
        self.clock.report(None, pages=self.pages, unique=len(self.urls), reason=reason)
