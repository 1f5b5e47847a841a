"""``kubecrawl demo``: serve a bundled example site on 127.0.0.1 and crawl it, no internet needed.

``--site books`` crawls a small bookshop with :class:`~kubecrawl.demo.books_spider.BooksSpider`
(examples/books.py). ``--site news`` crawls the Sina rolling-news emulator with examples/sina_roll.yaml
in two incremental rounds, publishing news in between, to show that the second round stores only
what is new.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..settings import Settings, build_settings
from ..spider import Spider

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
SINA_RULES = HERE / "sina_roll.yaml"


def _settings(spider: Spider, **cli: Any) -> Settings:
    # the bundled sites live on 127.0.0.1: keep the SSRF guard off even inside a cluster
    cli = {"ssrf_guard": "off", **cli}
    return build_settings(cli=cli, spider_settings=dict(type(spider).custom_settings), environ={})


async def _crawl(spider: Spider, settings: Settings) -> tuple[int, int]:
    """The exit code and the items this run stored (what reached ``-o``, in any feed format)."""
    from ..cli import _run
    from ..runner import CrawlProcess

    proc = CrawlProcess(spider, settings)
    code = await _run(proc, settings)
    return code, int(proc.stats.counts["items"])


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")


def demo_books(output: Path) -> int:
    from .books_site import BooksSite
    from .books_spider import BooksSpider

    with BooksSite() as site:
        _say(f"serving the demo bookshop on {site.url('/')}")
        spider = BooksSpider(start_urls=[site.url("/")])
        code, items = asyncio.run(_crawl(spider, _settings(spider, output=output)))
    _say(f"{items} book(s) written to {output}")
    return code


def demo_news(output: Path, rounds: int = 2) -> int:
    from ..declarative import load_declarative_spider
    from .sina import SinaRollSite

    spider_cls = load_declarative_spider(SINA_RULES)
    with SinaRollSite() as site, tempfile.TemporaryDirectory(prefix="kubecrawl-demo-") as state:
        _say(f"serving the rolling-news emulator on {site.base_url}")
        code = 0
        for rnd in range(1, rounds + 1):
            spider = spider_cls()
            settings = _settings(spider, output=output, state_dir=Path(state), base_url=site.base_url)
            code, items = asyncio.run(_crawl(spider, settings))
            _say(f"round {rnd}: {items} new article(s) written to {output}")
            if code != 0:
                break
            if rnd < rounds:
                new = site.advance(8)
                _say(f"the roll now has {len(new)} more article(s) on top, some re-published under new URLs")
    return code


def run_demo(output: Path, site: str = "books") -> int:
    """Serve the bundled ``site`` (books or news) on 127.0.0.1, crawl it, write items to ``output``."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(b"")  # a demo starts from an empty file
    if site == "books":
        return demo_books(output)
    if site == "news":
        return demo_news(output)
    raise ValueError(f"unknown demo site {site!r} (books or news)")
