"""Run a distributed crawl as real processes: one ``kubecrawl crawl --role master`` and N ``--role slave``.

Used by tests/integration/test_distributed*.py. Every process logs to a file under the test's tmp dir;
``stop_all`` kills whatever is still running, so a failing test never leaves processes behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import redis

from kubecrawl.backends.redis import Keys
from kubecrawl.status import CrawlStatus, read_status

SPIDER = """
from kubecrawl import Response, Spider


class SiteSpider(Spider):
    name = "site"
    start_urls = [{start!r}]

    async def parse(self, response: Response):
        yield {{"url": response.url, "title": response.css("title::text").get()}}
        for req in response.follow_all(css="a"):
            yield req
"""

KUBECRAWL = str(Path(sys.executable).parent / "kubecrawl")


def write_spider(path: Path, start_url: str) -> Path:
    path.write_text(SPIDER.format(start=start_url), encoding="utf-8")
    return path


SEEDS_SPIDER = """
from kubecrawl import Response, Spider


class SiteSpider(Spider):
    name = "site"
    start_urls = {starts!r}

    async def parse(self, response: Response):
        yield {{"url": response.url}}
        for req in response.follow_all(css="a"):
            yield req
"""


def write_seeds_spider(path: Path, starts: list[str]) -> Path:
    """A spider that starts from every URL of ``starts`` (one per host) and follows every link."""
    path.write_text(SEEDS_SPIDER.format(starts=starts), encoding="utf-8")
    return path


class Cluster:
    """Processes of one crawl named ``crawl`` against ``redis_url``."""

    def __init__(self, workdir: Path, spider: Path, redis_url: str, crawl: str, settings: dict[str, object]) -> None:
        self.workdir = workdir
        self.spider = spider
        self.redis_url = redis_url
        self.crawl = crawl
        self.settings = {"progress": "off", "log_format": "text", "concurrency": 16, **settings}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.exits: dict[str, list[int]] = {}
        self._starts: dict[str, int] = {}

    def _env(self, worker_id: str | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBECRAWL_")}
        if worker_id:
            env["KUBECRAWL_WORKER_ID"] = worker_id
        return env

    def start(
        self, name: str, role: str, worker_id: str | None = None, health_port: int = 0, exit_when_idle: bool = True
    ) -> None:
        n = self._starts[name] = self._starts.get(name, 0) + 1
        log = open(self.workdir / f"{name}.{n}.log", "wb")  # noqa: SIM115 - owned by the child
        args = [
            KUBECRAWL,
            "crawl",
            str(self.spider),
            "--role",
            role,
            "--redis-url",
            self.redis_url,
            "--crawl",
            self.crawl,
        ]
        if role == "slave":
            args += ["--health-port", str(health_port)] + (["--exit-when-idle"] if exit_when_idle else [])
        for k, v in self.settings.items():
            args += ["-s", f"{k}={v}"]
        self.procs[name] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=self._env(worker_id))
        log.close()

    def start_slaves(self, count: int) -> None:
        for i in range(count):
            self.start(f"slave-{i}", "slave", f"slave-{i}")

    def kill(self, name: str) -> None:
        p = self.procs[name]
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
        self.exits.setdefault(name, []).append(p.returncode)

    def status(self) -> CrawlStatus:
        return read_status(redis.Redis.from_url(self.redis_url, socket_timeout=10), self.crawl)

    def wait_for(self, cond: Callable[[CrawlStatus], bool], deadline_s: float, what: str) -> CrawlStatus:
        """Poll the crawl's status until ``cond`` holds (a deadline, not a threshold on speed)."""
        end = time.monotonic() + deadline_s
        while True:
            try:
                st = self.status()
                if cond(st):
                    return st
            except redis.ConnectionError:
                pass
            self._check_alive()
            if time.monotonic() > end:
                raise AssertionError(f"timed out waiting for {what}\n{self.logs_tail()}")
            time.sleep(0.05)

    def _check_alive(self) -> None:
        for name, p in self.procs.items():
            rc = p.poll()
            if rc not in (None, 0):
                raise AssertionError(f"{name} exited with {rc}\n{self.logs_tail()}")

    def wait_all(self, deadline_s: float) -> dict[str, int]:
        end = time.monotonic() + deadline_s
        codes: dict[str, int] = {}
        for name, p in self.procs.items():
            try:
                codes[name] = p.wait(timeout=max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise AssertionError(f"{name} still running after {deadline_s}s\n{self.logs_tail()}") from None
        return codes

    def stop_all(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)

    def logs_tail(self, chars: int = 1500) -> str:
        out = []
        for f in sorted(self.workdir.glob("*.log")):
            out.append(f"--- {f.name}\n{f.read_text(errors='replace')[-chars:]}")
        return "\n".join(out)

    def owned(self, worker_id: str) -> int:
        """Leases currently held by ``worker_id``."""
        client = redis.Redis.from_url(self.redis_url, socket_timeout=10)
        return sum(1 for v in client.hvals(Keys(self.crawl).owners) if v == worker_id.encode())

    def server_ms(self) -> int:
        sec, usec = redis.Redis.from_url(self.redis_url, socket_timeout=10).time()
        return int(sec) * 1000 + int(usec) // 1000

    def working_since(self, worker_id: str, since_ms: int) -> bool:
        """``worker_id`` has heartbeat after ``since_ms`` (so it opened the store) and holds leases."""
        client = redis.Redis.from_url(self.redis_url, socket_timeout=10)
        beat = client.zscore(Keys(self.crawl).workers, worker_id)
        return beat is not None and beat > since_ms and self.owned(worker_id) > 0

    def log_text(self, name: str) -> str:
        return "".join(f.read_text(errors="replace") for f in sorted(self.workdir.glob(f"{name}.*.log")))

    def items(self) -> list[dict[str, object]]:
        client = redis.Redis.from_url(self.redis_url, socket_timeout=30)
        return [orjson.loads(f[b"j"]) for _id, f in client.xrange(Keys(self.crawl).items)]
