"""XMLFeedSpider and CSVFeedSpider over real published feeds (``feeds/``, see its README), served on
127.0.0.1 as a web server serves them, under real Scrapy and under kubecrawl after the mechanical
import change: the items must be equal as multisets. The feeds are EUC-KR and EUC-JP (declared only in
the XML declaration), an RSS 1.0 feed in a default namespace, and a CSV file whose rows are ragged
(rows shorter than the header are skipped by both, and counted by kubecrawl)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.httpserver import TestHTTPServer

from .test_ported_spiders import SPIDERS, as_multiset, run_kubecrawl, run_scrapy

FEEDS = Path(__file__).resolve().parent / "feeds"


@pytest.fixture
def feed_site() -> Iterator[TestHTTPServer]:
    server = TestHTTPServer()
    server.html("/naver.xml", (FEEDS / "naver-blog-euc-kr.rss.xml").read_bytes(), content_type="application/rss+xml")
    server.html("/aivy.rdf", (FEEDS / "aivy-blog-euc-jp.rdf.xml").read_bytes(), content_type="application/rdf+xml")
    server.html("/debian.csv", (FEEDS / "debian-releases.csv").read_bytes(), content_type="text/csv")
    server.start()
    try:
        yield server
    finally:
        server.stop()


CASES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "rss-iternodes": ("rss_feed.py", "/naver.xml", {}),
    "rss-xml-iterator": ("rss_feed.py", "/naver.xml", {"iterator": "xml"}),
    "rss-html-iterator": ("rss_feed.py", "/naver.xml", {"iterator": "html"}),
    "rdf-namespaces": ("rdf_feed.py", "/aivy.rdf", {}),
    "csv-header-row": ("csv_feed.py", "/debian.csv", {}),
    "csv-given-headers": (
        "csv_feed.py",
        "/debian.csv",
        {"headers": ["version", "codename", "series", "created", "release", "eol"]},
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_feed_spider_gives_scrapys_items(
    case: str, feed_site: TestHTTPServer, scrapy_python: Path, tmp_path: Path
) -> None:
    spider_file, path, extra = CASES[case]
    args = {"start_urls": [feed_site.url(path)], **extra}
    spider = SPIDERS / spider_file
    expected = run_scrapy(scrapy_python, spider, tmp_path / "scrapy.jsonl", args)
    got, proc = run_kubecrawl(spider, tmp_path, args)
    assert expected, "Scrapy produced no items"
    assert as_multiset(got) == as_multiset(expected)
    key = "codename" if case.startswith("csv") else "title"
    assert all(item[key] for item in got), "a field the feed has came out empty"
    if case == "rdf-namespaces":
        assert all(item["feed"] and item["date"] and item["about"] for item in got)
    if case == "csv-header-row":  # 8 header columns; only rows with all 8 fields are items
        lines = (FEEDS / "debian-releases.csv").read_text(encoding="utf-8").splitlines()
        full = [ln for ln in lines[1:] if ln.count(",") == 7]
        assert len(got) == len(full)
        assert proc.stats["csv_rows_skipped"] == len(lines) - 1 - len(full) > 0
        assert proc.stats.summary()["csv_rows_skipped"] == proc.stats["csv_rows_skipped"]  # said at the end
