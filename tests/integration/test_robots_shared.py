"""robots.txt is fetched once per origin per crawl and shared through the store (docs/distributed.md).

The HTTP server's request log is the witness: how many times ``/robots.txt`` was asked for, and that no
disallowed path ever was. Redis is a real ``redis-server``; the slaves are real processes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest
import redis.asyncio as aioredis

from kubecrawl import Response, Spider
from kubecrawl.backends.base import robots_entry_from_json
from kubecrawl.backends.redis import Keys, RedisBackend
from kubecrawl.downloader import Downloader
from kubecrawl.settings import Settings
from tests.helpers.crawl import crawl
from tests.helpers.httpserver import Reply, RequestInfo, TestHTTPServer, slow
from tests.integration.distributed_cluster import Cluster, write_seeds_spider

if TYPE_CHECKING:
    from tests.integration.conftest import RedisServer

ROBOTS = b"User-agent: *\nDisallow: /private/\n"
PAGES = 120


def robots_site(server: TestHTTPServer, pages: int = PAGES, robots_delay: float = 0.0, page_delay: float = 0.0) -> None:
    """``/gen/<i>.html`` pages, each linking to two more and to ``/private/<i>.html`` (disallowed)."""

    def page(req: RequestInfo) -> Reply:
        i = int(req.path.rsplit("/", 1)[1].split(".")[0])
        if page_delay:
            time.sleep(page_delay)  # a page takes a moment: the work spreads over the slaves
        links = "".join(f'<a href="/gen/{n % pages}.html">p</a>' for n in (i + 1, i * 7 + 3))
        body = f"<html><title>{i}</title><body>{links}<a href='/private/{i}.html'>secret</a></body></html>"
        return 200, {"Content-Type": "text/html; charset=utf-8"}, body.encode()

    for i in range(pages):
        server.route(f"/gen/{i}.html", page)
        server.html(f"/private/{i}.html", "<title>secret</title>")
    reply: Reply = (200, {"Content-Type": "text/plain"}, ROBOTS)
    # a slow robots.txt: every slave asks for it while the first one is still reading it
    server.route("/robots.txt", slow(robots_delay, reply) if robots_delay else (lambda _req: reply))


def private_fetches(server: TestHTTPServer) -> list[str]:
    return [p for p in server.paths() if p.startswith("/private/")]


# -- three slaves, one host: one fetch ------------------------------------------------------------------


@pytest.fixture
def cluster_factory(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    made: list[Cluster] = []

    def make(server: TestHTTPServer, redis_url: str, crawl_name: str, **settings: object) -> Cluster:
        # many seeds: every slave has pages of the host to start on at once
        starts = [server.url(f"/gen/{i}.html") for i in range(0, PAGES, 4)]
        spider = tmp_path / "site_spider.py"
        write_seeds_spider(spider, starts)
        c = Cluster(tmp_path, spider, redis_url, crawl_name, settings)
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop_all()


def summary(cluster: Cluster, name: str) -> dict[str, Any]:
    """The ``crawl_finished`` line a process logs when it exits."""
    for line in cluster.log_text(name).splitlines():
        if line.startswith('{"event":"crawl_finished"'):
            return dict(orjson.loads(line))
    raise AssertionError(f"{name} logged no summary\n{cluster.logs_tail()}")


@pytest.mark.slow
def test_three_slaves_fetch_robots_once_and_all_obey_it(
    http_server: TestHTTPServer, redis_server: RedisServer, cluster_factory: Callable[..., Cluster]
) -> None:
    robots_site(http_server, robots_delay=0.3, page_delay=0.02)
    cluster = cluster_factory(http_server, redis_server.url, "robots", concurrency=4, concurrency_per_host=48)
    cluster.start_slaves(3)  # slaves first: they wait for the seeds, then start on the host together
    cluster.start("master", "master")
    codes = cluster.wait_all(deadline_s=300)
    assert set(codes.values()) == {0}, cluster.logs_tail()

    assert http_server.hits["/robots.txt"] == 1, cluster.logs_tail()  # once per crawl, not per slave
    assert private_fetches(http_server) == []  # every slave obeyed its Disallow
    assert {p for p in http_server.paths() if p.startswith("/gen/")} == {f"/gen/{i}.html" for i in range(PAGES)}
    slaves = {n: summary(cluster, n) for n in ("slave-0", "slave-1", "slave-2")}
    working = {n: s for n, s in slaves.items() if s["pages"] > 0}
    assert len(working) >= 2, slaves  # else nothing was shared and the test says nothing
    for name, s in working.items():  # each read it once: fetched itself, or from the store
        assert s.get("robots_fetched", 0) + s.get("robots_shared", 0) == 1, (name, s)
        assert s["robots_denied"] > 0 and "robots_store_errors" not in s, (name, s)
    assert sum(s.get("robots_fetched", 0) for s in slaves.values()) == 1
    r = redis_server.client()
    stats = {k.decode(): int(v) for k, v in r.hgetall(Keys("robots").stats).items()}
    assert stats["robots_fetched"] == 1 and stats["robots_shared"] == len(working) - 1
    assert stats["robots_denied"] == PAGES  # each /private/ link, once (fingerprints dedup the rest)
    entry = robots_entry_from_json(r.hget(Keys("robots").robots, http_server.url("/").rstrip("/")))
    assert (entry.kind, entry.body) == ("ok", ROBOTS.decode())


# -- a resumed --state-dir crawl does not fetch it again ------------------------------------------------


class SiteSpider(Spider):
    name = "robots-site"

    async def parse(self, response: Response) -> Any:
        yield {"url": response.url}
        for req in response.follow_all(css="a"):
            yield req


async def test_a_resumed_state_dir_crawl_keeps_robots(http_server: TestHTTPServer, tmp_path: Path) -> None:
    robots_site(http_server)
    state = tmp_path / "state"
    spider = SiteSpider()
    spider.start_urls = [http_server.url("/gen/0.html")]
    first, _ = await crawl(spider, state_dir=str(state), max_pages=10, concurrency=2)
    assert first["robots_fetched"] == 1 and first["robots_shared"] == 0
    fetched = len([p for p in http_server.paths() if p.startswith("/gen/")])
    assert fetched < PAGES  # stopped early: the second run resumes it

    again = SiteSpider()
    again.start_urls = [http_server.url("/gen/0.html")]
    second, _ = await crawl(again, state_dir=str(state), concurrency=2)
    assert second["robots_fetched"] == 0 and second["robots_shared"] == 1
    assert http_server.hits["/robots.txt"] == 1
    assert {p for p in http_server.paths() if p.startswith("/gen/")} == {f"/gen/{i}.html" for i in range(PAGES)}
    assert private_fetches(http_server) == []


# -- two downloaders over one Redis (two slaves in one process), hostile entries, a failing store --------


@pytest.fixture
async def make_worker(redis_server: RedisServer) -> AsyncIterator[Callable[..., Downloader]]:
    made: list[Downloader] = []

    def make(worker_id: str, **values: Any) -> Downloader:
        s = Settings(**{"obey_robots": True, "retry_backoff": 0.0, "download_timeout": 10.0, **values})
        d = Downloader(s)
        d.robots_store = RedisBackend(aioredis.Redis.from_url(redis_server.url), "robots", worker_id=worker_id)
        made.append(d)
        return d

    yield make
    for d in made:
        await d.close()
        assert d.robots_store is not None
        await d.robots_store.close()


async def test_two_workers_asking_at_once_fetch_robots_once(
    http_server: TestHTTPServer, make_worker: Callable[..., Downloader]
) -> None:
    robots_site(http_server, robots_delay=0.3)
    a, b = make_worker("w1"), make_worker("w2")
    verdicts = await asyncio.gather(
        a.allowed_by_robots(http_server.url("/private/1.html")),
        b.allowed_by_robots(http_server.url("/private/2.html")),
        a.allowed_by_robots(http_server.url("/gen/1.html")),
        b.allowed_by_robots(http_server.url("/gen/2.html")),
    )
    assert verdicts == [False, False, True, True]
    assert http_server.hits["/robots.txt"] == 1
    assert a.stats["robots_fetched"] + b.stats["robots_fetched"] == 1
    assert a.stats["robots_shared"] + b.stats["robots_shared"] == 1


async def test_a_claim_whose_holder_never_answers_is_waited_for_boundedly(
    http_server: TestHTTPServer, make_worker: Callable[..., Downloader], redis_server: RedisServer
) -> None:
    robots_site(http_server)
    origin = http_server.url("/").rstrip("/")
    # a slave claimed the origin and died before storing its answer (the claim lives 60 s)
    redis_server.client().set(Keys("robots").robots_claim(origin), "dead-slave", px=60_000)
    d = make_worker("w1", download_timeout=1.0)
    assert not await d.allowed_by_robots(http_server.url("/private/1.html"))
    assert http_server.hits["/robots.txt"] == 1 and d.stats["robots_fetched"] == 1


@pytest.mark.parametrize(
    "raw",
    [
        b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94\x93\x94.",  # a pickle
        b'{"kind": "allow", "body": "", "at": 1, "exp": "forever"}',  # wrong type
        b'{"kind": "allow", "body": "' + b"A" * (8 << 20) + b'", "at": 1, "exp": 9e99}',  # 8 MiB
    ],
    ids=["pickle", "wrong-type", "huge"],
)
async def test_a_hostile_redis_entry_is_skipped_counted_and_replaced(
    http_server: TestHTTPServer, make_worker: Callable[..., Downloader], redis_server: RedisServer, raw: bytes
) -> None:
    robots_site(http_server)
    origin = http_server.url("/").rstrip("/")
    r = redis_server.client()
    r.hset(Keys("robots").robots, origin, raw)  # "allow" if it were believed: /private/ would be fetched
    d = make_worker("w1")
    assert not await d.allowed_by_robots(http_server.url("/private/1.html"))
    assert d.stats["robots_store_invalid"] == 1 and d.stats["robots_fetched"] == 1
    assert http_server.hits["/robots.txt"] == 1
    entry = robots_entry_from_json(r.hget(Keys("robots").robots, origin))
    assert (entry.kind, entry.body) == ("ok", ROBOTS.decode())  # the good answer took its place


async def test_a_store_that_fails_never_costs_the_page(
    http_server: TestHTTPServer, make_worker: Callable[..., Downloader], redis_server: RedisServer
) -> None:
    robots_site(http_server)
    d = make_worker("w1")
    redis_server.stop()
    assert not await d.allowed_by_robots(http_server.url("/private/1.html"))
    assert await d.allowed_by_robots(http_server.url("/gen/1.html"))
    assert http_server.hits["/robots.txt"] == 1 and d.stats["robots_fetched"] == 1
    assert d.stats["robots_store_errors"] >= 2  # the read and the write, each logged and counted


async def test_an_unavailable_robots_is_shared_only_for_retry_backoff(
    http_server: TestHTTPServer, make_worker: Callable[..., Downloader], redis_server: RedisServer
) -> None:
    from kubecrawl.errors import DownloadError

    robots_site(http_server)
    http_server.route("/robots.txt", lambda _req: (503, {}, b"busy"))
    origin = http_server.url("/").rstrip("/")
    a = make_worker("w1", retry_backoff=0.0)
    with pytest.raises(DownloadError) as caught:
        await a.allowed_by_robots(http_server.url("/gen/1.html"))
    assert caught.value.kind == "robots_unavailable"
    gone = robots_entry_from_json(redis_server.client().hget(Keys("robots").robots, origin))
    assert gone.expires == gone.fetched_at  # retry_backoff 0: not shared (expired as written; it ends the claim)
    assert a.robots_store is not None and await a.robots_store.robots_get(origin) is None
    assert await a.robots_store.robots_claim(origin, 1)  # a's claim is over

    b = make_worker("w2", retry_backoff=30.0)
    with pytest.raises(DownloadError):
        await b.allowed_by_robots(http_server.url("/gen/1.html"))
    entry = robots_entry_from_json(redis_server.client().hget(Keys("robots").robots, origin))
    assert entry.kind == "unavailable" and entry.why == "HTTP 503"
    assert entry.expires - entry.fetched_at == 30.0  # a 503 is not kept for robots_refresh
    assert http_server.hits["/robots.txt"] == 2
