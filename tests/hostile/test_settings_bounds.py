"""Issue 20 item 7: settings outside sane bounds are refused at start-up (exit 2 with the key), and
``max_pages`` stops at exactly that many pages instead of overshooting by the concurrency."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kubecrawl import Response, Spider
from kubecrawl.errors import ConfigurationError
from kubecrawl.settings import build_settings
from tests.helpers.crawl import crawl
from tests.helpers.httpserver import TestHTTPServer, generated_site

INSANE = [
    ("lease_seconds", "0.0001"),
    ("lease_seconds", "1e9"),
    ("download_delay", "1e9"),
    ("download_timeout", "1e9"),
    ("download_deadline", "0"),
    ("download_deadline", "1e9"),
    ("max_body_size", "1e13"),
    ("retry_backoff", "1e9"),
    ("retry_max_wait", "1e9"),
    ("max_requests_per_page", "0"),
    ("concurrency", "0"),
    ("pop_batch", "100000"),
]


@pytest.mark.parametrize(("key", "value"), INSANE)
def test_an_insane_setting_is_refused_with_its_name(key: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        build_settings(cli={key: value}, environ={})
    assert key in str(info.value)


def test_the_cli_exits_2_with_the_reason(tmp_path: Path) -> None:
    spider = tmp_path / "s.py"
    spider.write_text("from kubecrawl import Spider\n\nclass S(Spider):\n    name = 's'\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBECRAWL_")}
    kc = str(Path(sys.executable).parent / "kubecrawl")
    done = subprocess.run(
        [kc, "crawl", str(spider), "-s", "lease_seconds=0.0001", "-s", "download_delay=1e9"],
        env=env,
        capture_output=True,
        timeout=60,
    )
    err = done.stderr.decode()
    assert done.returncode == 2, err[-2000:]
    assert "lease_seconds" in err and "download_delay" in err and "Traceback" not in err


class Titles(Spider):
    name = "titles"

    async def parse(self, response: Response):
        yield {"url": response.url}
        for req in response.follow_all(css="a"):
            yield req


async def test_max_pages_stops_at_exactly_that_many_pages(http_server: TestHTTPServer) -> None:
    generated_site(http_server, pages=200, links=10)
    stats, _ = await asyncio.wait_for(
        crawl(
            Titles(start_urls=[http_server.url("/gen/0.html")]),
            obey_robots=False,
            concurrency=32,
            max_pages=20,
        ),
        120,
    )
    assert stats["pages"] == 20 and stats["items"] == 20
    assert len(http_server.paths()) == 20  # the issue saw 51 fetched for max_pages=20
