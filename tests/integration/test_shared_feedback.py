"""Feedback shared by the cluster (issue 17): a 429 slows its host down for every slave; AutoThrottle's
delay is the slot's, not the process's.

The downloader tests run a real HTTP server on 127.0.0.x and record what the downloader tells the store
(``on_backoff``). The cluster tests run real slave processes on one real Redis; the witness is each
HTTP server's own timeline (when it had each request, in the test process's ``time.monotonic()``)
compared with the wait the test's server asked for, never the crawler's word.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import redis

from kubecrawl.backends.redis import Keys
from kubecrawl.downloader import Downloader, DownloadError
from kubecrawl.request import Request
from kubecrawl.settings import Settings
from tests.helpers.httpserver import RequestInfo, TestHTTPServer, generated_site
from tests.integration.distributed_cluster import Cluster, write_seeds_spider

if TYPE_CHECKING:
    from tests.integration.conftest import RedisServer

HTML = {"Content-Type": "text/html; charset=utf-8"}


@pytest.fixture
def servers() -> Iterator[list[TestHTTPServer]]:
    made: list[TestHTTPServer] = []
    yield made
    for s in made:
        s.stop()


def serve(servers: list[TestHTTPServer], bind: str) -> TestHTTPServer:
    s = TestHTTPServer(bind).start()
    servers.append(s)
    return s


class Told:
    """Records what the downloader tells the store (``Backend.backoff``); may be made to fail."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, float]] = []
        self.fail = fail

    async def __call__(self, slot: str, seconds: float) -> None:
        self.calls.append((slot, seconds))
        if self.fail:
            raise ConnectionError("store unreachable")


@pytest.fixture
async def make_downloader() -> AsyncIterator[Callable[..., tuple[Downloader, Told]]]:
    made: list[Downloader] = []

    def make(fail: bool = False, **overrides: Any) -> tuple[Downloader, Told]:
        values: dict[str, Any] = {"obey_robots": False, "retry_backoff": 0.0, **overrides}
        d = Downloader(Settings(**values))
        told = Told(fail)
        d.on_backoff = told
        made.append(d)
        return d, told

    yield make
    for d in made:
        await d.close()


async def test_which_answers_slow_the_slot_down_and_for_how_long(
    servers: list[TestHTTPServer], make_downloader: Callable[..., tuple[Downloader, Told]]
) -> None:
    site = serve(servers, "127.0.0.2")
    site.route("/429-ra", lambda _r: (429, {"Retry-After": "2"}, b"slow down"))
    site.route("/429", lambda _r: (429, {}, b"slow down"))
    site.route("/503-ra", lambda _r: (503, {"Retry-After": "3"}, b"maintenance"))
    site.route("/503", lambda _r: (503, {}, b"overloaded"))
    site.route("/500", lambda _r: (500, {"Retry-After": "3"}, b"bug"))
    d, told = make_downloader(max_retries=0, retry_backoff=10.0, retry_max_wait=4.0)
    for path in ("/429-ra", "/429", "/503-ra", "/503", "/500"):
        with pytest.raises(DownloadError):
            await d.fetch(Request(site.url(path)))
    # Retry-After as sent; without one the retry wait (10 s backoff, capped by retry_max_wait at 4 s);
    # a 503 without Retry-After and a 500 leave the slot alone
    assert told.calls == [("127.0.0.2", 2.0), ("127.0.0.2", 4.0), ("127.0.0.2", 3.0)]
    assert d.stats["slot_backoff"] == 3
    # a 429 the downloader does not retry (dont_retry) is returned, and still slows the slot down
    d2, told2 = make_downloader(max_retries=2)
    resp = await d2.fetch(Request(site.url("/429-ra"), meta={"dont_retry": True}))
    assert resp.status == 429 and told2.calls == [("127.0.0.2", 2.0)]


async def test_other_requests_of_the_slot_in_this_process_wait_and_other_slots_do_not(
    servers: list[TestHTTPServer], make_downloader: Callable[..., tuple[Downloader, Told]]
) -> None:
    a, b = serve(servers, "127.0.0.2"), serve(servers, "127.0.0.3")
    a.route("/busy", lambda _r: (429, {"Retry-After": "30"}, b"slow down"))
    a.html("/next", "<html>a</html>")
    b.html("/page", "<html>b</html>")
    d, told = make_downloader(max_retries=0)
    with pytest.raises(DownloadError):
        await d.fetch(Request(a.url("/busy")))
    waiting = asyncio.create_task(d.fetch(Request(a.url("/next"))))  # leased before the 429: must wait
    resp = await d.fetch(Request(b.url("/page")))  # another slot: not held back
    assert resp.status == 200
    await asyncio.sleep(0)
    assert not waiting.done()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert a.paths() == ["/busy"]  # /next was never sent
    assert told.calls == [("127.0.0.2", 30.0)]


