"""The middleware return-value rules, as Scrapy documents them (docs.scrapy.org, "Downloader Middleware"
and "Spider Middleware"), checked on kubecrawl's chains; and the cookie jars' RFC 6265 bounds.

The download itself is a plain coroutine returning a real :class:`~kubecrawl.Response` here: what is
under test is the chain's dispatch; tests/integration/test_scrapy_middlewares.py runs the same rules
against real servers.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from kubecrawl.cookies import CookieJars
from kubecrawl.errors import IgnoreRequest, NotConfigured
from kubecrawl.middleware import (
    DownloaderMiddlewares,
    InvalidOutput,
    SpiderMiddlewares,
    build_component,
    load_middlewares,
    ordered,
)
from kubecrawl.request import Request
from kubecrawl.response import Response
from kubecrawl.stats import Stats

URL = "http://example.com/a"


class Recorder:
    """A middleware that logs each call into ``log`` and returns what ``returns`` says for that hook."""

    def __init__(self, name: str, log: list[str], **returns: Any) -> None:
        self.name, self.log, self.returns = name, log, returns

    def _ret(self, hook: str, default: Any) -> Any:
        value = self.returns.get(hook, default)
        if isinstance(value, BaseException):
            raise value
        return value(default) if callable(value) else value

    def process_request(self, request: Any, spider: Any) -> Any:
        self.log.append(f"{self.name}.req")
        return self._ret("request", None)

    def process_response(self, request: Any, response: Any, spider: Any) -> Any:
        self.log.append(f"{self.name}.resp")
        return self._ret("response", response)

    def process_exception(self, request: Any, exception: Exception, spider: Any) -> Any:
        self.log.append(f"{self.name}.exc:{type(exception).__name__}")
        return self._ret("exception", None)


def download(mws: list[Any], fetch_result: Any = None) -> tuple[Any, list[str]]:
    log: list[str] = []
    for m in mws:
        m.log = log
    req = Request(URL)

    async def fetch(r: Request) -> Any:
        log.append("download")
        if isinstance(fetch_result, BaseException):
            raise fetch_result
        return fetch_result or Response(r.url, 200, {}, b"<p>ok</p>", r)

    async def go() -> Any:
        return await DownloaderMiddlewares(mws).download(req, fetch, None)

    try:
        return asyncio.run(go()), log
    except Exception as exc:
        return exc, log


def mw(name: str, **returns: Any) -> Recorder:
    return Recorder(name, [], **returns)


def test_order_rising_requests_falling_responses() -> None:
    result, log = download([mw("A"), mw("B"), mw("C")])
    assert isinstance(result, Response) and result.status == 200
    assert log == ["A.req", "B.req", "C.req", "download", "C.resp", "B.resp", "A.resp"]


def test_response_from_process_request_skips_the_rest_and_the_download_but_not_process_response() -> None:
    canned = Response(URL, 203, {}, b"canned", None)  # type: ignore[arg-type]
    result, log = download([mw("A"), mw("B", request=canned), mw("C")])
    assert result is canned and canned.request is not None  # the request is attached, as in Scrapy
    assert log == ["A.req", "B.req", "C.resp", "B.resp", "A.resp"]


def test_request_from_process_request_is_rescheduled_without_any_process_response() -> None:
    other = Request("http://example.com/b")
    result, log = download([mw("A"), mw("B", request=other), mw("C")])
    assert result is other
    assert log == ["A.req", "B.req"]


def test_ignore_request_from_process_request_goes_through_process_exception_then_raises() -> None:
    result, log = download([mw("A"), mw("B", request=IgnoreRequest("no")), mw("C")])
    assert isinstance(result, IgnoreRequest)  # unhandled: the caller calls the errback (or counts it)
    assert log == ["A.req", "B.req", "C.exc:IgnoreRequest", "B.exc:IgnoreRequest", "A.exc:IgnoreRequest"]


def test_process_exception_response_starts_the_response_chain_from_the_end() -> None:
    recovered = Response(URL, 200, {}, b"recovered", None)  # type: ignore[arg-type]
    result, log = download([mw("A"), mw("B", exception=recovered), mw("C")], fetch_result=OSError("down"))
    assert result is recovered
    # C saw it first and passed (None); B answered; A's process_exception is not called; every
    # process_response then runs, from the last middleware
    assert log == [
        "A.req",
        "B.req",
        "C.req",
        "download",
        "C.exc:OSError",
        "B.exc:OSError",
        "C.resp",
        "B.resp",
        "A.resp",
    ]


def test_process_exception_request_is_rescheduled() -> None:
    retry = Request(URL, dont_filter=True)
    result, log = download([mw("A", exception=retry), mw("B")], fetch_result=TimeoutError())
    assert result is retry
    assert log == ["A.req", "B.req", "download", "B.exc:TimeoutError", "A.exc:TimeoutError"]


def test_process_response_request_stops_the_chain() -> None:
    again = Request("http://example.com/again")
    result, log = download([mw("A"), mw("B", response=again), mw("C")])
    assert result is again
    assert log == ["A.req", "B.req", "C.req", "download", "C.resp", "B.resp"]


def test_exception_in_process_response_is_not_given_to_process_exception() -> None:
    result, log = download([mw("A"), mw("B", response=IgnoreRequest("late"))])
    assert isinstance(result, IgnoreRequest)
    assert log == ["A.req", "B.req", "download", "B.resp"]  # no .exc entries: straight to the errback


def test_invalid_outputs_are_refused() -> None:
    result, _ = download([mw("A", request="a string")])
    assert isinstance(result, InvalidOutput)
    result, _ = download([mw("A", response=None)])
    assert isinstance(result, InvalidOutput)
    result, _ = download([mw("A", exception=42)], fetch_result=OSError())
    assert isinstance(result, InvalidOutput)


def test_coroutine_methods_are_awaited() -> None:
    class Async:
        log: list[str]

        async def process_request(self, request: Any, spider: Any) -> None:
            await asyncio.sleep(0)
            request.headers["X"] = "1"
            self.log.append("async.req")

        async def process_response(self, request: Any, response: Any, spider: Any) -> Any:
            self.log.append(f"async.resp:{request.headers['X']}")
            return response

    result, log = download([Async()])
    assert isinstance(result, Response) and log == ["async.req", "download", "async.resp:1"]


# -- building ---------------------------------------------------------------------------------------------
class FromCrawler:
    @classmethod
    def from_crawler(cls, crawler: Any) -> FromCrawler:
        obj = cls()
        obj.crawler = crawler  # type: ignore[attr-defined]
        return obj


class FromSettings:
    @classmethod
    def from_settings(cls, settings: Any) -> FromSettings:
        obj = cls()
        obj.settings = settings  # type: ignore[attr-defined]
        return obj


class Disabled:
    def __init__(self) -> None:
        raise NotConfigured("off")


def test_order_none_disables_and_builders() -> None:
    assert ordered({"c": 300, "a": 100, "off": None, "b": 100}) == ["a", "b", "c"]  # ties keep their order

    class Crawler:
        settings = {"X": 1}

    c = Crawler()
    built = load_middlewares(
        {
            f"{__name__}.FromSettings": 2,
            f"{__name__}.FromCrawler": 1,
            f"{__name__}.Disabled": 3,
            "scrapy.downloadermiddlewares.useragent.UserAgentMiddleware": 400,  # built in: not loaded
        },
        c,
        "downloader middleware",
    )
    assert [type(m).__name__ for m in built] == ["FromCrawler", "FromSettings"]
    assert built[0].crawler is c and built[1].settings == {"X": 1}
    with pytest.raises(Exception, match="cannot load downloader middleware"):
        build_component("no.such.Module", c, "downloader middleware")


# -- spider middlewares -------------------------------------------------------------------------------------
def collect(out: Any) -> list[Any]:
    if hasattr(out, "__aiter__"):

        async def go() -> list[Any]:
            return [x async for x in out]

        return asyncio.run(go())
    return list(out)


class Tag:
    def __init__(self, tag: str) -> None:
        self.tag = tag

    def process_spider_output(self, response: Any, result: Any, spider: Any) -> Any:
        for x in result:
            yield [*x, self.tag]


class AsyncTag(Tag):
    async def process_spider_output(self, response: Any, result: Any, spider: Any) -> Any:  # type: ignore[override]
        async for x in result:
            yield [*x, self.tag]


class Universal(Tag):
    """Scrapy's "universal" middleware: a sync method and process_spider_output_async."""

    async def process_spider_output_async(self, response: Any, result: Any, spider: Any) -> Any:
        async for x in result:
            yield [*x, self.tag + "-async"]


