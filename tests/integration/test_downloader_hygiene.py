"""The downloader at its boundary, against real servers on 127.0.0.1 whose request logs are the witness.

Redirect hygiene (credentials never cross origins; a redirect that turns into a GET carries no body),
compressed bodies (gzip, deflate, br, zstd, each served correctly and corrupt), the scheme guard, and
the one error table that turns transport errors into ``DownloadError`` kinds, on both transports.
The redirect loop of :func:`follow` is the scraper's: a ``Redirected`` request is fetched next.
"""

from __future__ import annotations

import functools
import gzip
import socket
import subprocess
import sys
import threading
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import brotli
import pytest
import zstandard

import kubecrawl
from kubecrawl import downloader as downloader_module
from kubecrawl.compression import DECODERS
from kubecrawl.downloader import ACCEPT_ENCODING, Downloader, DownloadError, Redirected
from kubecrawl.request import Request
from kubecrawl.response import Response
from kubecrawl.settings import Settings
from tests.helpers.httpserver import RequestInfo, TestHTTPServer

TRANSPORTS = ["aiohttp", "httpx"]
CREDENTIALS = {
    "Authorization": "Bearer secret-token",
    "Cookie": "session=spider-set",
    "Proxy-Authorization": "Basic cHJveHk6cHc=",
}


@pytest.fixture(params=TRANSPORTS)
async def make_downloader(request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Downloader]]:
    made: list[Downloader] = []

    def make(**overrides: Any) -> Downloader:
        values: dict[str, Any] = {"obey_robots": False, "retry_backoff": 0.0, "http_transport": request.param}
        values.update(overrides)
        d = Downloader(Settings(**values))
        made.append(d)
        return d

    yield make
    for d in made:
        await d.close()


class Witness:
    """A route that records what arrived (method, lower-cased headers, body) and answers 200."""

    def __init__(self) -> None:
        self.seen: list[RequestInfo] = []
        self._lock = threading.Lock()

    def __call__(self, req: RequestInfo) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            req.headers = {k.lower(): v for k, v in req.headers.items()}
            self.seen.append(req)
        return 200, {"Content-Type": "text/plain"}, b"landed"

    @property
    def only(self) -> RequestInfo:
        assert len(self.seen) == 1, [r.path for r in self.seen]
        return self.seen[0]


def redirect_to(location: Callable[[], str], status: int = 302) -> Callable[[RequestInfo], Any]:
    return lambda _req: (status, {"Location": location()}, b"")


async def follow(d: Downloader, request: Request, hops: int = 5) -> tuple[Response, list[Request]]:
    """Fetch as the scraper does: a Redirected request is the next one fetched."""
    chain = [request]
    for _ in range(hops):
        try:
            return await d.fetch(chain[-1]), chain
        except Redirected as redirect:
            chain.append(redirect.request)
    raise AssertionError(f"more than {hops} hops: {chain}")


# -- redirect hygiene ---------------------------------------------------------------------------
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_cross_origin_redirect_drops_credentials_and_keeps_the_rest(
    make_http_server: Callable[[], TestHTTPServer], make_downloader: Callable[..., Downloader], status: int
) -> None:
    origin_a, origin_b = make_http_server(), make_http_server()  # two ports: two origins
    landing = Witness()
    origin_b.route("/land", landing)
    start = Witness()
    origin_a.route("/start", lambda req: (start(req), redirect_to(lambda: origin_b.url("/land"), status)(req))[1])
    d = make_downloader()
    headers = {**CREDENTIALS, "X-Spider": "kept", "Accept-Language": "de"}
    resp, chain = await follow(d, Request(origin_a.url("/start"), headers=headers))

    assert resp.status == 200 and resp.url == origin_b.url("/land")
    sent = start.only.headers
    assert {k: sent[k.lower()] for k in CREDENTIALS} == CREDENTIALS  # origin A got them
    got = landing.only.headers
    assert not {k.lower() for k in CREDENTIALS} & set(got), got  # origin B got none of them
    assert got["x-spider"] == "kept" and got["accept-language"] == "de"
    assert got["host"] == f"127.0.0.1:{origin_b.port}"
    assert chain[-1].meta["redirect_urls"] == [origin_a.url("/start")]


