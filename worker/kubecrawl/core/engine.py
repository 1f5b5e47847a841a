"""The engine: a short control loop over the scheduler (the store side) and the scraper (the page side).

``concurrency`` worker tasks take leases from the scheduler, turn each into an outcome with the scraper
and hand it back. The loop watches every task it started: a task that dies stops the crawl with a
logged reason and a non-zero exit (``fatal``), never a silent wait. ``snapshot()`` is what the health
server, the metrics and the progress display read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..backends.base import Backend, Outcome
from ..downloader import Downloader
from ..middleware import Hooks
from ..pipelines import PipelineChain
from ..request import Request
from ..settings import Settings
from ..spider import Spider
from ..stats import Stats
from .scheduler import Scheduler, Stalled, StoreFailed
from .scraper import Scraper, callback_output

log = logging.getLogger(__name__)

_SEED_BATCH = 500


@dataclass(frozen=True, slots=True)
class EngineSnapshot:
    """A consistent read of the engine's state for health, metrics and progress."""

    running: bool  # crawl() started and has not finished
    stopping: bool
    active: int  # leases being processed now
    held: int  # leased by this process and not yet committed
    buffered: int
    pending: int  # outcomes waiting for the next commit
    seconds_since_commit: float
    fatal: str | None  # why the crawl stopped with an error, if it did


def wants_wire(backend: Backend) -> bool:
    """Whether requests are serialised by this store (everything but the in-memory one)."""
    from ..backends.memory import MemoryBackend

    return not isinstance(backend, MemoryBackend)


