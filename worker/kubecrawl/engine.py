"""The engine every role shares: lease requests from the store, download, call back, commit outcomes.

One feeder task keeps a small local buffer of leased requests; ``concurrency`` worker tasks take from
it; outcomes (acks, new requests, items, counters) are committed to the store in batches. A request is
acked only when its outcome is committed, so a process that dies loses nothing: the store hands its
leases out again.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from .backends.base import Backend, ItemRecord, Lease, Outcome
from .downloader import Downloader, DownloadError, Redirected
from .errors import SpiderError
from .pipelines import PipelineChain
from .request import Request
from .response import Response
from .settings import Settings
from .spider import Spider, to_item_dict
from .stats import Stats

log = logging.getLogger(__name__)

_RAW_CACHE_MAX = 500_000
#: counters the store keeps itself from what a commit actually did
STORE_COUNTED = frozenset({"filtered", "items", "items_duplicate", "enqueued"})


class Engine:
    def __init__(
        self,
        spider: Spider,
        settings: Settings,
        backend: Backend,
        downloader: Downloader,
        pipelines: PipelineChain | None = None,
        stats: Stats | None = None,
    ) -> None:
        self.spider = spider
        self.s = settings
        self.backend = backend
        self.downloader = downloader
        self.pipelines = pipelines or PipelineChain([])
        self.stats = stats or Stats()
        # the store's id when it has one (Redis: stable per pod, owns the leases), else a fresh one
        self.worker_id = getattr(backend, "worker_id", None) or f"{spider.name}-{uuid.uuid4().hex[:8]}"
        self.item_key = list(spider.item_key or settings.item_key)
        self._buffer: deque[Lease] = deque()
        self._buffer_ready = asyncio.Event()
        self._wake = asyncio.Event()
        self._pending: list[Outcome] = []
        self._commit_lock = asyncio.Lock()
        self._active = 0
        self._held: dict[str, Lease] = {}  # leased and not yet committed
        self._raw_seen: set[str] = set()
        self._raw_filtered = 0
        self._raw_cache_on = settings.fingerprint_ttl is None
        self._stopping = False
        self._closing = False
        self._done = asyncio.Event()
        self.stop_reason = "finished"
        self._last_activity = time.monotonic()
        self.on_progress: Callable[[Engine], None] | None = None

    # -- public ------------------------------------------------------------------------------
    def request_stop(self, reason: str = "shutdown") -> None:
        """Graceful stop: finish what is in flight, commit, hand back the rest."""
        if not self._stopping:
            log.info("stopping (%s): finishing in-flight requests", reason)
            self._stopping = True
            self.stop_reason = reason
            self._wake.set()
            self._buffer_ready.set()
            self._done.set()  # crawl() then waits for the workers' current requests

    async def seed(self) -> int:
        """Run ``start_requests`` into the store as round N; returns the round number."""
        round_no = await self.backend.begin_round()
        batch: list[Request] = []
        count = 0
        async for req in _aiter(self.spider.start_requests()):
            if not isinstance(req, Request):
                raise SpiderError(f"start_requests yielded {type(req).__name__}, expected Request")
            if self.spider.incremental:
                req.dont_filter = True
            req.meta.setdefault("round", round_no)
            batch.append(req)
            if len(batch) >= 500:
                count += await self._commit_seeds(batch)
                batch = []
        count += await self._commit_seeds(batch)
        await self.backend.end_seeding(round_no)
        log.info("round %d seeded: %d start request(s) enqueued", round_no, count)
        return round_no

    async def _commit_seeds(self, batch: list[Request]) -> int:
        if not batch:
            return 0
        res = await self.backend.commit([Outcome(None, requests=batch)])
        self.stats.inc("filtered", res.filtered)
        self.stats.inc("enqueued", res.enqueued)
        return res.enqueued

    async def crawl(self) -> Stats:
        """Process requests until the store is drained (or, for a slave, forever / until idle)."""
        workers = [asyncio.create_task(self._worker(), name=f"kc-worker-{i}") for i in range(self.s.concurrency)]
        feeder = asyncio.create_task(self._feeder(), name="kc-feeder")
        ticker = asyncio.create_task(self._ticker(), name="kc-ticker")
        try:
            await self._done.wait()
        finally:
            self._stopping = True
            self._buffer_ready.set()
            grace = asyncio.gather(*workers, return_exceptions=True)
            try:
                await asyncio.wait_for(asyncio.shield(grace), timeout=max(5.0, self.s.download_timeout))
            except (TimeoutError, asyncio.CancelledError):
                for w in workers:
                    w.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
            # The feeder and the ticker end on the _closing flag, not only on cancellation: a library
            # that swallows a CancelledError (seen with Redis calls, and asyncio.wait_for's race in
            # 3.11) must not keep this process from handing its leases back.
            self._closing = True
            self._wake.set()
            feeder.cancel()
            ticker.cancel()
            _, stuck = await asyncio.wait({feeder, ticker}, timeout=10)
            for task in stuck:
                log.warning("task %s did not stop in time; continuing the shutdown without it", task.get_name())
            await self._flush()
            leftover = [lease.id for lease in self._held.values()]
            if leftover:
                await self.backend.release(leftover)
                log.info("handed %d unprocessed request(s) back to the queue", len(leftover))
            self._held.clear()
            self.stats.finished = time.time()
        return self.stats

    # -- feeding -----------------------------------------------------------------------------
    async def _feeder(self) -> None:
        backoff = 0.01
        slave = self.s.role == "slave"
        while not self._stopping and not self._closing:
            want = self.s.concurrency + self.s.pop_batch - len(self._buffer) - self._active
            if want < min(self.s.pop_batch, self.s.concurrency):
                self._wake.clear()
                await self._wait_wake(0.5)
                continue
            leases = await self.backend.pop(min(want, self.s.pop_batch))
            if leases:
                backoff = 0.01
                for lease in leases:
                    self._held[lease.id] = lease
                self._buffer.extend(leases)
                self._buffer_ready.set()
                continue
            # nothing to pop: commit what is pending (it may hold new requests), then look again
            if self._pending:
                await self._flush()
                continue
            if self._active == 0 and not self._buffer:
                await self._flush()  # waits for a commit in progress; it may enqueue more
                if self._pending or self._buffer:
                    continue
                if not slave:
                    if await self.backend.queued() == 0:
                        self._done.set()
                        return
                elif self.s.exit_when_idle and await self.backend.is_complete():
                    self.stop_reason = "idle"
                    self._done.set()
                    return
            self._wake.clear()
            await self._wait_wake(backoff if slave else 0.5)
            if slave:
                backoff = min(backoff * 2, 1.0)

    async def _wait_wake(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            pass

    async def _ticker(self) -> None:
        """Periodic duties: flush commits, heartbeat, progress."""
        last_beat = 0.0
        while not self._closing:
            await asyncio.sleep(0.05)
            if self._pending:
                await self._flush()
            now = time.monotonic()
            if now - last_beat > 5:
                last_beat = now
                try:
                    await self.backend.heartbeat(self.worker_id)
                except Exception as exc:  # a missed heartbeat is not fatal
                    log.warning("heartbeat failed: %s", exc)
                if self.on_progress is not None:
                    self.on_progress(self)

    # -- committing --------------------------------------------------------------------------
    async def _flush(self) -> None:
        async with self._commit_lock:
            if not self._pending:
                return
            batch, self._pending = self._pending, []
            raw_filtered, self._raw_filtered = self._raw_filtered, 0
            delta = {k: v for k, v in self.stats.delta().items() if k not in STORE_COUNTED}
            if batch and delta:
                batch[-1].stats = self._merge_stats(batch[-1].stats, delta)
            res = await self.backend.commit(batch)
            for oc in batch:
                if oc.lease_id is not None:
                    self._held.pop(oc.lease_id, None)
                for req in oc.requests:
                    if not req.dont_filter and req.fingerprint_ttl is None:
                        self._raw_seen.add(req.url)
            self.stats.inc("filtered", res.filtered + raw_filtered)
            self.stats.inc("items", res.items_stored)
            self.stats.inc("items_duplicate", res.items_duplicate)
            self.stats.inc("enqueued", res.enqueued)
            if len(self._raw_seen) > _RAW_CACHE_MAX:
                self._raw_seen.clear()
        self._wake.set()

    @staticmethod
    def _merge_stats(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
        out = dict(a)
        for k, v in b.items():
            out[k] = out.get(k, 0) + v
        return out

    # -- processing --------------------------------------------------------------------------
    async def _worker(self) -> None:
        buffer = self._buffer
        while True:
            if not buffer:
                if self._stopping:
                    return
                self._buffer_ready.clear()
                await self._buffer_ready.wait()
                continue
            if self._stopping:
                return
            lease = buffer.popleft()
            self._active += 1
            try:
                oc = await self._process(lease)
            except asyncio.CancelledError:
                self._active -= 1
                raise
            except Exception:
                log.exception("unexpected error processing %s", lease.request.url)
                self.stats.error("internal")
                oc = Outcome(lease.id)
            self._active -= 1
            self._pending.append(oc)
            self._last_activity = time.monotonic()
            if len(self._pending) >= self.s.pop_batch or not buffer:
                self._wake.set()
            if self.s.max_pages is not None and self.stats["pages"] >= self.s.max_pages:
                self.request_stop("max_pages")

    async def _process(self, lease: Lease) -> Outcome:
        req = lease.request
        oc = Outcome(lease.id)
        stats = self.stats
        try:
            allowed = await self.downloader.allowed_by_robots(req.url)
        except Exception as exc:
            log.warning("robots.txt check failed for %s: %s", req.url, exc)
            allowed = True
        if not allowed:
            stats.inc("robots_denied")
            log.debug("disallowed by robots.txt: %s", req.url)
            return oc
        try:
            resp = await self.downloader.fetch(req)
        except Redirected as redirect:
            stats.inc("redirects")
            oc.requests.append(redirect.request)
            return oc
        except DownloadError as exc:
            stats.error(exc.kind)
            log.info("failed %s: %s", req.url, exc)
            await self._errback(req, exc, oc)
            return oc
        stats.inc("pages")
        stats.inc("bytes", len(resp.body))
        if not 200 <= resp.status < 300 and resp.status not in _handled_statuses(self.spider, req):
            stats.error(f"http_{resp.status}")
            await self._errback(req, DownloadError(f"http_{resp.status}", f"HTTP {resp.status} {resp.url}"), oc)
            return oc
        try:
            callback = self.spider.resolve_callback(req.callback)
        except SpiderError as exc:
            stats.error("no_callback")
            log.error("%s: %s", req.url, exc)
            return oc
        await self._run_callback(callback, (resp,), req.cb_kwargs, resp, oc)
        return oc

    async def _errback(self, req: Request, exc: Exception, oc: Outcome) -> None:
        if not req.errback:
            return
        try:
            fn = self.spider.resolve_callback(req.errback)
        except SpiderError as err:
            log.error("%s: %s", req.url, err)
            return
        await self._run_callback(fn, (req, exc), {}, None, oc)

    async def _run_callback(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], resp: Response | None, oc: Outcome
    ) -> None:
        try:
            result = fn(*args, **kwargs)
            if inspect.isasyncgen(result):
                async for obj in result:
                    if type(obj) is Request:
                        self._add_request(obj, resp, oc)
                    else:
                        await self._handle_output(obj, resp, oc)
            elif inspect.isawaitable(result):
                value = await result
                for obj in _iter_result(value):
                    await self._handle_output(obj, resp, oc)
            else:
                for obj in _iter_result(result):
                    if type(obj) is Request:
                        self._add_request(obj, resp, oc)
                    else:
                        await self._handle_output(obj, resp, oc)
        except Exception as exc:
            self.stats.error(f"spider:{type(exc).__name__}")
            log.error("spider callback %s failed on %s: %r", getattr(fn, "__name__", fn), args[0], exc, exc_info=exc)

    def _add_request(self, req: Request, resp: Response | None, oc: Outcome) -> None:
        """A request a callback yielded. An exact URL this process already committed is dropped
        here, before any fingerprint work (the store would refuse it anyway)."""
        if (
            req.url in self._raw_seen
            and not req.dont_filter
            and req.fingerprint_ttl is None
            and self._raw_cache_on
            and req.method == "GET"
            and not req.body
        ):
            self._raw_filtered += 1
            return
        if resp is not None:
            rnd = resp.request.meta.get("round")
            if rnd is not None:
                req.meta.setdefault("round", rnd)
        oc.requests.append(req)

    async def _handle_output(self, obj: Any, resp: Response | None, oc: Outcome) -> None:
        if isinstance(obj, Request):
            self._add_request(obj, resp, oc)
            return
        if obj is None:
            return
        item = to_item_dict(obj)
        if item is None:
            self.stats.error("bad_output")
            log.error(
                "callback yielded %s; expected a Request, a dict, a dataclass or a pydantic model", type(obj).__name__
            )
            return
        processed = await self.pipelines.process(item, self.spider)
        if processed is None:
            self.stats.inc("dropped")
            return
        oc.items.append(ItemRecord.build(processed, self.item_key))


def _handled_statuses(spider: Spider, req: Request) -> tuple[int, ...]:
    meta = req.meta.get("handle_httpstatus_list")
    if isinstance(meta, list):
        return tuple(meta)
    return tuple(getattr(spider, "handle_httpstatus_list", ()) or ())


def _iter_result(value: Any) -> Any:
    if value is None:
        return ()
    if isinstance(value, (Request, dict)) or to_item_dict(value) is not None:
        return (value,)
    return value


async def _aiter(gen: Any) -> Any:
    if inspect.isasyncgen(gen):
        async for x in gen:
            yield x
    elif inspect.isawaitable(gen):
        for x in _iter_result(await gen):
            yield x
    else:
        for x in gen or ():
            yield x
