"""The s3:// feed against a real S3-compatible server: SeaweedFS (tests/helpers/s3_server.py), no mocks.

Objects are read back with obstore and parsed with the standard library; every page of the site must
be in exactly one object, once: a local crawl, a master + 2 slaves with one slave SIGKILLed and
restarted, and a crawl during which the S3 server is stopped and started again.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubecrawl.backends.redis import Keys
from tests.helpers.httpserver import TestHTTPServer, generated_site
from tests.helpers.redis_server import RedisServer
from tests.helpers.s3_server import SeaweedS3, s3_server
from tests.integration.distributed_cluster import Cluster, write_spider

__all__ = ["s3_server"]


def parse(key: str, body: bytes) -> list[dict[str, str]]:
    """One object's items, read with the standard library's readers by its extension."""
    if key.endswith(".csv"):
        return list(csv.DictReader(io.StringIO(body.decode("utf-8"), newline="")))
    if key.endswith(".json"):
        return list(json.loads(body))
    return [json.loads(line) for line in body.decode("utf-8").splitlines()]


def urls_in(server: SeaweedS3, bucket: str, prefix: str) -> tuple[Counter[str], int]:
    """How many times each url is in the objects under prefix, and how many objects there are."""
    objects = server.objects(bucket, prefix)
    got: Counter[str] = Counter()
    for key, body in objects.items():
        got.update(it["url"] for it in parse(key, body))
    return got, len(objects)


@pytest.fixture
def s3_env(s3_server: SeaweedS3, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The server's credentials and endpoint in the standard AWS variables, as a pod would get them."""
    for k, v in s3_server.env.items():
        monkeypatch.setenv(k, v)
    return {k: v for k, v in os.environ.items() if not k.startswith("KUBECRAWL_")}


def crawl_cmd(spider: Path, state: Path, *feeds: str) -> list[str]:
    cmd = [sys.executable, "-m", "kubecrawl.cli", "crawl", str(spider), "--state-dir", str(state)]
    for f in feeds:
        cmd += ["-o", f]
    return [*cmd, "-s", "concurrency=4", "-s", "progress=off", "-s", "item_key=url"]


