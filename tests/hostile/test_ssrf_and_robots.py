"""Issue 20, items 2 and 3: SSRF guard bypasses and robots.txt without limits.

The "internal" server listens on 127.0.0.2 (another loopback address, so the guard refuses it) and
the "public" one on 127.0.0.1, which the tests allow-list. Each test's witness is the internal server's
request log: it must stay empty.
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kubecrawl import Response, Spider
from tests.helpers.crawl import crawl
from tests.helpers.httpserver import RequestInfo, TestHTTPServer

DEADLINE = 120
PUBLIC = "127.0.0.1/32"


class Titles(Spider):
    name = "titles"

    async def parse(self, response: Response):
        yield {"url": response.url, "title": response.css("title::text").get()}
        for req in response.follow_all(css="a"):
            yield req


@pytest.fixture
def internal(make_http_server: Callable[..., TestHTTPServer]) -> TestHTTPServer:
    server = make_http_server("127.0.0.2")
    server.html("/secret", "<title>metadata secrets</title>")
    server.html("/robots.txt", "User-agent: *\nAllow: /\n", content_type="text/plain")
    return server


def _forms(internal: TestHTTPServer) -> list[str]:
    """The internal server's address as hosts a page can spell it."""
    port = internal.port
    return [
        f"http://127。0。0。2:{port}/secret",  # U+3002 ideographic full stops (IDNA maps them to dots)
        f"http://127．0．0．2:{port}/secret",  # U+FF0E full-width full stops
        f"http://１２７.０.０.２:{port}/secret",  # full-width digits
        f"http://0x7f.0.0.2:{port}/secret",  # hexadecimal IPv4 part
        f"http://2130706434:{port}/secret",  # IPv4 as one number
        f"http://0177.0.0.02:{port}/secret",  # octal parts
        f"http://[::ffff:127.0.0.2]:{port}/secret",  # IPv4-mapped IPv6
    ]


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_internal_address_in_any_spelling_is_refused_as_start_url(
    internal: TestHTTPServer, transport: str
) -> None:
    urls = _forms(internal)
    stats, _ = await asyncio.wait_for(
        crawl(Titles(start_urls=urls), ssrf_guard="on", http_transport=transport, obey_robots=False), DEADLINE
    )
    assert internal.log == []
    kinds = stats.summary()["errors_by_kind"]
    assert set(kinds) <= {"ssrf_refused", "bad_url"}, kinds  # bad_url: a spelling httpx cannot send as given
    # the rest are one URL by the URL Standard, so later spellings are duplicates of the first
    assert kinds.get("ssrf_refused", 0) + kinds.get("bad_url", 0) + stats["filtered"] == len(urls)
    assert kinds["ssrf_refused"] >= 2
    assert stats["retries"] == 0  # a refusal is final, never retried


async def test_internal_address_linked_from_an_allowed_page_is_refused(
    http_server: TestHTTPServer, internal: TestHTTPServer
) -> None:
    links = "".join(f'<a href="{u}">x</a>' for u in _forms(internal))
    http_server.html("/", f"<title>public</title>{links}")
    stats, _ = await asyncio.wait_for(
        crawl(Titles(start_urls=[http_server.url("/")]), ssrf_guard="on", ssrf_allow=PUBLIC), DEADLINE
    )
    assert internal.log == []
    assert stats["items"] == 1
    # link resolution normalises the spellings (URL Standard) to two URLs: IPv4 and IPv4-mapped IPv6
    assert stats.summary()["errors_by_kind"] == {"ssrf_refused": 2}


async def test_robots_txt_redirecting_to_an_internal_address_is_not_followed(
    http_server: TestHTTPServer, internal: TestHTTPServer
) -> None:
    http_server.route(
        "/robots.txt", lambda _r: (302, {"Location": f"http://127.0.0.2:{internal.port}/robots.txt"}, b"")
    )
    http_server.html("/", "<title>public</title>")
    stats, _ = await asyncio.wait_for(
        crawl(Titles(start_urls=[http_server.url("/")]), ssrf_guard="on", ssrf_allow=PUBLIC), DEADLINE
    )
    assert internal.log == []
    assert stats["items"] == 1 and stats["errors"] == 0


