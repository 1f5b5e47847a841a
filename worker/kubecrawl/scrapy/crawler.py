"""``spider.crawler``: the settings, the stats and ``engine.close_spider`` of one kubecrawl process."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..runner import CrawlProcess
    from ..settings import Settings
    from ..stats import Stats

log = logging.getLogger(__name__)

#: Scrapy's stat names for the counters kubecrawl keeps under its own names
STAT_ALIASES = {
    "item_scraped_count": "items",
    "item_dropped_count": "dropped",
    "response_received_count": "pages",
    "downloader/response_bytes": "bytes",
    "retry/count": "retries",
    "offsite/filtered": "offsite",
    "log_count/ERROR": "errors",
}


class StatsCollector:
    """Scrapy's stats API over :class:`kubecrawl.stats.Stats`. Integer values are kubecrawl counters
    (summed across the processes of a distributed crawl); other values stay in this process."""

    def __init__(self, stats: Stats) -> None:
        self._stats = stats
        self._other: dict[str, Any] = {}

    def _key(self, key: str) -> str:
        return STAT_ALIASES.get(key, key)

    def get_value(self, key: str, default: Any = None, spider: Any = None) -> Any:
        k = self._key(key)
        if k in self._other:
            return self._other[k]
        counts = self._stats.counts
        return counts.get(k, default)

    def set_value(self, key: str, value: Any, spider: Any = None) -> None:
        k = self._key(key)
        if isinstance(value, int) and not isinstance(value, bool):
            self._other.pop(k, None)
            self._stats.counts[k] = value
        else:
            self._other[k] = value

    def inc_value(self, key: str, count: int = 1, start: int = 0, spider: Any = None) -> None:
        k = self._key(key)
        if k not in self._stats.counts and start:
            self._stats.counts[k] = start
        self._stats.inc(k, count)

    def max_value(self, key: str, value: Any, spider: Any = None) -> None:
        current = self.get_value(key)
        self.set_value(key, value if current is None else max(current, value))

    def min_value(self, key: str, value: Any, spider: Any = None) -> None:
        current = self.get_value(key)
        self.set_value(key, value if current is None else min(current, value))

    def get_stats(self, spider: Any = None) -> dict[str, Any]:
        return {**dict(self._stats.counts), **self._other}

    def set_stats(self, stats: dict[str, Any], spider: Any = None) -> None:
        for k, v in stats.items():
            self.set_value(k, v)

    def clear_stats(self, spider: Any = None) -> None:
        self._other.clear()


class ExecutionEngine:
    """``crawler.engine.close_spider(spider, reason)``: a graceful stop, as on SIGTERM."""

    def __init__(self, crawler: Crawler) -> None:
        self._crawler = crawler

    def close_spider(self, spider: Any = None, reason: str = "cancelled") -> None:
        proc = self._crawler._process
        if proc is None:
            raise RuntimeError("the crawl is not running yet")
        proc.request_stop(reason)


class Crawler:
    """What ``from_crawler(crawler)`` receives: ``settings``, ``stats``, ``spider``, ``engine``."""

    def __init__(self, settings: Settings, stats: Stats, spidercls: type | None = None) -> None:
        self.settings = settings
        self.stats = StatsCollector(stats)
        self.spidercls = spidercls
        self.spider: Any = None
        self.engine = ExecutionEngine(self)
        from .signalmanager import SignalManager

        self.signals = SignalManager(self)
        self.signals.stats = stats
        self._process: CrawlProcess | None = None
