"""Scrapy spiders, run unchanged under real Scrapy and, with only the mechanical import change, under
kubecrawl, against a local copy of the site they target: the items must be equal as multisets.

The spiders in ``spiders/`` are written for these tests in the shapes real Scrapy projects use (pager,
login form, CrawlSpider rules, ItemLoader, SitemapSpider); third-party spiders were run the same way
during development (docs/scrapy.md) but their code is not kept in this repository.

The mechanical change is made here, by :func:`mechanical_port` (``import scrapy`` becomes
``import kubecrawl.scrapy as scrapy``, ``from scrapy.X import Y`` becomes ``from kubecrawl.scrapy.X
import Y``), so the spider files in ``spiders/`` stay byte-for-byte what their authors wrote. The spiders'
start URLs point at quotes.toscrape.com; both runs get the local server's URLs as the spider argument
``start_urls`` (and ``allowed_domains`` where the spider has one), as ``scrapy crawl -a`` would pass them.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from kubecrawl.loader import load_spider_class
from kubecrawl.runner import CrawlProcess
from kubecrawl.settings import build_settings
from tests.helpers.httpserver import TestHTTPServer, forward_proxy
from tests.helpers.redis_server import free_port

from .quotes_site import all_quotes

HERE = Path(__file__).resolve().parent
SPIDERS = HERE / "spiders"


def mechanical_port(source: str) -> str:
    """The whole migration: Scrapy's import paths become kubecrawl.scrapy's; nothing else changes."""
    source = re.sub(r"(?m)^(\s*)import scrapy\s*$", r"\1import kubecrawl.scrapy as scrapy", source)
    return re.sub(r"(?m)^(\s*)from scrapy((?:\.\w+)*) import ", r"\1from kubecrawl.scrapy\2 import ", source)


def as_multiset(items: list[dict[str, Any]]) -> Counter[str]:
    return Counter(json.dumps(i, sort_keys=True, ensure_ascii=False) for i in items)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run_scrapy(py: Path, spider: Path, out: Path, args: dict[str, Any]) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [str(py), str(HERE / "run_scrapy.py"), str(spider), str(out), json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return read_jsonl(out)


def run_kubecrawl(
    spider: Path, tmp: Path, args: dict[str, Any], **settings: Any
) -> tuple[list[dict[str, Any]], CrawlProcess]:
    ported = tmp / f"ported_{spider.name}"
    ported.write_text(mechanical_port(spider.read_text(encoding="utf-8")), encoding="utf-8")
    cls = load_spider_class(str(ported))
    out = tmp / "kubecrawl.jsonl"
    settings = build_settings(
        cli={"output": out, "progress": "off", "log_level": "WARNING", "retry_backoff": 0.01, **settings},
        spider_settings=dict(cls.custom_settings or {}),
        environ={},
    )
    proc = CrawlProcess(cls, settings, spider_args=args)
    assert asyncio.run(proc.run()) == 0
    return read_jsonl(out), proc


CASES = {
    # pagination through li.next, CSS selectors, extract()/extract_first()
    "pager_css.py": ("/", {}),
    # the same with XPath and response.follow
    "pager_xpath.py": ("/", {}),
    # a CSRF login form filled by FormRequest.from_response
    "login_form.py": ("/login", {}),
    # CrawlSpider, a Rule with the default LinkExtractor, allowed_domains
    "crawl_rules.py": ("/", {"allowed_domains": ["127.0.0.1"]}),
    # ItemLoader with input/output processors on Item fields; the last page's callback raises (KeyError)
    "loader_items.py": ("/page/1/", {}),
    # SitemapSpider: robots.txt -> sitemap index -> a plain and a gzipped urlset (written for this test)
    "sitemap_quotes.py": ("/robots.txt", {}),
}


@pytest.mark.parametrize("spider_file", sorted(CASES))
def test_ported_spider_gives_scrapys_items(
    spider_file: str, quotes_site: TestHTTPServer, scrapy_python: Path, tmp_path: Path
) -> None:
    start, extra = CASES[spider_file]
    key = "sitemap_urls" if spider_file.startswith("sitemap") else "start_urls"
    args = {key: [quotes_site.url(start)], **extra}
    spider = SPIDERS / spider_file
    expected = run_scrapy(scrapy_python, spider, tmp_path / "scrapy.jsonl", args)
    got, proc = run_kubecrawl(spider, tmp_path, args)
    assert expected, "Scrapy produced no items: the local site does not serve what the spider expects"
    assert as_multiset(got) == as_multiset(expected)
    if spider_file.startswith("pager"):
        assert len(got) == len(all_quotes())  # every page of the pager was followed
    if spider_file.startswith("login"):
        assert all(i["authenticated"] for i in got)
    if spider_file.startswith("sitemap"):  # every author, every quote page; the 2009 entry filtered out
        assert {i["author"] for i in got if "author" in i} == {q["author"] for q in all_quotes()}
        assert len([i for i in got if "text" in i]) == len(all_quotes())
    if spider_file.startswith("crawl_rules"):
        assert proc.stats["offsite"] >= 1  # the footer's goodreads.com and zyte.com links


def test_mechanical_port_changes_only_imports() -> None:
    src = (SPIDERS / "crawl_rules.py").read_text(encoding="utf-8")
    ported = mechanical_port(src)
    changed = [(a, b) for a, b in zip(src.splitlines(), ported.splitlines(), strict=True) if a != b]
    assert [(a.split("  #")[0], b.split("  #")[0]) for a, b in changed] == [
        ("from scrapy import Request", "from kubecrawl.scrapy import Request"),
        (
            "from scrapy.linkextractors import LinkExtractor",
            "from kubecrawl.scrapy.linkextractors import LinkExtractor",
        ),
        ("from scrapy.selector import Selector", "from kubecrawl.scrapy.selector import Selector"),
        ("from scrapy.spiders import CrawlSpider, Rule", "from kubecrawl.scrapy.spiders import CrawlSpider, Rule"),
    ]


def test_crawlspider_through_a_serialising_store(quotes_site: TestHTTPServer, tmp_path: Path) -> None:
    """With --state-dir every request goes through SQLite as JSON: rule requests (callback by name,
    meta rule/link_text/depth) must come back and give what the in-memory run gives."""
    args = {"start_urls": [quotes_site.url("/")], "allowed_domains": ["127.0.0.1"]}
    spider = SPIDERS / "crawl_rules.py"
    (tmp_path / "mem").mkdir()
    (tmp_path / "sql").mkdir()
    in_memory, _ = run_kubecrawl(spider, tmp_path / "mem", args)
    stored, proc = run_kubecrawl(spider, tmp_path / "sql", args, state_dir=tmp_path / "sql" / "state")
    assert in_memory and as_multiset(stored) == as_multiset(in_memory)
    assert proc.stats["errors"] == 0


def test_proxy_rotation_middleware_gives_scrapys_items(
    quotes_site: TestHTTPServer, make_http_server: Any, scrapy_python: Path, tmp_path: Path
) -> None:
    """A project downloader middleware (proxy_middlewares.py, ported like the spider) picks a proxy per
    request through ``meta['proxy']``; one proxy of the pool is dead, and its requests are retried
    through the others by the middleware's ``process_exception``. Real forward proxies on 127.0.0.2/3."""
    import sys

    live = [forward_proxy(make_http_server(host)) for host in ("127.0.0.2", "127.0.0.3")]
    dead = f"http://127.0.0.4:{free_port()}"
    args = {"start_urls": [quotes_site.url("/")], "proxy_pool": ",".join([dead] + [p.url("") for p in live])}
    spider = SPIDERS / "proxy_rotation.py"
    expected = run_scrapy(scrapy_python, spider, tmp_path / "scrapy.jsonl", args)
    through_scrapy = sum(len(p.paths()) for p in live)
    port_dir = tmp_path / "project"
    port_dir.mkdir()
    mw_source = (SPIDERS / "proxy_middlewares.py").read_text(encoding="utf-8")
    (port_dir / "proxy_middlewares.py").write_text(mechanical_port(mw_source), encoding="utf-8")
    sys.path.insert(0, str(port_dir))
    try:
        got, proc = run_kubecrawl(spider, tmp_path, args)
    finally:
        sys.path.remove(str(port_dir))
        sys.modules.pop("proxy_middlewares", None)
    assert expected and len(expected) == len(all_quotes())
    assert as_multiset(got) == as_multiset(expected)
    assert all(i["via"] == "1.1 test-proxy" for i in got)  # every page came through a live proxy
    assert proc.hooks.downloader is not None
    assert proc.hooks.downloader.middlewares[0].failed == 1  # the dead proxy, tried first, was dropped
    assert sum(len(p.paths()) for p in live) - through_scrapy == proc.stats["pages"]
