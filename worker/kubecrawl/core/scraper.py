"""The scraper: one lease in, one :class:`~kubecrawl.backends.base.Outcome` out.

It downloads (robots.txt and the HTTP-status policy included), runs the callback, normalises what the
callback produced (async generator, generator, coroutine, iterable or a single object), checks every
request it yielded, runs every item through the pipelines and builds the item records. It knows nothing
about the store: the scheduler commits what it returns.

Fault isolation: anything that goes wrong with one yielded request or one item (an unparseable URL, a
non-JSON ``meta`` value, a pipeline that raises, an item that cannot be serialised) is logged with its
URL, counted by kind and set aside; the rest of the page's output is kept.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Container, Iterable
from typing import Any
from urllib.parse import urlsplit

from ..backends.base import ItemRecord, Lease, Outcome
from ..backends.frontier import request_slot
from ..downloader import Downloader, DownloadError, Redirected
from ..errors import CloseSpider, DropItem, IgnoreRequest, SpiderError
from ..middleware import Hooks
from ..pipelines import PipelineChain, PipelineFailed
from ..request import Request
from ..response import Response
from ..settings import Settings
from ..spider import Spider, to_item_dict
from ..stats import Stats
from ..urls import check_request_url

log = logging.getLogger(__name__)

#: kinds counted with Stats.inc (expected on real sites) rather than as errors
NOT_ERRORS = frozenset({"skipped_scheme"})
#: a callback's requests go to the store in batches of this many while it runs (the scheduler's
#: largest commit), so memory does not grow with the number it yields
STREAM_BATCH = 2_000


def _sig() -> Any:
    from ..scrapy import signals

    return signals


class RequestRefused(Exception):
    """A yielded request that can never be scheduled; ``kind`` is its counter."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def check_request(req: Request, wire: bool) -> None:
    """Raise :class:`RequestRefused` unless ``req`` can be scheduled, fingerprinted and (``wire``) serialised.

    Runs where the request is yielded, so one bad request is refused there, with its own message,
    instead of failing the commit of a whole batch later.
    """
    kind = check_request_url(req.url)
    if kind is not None:
        raise RequestRefused(kind, f"{kind}: {req.url[:300]!r}")
    try:
        req.fingerprint  # noqa: B018 - computed (and cached) now, so a bad URL fails here
    except Exception as exc:
        raise RequestRefused("bad_url", f"bad_url: {req.url[:300]!r} cannot be fingerprinted ({exc})") from None
    if not wire:
        return
    for field in ("meta", "cb_kwargs"):
        value = getattr(req, field)
        if value:
            problem = non_json_path(value, field)
            if problem is not None:
                raise RequestRefused(
                    "unserializable_meta",
                    f"{req.url[:300]}: {problem} is not JSON data; requests travel through the store as JSON "
                    "(str, int, float, bool, None, list, dict with str keys)",
                )
    for name, hv in req.headers.items():
        if not isinstance(name, str) or not isinstance(hv, str):
            raise RequestRefused("unserializable_meta", f"{req.url[:300]}: header {name!r} must map str to str")


def non_json_path(value: Any, path: str, depth: int = 0) -> str | None:
    """Where ``value`` stops being JSON that comes back unchanged, e.g. ``meta['tags'] (set)``; None if it is."""
    if isinstance(value, str) or value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if -(2**63) <= value < 2**64 else f"{path} (int beyond 64 bits)"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path} (non-finite float)"
    if depth > 64:
        return f"{path} (nested more than 64 levels)"
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                return f"{path} (key {k!r} is {type(k).__name__}, not str)"
            found = non_json_path(v, f"{path}[{k!r}]", depth + 1)
            if found is not None:
                return found
        return None
    if isinstance(value, list | tuple):  # a tuple comes back as a list
        for i, v in enumerate(value):
            found = non_json_path(v, f"{path}[{i}]", depth + 1)
            if found is not None:
                return found
        return None
    return f"{path} ({type(value).__name__})"


def offsite_regex(domains: Iterable[Any]) -> re.Pattern[str] | None:
    """Hosts ``allowed_domains`` allows (each domain and its subdomains, as Scrapy's offsite filter).
    Entries that are URLs or carry a port are ignored with a warning, as in Scrapy."""
    names = []
    for d in domains:
        if d is None:
            continue
        if "://" in d or re.fullmatch(r".*:\d+", d):
            log.warning("allowed_domains accepts only domains, not URLs or ports; ignoring %r", d)
            continue
        names.append(re.escape(d.lower()))
    return re.compile(rf"^(.*\.)?({'|'.join(names)})$") if names else None


