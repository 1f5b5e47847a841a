"""Master + slaves as separate ``kubecrawl crawl`` processes over one real redis-server.

The HTTP server's request log is the witness for "fetched exactly once"; the Redis item stream for
"stored exactly once". Slaves run with ``--exit-when-idle`` and must exit 0 when the round completes.
"""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import pytest
import redis

from tests.helpers.httpserver import TestHTTPServer, generated_site
from tests.helpers.redis_server import enqueue_raw
from tests.integration.conftest import free_port
from tests.integration.distributed_cluster import KUBECRAWL, Cluster, write_spider

if TYPE_CHECKING:
    from tests.integration.conftest import RedisServer

pytestmark = pytest.mark.slow

PAGES = 2000
HOSTILE = [
    b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94\x93\x94.",  # a pickle
    b'{"v": 7, "url": "http://127.0.0.1/x"}',
    b'{"v": 1, "url": 12}',
    b'{"v": 1, "url": "http://127.0.0.1/x", "meta": "' + b"B" * (3 << 20) + b'"}',
]


@pytest.fixture
def cluster_factory(tmp_path: Path) -> Iterator[object]:
    made: list[Cluster] = []

    def make(server: TestHTTPServer, redis_url: str, crawl: str, **settings: object) -> Cluster:
        spider = write_spider(tmp_path / "site_spider.py", server.url("/gen/0.html"))
        c = Cluster(tmp_path, spider, redis_url, crawl, settings)
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop_all()


def page_fetches(server: TestHTTPServer) -> Counter[str]:
    fetched = Counter(server.paths())
    fetched.pop("/robots.txt", None)
    return fetched


def assert_items_once(cluster: Cluster, server: TestHTTPServer, paths: set[str]) -> None:
    items = cluster.items()
    urls = Counter(str(i["url"]) for i in items)
    assert set(urls) == {server.url(p) for p in paths}
    dupes = {u: n for u, n in urls.items() if n > 1}
    assert not dupes, f"{len(dupes)} item(s) stored more than once"


def test_master_and_three_slaves_fetch_every_page_exactly_once(
    http_server: TestHTTPServer, redis_server: RedisServer, cluster_factory
) -> None:
    paths = generated_site(http_server, PAGES, links=10)
    # concurrency_per_host holds for the whole cluster: 48 lets 3 slaves of concurrency 16 fill their
    # batches as before (the default 8 would leave each ~3 leases; docs/distributed.md, round trips)
    cluster: Cluster = cluster_factory(http_server, redis_server.url, "gen", concurrency_per_host=48)
    r = redis_server.client()
    for i, payload in enumerate(HOSTILE):  # hostile entries waiting at the head of the queue
        enqueue_raw(r, "gen", f"hostile-{i}", payload, 1000, slot="127.0.0.1")

    cluster.start_slaves(3)  # slaves first: they wait for the seeds
    cluster.start("master", "master")
    codes = cluster.wait_all(deadline_s=300)
    assert codes == {"slave-0": 0, "slave-1": 0, "slave-2": 0, "master": 0}, cluster.logs_tail()

    fetched = page_fetches(http_server)
    assert set(fetched) == paths
    assert max(fetched.values()) == 1, f"refetched: {[p for p, n in fetched.items() if n > 1][:10]}"
    assert_items_once(cluster, http_server, paths)
    st = cluster.status()
    assert st.complete and st.pages == PAGES and st.items == PAGES and st.errors == 0
    assert st.rejected == len(HOSTILE)
    assert st.seen == PAGES
    assert st.round_trips_per_page is not None and st.round_trips_per_page < 1

    # what a user runs next: status, then export
    shown = subprocess.run(
        [KUBECRAWL, "status", "--redis-url", redis_server.url, "--crawl", "gen"], capture_output=True, check=True
    ).stdout.decode()
    assert "round 1, complete" in shown and f"items          {PAGES:,}" in shown
    out = cluster.workdir / "export.jsonl"
    subprocess.run(
        [KUBECRAWL, "export", "--redis-url", redis_server.url, "--crawl", "gen", "-o", str(out)],
        capture_output=True,
        check=True,
    )
    exported = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert sorted(str(i["url"]) for i in exported) == sorted(http_server.url(p) for p in paths)