async def test_a_store_that_fails_the_backoff_costs_no_page(
    servers: list[TestHTTPServer], make_downloader: Callable[..., tuple[Downloader, Told]]
) -> None:
    site = serve(servers, "127.0.0.2")

    def once(req: RequestInfo) -> tuple[int, dict[str, Any], bytes]:
        if req.hits == 1:
            return 429, {"Retry-After": "0"}, b"slow down"
        return 200, HTML, b"<html>ok</html>"

    site.route("/p", once)
    d, told = make_downloader(fail=True, max_retries=1)
    resp = await d.fetch(Request(site.url("/p")))
    assert resp.status == 200 and site.hits["/p"] == 2
    assert told.calls == [("127.0.0.2", 0.0)]
    assert d.stats["slot_backoff"] == 1 and d.stats["slot_backoff_failed"] == 1


# -- the cluster ---------------------------------------------------------------------------------------


@pytest.fixture
def clusters() -> Iterator[list[Cluster]]:
    made: list[Cluster] = []
    yield made
    for c in made:
        c.stop_all()


def cluster(
    clusters: list[Cluster], tmp_path: Path, redis_url: str, starts: list[str], name: str, **settings: object
) -> Cluster:
    spider = tmp_path / f"{name}_spider.py"
    write_seeds_spider(spider, starts)
    c = Cluster(tmp_path, spider, redis_url, name, {"obey_robots": False, **settings})
    clusters.append(c)
    return c


def starts_of(server: TestHTTPServer) -> list[float]:
    return sorted(start for _, start, _ in server.timeline)


@pytest.mark.slow
def test_a_429_holds_its_host_back_from_every_slave_and_no_other_host(
    tmp_path: Path, redis_server: RedisServer, servers: list[TestHTTPServer], clusters: list[Cluster]
) -> None:
    """Host A has two places (concurrency_per_host=2) and slow pages (3 s). It answers 429 once, to a request
    from one slave that arrives while another slave's request is still being answered: that other
    slave gets its answer well inside the Retry-After window, and only the store's backoff keeps it
    (and the third slave) from sending A its next request then. The slave that had the 429 would
    wait by itself anyway; that alone would not protect A."""
    # the other slave's answer comes 2.5-3 s after the 429, inside the 4 s window: the slave that had
    # the 429 has 2.5 s to tell the store (a margin a loaded CI machine needs: 1 s was missed once)
    retry_after, page_s = 4.0, 3.0
    a, b = serve(servers, "127.0.0.2"), serve(servers, "127.0.0.3")
    generated_site(a, 10, links=9)  # /gen/0 links to every other page: A always has work queued
    # B takes a while (80 pages of 0.1 s, two places, the slaves busy with A too): still being crawled
    # when A's window opens, a second or two in
    generated_site(b, 80, links=4, delay=0.1)
    page_a = a.routes["/gen/0.html"]
    lock = threading.Lock()
    in_flight: dict[int, tuple[str, float]] = {}  # A's requests being answered: slave, arrival
    ids = itertools.count()
    arrivals: list[tuple[str, float]] = []
    asked: list[float] = []  # when A's handler wrote the 429 (after it had the request, before the answer)

    def a_page(req: RequestInfo) -> tuple[int, dict[str, Any], Any]:
        now, me, who = time.monotonic(), next(ids), {k.lower(): v for k, v in req.headers.items()}["user-agent"]
        with lock:
            arrivals.append((who, round(now, 3)))
            # another slave's request arrived less than page_s - 2.5 s ago: it is answered >= 2.5 s from now,
            # well before the window ends, and A's two places are both held (no third lease of A exists)
            if not asked and any(w != who and now - t0 < page_s - 2.5 for w, t0 in in_flight.values()):
                asked.append(now)
                return 429, {"Retry-After": f"{retry_after:g}"}, b"slow down"
            in_flight[me] = (who, now)
        try:
            time.sleep(page_s)
            return page_a(req)
        finally:
            with lock:
                del in_flight[me]

    for i in range(10):
        a.route(f"/gen/{i}.html", a_page)
    c = cluster(
        clusters,
        tmp_path,
        redis_server.url,
        [a.url("/gen/0.html"), b.url("/gen/0.html")],
        "backoff",
        concurrency_per_host=2,
        download_delay=0.05,
        # one page at a time per slave (and one more buffered): two A requests at the server at once
        # come from two slaves
        concurrency=1,
        pop_batch=1,
    )
    for i in range(3):
        c.settings["user_agent"] = f"kc-test-slave-{i}"  # the server tells the slaves apart
        c.start(f"slave-{i}", "slave", f"slave-{i}")
    c.start("master", "master")
    codes = c.wait_all(deadline_s=240)
    assert set(codes.values()) == {0}, c.logs_tail()
    assert len(asked) == 1, f"A never had two slaves' requests at once: {arrivals}"
    t429 = asked[0]
    a_after = [t for t in starts_of(a) if t > t429]
    assert a_after, "A was never fetched again"
    # the contract: the server asked for 4 s and no slave sent A anything within them
    assert min(a_after) - t429 >= retry_after, (t429, arrivals)
    # while B went on: the server had B's requests inside A's window
    b_starts = starts_of(b)
    assert any(t429 < t < t429 + retry_after for t in b_starts), (t429, b_starts[0], b_starts[-1])
    # every page of both hosts, once (and A's 429 page once more: retried after the wait)
    assert sorted(p for p, _, _ in b.timeline) == sorted(f"/gen/{i}.html" for i in range(80))
    assert sorted({p for p, _, _ in a.timeline}) == sorted(f"/gen/{i}.html" for i in range(10))
    assert len(a.timeline) == 11
    st = c.status()
    assert st.stats.get("slot_backoff") == 1 and st.pages == 90


