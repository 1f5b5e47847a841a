"""A real ``redis-server`` on a free port (optionally with AOF, restartable), and its pytest fixtures.

Shared by every test layer that needs Redis: conftests import the fixtures from here.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_server_binary() -> str:
    """``redis-server`` from PATH, installed with apt-get when missing (CI starts from a bare machine)."""
    found = shutil.which("redis-server")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "redis-server"], check=False, capture_output=True)
        found = shutil.which("redis-server")
        if found:
            return found
    pytest.fail("redis-server is not installed and could not be installed (apt-get install redis-server)")


class RedisServer:
    """One ``redis-server`` process. ``url``; ``client()``; ``restart()`` keeps the port and the data dir."""

    __test__ = False

    def __init__(self, workdir: Path, aof: bool = False, port: int | None = None, password: str | None = None) -> None:
        self.workdir = workdir
        self.aof = aof
        self.password = password  # requirepass: clients must authenticate
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "redis.log"
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=10, password=self.password)

    def start(self, deadline_s: float = 20.0) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [
            redis_server_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.workdir),
            "--save", "",
            "--logfile", str(self.log_path),
            "--daemonize", "no",
        ]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        if self.aof:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_ready(deadline_s)
        return self

    def _wait_ready(self, deadline_s: float) -> None:
        deadline = time.monotonic() + deadline_s
        client = self.client()
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {err} {self._log_tail()}")
            try:
                if client.ping():
                    client.close()
                    return
            except (redis.ConnectionError, redis.exceptions.BusyLoadingError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} not ready in {deadline_s}s: {self._log_tail()}")
            time.sleep(0.02)

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text()[-2000:]
        except OSError:
            return ""

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def restart(self, kill: bool = True, down_s: float = 0.0) -> None:
        """Stop (SIGKILL by default: the AOF must carry the crawl) and start again on the same port."""
        self.stop(kill=kill)
        if down_s:
            time.sleep(down_s)  # an outage of a given length, not a readiness wait
        self.start()
        self.restarts += 1


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A fresh redis-server without persistence on a free port."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def make_redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., RedisServer]]:
    """Factory: ``make_redis_server(aof=True)``; every server started is stopped at the end."""
    servers: list[RedisServer] = []

    def make(aof: bool = False) -> RedisServer:
        s = RedisServer(tmp_path_factory.mktemp("redis"), aof=aof).start()
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


def enqueue_raw(client: redis.Redis, crawl: str, rid: str, payload: bytes, priority: int = 100, slot: str = "") -> None:
    """Put a raw queue entry behind the store's back (a hostile writer), in download slot ``slot``.

    As commit.lua enqueues: payload, the slot's queue, the queued count, the slot's count in ``hosts``
    and the slot ready now.
    """
    from kubecrawl.backends.redis import Keys

    k = Keys(crawl)
    client.hset(k.requests, rid, payload)
    client.zadd(k.host_queue(slot), {rid: -priority})
    client.hincrby(k.frontier, "queued", 1)
    client.zadd(k.ready, {slot: 0}, nx=True)
    client.zincrby(k.hosts, 1, slot)
