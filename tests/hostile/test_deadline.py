"""Issue 20 item 6: a total per-download deadline. A server that trickles one byte every 2 s never
trips the per-read timeout; ``download_deadline`` cuts it off, counted as ``deadline``, not retried, and
in distributed mode the URL is not handed from slave to slave at every lease expiry."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

from kubecrawl import Response, Spider
from kubecrawl.backends.redis import Keys
from kubecrawl.runner import CrawlProcess
from kubecrawl.settings import build_settings
from tests.helpers.crawl import crawl
from tests.helpers.httpserver import TestHTTPServer
from tests.helpers.redis_server import RedisServer, redis_server

__all__ = ["redis_server"]  # the fixture


class Pages(Spider):
    name = "trickle"

    async def parse(self, response: Response):
        yield {"url": response.url}


def _trickle(_req: Any) -> tuple[int, dict[str, str], Iterator[bytes]]:
    def body() -> Iterator[bytes]:
        for _ in range(300):  # 10 minutes, one byte every 2 s; ends at the first write after a hang-up
            yield b"<"
            time.sleep(2.0)

    return 200, {"Content-Type": "text/html"}, body()


async def test_a_trickling_server_is_cut_off_at_the_deadline(http_server: TestHTTPServer) -> None:
    http_server.route("/slow", _trickle)
    http_server.html("/fast", "<title>fast</title>")
    t0 = time.monotonic()
    stats, _ = await asyncio.wait_for(
        crawl(
            Pages(start_urls=[http_server.url("/slow"), http_server.url("/fast")]),
            obey_robots=False,
            download_deadline=3,
        ),
        60,
    )
    elapsed = time.monotonic() - t0
    assert stats.summary()["errors_by_kind"] == {"deadline": 1}
    assert stats["items"] == 1 and stats["retries"] == 0
    assert http_server.paths().count("/slow") == 1  # never retried
    assert elapsed < 30, elapsed  # bounded by the deadline, far below the trickle's 10 minutes


async def _run(spider: Spider, **settings: Any) -> CrawlProcess:
    base: dict[str, Any] = {"progress": "off", "retry_backoff": 0.01, "obey_robots": False}
    base.update(settings)
    proc = CrawlProcess(spider, build_settings(cli=base, environ={}))
    assert await proc.run() == 0
    return proc


async def test_in_distributed_mode_a_trickling_url_is_fetched_once_not_re_leased(
    http_server: TestHTTPServer, redis_server: RedisServer
) -> None:
    http_server.route("/slow", _trickle)
    spider = Pages(start_urls=[http_server.url("/slow")])
    # lease 6 s: the deadline (180 s by default) is held to half of it, so the lease cannot expire first
    common = {"redis_url": redis_server.url, "crawl": "trickle", "lease_seconds": 6}
    await _run(spider, role="master", **common)
    await asyncio.wait_for(
        asyncio.gather(*(_run(spider, role="slave", exit_when_idle=True, **common) for _ in range(2))), 90
    )
    stats = redis_server.client().hgetall(Keys("trickle").stats)
    assert int(stats[b"error:deadline"]) == 1
    assert b"lease_expired" not in stats
    assert http_server.paths().count("/slow") == 1
