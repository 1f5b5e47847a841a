"""AutoThrottle as Scrapy documents it, per download slot of this process.

A slot starts at ``autothrottle_start_delay``. After each response its delay moves halfway to the
target ``latency / autothrottle_target_concurrency``, never below that target, never below
``download_delay``, never above ``autothrottle_max_delay``; a non-200 response whose latency would
lower the delay leaves it as it is (errors are often fast). A request waits until its slot's delay
has passed since the previous request of that slot started. This comes on top of the store's
politeness (``concurrency_per_host``, ``download_delay``, which hold for the whole crawl); the
adapted delay is kept per process.
"""

from __future__ import annotations

import asyncio
import time

from .backends.frontier import slot_key
from .settings import Settings


class AutoThrottle:
    def __init__(self, settings: Settings) -> None:
        self.start = settings.autothrottle_start_delay
        self.max = settings.autothrottle_max_delay
        self.min = settings.download_delay
        self.target = settings.autothrottle_target_concurrency
        self.mode = settings.slot_key
        self.delays: dict[str, float] = {}
        self._next: dict[str, float] = {}  # monotonic time the slot's next request may start

    def delay(self, url: str) -> float:
        return self.delays.get(slot_key(url, self.mode), max(self.min, self.start))

    async def wait(self, url: str) -> None:
        key = slot_key(url, self.mode)
        now = time.monotonic()
        at = max(now, self._next.get(key, now))
        self._next[key] = at + self.delays.get(key, max(self.min, self.start))
        if at > now:
            await asyncio.sleep(at - now)

    def observe(self, url: str, latency: float, status: int) -> None:
        key = slot_key(url, self.mode)
        old = self.delays.get(key, max(self.min, self.start))
        target = latency / self.target
        new = max(target, (old + target) / 2.0)
        new = min(max(self.min, new), self.max)
        if status != 200 and new <= old:
            return
        self.delays[key] = new
