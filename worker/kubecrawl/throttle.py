"""AutoThrottle as Scrapy documents it, per download slot, shared by the crawl through the store.

A slot starts at ``autothrottle_start_delay``. After each response its delay moves halfway to the
target ``latency / autothrottle_target_concurrency``, never below that target, never below
``download_delay``, never above ``autothrottle_max_delay``; a non-200 response whose latency would
lower the delay leaves it as it is (errors are often fast).

Each worker adapts the delay from the latencies it sees and sends it with every ack
(``Outcome.throttle_delay``); the store keeps it per slot as a floor under the slot's randomised delay
(with the robots.txt Crawl-delay: backends/frontier.py), so every worker of the crawl spaces that host
by it (measured from the answer, like ``download_delay``). The local wait (:meth:`AutoThrottle.wait`)
is kept only where the store cannot space requests: a slot this process has had no answer from yet,
whose delay the store does not know until a first ack carries it (with ``concurrency_per_host`` > 1 and
no ``download_delay``, the store would hand out several of its requests at once); there this process
spaces its own requests of the slot by the start delay. Once the slot has answered here, the store's
spacing is the only one.
"""

from __future__ import annotations

import asyncio
import time

from .settings import Settings


class AutoThrottle:
    def __init__(self, settings: Settings) -> None:
        self.start = settings.autothrottle_start_delay
        self.max = settings.autothrottle_max_delay
        self.min = settings.download_delay
        self.target = settings.autothrottle_target_concurrency
        self.delays: dict[str, float] = {}
        self._next: dict[str, float] = {}  # monotonic time the slot's next request may start (unanswered slots)

    def delay(self, key: str) -> float:
        return self.delays.get(key, max(self.min, self.start))

    async def wait(self, key: str) -> None:
        """Space this process's requests of a slot that has not answered here yet by the start delay
        (see module docstring); a slot that has is spaced by the store. ``key``: the request's download
        slot (``backends.frontier.request_slot``)."""
        if key in self.delays:
            self._next.pop(key, None)
            return
        now = time.monotonic()
        at = max(now, self._next.get(key, now))
        self._next[key] = at + max(self.min, self.start)
        if at > now:
            await asyncio.sleep(at - now)

    def observe(self, key: str, latency: float, status: int) -> None:
        old = self.delays.get(key, max(self.min, self.start))
        target = latency / self.target
        new = max(target, (old + target) / 2.0)
        new = min(max(self.min, new), self.max)
        if status != 200 and new <= old:
            if key not in self.delays:
                self.delays[key] = old  # answered: the store spaces it from now on
            return
        self.delays[key] = new
