"""Issue 20 items 1 and 6: bounded work per page. A callback's requests are capped
(``max_requests_per_page``, counted ``requests_capped``) and streamed to the store in batches while it
runs, so a callback yielding hundreds of thousands of requests keeps a bounded peak RSS, with SQLite
(``--state-dir``) and in a slave (Redis). Peak RSS is the child process's own ``ru_maxrss``."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from kubecrawl import Request, Response, Spider
from kubecrawl.backends.redis import Keys
from tests.helpers.crawl import crawl
from tests.helpers.httpserver import TestHTTPServer
from tests.helpers.redis_server import RedisServer, redis_server

__all__ = ["redis_server"]  # the fixture

MANY = """
import os
import sqlite3
from kubecrawl import Request, Spider


class Many(Spider):
    name = "many"
    start_urls = [os.environ["MANY_URL"]]

    def parse(self, response):
        base = response.url.rstrip("/")
        for i in range(int(os.environ["MANY_N"])):
            yield Request(f"{base}/p/{i}", callback="leaf")
        yield {"url": response.url}

    def leaf(self, response):
        yield {"url": response.url}
"""


class Fanout(Spider):
    name = "fanout"

    def parse(self, response: Response):
        for i in range(5_000):
            yield Request(response.urljoin(f"/p/{i}"), callback="leaf")
        yield {"url": response.url}  # what a callback yields after its cap is still kept

    def leaf(self, response: Response):
        yield {"url": response.url}


async def test_requests_past_the_cap_are_counted_not_silently_lost(http_server: TestHTTPServer) -> None:
    http_server.html("/", "<title>hub</title>")
    stats, _ = await asyncio.wait_for(
        crawl(Fanout(start_urls=[http_server.url("/")]), obey_robots=False, max_requests_per_page=1_000, max_pages=1),
        120,
    )
    assert stats["requests_capped"] == 4_000
    assert stats.summary()["requests_capped"] == 4_000
    assert stats["enqueued"] == 1 + 1_000 and stats["items"] == 1


def _run_many(args: list[str], url: str, n: int, tmp: Path) -> tuple[int, int, str]:
    """``kubecrawl crawl`` of MANY in a child process: (exit code, its peak RSS in MiB, stderr)."""
    kc = str(Path(sys.executable).parent / "kubecrawl")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBECRAWL_")}
    env.update(MANY_URL=url, MANY_N=str(n), KUBECRAWL_PROGRESS="off")
    err_path = tmp / f"stderr-{time.monotonic_ns()}"
    with err_path.open("wb") as err:
        proc = subprocess.Popen([kc, "crawl", *args], env=env, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 600
    while True:  # wait4: the rusage of exactly this child
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"kubecrawl {' '.join(args)} did not finish within 600 s")
        time.sleep(0.1)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss // 1024, err_path.read_text(errors="replace")


N = 200_000
# a worker at rest is about 100 MiB; holding 200,000 requests at once was about 1 GB (and 4.7 GB
# with SQLite, 5.6 GB in a slave, for a million)
RSS_BOUND_MIB = 400


def test_a_callback_yielding_many_requests_stays_bounded_with_sqlite(
    http_server: TestHTTPServer, tmp_path: Path
) -> None:
    http_server.html("/", "<title>hub</title>")
    spider = tmp_path / "many.py"
    spider.write_text(MANY, encoding="utf-8")
    args = [str(spider), "--state-dir", str(tmp_path / "state"), "-s", "obey_robots=false", "-s", "max_pages=1"]
    code, peak, err = _run_many([*args, "-s", f"max_requests_per_page={N}"], http_server.url("/"), N, tmp_path)
    assert code == 0, err[-2000:]
    assert peak < RSS_BOUND_MIB, f"peak RSS {peak} MiB"
    dbs = list((tmp_path / "state").glob("*.db")) + list((tmp_path / "state").glob("*.sqlite*"))
    with sqlite3.connect(dbs[0]) as db:
        queued = db.execute("select count(*) from queue").fetchone()[0]
    assert queued == N  # every one of them reached the store


def test_a_callback_yielding_many_requests_stays_bounded_in_a_slave(
    http_server: TestHTTPServer, tmp_path: Path, redis_server: RedisServer
) -> None:
    http_server.html("/", "<title>hub</title>")
    spider = tmp_path / "many.py"
    spider.write_text(MANY, encoding="utf-8")
    common = [str(spider), "--redis-url", redis_server.url, "-s", "obey_robots=false", "-s", "crawl=many"]
    code, _peak, err = _run_many([*common, "--role", "master"], http_server.url("/"), N, tmp_path)
    assert code == 0, err[-2000:]
    extra = ["--role", "slave", "-s", "max_pages=1", "-s", f"max_requests_per_page={N}"]
    code, peak, err = _run_many([*common, *extra], http_server.url("/"), N, tmp_path)
    assert code == 0, err[-2000:]
    assert peak < RSS_BOUND_MIB, f"peak RSS {peak} MiB"
    stats: dict[Any, Any] = redis_server.client().hgetall(Keys("many").stats)
    assert int(stats[b"enqueued"]) >= N
