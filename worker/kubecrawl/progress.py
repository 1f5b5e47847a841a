"""Live progress on a terminal (rich) and the end-of-crawl summary; structured log lines otherwise."""

from __future__ import annotations

import logging
import sys
from types import TracebackType
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from .core.engine import Engine
    from .settings import Settings
    from .stats import Stats

log = logging.getLogger("kubecrawl.progress")


class Progress:
    def __init__(self, live: bool) -> None:
        self.live = live
        self._live: Any = None

    @classmethod
    def for_settings(cls, settings: Settings) -> Progress:
        on = settings.progress == "on" or (settings.progress == "auto" and sys.stdout.isatty())
        return cls(on)

    def __enter__(self) -> Progress:
        if self.live:
            from rich.live import Live

            self._live = Live("starting…", refresh_per_second=4, transient=True)
            self._live.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.__exit__(exc_type, exc, tb)
            self._live = None

    def update(self, engine: Engine) -> None:
        s = engine.stats
        elapsed = max(s.elapsed, 1e-9)
        line = (
            f"pages {s['pages']}  items {s['items']}  errors {s['errors']}  "
            f"in flight {engine.snapshot().active}  {s['pages'] / elapsed:.1f} pages/s"
        )
        if self._live is not None:
            self._live.update(line)
        else:
            log.info(line)

    def summary(
        self,
        stats: Stats,
        settings: Settings,
        rounds: int,
        item_key: list[str] | None = None,
        fatal: str | None = None,
    ) -> None:
        data = stats.summary()
        data["rounds"] = rounds
        data["role"] = settings.role
        # what the content dedup used, next to items_duplicate: a reader sees why items were not stored
        data["item_key"] = ",".join(item_key) if item_key else "(none: content dedup off)"
        if fatal:
            data["failed"] = fatal
        feeds = settings.feed_specs()
        if feeds:
            from .feeds.spec import redact

            data["output"] = ", ".join(f"{redact(f.uri)} ({f.format})" for f in feeds)
        if self.live:
            from rich.console import Console
            from rich.table import Table

            table = Table(title="kubecrawl: crawl finished", show_header=False)
            for k, v in data.items():
                table.add_row(k, str(v))
            Console(stderr=True).print(table)
        else:
            sys.stderr.write(orjson.dumps({"event": "crawl_finished", **data}).decode() + "\n")
