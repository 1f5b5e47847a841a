"""Run a spider in-process, as ``kubecrawl crawl`` would, with settings given as keyword arguments."""

from __future__ import annotations

from typing import Any

from kubecrawl.runner import CrawlProcess
from kubecrawl.settings import build_settings
from kubecrawl.spider import Spider
from kubecrawl.stats import Stats


async def crawl(spider: Spider, **settings: Any) -> tuple[Stats, CrawlProcess]:
    base: dict[str, Any] = {"progress": "off", "retry_backoff": 0.01}
    base.update(settings)
    s = build_settings(cli=base, spider_settings=dict(type(spider).custom_settings), environ={})
    proc = CrawlProcess(spider, s)
    code = await proc.run()
    assert code == 0
    return proc.stats, proc
