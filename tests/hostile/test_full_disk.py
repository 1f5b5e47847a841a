"""Issue 20 item 1: a full disk under ``--state-dir`` and under a file feed. The crawl stops at once
with a clear message and exit 1 (it used to retry silently for minutes, or write duplicate and torn
lines), the feed ends at its last whole item, and a second run once there is space again loses nothing
and writes nothing twice.

The disk fills in two ways: a file-size limit (``RLIMIT_FSIZE``, set in the child before it starts;
SIGXFSZ ignored so a write fails with EFBIG as on a full disk), which the state store hits first, and
a 256 KiB tmpfs holding only the feed (needs permission to mount; the test says so if it has none).
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from tests.helpers.httpserver import TestHTTPServer, generated_site

PAGES = 300
SPIDER = """
from kubecrawl import Spider


class Pages(Spider):
    name = "pages"
    start_urls = [{url!r}]

    async def parse(self, response):
        yield {{"url": response.url, "title": response.css("title::text").get(), "pad": "x" * 1500}}
        for req in response.follow_all(css="a"):
            yield req
"""


def _crawl(
    tmp: Path, url: str, feed: Path, preexec: Callable[[], None] | None = None
) -> subprocess.CompletedProcess[str]:
    spider = tmp / "pages.py"
    spider.write_text(SPIDER.format(url=url), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBECRAWL_")}
    env["KUBECRAWL_PROGRESS"] = "off"
    kc = str(Path(sys.executable).parent / "kubecrawl")
    cmd = [kc, "crawl", str(spider), "--state-dir", str(tmp / "state"), "-o", str(feed), "-s", "obey_robots=false"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, preexec_fn=preexec)


def _lines(feed: Path) -> list[dict[str, object]]:
    data = feed.read_bytes()
    assert data == b"" or data.endswith(b"\n"), f"torn last line: {data[-80:]!r}"
    return [orjson.loads(line) for line in data.splitlines()]  # every line whole JSON


def _file_size_limit(nbytes: int) -> Callable[[], None]:
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))

    return preexec


def _check_resume(tmp: Path, url: str, feed: Path, server: TestHTTPServer, first: list[dict[str, object]]) -> None:
    again = _crawl(tmp, url, feed)
    assert again.returncode == 0, again.stderr[-3000:]
    items = _lines(feed)
    urls = [i["url"] for i in items]
    assert len(urls) == len(set(urls)) == PAGES  # every page once: nothing lost, nothing twice
    assert items[: len(first)] == first  # the first run's lines kept as they were


def test_state_dir_on_a_full_disk_stops_with_a_clear_error_and_resumes(
    http_server: TestHTTPServer, tmp_path: Path
) -> None:
    generated_site(http_server, pages=PAGES, links=5)
    url = http_server.url("/gen/0.html")
    feed = tmp_path / "items.jsonl"
    full = _crawl(tmp_path, url, feed, _file_size_limit(256 * 1024))
    assert full.returncode == 1, full.stderr[-3000:]
    assert "disk is full" in full.stderr and "Traceback" not in full.stderr, full.stderr[-3000:]
    first = _lines(feed)
    assert len(first) < PAGES  # the limit did stop it early
    _check_resume(tmp_path, url, feed, http_server, first)


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({done.stderr.decode().strip()}); the RLIMIT_FSIZE test covers the store"
        )
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_feed_on_a_full_disk_ends_at_a_whole_item_and_resumes(
    http_server: TestHTTPServer, tmp_path: Path, small_tmpfs: Path
) -> None:
    generated_site(http_server, pages=PAGES, links=5)
    url = http_server.url("/gen/0.html")
    feed = small_tmpfs / "items.jsonl"
    full = _crawl(tmp_path, url, feed)
    assert full.returncode == 1, full.stderr[-3000:]
    assert "disk is full" in full.stderr and "Traceback" not in full.stderr, full.stderr[-3000:]
    first = _lines(feed)
    assert 0 < len(first) < PAGES
    # space returns: the feed moves to a bigger disk (the tmpfs grows), the same command resumes
    subprocess.run(["mount", "-o", "remount,size=16m", str(small_tmpfs)], check=True)
    _check_resume(tmp_path, url, feed, http_server, first)
