"""Incremental crawling (增量抓取): rounds, list pages re-fetched, discovered pages deduplicated across
rounds, re-visit age, and content dedup (skip / update / off) that persists across restarts.

A news list on a real HTTP server on 127.0.0.1 grows every time it is fetched; articles are pages whose
content the test can change between rounds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from kubecrawl import Request, Response, Spider
from tests.helpers.crawl import crawl
from tests.helpers.httpserver import RequestInfo, TestHTTPServer


class NewsSite:
    """``/list`` shows ``2 + 2 * visits`` articles (two new ones per visit); ``/a/<n>`` their pages."""

    def __init__(self, server: TestHTTPServer) -> None:
        self.server = server
        self.edition: dict[int, int] = {}  # article → version of its text
        server.route("/robots.txt", lambda _r: (200, {"Content-Type": "text/plain"}, b"User-agent: *\n"))
        server.route("/list", self._list)
        server.fallback = self._article

    def _list(self, req: RequestInfo) -> tuple[int, dict[str, str], bytes]:
        count = 2 + 2 * req.hits
        links = "".join(f'<a href="/a/{n}">{n}</a>' for n in range(count, 0, -1))
        return 200, {"Content-Type": "text/html"}, f"<html><body>{links}</body></html>".encode()

    def _article(self, req: RequestInfo) -> tuple[int, dict[str, str], bytes]:
        if not req.path.startswith("/a/"):
            return 404, {}, b""
        n = int(req.path.rsplit("/", 1)[1])
        body = f"<html><head><title>article {n}</title></head><body><p>v{self.edition.get(n, 1)}</p></body></html>"
        return 200, {"Content-Type": "text/html; charset=utf-8"}, body.encode()

    def fetches(self) -> Counter[str]:
        return Counter(self.server.paths())


class ListSpider(Spider):
    name = "list"
    incremental = True
    item_key = ["url", "title"]

    async def parse(self, response: Response) -> AsyncIterator[Request]:
        for req in response.follow_all(css="a", callback=self.parse_article):
            yield req

    async def parse_article(self, response: Response) -> AsyncIterator[dict[str, Any]]:
        yield {"url": response.url, "title": response.css("title::text").get(), "text": response.css("p::text").get()}


@pytest.fixture
def site(http_server: TestHTTPServer) -> NewsSite:
    return NewsSite(http_server)


def items_of(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()] if path.exists() else []


async def test_list_page_every_round_articles_once_in_one_process(site: NewsSite, tmp_path: Path) -> None:
    out = tmp_path / "items.jsonl"
    spider = ListSpider(start_urls=[site.server.url("/list")])
    _, proc = await crawl(spider, output=out, every=0.01, max_rounds=3)
    assert proc.rounds_run == 3
    fetched = site.fetches()
    assert fetched["/list"] == 3
    articles = {p: c for p, c in fetched.items() if p.startswith("/a/")}
    assert set(articles) == {f"/a/{n}" for n in range(1, 9)}  # 4, 6 and 8 articles listed in rounds 1-3
    assert set(articles.values()) == {1}
    urls = [i["url"] for i in items_of(out)]
    assert sorted(urls) == sorted(site.server.url(f"/a/{n}") for n in range(1, 9))


async def test_rounds_across_restarts_with_state_dir(site: NewsSite, tmp_path: Path) -> None:
    out, state = tmp_path / "items.jsonl", tmp_path / "state"
    for rnd in range(1, 4):
        stats, _ = await crawl(ListSpider(start_urls=[site.server.url("/list")]), output=out, state_dir=state)
        assert site.fetches()["/list"] == rnd
        assert stats["items"] == (4 if rnd == 1 else 2)  # only the two new articles after the first round
    assert max(c for p, c in site.fetches().items() if p.startswith("/a/")) == 1
    assert len(items_of(out)) == 8


class OneShotSpider(ListSpider):
    incremental = False


async def test_non_incremental_spider_does_not_refetch_its_start_page(site: NewsSite, tmp_path: Path) -> None:
    state = tmp_path / "state"
    for _ in range(2):
        await crawl(OneShotSpider(start_urls=[site.server.url("/list")]), state_dir=state)
    assert site.fetches()["/list"] == 1


class DontFilterSpider(OneShotSpider):
    async def start_requests(self) -> AsyncIterator[Request]:
        yield Request(self.start_urls[0], dont_filter=True)


async def test_dont_filter_on_a_request_bypasses_dedup(site: NewsSite, tmp_path: Path) -> None:
    state = tmp_path / "state"
    for _ in range(2):
        await crawl(DontFilterSpider(start_urls=[site.server.url("/list")]), state_dir=state)
    assert site.fetches()["/list"] == 2


@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_revisit_age_refetches_pages_once_their_fingerprint_expired(
    site: NewsSite, tmp_path: Path, store: str
) -> None:
    """A tiny fingerprint_ttl: every listed article is old enough to fetch again in the next round."""
    extra: dict[str, Any] = {"state_dir": tmp_path / "state"} if store == "sqlite" else {}
    spider = ListSpider(start_urls=[site.server.url("/list")])
    await crawl(spider, every=0.01, max_rounds=2, fingerprint_ttl=1e-6, **extra)
    fetched = site.fetches()
    assert fetched["/a/1"] == 2 and fetched["/a/4"] == 2  # listed in both rounds
    assert fetched["/a/6"] == 1  # new in round two


class PerRequestAgeSpider(ListSpider):
    async def parse(self, response: Response) -> AsyncIterator[Request]:
        for req in response.follow_all(css="a", callback=self.parse_article):
            # article 1 may be re-visited as soon as it is stale; the others never
            if req.url.endswith("/a/1"):
                req.fingerprint_ttl = 1e-6
            yield req


async def test_revisit_age_per_request(site: NewsSite, tmp_path: Path) -> None:
    await crawl(PerRequestAgeSpider(start_urls=[site.server.url("/list")]), every=0.01, max_rounds=3)
    fetched = site.fetches()
    assert fetched["/a/1"] == 3
    assert fetched["/a/2"] == 1 and fetched["/a/3"] == 1


class RevisitAllSpider(ListSpider):
    async def parse(self, response: Response) -> AsyncIterator[Request]:
        for req in response.follow_all(css="a", callback=self.parse_article, dont_filter=True):
            yield req


@pytest.mark.parametrize(("mode", "expected"), [("skip", 4), ("update", 5), ("off", 8)])
async def test_content_dedup_modes(site: NewsSite, tmp_path: Path, mode: str, expected: int) -> None:
    """Round 1 stores articles 1-4; round 2 re-fetches all four, of which only article 2 has changed."""
    out, state = tmp_path / "items.jsonl", tmp_path / "state"
    site.server.route("/list", lambda _r: (200, {"Content-Type": "text/html"},
                                           b"".join(b'<a href="/a/%d">x</a>' % n for n in range(1, 5))))  # fmt: skip
    for rnd in range(2):
        if rnd == 1:
            site.edition[2] = 2  # article 2 changed its text; the others are the same
        spider = RevisitAllSpider(start_urls=[site.server.url("/list")])
        await crawl(spider, output=out, state_dir=state, item_dedup=mode)
    items = items_of(out)
    assert len(items) == expected
    if mode == "update":
        versions = [i["text"] for i in items if i["url"].endswith("/a/2")]
        assert versions == ["v1", "v2"]


async def test_item_key_without_url_drops_republications(site: NewsSite, tmp_path: Path) -> None:
    """Same title under another URL: stored once when the item key leaves the URL out."""
    out = tmp_path / "items.jsonl"
    site.server.route("/list", lambda _r: (200, {"Content-Type": "text/html"},
                                           b'<a href="/a/1">x</a><a href="/b/1">same story</a>'))  # fmt: skip
    body = b"<html><head><title>article 1</title></head><body><p>v1</p></body></html>"
    site.server.route("/b/1", lambda _r: (200, {"Content-Type": "text/html"}, body))

    class TitleKeySpider(ListSpider):
        item_key = ["title"]

    stats, _ = await crawl(TitleKeySpider(start_urls=[site.server.url("/list")]), output=out)
    assert site.fetches()["/a/1"] == 1 and site.fetches()["/b/1"] == 1
    assert len(items_of(out)) == 1
    assert stats["items_duplicate"] == 1


async def test_cron_schedule_runs_rounds(site: NewsSite, tmp_path: Path) -> None:
    """A six-field cron expression (seconds last) fires every second: two rounds, two list fetches."""
    spider = ListSpider(start_urls=[site.server.url("/list")])
    _, proc = await crawl(spider, cron="* * * * * *", max_rounds=2)
    assert proc.rounds_run == 2
    assert site.fetches()["/list"] == 2
    assert max(c for p, c in site.fetches().items() if p.startswith("/a/")) == 1


DISTRIBUTED_SPIDER = """
from kubecrawl import Response, Spider


