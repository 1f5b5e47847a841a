"""Issue 20 item 7: a wrong Redis password is a clear error at once, not a 15-minute "outage" wait."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.redis_server import RedisServer

SPIDER = """
from kubecrawl import Spider


class S(Spider):
    name = "creds"
    start_urls = ["http://127.0.0.1:9/"]
"""


@pytest.fixture
def locked_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", password="right-password").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("password", ["wrong-password", None])
def test_bad_redis_credentials_exit_1_at_once_with_the_reason(
    locked_redis: RedisServer, tmp_path: Path, password: str | None
) -> None:
    spider = tmp_path / "s.py"
    spider.write_text(SPIDER, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBECRAWL_")}
    env["KUBECRAWL_PROGRESS"] = "off"
    if password:
        env["KUBECRAWL_REDIS_PASSWORD"] = password
    kc = str(Path(sys.executable).parent / "kubecrawl")
    # a 60 s bound on a call that used to wait out a 900 s "outage": any hang fails the test
    done = subprocess.run(
        [kc, "crawl", str(spider), "--role", "master", "--redis-url", locked_redis.url],
        env=env,
        capture_output=True,
        timeout=60,
    )
    err = done.stderr.decode()
    assert done.returncode == 1, err[-2000:]
    assert "redis refused the connection" in err and "redis_password" in err, err[-2000:]
    assert "Traceback" not in err
