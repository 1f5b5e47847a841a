"""Issue 14: no silent hang or loss on hostile spider output, against real HTTP servers on 127.0.0.1.

Every crawl here runs under a deadline: a hang fails the test instead of blocking the suite. The
server's request log is the witness for what was fetched.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from kubecrawl import Request, Response, Spider
from kubecrawl.backends.memory import MemoryBackend
from kubecrawl.runner import CrawlProcess
from kubecrawl.settings import build_settings
from tests.helpers.crawl import crawl
from tests.helpers.httpserver import TestHTTPServer

DEADLINE = 120  # a crawl that has not ended by then is a hang (the pages here take well under a second)

WEIRD_HREFS = [
    "http://example.com:66000/x",  # port out of range
    "http://h:PORT/",  # port not a number
    "http://[::1",  # unterminated IPv6 literal
    "http://a b/",  # a space in the host
    "javascript:void(0)",
    "mailto:someone@example.com",
    "tel:+4912345",
    "data:text/html,<b>hi</b>",
]


def read_items(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()] if path.exists() else []


class Follow(Spider):
    name = "follow"

    async def parse(self, response: Response):
        yield {"url": response.url, "title": response.css("title::text").get()}
        for req in response.follow_all(css="a"):
            yield req


def weird_site(s: TestHTTPServer) -> None:
    links = "".join(f'<a href="{h}">w</a>' for h in WEIRD_HREFS)
    good = "".join(f'<a href="/good/{i}">g</a>' for i in range(5))
    s.html("/", f"<html><head><title>weird</title></head><body>{links}{good}</body></html>")
    for i in range(5):
        s.html(f"/good/{i}", f"<html><head><title>good {i}</title></head><body>{links}</body></html>")


@pytest.mark.parametrize("mode", ["memory", "state-dir"])
async def test_weird_links_are_counted_and_the_crawl_finishes(
    http_server: TestHTTPServer, tmp_path: Path, mode: str
) -> None:
    weird_site(http_server)
    out = tmp_path / "items.jsonl"
    extra = {"state_dir": tmp_path / "state"} if mode == "state-dir" else {}
    stats, _ = await asyncio.wait_for(crawl(Follow(start_urls=[http_server.url("/")]), output=out, **extra), DEADLINE)
    titles = sorted(i["title"] for i in read_items(out))
    assert titles == ["good 0", "good 1", "good 2", "good 3", "good 4", "weird"]
    fetched = [p for p in http_server.paths() if p != "/robots.txt"]
    assert sorted(fetched) == ["/", *(f"/good/{i}" for i in range(5))]
    kinds = stats.summary()["errors_by_kind"]
    # 4 bad hrefs on the first page; the same hrefs on later pages are refused again (counted each time)
    assert kinds == {"bad_url": 4 * 6}, kinds
    assert stats["skipped_scheme"] == 4 * 6
    assert "retries" not in {k for k, v in stats.counts.items() if v} or stats["retries"] == 0


class HostileMeta(Spider):
    name = "hostile-meta"

    async def parse(self, response: Response):
        yield {"url": response.url}
        if response.url.endswith("/"):
            yield Request(response.urljoin("/set"), meta={"tags": {"a", "b"}})
            yield Request(response.urljoin("/decimal"), self.parse_kw, cb_kwargs={"price": Decimal("1.50")})
            yield Request(response.urljoin("/date"), meta={"when": datetime.date(2026, 1, 1)})
            yield Request(response.urljoin("/object"), meta={"obj": object()})
            yield Request(response.urljoin("/nan"), meta={"x": float("nan")})
            yield Request(response.urljoin("/ok"), meta={"page": 2, "path": ["a", {"b": None}]})

    async def parse_kw(self, response: Response, price: Any = None):
        yield {"url": response.url, "price": str(price)}


def meta_site(s: TestHTTPServer) -> None:
    s.html("/", "<html><title>root</title></html>")
    for p in ("/set", "/decimal", "/date", "/object", "/nan", "/ok"):
        s.html(p, f"<html><title>{p}</title></html>")


async def test_non_json_meta_is_refused_where_yielded_naming_the_key(
    http_server: TestHTTPServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    meta_site(http_server)
    out = tmp_path / "items.jsonl"
    stats, _ = await asyncio.wait_for(
        crawl(HostileMeta(start_urls=[http_server.url("/")]), output=out, state_dir=tmp_path / "state"), DEADLINE
    )
    assert sorted(p for p in http_server.paths() if p != "/robots.txt") == ["/", "/ok"]
    assert stats.summary()["errors_by_kind"] == {"unserializable_meta": 5}
    messages = "\n".join(r.getMessage() for r in caplog.records)
    for needle in ("meta['tags'] (set)", "cb_kwargs['price'] (Decimal)", "meta['when'] (date)", "meta['obj'] (object)"):
        assert needle in messages, needle
    assert len(read_items(out)) == 2


async def test_memory_mode_keeps_python_objects_in_meta(http_server: TestHTTPServer, tmp_path: Path) -> None:
    """Without a store that serialises, meta never leaves the process: any object is fine (as in Scrapy)."""
    meta_site(http_server)
    stats, _ = await asyncio.wait_for(crawl(HostileMeta(start_urls=[http_server.url("/")])), DEADLINE)
    assert stats["errors"] == 0
    assert stats["pages"] == 7


class FailingPipeline:
    closed = 0

    def process_item(self, item: dict[str, Any], spider: Any) -> dict[str, Any]:
        if item["n"] == 1:
            raise ValueError("bad item")
        return item

    def close(self, spider: Any) -> None:
        FailingPipeline.closed += 1


class ThreeItems(Spider):
    name = "three-items"
    pipelines = [FailingPipeline]

    async def parse(self, response: Response):
        for n in range(3):
            yield {"url": response.url, "n": n}


async def test_a_failing_pipeline_costs_only_its_item(http_server: TestHTTPServer, tmp_path: Path) -> None:
    http_server.html("/", "<html></html>")
    out = tmp_path / "items.jsonl"
    stats, _ = await asyncio.wait_for(crawl(ThreeItems(start_urls=[http_server.url("/")]), output=out), DEADLINE)
    assert sorted(i["n"] for i in read_items(out)) == [0, 2]
    assert stats.summary()["errors_by_kind"] == {"pipeline:ValueError": 1}


class ScrapyStyleHooks(Spider):
    """Scrapy spiders define sync ``closed(self, reason)``; kubecrawl's hooks may be sync or async."""

    name = "sync-hooks"
    pipelines = [FailingPipeline]
    seen: list[str] = []

    def opened(self) -> None:  # type: ignore[override]
        ScrapyStyleHooks.seen.append("opened")

    def closed(self, reason: str) -> None:  # type: ignore[override]
        ScrapyStyleHooks.seen.append(f"closed:{reason}")

    async def parse(self, response: Response):
        yield {"url": response.url, "n": 0}


