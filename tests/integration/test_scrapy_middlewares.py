"""Scrapy's middlewares, meta keys, cookies, signals and CLOSESPIDER_* over kubecrawl's engine, against
real HTTP servers on 127.0.0.1 (a forward proxy among them).

The rules checked are Scrapy's documented ones (docs.scrapy.org: "Downloader Middleware", "Spider
Middleware", "Request.meta special keys", "Signals", "Extensions: CloseSpider"); docs/scrapy.md says
where kubecrawl differs.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import time
from pathlib import Path
from typing import Any

import orjson

import kubecrawl
import kubecrawl.scrapy as scrapy
from kubecrawl.runner import CrawlProcess
from kubecrawl.scrapy import signals
from kubecrawl.scrapy.exceptions import DropItem, IgnoreRequest
from kubecrawl.scrapy.http import HtmlResponse
from kubecrawl.settings import build_settings
from tests.helpers.httpserver import RequestInfo, TestHTTPServer, forward_proxy
from tests.helpers.redis_server import free_port

MOD = __name__
_RUNS = itertools.count()


async def run(
    cls: type, tmp: Path, *, settings: dict[str, Any] | None = None, **spider_args: Any
) -> tuple[list[dict[str, Any]], CrawlProcess]:
    out = tmp / f"items-{next(_RUNS)}.jsonl"  # feeds append: one file per run
    built = build_settings(
        cli={"output": out, "progress": "off", "retry_backoff": 0.01, "max_retries": 0, **(settings or {})},
        spider_settings=dict(cls.custom_settings or {}),
        environ={},
    )
    proc = CrawlProcess(cls, built, spider_args=spider_args)
    assert await proc.run() == 0
    items = [orjson.loads(line) for line in out.read_bytes().splitlines()] if out.exists() else []
    return items, proc


def hdr(r: RequestInfo, name: str, default: str = "") -> str:
    """A request header by name, whatever case the client sent it in."""
    return next((v for k, v in r.headers.items() if k.lower() == name.lower()), default)


def title_page(title: str) -> bytes:
    return f"<html><head><title>{title}</title></head><body></body></html>".encode()


def html(status: int, body: bytes, **headers: Any) -> tuple[int, dict[str, Any], bytes]:
    return status, {"Content-Type": "text/html; charset=utf-8", **headers}, body


# -- downloader middlewares ---------------------------------------------------------------------------
class TraceA:
    def process_request(self, request: Any, spider: Any) -> None:
        request.meta.setdefault("trace", []).append("A.req")
        request.headers["X-Mw"] = "set-by-A"

    def process_response(self, request: Any, response: Any, spider: Any) -> Any:
        request.meta["trace"].append("A.resp")
        return response


class TraceB:
    """Answers /canned itself, moves /old to /new, ignores /ignored*, recovers failed downloads."""

    def process_request(self, request: Any, spider: Any) -> Any:
        request.meta["trace"].append("B.req")
        if request.url.endswith("/canned"):
            return HtmlResponse(url=request.url, body=title_page("canned"), request=request)
        if request.url.endswith("/old"):
            return request.replace(url=request.url.replace("/old", "/new"), meta={})
        if "/ignored" in request.url:
            raise IgnoreRequest("not wanted")
        return None

    def process_response(self, request: Any, response: Any, spider: Any) -> Any:
        request.meta["trace"].append("B.resp")
        return response

    def process_exception(self, request: Any, exception: Exception, spider: Any) -> Any:
        request.meta["trace"].append("B.exc")
        if isinstance(exception, IgnoreRequest):
            return None  # not handled here: the errback gets it
        return HtmlResponse(url=request.url, body=title_page("recovered"), request=request)


class MiddlewareSpider(scrapy.Spider):
    name = "dmw"
    custom_settings = {
        "ROBOTSTXT_OBEY": False,
        "DOWNLOADER_MIDDLEWARES": {
            f"{MOD}.TraceB": 200,
            f"{MOD}.TraceA": 100,
            "scrapy.downloadermiddlewares.useragent.UserAgentMiddleware": None,
        },
    }

    def start_requests(self) -> Any:
        for path in self.paths:
            errback = self.on_error if path == "/ignored-errback" else None
            yield scrapy.Request(self.base + path, callback=self.parse, errback=errback)

    def parse(self, response: Any) -> Any:
        yield {
            "path": response.url.split("/", 3)[3],
            "title": response.css("title::text").get(),
            "trace": response.meta.get("trace", []),
        }

    def on_error(self, failure: Any) -> Any:
        yield {"errback": failure.request.url.rsplit("/", 1)[1], "ignored": bool(failure.check(IgnoreRequest))}


async def test_downloader_middleware_return_values(http_server: TestHTTPServer, tmp_path: Path) -> None:
    http_server.route("/echo", lambda r: html(200, title_page(hdr(r, "X-Mw", "none"))))
    http_server.route("/new", lambda _r: html(200, title_page("new")))
    dead = f"http://127.0.0.1:{free_port()}"
    paths = ["/echo", "/canned", "/old", "/ignored-errback", "/ignored-quiet"]
    items, proc = await run(MiddlewareSpider, tmp_path, base=http_server.url(""), paths=paths)
    got = {i.get("path") or i.get("errback"): i for i in items}
    full = ["A.req", "B.req", "B.resp", "A.resp"]  # process_request rising, process_response falling
    assert got["echo"] == {"path": "echo", "title": "set-by-A", "trace": full}
    assert got["canned"] == {"path": "canned", "title": "canned", "trace": full}  # every process_response ran
    assert "/canned" not in http_server.paths()  # a Response from process_request: no download
    assert got["new"]["title"] == "new" and "/old" not in http_server.paths()  # a Request: rescheduled
    assert proc.stats["rescheduled"] == 1
    assert got["ignored-errback"] == {"errback": "ignored-errback", "ignored": True}
    assert proc.stats["ignored"] == 2  # the one without an errback is counted, not an error
    assert proc.stats["errors"] == 0
    # a failed download: process_exception's Response goes through the process_response chain
    items, proc = await run(MiddlewareSpider, tmp_path, base=dead, paths=["/x"])
    assert items == [{"path": "x", "title": "recovered", "trace": ["A.req", "B.req", "B.exc", "B.resp", "A.resp"]}]


# -- spider middlewares -------------------------------------------------------------------------------
class SyncOut:
    def process_spider_output(self, response: Any, result: Any, spider: Any) -> Any:
        for x in result:
            if isinstance(x, dict):
                x["chain"] = [*x.get("chain", []), "sync100"]
                yield x
            elif "/skip" not in x.url:
                yield x


class AsyncOut:
    async def process_spider_output(self, response: Any, result: Any, spider: Any) -> Any:
        async for x in result:
            if isinstance(x, dict):
                x["chain"] = [*x.get("chain", []), "async200"]
            yield x

    async def process_start(self, start: Any) -> Any:
        async for r in start:
            yield r
        yield scrapy.Request(self.extra)  # type: ignore[attr-defined]

    @classmethod
    def from_crawler(cls, crawler: Any) -> AsyncOut:
        mw = cls()
        mw.extra = crawler.settings.get("SPIDER_MODULES")[0]  # type: ignore[attr-defined]
        return mw


class InputCheck:
    def process_spider_input(self, response: Any, spider: Any) -> None:
        if response.url.endswith("/bad"):
            raise ValueError("refused by process_spider_input")

    def process_spider_exception(self, response: Any, exception: Exception, spider: Any) -> Any:
        return [{"path": response.url.rsplit("/", 1)[1], "recovered": type(exception).__name__}]


class SpiderMwSpider(scrapy.Spider):
    name = "smw"
    custom_settings = {
        "ROBOTSTXT_OBEY": False,
        "SPIDER_MIDDLEWARES": {f"{MOD}.SyncOut": 100, f"{MOD}.AsyncOut": 200, f"{MOD}.InputCheck": 300},
    }

    def parse(self, response: Any) -> Any:
        name = response.url.rsplit("/", 1)[1]
        if name == "boom":
            raise KeyError("boom")
        yield {"path": name}
        if name == "p1":
            yield response.follow("/skip")
            yield response.follow("/p2")


async def test_spider_middleware_chains(http_server: TestHTTPServer, tmp_path: Path) -> None:
    for p in ("p1", "p2", "skip", "bad", "boom", "extra"):
        http_server.html(f"/{p}", title_page(p))
    items, proc = await run(
        SpiderMwSpider,
        tmp_path,
        settings={"SPIDER_MODULES": [http_server.url("/extra")]},
        start_urls=[http_server.url("/p1"), http_server.url("/bad"), http_server.url("/boom")],
    )
    by = {i["path"]: i for i in items}
    assert by["p1"]["chain"] == ["async200", "sync100"]  # process_spider_output falling: closest to the spider first
    assert by["p2"]["chain"] == ["async200", "sync100"]
    assert by["extra"]["chain"] == ["async200", "sync100"]  # process_start added it
    assert "/skip" not in http_server.paths()
    assert by["bad"] == {"path": "bad", "recovered": "ValueError"}  # process_spider_input -> exception chain
    assert by["boom"] == {"path": "boom", "recovered": "KeyError"}  # callback exception -> exception chain
    assert proc.stats["errors"] == 0


# -- meta keys ------------------------------------------------------------------------------------------
class MetaSpider(scrapy.Spider):
    name = "meta"
    custom_settings = {"ROBOTSTXT_OBEY": False, "DOWNLOAD_TIMEOUT": 60}

    def start_requests(self) -> Any:
        b = self.base
        yield scrapy.Request(b + "/redir", meta={"dont_redirect": True, "handle_httpstatus_list": [302]})
        yield scrapy.Request(b + "/redir2", meta={"handle_httpstatus_list": [302]})
        yield scrapy.Request(b + "/redir3")
        yield scrapy.Request(b + "/flaky", meta={"dont_retry": True, "handle_httpstatus_list": [503]})
        yield scrapy.Request(b + "/flaky2", meta={"max_retry_times": 2}, errback=self.failed)
        yield scrapy.Request(b + "/missing", meta={"handle_httpstatus_all": True})
        yield scrapy.Request(b + "/slow", meta={"download_timeout": 0.3}, errback=self.failed)
        yield scrapy.Request(b + "/auth", meta={"http_user": "ann", "http_pass": "s3cret"})
        yield scrapy.Request(b + "/auth", meta={"http_user": "ann", "http_pass": "wrong"}, dont_filter=True)
        yield scrapy.Request(b + "/refresh")
        yield scrapy.Request(b + "/refresh-later")
        yield scrapy.Request(b + "/refresh-no", meta={"dont_redirect": True})
        yield scrapy.Request(self.via_proxy, meta={"proxy": self.proxy})

    def parse(self, response: Any) -> Any:
        yield {
            "url": response.url.split("/", 3)[3],
            "status": response.status,
            "title": response.css("title::text").get(),
            "from": [u.split("/", 3)[3] for u in response.meta.get("redirect_urls", [])],
            "via": response.headers.get("Via", b"").decode(),
        }

    def failed(self, failure: Any) -> Any:
        yield {"failed": failure.request.url.split("/", 3)[3], "kind": failure.value.kind}


async def test_meta_keys(http_server: TestHTTPServer, make_http_server: Any, tmp_path: Path) -> None:
    s = http_server
    for p in ("/redir", "/redir2", "/redir3"):
        s.route(p, lambda _r: (302, {"Location": "/target"}, b""))
    s.route("/target", lambda _r: html(200, title_page("target")))
    s.route("/flaky", lambda _r: html(503, title_page("busy")))
    s.route("/flaky2", lambda _r: html(503, title_page("busy")))
    s.route("/missing", lambda _r: html(404, title_page("missing")))

    def slow(_r: RequestInfo) -> Any:
        time.sleep(2)
        return html(200, title_page("slow"))

    s.route("/slow", slow)
    good = "Basic " + base64.b64encode(b"ann:s3cret").decode()
    s.route("/auth", lambda r: html(200, title_page("in" if hdr(r, "Authorization") == good else "out")))
    refresh = '<html><head><meta http-equiv="Refresh" content="{d}; url={u}"></head><body>wait</body></html>'
    s.html("/refresh", refresh.format(d=0, u="/refreshed"))
    s.html("/refresh-later", refresh.format(d=500, u="/never"))
    s.html("/refresh-no", refresh.format(d=0, u="/never"))
    s.html("/refreshed", title_page("refreshed"))
    origin = make_http_server("127.0.0.2")
    origin.html("/proxied", title_page("proxied"))
    proxy = forward_proxy(make_http_server("127.0.0.3"))
    items, proc = await run(MetaSpider, tmp_path, base=s.url(""), via_proxy=origin.url("/proxied"), proxy=proxy.url(""))
    by = {i.get("url") or i.get("failed"): i for i in items}
    assert by["redir"]["status"] == 302 and by["redir2"]["status"] == 302  # not followed
    assert by["target"]["from"] == ["redir3"]
    assert s.hits["/target"] == 1
    assert by["flaky"]["status"] == 503 and s.hits["/flaky"] == 1  # dont_retry: the response itself
    assert by["flaky2"] == {"failed": "flaky2", "kind": "http_503"} and s.hits["/flaky2"] == 3  # 1 + 2 retries
    assert by["missing"]["status"] == 404
    assert by["slow"] == {"failed": "slow", "kind": "timeout"}
    assert sorted(i["title"] for i in items if i.get("url") == "auth") == ["in", "out"]
    assert by["refreshed"]["from"] == ["refresh"] and proc.stats["meta_refresh"] == 1
    assert by["refresh-later"]["title"] is None and by["refresh-no"]["title"] is None  # kept, not followed
    assert "/never" not in s.paths()
    assert by["proxied"]["title"] == "proxied" and by["proxied"]["via"] == "1.1 test-proxy"
    assert proxy.paths() == [origin.url("/proxied")]  # the proxy was asked for the absolute URL


class ProxiedSpider(scrapy.Spider):
    name = "proxied"
    custom_settings = {"ROBOTSTXT_OBEY": False}

    def start_requests(self) -> Any:
        yield scrapy.Request(self.target, meta={"proxy": self.proxy}, errback=self.failed)
        yield scrapy.Request(self.refresh, errback=self.failed)

    def parse(self, response: Any) -> Any:
        yield {"url": response.url}

    def failed(self, failure: Any) -> Any:
        yield {"failed": failure.request.url, "kind": failure.value.kind}


async def test_ssrf_guard_covers_proxies_and_meta_refresh(make_http_server: Any, tmp_path: Path) -> None:
    allowed = make_http_server("127.0.0.1")
    internal = make_http_server("127.0.0.2")
    internal.html("/secret", title_page("secret"))
    proxy = forward_proxy(make_http_server("127.0.0.3"))
    allowed.html("/ok", title_page("ok"))
    allowed.html("/refresh", f'<meta http-equiv="refresh" content="0;url={internal.url("/secret")}">')
    items, proc = await run(
        ProxiedSpider,
        tmp_path,
        settings={"ssrf_guard": "on", "ssrf_allow": "127.0.0.1/32"},
        target=allowed.url("/ok"),
        proxy=proxy.url(""),
        refresh=allowed.url("/refresh"),
    )
    kinds = sorted(i["kind"] for i in items if "failed" in i)
    assert kinds == ["ssrf_refused", "ssrf_refused"]  # the proxy, and the meta-refresh hop to 127.0.0.2
    assert proxy.paths() == [] and internal.paths() == []
    assert proc.stats["meta_refresh"] == 1


# -- cookies --------------------------------------------------------------------------------------------
def login_site(s: TestHTTPServer) -> None:
    def login(r: RequestInfo) -> Any:
        user = r.body.decode().partition("user=")[2] or "nobody"
        return 302, {"Location": "/account", "Set-Cookie": f"session={user}; Path=/; HttpOnly"}, b""

    def account(r: RequestInfo) -> Any:
        cookie = hdr(r, "Cookie")
        if "session=" not in cookie:
            return 302, {"Location": "/login-page"}, b""
        user = cookie.split("session=", 1)[1].split(";")[0]
        nxt = '<a href="/account/orders">orders</a>' if r.path == "/account" else ""
        return html(200, f"<title>{user}</title>{nxt}".encode())

    s.route("/login", login)
    s.route("/account", account)
    s.route("/account/orders", account)
    s.html("/login-page", title_page("please log in"))


class LoginSpider(scrapy.Spider):
    name = "login"
    custom_settings = {"ROBOTSTXT_OBEY": False}

    def start_requests(self) -> Any:
        for jar, user in ((None, "default"), ("a", "alice"), ("b", "bob")):
            meta = {} if jar is None else {"cookiejar": jar}
            yield scrapy.FormRequest(self.base + "/login", formdata={"user": user}, meta=meta, dont_filter=True)

    def parse(self, response: Any) -> Any:
        jar = response.meta.get("cookiejar")
        yield {"jar": jar, "page": response.url.split("/", 3)[3], "user": response.css("title::text").get()}
        for href in response.css("a::attr(href)").getall():
            yield response.follow(href, meta={"cookiejar": jar} if jar else {}, dont_filter=True)
        if response.url.endswith("/orders") and jar == "a":
            yield response.follow("/account", meta={"cookiejar": "a", "dont_merge_cookies": True}, dont_filter=True)


async def test_login_flow_with_cookie_jars(http_server: TestHTTPServer, tmp_path: Path) -> None:
    login_site(http_server)
    items, proc = await run(LoginSpider, tmp_path, base=http_server.url(""))
    got = sorted((str(i["jar"]), i["page"], i["user"]) for i in items)
    assert got == [
        ("None", "account", "default"),
        ("None", "account/orders", "default"),
        ("a", "account", "alice"),
        ("a", "account/orders", "alice"),
        ("a", "login-page", "please log in"),  # dont_merge_cookies: sent without the jar's session
        ("b", "account", "bob"),
        ("b", "account/orders", "bob"),
    ]
    assert proc.stats["errors"] == 0


class CookieFlood(scrapy.Spider):
    name = "flood"
    custom_settings = {"ROBOTSTXT_OBEY": False}

    def parse(self, response: Any) -> Any:
        yield {"page": response.url.rsplit("/", 1)[1], "cookie": response.css("title::text").get()}
        if response.url.endswith("/flood"):
            yield response.follow("/echo")


async def test_cookie_bounds(http_server: TestHTTPServer, tmp_path: Path) -> None:
    # 120 fields (aiohttp reads at most 128 header fields) and one cookie over RFC 6265's 4096 bytes
    many = [f"c{i}=v{i}; Path=/" for i in range(120)] + ["huge=" + "x" * 5000 + "; Path=/"]
    http_server.route("/flood", lambda _r: html(200, title_page("flood"), **{"Set-Cookie": many}))
    http_server.route("/echo", lambda r: html(200, title_page(str(hdr(r, "Cookie").count("=")))))
    items, proc = await run(CookieFlood, tmp_path, start_urls=[http_server.url("/flood")])
    assert {i["page"]: i["cookie"] for i in items} == {"flood": "flood", "echo": "50"}  # 50 per domain kept
    assert proc.stats["cookies_refused"] == 121 - 50
    assert proc.stats["errors"] == 0
    assert proc.stats.summary()["cookies_refused"] == 121 - 50


async def test_ten_thousand_set_cookie_fields(http_server: TestHTTPServer, tmp_path: Path) -> None:
    flood = [f"c{i}=v{i}; Path=/" for i in range(10_000)]
    http_server.route("/flood", lambda _r: html(200, title_page("flood"), **{"Set-Cookie": flood}))
    # both transports bound a response's header block (aiohttp: 128 fields, h11: 16 KiB): the page
    # fails with a counted kind, once (the same answer would come back), and nothing is internal
    for transport in ("aiohttp", "httpx"):
        items, proc = await run(
            CookieFlood, tmp_path, settings={"http_transport": transport}, start_urls=[http_server.url("/flood")]
        )
        assert items == [] and proc.stats["error:headers_too_large"] == 1
        assert proc.stats["errors"] == 1 and proc.stats["retries"] == 0
    assert http_server.hits["/flood"] == 2


# -- signals ---------------------------------------------------------------------------------------------
class DropOdd:
    def process_item(self, item: dict[str, Any], spider: Any) -> Any:
        if item["n"] % 2:
            raise DropItem("odd")
        return item


class SignalSpider(scrapy.Spider):
    name = "signals"
    custom_settings = {"ROBOTSTXT_OBEY": False, "ITEM_PIPELINES": {f"{MOD}.DropOdd": 100}}

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> Any:
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.seen = []
        for name in ("spider_opened", "spider_closed", "item_scraped", "item_dropped", "request_dropped"):
            crawler.signals.connect(spider.record(name), signal=getattr(signals, name))
        crawler.signals.connect(spider.on_response, signal=signals.response_received)
        crawler.signals.connect(spider.on_scheduled, signal=signals.request_scheduled)
        return spider

    def record(self, name: str) -> Any:
        async def handler(**kw: Any) -> None:
            what = kw.get("reason") or (kw["item"]["n"] if "item" in kw else None) or kw.get("request")
            if isinstance(what, kubecrawl.Request):
                what = what.url.rsplit("/", 1)[1]
            if name == "item_dropped":
                what = (what, str(kw["exception"]))
            self.seen.append((name, what))

        return handler

    def on_response(self, response: Any, request: Any, spider: Any) -> None:
        self.seen.append(("response_received", response.url.rsplit("/", 1)[1]))

    def on_scheduled(self, request: Any, spider: Any) -> None:
        self.seen.append(("request_scheduled", request.url.rsplit("/", 1)[1]))

    def parse(self, response: Any) -> Any:
        n = int(response.url.rsplit("/", 1)[1])
        yield {"n": n}
        yield response.follow(f"/{n + 1}" if n < 3 else "/2")  # /3 links back to /2: a known duplicate


async def test_signals(http_server: TestHTTPServer, tmp_path: Path) -> None:
    for n in range(1, 4):
        http_server.html(f"/{n}", title_page(str(n)))
    items, proc = await run(SignalSpider, tmp_path, settings={"concurrency": 1}, start_urls=[http_server.url("/1")])
    seen = proc.spider.seen  # type: ignore[attr-defined]
    assert seen[0] == ("spider_opened", None) and seen[-1] == ("spider_closed", "finished")
    kinds = sorted(x for x in seen[1:-1])
    assert (
        ("item_scraped", 2) in kinds and ("item_dropped", (1, "odd")) in kinds and ("item_dropped", (3, "odd")) in kinds
    )
    assert sorted(x[1] for x in kinds if x[0] == "response_received") == ["1", "2", "3"]
    assert [x[1] for x in kinds if x[0] == "request_scheduled"] == ["2", "3"]  # the start request is a seed
    assert [x[1] for x in kinds if x[0] == "request_dropped"] == ["2"]
    assert [i["n"] for i in items] == [2]


# -- CLOSESPIDER_* -----------------------------------------------------------------------------------------
class Chain(scrapy.Spider):
    name = "chain"
    custom_settings = {"ROBOTSTXT_OBEY": False, "CONCURRENT_REQUESTS": 1}

    def parse(self, response: Any) -> Any:
        n = int(response.url.rsplit("/", 1)[1])
        yield {"n": n}
        yield response.follow(f"/c/{n + 1}")

    def closed(self, reason: str) -> None:
        self.reason = reason


async def test_closespider_limits(http_server: TestHTTPServer, tmp_path: Path) -> None:
    def page(r: RequestInfo) -> Any:
        n = int(r.path.rsplit("/", 1)[1])
        if n >= 40:
            return html(404, title_page("gone"))
        if n >= 20:
            time.sleep(0.05)
        return html(200, title_page(str(n)))

    http_server.fallback = page
    start = [http_server.url("/c/0")]
    cases = [
        ({"CLOSESPIDER_ITEMCOUNT": 5}, "max_items"),
        ({"CLOSESPIDER_PAGECOUNT": 7}, "max_pages"),
        ({"CLOSESPIDER_ERRORCOUNT": 1}, "max_errors"),
        ({"CLOSESPIDER_TIMEOUT": 0.5}, "max_seconds"),
    ]
    for limit, reason in cases:
        _, proc = await run(Chain, tmp_path, settings=limit, start_urls=start)
        assert proc.spider.reason == reason  # type: ignore[attr-defined]
        assert proc.stats.summary()["finish_reason"] == reason
        if reason == "max_items":
            assert proc.stats["items"] == 5  # one request at a time: it stops at exactly the count
        if reason == "max_pages":
            assert proc.stats["pages"] == 7
        if reason == "max_errors":
            assert proc.stats["pages"] == 41 and proc.stats["error:http_404"] == 1
        if reason == "max_seconds":
            assert proc.stats["pages"] < 41  # stopped before the chain's end at /c/40


# -- AutoThrottle -------------------------------------------------------------------------------------------
async def test_autothrottle_spaces_requests_per_slot(http_server: TestHTTPServer, tmp_path: Path) -> None:
    for n in range(6):
        http_server.html(f"/c/{n}", title_page(str(n)))
    settings = {"AUTOTHROTTLE_ENABLED": True, "AUTOTHROTTLE_START_DELAY": 0.2, "AUTOTHROTTLE_MAX_DELAY": 0.3}
    start = [http_server.url("/c/0")]
    _, proc = await run(Chain, tmp_path, settings={**settings, "CONCURRENT_REQUESTS": 6}, start_urls=start)
    throttle = proc.hooks.throttle
    assert throttle is not None
    delay = throttle.delays["127.0.0.1"]
    assert 0 <= delay <= 0.3
    # the server records a request once its reply is written: the last one may land just after the crawl ended
    deadline = time.monotonic() + 30
    while len([p for p, _, _ in http_server.timeline if p.startswith("/c/")]) < 7 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    starts = sorted(t0 for path, t0, _ in http_server.timeline if path.startswith("/c/"))
    assert len(starts) == 7  # /c/0../c/5 and the 404 of /c/6
    # the first answer moved the slot's delay halfway from the 0.2 s start delay toward the (tiny) latency:
    # the store spaced the next request by at least that, measured from the answer
    assert starts[1] - starts[0] >= 0.1


class PlainSpider(kubecrawl.Spider):
    name = "plain"

    def parse(self, response: Any) -> Any:
        yield {"url": response.url.rsplit("/", 1)[1]}


async def test_meta_refresh_is_opt_in_for_kubecrawl_spiders(http_server: TestHTTPServer, tmp_path: Path) -> None:
    http_server.html("/r", '<html><head><META HTTP-EQUIV="refresh" content="1;URL=\'/landing\'"></head></html>')
    http_server.html("/landing", title_page("landing"))
    for setting, expected in ((None, ["r"]), (True, ["landing"])):
        out = tmp_path / f"plain-{setting}.jsonl"
        cli: dict[str, Any] = {"output": out, "progress": "off", "obey_robots": False}
        if setting is not None:
            cli["meta_refresh"] = setting
        proc = CrawlProcess(PlainSpider(start_urls=[http_server.url("/r")]), build_settings(cli=cli, environ={}))
        assert await proc.run() == 0
        assert [orjson.loads(line)["url"] for line in out.read_bytes().splitlines()] == expected


class AuthSpider(scrapy.Spider):
    name = "auth"
    custom_settings = {"ROBOTSTXT_OBEY": False}
    http_user = "ann"
    http_pass = "s3cret"

    def parse(self, response: Any) -> Any:
        yield {"host": response.url.split("/")[2].split(":")[0], "title": response.css("title::text").get()}
        if "127.0.0.1" in response.url:
            yield scrapy.Request(self.other)


async def test_spider_http_auth_goes_to_the_first_requests_host_only(make_http_server: Any, tmp_path: Path) -> None:
    good = "Basic " + base64.b64encode(b"ann:s3cret").decode()
    first, other = make_http_server("127.0.0.1"), make_http_server("127.0.0.2")
    for server in (first, other):
        server.route("/", lambda r: html(200, title_page("in" if hdr(r, "Authorization") == good else "out")))
    items, _ = await run(AuthSpider, tmp_path, start_urls=[first.url("/")], other=other.url("/"))
    # Scrapy's HttpAuthMiddleware without http_auth_domain: the first request's domain only
    assert sorted((i["host"], i["title"]) for i in items) == [("127.0.0.1", "in"), ("127.0.0.2", "out")]
