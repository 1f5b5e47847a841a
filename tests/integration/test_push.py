"""Feeding a running crawl from outside: ``kubecrawl push`` and a RedisSpider fed by ``redis-cli lpush``.

Real processes throughout: ``kubecrawl crawl`` slaves over a real redis-server, the real ``redis-cli``,
and the test HTTP server's request log as the witness that every URL was fetched exactly once.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from kubecrawl.redis_spider import idle_limit, start_key
from tests.helpers.httpserver import TestHTTPServer, generated_site
from tests.helpers.redis_server import RedisServer
from tests.integration.distributed_cluster import KUBECRAWL, Cluster

pytestmark = pytest.mark.slow

PUSH_SPIDER = """
from kubecrawl import Response, Spider


class SiteSpider(Spider):
    name = "site"
    start_urls = [{start!r}]

    async def parse(self, response: Response):
        yield {{"url": response.url, "via": "parse"}}
        for req in response.follow_all(css="a"):
            yield req

    async def parse_pushed(self, response: Response):
        yield {{"url": response.url, "via": "pushed", "tag": response.meta.get("tag")}}
"""

REDIS_SPIDER = """
from kubecrawl.scrapy.spiders import RedisSpider


class FedSpider(RedisSpider):
    name = "fed"

    def parse(self, response):
        yield {"url": response.url, "tag": response.meta.get("tag")}