async def test_sync_closed_hook_runs_and_pipelines_close(http_server: TestHTTPServer) -> None:
    http_server.html("/", "<html></html>")
    FailingPipeline.closed = 0
    ScrapyStyleHooks.seen = []
    stats, _ = await asyncio.wait_for(crawl(ScrapyStyleHooks(start_urls=[http_server.url("/")])), DEADLINE)
    assert ScrapyStyleHooks.seen == ["opened", "closed:finished"]
    assert FailingPipeline.closed == 1
    assert stats["pages"] == 1


class SameAuthor(Spider):
    """scrapy/quotesbot's shape: many items per page share url and author and have no title."""

    name = "quotes"

    async def parse(self, response: Response):
        for i in range(10):
            yield {"text": f"quote {i}", "author": "Albert Einstein", "tags": ["x"]}


async def test_default_crawl_keeps_every_item(http_server: TestHTTPServer, tmp_path: Path) -> None:
    http_server.html("/", "<html></html>")
    out = tmp_path / "items.jsonl"
    stats, proc = await asyncio.wait_for(crawl(SameAuthor(start_urls=[http_server.url("/")]), output=out), DEADLINE)
    assert len(read_items(out)) == 10
    assert stats["items_duplicate"] == 0
    assert proc.backend.item_dedup == "off"