def test_killed_slave_loses_no_request(http_server: TestHTTPServer, redis_server: RedisServer, cluster_factory) -> None:
    # politeness delay, for the whole cluster: about 50 pages/s, so the crawl lasts long enough to kill it
    # 4 times; pages of 50 ms keep each lease held long enough that a slave seen holding one still does
    # when it is killed a moment later
    paths = generated_site(http_server, PAGES, links=10, delay=0.05)
    cluster: Cluster = cluster_factory(http_server, redis_server.url, "kill", lease_seconds=20, download_delay=0.02)
    cluster.start_slaves(3)
    cluster.start("master", "master")
    # slave-0 is SIGKILLed repeatedly and comes back under its own id (reclaims its leases at once);
    # slave-1 once, coming back under a new id (its leases must expire and be reaped)
    started = 0
    for threshold in (150, 450, 750):
        cluster.wait_for(
            lambda st, t=threshold, s0=started: st.pages >= t and cluster.working_since("slave-0", s0),
            240,
            f"{threshold} pages with slave-0 at work",
        )
        cluster.kill("slave-0")
        started = cluster.server_ms()
        cluster.start("slave-0", "slave", "slave-0")
    cluster.wait_for(lambda st: st.pages >= 1000 and cluster.owned("slave-1") > 0, 240, "1000 pages")
    cluster.kill("slave-1")
    cluster.start("slave-1", "slave", "slave-1-reborn")

    codes = cluster.wait_all(deadline_s=300)
    assert set(codes.values()) == {0}, cluster.logs_tail()
    assert cluster.exits["slave-0"] == [-9, -9, -9]
    assert cluster.log_text("slave-0").count("reclaimed") == 3  # its own leases back at once, not after expiry
    assert set(page_fetches(http_server)) == paths
    assert_items_once(cluster, http_server, paths)
    st = cluster.status()
    assert st.complete and st.items == PAGES


def test_crawl_survives_redis_restart_from_its_append_only_file(
    http_server: TestHTTPServer, make_redis_server, cluster_factory
) -> None:
    server: RedisServer = make_redis_server(aof=True)
    paths = generated_site(http_server, PAGES, links=10, delay=0.003)
    cluster: Cluster = cluster_factory(http_server, server.url, "aof", lease_seconds=10)
    cluster.start_slaves(3)
    cluster.start("master", "master")
    cluster.wait_for(lambda st: st.pages >= 600, 240, "600 pages")
    server.restart(kill=True, down_s=1.0)  # SIGKILL: only the AOF carries the crawl
    codes = cluster.wait_all(deadline_s=400)
    assert set(codes.values()) == {0}, cluster.logs_tail()
    assert set(page_fetches(http_server)) == paths
    assert_items_once(cluster, http_server, paths)
    assert cluster.status().items == PAGES


def test_slave_serves_health_and_metrics(
    http_server: TestHTTPServer, redis_server: RedisServer, cluster_factory
) -> None:
    paths = generated_site(http_server, 60, links=5)
    cluster: Cluster = cluster_factory(http_server, redis_server.url, "health")
    port = free_port()
    # no --exit-when-idle here: a Deployment's slave keeps running
    cluster.start("slave", "slave", "slave-h", port, exit_when_idle=False)
    cluster.start("master", "master")
    cluster.wait_for(lambda st: st.complete and st.pages == len(paths), 120, "the crawl to complete")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as resp:
        assert resp.status == 200
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as resp:
        assert resp.status == 200
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        metrics = resp.read().decode()
    lines = dict(line.rsplit(" ", 1) for line in metrics.splitlines() if line and not line.startswith("#"))
    assert float(lines["kubecrawl_pages_total"]) == len(paths)
    assert float(lines["kubecrawl_queue_depth"]) == 0
    assert float(lines["kubecrawl_fetch_latency_seconds_count"]) >= len(paths)
    assert float(lines["kubecrawl_redis_round_trips_total"]) > 0
    assert float(lines["kubecrawl_frontier_hosts"]) == 0  # complete: no slot has queued or leased requests
    cluster.procs["slave"].terminate()
    assert cluster.procs["slave"].wait(timeout=60) == 0