"""


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("KUBECRAWL_")}


def kubecrawl(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KUBECRAWL, *args], input=stdin, capture_output=True, text=True, timeout=120, env=_env(), check=False
    )


def fetched(server: TestHTTPServer) -> Counter[str]:
    c = Counter(server.paths())
    c.pop("/robots.txt", None)
    return c


def wait_until(cond: Callable[[], bool], deadline_s: float, what: str, cluster: Cluster | None = None) -> None:
    end = time.monotonic() + deadline_s
    while not cond():
        if cluster is not None:
            cluster._check_alive()
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}" + (f"\n{cluster.logs_tail()}" if cluster else ""))
        time.sleep(0.05)


def pages(server: TestHTTPServer, prefix: str, n: int) -> list[str]:
    paths = [f"{prefix}/{i}.html" for i in range(n)]
    for p in paths:
        server.html(p, f"<html><title>{p}</title><body>pushed page</body></html>")
    return paths


@pytest.fixture
def clusters(tmp_path: Path) -> Iterator[list[Cluster]]:
    made: list[Cluster] = []
    yield made
    for c in made:
        c.stop_all()


def stop_slaves(cluster: Cluster) -> dict[str, int]:
    for p in cluster.procs.values():
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    return cluster.wait_all(deadline_s=120)


def test_push_into_a_running_two_slave_crawl_fetches_every_url_once(
    http_server: TestHTTPServer, redis_server: RedisServer, tmp_path: Path, clusters: list[Cluster]
) -> None:
    site = generated_site(http_server, 60, links=4)
    first = pages(http_server, "/push1", 20)
    second = pages(http_server, "/push2", 20)
    spider = tmp_path / "site_spider.py"
    spider.write_text(PUSH_SPIDER.format(start=http_server.url("/gen/0.html")))
    cluster = Cluster(tmp_path, spider, redis_server.url, "pushed", {"concurrency": 4})
    clusters.append(cluster)
    for i in range(2):
        cluster.start(f"slave-{i}", "slave", f"slave-{i}", exit_when_idle=False)  # run until SIGTERM
    cluster.start("master", "master")
    cluster.wait_for(lambda st: st.pages >= 1, 120, "the crawl to fetch its first page")

    # argv, with --callback and --priority
    out = kubecrawl(
        "push", "--redis-url", redis_server.url, "--crawl", "pushed", "--callback", "parse_pushed",
        "--priority", "5", *[http_server.url(p) for p in first],
    )  # fmt: skip
    assert (out.returncode, out.stdout.strip()) == (0, "pushed 20, duplicate 0, invalid 0"), out.stderr

    # stdin: JSON lines (meta, priority) and plain lines; repeats, a page of the site, and bad entries
    lines = [orjson.dumps({"url": http_server.url(p), "meta": {"tag": p}, "priority": 1}).decode() for p in second]
    lines += [http_server.url(p) for p in first]  # already pushed
    lines += [http_server.url("/gen/0.html"), "", "ftp://127.0.0.1/file", "http://[::1", '{"url": 5}']
    out = kubecrawl(
        "push", "--redis-url", redis_server.url, "--crawl", "pushed", "--callback", "parse_pushed", "-",
        stdin="\n".join(lines) + "\n",
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert out.stdout.strip() == "pushed 20, duplicate 21, invalid 3"
    assert "stdin line 43: invalid: skipped_scheme" in out.stderr and "stdin line 44: invalid: bad_url" in out.stderr
    assert "stdin line 45: invalid:" in out.stderr

    wanted = set(first) | set(second) | set(site)
    wait_until(lambda: wanted <= set(fetched(http_server)), 180, "every pushed page fetched", cluster)
    cluster.wait_for(lambda st: st.queued == 0 and st.in_flight == 0, 120, "the queue to drain")
    codes = stop_slaves(cluster)
    assert codes == {"slave-0": 0, "slave-1": 0, "master": 0}, cluster.logs_tail()

    counts = fetched(http_server)
    assert {p: n for p, n in counts.items() if n != 1} == {}, "fetched more than once"
    assert set(counts) == wanted
    items = cluster.items()
    pushed_items = {str(i["url"]): i for i in items if i["via"] == "pushed"}
    assert set(pushed_items) == {http_server.url(p) for p in first + second}
    assert all(pushed_items[http_server.url(p)]["tag"] == p for p in second)
    status = kubecrawl("status", "--redis-url", redis_server.url, "--crawl", "pushed")
    assert "pushed         40 from outside (21 duplicate, 3 invalid)" in status.stdout, status.stdout
    st = cluster.status()
    assert (st.pushed, st.pushed_duplicate, st.pushed_invalid) == (40, 21, 3)


def test_push_into_a_state_dir_is_crawled_by_the_next_local_run(http_server: TestHTTPServer, tmp_path: Path) -> None:
    site = generated_site(http_server, 5, links=2)
    extra = pages(http_server, "/local", 5)
    spider = tmp_path / "site_spider.py"
    spider.write_text(PUSH_SPIDER.format(start=http_server.url("/gen/0.html")))
    state = tmp_path / "state"
    out = kubecrawl(
        "push", "--state-dir", str(state), "--callback", "parse_pushed", *[http_server.url(p) for p in extra]
    )
    assert (out.returncode, out.stdout.strip()) == (0, "pushed 5, duplicate 0, invalid 0"), out.stderr
    items = tmp_path / "items.jsonl"
    run = kubecrawl("crawl", str(spider), "--state-dir", str(state), "-o", str(items), "-s", "progress=off")
    assert run.returncode == 0, run.stderr
    counts = fetched(http_server)
    assert set(counts) == set(site) | set(extra) and set(counts.values()) == {1}
    got = [orjson.loads(line) for line in items.read_bytes().splitlines()]
    assert sorted(i["url"] for i in got if i["via"] == "pushed") == sorted(http_server.url(p) for p in extra)


def test_push_refuses_what_it_cannot_queue_with_exit_2(tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    out = kubecrawl(
        "push", "--state-dir", state, "mailto:a@b.test", "javascript:alert(1)", "/relative", "http://ok.test/"
    )
    assert out.returncode == 2
    assert out.stdout.strip() == "pushed 1, duplicate 0, invalid 3"
    assert "argument 1: invalid: skipped_scheme" in out.stderr and "argument 3: invalid: bad_url" in out.stderr
    none = kubecrawl("push", "http://ok.test/")
    assert none.returncode == 2 and "push needs one target" in none.stderr
    no_crawl = kubecrawl("push", "--redis-url", "redis://127.0.0.1:1/0", "http://ok.test/")
    assert no_crawl.returncode == 2 and "--crawl" in no_crawl.stderr
    bad_cb = kubecrawl("push", "--state-dir", state, "--callback", "_private", "http://ok.test/")
    assert bad_cb.returncode == 2 and "public spider method" in bad_cb.stderr


def test_push_into_a_state_dir_in_use_says_so(tmp_path: Path) -> None:
    from kubecrawl.queue import RequestQueue

    state = tmp_path / "state"
    with RequestQueue.open("local", state_dir=state):
        out = kubecrawl("push", "--state-dir", str(state), "http://ok.test/")
    assert out.returncode == 1 and "is in use by pid" in out.stderr


# -- start URLs from a Redis list ----------------------------------------------------------------


def redis_cli() -> str:
    found = shutil.which("redis-cli")
    if found is None:
        pytest.fail("redis-cli is not installed (it comes with redis-server: apt-get install redis-tools)")
    return found


def lpush(server: RedisServer, key: str, *values: str) -> str:
    out = subprocess.run(
        [redis_cli(), "-h", "127.0.0.1", "-p", str(server.port), "lpush", key, *values],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return out.stdout.strip()


def test_redis_spider_is_fed_by_redis_cli_lpush_while_it_runs(
    http_server: TestHTTPServer, redis_server: RedisServer, tmp_path: Path, clusters: list[Cluster]
) -> None:
    spider = tmp_path / "fed_spider.py"
    spider.write_text(REDIS_SPIDER)
    batch1 = pages(http_server, "/fed1", 15)
    batch2 = pages(http_server, "/fed2", 15)
    orphan = pages(http_server, "/orphan", 1)
    # what a slave killed mid-batch leaves behind: taken from the list, never committed
    r = redis_server.client()
    r.rpush("{fed:start_urls}:processing:dead-slave", http_server.url(orphan[0]))
    cluster = Cluster(tmp_path, spider, redis_server.url, "fed", {"concurrency": 4})
    clusters.append(cluster)
    for i in range(2):
        cluster.start(f"slave-{i}", "slave", f"slave-{i}", exit_when_idle=True)  # not applicable: it waits
    wait_until(lambda: all("taking start URLs" in cluster.log_text(f"slave-{i}") for i in range(2)), 60,
               "both slaves to watch the list", cluster)  # fmt: skip

    assert lpush(redis_server, "fed:start_urls", *[http_server.url(p) for p in batch1]) == "15"
    wait_until(lambda: set(batch1) <= set(fetched(http_server)), 120, "the first batch fetched", cluster)
    cluster.wait_for(lambda st: st.queued == 0 and st.in_flight == 0, 60, "the first batch done")
    assert all(p.poll() is None for p in cluster.procs.values()), "an idle RedisSpider slave exited"

    entries = [orjson.dumps({"url": http_server.url(p), "meta": {"tag": p}}).decode() for p in batch2[:5]]
    entries += [http_server.url(p) for p in batch2[5:]]
    entries += [http_server.url(batch1[0]), "ftp://127.0.0.1/x", '{"url": "http://127.0.0.1/", "bogus": 1}']
    lpush(redis_server, "fed:start_urls", *entries)
    wait_until(lambda: set(batch2) <= set(fetched(http_server)), 120, "the second batch fetched", cluster)
    cluster.wait_for(lambda st: st.queued == 0 and st.in_flight == 0 and st.pushed_invalid == 2, 60, "all counted")
    codes = stop_slaves(cluster)
    assert codes == {"slave-0": 0, "slave-1": 0}, cluster.logs_tail()

    counts = fetched(http_server)
    assert set(counts) == set(batch1) | set(batch2) | set(orphan) and set(counts.values()) == {1}
    st = cluster.status()
    assert (st.pushed, st.pushed_duplicate, st.pushed_invalid) == (31, 1, 2)
    tags = {str(i["url"]): i["tag"] for i in cluster.items()}
    assert all(tags[http_server.url(p)] == p for p in batch2[:5])
    assert r.llen("fed:start_urls") == 0 and not list(r.scan_iter(match="{fed:start_urls}:processing:*"))
    assert "--exit-when-idle does not apply" in cluster.log_text("slave-0")


def test_redis_spider_slave_stops_after_max_idle_time(redis_server: RedisServer, tmp_path: Path) -> None:
    spider = tmp_path / "fed_spider.py"
    spider.write_text(REDIS_SPIDER)
    proc = subprocess.run(
        [KUBECRAWL, "crawl", str(spider), "--role", "slave", "--redis-url", redis_server.url,
         "-a", "max_idle_time=0.5", "-s", "progress=off"],
        capture_output=True, text=True, timeout=120, env=_env(), check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (
        "stopping after 0.5s idle" in proc.stderr and "with no start URLs in 'fed:start_urls': stopping" in proc.stderr
    )


def test_start_key_and_idle_limit_follow_scrapy_redis() -> None:
    from kubecrawl import RedisSpider, Spider
    from kubecrawl.errors import ConfigurationError

    class Plain(Spider):
        name = "plain"

    class Fed(RedisSpider):
        name = "fed"

    class Keyed(Spider):
        name = "keyed"
        redis_key = "%(name)s:urls"

    assert start_key(Plain()) is None
    assert start_key(Fed()) == "fed:start_urls"
    assert start_key(Keyed()) == "keyed:urls"
    assert idle_limit(Fed(max_idle_time="2.5")) == 2.5 and idle_limit(Fed()) == 0
    with pytest.raises(ConfigurationError):
        idle_limit(Fed(max_idle_time="soon"))
    req = Fed().make_request_from_data(b'{"url": "http://a.test/", "meta": {"k": 1}, "priority": 3}')
    assert (req.url, req.meta, req.priority) == ("http://a.test/", {"k": 1}, 3)
    for bad in (b"{not json", b'{"url": 1}', b'{"url": "http://a.test/", "priority": "high"}', b"   "):
        with pytest.raises(ValueError):
            Fed().make_request_from_data(bad)


WPT_URLS = Path(__file__).resolve().parents[1] / "data" / "wpt-url" / "urltestdata.json"


def test_push_verdicts_on_the_wpt_url_suite(tmp_path: Path) -> None:
    """Every absolute input of web-platform-tests' URL suite through push: what the standard rejects is
    invalid, other schemes are skipped_scheme, every http(s) URL is queued once, as the suite's href."""
    import io

    from kubecrawl.push import push
    from kubecrawl.queue import RequestQueue

    cases = [c for c in orjson.loads(WPT_URLS.read_bytes()) if isinstance(c, dict) and c.get("base") is None]
    err = io.StringIO()
    # no per-host limit: many inputs share a host, and this consumer holds every lease at once
    with RequestQueue.open("wpt", state_dir=tmp_path / "state", concurrency_per_host=10_000) as q:
        summary = push(q, ((f"case {i}", c["input"]) for i, c in enumerate(cases)), err=err, report=None)
        queued = [q.get_nowait() for _ in range(q.qsize())]
    reports = {int(line.split()[3].rstrip(":")): line for line in err.getvalue().splitlines() if " case " in line}
    failing = [i for i, c in enumerate(cases) if c.get("failure")]
    other = [i for i, c in enumerate(cases) if not c.get("failure") and not c["href"].startswith(("http:", "https:"))]
    web = [i for i, c in enumerate(cases) if not c.get("failure") and c["href"].startswith(("http:", "https:"))]
    assert len(failing) > 100 and len(other) > 100 and len(web) > 100  # the suite is there
    assert all(i in reports for i in failing), "an input the URL standard rejects was queued"
    assert all("skipped_scheme" in reports[i] for i in other)
    accepted = [i for i in web if i not in reports]
    assert accepted == web, [cases[i]["input"] for i in web if i in reports]
    assert summary.pushed + summary.duplicate == len(accepted)
    assert summary.invalid == len(cases) - len(accepted) == len(reports)
    # what comes back out of the queue is the suite's own expected serialisation (href) of an input
    hrefs = {cases[i]["href"] for i in accepted}
    assert {r.url for r in queued} <= hrefs
    assert len(queued) == len({r.url for r in queued}) == summary.pushed
    with RequestQueue.open("wpt", state_dir=tmp_path / "state") as q:
        assert all(h in q.fingerprints for h in hrefs)


