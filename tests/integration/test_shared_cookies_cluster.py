"""A site behind a login, crawled by a master + 2 slaves (real processes, real redis-server and HTTP server).

POST /login sets a session cookie and redirects to /home, whose links lead to pages that answer with
the member content only when the request carries the cookie (else the login page). The server's
request log, with each request's User-Agent naming its slave, is the witness.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.helpers.httpserver import RequestInfo, TestHTTPServer
from tests.integration.distributed_cluster import Cluster

if TYPE_CHECKING:
    from tests.integration.conftest import RedisServer

pytestmark = pytest.mark.slow

PAGES = 30
SPIDER = """
from kubecrawl import Request, Response, Spider


class LoginSpider(Spider):
    name = "login"

    async def start_requests(self):
        yield Request({login!r}, method="POST", body="user=ann&password=pw",
                      headers={{"Content-Type": "application/x-www-form-urlencoded"}})

    async def parse(self, response: Response):
        yield {{"url": response.url, "title": response.css("title::text").get()}}
        for req in response.follow_all(css="a"):
            yield req
"""


def _header(req: RequestInfo, name: str) -> str:
    return next((v for k, v in req.headers.items() if k.lower() == name), "")


class LoginSite:
    """The site; ``fetches`` lists (path, slave, authenticated) per page request, in arrival order."""

    def __init__(self) -> None:
        self.server = TestHTTPServer()
        self.fetches: list[tuple[str, str, bool]] = []
        self.logins: list[str] = []
        self._lock = threading.Lock()
        self.server.route("/login", self.login)
        self.server.route("/home", self.page)
        for i in range(PAGES):
            self.server.route(f"/p/{i}", self.page)

    def login(self, req: RequestInfo) -> tuple[int, dict[str, object], bytes]:
        if req.method != "POST" or b"password=pw" not in req.body:
            return 403, {"Content-Type": "text/plain"}, b"no"
        with self._lock:
            self.logins.append(_header(req, "user-agent"))
        return 302, {"Location": "/home", "Set-Cookie": "session=ann-42; Path=/; HttpOnly"}, b""

    def page(self, req: RequestInfo) -> tuple[int, dict[str, object], bytes]:
        authed = "session=ann-42" in _header(req, "cookie")
        with self._lock:
            self.fetches.append((req.path, _header(req, "user-agent"), authed))
        time.sleep(0.1)  # slow pages: both slaves get some
        if not authed:
            body = "<title>Log in</title><form method=post action=/login></form>"
        elif req.path == "/home":
            body = "<title>Members</title>" + "".join(f'<a href="/p/{i}">{i}</a>' for i in range(PAGES))
        else:
            body = "<title>Members</title><p>welcome back, ann</p>"
        return 200, {"Content-Type": "text/html"}, body.encode()


class NamedCluster(Cluster):
    """Each process's User-Agent names it, so the server log says which slave sent what."""

    def _env(self, worker_id: str | None) -> dict[str, str]:
        env = super()._env(worker_id)
        env["KUBECRAWL_USER_AGENT"] = f"kc-{worker_id or 'master'}"
        return env


@pytest.fixture
def site() -> Iterator[LoginSite]:
    s = LoginSite()
    s.server.start()
    try:
        yield s
    finally:
        s.server.stop()


def crawl(tmp_path: Path, site: LoginSite, redis_server: RedisServer, shared: bool) -> NamedCluster:
    spider = tmp_path / "login_spider.py"
    spider.write_text(SPIDER.format(login=site.server.url("/login")), encoding="utf-8")
    settings = {"shared_cookies": shared, "concurrency": 4, "pop_batch": 2, "obey_robots": False}
    c = NamedCluster(tmp_path, spider, redis_server.url, f"login-{int(shared)}", settings)
    try:
        c.start("master", "master")
        assert c.wait_all(60)["master"] == 0
        c.procs.clear()
        c.start_slaves(2)
        codes = c.wait_all(120)
        assert codes == {"slave-0": 0, "slave-1": 0}, c.logs_tail()
    finally:
        c.stop_all()
    return c


def by_slave(site: LoginSite) -> dict[str, list[bool]]:
    out: dict[str, list[bool]] = {}
    for path, ua, authed in site.fetches:
        if path.startswith("/p/"):
            out.setdefault(ua, []).append(authed)
    return out


def test_with_shared_cookies_every_page_is_fetched_logged_in(
    tmp_path: Path, site: LoginSite, redis_server: RedisServer
) -> None:
    c = crawl(tmp_path, site, redis_server, shared=True)
    assert len(site.logins) == 1
    pages = [f for f in site.fetches if f[0].startswith("/p/")]
    assert sorted(p for p, _, _ in pages) == sorted(f"/p/{i}" for i in range(PAGES))
    assert all(authed for _, _, authed in site.fetches), [f for f in site.fetches if not f[2]]
    slaves = by_slave(site)
    # the slave that did not log in fetched pages too, with the other one's session
    assert set(slaves) == {"kc-slave-0", "kc-slave-1"}, {k: len(v) for k, v in slaves.items()}
    items = c.items()
    assert len(items) == PAGES + 1 and {i["title"] for i in items} == {"Members"}


def test_without_shared_cookies_the_other_slave_is_not_logged_in(
    tmp_path: Path, site: LoginSite, redis_server: RedisServer
) -> None:
    """Today's behaviour, the contrast: jars are per process, so only the slave that logged in is."""
    c = crawl(tmp_path, site, redis_server, shared=False)
    assert len(site.logins) == 1
    slaves = by_slave(site)
    assert set(slaves) == {"kc-slave-0", "kc-slave-1"}, {k: len(v) for k, v in slaves.items()}
    logged_in = site.logins[0]
    assert all(slaves[logged_in])
    other = next(ua for ua in slaves if ua != logged_in)
    assert slaves[other] and not any(slaves[other])
    titles = [str(i["title"]) for i in c.items()]
    assert titles.count("Log in") == len(slaves[other]) and "Members" in titles
    assert not redis_server.client().keys("kc:{login-0}:cookies:*")