def test_a_local_crawl_delivers_every_item_exactly_once(
    http_server: TestHTTPServer, s3_server: SeaweedS3, s3_env: dict[str, str], tmp_path: Path
) -> None:
    pages = {http_server.url(p) for p in generated_site(http_server, 150, links=5)}
    spider = write_spider(tmp_path / "site_spider.py", http_server.url("/gen/0.html"))
    feeds = (
        "s3://local/jsonl/%(name)s/items.jsonl",
        "s3://local/csv/items.csv",
        "s3://local/json/items.json",
        "s3://local/plain/",  # a prefix: objects named <batch>.jsonl
    )
    proc = subprocess.run(crawl_cmd(spider, tmp_path / "state", *feeds), env=s3_env, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for prefix in ("jsonl/site/", "csv/", "json/", "plain/"):
        got, n_objects = urls_in(s3_server, "local", prefix)
        assert set(got) == pages, (prefix, len(pages - set(got)))
        assert max(got.values()) == 1, prefix
        assert n_objects >= 1
    keys = sorted(s3_server.objects("local", "jsonl/"))
    assert all(k.startswith("jsonl/site/items-") and k.endswith(".jsonl") for k in keys), keys


def test_an_s3_feed_without_the_extra_is_a_configuration_error(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['obstore'] = None\n"  # as if kubecrawl[s3] were not installed
        "from kubecrawl.cli import main\n"
        f"sys.exit(main(['crawl', {str(tmp_path / 'x.py')!r}, '-o', 's3://b/items.jsonl']))\n"
    )
    (tmp_path / "x.py").write_text(
        "from kubecrawl import Spider\nclass S(Spider):\n    name = 's'\n    start_urls = []\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert b"kubecrawl[s3]" in proc.stderr
    assert not (tmp_path / "s3:").exists()


@pytest.mark.slow
def test_the_s3_server_stopped_mid_crawl_delays_delivery_and_loses_nothing(
    http_server: TestHTTPServer, s3_server: SeaweedS3, s3_env: dict[str, str], tmp_path: Path
) -> None:
    pages = {http_server.url(p) for p in generated_site(http_server, 600, links=5, delay=0.2)}
    spider = write_spider(tmp_path / "site_spider.py", http_server.url("/gen/0.html"))
    cmd = crawl_cmd(spider, tmp_path / "state", "s3://outage/items.jsonl", str(tmp_path / "items.jsonl"))
    import obstore

    obstore.put(s3_server.store("outage"), "probe/x", b"x")  # the bucket and its volumes exist before the crawl
    proc = subprocess.Popen(cmd, env=s3_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    local = tmp_path / "items.jsonl"

    def stored() -> int:
        return local.read_bytes().count(b"\n") if local.exists() else 0

    deadline = time.monotonic() + 120
    while stored() < 40:  # mid-crawl (S3 may have an object or none yet: the outbox holds it 5 s)
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    at_stop = stored()
    s3_server.stop(kill=True)  # at once (a SIGTERM'd weed may take many seconds to go)
    while stored() < at_stop + 60 and proc.poll() is None:  # the crawl goes on while S3 is down
        assert time.monotonic() < deadline
        time.sleep(0.05)
    during = stored() - at_stop
    s3_server.start()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    if b"behind" in err:  # the crawl ended before S3 was back: the next run with the feed catches up
        again = subprocess.run(cmd, env=s3_env, capture_output=True, timeout=300)
        assert again.returncode == 0, again.stderr[-3000:]
    got, _ = urls_in(s3_server, "outage", "items")
    assert set(got) == pages, len(pages - set(got))
    assert max(got.values()) == 1
    assert during >= 60 and b"write failed" in err, err[-3000:]  # the outage was real, and said so
    print(f"\nS3 down while {during} items were stored; every item delivered once afterwards")


@pytest.fixture
def clusters() -> Iterator[list[Cluster]]:
    made: list[Cluster] = []
    yield made
    for c in made:
        c.stop_all()


@pytest.mark.slow
def test_master_and_two_slaves_one_killed_deliver_every_item_exactly_once(
    http_server: TestHTTPServer,
    redis_server: RedisServer,
    s3_server: SeaweedS3,
    s3_env: dict[str, str],
    tmp_path: Path,
    clusters: list[Cluster],
) -> None:
    paths = generated_site(http_server, 500, links=6, delay=0.005)
    spider = write_spider(tmp_path / "site_spider.py", http_server.url("/gen/0.html"))
    settings = {"output": "s3://dist/%(name)s/items.csv", "feed_claim_idle": 1, "concurrency": 8}
    cluster = Cluster(tmp_path, spider, redis_server.url, "s3feeds", settings)
    clusters.append(cluster)
    cluster.start("master", "master")
    cluster.start_slaves(2)
    deadline = time.monotonic() + 180
    while sum(urls_in(s3_server, "dist", "site/")[0].values()) < 120:
        assert time.monotonic() < deadline, cluster.logs_tail()
        time.sleep(0.1)
    cluster.kill("slave-0")  # mid-crawl, possibly mid-batch
    cluster.start("slave-0", "slave", "slave-0")
    codes = cluster.wait_all(300)
    assert set(codes.values()) == {0}, cluster.logs_tail()
    got, n_objects = urls_in(s3_server, "dist", "site/")
    assert set(got) == {http_server.url(p) for p in paths}, cluster.logs_tail()
    assert max(got.values()) == 1, [u for u, n in got.items() if n > 1]
    import redis

    assert redis.Redis.from_url(redis_server.url).xlen(Keys("s3feeds").items) == 0  # all delivered and trimmed
    print(f"\n{len(got)} items in {n_objects} objects, each once")