async def test_same_origin_redirect_keeps_credentials(
    http_server: TestHTTPServer, make_downloader: Callable[..., Downloader]
) -> None:
    landing = Witness()
    http_server.route("/land", landing)
    http_server.route("/start", redirect_to(lambda: "/land", 301))
    d = make_downloader()
    await follow(d, Request(http_server.url("/start"), headers=CREDENTIALS))
    got = landing.only.headers
    assert {k: got[k.lower()] for k in CREDENTIALS} == CREDENTIALS


async def test_another_host_name_on_the_same_port_is_another_origin(
    http_server: TestHTTPServer, make_downloader: Callable[..., Downloader]
) -> None:
    """127.0.0.1 -> localhost: one server, one port, but a different host, so a different origin."""
    landing = Witness()
    http_server.route("/land", landing)
    http_server.route("/start", redirect_to(lambda: f"http://localhost:{http_server.port}/land"))
    d = make_downloader()
    try:
        resp, _ = await follow(d, Request(http_server.url("/start"), headers=CREDENTIALS))
    except DownloadError as exc:  # localhost resolving to ::1 only: nothing listens there
        pytest.fail(f"localhost did not reach the 127.0.0.1 server: {exc}")
    assert resp.status == 200
    assert not {k.lower() for k in CREDENTIALS} & set(landing.only.headers)


async def test_cookie_jar_still_serves_its_own_cookies_after_a_cross_origin_hop(
    make_http_server: Callable[[], TestHTTPServer], make_downloader: Callable[..., Downloader]
) -> None:
    """Only the spider's explicit Cookie header is dropped; the jar keeps sending each origin its own."""
    origin_a, origin_b = make_http_server(), make_http_server()
    landing_b, back_on_a = Witness(), Witness()
    origin_a.route("/login", lambda _r: (200, {"Set-Cookie": "jar=a-cookie; Path=/"}, b"ok"))
    # cookies are scoped by host, not port: origin B must be another host name for the jar
    origin_a.route("/start", redirect_to(lambda: f"http://localhost:{origin_b.port}/land"))
    origin_a.route("/again", back_on_a)
    origin_b.route("/land", landing_b)
    d = make_downloader()
    await d.fetch(Request(origin_a.url("/login")))
    await follow(d, Request(origin_a.url("/start"), headers={"Cookie": "explicit=1"}))
    await d.fetch(Request(origin_a.url("/again")))
    assert "cookie" not in landing_b.only.headers
    assert back_on_a.only.headers["cookie"] == "jar=a-cookie"


@pytest.mark.parametrize(
    ("status", "method", "expected_method", "body_kept"),
    [
        (301, "POST", "GET", False),
        (302, "POST", "GET", False),
        (303, "POST", "GET", False),
        (303, "PUT", "GET", False),
        (307, "POST", "POST", True),
        (308, "POST", "POST", True),
        (302, "PUT", "PUT", True),  # only POST turns into GET on 301/302 (as Scrapy and browsers do)
    ],
)
async def test_redirect_that_becomes_get_drops_body_and_its_headers(
    make_http_server: Callable[[], TestHTTPServer],
    make_downloader: Callable[..., Downloader],
    status: int,
    method: str,
    expected_method: str,
    body_kept: bool,
) -> None:
    server = make_http_server()
    landing, start = Witness(), Witness()
    server.route("/done", landing)
    server.route("/form", lambda req: (start(req), redirect_to(lambda: "/done", status)(req))[1])
    d = make_downloader()
    form = b"name=kubecrawl&token=abc"
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Content-Language": "en", "X-Spider": "1"}
    resp, chain = await follow(d, Request(server.url("/form"), method=method, body=form, headers=headers))

    assert start.only.body == form and start.only.method == method
    got = landing.only
    assert resp.status == 200 and got.method == expected_method and chain[-1].method == expected_method
    assert got.headers["x-spider"] == "1"
    if body_kept:
        assert got.body == form
        assert got.headers["content-type"] == "application/x-www-form-urlencoded"
    else:
        assert got.body == b"" and chain[-1].body == b""
        assert not {"content-type", "content-language", "content-encoding"} & set(got.headers), got.headers
        assert got.headers.get("content-length", "0") == "0"


