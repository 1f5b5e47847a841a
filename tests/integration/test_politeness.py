"""Cluster-wide politeness (issue 17): real slave processes, one real Redis, real HTTP servers.

The witness is each server's own timeline (when it had each request and when it had answered it),
never the crawler's word: at most ``concurrency_per_host`` at once, gaps between arrivals at least
the lower bound of the randomised delay. No threshold on speed: deadlines only bound a broken run.
robots.txt is left out of the timelines: it is fetched by each worker outside the frontier (see
docs/distributed.md, "Limits"); its Crawl-delay is honoured (the last test).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kubecrawl.backends.frontier import DELAY_SPREAD
from tests.helpers.httpserver import Reply, RequestInfo, TestHTTPServer, generated_site
from tests.integration.distributed_cluster import Cluster, write_seeds_spider

if TYPE_CHECKING:
    from tests.integration.conftest import RedisServer

pytestmark = pytest.mark.slow


@pytest.fixture
def servers() -> Iterator[list[TestHTTPServer]]:
    made: list[TestHTTPServer] = []
    yield made
    for s in made:
        s.stop()


@pytest.fixture
def clusters() -> Iterator[list[Cluster]]:
    made: list[Cluster] = []
    yield made
    for c in made:
        c.stop_all()


def serve(servers: list[TestHTTPServer], bind: str, pages: int, delay: float = 0.0) -> TestHTTPServer:
    s = TestHTTPServer(bind).start()
    servers.append(s)
    generated_site(s, pages, links=4, delay=delay)
    return s


def cluster(
    clusters: list[Cluster], tmp_path: Path, redis_url: str, starts: list[str], name: str, **settings: object
) -> Cluster:
    spider = tmp_path / f"{name}_spider.py"
    write_seeds_spider(spider, starts)
    c = Cluster(tmp_path, spider, redis_url, name, settings)
    clusters.append(c)
    return c


def pages_timeline(server: TestHTTPServer) -> list[tuple[str, float, float]]:
    return sorted(t for t in server.timeline if t[0] != "/robots.txt")


def peak_in_flight(timeline: list[tuple[str, float, float]]) -> int:
    events = sorted([(start, 1) for _, start, _ in timeline] + [(end, -1) for _, _, end in timeline])
    peak = cur = 0
    for _, step in events:  # an end and a start at the same instant: the end counts first (-1 < 1)
        cur += step
        peak = max(peak, cur)
    return peak


def gaps(timeline: list[tuple[str, float, float]]) -> list[float]:
    starts = sorted(start for _, start, _ in timeline)
    return [b - a for a, b in itertools.pairwise(starts)]


def test_three_slaves_keep_one_host_at_one_request_and_the_delay_apart(
    tmp_path: Path, redis_server: RedisServer, servers: list[TestHTTPServer], clusters: list[Cluster]
) -> None:
    delay = 0.1
    site = serve(servers, "127.0.0.1", 30, delay=0.01)  # each page takes a while: overlaps would show
    c = cluster(
        clusters,
        tmp_path,
        redis_server.url,
        [site.url("/gen/0.html")],
        "one-host",
        download_delay=delay,
        concurrency_per_host=1,
        concurrency=8,
    )
    c.start_slaves(3)
    c.start("master", "master")
    codes = c.wait_all(deadline_s=240)
    assert set(codes.values()) == {0}, c.logs_tail()
    timeline = pages_timeline(site)
    assert sorted(p for p, _, _ in timeline) == sorted(f"/gen/{i}.html" for i in range(30))  # each once
    assert peak_in_flight(timeline) == 1
    assert min(gaps(timeline)) >= delay * DELAY_SPREAD[0]
    assert c.status().pages == 30


def test_a_slow_host_does_not_hold_up_the_others(
    tmp_path: Path, redis_server: RedisServer, servers: list[TestHTTPServer], clusters: list[Cluster]
) -> None:
    slow = serve(servers, "127.0.0.2", 12, delay=0.5)
    fast = [serve(servers, f"127.0.0.{i}", 40) for i in range(3, 7)]
    c = cluster(
        clusters,
        tmp_path,
        redis_server.url,
        [s.url("/gen/0.html") for s in [slow, *fast]],
        "many-hosts",
        concurrency_per_host=1,
        concurrency=8,
    )
    c.start_slaves(2)
    c.start("master", "master")
    codes = c.wait_all(deadline_s=240)
    assert set(codes.values()) == {0}, c.logs_tail()
    slow_t = pages_timeline(slow)
    assert len(slow_t) == 12 and peak_in_flight(slow_t) == 1
    last_slow_start = max(start for _, start, _ in slow_t)
    for s in fast:
        t = pages_timeline(s)
        assert len(t) == 40 and peak_in_flight(t) == 1
        # every fast host was done while the slow one still had requests to come
        assert max(end for _, _, end in t) < last_slow_start


def test_a_sigkilled_slave_gives_its_host_slot_back_when_its_lease_expires(
    tmp_path: Path, redis_server: RedisServer, servers: list[TestHTTPServer], clusters: list[Cluster]
) -> None:
    site = serve(servers, "127.0.0.1", 8, delay=0.3)
    c = cluster(
        clusters,
        tmp_path,
        redis_server.url,
        [site.url("/gen/0.html")],
        "killed",
        concurrency_per_host=1,
        lease_seconds=3,
    )
    c.start("slave-0", "slave", "slave-0")
    c.start("master", "master")
    c.wait_for(lambda st: st.pages >= 2 and c.owned("slave-0") > 0, 120, "slave-0 holding the host's slot")
    c.kill("slave-0")  # dies holding the only slot of 127.0.0.1
    c.start("slave-1", "slave", "slave-1")  # a new id: the slot comes back only by lease expiry
    codes = c.wait_all(deadline_s=240)
    assert codes["slave-1"] == 0 and codes["master"] == 0, c.logs_tail()
    timeline = pages_timeline(site)
    assert {p for p, _, _ in timeline} == {f"/gen/{i}.html" for i in range(8)}
    assert peak_in_flight(timeline) == 1  # the killed slave's last request ended before the slot was reused
    st = c.status()
    assert st.complete and st.pages >= 8
    assert st.stats.get("lease_expired", 0) >= 1


async def test_a_crawl_waiting_out_a_long_delay_is_not_a_stall(
    servers: list[TestHTTPServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Role none, memory store: the only queued request waits for its slot far longer than STALL_S."""
    import asyncio

    from kubecrawl import Response, Spider
    from kubecrawl.core import scheduler
    from kubecrawl.runner import CrawlProcess
    from kubecrawl.settings import build_settings

    class Follow(Spider):
        name = "follow"

        async def parse(self, response: Response):  # type: ignore[no-untyped-def]
            yield {"url": response.url}
            for req in response.follow_all(css="a"):
                yield req

    monkeypatch.setattr(scheduler, "STALL_S", 0.2)
    site = serve(servers, "127.0.0.1", 3, delay=0.0)
    s = build_settings(
        cli={"progress": "off", "download_delay": 1.0, "obey_robots": False}, spider_settings={}, environ={}
    )
    proc = CrawlProcess(Follow(start_urls=[site.url("/gen/0.html")]), s)
    code = await asyncio.wait_for(proc.run(), 120)
    assert code == 0, proc.fatal
    timeline = pages_timeline(site)
    assert len(timeline) == 3
    assert min(gaps(timeline)) >= 1.0 * DELAY_SPREAD[0]  # each wait was at least 0.5 s > STALL_S


