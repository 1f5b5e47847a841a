"""The one result format every contender writes: counts and its own crawl-phase CPU and wall time.

Stdlib only: it is imported by contenders running in the project venv and in the Scrapy venv.
"""

from __future__ import annotations

import json
import os
import resource
import time
from typing import Any


def cpu_seconds() -> float:
    """user + sys CPU seconds of this process so far."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class PhaseClock:
    """Marks the start and end of the crawl phase (after imports and set-up, before tear-down)."""

    def __init__(self) -> None:
        self.cpu0 = cpu_seconds()
        self.wall0 = time.perf_counter()

    def report(self, path: str | None, **counts: Any) -> dict[str, Any]:
        out = {
            "crawl_cpu_s": cpu_seconds() - self.cpu0,
            "crawl_wall_s": time.perf_counter() - self.wall0,
            **counts,
        }
        path = path or os.environ.get("KC_BENCH_RESULT")
        if path:
            with open(path, "w", encoding="utf-8") as fh:
                json.dump(out, fh)
        return out