async def test_303_keeps_head_a_head(http_server: TestHTTPServer, make_downloader: Callable[..., Downloader]) -> None:
    landing = Witness()
    http_server.route("/done", landing)
    http_server.route("/start", redirect_to(lambda: "/done", 303))
    d = make_downloader()
    await follow(d, Request(http_server.url("/start"), method="HEAD"))
    assert landing.only.method == "HEAD"


@pytest.mark.parametrize(
    "location",
    ["http://127.0.0.1:66000/x", "http://[::1", "http://h:PORT/", "javascript:alert(1)", "mailto:a@example.com"],
)
async def test_redirect_to_a_bad_url_is_a_bad_redirect_not_a_scheduled_request(
    http_server: TestHTTPServer, make_downloader: Callable[..., Downloader], location: str
) -> None:
    http_server.route("/start", redirect_to(lambda: location))
    d = make_downloader(max_retries=3)
    with pytest.raises(DownloadError) as caught:
        await d.fetch(Request(http_server.url("/start")))
    assert caught.value.kind == "bad_redirect" and caught.value.retries == 0
    assert caught.value.request is not None and caught.value.request.url == http_server.url("/start")
    assert http_server.hits["/start"] == 1


def test_same_origin_compares_scheme_host_and_default_port() -> None:
    from urllib.parse import urlsplit

    def same(a: str, b: str) -> bool:
        pb = urlsplit(b)
        return downloader_module._same_origin(urlsplit(a), pb, pb.port)

    assert same("http://example.com/a", "http://example.com:80/b")
    assert same("https://Example.COM/a", "https://example.com:443/b")
    assert not same("https://example.com/", "http://example.com/")  # a downgrade: another origin
    assert not same("http://example.com/", "https://example.com/")  # an upgrade too (httpx differs)
    assert not same("http://example.com/", "http://example.com:8080/")
    assert not same("http://example.com/", "http://www.example.com/")


# -- bodies ----------------------------------------------------------------------------------------
PAGE = (
    "<html><body>" + "".join(f"<p>paragraph {i}: naïve café 中文 {i * i}</p>" for i in range(6000)) + "</body></html>"
).encode()


def _zstd_two_frames(data: bytes) -> bytes:
    half = len(data) // 2
    c = zstandard.ZstdCompressor()
    return c.compress(data[:half]) + c.compress(data[half:])


def _raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-15)  # no zlib header: what some servers send as "deflate"
    return c.compress(data) + c.flush()


ENCODED = {
    "gzip": ("gzip", gzip.compress(PAGE)),
    "deflate": ("deflate", zlib.compress(PAGE)),
    "deflate-raw": ("deflate", _raw_deflate(PAGE)),
    "br": ("br", brotli.compress(PAGE)),
    "zstd": ("zstd", zstandard.ZstdCompressor().compress(PAGE)),
    "zstd-two-frames": ("zstd", _zstd_two_frames(PAGE)),
    "gzip-then-br": ("gzip, br", brotli.compress(gzip.compress(PAGE))),
}


def _corrupt(data: bytes) -> bytes:
    mid = len(data) // 3
    return data[:mid] + bytes(b ^ 0x5A for b in data[mid : mid + 64]) + data[mid + 64 :]


