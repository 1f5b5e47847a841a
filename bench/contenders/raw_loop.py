"""The framework-free baselines: asyncio workers + an HTTP client + lxml + a URL dedup set.

``raw_loop.py CLIENT START_URL CONCURRENCY RESULT`` with CLIENT one of ``httpx`` (httpx's default
httpcore transport), ``httpx-aiohttp`` (the httpx API on aiohttp's transport, as kubecrawl uses) or
``aiohttp``. Each page: fetch, parse with lxml, take the title (collected in memory, like the items
of the other contenders), resolve every ``<a href>``, enqueue the ones not seen before.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urljoin

import lxml.html
from benchreport import PhaseClock

Fetch = Callable[[str], Awaitable[bytes]]


async def crawl(fetch: Fetch, start: str, concurrency: int) -> dict[str, Any]:
    seen = {start}
    queue: asyncio.Queue[str] = asyncio.Queue()
    queue.put_nowait(start)
    items: list[dict[str, Any]] = []
    errors = 0

    async def worker() -> None:
        nonlocal errors
        while True:
            url = await queue.get()
            try:
                body = await fetch(url)
                doc = lxml.html.document_fromstring(body)
                items.append({"url": url, "title": doc.findtext(".//title")})
                for href in doc.xpath("//a/@href"):
                    link = urljoin(url, href)
                    if link not in seen:
                        seen.add(link)
                        queue.put_nowait(link)
            except Exception:  # counted; the bench checks every page was crawled
                errors += 1
            finally:
                queue.task_done()

    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    await queue.join()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"pages": len(items), "unique": len({i["url"] for i in items}), "errors": errors}


async def run(client: str, start: str, concurrency: int, result: str) -> None:
    if client == "aiohttp":
        import aiohttp

        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def fetch(url: str) -> bytes:
                async with session.get(url) as resp:
                    resp.raise_for_status()
                    return await resp.read()

            clock = PhaseClock()
            counts = await crawl(fetch, start, concurrency)
            clock.report(result, client=client, **counts)
        return

    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    transport: httpx.AsyncBaseTransport
    if client == "httpx-aiohttp":
        import aiohttp
        from httpx_aiohttp import AiohttpTransport

        def make_session() -> aiohttp.ClientSession:
            return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))

        transport = AiohttpTransport(limits=limits, client=make_session)
    elif client == "httpx":
        transport = httpx.AsyncHTTPTransport(limits=limits)
    else:
        raise SystemExit(f"unknown client {client!r}")
    async with httpx.AsyncClient(transport=transport) as hc:

        async def fetch_httpx(url: str) -> bytes:
            resp = await hc.get(url)
            resp.raise_for_status()
            return resp.content

        clock = PhaseClock()
        counts = await crawl(fetch_httpx, start, concurrency)
        clock.report(result, client=client, **counts)


def main() -> None:
    client, start, concurrency, result = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    asyncio.run(run(client, start, concurrency, result))


if __name__ == "__main__":
    main()