@pytest.mark.slow
def test_autothrottle_delay_is_kept_by_the_store_and_spaces_the_host_across_slaves(
    tmp_path: Path, redis_server: RedisServer, servers: list[TestHTTPServer], clusters: list[Cluster]
) -> None:
    """Two slaves on one slow host; the one that has sent more is stopped (SIGTERM) after a few pages,
    so both certainly fetch and the other carries on from the delay the first left in the store."""
    latency = 0.3
    slow = serve(servers, "127.0.0.4")
    generated_site(slow, 12, links=4, delay=latency)
    page = slow.routes["/gen/0.html"]
    lock = threading.Lock()
    arrivals: list[tuple[float, str]] = []  # (arrival, slave)

    def recorded(req: RequestInfo) -> tuple[int, dict[str, Any], Any]:
        with lock:
            arrivals.append((time.monotonic(), {k.lower(): v for k, v in req.headers.items()}["user-agent"]))
        return page(req)

    for i in range(12):
        slow.route(f"/gen/{i}.html", recorded)
    c = cluster(
        clusters,
        tmp_path,
        redis_server.url,
        [slow.url("/gen/0.html")],
        "throttle",
        concurrency_per_host=1,
        autothrottle=True,
        autothrottle_start_delay=0.05,  # far below the latency: the delay has to rise to it
        autothrottle_max_delay=5,
        concurrency=4,
    )
    for i in range(2):
        c.settings["user_agent"] = f"kc-test-slave-{i}"
        c.start(f"slave-{i}", "slave", f"slave-{i}")
    c.start("master", "master")
    c.wait_for(lambda _st: len(arrivals) >= 3, 120, "three requests at the slow host")
    with lock:
        busiest = Counter(who for _, who in arrivals).most_common(1)[0][0]
    stopped = c.procs[busiest.replace("kc-test-", "")]
    stopped.terminate()  # finishes its page, acks it, hands the rest back; the other slave goes on
    assert stopped.wait(timeout=120) == 0, c.logs_tail()
    codes = c.wait_all(deadline_s=240)
    assert set(codes.values()) == {0}, c.logs_tail()
    # the store's slot delay rose from the start delay to at least the latency every slave measured
    # (each answer took the server `latency` to write, so a client measures no less)
    frontier = redis.Redis.from_url(redis_server.url).hgetall(Keys("throttle").frontier)
    stored = frontier.get(b"t:127.0.0.4")
    assert stored is not None and int(stored) >= latency * 1000
    assert len(slow.timeline) == 12 and len(arrivals) == 12
    arrivals.sort()
    assert {who for _, who in arrivals} == {"kc-test-slave-0", "kc-test-slave-1"}
    # each request's answer came `latency` after it arrived; the next arrived at least the slot's
    # AutoThrottle delay (>= latency) after that answer, whichever slave sent it
    pairs = list(itertools.pairwise(arrivals))
    assert any(a[1] != b[1] for a, b in pairs)  # at least one gap spans the two slaves
    assert min(b[0] - a[0] for a, b in pairs) >= 2 * latency, arrivals