def test_stopped_crawl_resumes_from_redis_without_fetching_a_page_twice(
    http_server: TestHTTPServer, redis_server: RedisServer, cluster_factory
) -> None:
    paths = generated_site(http_server, PAGES, links=10)
    cluster: Cluster = cluster_factory(http_server, redis_server.url, "resume", download_delay=0.05)
    cluster.start_slaves(3)
    cluster.start("master", "master")
    cluster.wait_for(lambda st: st.pages >= 500, 240, "500 pages")
    for name in ("slave-0", "slave-1", "slave-2"):  # SIGTERM: finish in-flight pages, hand the rest back
        cluster.procs[name].terminate()
    assert [cluster.procs[n].wait(timeout=120) for n in ("slave-0", "slave-1", "slave-2")] == [0, 0, 0]
    st = cluster.status()
    assert st.in_flight == 0 and st.queued > 0 and not st.complete and st.live_workers == 0

    cluster.settings["download_delay"] = 0
    cluster.start_slaves(2)  # fresh processes: everything they need is in Redis
    codes = cluster.wait_all(deadline_s=300)
    assert set(codes.values()) == {0}, cluster.logs_tail()
    fetched = page_fetches(http_server)
    assert set(fetched) == paths and max(fetched.values()) == 1
    assert_items_once(cluster, http_server, paths)


def _healthz(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _poll_healthz(port: int, want: int, deadline_s: float) -> str:
    deadline = time.monotonic() + deadline_s
    seen: tuple[int, str] = (0, "")
    while time.monotonic() < deadline:
        seen = _healthz(port)
        if seen[0] == want:
            return seen[1]
        time.sleep(0.2)
    raise AssertionError(f"/healthz never answered {want} within {deadline_s}s; last {seen}")


def test_healthz_fails_while_commits_are_wedged_and_recovers(
    http_server: TestHTTPServer, redis_server: RedisServer, cluster_factory
) -> None:
    """The liveness rule: finished pages waiting and no commit for ``liveness_commit_timeout`` is 503.

    Redis keeps answering PING (reads go on) while ``CLIENT PAUSE WRITE`` holds every script, so only
    the commit rule can turn /healthz red; once writes resume the slave commits, /healthz is 200 again
    and the crawl completes with every page fetched once."""
    paths = generated_site(http_server, 80, links=5, delay=0.2)
    cluster: Cluster = cluster_factory(
        http_server, redis_server.url, "wedged", liveness_commit_timeout=2, concurrency=4
    )
    port = free_port()
    cluster.start("slave", "slave", "slave-w", port, exit_when_idle=False)
    cluster.start("master", "master")
    cluster.wait_for(lambda st: st.pages >= 5, 120, "5 pages")
    assert _healthz(port)[0] == 200
    admin = redis.Redis.from_url(redis_server.url)
    admin.execute_command("CLIENT", "PAUSE", 60_000, "WRITE")
    try:
        why = _poll_healthz(port, 503, 30)
        assert "no commit for" in why and "pending" in why, why
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")
    _poll_healthz(port, 200, 60)
    cluster.wait_for(lambda st: st.complete and st.pages == len(paths), 180, "the crawl to complete")
    fetched = page_fetches(http_server)
    assert set(fetched) == paths and max(fetched.values()) == 1, fetched.most_common(3)
    cluster.procs["slave"].terminate()
    assert cluster.procs["slave"].wait(timeout=60) == 0
