"""Distributed delivery: slaves drain the Redis item stream into PostgreSQL and trim what every sink has.

Real processes (tests/integration/distributed_cluster.py), a real redis-server and a real PostgreSQL.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from kubecrawl.backends.redis import Keys
from kubecrawl.feeds.spec import make_spec
from kubecrawl.feeds.stream import GROUP, StreamDelivery
from tests.helpers.httpserver import RequestInfo, TestHTTPServer, generated_site
from tests.helpers.postgres_server import PostgresServer, postgres_server
from tests.helpers.redis_server import RedisServer
from tests.integration.distributed_cluster import Cluster, write_spider

__all__ = ["postgres_server"]


def pg_urls(pg: PostgresServer, table: str) -> Counter[str]:
    """The ``url`` of every row (none before the table exists: sinks create it with their first write)."""
    import psycopg

    with pg.connect() as conn:
        try:
            return Counter(r[0] for r in conn.execute(f"SELECT data->>'url' FROM \"{table}\""))
        except psycopg.errors.UndefinedTable:
            return Counter()


@pytest.fixture
def clusters(tmp_path: Path) -> Iterator[list[Cluster]]:
    made: list[Cluster] = []
    yield made
    for c in made:
        c.stop_all()


@pytest.mark.slow
def test_killed_slave_mid_delivery_loses_nothing_and_writes_nothing_twice(
    http_server: TestHTTPServer,
    redis_server: RedisServer,
    postgres_server: PostgresServer,
    tmp_path: Path,
    clusters: list[Cluster],
) -> None:
    paths = generated_site(http_server, 600, links=6, delay=0.005)
    spider = write_spider(tmp_path / "site_spider.py", http_server.url("/gen/0.html"))
    settings = {"output": postgres_server.url, "feed_claim_idle": 1, "concurrency": 8}
    cluster = Cluster(tmp_path, spider, redis_server.url, "feeds", settings)
    clusters.append(cluster)
    cluster.start("master", "master")
    cluster.start_slaves(2)
    deadline = time.monotonic() + 120
    while sum(pg_urls(postgres_server, "site").values()) < 150:
        assert time.monotonic() < deadline, cluster.logs_tail()
        time.sleep(0.05)
    # a slave SIGKILLed between writing a batch and acking it: exactly what it leaves in Redis and
    # PostgreSQL, made by hand (a real kill rarely lands in that window): entries read, written, not acked
    ghost = StreamDelivery(
        None, Keys("feeds").items, [make_spec(postgres_server.url)], consumer="ghost",
        name="site", crawl="feeds", item_dedup="off",
    )  # fmt: skip
    client = redis.Redis.from_url(redis_server.url)
    taken: list = []
    while len(taken) < 40:  # competing with the slaves for new entries
        assert time.monotonic() < deadline, cluster.logs_tail()
        got = client.xreadgroup(GROUP, "ghost", {Keys("feeds").items: ">"}, count=40 - len(taken), block=50)
        taken += got[0][1] if got else []
    items, ids, _unknown = ghost._items(taken)
    ghost.sinks[0].write(items[: len(items) // 2])
    ghost.sinks[0].close()
    cluster.kill("slave-0")  # and a real kill mid-crawl
    cluster.start("slave-0", "slave", "slave-0")
    codes = cluster.wait_all(240)
    assert set(codes.values()) == {0}, cluster.logs_tail()
    got = pg_urls(postgres_server, "site")
    assert set(got) == {http_server.url(p) for p in paths}
    assert max(got.values()) == 1, [u for u, n in got.items() if n > 1]
    assert len(ids) == 40 and client.xlen(Keys("feeds").items) == 0  # every delivered entry trimmed
    logs = cluster.log_text("slave-0") + cluster.log_text("slave-1")
    redelivered = sum(int(m) for m in re.findall(r"(\d+) redelivered", logs))
    assert redelivered >= 40, logs[-3000:]  # the ghost's entries were taken over


def news_site(server: TestHTTPServer) -> None:
    """``/list`` links ``2 + 2 * visits`` articles: each round publishes two more."""

    def listing(req: RequestInfo) -> tuple[int, dict[str, str], bytes]:
        links = "".join(f'<a href="/a/{n}">{n}</a>' for n in range(2 + 2 * req.hits, 0, -1))
        return 200, {"Content-Type": "text/html"}, f"<html><body>{links}</body></html>".encode()

    def article(req: RequestInfo) -> tuple[int, dict[str, str], bytes]:
        return 200, {"Content-Type": "text/html"}, f"<title>article {req.path[3:]}</title>".encode()

    server.route("/robots.txt", lambda _r: (200, {"Content-Type": "text/plain"}, b"User-agent: *\n"))
    server.route("/list", listing)
    server.fallback = article


NEWS = """
from kubecrawl import Spider

