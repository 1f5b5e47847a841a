"""Issue 20 items 1 and 5 on a real redis-server: store errors never wedge a slave silently, and a Redis
that lost data is reported, never taken for a complete crawl.

Slaves are real ``kubecrawl crawl --role slave`` processes; the HTTP server's request log is the witness
for what was fetched, the slaves' logs and exit codes for what they said.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from kubecrawl.backends.redis import Keys
from tests.helpers.httpserver import TestHTTPServer, generated_site
from tests.helpers.redis_server import RedisServer
from tests.integration.distributed_cluster import Cluster, write_spider

pytestmark = pytest.mark.slow


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[[str], RedisServer]]:
    made: list[RedisServer] = []

    def make(name: str) -> RedisServer:
        s = RedisServer(tmp_path / name).start()
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


@pytest.fixture
def clusters(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    made: list[Cluster] = []

    def make(http: TestHTTPServer, redis_url: str, crawl: str, **settings: object) -> Cluster:
        spider = write_spider(tmp_path / "site_spider.py", http.url("/gen/0.html"))
        c = Cluster(tmp_path, spider, redis_url, crawl, settings)
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop_all()


def wait_until(cond: Callable[[], bool], deadline_s: float, what: str, cluster: Cluster) -> None:
    end = time.monotonic() + deadline_s
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}\n{cluster.logs_tail(3000)}")
        time.sleep(0.05)


def fetched(http: TestHTTPServer) -> set[str]:
    return {p for p in http.paths() if p != "/robots.txt"}


def logged(cluster: Cluster, names: list[str], text: str) -> bool:
    return all(text in cluster.log_text(n) for n in names)


SLAVES = ["slave-0", "slave-1"]


def test_out_of_memory_redis_makes_slaves_wait_without_taking_leases_then_finish(
    http_server: TestHTTPServer, servers: Callable[[str], RedisServer], clusters: Callable[..., Cluster]
) -> None:
    paths = generated_site(http_server, 600, links=10, delay=0.005)
    r = servers("oom")
    # no per-host cap worth the name: only the store's behaviour can keep slaves from leasing the queue
    cluster = clusters(http_server, r.url, "oom", concurrency=4, pop_batch=8, concurrency_per_host=10_000)
    cluster.start_slaves(2)
    cluster.start("master", "master")
    cluster.wait_for(lambda st: st.pages >= 40 and st.queued > 200, 120, "40 pages and a queue")
    admin = r.client()
    admin.config_set("maxmemory-policy", "noeviction")
    k = Keys("oom")
    tx = admin.pipeline(transaction=True)
    tx.zcard(k.leases)
    tx.config_set("maxmemory", "1")  # every write that may grow memory is refused from now on
    held_at_oom = int(tx.execute()[0])  # the leases held at that very instant
    wait_until(lambda: logged(cluster, SLAVES, "out of memory"), 60, "both slaves to log the OOM", cluster)
    # while Redis refuses writes no slave takes a lease (before: the whole queue was leased)
    most = 0
    end = time.monotonic() + 3.0  # an observation window, not a readiness wait
    while time.monotonic() < end:
        most = max(most, int(admin.zcard(k.leases)))
        time.sleep(0.05)
    queued = int(admin.hget(k.frontier, "queued") or 0)
    assert most <= held_at_oom, f"leases went from {held_at_oom} to {most} while Redis was out of memory"
    assert queued > 100
    for name in SLAVES:
        assert cluster.procs[name].poll() is None, cluster.logs_tail()
    admin.config_set("maxmemory", "0")
    codes = cluster.wait_all(300)
    assert set(codes.values()) == {0}, cluster.logs_tail(3000)
    assert fetched(http_server) == paths
    assert cluster.status().items == len(paths)
    assert logged(cluster, SLAVES, "redis answers")  # and each said it recovered


def test_busy_redis_from_a_long_script_elsewhere_is_waited_out(
    http_server: TestHTTPServer, servers: Callable[[str], RedisServer], clusters: Callable[..., Cluster]
) -> None:
    paths = generated_site(http_server, 400, links=10, delay=0.005)
    r = servers("busy")
    cluster = clusters(http_server, r.url, "busy", concurrency=4)
    cluster.start_slaves(2)
    cluster.start("master", "master")
    cluster.wait_for(lambda st: st.pages >= 40, 120, "40 pages")
    admin = r.client()
    admin.config_set("busy-reply-threshold", 100)  # other clients get BUSY once a script ran 100 ms
    # another program's script that keeps Redis busy until told to stop (a key it cannot see: only time)
    spin = "local t0 = redis.call('TIME')[1] while redis.call('TIME')[1] - t0 < tonumber(ARGV[1]) do end return 1"
    runner = threading.Thread(target=lambda: redis.Redis(port=r.port, socket_timeout=60).eval(spin, 0, 4), daemon=True)
    runner.start()
    wait_until(lambda: logged(cluster, SLAVES, "busy running a long script"), 60, "both slaves to log BUSY", cluster)
    runner.join(60)
    codes = cluster.wait_all(300)
    assert set(codes.values()) == {0}, cluster.logs_tail(3000)
    assert fetched(http_server) == paths
    assert cluster.status().items == len(paths)


def _repl(client: redis.Redis) -> dict[str, object]:
    return dict(client.info("replication"))


def test_read_only_redis_after_a_failover_is_waited_out_and_the_crawl_finishes(
    http_server: TestHTTPServer, servers: Callable[[str], RedisServer], clusters: Callable[..., Cluster]
) -> None:
    paths = generated_site(http_server, 1500, links=10, delay=0.01)  # still crawling when the failover comes
    a, b = servers("a"), servers("b")
    cluster = clusters(http_server, a.url, "ro", concurrency=4)
    cluster.start_slaves(2)
    cluster.start("master", "master")
    cluster.wait_for(lambda st: st.pages >= 40, 120, "40 pages")
    ca, cb = a.client(), b.client()
    # the manual failover of the Redis docs: b replicates a, a's writes pause, b takes over, a follows b
    cb.replicaof("127.0.0.1", a.port)
    wait_until(lambda: _repl(cb).get("master_link_status") == "up", 60, "b to sync", cluster)
    ca.execute_command("CLIENT", "PAUSE", 30000, "WRITE")
    wait_until(
        lambda: _repl(cb).get("slave_repl_offset") == _repl(ca).get("master_repl_offset"), 60, "b to catch up", cluster
    )
    cb.replicaof("NO", "ONE")
    ca.replicaof("127.0.0.1", b.port)
    ca.execute_command("CLIENT", "UNPAUSE")
    wait_until(lambda: logged(cluster, SLAVES, "read-only replica"), 60, "both slaves to log READONLY", cluster)
    for name in SLAVES:
        assert cluster.procs[name].poll() is None, cluster.logs_tail()
    # a becomes the master again (with b's data, which is a's): the slaves reconnect and finish there
    wait_until(lambda: _repl(ca).get("master_link_status") == "up", 60, "a to sync from b", cluster)
    ca.replicaof("NO", "ONE")
    codes = cluster.wait_all(300)
    assert set(codes.values()) == {0}, cluster.logs_tail(3000)
    assert fetched(http_server) == paths
    assert cluster.status().items == len(paths)


def test_redis_restored_from_an_older_snapshot_is_reported_never_complete(
    http_server: TestHTTPServer, servers: Callable[[str], RedisServer], clusters: Callable[..., Cluster]
) -> None:
    paths = generated_site(http_server, 800, links=10, delay=0.005)
    r = servers("rdb")
    cluster = clusters(http_server, r.url, "rdb", concurrency=4, lease_seconds=5)
    cluster.start_slaves(2)
    cluster.start("master", "master")
    cluster.wait_for(lambda st: st.pages >= 60, 120, "60 pages")
    r.client().save()
    snapshot = r.workdir / "dump.rdb"
    kept = r.workdir / "kept.rdb"
    shutil.copy(snapshot, kept)
    at_save = cluster.status().pages
    cluster.wait_for(lambda st: st.pages >= at_save + 100, 120, "100 more pages after the snapshot")
    r.stop(kill=True)
    shutil.copy(kept, snapshot)  # Redis comes back from the older snapshot: the last writes are gone
    r.start()
    end = time.monotonic() + 300
    codes: dict[str, int] = {}
    for name in SLAVES:
        p = cluster.procs[name]
        try:
            codes[name] = p.wait(timeout=max(0.1, end - time.monotonic()))
        except Exception:
            raise AssertionError(f"{name} still running\n{cluster.logs_tail(3000)}") from None
    st = cluster.status()
    missing = paths - fetched(http_server)
    # never "complete" with pages missing; here the slaves committed after the snapshot, so they know
    assert not (st.complete and missing)
    assert st.lost is not None and "lost acknowledged writes" in st.lost, st
    assert not st.complete
    assert set(codes.values()) == {1}, cluster.logs_tail(3000)
    assert logged(cluster, SLAVES, "the store lost data")


def test_redis_restarted_empty_makes_slaves_exit_non_zero_instead_of_hanging(
    http_server: TestHTTPServer, servers: Callable[[str], RedisServer], clusters: Callable[..., Cluster]
) -> None:
    generated_site(http_server, 800, links=10, delay=0.005)
    r = servers("empty")
    cluster = clusters(http_server, r.url, "empty", concurrency=4)
    cluster.start_slaves(2)
    cluster.start("master", "master")
    cluster.wait_for(lambda st: st.pages >= 60, 120, "60 pages")
    r.restart(kill=True)  # no persistence: Redis comes back empty
    codes = cluster.wait_all(300)
    assert codes["master"] == 0
    assert {codes[n] for n in SLAVES} == {1}, cluster.logs_tail(3000)
    assert logged(cluster, SLAVES, "is gone")
    st = cluster.status()
    assert st.lost is not None and not st.complete


def test_a_crawl_key_of_the_wrong_type_stops_the_worker_at_once_with_the_reason(
    http_server: TestHTTPServer, servers: Callable[[str], RedisServer], clusters: Callable[..., Cluster]
) -> None:
    generated_site(http_server, 10, links=2)
    r = servers("wrongtype")
    r.client().set(Keys("wt").frontier, "another program's value")  # someone else writes our keys
    cluster = clusters(http_server, r.url, "wt")
    cluster.start("master", "master")
    # bounded by a deadline far below the 15-minute outage wait: waiting never fixes this
    codes = cluster.wait_all(60)
    assert codes["master"] == 1, cluster.logs_tail()
    log = cluster.log_text("master")
    assert "holds the wrong type" in log and "Traceback" not in log, log[-2000:]
