"""Issue 20 item 7: a response head of 1 MB (one huge header, or twenty thousand small ones) is a
counted ``headers_too_large``, not retried, with memory bounded by the HTTP parser's own limit."""

from __future__ import annotations

import asyncio
import tracemalloc

import pytest

from kubecrawl import Response, Spider
from tests.helpers.crawl import crawl
from tests.helpers.httpserver import TestHTTPServer


class Pages(Spider):
    name = "heads"

    async def parse(self, response: Response):
        yield {"url": response.url}


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_a_megabyte_of_response_headers_is_counted_headers_too_large(
    http_server: TestHTTPServer, transport: str
) -> None:
    http_server.route("/one", lambda _r: (200, {"X-Big": "a" * 1_000_000}, b"x"))
    http_server.route("/many", lambda _r: (200, {f"X-H{i}": "a" * 50 for i in range(20_000)}, b"x"))
    http_server.html("/fine", "<title>fine</title>")
    urls = [http_server.url(p) for p in ("/one", "/many", "/fine")]
    tracemalloc.start()
    try:
        stats, _ = await asyncio.wait_for(
            crawl(Pages(start_urls=urls), obey_robots=False, http_transport=transport), 120
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert stats.summary()["errors_by_kind"] == {"headers_too_large": 2}
    assert stats["items"] == 1 and stats["retries"] == 0
    assert sorted(http_server.paths()) == ["/fine", "/many", "/one"]  # each asked once
    assert peak < 48 << 20, f"peak {peak >> 20} MiB"