class News(Spider):
    name = "news"
    incremental = True
    item_key = ["url"]
    start_urls = [{start!r}]

    async def parse(self, response):
        for req in response.follow_all(css="a", callback=self.parse_article):
            yield req

    async def parse_article(self, response):
        yield {{"url": response.url, "title": response.css("title::text").get(), "pad": "x" * 2000}}
"""


@pytest.mark.slow
def test_ten_rounds_leave_the_stream_bounded(
    http_server: TestHTTPServer,
    redis_server: RedisServer,
    postgres_server: PostgresServer,
    tmp_path: Path,
    clusters: list[Cluster],
) -> None:
    news_site(http_server)
    spider = tmp_path / "news_spider.py"
    spider.write_text(NEWS.format(start=http_server.url("/list")))
    cluster = Cluster(tmp_path, spider, redis_server.url, "news", {"output": postgres_server.url, "concurrency": 4})
    clusters.append(cluster)
    cluster.start("slave-0", "slave", "slave-0", exit_when_idle=False)
    cluster.settings.update({"every": 1, "max_rounds": 10})
    cluster.start("master", "master")
    client = redis.Redis.from_url(redis_server.url)
    key = Keys("news").items
    lengths: list[int] = []
    memory: list[int] = []
    deadline = time.monotonic() + 240
    while True:
        lengths.append(int(client.xlen(key)))
        memory.append(int(client.info("memory")["used_memory"]))
        st = cluster.status()
        if st.round == 10 and st.complete and sum(pg_urls(postgres_server, "news").values()) == 22:
            break
        assert time.monotonic() < deadline, cluster.logs_tail()
        time.sleep(0.05)
    final = int(client.xlen(key))
    got = pg_urls(postgres_server, "news")
    print(
        f"\nstream length: max {max(lengths)} over {len(lengths)} samples, final {final}; items delivered {sum(got.values())}"
    )
    print(f"redis used_memory: min {min(memory)} max {max(memory)} bytes")
    assert set(got.values()) == {1} and len(got) == 22  # 2 + 2 per round, each once
    assert final == 0
    assert max(lengths) < 22  # never all of them: delivered entries leave Redis


async def test_drain_waits_for_entries_a_dead_consumer_holds(
    redis_server: RedisServer, postgres_server: PostgresServer
) -> None:
    """The last slave to exit takes over what a killed one read and never acked, instead of leaving it."""
    import redis.asyncio as aioredis

    stream = Keys("drain").items
    sync = redis.Redis.from_url(redis_server.url)
    sync.xgroup_create(stream, GROUP, id="0", mkstream=True)
    for i in range(30):
        sync.xadd(stream, {"j": b'{"url": "u%d"}' % i})
    sync.xreadgroup(GROUP, "dead", {stream: ">"}, count=12)  # read, never acked: a killed slave's batch
    client = aioredis.Redis.from_url(redis_server.url)
    d = StreamDelivery(
        client, stream, [make_spec(postgres_server.url)], consumer="last", name="drain", crawl="drain",
        item_dedup="off", claim_idle_s=0.5,
    )  # fmt: skip
    await d.open()
    await d.drain()
    await d.close()
    await client.aclose()
    assert pg_urls(postgres_server, "drain") == Counter({f"u{i}": 1 for i in range(30)})
    assert d.redelivered == 12 and sync.xlen(stream) == 0