async def test_content_dedup_when_asked_says_how_many_and_by_which_key(
    http_server: TestHTTPServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    http_server.html("/", "<html></html>")
    out = tmp_path / "items.jsonl"
    stats, _ = await asyncio.wait_for(
        crawl(SameAuthor(start_urls=[http_server.url("/")]), output=out, item_key=["author"]), DEADLINE
    )
    assert len(read_items(out)) == 1
    assert stats["items_duplicate"] == 9
    assert any("not stored again" in r.getMessage() and "(author)" in r.getMessage() for r in caplog.records)


class NeverLeases(MemoryBackend):
    """A store whose queue holds work it never hands out (as a corrupt or foreign entry would)."""

    async def pop(self, n: int):  # type: ignore[no-untyped-def]
        leases = await super().pop(n)
        keep = [lease for lease in leases if "/stuck" not in lease.request.url]
        for lease in leases:
            if lease not in keep:
                await self.release([lease.id])
        return keep


class StuckSpider(Spider):
    name = "stuck"

    async def parse(self, response: Response):
        yield Request(response.urljoin("/stuck"))


async def test_no_progress_with_work_queued_stops_with_an_error(
    http_server: TestHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubecrawl.core import scheduler

    monkeypatch.setattr(scheduler, "STALL_S", 1.0)
    http_server.html("/", "<html></html>")
    spider = StuckSpider(start_urls=[http_server.url("/")])
    s = build_settings(cli={"progress": "off"}, spider_settings={}, environ={})
    proc = CrawlProcess(spider, s, backend=NeverLeases())
    code = await asyncio.wait_for(proc.run(), DEADLINE)
    assert code == 1
    assert proc.fatal is not None and "stayed queued" in proc.fatal


class BrokenStore(MemoryBackend):
    async def commit(self, outcomes):  # type: ignore[no-untyped-def]
        if any(oc.lease_id is not None for oc in outcomes):
            raise RuntimeError("the store cannot ack")
        return await super().commit(outcomes)


async def test_a_store_that_refuses_acks_stops_the_crawl_with_an_error(http_server: TestHTTPServer) -> None:
    http_server.html("/", "<html></html>")
    s = build_settings(cli={"progress": "off"}, spider_settings={}, environ={})
    proc = CrawlProcess(Follow(start_urls=[http_server.url("/")]), s, backend=BrokenStore())
    code = await asyncio.wait_for(proc.run(), DEADLINE)
    assert code == 1
    assert proc.fatal is not None and "acknowledgement" in proc.fatal


SPIDER_FILE = """
from kubecrawl import Spider


class Site(Spider):
    name = "twoslaves"
    start_urls = [{start!r}]

    async def parse(self, response):
        yield {{"url": response.url}}
        for req in response.follow_all(css="a"):
            yield req
"""


def test_two_slaves_on_one_machine_run_side_by_side(
    http_server: TestHTTPServer, redis_server: Any, tmp_path: Path
) -> None:
    """The README's commands, as written: a master, then several slaves (no health port clash)."""
    for i in range(40):
        http_server.html(f"/p/{i}", f'<html><a href="/p/{(i + 1) % 40}">n</a><a href="/p/{(i + 7) % 40}">m</a></html>')
    spider = tmp_path / "site.py"
    spider.write_text(SPIDER_FILE.format(start=http_server.url("/p/0")), encoding="utf-8")
    kc = str(Path(sys.executable).parent / "kubecrawl")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBECRAWL_") and k != "KUBERNETES_SERVICE_HOST"}
    env["KUBECRAWL_PROGRESS"] = "off"
    base = [kc, "crawl", str(spider), "--redis-url", redis_server.url]
    master = subprocess.run([*base, "--role", "master"], env=env, capture_output=True, timeout=DEADLINE)
    assert master.returncode == 0, master.stderr.decode()[-2000:]
    slaves = [
        subprocess.Popen(
            [*base, "--role", "slave", "--exit-when-idle"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(3)
    ]
    results = [p.communicate(timeout=DEADLINE) for p in slaves]
    for p, (_, err) in zip(slaves, results, strict=True):
        assert p.returncode == 0, err.decode()[-2000:]
        assert b"address already in use" not in err
    fetched = [p for p in http_server.paths() if p != "/robots.txt"]
    assert sorted(set(fetched)) == sorted(f"/p/{i}" for i in range(40))
    assert len(fetched) == 40  # every page once across the three slaves