class NewsSpider(Spider):
    name = "news"
    incremental = True
    item_key = ["url"]
    start_urls = [{start!r}]

    async def parse(self, response: Response):
        for req in response.follow_all(css="a", callback=self.parse_article):
            if req.url.endswith("/a/1"):
                req.fingerprint_ttl = 1e-6  # the front-page story is re-visited every round
            yield req

    async def parse_article(self, response: Response):
        yield {{"url": response.url, "text": response.css("p::text").get()}}
"""


@pytest.mark.slow
def test_distributed_rounds_with_long_running_slaves(site: NewsSite, redis_server: Any, tmp_path: Path) -> None:
    """As on Kubernetes: slaves keep running, a master (the CronJob) seeds each round. Fingerprints,
    re-visit ages and item versions (``update`` mode) live in Redis across rounds."""
    from tests.integration.distributed_cluster import Cluster

    spider = tmp_path / "news_spider.py"
    spider.write_text(DISTRIBUTED_SPIDER.format(start=site.server.url("/list")), encoding="utf-8")
    cluster = Cluster(tmp_path, spider, redis_server.url, "news", {"item_dedup": "update"})
    try:
        for i in range(2):
            cluster.start(f"slave-{i}", "slave", f"slave-{i}", exit_when_idle=False)
        for rnd in range(1, 4):
            if rnd == 3:
                site.edition[1] = 2  # the front-page story is corrected before round 3
            cluster.start(f"master-{rnd}", "master")
            proc = cluster.procs[f"master-{rnd}"]
            assert proc.wait(timeout=120) == 0, cluster.logs_tail()
            cluster.wait_for(lambda st, r=rnd: st.seeded_round == r and st.complete, 300, f"round {rnd} complete")
            fetched = site.fetches()
            assert fetched["/list"] == rnd
            assert fetched["/a/1"] == rnd
            assert all(c == 1 for p, c in fetched.items() if p.startswith("/a/") and p != "/a/1")
            assert len([p for p in fetched if p.startswith("/a/")]) == 2 + 2 * rnd
        items = cluster.items()
        assert sorted(i["url"].rsplit("/", 1)[1] for i in items) == sorted(["1", *map(str, range(1, 9))])
        assert [i["text"] for i in items if i["url"].endswith("/a/1")] == ["v1", "v2"]
        for i in range(2):
            cluster.procs[f"slave-{i}"].terminate()
        assert [cluster.procs[f"slave-{i}"].wait(timeout=60) for i in range(2)] == [0, 0]
    finally:
        cluster.stop_all()