@pytest.mark.parametrize("name", list(ENCODED))
async def test_compressed_body_is_decoded(
    http_server: TestHTTPServer, make_downloader: Callable[..., Downloader], name: str
) -> None:
    coding, data = ENCODED[name]
    http_server.route("/page", lambda _r: (200, {"Content-Type": "text/html", "Content-Encoding": coding}, data))
    http_server.route("/chunked", lambda _r: (200, {"Content-Encoding": coding}, iter([data[:7], data[7:]])))
    d = make_downloader()
    for path in ("/page", "/chunked"):
        resp = await d.fetch(Request(http_server.url(path)))
        assert resp.body == PAGE, (path, len(resp.body), len(PAGE))


@pytest.mark.parametrize("name", ["gzip", "deflate", "br", "zstd"])
async def test_corrupt_compressed_body_is_a_decode_error_tried_once(
    http_server: TestHTTPServer, make_downloader: Callable[..., Downloader], name: str
) -> None:
    coding, data = ENCODED[name]
    bad = _corrupt(data)
    http_server.route("/bad", lambda _r: (200, {"Content-Encoding": coding}, bad))
    d = make_downloader(max_retries=3)
    req = Request(http_server.url("/bad"))
    with pytest.raises(DownloadError) as caught:
        await d.fetch(req)
    err = caught.value
    assert err.kind == "decode_error" and not err.retryable and err.retries == 0
    assert err.request is req
    assert http_server.hits["/bad"] == 1  # not retried: the same bytes would come back
    assert d.stats["retries"] == 0


async def test_accept_encoding_advertises_exactly_what_is_decoded(
    http_server: TestHTTPServer, make_downloader: Callable[..., Downloader]
) -> None:
    seen = Witness()
    http_server.route("/ae", seen)
    await make_downloader().fetch(Request(http_server.url("/ae")))
    advertised = [c.strip() for c in seen.only.headers["accept-encoding"].split(",")]
    assert advertised == ["gzip", "deflate", "br", "zstd"]  # brotli and zstandard are dependencies
    assert advertised == list(DECODERS)
    assert seen.only.headers["accept-encoding"] == ACCEPT_ENCODING


