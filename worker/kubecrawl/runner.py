"""Wiring one crawl process together for its role: store, downloader, engine, rounds, signals."""

from __future__ import annotations

import asyncio
import inspect
import logging
import signal
import time
from collections.abc import Callable
from typing import Any

from .backends.base import Backend
from .core.engine import Engine
from .downloader import Downloader
from .netguard import SSRFGuard, guard_enabled
from .pipelines import PipelineChain, load_pipeline
from .settings import Settings
from .spider import Spider
from .stats import Stats

log = logging.getLogger(__name__)


async def _maybe_await(value: Any) -> Any:
    """Spider hooks may be sync (Scrapy's ``closed(self, reason)``) or async."""
    return await value if inspect.isawaitable(value) else value


def crawl_name(settings: Settings, spider: Spider) -> str:
    return settings.crawl or spider.name


def item_key_of(settings: Settings, spider: Spider) -> list[str]:
    """The item content key: the spider's ``item_key``, else the setting; empty means no content dedup."""
    return list(spider.item_key or settings.item_key)


def item_dedup_of(settings: Settings, spider: Spider) -> str:
    """Content dedup is opt-in: ``off`` unless an item key is set (a default never drops items)."""
    return settings.item_dedup if item_key_of(settings, spider) else "off"


def make_backend(settings: Settings, spider: Spider) -> Backend:
    """The store for the role: memory or SQLite for ``none``, Redis for ``master``/``slave``."""
    dedup = item_dedup_of(settings, spider)
    if settings.role == "none":
        feeds = settings.feed_specs()
        from .backends.frontier import Politeness

        polite = Politeness(settings.concurrency_per_host, settings.download_delay, settings.slot_key)
        if settings.state_dir is not None:
            from .backends.sqlite import SQLiteBackend

            return SQLiteBackend(
                settings.state_dir,
                None,
                dedup,
                settings.fingerprint_ttl,
                feeds=feeds,
                feed_name=spider.name,
                politeness=polite,
            )
        from .backends.memory import MemoryBackend

        return MemoryBackend(
            None, dedup, settings.fingerprint_ttl, feeds=feeds, feed_name=spider.name, politeness=polite
        )
    from .backends.redis import RedisBackend

    backend = RedisBackend.from_settings(settings, crawl_name(settings, spider))
    backend.item_dedup = dedup
    return backend


def next_round_at(settings: Settings, last_start: float) -> float | None:
    """When the next incremental round is due (epoch seconds), or ``None`` for a one-shot crawl."""
    if settings.every is not None:
        return last_start + settings.every
    if settings.cron is not None:
        from croniter import croniter

        return float(croniter(settings.cron, time.time()).get_next(float))
    return None


def build_spider(cls: type[Spider], settings: Settings, stats: Stats, kwargs: dict[str, Any]) -> Spider:
    """The spider instance: through ``from_crawler(crawler, **kwargs)`` when the class has it (Scrapy's
    way: ``kubecrawl.scrapy`` spiders), else ``cls(**kwargs)``."""
    factory = getattr(cls, "from_crawler", None)
    if factory is None:
        return cls(**kwargs)
    from .scrapy.crawler import Crawler

    spider: Spider = factory(Crawler(settings, stats, cls), **kwargs)
    return spider


