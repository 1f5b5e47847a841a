"""Crawl counters: pages, items, errors by kind, retries, bytes, timing."""

from __future__ import annotations

import resource
import time
from collections import Counter
from typing import Any


class Stats:
    """Counters of one process. ``delta()`` hands the increments since the last call to the store."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._reported: Counter[str] = Counter()
        self.started = time.time()
        self._cpu0 = time.process_time()
        self.finished: float | None = None
        #: why the last crawl stopped (finished, max_pages, max_items, max_seconds, max_errors, a signal...)
        self.finish_reason: str | None = None

    def inc(self, key: str, n: int = 1) -> None:
        self.counts[key] += n

    def error(self, kind: str) -> None:
        self.counts["errors"] += 1
        self.counts[f"error:{kind}"] += 1

    def __getitem__(self, key: str) -> int:
        return self.counts[key]

    def delta(self) -> dict[str, int]:
        d = {k: v - self._reported[k] for k, v in self.counts.items() if v != self._reported[k]}
        self._reported = self.counts.copy()
        return d

    @property
    def elapsed(self) -> float:
        return (self.finished or time.time()) - self.started

    def summary(self) -> dict[str, Any]:
        elapsed = self.elapsed
        pages = self.counts["pages"]
        cpu = time.process_time() - self._cpu0
        out: dict[str, Any] = {
            "pages": pages,
            "items": self.counts["items"],
            "items_duplicate": self.counts["items_duplicate"],
            "items_dropped": self.counts["dropped"],
            "requests_filtered": self.counts["filtered"],
            "errors": self.counts["errors"],
            "retries": self.counts["retries"],
            "bytes": self.counts["bytes"],
            "robots_denied": self.counts["robots_denied"],
            "skipped_scheme": self.counts["skipped_scheme"],
            "ignored": self.counts["ignored"],
            "rejected": self.counts["rejected"],
            "elapsed_s": round(elapsed, 3),
            "pages_per_s": round(pages / elapsed, 1) if elapsed > 0 else 0.0,
            "cpu_ms_per_page": round(cpu * 1000 / pages, 3) if pages else None,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
        if self.finish_reason is not None:
            out["finish_reason"] = self.finish_reason
        for key in (
            "offsite",
            "depth_limited",
            "cookies_refused",
            "meta_refresh",
            "requests_capped",
        ):  # Scrapy-style filters, when a spider uses them
            if self.counts[key]:
                out[key] = self.counts[key]
        for key in ("csv_rows_skipped", "httpcache/hit", "httpcache/miss"):  # CSVFeedSpider, the HTTP cache
            if self.counts[key]:
                out[key] = self.counts[key]
        # robots.txt read by this process: fetched itself, or shared by the store; the store failing it
        for key in ("robots_fetched", "robots_shared", "robots_store_errors", "robots_store_invalid"):
            if self.counts[key]:
                out[key] = self.counts[key]
        out["errors_by_kind"] = {k[6:]: v for k, v in sorted(self.counts.items()) if k.startswith("error:")}
        return out