def test_accept_encoding_leaves_out_what_is_not_installed() -> None:
    """With brotli, brotlicffi and zstandard made unimportable, only gzip and deflate are offered."""
    code = (
        "import sys\n"
        "for m in ('brotli', 'brotlicffi', 'zstandard'): sys.modules[m] = None\n"
        "from kubecrawl.downloader import ACCEPT_ENCODING\n"
        "from kubecrawl.compression import DECODERS\n"
        "print(ACCEPT_ENCODING, sorted(DECODERS), sep='|')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "gzip, deflate|['deflate', 'gzip']"


BOMBS: dict[str, Callable[[bytes], bytes]] = {
    "br": lambda data: brotli.compress(data, quality=5),  # 64 MiB of zeros in about 100 bytes
    "zstd": lambda data: zstandard.ZstdCompressor(level=3).compress(data),
    "gzip": lambda data: gzip.compress(data, 1),
}


@functools.cache
def bomb_of(coding: str) -> bytes:
    return BOMBS[coding](b"\0" * (64 << 20))


@pytest.mark.parametrize("coding", list(BOMBS))
async def test_decompression_bomb_stops_at_max_body_size(
    http_server: TestHTTPServer, make_downloader: Callable[..., Downloader], coding: str
) -> None:
    bomb = bomb_of(coding)
    http_server.route("/bomb", lambda _r: (200, {"Content-Encoding": coding}, bomb))
    d = make_downloader(max_body_size=1 << 20, max_retries=3)
    tracemalloc.start()
    try:
        with pytest.raises(DownloadError) as caught:
            await d.fetch(Request(http_server.url("/bomb")))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert caught.value.kind == "too_large" and not caught.value.retryable
    assert peak < 16 << 20, f"peak {peak >> 20} MiB while decoding a {len(bomb)}-byte {coding} bomb"
    assert http_server.hits["/bomb"] == 1


async def test_truncated_gzip_keeps_what_it_held_and_is_counted(
    http_server: TestHTTPServer, make_downloader: Callable[..., Downloader]
) -> None:
    data = gzip.compress(PAGE)
    http_server.route("/cut", lambda _r: (200, {"Content-Encoding": "gzip"}, data[: len(data) // 2]))
    d = make_downloader()
    resp = await d.fetch(Request(http_server.url("/cut")))
    assert 0 < len(resp.body) < len(PAGE) and PAGE.startswith(resp.body)
    assert d.stats["decode_truncated"] == 1


async def test_gzip_members_one_after_another_all_decode(
    http_server: TestHTTPServer, make_downloader: Callable[..., Downloader]
) -> None:
    half = len(PAGE) // 2
    data = gzip.compress(PAGE[:half]) + gzip.compress(PAGE[half:])  # as `cat a.gz b.gz` makes
    http_server.route("/two", lambda _r: (200, {"Content-Encoding": "gzip"}, data))
    resp = await make_downloader().fetch(Request(http_server.url("/two")))
    assert resp.body == PAGE


async def test_zstd_window_above_rfc_9659_limit_is_refused(
    http_server: TestHTTPServer, make_downloader: Callable[..., Downloader]
) -> None:
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=27)  # a 128 MiB window
    stream = zstandard.ZstdCompressor(compression_params=params).compressobj()  # size unknown: window kept
    data = stream.compress(PAGE) + stream.flush()
    assert zstandard.get_frame_parameters(data).window_size == 1 << 27
    http_server.route("/wide", lambda _r: (200, {"Content-Encoding": "zstd"}, data))
    with pytest.raises(DownloadError) as caught:
        await make_downloader().fetch(Request(http_server.url("/wide")))
    assert caught.value.kind == "decode_error"


async def test_unknown_coding_passes_through_and_empty_body_is_not_decoded(
    http_server: TestHTTPServer, make_downloader: Callable[..., Downloader]
) -> None:
    http_server.route("/odd", lambda _r: (200, {"Content-Encoding": "utf-8"}, b"<p>plain</p>"))
    http_server.route("/head", lambda _r: (204, {"Content-Encoding": "gzip"}, b""))
    d = make_downloader()
    assert (await d.fetch(Request(http_server.url("/odd")))).body == b"<p>plain</p>"
    assert (await d.fetch(Request(http_server.url("/head")))).body == b""


async def test_robots_txt_is_decoded_like_a_page(
    http_server: TestHTTPServer, make_downloader: Callable[..., Downloader]
) -> None:
    robots = brotli.compress(b"User-agent: *\nDisallow: /private/\n")
    http_server.route("/robots.txt", lambda _r: (200, {"Content-Encoding": "br", "Content-Type": "text/plain"}, robots))
    d = make_downloader(obey_robots=True)
    assert not await d.allowed_by_robots(http_server.url("/private/x"))
    assert await d.allowed_by_robots(http_server.url("/public/x"))


# -- scheme guard, URL checks, the error table --------------------------------------------------
@pytest.mark.parametrize(
    "url",
    ["javascript:void(0)", "mailto:someone@example.com", "tel:+15551234", "data:text/html,hi", "ftp://127.0.0.1/"],
)
async def test_non_http_scheme_is_skipped_at_once(make_downloader: Callable[..., Downloader], url: str) -> None:
    d = make_downloader(max_retries=3, obey_robots=True)
    req = Request(url)
    assert await d.allowed_by_robots(url)  # no robots.txt is asked for such a URL
    with pytest.raises(DownloadError) as caught:
        await d.fetch(req)
    assert caught.value.kind == "skipped_scheme" and caught.value.retries == 0 and caught.value.request is req
    assert d.stats["retries"] == 0 and d._robots == {}


@pytest.mark.parametrize("url", ["http://127.0.0.1:66000/x", "http://[::1", "http://h:PORT/", "http:///x"])
async def test_unparsable_url_is_invalid_url_at_once(make_downloader: Callable[..., Downloader], url: str) -> None:
    d = make_downloader(max_retries=3, obey_robots=True)
    assert await d.allowed_by_robots(url)
    with pytest.raises(DownloadError) as caught:
        await d.fetch(Request(url))
    assert caught.value.kind == "invalid_url" and caught.value.retries == 0
    assert d.stats["retries"] == 0


@pytest.mark.parametrize("value", ["line\r\nX-Injected: 1", "中文"])
async def test_header_that_cannot_be_sent_is_invalid_request_not_retried(
    http_server: TestHTTPServer, make_downloader: Callable[..., Downloader], value: str
) -> None:
    d = make_downloader(max_retries=3)
    with pytest.raises(DownloadError) as caught:
        await d.fetch(Request(http_server.url("/x"), headers={"X-Bad": value}))
    assert caught.value.kind == "invalid_request" and caught.value.retries == 0
    assert http_server.log == []


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again on return: nothing listens there


async def test_refused_connection_is_network_on_both_transports_and_retried(
    make_downloader: Callable[..., Downloader],
) -> None:
    d = make_downloader(max_retries=2)
    req = Request(f"http://127.0.0.1:{_closed_port()}/")
    with pytest.raises(DownloadError) as caught:
        await d.fetch(req)
    err = caught.value
    assert err.kind == "network" and err.retryable and err.retries == 2 and err.request is req
    assert d.stats["retry:network"] == 2
    assert "after 2 retries" in str(err)


async def test_slow_server_is_timeout(http_server: TestHTTPServer, make_downloader: Callable[..., Downloader]) -> None:
    release = threading.Event()

    def stall(_req: RequestInfo) -> tuple[int, dict[str, str], bytes]:
        release.wait(30)
        return 200, {}, b"late"

    http_server.route("/slow", stall)
    d = make_downloader(max_retries=0, download_timeout=0.2)
    try:
        with pytest.raises(DownloadError) as caught:
            await d.fetch(Request(http_server.url("/slow")))
    finally:
        release.set()
    assert caught.value.kind == "timeout" and caught.value.retryable


async def test_retry_http_code_is_retried_then_counted_by_status(
    http_server: TestHTTPServer, make_downloader: Callable[..., Downloader]
) -> None:
    http_server.route("/busy", lambda _r: (503, {"Retry-After": "0"}, b"busy"))
    d = make_downloader(max_retries=2)
    with pytest.raises(DownloadError) as caught:
        await d.fetch(Request(http_server.url("/busy")))
    assert caught.value.kind == "http_503" and caught.value.retries == 2 and caught.value.retry_after == 0.0
    assert http_server.hits["/busy"] == 3


def test_download_error_is_one_exported_kubecrawl_error() -> None:
    assert kubecrawl.DownloadError is DownloadError is downloader_module.DownloadError
    assert issubclass(DownloadError, kubecrawl.KubecrawlError)
    assert "DownloadError" in kubecrawl.__all__
    positional = DownloadError("http_404", "HTTP 404 http://x/", 2)  # the shape the scraper builds
    assert (positional.kind, str(positional), positional.retries, positional.request) == (
        "http_404",
        "HTTP 404 http://x/",
        2,
        None,
    )
    req = Request("http://x/")
    keyword = DownloadError(kind="timeout", message="slow", retries=1, request=req)
    assert keyword.request is req and not keyword.retryable


def test_the_error_table_covers_every_transport_error_it_names() -> None:
    """Every table entry is an exception type, and each kind is a known counter name."""
    import httpx

    table = {**downloader_module._ERROR_KINDS, **downloader_module._aiohttp_error_kinds()}
    kinds = {kind for kind, _ in table.values()}
    assert kinds <= {"ssrf_refused", "timeout", "decode_error", "invalid_url", "invalid_request", "network"}
    assert downloader_module._lookup(table, httpx.ConnectTimeout("x")) == ("timeout", True)
    assert downloader_module._lookup(table, httpx.DecodingError("x")) == ("decode_error", False)
    assert downloader_module._lookup(table, httpx.RemoteProtocolError("x")) == ("network", True)