def test_spider_output_falling_order_sync_and_async() -> None:
    chain = SpiderMiddlewares([Tag("100"), AsyncTag("200"), Tag("300")])
    # closest to the spider (highest order) first; a sync one after an async one gets the results
    assert collect(chain.spider_output(None, iter([[]]), None)) == [["300", "200", "100"]]
    sync_only = SpiderMiddlewares([Tag("1"), Tag("2")])
    out = sync_only.spider_output(None, iter([[], ["x"]]), None)
    assert not hasattr(out, "__aiter__") and list(out) == [["2", "1"], ["x", "2", "1"]]  # stays sync


def test_universal_middleware_uses_the_async_method_for_async_input() -> None:
    chain = SpiderMiddlewares([Universal("u"), AsyncTag("a")])
    assert collect(chain.spider_output(None, iter([[]]), None)) == [["a", "u-async"]]
    chain = SpiderMiddlewares([Universal("u")])
    assert collect(chain.spider_output(None, iter([[]]), None)) == [["u"]]


def test_spider_exception_first_non_none_wins_and_input_must_return_none() -> None:
    class Pass:
        def process_spider_exception(self, response: Any, exception: Exception, spider: Any) -> None:
            return None

    class Answer:
        def process_spider_exception(self, response: Any, exception: Exception, spider: Any) -> Any:
            return [{"recovered": str(exception)}]

    class BadInput:
        def process_spider_input(self, response: Any, spider: Any) -> Any:
            return "not None"

    assert SpiderMiddlewares([Answer(), Pass()]).spider_exception(None, ValueError("v"), None) == [{"recovered": "v"}]
    assert SpiderMiddlewares([Pass()]).spider_exception(None, ValueError("v"), None) is None
    with pytest.raises(InvalidOutput):
        SpiderMiddlewares([BadInput()]).spider_input(None, None)  # type: ignore[arg-type]