class Engine:
    def __init__(
        self,
        spider: Spider,
        settings: Settings,
        backend: Backend,
        downloader: Downloader,
        pipelines: PipelineChain | None = None,
        stats: Stats | None = None,
        *,
        item_key: list[str] | None = None,
        fetch_observers: Iterable[Callable[[float], None]] = (),
        hooks: Hooks | None = None,
    ) -> None:
        self.spider = spider
        self.hooks = hooks or Hooks()
        self.s = settings
        self.backend = backend
        self.stats = stats or Stats()
        self.item_key = list(item_key if item_key is not None else (spider.item_key or settings.item_key))
        self.scheduler = Scheduler(backend, settings, self.stats, self.item_key)
        self.scraper = Scraper(
            spider,
            settings,
            downloader,
            pipelines or PipelineChain([]),
            self.stats,
            item_key=self.item_key,
            wire=wants_wire(backend),
            known_urls=self.scheduler.known_urls,
            fetch_observers=fetch_observers,
            hooks=self.hooks,
        )
        if downloader.on_backoff is None:
            downloader.on_backoff = backend.backoff  # a 429's wait holds the slot back for the whole crawl
        self.scraper.on_close_spider = self.request_stop  # a callback's CloseSpider: a graceful stop
        self.scraper.stream_requests = self.scheduler.commit_requests  # a callback's many requests, in batches
        self.worker_id = backend.worker_id
        self.fatal: str | None = None
        self._items_out = 0  # items out of the pipelines (max_items)
        self.on_progress: Callable[[Engine], None] | None = None
        self._running = False
        self._in_flight = 0  # workers waiting for or processing a lease
        self._slot_freed = asyncio.Event()  # a worker finished one (max_pages waits on it)

    @property
    def stop_reason(self) -> str:
        return "error" if self.fatal else self.scheduler.stop_reason

    # -- public ------------------------------------------------------------------------------
    def request_stop(self, reason: str = "shutdown") -> None:
        """Graceful stop: finish what is in flight, commit, hand back the rest."""
        if not self.scheduler.done.is_set():
            log.info("stopping (%s): finishing in-flight requests", reason)
        self.scheduler.stop(reason)
        self._slot_freed.set()  # workers waiting for the page budget see the stop

    def snapshot(self) -> EngineSnapshot:
        sch = self.scheduler
        return EngineSnapshot(
            running=self._running,
            stopping=sch.done.is_set(),
            active=sch.active,
            held=len(sch.held),
            buffered=len(sch.buffer),
            pending=len(sch.pending) + sch.committing,  # a commit stuck in the store still counts
            seconds_since_commit=time.monotonic() - sch.last_commit_at,
            fatal=self.fatal,
        )

    async def seed(self) -> int:
        """Run ``start_requests`` into the store as round N; returns the round number.

        A start request that cannot be scheduled is refused and counted like any yielded request; a
        ``start_requests`` that raises is logged and counted, and what it yielded before is kept."""
        round_no = await self.backend.begin_round()
        batch: list[Request] = []
        count = 0
        try:
            async for req in _start_requests(self.spider, self.hooks):
                if not isinstance(req, Request):
                    self.stats.error("bad_output")
                    log.error("start requests yielded %s, expected a Request: ignored", type(req).__name__)
                    continue
                if self.spider.incremental:
                    req.dont_filter = True
                req.meta.setdefault("round", round_no)
                if self.scraper.refused(req, "the start requests"):
                    continue
                batch.append(req)
                if len(batch) >= _SEED_BATCH:
                    count += await self._commit_seeds(batch)
                    batch = []
        except Exception as exc:
            self.stats.error(f"start_requests:{type(exc).__name__}")
            log.error("start requests failed after %d request(s): %r", count + len(batch), exc, exc_info=exc)
        count += await self._commit_seeds(batch)
        await self.backend.end_seeding(round_no)
        log.info("round %d seeded: %d start request(s) enqueued", round_no, count)
        return round_no

    async def _commit_seeds(self, batch: list[Request]) -> int:
        if not batch:
            return 0
        return (await self.scheduler.commit_seeds(batch)).enqueued

    async def crawl(self) -> Stats:
        """Process requests until the store has no more work for this process, a stop, or a failure."""
        sch = self.scheduler
        self._running = True
        workers = [asyncio.create_task(self._worker(), name=f"kc-worker-{i}") for i in range(self.s.concurrency)]
        feeder = asyncio.create_task(sch.feed(), name="kc-feeder")
        ticker = asyncio.create_task(sch.tick(self._beat), name="kc-ticker")
        done = asyncio.create_task(sch.done.wait(), name="kc-done")
        watched = {done, feeder, ticker, *workers}
        timer = None
        if self.s.max_seconds is not None:  # Scrapy's CLOSESPIDER_TIMEOUT
            timer = asyncio.get_running_loop().call_later(self.s.max_seconds, self.request_stop, "max_seconds")
        try:
            while True:
                finished, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
                if done in finished:
                    break
                for task in finished:
                    watched.discard(task)
                    if task is feeder and not task.cancelled() and task.exception() is None:
                        continue  # it ends normally right after setting done
                    self._fail(task)
                if self.fatal:
                    break
        finally:
            if timer is not None:
                timer.cancel()
            sch.stop(sch.stop_reason if not self.fatal else "error")
            done.cancel()
            await self._stop_workers(workers)
            # The feeder and the ticker end on the scheduler's closing flag, not only on cancellation:
            # a library that swallows a CancelledError (seen with Redis calls, and asyncio.wait_for's
            # race in 3.11) must not keep this process from handing its leases back.
            sch._closing = True
            sch._wake.set()
            feeder.cancel()
            ticker.cancel()
            _, stuck = await asyncio.wait({feeder, ticker}, timeout=10)
            for task in stuck:
                log.warning("task %s did not stop in time; continuing the shutdown without it", task.get_name())
            for task in (feeder, ticker):
                if task.done() and not task.cancelled() and task.exception() is not None and not self.fatal:
                    self._fail(task)
            await sch.close()
            self._running = False
            self.stats.finished = time.time()
            self.stats.finish_reason = self.stop_reason
        return self.stats

    def _fail(self, task: asyncio.Task[Any]) -> None:
        exc = None if task.cancelled() else task.exception()
        if isinstance(exc, StoreFailed | Stalled):
            reason = str(exc)
            log.error("crawl stopped: %s", reason)
        else:
            reason = f"task {task.get_name()} ended unexpectedly: {exc!r}"
            log.error("crawl stopped: %s", reason, exc_info=exc)
        if self.fatal is None:
            self.fatal = reason
            self.stats.error("fatal")

    async def _stop_workers(self, workers: list[asyncio.Task[None]]) -> None:
        grace = asyncio.gather(*workers, return_exceptions=True)
        try:
            await asyncio.wait_for(asyncio.shield(grace), timeout=max(5.0, self.s.download_timeout))
        except (TimeoutError, asyncio.CancelledError):
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    def _beat(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self)

    def _limits(self, oc: Outcome) -> None:
        """Scrapy's CLOSESPIDER_ITEMCOUNT / ERRORCOUNT: a graceful stop once reached (this process)."""
        s = self.s
        self._items_out += len(oc.items)
        if s.max_items is not None and self._items_out >= s.max_items:
            self.request_stop("max_items")
        elif s.max_errors is not None and self.stats["errors"] >= s.max_errors:
            self.request_stop("max_errors")

    async def _worker(self) -> None:
        sch = self.scheduler
        scraper = self.scraper
        max_pages = self.s.max_pages
        limits = self.s.max_items is not None or self.s.max_errors is not None
        while True:
            if max_pages is not None and not await self._page_budget(max_pages):
                return
            self._in_flight += 1  # counted while waiting for the lease: the budget is reserved
            try:
                lease = await sch.next_lease()
            except BaseException:
                self._in_flight -= 1
                raise
            if lease is None:
                self._in_flight -= 1
                self._slot_freed.set()
                return
            try:
                oc = await scraper.process(lease)
            except asyncio.CancelledError:
                sch.abandon()
                raise
            except Exception:
                log.exception("unexpected error processing %s", lease.request.url)
                self.stats.error("internal")
                oc = Outcome(lease.id)
            finally:
                self._in_flight -= 1
                self._slot_freed.set()
            sch.complete(oc)
            if max_pages is not None and self.stats["pages"] >= max_pages:
                self.request_stop("max_pages")
            if limits:
                self._limits(oc)

    async def _page_budget(self, max_pages: int) -> bool:
        """With ``max_pages``: wait until pages fetched plus requests in flight are below it, so the
        crawl stops at exactly ``max_pages`` pages instead of overshooting by up to ``concurrency``
        (a request in flight may end as an error or a redirect, which is no page: then another
        starts). False once the budget is spent or the crawl is stopping."""
        while self.stats["pages"] + self._in_flight >= max_pages:
            if self.stats["pages"] >= max_pages or self.scheduler.done.is_set():
                return False
            self._slot_freed.clear()
            await self._slot_freed.wait()
        return True


async def _start_requests(spider: Spider, hooks: Hooks | None = None) -> Any:
    gen = spider.start_requests()
    output = callback_output(gen)
    if hooks is not None and hooks.spider is not None and hooks.spider.on_start:
        if not hasattr(output, "__aiter__"):
            output = _aiter(output)  # type: ignore[arg-type]
        output = hooks.spider.start(output, spider)  # type: ignore[arg-type]
    if hasattr(output, "__aiter__"):
        async for x in output:  # type: ignore[union-attr]
            yield x
    else:
        for x in output:  # type: ignore[union-attr]
            yield x


async def _aiter(it: Iterable[Any]) -> Any:
    for x in it:
        yield x
