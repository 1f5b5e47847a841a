"""The SSRF guard refuses internal addresses (unless allow-listed), also after redirects; proxies work."""

from __future__ import annotations

from pathlib import Path

from kubecrawl import Spider
from tests.helpers.crawl import crawl
from tests.helpers.httpserver import RequestInfo, TestHTTPServer


class Titles(Spider):
    name = "titles"

    async def parse(self, response):
        yield {"url": response.url, "title": response.css("title::text").get()}


async def test_guard_refuses_loopback(http_server: TestHTTPServer) -> None:
    http_server.html("/", "<title>internal</title>")
    stats, _ = await crawl(Titles(start_urls=[http_server.url("/")]), ssrf_guard="on")
    assert stats["items"] == 0
    assert stats.summary()["errors_by_kind"] == {"ssrf_refused": 1}
    assert http_server.paths() == []  # not even robots.txt was fetched


async def test_guard_refuses_names_resolving_to_loopback(http_server: TestHTTPServer) -> None:
    http_server.html("/", "<title>internal</title>")
    url = f"http://localhost.:{http_server.port}/"  # a name, resolved by the resolver, not a literal
    stats, _ = await crawl(Titles(start_urls=[url]), ssrf_guard="on", obey_robots=False)
    assert stats["items"] == 0 and stats["error:ssrf_refused"] == 1
    assert http_server.paths() == []


async def test_guard_allow_list_admits(http_server: TestHTTPServer) -> None:
    http_server.html("/", "<title>allowed</title>")
    stats, _ = await crawl(Titles(start_urls=[http_server.url("/")]), ssrf_guard="on", ssrf_allow="127.0.0.1/32")
    assert stats["items"] == 1 and stats["errors"] == 0


async def test_guard_applies_after_redirects(make_http_server) -> None:
    allowed, internal = make_http_server(), make_http_server()
    internal.html("/meta", "<title>metadata secrets</title>")
    # the allowed server is reachable through the allow list by port-less host name match on 127.0.0.1 only
    allowed.route("/", lambda _r: (302, {"Location": f"http://127.0.0.2:{internal.port}/meta"}, b""))
    stats, _ = await crawl(
        Titles(start_urls=[allowed.url("/")]), ssrf_guard="on", ssrf_allow="127.0.0.1/32", obey_robots=False
    )
    assert stats["items"] == 0 and stats["error:ssrf_refused"] == 1
    assert internal.paths() == []


async def test_requests_go_through_the_configured_proxy(http_server: TestHTTPServer, tmp_path: Path) -> None:
    seen: list[str] = []

    def proxy(req: RequestInfo):
        seen.append(req.path)
        return 200, {"Content-Type": "text/html"}, b"<title>via proxy</title>"

    http_server.fallback = proxy
    stats, _ = await crawl(
        Titles(start_urls=["http://crawl-target.invalid/page"]), proxy=http_server.url(), obey_robots=False
    )
    assert seen == ["http://crawl-target.invalid/page"]
    assert stats["items"] == 1


async def test_resolver_drops_internal_addresses_after_resolution() -> None:
    import pytest

    from kubecrawl.netguard import SSRFGuard, SSRFRefused

    guard = SSRFGuard([])
    resolver = guard.aiohttp_resolver()
    with pytest.raises(SSRFRefused):
        await resolver.resolve("localhost", 80)  # resolved through /etc/hosts to 127.0.0.1 / ::1
    allowing = SSRFGuard(["localhost"]).aiohttp_resolver()
    infos = await allowing.resolve("localhost", 80)
    assert infos and all(i["host"] in ("127.0.0.1", "::1") for i in infos)
