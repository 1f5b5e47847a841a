"""The PostgreSQL feed against a real PostgreSQL (tests/helpers/postgres_server.py): upserts, kill -9, outages."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from kubecrawl.backends.base import ItemRecord, Outcome
from kubecrawl.backends.memory import MemoryBackend
from kubecrawl.backends.sqlite import SQLiteBackend
from kubecrawl.feeds.spec import make_spec
from tests.helpers.httpserver import TestHTTPServer, generated_site
from tests.helpers.postgres_server import PASSWORD, PostgresServer, postgres_server

__all__ = ["postgres_server"]

SPIDER = """
from kubecrawl import Spider

class Site(Spider):
    name = "site"
    start_urls = [{start!r}]

    async def parse(self, response):
        yield {{"url": response.url, "title": response.css("title::text").get()}}
        for req in response.follow_all(css="a"):
            yield req
"""


def rows(pg: PostgresServer, table: str = "site") -> list[tuple[str, dict]]:
    with pg.connect() as conn:
        return [(r[0], r[1]) for r in conn.execute(f'SELECT key, data FROM "{table}" ORDER BY stored_at, key')]


def item(d: dict, key: list[str]) -> ItemRecord:
    return ItemRecord.build(d, key)


async def test_upsert_on_the_content_key_and_update_mode(postgres_server: PostgresServer, tmp_path: Path) -> None:
    spec = make_spec(postgres_server.url, {"table": "news"})
    b = SQLiteBackend(tmp_path / "s", item_dedup="update", feeds=[spec], feed_name="spider")
    await b.open()
    await b.commit([Outcome(None, items=[item({"url": "a", "title": "v1"}, ["url"])])])
    await b.commit([Outcome(None, items=[item({"url": "b", "title": "x"}, ["url"])])])
    await b.commit([Outcome(None, items=[item({"url": "a", "title": "v2"}, ["url"])])])  # changed: an UPDATE
    await b.commit([Outcome(None, items=[item({"url": "a", "title": "v2"}, ["url"])])])  # unchanged: nothing
    await b.close()
    got = {d["url"]: d["title"] for _k, d in rows(postgres_server, "news")}
    assert got == {"a": "v2", "b": "x"}
    with postgres_server.connect() as conn:
        (changed,) = conn.execute("SELECT count(*) FROM news WHERE updated_at > stored_at").fetchone()
    assert changed == 1
    # the password never reaches the store's records
    state = (tmp_path / "s" / "state.sqlite3").read_bytes()
    assert PASSWORD.encode() not in state


async def test_a_batch_written_twice_writes_nothing_twice(postgres_server: PostgresServer) -> None:
    from kubecrawl.feeds.postgres import PostgresSink
    from kubecrawl.feeds.sink import FeedItem

    sink = PostgresSink(make_spec(postgres_server.url), postgres_server.url, table="t", item_dedup="off")
    batch = [FeedItem(i, b'{"n": %d, "s": "nul \\u0000 here"}' % i, b"store:%d" % i) for i in range(50)]
    sink.write(batch)
    sink.write(batch)  # re-delivered after a crash between writing and recording
    sink.close()
    got = rows(postgres_server, "t")
    assert len(got) == 50 and sorted(d["n"] for _k, d in got) == list(range(50))
    assert sink.inserted_or_updated == 50  # the second write changed no row
    assert got[0][1]["s"] == "nul \ufffd here" and sink.nul_replaced == 100  # jsonb cannot hold U+0000: counted


async def test_identical_items_without_a_key_are_all_kept(postgres_server: PostgresServer) -> None:
    b = MemoryBackend(item_dedup="off", feeds=[make_spec(postgres_server.url)], feed_name="site")
    await b.open()
    same = {"url": "a"}
    await b.commit([Outcome(None, items=[item(same, []), item(same, [])])])
    await b.close()
    assert len(rows(postgres_server)) == 2  # a default never drops items


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("KUBECRAWL_")}


def _wait_lines(path: Path, n: int, proc: subprocess.Popen[bytes], deadline_s: float = 90) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and proc.poll() is None:
        if path.exists() and path.read_bytes().count(b"\n") >= n:
            return
        time.sleep(0.02)


@pytest.mark.slow
def test_kill_9_and_an_outage_lose_nothing_and_write_nothing_twice(
    http_server: TestHTTPServer, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    pages = {http_server.url(p) for p in generated_site(http_server, 400, links=6, delay=0.03)}
    spider = tmp_path / "site_spider.py"
    spider.write_text(SPIDER.format(start=http_server.url("/gen/0.html")))
    jsonl = tmp_path / "items.jsonl"
    cmd = [
        sys.executable, "-m", "kubecrawl.cli", "crawl", str(spider), "--state-dir", str(tmp_path / "state"),
        "-o", postgres_server.url, "-o", str(jsonl), "-s", "concurrency=4", "-s", "progress=off", "-s", "item_key=url",
    ]  # fmt: skip
    kills = 0
    for target in (40, 110):
        proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_lines(jsonl, target, proc)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=30)
    # the database goes away while the crawl runs, and comes back before it ends
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_lines(jsonl, 130, proc)
    postgres_server.stop()
    _wait_lines(jsonl, 170, proc)
    stored_during_outage = jsonl.read_bytes().count(b"\n")
    postgres_server.start()
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-2000:]
    caught_up_in_run = b"behind" not in err
    print(f"\noutage: {stored_during_outage} items stored at restart; caught up in the same run: {caught_up_in_run}")
    if not caught_up_in_run:  # the crawl ended before the database was back: the next run catches up
        again = subprocess.run(cmd, env=_env(), capture_output=True, timeout=180)
        assert again.returncode == 0, again.stderr[-2000:]
    assert kills == 2
    got = Counter(d["url"] for _k, d in rows(postgres_server))
    assert set(got) == pages, len(pages - set(got))
    assert max(got.values()) == 1
    assert stored_during_outage > 130 and b"write failed" in err  # the outage was real, and said so
