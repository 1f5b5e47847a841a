"""Property test of fault isolation (issue 14): callbacks that yield random hostile output, in all three modes.

Each page's callback draws, from a generator seeded by the page's URL, requests with malformed URLs and
other schemes, meta values of every type, items that a pipeline fails on, and thousands of duplicate
links. Whatever is drawn, the crawl must end, every good page must be fetched and stored exactly once,
and every bad input must be counted under its kind. The spider tallies what it yielded, so the expected
counts come from the same draw, not from a table written by hand.
"""

from __future__ import annotations

import asyncio
import datetime
import random
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from kubecrawl import Request, Response, Spider
from kubecrawl.backends.redis import Keys
from kubecrawl.runner import CrawlProcess
from kubecrawl.settings import build_settings
from tests.helpers.httpserver import TestHTTPServer

PAGES = 60
DEADLINE = 240

#: absolute URLs no browser or crawler can fetch, by the kind they must be counted as
BAD_URLS = {
    "bad_url": [
        "http://example.com:66000/x",
        "http://h:PORT/",
        "http://[::1",
        "https://",
        "http://a b/",
        "http://example.com:-1/",
    ],
    "skipped_scheme": [
        "javascript:alert(1)",
        "mailto:someone@example.com",
        "tel:+4912345",
        "data:text/html,<b>x</b>",
        "ftp://example.com/file",
        "file:///etc/passwd",
        "about:blank",
    ],
}

#: meta values that do not survive JSON unchanged (refused where the store serialises)
NON_JSON: list[Any] = [
    {1, 2},
    Decimal("1.5"),
    object(),
    datetime.date(2026, 1, 1),
    b"bytes",
    float("nan"),
    complex(1, 2),
    [1, {"deep": {3}}],
    {1: "int key"},
    2**70,
]
JSON_OK: list[Any] = [None, True, 0, -(2**63), 1.25, "text", [1, "a", None], {"a": {"b": [1, 2.5]}}, (1, 2)]


class ChaosPipeline:
    def process_item(self, item: dict[str, Any], spider: Any) -> dict[str, Any]:
        if item.get("kind") == "extra" and item["r"] % 4 == 0:
            raise ValueError("chaos")
        return item


class ChaosSpider(Spider):
    name = "chaos"
    pipelines = [ChaosPipeline]

    def __init__(self, base: str, wire: bool, **kw: Any) -> None:
        super().__init__(**kw)
        self.base = base
        self.wire = wire
        self.start_urls = [f"{base}/g/0"]
        self.expected: Counter[str] = Counter()

    async def parse(self, response: Response):
        rng = random.Random(response.url)
        page = int(response.url.rsplit("/", 1)[1])
        yield {"kind": "page", "url": response.url, "page": page}
        for _ in range(rng.randint(0, 6)):
            r = rng.randint(0, 1000)
            yield {"kind": "extra", "url": response.url, "r": r}
            if r % 4 == 0:
                self.expected["pipeline:ValueError"] += 1
        for kind, urls in BAD_URLS.items():
            for url in rng.sample(urls, rng.randint(0, 3)):
                self.expected[kind] += 1
                yield Request(url)
        for target in rng.sample(range(PAGES), 5):
            meta_value = rng.choice(NON_JSON + JSON_OK)
            if self.wire and any(meta_value is v for v in NON_JSON):
                # the page is linked again below without the bad meta, so it is still reached
                self.expected["unserializable_meta"] += 1
                yield Request(f"{self.base}/g/{target}?bad", meta={"value": meta_value})
            yield response.follow(f"/g/{target}", meta={"value": meta_value if not self.wire else None})
        if page == 0:  # huge numbers of links: 3,000 duplicates of pages that exist
            for i in range(3000):
                yield response.follow(f"/g/{i % PAGES}")
        if page == 1:  # every page is reachable
            for i in range(PAGES):
                yield response.follow(f"/g/{i}")


def chaos_site(s: TestHTTPServer) -> None:
    for i in range(PAGES):
        s.html(f"/g/{i}", f"<html><title>{i}</title></html>")


def _settings(**cli: Any) -> Any:
    return build_settings(
        cli={"progress": "off", "retry_backoff": 0.01, "concurrency": 16, **cli}, spider_settings={}, environ={}
    )


async def _run(spider: Spider, **cli: Any) -> CrawlProcess:
    proc = CrawlProcess(spider, _settings(**cli))
    code = await asyncio.wait_for(proc.run(), DEADLINE)
    assert code == 0, proc.fatal
    return proc


def _check(spider: ChaosSpider, counts: Counter[str], items: list[dict[str, Any]], server: TestHTTPServer) -> None:
    fetched = Counter(p for p in server.paths() if p != "/robots.txt")
    assert set(fetched) == {f"/g/{i}" for i in range(PAGES)}, "a good page was not fetched or a bad one was"
    assert max(fetched.values()) == 1, "a page was fetched twice"
    pages = Counter(i["page"] for i in items if i["kind"] == "page")
    assert pages == Counter(range(PAGES)), "every good page stored exactly once"
    extras = [i for i in items if i["kind"] == "extra"]
    assert all(i["r"] % 4 for i in extras)
    errors = {k[6:]: v for k, v in counts.items() if k.startswith("error:")}
    expected_errors = {k: v for k, v in spider.expected.items() if k != "skipped_scheme"}
    assert errors == expected_errors
    assert counts["skipped_scheme"] == spider.expected["skipped_scheme"]
    assert spider.expected["bad_url"] > 10 and spider.expected["skipped_scheme"] > 10  # the draw did draw
    if spider.wire:
        assert spider.expected["unserializable_meta"] > 5


def _items(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


@pytest.mark.parametrize("mode", ["memory", "state-dir"])
async def test_hostile_output_local(http_server: TestHTTPServer, tmp_path: Path, mode: str) -> None:
    chaos_site(http_server)
    out = tmp_path / "items.jsonl"
    spider = ChaosSpider(http_server.url(""), wire=mode == "state-dir")
    extra = {"state_dir": tmp_path / "state"} if mode == "state-dir" else {}
    proc = await _run(spider, output=out, **extra)
    _check(spider, proc.stats.counts, _items(out), http_server)


async def test_hostile_output_distributed(http_server: TestHTTPServer, redis_server: Any) -> None:
    chaos_site(http_server)
    spider = ChaosSpider(http_server.url(""), wire=True)
    common = {"redis_url": redis_server.url, "crawl": "chaos"}
    master = await _run(spider, role="master", **common)
    slaves = await asyncio.gather(*(_run(spider, role="slave", exit_when_idle=True, **common) for _ in range(2)))
    counts: Counter[str] = Counter()
    for p in (master, *slaves):
        counts.update(p.stats.counts)
    client = redis_server.client()
    entries = client.xrange(Keys("chaos").items)
    items = [orjson.loads(fields[b"j"]) for _, fields in entries]
    _check(spider, counts, items, http_server)
