"""Start URLs from a Redis list, as scrapy-redis's ``RedisSpider``: ``redis-cli lpush NAME:start_urls URL``.

A spider that opts in (:class:`RedisSpider`, or any spider with a ``redis_key``) makes every slave also
take entries from that list (plain URLs or JSON objects, see :func:`kubecrawl.queue.request_from_data`),
check them as start requests and commit them to the crawl's queue, counted ``pushed`` /
``pushed_duplicate`` / ``pushed_invalid`` in the crawl's counters (``kubecrawl status``).

No entry is lost between the list and the queue: a batch is moved (LMOVE, one atomic step per entry) to
this worker's own processing list ``{KEY}:processing:<worker id>`` and removed from there only after the
commit. A slave restarted with the same worker id (a pod) handles its leftovers first; leftovers of a
worker that is no longer alive are moved back to the list (by every slave, at start and each minute).
An entry handled twice is filtered by its fingerprint like any duplicate.

Such slaves do not exit when the round is complete: they wait for more, until SIGTERM/SIGINT, or until
the crawl has been idle (list empty, nothing queued or leased anywhere) for ``max_idle_time`` seconds
(spider attribute or ``-a max_idle_time=N``; 0, the default, waits for ever, as scrapy-redis's
``MAX_IDLE_TIME_BEFORE_CLOSE``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, ClassVar

from .request import Request
from .spider import Spider

if TYPE_CHECKING:
    from .backends.redis import RedisBackend
    from .core.engine import Engine

log = logging.getLogger(__name__)

#: entries taken from the list per round trip, unless the spider says (``redis_batch_size``)
DEFAULT_BATCH = 16
#: the longest pause between two looks at an empty list
MAX_POLL_S = 1.0
#: a worker whose heartbeat is older than this is dead: its processing list goes back (status.py's rule)
DEAD_WORKER_MS = 30_000
#: how often a running slave looks for dead workers' processing lists (also once at start)
RECLAIM_EVERY_S = 60.0


class RedisStartMixin:
    """What makes a spider read start URLs from Redis; mixed into :class:`RedisSpider` and
    ``kubecrawl.scrapy.spiders.RedisSpider``."""

    #: the Redis list of start URLs; ``None``: ``<name>:start_urls``
    redis_key: ClassVar[str | None] = None
    #: entries taken per round trip (scrapy-redis: ``REDIS_START_URLS_BATCH_SIZE``)
    redis_batch_size: ClassVar[int] = DEFAULT_BATCH
    #: seconds of a wholly idle crawl after which the slave stops (0: never; scrapy-redis's MAX_IDLE_TIME_BEFORE_CLOSE)
    max_idle_time: float = 0
    #: read by the runner: this spider's slaves take start URLs from Redis
    redis_start_urls: ClassVar[bool] = True

    def make_request_from_data(self, data: bytes) -> Request:
        """The request for one list entry (a URL, or JSON with ``url``, ``meta``, ``priority``,
        ``callback``, ``dont_filter``); raise ``ValueError`` to refuse it (counted ``pushed_invalid``)."""
        from .queue import request_from_data

        return request_from_data(data)


class RedisSpider(RedisStartMixin, Spider):
    """A :class:`~kubecrawl.Spider` whose slaves also take start URLs from ``redis_key`` (module docstring)."""


def start_key(spider: Any) -> str | None:
    """The Redis list ``spider`` takes start URLs from, or None if it does not."""
    if not getattr(spider, "redis_start_urls", False) and not getattr(spider, "redis_key", None):
        return None
    key = getattr(spider, "redis_key", None) or f"{spider.name}:start_urls"
    return str(key).replace("%(name)s", spider.name)  # scrapy-redis's REDIS_START_URLS_KEY template


def idle_limit(spider: Any) -> float:
    raw = getattr(spider, "max_idle_time", 0) or 0
    try:
        value = float(raw)  # ``-a max_idle_time=30`` arrives as a string
    except (TypeError, ValueError):
        from .errors import ConfigurationError

        raise ConfigurationError(f"max_idle_time must be a number of seconds, got {raw!r}") from None
    return max(0.0, value)


class StartURLFeeder:
    """A slave's task: list entries → checked start requests → the crawl's queue (module docstring)."""

    def __init__(self, engine: Engine, backend: RedisBackend, key: str, batch: int, max_idle: float) -> None:
        self.engine = engine
        self.b = backend
        self.key = key
        # the hash tag {key} puts the processing list in the list's Redis Cluster slot (LMOVE needs it)
        self.processing_prefix = f"{{{key}}}:processing:"
        self.processing = self.processing_prefix + backend.worker_id
        self.batch = max(1, int(batch))
        self.max_idle = max_idle
        self.taken = 0

    @classmethod
    def for_engine(cls, engine: Engine) -> StartURLFeeder | None:
        from .backends.redis import RedisBackend

        key = start_key(engine.spider)
        if key is None or not isinstance(engine.backend, RedisBackend):
            return None
        batch = int(getattr(engine.spider, "redis_batch_size", DEFAULT_BATCH) or DEFAULT_BATCH)
        return cls(engine, engine.backend, key, batch, idle_limit(engine.spider))

    async def run(self) -> None:
        sch = self.engine.scheduler
        log.info(
            "taking start URLs from redis list %r (%s)",
            self.key,
            f"stopping after {self.max_idle:g}s idle" if self.max_idle else "waiting for more until stopped",
        )
        await self._reclaim_dead()
        leftovers: list[bytes] = await self.b._call(
            "lrange",
            lambda: self.b.r.lrange(self.processing, 0, -1),  # type: ignore[arg-type,return-value]
        )
        if leftovers:
            log.info("%d start URL(s) taken before a restart of %s: queued now", len(leftovers), self.b.worker_id)
            await self._handle(leftovers)
        delay = 0.05
        idle_since: float | None = None
        reclaimed_at = time.monotonic()
        while not sch.done.is_set():
            if time.monotonic() - reclaimed_at > RECLAIM_EVERY_S:
                reclaimed_at = time.monotonic()
                await self._reclaim_dead()
            entries = await self._take()
            if entries:
                await self._handle(entries)
                delay, idle_since = 0.05, None
                continue
            if self.max_idle and await self._crawl_idle():
                now = time.monotonic()
                idle_since = idle_since or now
                if now - idle_since >= self.max_idle:
                    log.info("idle for %.0fs with no start URLs in %r: stopping", now - idle_since, self.key)
                    self.engine.request_stop("idle")
                    return
            else:
                idle_since = None
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_POLL_S)

    async def _take(self) -> list[bytes]:
        """Up to ``batch`` entries, moved from the list's head (LPOP order, as scrapy-redis) to ours."""
        r, src, dst = self.b.r, self.key, self.processing

        async def run() -> list[Any]:
            async with r.pipeline(transaction=True) as p:
                for _ in range(self.batch):
                    p.lmove(src, dst, "LEFT", "RIGHT")
                return list(await p.execute())

        return [e for e in await self.b._call("take start urls", run) if e is not None]

    async def _handle(self, entries: list[bytes]) -> None:
        eng = self.engine
        reqs: list[Request] = []
        invalid = 0
        for raw in entries:
            try:
                req = eng.spider.make_request_from_data(raw)  # type: ignore[attr-defined]
                if not isinstance(req, Request):
                    raise ValueError(f"make_request_from_data returned {type(req).__name__}, not a Request")
            except ValueError as exc:
                invalid += 1
                log.warning("start URL entry from %r refused: %s: %r", self.key, exc, bytes(raw)[:200])
                continue
            if eng.scraper.refused(req, f"redis list {self.key}"):
                invalid += 1
                continue
            reqs.append(req)
        res = await eng.scheduler.commit_seeds(reqs) if reqs else None
        stats = {
            "pushed": res.enqueued if res else 0,
            "pushed_duplicate": res.filtered if res else 0,
            "pushed_invalid": invalid,
        }
        stats = {k: v for k, v in stats.items() if v}
        if stats:
            from .backends.base import Outcome

            await self.b.commit([Outcome(None, stats=stats)])
        await self.b._call("done start urls", lambda: self.b.r.delete(self.processing))
        self.taken += len(entries)
        if res is not None and res.enqueued:
            sch = eng.scheduler
            sch._wake.set()  # new work: the feeder looks now instead of after its idle backoff

    async def _crawl_idle(self) -> bool:
        sch = self.engine.scheduler
        if not sch.is_idle():
            return False
        if await self.b.queued() or await self.b.in_flight():
            return False
        return int(await self.b._call("llen", lambda: self.b.r.llen(self.key))) == 0

    async def _reclaim_dead(self) -> None:
        """Processing lists of workers with no heartbeat for 30 s go back to the list's head."""
        r = self.b.r
        pattern = self.processing_prefix.replace("{", "\\{").replace("}", "\\}") + "*"
        found = [k async for k in r.scan_iter(match=pattern, count=200)]
        if not found:
            return
        now_t: Any = await r.time()
        beats: Any = await r.zrange(self.b.k.workers, 0, -1, withscores=True)
        sec, usec = now_t
        now_ms = int(sec) * 1000 + int(usec) // 1000
        live = {w.decode() if isinstance(w, bytes) else str(w) for w, s in beats if now_ms - s <= DEAD_WORKER_MS}
        for raw_key in found:
            key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
            owner = key[len(self.processing_prefix) :]
            if owner == self.b.worker_id or owner in live:
                continue
            moved = 0
            while await r.lmove(key, self.key, "RIGHT", "LEFT") is not None:
                moved += 1
            if moved:
                log.info("%d start URL(s) taken by %s (not alive) went back to %r", moved, owner, self.key)