async def test_robots_crawl_delay_spaces_the_requests_to_its_host(servers: list[TestHTTPServer]) -> None:
    import asyncio

    from kubecrawl import Response, Spider
    from kubecrawl.runner import CrawlProcess
    from kubecrawl.settings import build_settings

    class Follow(Spider):
        name = "follow"

        async def parse(self, response: Response):  # type: ignore[no-untyped-def]
            yield {"url": response.url}
            for req in response.follow_all(css="a"):
                yield req

    site = serve(servers, "127.0.0.1", 5)
    site.html("/robots.txt", "User-agent: *\nCrawl-delay: 0.3\n", content_type="text/plain")
    s = build_settings(cli={"progress": "off"}, spider_settings={}, environ={})  # no download_delay
    proc = CrawlProcess(Follow(start_urls=[site.url("/gen/0.html")]), s)
    assert await asyncio.wait_for(proc.run(), 120) == 0, proc.fatal
    timeline = pages_timeline(site)
    assert len(timeline) == 5 and peak_in_flight(timeline) == 1
    assert min(gaps(timeline)) >= 0.3  # a floor, not randomised below


class _NamedCluster(Cluster):
    """Each process's User-Agent names it, so the server says which slave sent what."""

    def _env(self, worker_id: str | None) -> dict[str, str]:
        env = super()._env(worker_id)
        env["KUBECRAWL_USER_AGENT"] = f"kc-{worker_id or 'master'}"
        return env


def test_two_slaves_share_a_hosts_places_when_it_allows_more_than_one_slave_fetches(
    tmp_path: Path, redis_server: RedisServer, servers: list[TestHTTPServer]
) -> None:
    # concurrency_per_host 8, two slaves of concurrency 4 (and a buffer of 4 + pop_batch 32): without
    # a per-worker cap the first slave to pop could hold all 8 places and the other sit idle
    site = serve(servers, "127.0.0.1", 200, delay=0.05)
    by_agent: dict[str, int] = {}
    at_once: dict[str, int] = {}
    peak: dict[str, int] = {}
    lock = threading.Lock()

    def counted(handler: Callable[[RequestInfo], Reply]) -> Callable[[RequestInfo], Reply]:
        def run(req: RequestInfo) -> Reply:
            agent = next((v for k, v in req.headers.items() if k.lower() == "user-agent"), "?")
            with lock:
                by_agent[agent] = by_agent.get(agent, 0) + 1
                at_once[agent] = at_once.get(agent, 0) + 1
                peak[agent] = max(peak.get(agent, 0), at_once[agent])
            try:
                return handler(req)
            finally:
                with lock:
                    at_once[agent] -= 1

        return run

    for path, handler in list(site.routes.items()):
        site.route(path, counted(handler))
    spider = tmp_path / "fair_spider.py"
    write_seeds_spider(spider, [site.url("/gen/0.html")])
    c = _NamedCluster(
        tmp_path, spider, redis_server.url, "fair", {"concurrency": 4, "concurrency_per_host": 8, "obey_robots": False}
    )
    try:
        c.start_slaves(2)
        c.wait_for(lambda st: st.live_workers == 2, 120, "both slaves live")
        c.start("master", "master")
        codes = c.wait_all(deadline_s=240)
    finally:
        c.stop_all()
    assert set(codes.values()) == {0}, c.logs_tail()
    timeline = pages_timeline(site)
    assert sorted(p for p, _, _ in timeline) == sorted(f"/gen/{i}.html" for i in range(200))  # each once
    assert peak_in_flight(timeline) <= 8
    assert set(by_agent) == {"kc-slave-0", "kc-slave-1"}  # both slaves fetched pages
    assert sum(by_agent.values()) == 200 and min(by_agent.values()) > 0
    assert max(peak.values()) <= 4
