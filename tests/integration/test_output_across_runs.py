"""``-o`` across runs of one ``--state-dir``: each item reaches ``-o`` once, in the run that stored it.

The CLI runs as a process against a news list on 127.0.0.1 that grows on every visit; each run is one
incremental round. ``kubecrawl export --state-dir`` writes the whole store. The exactly-once resume of
the *same* file after ``kill -9`` is tests/integration/test_resume.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from kubecrawl.backends.base import ItemRecord, Outcome
from kubecrawl.backends.sqlite import SQLiteBackend
from tests.helpers.httpserver import RequestInfo, TestHTTPServer

SPIDER = """
from kubecrawl import Spider

class News(Spider):
    name = "news"
    incremental = True
    item_key = ["url"]
    start_urls = [{start!r}]

    async def parse(self, response):
        for req in response.follow_all(css="a", callback=self.parse_article):
            yield req

    async def parse_article(self, response):
        yield {{"url": response.url, "title": response.css("title::text").get()}}
"""


def news_site(server: TestHTTPServer) -> None:
    """``/list`` links ``2 + 2 * visits`` articles: each visit (one per run) publishes two more."""

    def listing(req: RequestInfo) -> tuple[int, dict[str, str], bytes]:
        links = "".join(f'<a href="/a/{n}">{n}</a>' for n in range(2 + 2 * req.hits, 0, -1))
        return 200, {"Content-Type": "text/html"}, f"<html><body>{links}</body></html>".encode()

    def article(req: RequestInfo) -> tuple[int, dict[str, str], bytes]:
        if not req.path.startswith("/a/"):
            return 404, {}, b""
        return 200, {"Content-Type": "text/html"}, f"<title>article {req.path[3:]}</title>".encode()

    server.route("/robots.txt", lambda _r: (200, {"Content-Type": "text/plain"}, b"User-agent: *\n"))
    server.route("/list", listing)
    server.fallback = article


def kubecrawl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KUBECRAWL_")}
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "kubecrawl.cli", *args], capture_output=True, text=True, env=clean, timeout=120
    )


def articles(path: Path) -> list[str]:
    """The article numbers in a JSON-lines file, in file order."""
    if not path.exists():
        return []
    return [orjson.loads(line)["url"].rsplit("/", 1)[1] for line in path.read_bytes().splitlines()]


@pytest.fixture
def spider(http_server: TestHTTPServer, tmp_path: Path) -> Path:
    news_site(http_server)
    path = tmp_path / "news_spider.py"
    path.write_text(SPIDER.format(start=http_server.url("/list")))
    return path


def test_each_run_writes_its_own_items_once_and_export_writes_them_all(spider: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"

    def run(*output: str) -> None:
        done = kubecrawl("crawl", str(spider), "--state-dir", str(state), *output, "-s", "progress=off")
        assert done.returncode == 0, done.stderr[-2000:]

    r1, r2, r3 = (tmp_path / f"round{i}.jsonl" for i in (1, 2, 3))
    run("-o", str(r1))  # the list shows articles 1-4
    assert sorted(articles(r1)) == ["1", "2", "3", "4"]
    run("-o", str(r2))  # 5 and 6 are new: round 2's file holds them only, not round 1's
    assert sorted(articles(r2)) == ["5", "6"]
    run("-o", str(r3))
    assert sorted(articles(r3)) == ["7", "8"]
    run()  # no -o: 9 and 10 are stored, written nowhere
    run("-o", str(r1))  # an earlier file again: it gets this run's items appended, nothing else
    assert sorted(articles(r1)) == ["1", "11", "12", "2", "3", "4"]
    assert sorted(articles(r2)) == ["5", "6"] and sorted(articles(r3)) == ["7", "8"]

    everything = tmp_path / "all.jsonl"
    exported = kubecrawl("export", "--state-dir", str(state), "-o", str(everything))
    assert exported.returncode == 0, exported.stderr
    assert "exported 12 item(s)" in exported.stderr
    got = Counter(articles(everything))
    assert set(got) == {str(n) for n in range(1, 13)} and set(got.values()) == {1}
    # the store's own record of what it wrote is untouched by export: a later run still starts clean
    again = kubecrawl("export", "--state-dir", str(state), "-o", str(everything))
    assert again.returncode == 0 and Counter(articles(everything)) == got  # rewritten, not appended


@pytest.mark.parametrize(
    ("args", "env", "code", "message"),
    [
        ([], {}, 2, "exactly one source"),
        (["--redis-url", "redis://127.0.0.1:1/0", "--state-dir", "S"], {}, 2, "exactly one source"),
        (["--state-dir", "S", "--since", "0-1"], {}, 2, "--since applies to a Redis crawl"),
        (["--redis-url", "redis://127.0.0.1:1/0"], {}, 2, "needs --crawl"),
        (["--state-dir", "NOPE"], {}, 1, "no crawl state in"),
        # a Redis URL in the environment is only a default: --state-dir alone is one source
        (["--state-dir", "NOPE"], {"KUBECRAWL_REDIS_URL": "redis://127.0.0.1:1/0"}, 1, "no crawl state in"),
    ],
    ids=["neither", "both", "since-with-state-dir", "redis-without-crawl", "missing-state-dir", "env-url-and-dir"],
)
def test_export_needs_exactly_one_source(
    tmp_path: Path, args: list[str], env: dict[str, str], code: int, message: str
) -> None:
    (tmp_path / "S").mkdir()  # "S" is a directory, "NOPE" is not there
    args = [str(tmp_path / a) if a in ("S", "NOPE") else a for a in args]
    done = kubecrawl("export", *args, "-o", str(tmp_path / "out.jsonl"), env=env)
    assert done.returncode == code, done.stderr
    assert message in done.stderr
    assert not (tmp_path / "out.jsonl").exists()


def _records(*urls: str) -> list[ItemRecord]:
    return [ItemRecord.build({"url": u}, ["url"]) for u in urls]


async def test_a_killed_runs_unwritten_items_go_to_its_own_file_not_the_next_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state, first, second = tmp_path / "state", tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    b: Any = SQLiteBackend(state, first)
    await b.open()
    await b.commit([Outcome(None, items=_records("u1", "u2"))])
    # killed after committing u3 and u4 but before writing them, mid-way through a torn line
    monkeypatch.setattr(b, "_export", lambda: None)
    await b.commit([Outcome(None, items=_records("u3", "u4"))])
    with open(first, "ab") as f:
        f.write(b'{"url": "u3"')
    b.db.close()  # no close(): the process is gone, and with it its state-dir lock
    b._lock.close()

    nxt = SQLiteBackend(state, second)
    await nxt.open()
    await nxt.commit([Outcome(None, items=_records("u5"))])
    await nxt.close()
    assert [orjson.loads(x)["url"] for x in first.read_bytes().splitlines()] == ["u1", "u2", "u3", "u4"]
    assert [orjson.loads(x)["url"] for x in second.read_bytes().splitlines()] == ["u5"]


async def test_a_killed_runs_file_that_is_gone_is_reported_and_its_items_stay_in_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    state, first = tmp_path / "state", tmp_path / "first.jsonl"
    b: Any = SQLiteBackend(state, first)
    await b.open()
    monkeypatch.setattr(b, "_export", lambda: None)
    await b.commit([Outcome(None, items=_records("u1", "u2"))])
    b.db.close()
    b._lock.close()  # the process is gone, and with it its state-dir lock
    first.unlink()
    with caplog.at_level("WARNING"):
        nxt = SQLiteBackend(state, None)
        await nxt.open()
        await nxt.close()
    assert "2 item(s) of an interrupted run never reached" in caplog.text
    assert not first.exists()  # not recreated behind the user's back
    from kubecrawl.backends.sqlite import export_state_items

    assert export_state_items(state, tmp_path / "all.jsonl") == 2