async def test_with_a_proxy_the_target_is_still_checked(http_server: TestHTTPServer, internal: TestHTTPServer) -> None:
    proxied: list[str] = []

    def proxy(req: RequestInfo) -> Any:
        proxied.append(req.path)
        return 200, {"Content-Type": "text/html"}, b"<title>via proxy</title>"

    http_server.fallback = proxy
    targets = [f"http://127.0.0.2:{internal.port}/secret", f"http://localhost.:{internal.port}/secret"]
    stats, _ = await asyncio.wait_for(
        crawl(
            Titles(start_urls=targets),
            ssrf_guard="on",
            ssrf_allow=PUBLIC,
            proxy=http_server.url(),
            obey_robots=False,
        ),
        DEADLINE,
    )
    assert proxied == [] and internal.log == []
    assert stats.summary()["errors_by_kind"] == {"ssrf_refused": 2}


# -- robots.txt limits ------------------------------------------------------------------------------------


def _endless() -> Iterator[bytes]:
    line = b"Disallow: /nothing-here-" + b"x" * 200 + b"\n"
    yield b"User-agent: *\nDisallow: /private\n"
    for _ in itertools.count():
        yield line * 50


async def test_endless_robots_txt_is_read_to_500_kib_and_obeyed(http_server: TestHTTPServer) -> None:
    http_server.route("/robots.txt", lambda _r: (200, {"Content-Type": "text/plain"}, _endless()))
    http_server.html("/", '<title>home</title><a href="/private/x">p</a><a href="/open">o</a>')
    http_server.html("/open", "<title>open</title>")
    http_server.html("/private/x", "<title>private</title>")
    tracemalloc.start()
    try:
        stats, _ = await asyncio.wait_for(crawl(Titles(start_urls=[http_server.url("/")])), DEADLINE)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "/private/x" not in http_server.paths()
    assert stats["items"] == 2 and stats["robots_denied"] == 1
    assert peak < 32 << 20, f"peak {peak >> 20} MiB reading an endless robots.txt"


async def test_double_gzip_robots_txt_bomb_stays_bounded(http_server: TestHTTPServer) -> None:
    bomb = gzip.compress(gzip.compress(b"\0" * (64 << 20), 9), 9)
    http_server.route("/robots.txt", lambda _r: (200, {"Content-Encoding": "gzip, gzip"}, bomb))
    http_server.html("/", "<title>home</title>")
    tracemalloc.start()
    try:
        stats, _ = await asyncio.wait_for(crawl(Titles(start_urls=[http_server.url("/")])), DEADLINE)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert stats["items"] == 1
    assert peak < 32 << 20, f"peak {peak >> 20} MiB decoding a {len(bomb)}-byte robots.txt"


async def test_trickling_robots_txt_does_not_hold_the_crawl(http_server: TestHTTPServer) -> None:
    def trickle() -> Iterator[bytes]:
        for _ in range(600):
            time.sleep(1.0)
            yield b"#"

    http_server.route("/robots.txt", lambda _r: (200, {"Content-Type": "text/plain"}, trickle()))
    http_server.html("/", "<title>home</title>")
    stats, _ = await asyncio.wait_for(
        crawl(Titles(start_urls=[http_server.url("/")]), download_timeout=1.5, max_retries=1), DEADLINE
    )
    # RFC 9309: unreachable robots.txt means "disallow for now": the page is retried, then counted
    assert http_server.paths().count("/") == 0
    assert stats.summary()["errors_by_kind"] == {"robots_unavailable": 1}
    assert stats["retry:robots_unavailable"] == 1


async def test_robots_txt_5xx_then_ok_delays_the_pages_and_loses_none(http_server: TestHTTPServer) -> None:
    def robots(req: RequestInfo) -> Any:
        if req.hits <= 2:
            return 503, {"Content-Type": "text/plain"}, b"busy"
        return 200, {"Content-Type": "text/plain"}, b"User-agent: *\nDisallow: /private\n"

    http_server.route("/robots.txt", robots)
    http_server.html("/", '<title>home</title><a href="/private/x">p</a><a href="/open">o</a>')
    http_server.html("/open", "<title>open</title>")
    http_server.html("/private/x", "<title>private</title>")
    stats, _ = await asyncio.wait_for(
        crawl(Titles(start_urls=[http_server.url("/")]), retry_backoff=0.01, max_retries=3), DEADLINE
    )
    assert sorted(p for p in http_server.paths() if p != "/robots.txt") == ["/", "/open"]
    assert stats["items"] == 2 and stats["robots_denied"] == 1 and stats["errors"] == 0
    assert stats["retry:robots_unavailable"] == 2


async def test_robots_txt_4xx_allows_everything(http_server: TestHTTPServer) -> None:
    http_server.route("/robots.txt", lambda _r: (403, {}, b"no"))
    http_server.html("/", "<title>home</title>")
    stats, _ = await asyncio.wait_for(crawl(Titles(start_urls=[http_server.url("/")])), DEADLINE)
    assert stats["items"] == 1
