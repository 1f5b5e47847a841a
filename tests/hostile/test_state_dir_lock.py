"""Issue 20 item 7: two processes on one --state-dir are refused (the second would fetch and write twice)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.helpers.httpserver import Reply, RequestInfo, TestHTTPServer

SPIDER = """
from kubecrawl import Spider


class Slow(Spider):
    name = "slow"
    start_urls = [{url!r}]

    async def parse(self, response):
        yield {{"url": response.url}}
"""


def test_a_second_process_on_the_same_state_dir_is_refused(http_server: TestHTTPServer, tmp_path: Path) -> None:
    # The page is answered only once the second process has been refused: however slowly processes
    # start on a loaded machine, the first one still holds the state dir when the second one comes.
    release = threading.Event()

    def held(_req: RequestInfo) -> Reply:
        release.wait(120)
        return 200, {"Content-Type": "text/html"}, b"<title>slow</title>"

    http_server.route("/", held)
    spider = tmp_path / "s.py"
    spider.write_text(SPIDER.format(url=http_server.url("/")), encoding="utf-8")
    kc = str(Path(sys.executable).parent / "kubecrawl")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBECRAWL_")}
    env["KUBECRAWL_PROGRESS"] = "off"
    state = tmp_path / "state"
    cmd = [
        kc,
        "crawl",
        str(spider),
        "--state-dir",
        str(state),
        "-o",
        str(tmp_path / "items.jsonl"),
        "-s",
        "obey_robots=false",
        "-s",
        "download_timeout=150",
    ]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while "/" not in http_server.paths():  # the first process holds the state dir and is fetching
            assert time.monotonic() < deadline and first.poll() is None, "the first crawl did not start"
            time.sleep(0.05)
        second = subprocess.run(cmd, env=env, capture_output=True, timeout=60)
        err = second.stderr.decode()
        assert second.returncode == 1, err[-2000:]
        assert "is in use by pid" in err and str(first.pid) in err, err[-2000:]
    finally:
        release.set()
        _out, err_first = first.communicate(timeout=60)
    assert first.returncode == 0, err_first.decode()[-2000:]
    assert (tmp_path / "items.jsonl").read_text().count("\n") == 1
    assert http_server.paths().count("/") == 1  # the second process fetched nothing
    # and once the first has finished, the state dir is free again
    again = subprocess.run(cmd, env=env, capture_output=True, timeout=60)
    assert again.returncode == 0, again.stderr.decode()[-2000:]
