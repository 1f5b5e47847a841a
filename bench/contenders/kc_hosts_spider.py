"""The spider of ``python -m bench politeness``: follow every link from one start page per host.

Start URLs are the JSON list in ``KC_BENCH_STARTS``; counts and crawl-phase CPU go to ``KC_BENCH_RESULT``.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Any

from benchreport import PhaseClock  # the loader puts this file's directory on sys.path

from kubecrawl import Request, Response, Spider


class HostsSpider(Spider):
    name = "hosts"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pages = 0
        self.clock: PhaseClock | None = None

    async def opened(self) -> None:
        self.clock = PhaseClock()

    async def start_requests(self) -> AsyncIterator[Request]:
        for url in json.loads(os.environ["KC_BENCH_STARTS"]):
            yield Request(url)

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        self.pages += 1
        yield {"url": response.url}
        for req in response.follow_all(css="a"):
            yield req

    async def closed(self, reason: str) -> None:
        if self.clock is not None:
            self.clock.report(None, pages=self.pages, reason=reason)
