"""Issue 20 item 2: DNS rebinding. The guard must check the address the transport connects to, not a
lookup of its own that the transport then repeats.

The resolver is under the test's control: ``socket.getaddrinfo`` (which asyncio's, anyio's and
aiohttp's resolvers all call) answers for names under ``.test`` from a table, and a *rebinding* name
answers a public address the first time it is asked and an internal one every time after. The two
servers share one port on 127.0.0.1 ("public", allow-listed) and 127.0.0.2 ("internal"); the internal
server's request log is the witness that nothing reached it.
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kubecrawl import Response, Spider
from tests.helpers.crawl import crawl
from tests.helpers.httpserver import TestHTTPServer

PUBLIC, INTERNAL = "127.0.0.1", "127.0.0.2"


class Pages(Spider):
    name = "pages"

    async def parse(self, response: Response):
        yield {"url": response.url, "title": response.css("title::text").get()}


class Resolver:
    """``answers[name]`` is a function of how many times ``name`` was asked before."""

    def __init__(self) -> None:
        self.asked: Counter[str] = Counter()
        self.answers: dict[str, Callable[[int], list[str]]] = {}

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real = socket.getaddrinfo

        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            name = host.decode() if isinstance(host, bytes) else str(host)
            answer = self.answers.get(name.lower().rstrip("."))
            if answer is None:
                return real(host, port, *args, **kwargs)
            n = self.asked[name]
            self.asked[name] += 1
            infos = []
            for ip in answer(n):
                infos.extend(real(ip, port, *args, **kwargs))
            return infos

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def servers(make_http_server: Callable[..., TestHTTPServer]) -> Iterator[tuple[TestHTTPServer, TestHTTPServer]]:
    for _ in range(20):  # the two need one port on both addresses: retry if the public one is taken
        internal = make_http_server(INTERNAL)
        try:
            public = make_http_server(PUBLIC, internal.port)
        except OSError:
            internal.stop()
            continue
        for path in ("/a", "/b", "/c", "/secret"):
            public.html(path, "<title>public</title>")
            internal.html(path, "<title>metadata secrets</title>")
        yield public, internal
        return
    pytest.fail("no port free on both loopback addresses")


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_a_name_that_rebinds_to_an_internal_address_is_never_connected_to(
    servers: tuple[TestHTTPServer, TestHTTPServer], monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    public, internal = servers
    resolver = Resolver()
    resolver.answers["rebind.test"] = lambda n: [PUBLIC] if n == 0 else [INTERNAL]  # public once, then internal
    resolver.answers["mixed.test"] = lambda n: [INTERNAL, PUBLIC]  # both at once: only the public one is used
    resolver.answers["inside.test"] = lambda n: [INTERNAL]
    resolver.install(monkeypatch)
    port = public.port
    urls = [f"http://{name}:{port}{path}" for name in ("rebind.test", "mixed.test") for path in ("/a", "/b", "/c")]
    urls.append(f"http://inside.test:{port}/secret")
    stats, _ = await asyncio.wait_for(
        crawl(
            Pages(start_urls=urls),
            ssrf_guard="on",
            ssrf_allow=f"{PUBLIC}/32",
            http_transport=transport,
            obey_robots=False,
            concurrency=1,  # one connection per origin, reused: later lookups answer the internal address
        ),
        120,
    )
    assert internal.log == []
    kinds = stats.summary()["errors_by_kind"]
    assert set(kinds) == {"ssrf_refused"}, kinds
    assert kinds["ssrf_refused"] >= 1  # inside.test at least
    assert stats["items"] + kinds["ssrf_refused"] == len(urls)
    assert stats["items"] == len([p for _m, p in public.log])  # every item came from the public server
    assert stats["retries"] == 0  # a refusal is final
    assert resolver.asked["rebind.test"] >= 1


async def test_with_a_proxy_a_target_that_resolves_internal_is_refused(
    servers: tuple[TestHTTPServer, TestHTTPServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Behind a proxy the proxy resolves the target; the guard checks the target's name and its
    resolution here, and the proxy itself (configured by the operator) is trusted."""
    public, internal = servers
    proxied: list[str] = []

    def proxy(req: Any) -> Any:
        proxied.append(req.path)
        return 200, {"Content-Type": "text/html"}, b"<title>via proxy</title>"

    public.fallback = proxy
    resolver = Resolver()
    resolver.answers["inside.test"] = lambda n: [INTERNAL]
    resolver.answers["outside.test"] = lambda n: ["93.184.215.14"]  # a public address, never connected to
    resolver.install(monkeypatch)
    for transport in ("aiohttp", "httpx"):
        proxied.clear()
        stats, _ = await asyncio.wait_for(
            crawl(
                Pages(start_urls=["http://inside.test/secret", "http://outside.test/page"]),
                ssrf_guard="on",
                proxy=public.url(),
                http_transport=transport,
                obey_robots=False,
            ),
            120,
        )
        assert internal.log == []
        assert proxied == ["http://outside.test/page"], (transport, proxied)
        assert stats.summary()["errors_by_kind"] == {"ssrf_refused": 1}, transport
        assert stats["items"] == 1
