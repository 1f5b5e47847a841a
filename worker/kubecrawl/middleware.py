"""Downloader and spider middlewares, with Scrapy's methods, order and return-value rules.

``downloader_middlewares`` / ``spider_middlewares`` (Scrapy's ``DOWNLOADER_MIDDLEWARES`` /
``SPIDER_MIDDLEWARES``) map a class path to an order; ``None`` disables an entry. A class is built by
``from_crawler(crawler)`` when it has one, else ``from_settings(settings)``, else ``cls()``;
``NotConfigured`` leaves it out (logged). Scrapy's own built-in middlewares (``scrapy.*`` paths) are
kubecrawl's downloader and scraper themselves: naming one is accepted and logged, never loaded.

Downloader middlewares (Scrapy's documented rules, docs/scrapy.md):

- ``process_request(request, spider)`` in rising order. ``None``: the next one, then the download.
  A Response: no more ``process_request`` and no download; every ``process_response`` still runs. A
  Request: it is scheduled instead (deduplicated unless ``dont_filter``). ``IgnoreRequest`` (or any
  exception): the ``process_exception`` chain.
- ``process_exception(request, exception, spider)`` in falling order, for what the download or a
  ``process_request`` raised (after kubecrawl's own retries). ``None``: the next one; a Response
  starts the ``process_response`` chain; a Request is scheduled. Unhandled: the request's errback
  (an ``IgnoreRequest`` without one is counted ``ignored`` and not logged as an error).
- ``process_response(request, response, spider)`` in falling order: a Response goes on, a Request
  is scheduled, ``IgnoreRequest`` (or any exception) goes to the errback; ``process_exception`` is
  not called for it.

Spider middlewares: ``process_spider_input(response, spider)`` in rising order (an exception: the
errback if the request has one, else the ``process_spider_exception`` chain),
``process_spider_output(response, result, spider)`` in falling order (sync, or an async generator:
``async def``/``process_spider_output_async``), ``process_spider_exception(response, exception,
spider)`` in falling order (the first that returns an iterable supplies the page's remaining output),
``process_start(start)`` (async, Scrapy 2.13) or ``process_start_requests(start_requests, spider)``
around the spider's start requests.

With no middleware configured none of this exists (the scraper holds ``None``): the hot path has no
extra call.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .errors import NotConfigured
from .pipelines import import_object
from .request import Request
from .response import Response

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Hooks:
    """What a crawl process plugs into its engine; each part is ``None`` when not configured."""

    downloader: DownloaderMiddlewares | None = None
    spider: SpiderMiddlewares | None = None
    signals: Any = None  # kubecrawl.scrapy.signalmanager.SignalManager, when something is connected
    throttle: Any = None  # kubecrawl.throttle.AutoThrottle


class InvalidOutput(TypeError):
    """A middleware method returned something its rules do not allow (Scrapy's ``_InvalidOutput``)."""


def ordered(entries: dict[str, int | None]) -> list[str]:
    """Paths sorted by order (ties keep their order); ``None`` disables an entry."""
    enabled = [(order, i, path) for i, (path, order) in enumerate(entries.items()) if order is not None]
    return [path for _, _, path in sorted(enabled)]


def build_component(ref: Any, crawler: Any, what: str) -> Any:
    """An object for ``ref`` (a class, an object or ``pkg.module.Class``), built as Scrapy builds
    components; ``None`` when it raises :class:`NotConfigured` or is one of Scrapy's built-ins."""
    if isinstance(ref, str):
        if ref.startswith("scrapy."):
            log.info("%s %s is built into kubecrawl (docs/scrapy.md): not loaded", what, ref)
            return None
        ref = import_object(ref, what)
    if not inspect.isclass(ref):
        return ref
    try:
        if hasattr(ref, "from_crawler") and crawler is not None:
            return ref.from_crawler(crawler)
        if hasattr(ref, "from_settings") and crawler is not None:
            return ref.from_settings(crawler.settings)
        return ref()
    except NotConfigured as exc:
        log.info("%s %s is disabled (NotConfigured: %s)", what, ref.__name__, exc)
        return None


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _name(fn: Any) -> str:
    owner = getattr(fn, "__self__", None)
    return f"{type(owner).__name__}.{fn.__name__}" if owner is not None else getattr(fn, "__name__", repr(fn))


class DownloaderMiddlewares:
    """The ``process_request``/``process_response``/``process_exception`` chains around one download."""

    def __init__(self, middlewares: list[Any]) -> None:
        self.middlewares = middlewares
        self.on_request = [m.process_request for m in middlewares if hasattr(m, "process_request")]
        self.on_response = [m.process_response for m in reversed(middlewares) if hasattr(m, "process_response")]
        self.on_exception = [m.process_exception for m in reversed(middlewares) if hasattr(m, "process_exception")]

    async def download(
        self, request: Request, fetch: Callable[[Request], Awaitable[Response | Request]], spider: Any
    ) -> Response | Request:
        """The response, or a request to schedule instead; raises what no middleware handled."""
        try:
            result: Response | Request | None = None
            for fn in self.on_request:
                result = await _maybe_await(fn(request, spider))
                if result is not None:
                    if not isinstance(result, Response | Request):
                        raise InvalidOutput(
                            f"{_name(fn)} must return None, a Response or a Request, got {type(result).__name__}"
                        )
                    break
            if result is None:
                result = await fetch(request)
        except Exception as exc:
            result = await self._exception(request, exc, spider)
        if isinstance(result, Request):
            return result
        if result.request is None:
            result.request = request
        for fn in self.on_response:
            out = await _maybe_await(fn(request, result, spider))
            if isinstance(out, Request):
                return out
            if not isinstance(out, Response):
                raise InvalidOutput(f"{_name(fn)} must return a Response or a Request, got {type(out).__name__}")
            result = out
        return result

    async def _exception(self, request: Request, exc: Exception, spider: Any) -> Response | Request:
        if isinstance(exc, InvalidOutput):
            raise exc
        for fn in self.on_exception:
            out = await _maybe_await(fn(request, exc, spider))
            if out is None:
                continue
            if isinstance(out, Response | Request):
                return out
            raise InvalidOutput(f"{_name(fn)} must return None, a Response or a Request, got {type(out).__name__}")
        raise exc


class SpiderMiddlewares:
    """The spider-side chains around one callback and around the start requests."""

    def __init__(self, middlewares: list[Any]) -> None:
        self.middlewares = middlewares
        self.on_input = [m.process_spider_input for m in middlewares if hasattr(m, "process_spider_input")]
        rev = list(reversed(middlewares))
        self.on_output = [
            m for m in rev if hasattr(m, "process_spider_output") or hasattr(m, "process_spider_output_async")
        ]
        self.on_exception = [m.process_spider_exception for m in rev if hasattr(m, "process_spider_exception")]
        self.on_start = [m for m in rev if hasattr(m, "process_start") or hasattr(m, "process_start_requests")]

    def spider_input(self, response: Response, spider: Any) -> None:
        for fn in self.on_input:
            out = fn(response, spider)
            if out is not None:
                raise InvalidOutput(f"{_name(fn)} must return None or raise, got {type(out).__name__}")

    def spider_output(
        self, response: Response | None, result: Iterable[Any] | AsyncIterator[Any], spider: Any
    ) -> Iterable[Any] | AsyncIterator[Any]:
        """``result`` through every ``process_spider_output``, lazily; sync stays sync while it can."""
        for mw in self.on_output:
            async_fn = getattr(mw, "process_spider_output_async", None)
            fn = getattr(mw, "process_spider_output", None)
            if fn is not None and inspect.isasyncgenfunction(fn):
                async_fn = fn
            if isinstance(result, AsyncIterator):
                result = (
                    async_fn(response, result, spider)
                    if async_fn is not None
                    else _sync_stage(fn, response, result, spider)
                )
            elif fn is not None and async_fn is not fn:
                result = fn(response, result, spider) or ()
            else:
                assert async_fn is not None
                result = async_fn(response, _as_async(result), spider)
        return result

    def spider_exception(
        self, response: Response | None, exc: Exception, spider: Any
    ) -> Iterable[Any] | AsyncIterator[Any] | None:
        for fn in self.on_exception:
            out = fn(response, exc, spider)
            if out is not None:
                return out  # type: ignore[no-any-return]
        return None

    def start(self, start: AsyncIterator[Any], spider: Any) -> AsyncIterator[Any]:
        for mw in self.on_start:
            fn = getattr(mw, "process_start", None)
            if fn is not None:
                start = fn(start)
            else:
                start = _sync_stage(lambda _r, it, sp, m=mw: m.process_start_requests(it, sp), None, start, spider)
        return start


async def _as_async(it: Iterable[Any]) -> AsyncIterator[Any]:
    for x in it:
        yield x


async def _sync_stage(fn: Any, response: Any, upstream: AsyncIterator[Any], spider: Any) -> AsyncIterator[Any]:
    """A sync ``process_spider_output`` after an async stage: it gets the upstream output as a list."""
    items = [x async for x in upstream]
    for x in fn(response, items, spider) or ():
        yield x


def load_middlewares(entries: dict[str, int | None], crawler: Any, what: str) -> list[Any]:
    out = []
    for path in ordered(entries):
        mw = build_component(path, crawler, what)
        if mw is not None:
            out.append(mw)
    return out