class CrawlProcess:
    """One process of a crawl, in any role. ``run()`` returns the exit code.

    ``spider`` is a spider object, or a spider class to build (with ``spider_args``) the way Scrapy does."""

    def __init__(
        self,
        spider: Spider | type[Spider],
        settings: Settings,
        backend: Backend | None = None,
        spider_args: dict[str, Any] | None = None,
    ) -> None:
        self.stats = Stats()
        if isinstance(spider, type):
            spider = build_spider(spider, settings, self.stats, spider_args or {})
        self.spider = spider
        spider.settings = settings  # as in Scrapy: spiders may read their settings
        crawler = getattr(spider, "crawler", None)
        if crawler is not None:
            crawler._process = self  # crawler.engine.close_spider stops this process
        self.s = settings
        self.backend = backend or make_backend(settings, spider)
        guard = SSRFGuard(settings.ssrf_allow) if guard_enabled(settings.ssrf_guard) else None
        self.downloader = Downloader(settings, guard, self.stats)
        self.downloader.robots_store = self.backend  # robots.txt shared by the crawl's workers
        if settings.shared_cookies:
            self._share_cookies()
        refs = [*settings.item_pipelines, *spider.pipelines]
        loaded = [load_pipeline(p, self._crawler) for p in refs]
        self.pipelines = PipelineChain([p for p in loaded if p is not None])
        self.engine: Engine | None = None
        self._stop = asyncio.Event()
        self.rounds_run = 0
        self.on_progress: Callable[[Engine], None] | None = None
        #: called with each fetch's duration in seconds (the health server's latency histogram)
        self.fetch_observers: list[Callable[[float], None]] = []
        self.item_key = item_key_of(settings, spider)
        self.hooks = self._build_hooks()

    def _share_cookies(self) -> None:
        """Setting shared_cookies: the downloader's jars live in Redis too (kubecrawl/shared_cookies.py)."""
        from .backends.redis import RedisBackend

        s = self.s
        if not isinstance(self.backend, RedisBackend) or self.downloader.jars is None:
            log.info("shared_cookies has no effect with role %s: one process already shares its cookie jars", s.role)
            return
        from .shared_cookies import SharedCookieJars

        self.downloader.jars = SharedCookieJars(
            s.cookies_per_domain, s.cookies_total, self.stats, self.backend, s.shared_cookies_refresh
        )

    def _build_hooks(self) -> Any:
        """Middlewares, signals and AutoThrottle, built once per process; each None when unused."""
        from .middleware import DownloaderMiddlewares, Hooks, SpiderMiddlewares, load_middlewares

        s, spider = self.s, self.spider
        self.downloader.set_spider_auth(spider)
        self.downloader.spider_statuses = tuple(getattr(spider, "handle_httpstatus_list", ()) or ())
        if s.meta_refresh is None:  # Scrapy's METAREFRESH_ENABLED default, for Scrapy spiders
            self.downloader.meta_refresh = bool(getattr(spider, "scrapy_api", False))
        hooks = Hooks()
        if s.downloader_middlewares:
            mws = load_middlewares(s.downloader_middlewares, self._crawler(), "downloader middleware")
            hooks.downloader = DownloaderMiddlewares(mws) if mws else None
        if s.spider_middlewares:
            smws = load_middlewares(s.spider_middlewares, self._crawler(), "spider middleware")
            hooks.spider = SpiderMiddlewares(smws) if smws else None
        if s.autothrottle:
            from .throttle import AutoThrottle

            hooks.throttle = AutoThrottle(s)
        crawler = getattr(spider, "crawler", None) or self._made_crawler
        if crawler is not None:
            hooks.signals = crawler.signals
        return hooks

    def _signal(self, name: str, **kwargs: Any) -> Any:
        """Send a Scrapy signal to whatever is connected (awaited), if anything is."""
        sm = self.hooks.signals
        if sm is None:
            return None
        from .scrapy import signals

        return sm.send_catch_log_async(getattr(signals, name), spider=self.spider, **kwargs)

    _made_crawler: Any = None

    def _crawler(self) -> Any:
        """Scrapy's crawler for a ``from_crawler`` component: the spider's, or one made for it (once)."""
        crawler = getattr(self.spider, "crawler", None) or self._made_crawler
        if crawler is None:
            from .scrapy.crawler import Crawler

            crawler = self._made_crawler = Crawler(self.s, self.stats, type(self.spider))
            crawler.spider = self.spider
            crawler._process = self
        return crawler

    def request_stop(self, reason: str = "signal") -> None:
        self._stop.set()
        if self.engine is not None:
            self.engine.request_stop(reason)

    def _new_engine(self) -> Engine:
        eng = Engine(
            self.spider,
            self.s,
            self.backend,
            self.downloader,
            self.pipelines,
            self.stats,
            item_key=self.item_key,
            fetch_observers=self.fetch_observers,
            hooks=self.hooks,
        )
        eng.on_progress = self.on_progress
        if self._stop.is_set():
            eng.request_stop("signal")
        self.engine = eng
        return eng

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        count = {"n": 0}

        def handler(signame: str) -> None:
            count["n"] += 1
            if count["n"] > 1:
                log.warning("second %s: stopping now, in-flight requests go back to the queue", signame)
                for task in asyncio.all_tasks(loop):
                    if task.get_name().startswith("kc-worker"):
                        task.cancel()
            self.request_stop(signame)

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, handler, sig.name)
            except (NotImplementedError, RuntimeError):
                pass

    @property
    def fatal(self) -> str | None:
        """Why the last engine stopped with an error (the process then exits 1), if it did."""
        return self.engine.fatal if self.engine is not None else None

    async def run(self) -> int:
        await self.backend.open()
        health: Any = None
        try:
            await self.pipelines.open(self.spider)
            await _maybe_await(self.spider.opened())
            if self.hooks.signals is not None:
                await self._signal("spider_opened")
            if self.s.health_port is not None:
                from .health import HealthServer

                health = HealthServer(self, self.s.health_port)
                await health.start()
            if self.s.role == "master":
                await self._run_master()
            elif self.s.role == "slave":
                await self._run_slave()
            else:
                await self._run_local()
            return 1 if self.fatal else 0
        finally:
            if health is not None:
                await health.stop()
            reason = self.engine.stop_reason if self.engine else "finished"
            try:
                await _maybe_await(self.spider.closed(reason))
            except Exception:
                log.exception("spider %s: closed() failed", self.spider.name)
            if self.hooks.signals is not None:
                await self._signal("spider_closed", reason=reason)
                await self.hooks.signals.drain()
            await self.pipelines.close(self.spider)
            await self.downloader.close()
            await self.backend.close()
            self.stats.finished = time.time()

    async def _wait_until(self, when: float) -> bool:
        """Sleep until ``when``; False if a stop was requested meanwhile."""
        delay = max(0.0, when - time.time())
        log.info("next round in %.0fs", delay)
        try:
            await asyncio.wait_for(self._stop.wait(), delay)
            return False
        except TimeoutError:
            return True

    def _more_rounds(self) -> bool:
        return not self._stop.is_set() and (self.s.max_rounds is None or self.rounds_run < self.s.max_rounds)

    def _stream_delivery(self) -> Any:
        """The slave's delivery of the item stream to its feeds (docs/feeds.md), or None without feeds."""
        specs = self.s.feed_specs()
        if not specs:
            return None
        from .backends.redis import RedisBackend
        from .feeds.stream import StreamDelivery

        b = self.backend
        if not isinstance(b, RedisBackend):
            return None
        return StreamDelivery(
            b.r,
            b.k.items,
            specs,
            consumer=b.worker_id,
            name=self.spider.name,
            crawl=b.crawl,
            item_dedup=b.item_dedup,
            claim_idle_s=self.s.feed_claim_idle,
        )

    async def _run_slave(self) -> None:
        delivery = self._stream_delivery()
        if delivery is None:
            await self._crawl_slave(self._new_engine())
            return
        await delivery.open()
        task = asyncio.create_task(delivery.run(), name="kc-feed-delivery")
        engine = self._new_engine()

        def died(t: asyncio.Task[Any]) -> None:
            # a delivery task that dies must stop the crawl with the reason, not wait for its end
            exc = None if t.cancelled() else t.exception()
            if exc is not None:
                log.error("feed delivery stopped: %r", exc, exc_info=exc)
                engine.fatal = engine.fatal or f"feed delivery failed: {exc!r}"
                engine.request_stop("error")

        task.add_done_callback(died)
        try:
            await self._crawl_slave(engine)
        finally:
            delivery.stop()
            try:
                await task
            except Exception:  # reported by died(); the exit code says it
                pass
            if not self.fatal:
                await delivery.drain()
            await delivery.close()

    async def _crawl_slave(self, engine: Engine) -> None:
        """``engine.crawl()``, with start URLs taken from the spider's Redis list alongside when it has
        one (kubecrawl/redis_spider.py); such a slave waits for more instead of exiting when idle."""
        from .redis_spider import StartURLFeeder

        feeder = StartURLFeeder.for_engine(engine)
        if feeder is None:
            await engine.crawl()
            return
        if self.s.exit_when_idle:
            log.warning(
                "spider %s takes start URLs from redis list %r: --exit-when-idle does not apply "
                "(it stops on SIGTERM, or after max_idle_time seconds idle)",
                self.spider.name,
                feeder.key,
            )
            self.s.exit_when_idle = False
        task = asyncio.create_task(feeder.run(), name="kc-start-urls")

        def died(t: asyncio.Task[Any]) -> None:
            exc = None if t.cancelled() else t.exception()
            if exc is not None:
                log.error("start URLs from redis stopped: %r", exc, exc_info=exc)
                engine.fatal = engine.fatal or f"start URLs from redis failed: {exc!r}"
                engine.request_stop("error")

        task.add_done_callback(died)
        try:
            await engine.crawl()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run_master(self) -> None:
        while True:
            started = time.time()
            await self._new_engine().seed()
            self.rounds_run += 1
            if self.fatal:
                return
            due = next_round_at(self.s, started)
            if due is None or not self._more_rounds() or not await self._wait_until(due):
                return

    async def _run_local(self) -> None:
        info = await self.backend.round_info()
        resuming = info.round >= 1 and not info.seeding and await self.backend.queued() > 0
        if resuming:
            log.info("resuming round %d: %d request(s) queued", info.round, await self.backend.queued())
        while True:
            started = time.time()
            engine = self._new_engine()
            if not resuming:
                await engine.seed()
            resuming = False
            await engine.crawl()
            self.rounds_run += 1
            if self.fatal:
                return
            due = next_round_at(self.s, started)
            if due is None or not self._more_rounds() or not await self._wait_until(due):
                return
