"""Scrapy's ``Spider``, ``CrawlSpider`` and ``Rule`` over kubecrawl's :class:`~kubecrawl.spider.Spider`.

A Scrapy spider gets what Scrapy gives it: ``self.logger``, ``self.crawler`` (``stats``, ``settings``,
``engine.close_spider``), ``self.settings.get*``, ``from_crawler``, ``start()`` (Scrapy 2.13) or
``start_requests()``, ``meta['depth']``, offsite filtering from ``allowed_domains`` and one-argument
errbacks receiving a :class:`~kubecrawl.scrapy.failure.Failure`. The engine does that work only for
spiders that ask for it (see ``track_depth`` and ``scrapy_api`` below), so kubecrawl's own spiders pay
nothing for it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from ...redis_spider import RedisStartMixin
from ...spider import Spider as _KcSpider
from ..http import Request

if TYPE_CHECKING:
    from ...response import Response
    from ..crawler import Crawler
    from ..failure import Failure
    from ..linkextractors import Link, LinkExtractor


class Spider(_KcSpider):
    """Scrapy's ``scrapy.Spider``."""

    name: ClassVar[str]  # type: ignore[misc]
    allowed_domains: ClassVar[list[str]] = []
    #: the engine sets ``meta['depth']`` on every request of this spider (Scrapy's DepthMiddleware)
    track_depth: ClassVar[bool] = True
    #: responses carry Scrapy's bytes :class:`~kubecrawl.scrapy.http.Headers`
    scrapy_api: ClassVar[bool] = True
    crawler: Crawler

    def __init__(self, name: str | None = None, **kwargs: Any) -> None:
        if name is not None:
            self.name = name  # type: ignore[misc]
        elif not getattr(self, "name", None):
            raise ValueError(f"{type(self).__name__} must have a name")
        super().__init__(**kwargs)
        if not hasattr(self, "start_urls"):
            self.start_urls = []  # type: ignore[misc]

    @property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        return logging.LoggerAdapter(logging.getLogger(self.name), {"spider": self.name})

    def log(self, message: Any, level: int = logging.DEBUG, **kw: Any) -> None:
        self.logger.log(level, message, **kw)

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> Spider:
        spider = cls(*args, **kwargs)
        spider._set_crawler(crawler)
        return spider

    def _set_crawler(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.settings = crawler.settings
        crawler.spider = self

    @classmethod
    def update_settings(cls, settings: Any) -> None:
        """Scrapy's hook; kubecrawl applies ``custom_settings`` itself when it builds the settings."""

    # start requests: Scrapy 2.13's ``async def start()`` or the older ``start_requests()``
    def start_requests(self) -> Any:  # type: ignore[override]
        if type(self).start is not Spider.start:
            return self.start()
        return self._start_url_requests()

    async def start(self) -> AsyncIterator[Any]:
        if type(self).start_requests is not Spider.start_requests:
            source: Any = self.start_requests()
        else:
            source = self._start_url_requests()
        if hasattr(source, "__aiter__"):
            async for x in source:
                yield x
        else:
            for x in source or ():
                yield x

    def _start_url_requests(self) -> Iterable[Request]:
        for url in self.start_urls:
            yield Request(url, dont_filter=True)


def _method(spider: Any, ref: Any) -> Callable[..., Any] | None:
    if ref is None or callable(ref):
        return ref  # type: ignore[no-any-return]
    fn = getattr(spider, ref, None)
    if fn is None:
        raise AttributeError(f"{type(spider).__name__} has no method {ref!r} (named by a Rule)")
    return fn  # type: ignore[no-any-return]


def _identity(x: Any) -> Any:
    return x


def _identity_request(request: Any, response: Any) -> Any:
    return request


class Rule:
    """``Rule(link_extractor=None, callback=None, cb_kwargs=None, follow=None, process_links=None,
    process_request=None, errback=None)``; ``follow`` defaults to True without a callback."""

    def __init__(
        self,
        link_extractor: LinkExtractor | None = None,
        callback: str | Callable[..., Any] | None = None,
        cb_kwargs: dict[str, Any] | None = None,
        follow: bool | None = None,
        process_links: str | Callable[..., Any] | None = None,
        process_request: str | Callable[..., Any] | None = None,
        errback: str | Callable[..., Any] | None = None,
    ) -> None:
        if link_extractor is None:
            from ..linkextractors import LinkExtractor

            link_extractor = LinkExtractor()
        self.link_extractor = link_extractor
        self.callback = callback
        self.errback = errback
        self.cb_kwargs = cb_kwargs or {}
        self.process_links = process_links or _identity
        self.process_request = process_request or _identity_request
        self.follow = follow if follow is not None else not callback

    def _compile(self, spider: Any) -> None:
        self.callback = _method(spider, self.callback)
        self.errback = _method(spider, self.errback)
        self.process_links = _method(spider, self.process_links)  # type: ignore[assignment]
        self.process_request = _method(spider, self.process_request)  # type: ignore[assignment]


async def _iterate(out: Any) -> AsyncIterator[Any]:
    from ...core.scraper import callback_output

    it = callback_output(out)
    if hasattr(it, "__aiter__"):
        async for x in it:  # type: ignore[union-attr]
            yield x
    else:
        for x in it:  # type: ignore[union-attr]
            yield x


class CrawlSpider(Spider):
    """Scrapy's ``CrawlSpider``: start pages and pages reached by a rule are parsed by the rules.

    Requests made by a rule carry ``meta['rule']`` (the rule's index) and ``meta['link_text']``, as in
    Scrapy, so they travel through a distributed store as plain JSON.
    """

    rules: ClassVar[Sequence[Rule]] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._compile_rules()

    def _compile_rules(self) -> None:
        import copy

        self._rules = []
        for rule in self.rules:
            r = copy.copy(rule)
            r._compile(self)
            self._rules.append(r)

    def _set_crawler(self, crawler: Crawler) -> None:
        super()._set_crawler(crawler)
        self._follow_links = crawler.settings.getbool("CRAWLSPIDER_FOLLOW_LINKS", True)

    def resolve_callback(self, name: str | None) -> Callable[..., Any]:
        # a request without a callback (the start URLs) is parsed by the rules, as Scrapy's ``_parse``
        if name is None or name == "_parse":
            return self._parse
        if name in ("_callback", "_errback"):
            return getattr(self, name)  # type: ignore[no-any-return]
        return super().resolve_callback(name)

    def _parse(self, response: Response, **kwargs: Any) -> AsyncIterator[Any]:
        return self._parse_response(response, self.parse_start_url, kwargs, True)

    def parse_start_url(self, response: Response, **kwargs: Any) -> Any:
        return []

    def process_results(self, response: Response, results: Any) -> Any:
        return results

    def _build_request(self, rule_index: int, link: Link) -> Request:
        return Request(
            url=link.url,
            callback="_callback",
            errback="_errback",
            meta={"rule": rule_index, "link_text": link.text},
        )

    def _requests_to_follow(self, response: Response) -> Iterable[Any]:
        ctype = response.headers.get("content-type") or b""
        if b"html" not in (ctype if isinstance(ctype, bytes) else ctype.encode()).lower():
            return
        seen: set[Link] = set()
        for index, rule in enumerate(self._rules):
            links = [lnk for lnk in rule.link_extractor.extract_links(response) if lnk not in seen]
            for link in rule.process_links(links):  # type: ignore[operator]
                seen.add(link)
                request = self._build_request(index, link)
                yield rule.process_request(request, response)  # type: ignore[operator]

    def _callback(self, response: Response, **cb_kwargs: Any) -> AsyncIterator[Any]:
        rule = self._rules[response.meta["rule"]]
        return self._parse_response(response, rule.callback, {**rule.cb_kwargs, **cb_kwargs}, rule.follow)

    def _errback(self, failure: Failure) -> Any:
        rule = self._rules[failure.request.meta["rule"]]
        if rule.errback is None:
            return None
        return rule.errback(failure)  # type: ignore[operator]

    async def _parse_response(
        self, response: Response, callback: Callable[..., Any] | None, cb_kwargs: dict[str, Any], follow: bool = True
    ) -> AsyncIterator[Any]:
        if callback is not None:
            results: list[Any] = []
            async for x in _iterate(callback(response, **cb_kwargs)):
                results.append(x)
            async for x in _iterate(self.process_results(response, results)):
                yield x
        if follow and getattr(self, "_follow_links", True):
            for request in self._requests_to_follow(response):
                if request is not None:
                    yield request


class SitemapSpider(Spider):
    """Scrapy's ``SitemapSpider``: ``sitemap_urls`` (sitemaps, sitemap indexes or robots.txt files),
    ``sitemap_rules`` ``[(regex, callback)]`` (first match wins; default: every URL to ``parse``),
    ``sitemap_follow`` (regexes of index entries to follow; default all), ``sitemap_alternate_links``
    and ``sitemap_filter(entries)``. See :mod:`kubecrawl.scrapy.sitemap` for how documents are read."""

    sitemap_urls: ClassVar[Sequence[str]] = ()
    sitemap_rules: ClassVar[Sequence[tuple[Any, Any]]] = [("", "parse")]
    sitemap_follow: ClassVar[Sequence[Any]] = [""]
    sitemap_alternate_links: ClassVar[bool] = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        import re

        super().__init__(*args, **kwargs)
        self._cbs = [
            (re.compile(r) if isinstance(r, str) else r, c if isinstance(c, str) else c.__name__)
            for r, c in self.sitemap_rules
        ]
        self._follow = [re.compile(x) if isinstance(x, str) else x for x in self.sitemap_follow]

    def resolve_callback(self, name: str | None) -> Callable[..., Any]:
        if name == "_parse_sitemap":
            return self._parse_sitemap
        return super().resolve_callback(name)

    def _start_url_requests(self) -> Iterable[Request]:
        for url in self.sitemap_urls:
            yield Request(url, callback="_parse_sitemap")

    def sitemap_filter(self, entries: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
        yield from entries

    def _parse_sitemap(self, response: Response) -> Iterable[Request]:
        from ..sitemap import entry_locs, robots_sitemaps, sitemap_body, sitemap_entries

        if response.url.endswith("/robots.txt"):
            for url in robots_sitemaps(response.text, response.url):
                yield Request(url, callback="_parse_sitemap")
            return
        body = sitemap_body(response, self.settings.max_body_size)
        if body is None:
            self.logger.warning("Ignoring invalid sitemap: %s", response.url)
            return
        kind, entries = sitemap_entries(body)
        alt = self.sitemap_alternate_links
        if kind == "sitemapindex":
            for entry in self.sitemap_filter(entries):
                for loc in entry_locs(entry, alt):
                    if any(x.search(loc) for x in self._follow):
                        yield Request(loc, callback="_parse_sitemap")
        elif kind == "urlset":
            for entry in self.sitemap_filter(entries):
                for loc in entry_locs(entry, alt):
                    for regex, callback in self._cbs:
                        if regex.search(loc):
                            yield Request(loc, callback=callback)
                            break


from .feed import CSVFeedSpider, XMLFeedSpider  # noqa: E402 -- they subclass Spider above

__all__ = [
    "CSVFeedSpider",
    "CrawlSpider",
    "RedisCrawlSpider",
    "RedisSpider",
    "Rule",
    "SitemapSpider",
    "Spider",
    "XMLFeedSpider",
]


class RedisSpider(RedisStartMixin, Spider):
    """scrapy-redis's ``RedisSpider``: slaves also take start URLs from ``redis_key`` (default
    ``<name>:start_urls``); see kubecrawl/redis_spider.py and docs/queue.md."""


class RedisCrawlSpider(RedisStartMixin, CrawlSpider):
    """scrapy-redis's ``RedisCrawlSpider``: a :class:`CrawlSpider` fed from ``redis_key``."""