def test_push_with_a_slave_pods_environment_needs_no_flags(redis_server: RedisServer) -> None:
    """`kubectl exec deploy/<crawl>-slave -- kubecrawl push URL`: the environment the operator gives a
    slave (its own builders make it here) is all push and status need, Bloom dedup included."""
    from kubecrawl.queue import FingerprintSet
    from kubecrawl_operator.builders import BuildContext, desired_children
    from kubecrawl_operator.models import parse_spec
    from kubecrawl_operator.naming import CrawlRef

    spec = parse_spec(
        {
            "spider": {"module": "books:Spider"},
            "redis": {"url": redis_server.url},
            "dedup": {"requests": "bloom"},
            "settings": {"bloom_capacity": "10000"},
        }
    )
    crawl = CrawlRef(name="podcrawl", namespace="crawls", uid="0b6c6a5e-2f0c-4a8c-9a43-3b3f0d2c9e11")
    deployment = desired_children(crawl, spec, BuildContext(default_image="w:1", auth_hash="x"), 2).mutable[-1]
    assert deployment["kind"] == "Deployment"
    pod_env = {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    env = {"PATH": os.environ["PATH"], **pod_env}
    args = ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b", "http://127.0.0.1:9/a"]
    out = subprocess.run([KUBECRAWL, "push", *args], capture_output=True, text=True, timeout=60, env=env, check=False)
    assert (out.returncode, out.stdout.strip()) == (0, "pushed 2, duplicate 1, invalid 0"), out.stderr
    status = subprocess.run([KUBECRAWL, "status"], capture_output=True, text=True, timeout=60, env=env, check=False)
    assert "pushed         2 from outside (1 duplicate, 0 invalid)" in status.stdout, status.stderr
    with FingerprintSet.open("podcrawl", redis_url=redis_server.url, dedup="bloom", bloom_capacity=10000) as fps:
        assert "http://127.0.0.1:9/b" in fps and "http://127.0.0.1:9/c" not in fps and len(fps) == 2