class _Budget:
    """Requests one callback may still yield, and how many it yielded past that."""

    __slots__ = ("dropped", "left")

    def __init__(self, left: int) -> None:
        self.left = left
        self.dropped = 0


def _one_arg_errback(fn: Callable[..., Any]) -> bool:
    """A Scrapy-style errback ``errback(failure)`` (one positional parameter), not ``(request, exc)``."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    varargs = any(p.kind is p.VAR_POSITIONAL for p in params)
    return len(positional) == 1 and not varargs


def _handled_statuses(spider: Spider, req: Request) -> tuple[int, ...] | range:
    if req.meta.get("handle_httpstatus_all"):
        return range(100, 1000)
    meta = req.meta.get("handle_httpstatus_list")
    if isinstance(meta, list):
        return tuple(meta)
    return tuple(getattr(spider, "handle_httpstatus_list", ()) or ())


def _single(value: Any) -> bool:
    return isinstance(value, Request | dict) or to_item_dict(value) is not None


def callback_output(result: Any) -> Iterable[Any] | AsyncIterator[Any]:
    """What a callback returned, as something to iterate: the one normalisation of callback output."""
    if inspect.isasyncgen(result):
        return result
    if inspect.isawaitable(result):
        return _awaited(result)
    if result is None:
        return ()
    if _single(result):
        return (result,)
    return result  # type: ignore[no-any-return]


async def _awaited(aw: Any) -> AsyncIterator[Any]:
    value = await aw
    if inspect.isasyncgen(value):
        async for x in value:
            yield x
        return
    for x in callback_output(value):  # type: ignore[union-attr]
        yield x


class Scraper:
    """Turns one lease into one outcome (see module docstring)."""

    def __init__(
        self,
        spider: Spider,
        settings: Settings,
        downloader: Downloader,
        pipelines: PipelineChain,
        stats: Stats,
        *,
        item_key: list[str],
        wire: bool,
        known_urls: Container[str] = frozenset(),
        fetch_observers: Iterable[Callable[[float], None]] = (),
        hooks: Hooks | None = None,
    ) -> None:
        self.spider = spider
        self.s = settings
        self.downloader = downloader
        self.pipelines = pipelines
        self.stats = stats
        self.item_key = item_key
        self.wire = wire  # the store serialises requests (SQLite, Redis): meta must be JSON data
        self.known_urls = known_urls  # exact URLs already committed (owned by the scheduler)
        self.known_on = settings.fingerprint_ttl is None
        self.fetch_observers = list(fetch_observers)
        # Scrapy's spider API, paid for only by spiders that use it (kubecrawl.scrapy spiders,
        # allowed_domains, DEPTH_LIMIT): nothing below runs per request otherwise
        self.scrapy_api = bool(getattr(spider, "scrapy_api", False))
        self.depth_limit = settings.depth_limit
        self.depth_priority = settings.depth_priority
        self.track_depth = bool(self.depth_limit) or bool(getattr(spider, "track_depth", False))
        domains = getattr(spider, "allowed_domains", None)
        self.offsite = offsite_regex(domains) if domains else None
        self._offsite_logged: set[str] = set()
        self._errback_style: dict[Any, bool] = {}
        #: called with the reason when a callback raises CloseSpider (the engine's graceful stop)
        self.on_close_spider: Callable[[str], None] | None = None
        # middlewares, signals, AutoThrottle: None unless configured (the hot path tests one attribute)
        hooks = hooks or Hooks()
        self.dmw = hooks.downloader
        self.smw = hooks.spider
        self.signals = hooks.signals
        self.throttle = hooks.throttle
        #: commits part of a lease's requests early (the scheduler's commit_requests); None: kept whole
        self.stream_requests: Callable[[list[Request]], Awaitable[None]] | None = None
        self.max_requests = settings.max_requests_per_page

    # -- one lease -----------------------------------------------------------------------------
    async def process(self, lease: Lease) -> Outcome:
        req = lease.request
        oc = Outcome(lease.id)
        stats = self.stats
        try:
            allowed = await self._robots_allow(req)
        except DownloadError as exc:
            stats.error(exc.kind)
            log.info("failed %s: %s", req.url, exc)
            await self._errback(req, exc, oc)
            return oc
        if not allowed:
            stats.inc("robots_denied")
            log.debug("disallowed by robots.txt: %s", req.url)
            return oc
        oc.crawl_delay = self.downloader.crawl_delay(req.url)
        slot = request_slot(req, self.s.slot_key) if self.throttle is not None else ""
        if self.throttle is not None:
            await self.throttle.wait(slot)
        t0 = time.perf_counter()
        try:
            if self.dmw is None:
                resp = await self.downloader.fetch(req)
            else:
                got = await self._download_via_middlewares(req, oc)
                if got is None:
                    return oc
                resp = got
        except Redirected as redirect:
            stats.inc("redirects")
            self.add_request(redirect.request, None, oc)
            return oc
        except DownloadError as exc:
            stats.error(exc.kind)
            log.info("failed %s: %s", req.url, exc)
            await self._errback(req, exc, oc)
            return oc
        finally:
            oc.answered = time.monotonic()  # the store times this slot's next request from here
            if self.fetch_observers:
                elapsed = time.perf_counter() - t0
                for observe in self.fetch_observers:
                    observe(elapsed)
        if self.throttle is not None:
            self.throttle.observe(slot, time.perf_counter() - t0, resp.status)
            oc.throttle_delay = self.throttle.delay(slot)  # the store spaces the slot by it, for every worker
        stats.inc("pages")
        stats.inc("bytes", len(resp.body))
        if self.signals is not None and self.signals.has(_sig().response_received):
            self.signals.send_catch_log(_sig().response_received, response=resp, request=req, spider=self.spider)
        if self.scrapy_api:
            from ..scrapy.http import Headers

            if not isinstance(resp.headers, Headers):
                resp.headers = Headers(resp.headers)  # type: ignore[assignment]
        if not 200 <= resp.status < 300 and resp.status not in _handled_statuses(self.spider, req):
            stats.error(f"http_{resp.status}")
            await self._errback(
                req, DownloadError(f"http_{resp.status}", f"HTTP {resp.status} {resp.url}", request=req), oc, resp
            )
            return oc
        if self.track_depth:
            req.meta.setdefault("depth", 0)
        try:
            callback = self.spider.resolve_callback(req.callback)
        except SpiderError as exc:
            stats.error("no_callback")
            log.error("%s: %s", req.url, exc)
            return oc
        if self.smw is not None and self.smw.on_input:
            try:
                self.smw.spider_input(resp, self.spider)
            except Exception as exc:
                await self._spider_input_failed(req, resp, exc, oc)
                return oc
        await self._run_callback(callback, (resp,), req.cb_kwargs, resp, oc)
        return oc

    async def _download_via_middlewares(self, req: Request, oc: Outcome) -> Response | None:
        """The download through the downloader middlewares (kubecrawl/middleware.py has the rules).
        None when it ended here: a request scheduled instead, or a failure handed to the errback."""
        assert self.dmw is not None

        async def fetch(r: Request) -> Response | Request:
            try:
                resp = await self.downloader.fetch(r)
            except Redirected as redirect:
                self.stats.inc("redirects")
                return redirect.request
            if self.scrapy_api:  # middlewares written for Scrapy read bytes headers
                from ..scrapy.http import Headers

                resp.headers = Headers(resp.headers)  # type: ignore[assignment]
            return resp

        try:
            got = await self.dmw.download(req, fetch, self.spider)
        except (DownloadError, Redirected):
            raise
        except IgnoreRequest as exc:
            self.stats.inc("ignored")
            log.debug("ignored by a downloader middleware: %s (%s)", req.url, exc)
            await self._errback(req, exc, oc)
            return None
        except Exception as exc:
            self.stats.error(f"middleware:{type(exc).__name__}")
            log.error("downloader middleware failed on %s: %r", req.url, exc, exc_info=exc)
            await self._errback(req, exc, oc)
            return None
        if isinstance(got, Request):
            self.stats.inc("rescheduled")
            self.add_request(got, None, oc)
            return None
        return got

    async def _spider_input_failed(self, req: Request, resp: Response, exc: Exception, oc: Outcome) -> None:
        """Scrapy: the request's errback if it has one, else the process_spider_exception chain."""
        if req.errback:
            await self._errback(req, exc, oc)
            return
        assert self.smw is not None
        alt = self.smw.spider_exception(resp, exc, self.spider)
        if alt is None:
            self.stats.error(f"spider_input:{type(exc).__name__}")
            log.error("process_spider_input failed on %s: %r", resp.url, exc, exc_info=exc)
            return
        await self._handle_all(alt, resp, oc)

    async def _handle_all(self, output: Any, resp: Response | None, oc: Outcome) -> None:
        output = callback_output(output)
        if isinstance(output, AsyncIterator):
            async for obj in output:
                await self.handle_output(obj, resp, oc)
        else:
            for obj in output:
                await self.handle_output(obj, resp, oc)

    async def _robots_allow(self, req: Request) -> bool:
        """robots.txt's verdict on ``req``. While robots.txt is unavailable (RFC 9309: disallow for
        now) the check is tried again with the download retries' backoff, then raises DownloadError."""
        attempt = req.retries
        while True:
            try:
                return await self.downloader.allowed_by_robots(req.url)
            except DownloadError as exc:
                if not exc.retryable or attempt >= self.s.max_retries:
                    exc.request = req
                    raise
                attempt += 1
                self.stats.inc("retries")
                self.stats.inc(f"retry:{exc.kind}")
                wait = self.s.retry_backoff * (2 ** (attempt - 1)) * random.uniform(1.0, 1.2)
                await asyncio.sleep(min(wait, self.s.retry_max_wait))
            except Exception as exc:  # a bug in robots handling must not cost the page
                log.warning("robots.txt check failed for %s: %s", req.url, exc)
                return True

    async def _errback(self, req: Request, exc: Exception, oc: Outcome, resp: Response | None = None) -> None:
        if not req.errback:
            return
        try:
            fn = self.spider.resolve_callback(req.errback)
        except SpiderError as err:
            self.stats.error("no_callback")
            log.error("%s: %s", req.url, err)
            return
        key = getattr(fn, "__func__", fn)
        scrapy_style = self._errback_style.get(key)
        if scrapy_style is None:
            scrapy_style = self._errback_style[key] = _one_arg_errback(fn)
        args: tuple[Any, ...] = (req, exc)
        if scrapy_style:  # errback(failure), as in Scrapy: failure.value, .request, .check()
            from ..scrapy.failure import Failure
            from ..scrapy.spidermiddlewares.httperror import HttpError

            args = (Failure(HttpError(resp) if resp is not None else exc, req),)
        await self._run_callback(fn, args, {}, None, oc, where=req.url)

    async def _run_callback(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        resp: Response | None,
        oc: Outcome,
        where: str | None = None,
    ) -> None:
        where = resp.url if resp is not None else where
        budget = _Budget(self.max_requests)
        try:
            output = callback_output(fn(*args, **kwargs))
            if self.smw is not None and self.smw.on_output:
                output = self.smw.spider_output(resp, output, self.spider)
            if isinstance(output, AsyncIterator):
                async for obj in output:
                    await self._one_output(obj, resp, oc, budget)
            else:
                for obj in output:
                    await self._one_output(obj, resp, oc, budget)
        except CloseSpider as exc:
            log.info("callback %s on %s closed the spider: %s", getattr(fn, "__name__", fn), where, exc.reason)
            if self.on_close_spider is not None:
                self.on_close_spider(exc.reason)
        except IgnoreRequest as exc:
            self.stats.inc("ignored")
            log.debug("callback %s ignored %s: %s", getattr(fn, "__name__", fn), where, exc)
        except Exception as exc:
            if self.smw is not None and self.smw.on_exception:
                try:
                    alt = self.smw.spider_exception(resp, exc, self.spider)
                except Exception as again:
                    exc, alt = again, None
                if alt is not None:
                    self.stats.inc("spider_exceptions_handled")
                    await self._handle_all(alt, resp, oc)
                    return
            self.stats.error(f"spider:{type(exc).__name__}")
            log.error("spider callback %s failed on %s: %r", getattr(fn, "__name__", fn), where, exc, exc_info=exc)
        finally:
            if budget.dropped:
                self.stats.inc("requests_capped", budget.dropped)
                log.warning(
                    "callback %s on %s yielded %d requests; the %d past max_requests_per_page=%d were dropped",
                    getattr(fn, "__name__", fn),
                    where,
                    budget.dropped + self.max_requests,
                    budget.dropped,
                    self.max_requests,
                )

    async def _one_output(self, obj: Any, resp: Response | None, oc: Outcome, budget: _Budget) -> None:
        if isinstance(obj, Request):
            if budget.left <= 0:
                budget.dropped += 1
                return
            budget.left -= 1
            self.add_request(obj, resp, oc)
            if len(oc.requests) >= STREAM_BATCH and self.stream_requests is not None:
                batch, oc.requests = oc.requests, []
                await self.stream_requests(batch)
        else:
            await self.handle_output(obj, resp, oc)

    # -- what a callback yields ------------------------------------------------------------------
    def add_request(self, req: Request, resp: Response | None, oc: Outcome) -> None:
        """A request a callback yielded: dropped if its exact URL was committed before (no fingerprint
        work), refused and counted if it can never be scheduled, else added to the outcome."""
        if (
            self.known_on
            and req.url in self.known_urls
            and not req.dont_filter
            and req.fingerprint_ttl is None
            and req.method == "GET"
            and not req.body
        ):
            self.stats.inc("filtered")
            if self.signals is not None and self.signals.has(_sig().request_dropped):
                self.signals.send_catch_log(_sig().request_dropped, request=req, spider=self.spider)
            return
        if resp is not None:
            rnd = resp.request.meta.get("round")
            if rnd is not None and "round" not in req.meta:
                req.meta["round"] = rnd
            if self.track_depth and self.too_deep(req, resp):
                return
        if self.refused(req, resp.url if resp is not None else None):
            return
        oc.requests.append(req)
        if self.signals is not None and self.signals.has(_sig().request_scheduled):
            self.signals.send_catch_log(_sig().request_scheduled, request=req, spider=self.spider)

    def too_deep(self, req: Request, resp: Response) -> bool:
        """Scrapy's depth rule: ``meta['depth']`` is the page's depth + 1; beyond ``depth_limit`` the
        request is dropped and counted ``depth_limited``."""
        depth = resp.request.meta.get("depth", 0) + 1
        req.meta["depth"] = depth
        if self.depth_priority:
            req.priority -= depth * self.depth_priority
        if self.depth_limit and depth > self.depth_limit:
            self.stats.inc("depth_limited")
            log.debug("not scheduled (depth %d > depth_limit %d): %s", depth, self.depth_limit, req.url)
            return True
        return False

    def is_offsite(self, req: Request) -> bool:
        """Outside the spider's ``allowed_domains``: counted ``offsite``, logged once per host."""
        assert self.offsite is not None
        if req.dont_filter:
            return False
        try:
            host = urlsplit(req.url).hostname
        except ValueError:
            return False  # check_request refuses it as bad_url
        if host is not None and self.offsite.search(host):
            return False
        self.stats.inc("offsite")
        if (host or "") not in self._offsite_logged:
            self._offsite_logged.add(host or "")
            log.info("filtered offsite request to %r (not in allowed_domains): %s", host, req.url[:300])
        return True

    def refused(self, req: Request, page: str | None) -> bool:
        """Check ``req`` (see :func:`check_request`); count and log it if refused."""
        if self.offsite is not None and self.is_offsite(req):
            return True
        try:
            check_request(req, self.wire)
        except RequestRefused as exc:
            if exc.kind in NOT_ERRORS:
                self.stats.inc(exc.kind)
                log.debug("not scheduled (from %s): %s", page, exc)
            else:
                self.stats.error(exc.kind)
                log.warning("request set aside (from %s): %s", page, exc)
            return True
        return False

    async def handle_output(self, obj: Any, resp: Response | None, oc: Outcome) -> None:
        if isinstance(obj, Request):
            self.add_request(obj, resp, oc)
            return
        if obj is None:
            return
        where = resp.url if resp is not None else "an errback"
        item = to_item_dict(obj)
        if item is None:
            self.stats.error("bad_output")
            log.error(
                "callback on %s yielded %s; expected a Request, a dict, a dataclass or a pydantic model",
                where,
                type(obj).__name__,
            )
            return
        try:
            processed = await self.pipelines.process(item, self.spider)
        except PipelineFailed as exc:
            self.stats.error(f"pipeline:{type(exc.cause).__name__}")
            log.error("item from %s set aside: %s", where, exc, exc_info=exc.cause)
            return
        signals = self.signals
        if processed is None:
            self.stats.inc("dropped")
            if signals is not None and signals.has(_sig().item_dropped):
                why = self.pipelines.last_drop or DropItem("dropped by an item pipeline")
                await signals.send_catch_log_async(
                    _sig().item_dropped, item=item, response=resp, exception=why, spider=self.spider
                )
            return
        try:
            oc.items.append(ItemRecord.build(processed, self.item_key))
        except (TypeError, ValueError, RecursionError) as exc:
            self.stats.error("unserializable_item")
            log.error("item from %s set aside: it cannot be serialised as JSON (%s)", where, exc)
            return
        if signals is not None and signals.has(_sig().item_scraped):
            await signals.send_catch_log_async(_sig().item_scraped, item=processed, response=resp, spider=self.spider)