# -- cookie jars -------------------------------------------------------------------------------------------
def set_cookie_response(url: str, fields: list[str]) -> httpx.Response:
    return httpx.Response(200, headers=[("set-cookie", f) for f in fields], request=httpx.Request("GET", url))


def cookie_header(jars: CookieJars, key: Any, url: str) -> str:
    req = httpx.Request("GET", url)
    jars.add_header(key, req)
    return req.headers.get("cookie", "")


def test_cookie_jar_bounds_are_counted() -> None:
    stats = Stats()
    jars = CookieJars(per_domain=50, total=120, stats=stats)
    # 10,000 fields in one response: 200 parsed (4 x per_domain), 50 kept, the rest counted
    jars.extract(None, set_cookie_response("http://a.example/", [f"c{i}=v{i}" for i in range(10_000)]))
    assert cookie_header(jars, None, "http://a.example/").count("=") == 50
    assert stats["cookies_refused"] == 10_000 - 50
    # over 4096 bytes: refused; replacing an existing cookie at the domain limit: allowed
    jars.extract(None, set_cookie_response("http://a.example/", ["big=" + "x" * 5000, "c0=new"]))
    assert stats["cookies_refused"] == 10_000 - 50 + 1
    assert "c0=new" in cookie_header(jars, None, "http://a.example/")
    # the jar's total (120 here) across domains
    for host in ("b", "c", "d"):
        jars.extract(None, set_cookie_response(f"http://{host}.example/", [f"k{i}=v" for i in range(40)]))
    kept = sum(cookie_header(jars, None, f"http://{h}.example/").count("=") for h in "abcd")
    assert kept == 120 and stats["cookies_refused"] == 10_000 - 50 + 1 + 50
    # another jar is separate
    assert cookie_header(jars, "other", "http://a.example/") == ""
