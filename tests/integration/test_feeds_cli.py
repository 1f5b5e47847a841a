"""Feeds through the CLI, as processes: four formats and stdout at once, -O, templates, refusals, kill -9.

Every file is read back with the standard library's readers (json, csv, xml.etree).
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

from tests.helpers.httpserver import TestHTTPServer, generated_site

SPIDER = """
from kubecrawl import Spider

class Site(Spider):
    name = "site"
    start_urls = [{start!r}]

    async def parse(self, response):
        yield {{"url": response.url, "title": response.css("title::text").get(), "links": len(response.css("a"))}}
        for req in response.follow_all(css="a"):
            yield req
"""


def kubecrawl_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "kubecrawl.cli", *args]


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("KUBECRAWL_")}


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(kubecrawl_cmd(*args), capture_output=True, env=env(), timeout=180, cwd=cwd)


def urls(path: Path) -> list[str]:
    """The ``url`` of every item of a feed file, read by the standard library reader of its format."""
    fmt = path.suffix[1:]
    if fmt == "jsonl":
        return [json.loads(line)["url"] for line in path.read_text(encoding="utf-8").splitlines()]
    if fmt == "json":
        return [i["url"] for i in json.loads(path.read_text(encoding="utf-8"))]
    if fmt == "csv":
        with open(path, newline="", encoding="utf-8") as f:
            return [row["url"] for row in csv.DictReader(f)]
    return [item.findtext("url") or "" for item in ET.parse(path).getroot()]


@pytest.fixture
def spider(tmp_path: Path) -> Path:
    return tmp_path / "site_spider.py"


def site(server: TestHTTPServer, spider: Path, pages: int, delay: float = 0.0) -> set[str]:
    paths = generated_site(server, pages, links=6, delay=delay)
    spider.write_text(SPIDER.format(start=server.url("/gen/0.html")))
    return {server.url(p) for p in paths}


FORMATS = ("jsonl", "json", "csv", "xml")


def test_four_formats_and_stdout_from_one_run(http_server: TestHTTPServer, spider: Path, tmp_path: Path) -> None:
    want = site(http_server, spider, 40)
    outs = [tmp_path / f"items.{fmt}" for fmt in FORMATS]
    args = [a for out in outs for a in ("-o", str(out))]
    done = run("crawl", str(spider), *args, "--output=-:json", "-s", "progress=off", "-s", "log_format=json")
    assert done.returncode == 0, done.stderr[-2000:]
    for out in outs:
        got = Counter(urls(out))
        assert set(got) == want and set(got.values()) == {1}, out
    assert {i["url"] for i in json.loads(done.stdout)} == want  # stdout is the JSON array alone
    summary = [json.loads(x) for x in done.stderr.splitlines() if b'"crawl_finished"' in x]
    assert summary and "items.xml (xml)" in summary[0]["output"]


def test_o_appends_and_capital_o_overwrites(http_server: TestHTTPServer, spider: Path, tmp_path: Path) -> None:
    want = site(http_server, spider, 15)
    appended, overwritten = tmp_path / "a.json", tmp_path / "o.csv"
    for _ in range(2):
        done = run("crawl", str(spider), "-o", str(appended), "-O", str(overwritten), "-s", "progress=off")
        assert done.returncode == 0, done.stderr[-2000:]
    assert Counter(urls(appended)) == Counter({u: 2 for u in want})  # one valid array of both runs
    assert Counter(urls(overwritten)) == Counter({u: 1 for u in want})


@pytest.mark.parametrize("state", [False, True], ids=["memory", "state-dir"])
def test_templates_name_and_round(http_server: TestHTTPServer, spider: Path, tmp_path: Path, state: bool) -> None:
    want = site(http_server, spider, 10)
    template = str(tmp_path / "out" / "%(name)s-%(round)s.csv")
    store = ["--state-dir", str(tmp_path / "state")] if state else []
    done = run(
        "crawl", str(spider), "-o", template, "--every", "0.05", "--max-rounds", "2", "-s", "progress=off", *store
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["site-1.csv", "site-2.csv"]
    assert set(urls(tmp_path / "out" / "site-1.csv")) == want
    urls(tmp_path / "out" / "site-2.csv")  # a valid CSV too (what round 2 found new)


@pytest.mark.parametrize(
    ("feed", "message"),
    [
        ("gs://bucket/items.jsonl", b"unsupported scheme gs://"),
        ("s3://key:secret@bucket/items.jsonl", b"never the URI"),
        ("ftp://host/items.jsonl", b"unsupported scheme ftp://"),
        ("items.csv:parquet", b"unknown format 'parquet'"),
        ("items-%(nope)s.jsonl", b"unknown template"),
    ],
)
def test_unknown_scheme_or_format_is_a_configuration_error(
    spider: Path, tmp_path: Path, feed: str, message: bytes
) -> None:
    spider.write_text(SPIDER.format(start="http://127.0.0.1:9/"))
    work = tmp_path / "cwd"
    work.mkdir()
    done = run("crawl", str(spider), "-o", feed, "-s", "progress=off", cwd=work)
    assert done.returncode == 2, done.stderr[-2000:]
    assert b"configuration error" in done.stderr and message in done.stderr
    assert list(work.iterdir()) == []  # no s3: directory, no file with a strange name


def test_export_writes_any_format(http_server: TestHTTPServer, spider: Path, tmp_path: Path) -> None:
    want = site(http_server, spider, 12)
    state = tmp_path / "state"
    assert run("crawl", str(spider), "--state-dir", str(state), "-s", "progress=off").returncode == 0
    for fmt in FORMATS:
        out = tmp_path / f"export.{fmt}"
        done = run("export", "--state-dir", str(state), "-o", str(out))
        assert done.returncode == 0, done.stderr
        assert Counter(urls(out)) == Counter({u: 1 for u in want})
    assert run("export", "--state-dir", str(state), "-o", "s3://b/x.csv").returncode == 2


@pytest.mark.slow
def test_kill_9_resumes_every_format_exactly_once(http_server: TestHTTPServer, spider: Path, tmp_path: Path) -> None:
    want = site(http_server, spider, 300, delay=0.01)
    state = tmp_path / "state"
    outs = [tmp_path / f"items.{fmt}" for fmt in FORMATS]
    cmd = kubecrawl_cmd("crawl", str(spider), "--state-dir", str(state), "-s", "concurrency=4", "-s", "progress=off")
    cmd += [a for out in outs for a in ("-o", str(out))]
    kills = 0
    for target in (30, 100, 180):
        proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            if outs[0].exists() and outs[0].read_bytes().count(b"\n") >= target:
                break
            time.sleep(0.02)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=30)
    done = subprocess.run(cmd, env=env(), capture_output=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert kills >= 2
    for out in outs:
        got = Counter(urls(out))
        assert set(got) == want, out
        assert max(got.values()) == 1, (out, [u for u, n in got.items() if n > 1])
