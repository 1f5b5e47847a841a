"""``kubecrawl shell URL``: Scrapy's shell over kubecrawl's downloader.

The namespace has ``response``, ``request``, ``fetch(url_or_request, redirect=True, **request_kwargs)``,
``view(response)``, ``spider``, ``settings``, ``scrapy`` (``kubecrawl.scrapy``) and ``shelp()``.
Fetching goes through the crawl's own :class:`~kubecrawl.downloader.Downloader`: robots.txt (when
``obey_robots``), the SSRF guard, retries, decompression, the HTTP cache; redirects are followed up to
``max_redirects``. ``-c CODE`` evaluates one expression, prints it and exits, as Scrapy's ``shell -c``.
IPython is used when it is installed, else the standard library's interactive console.
"""

from __future__ import annotations

import argparse
import asyncio
import code as stdlib_code
import tempfile
import webbrowser
from pathlib import Path
from typing import Any

from ..downloader import Downloader, DownloadError, Redirected
from ..errors import KubecrawlError
from ..request import Request
from ..response import Response


class Shell:
    """The shell's state: one event loop and one downloader, used by each ``fetch``."""

    def __init__(self, spider: Any, settings: Any) -> None:
        self.spider = spider
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.downloader: Downloader = self.loop.run_until_complete(self._make_downloader())
        self.ns: dict[str, Any] = {}

    async def _make_downloader(self) -> Downloader:
        from ..netguard import SSRFGuard, guard_enabled

        s = self.settings
        guard = SSRFGuard(s.ssrf_allow) if guard_enabled(s.ssrf_guard) else None
        return Downloader(s, guard)

    def close(self) -> None:
        self.loop.run_until_complete(self.downloader.close())
        self.loop.close()

    async def _fetch(self, request: Request, redirect: bool) -> Response:
        for _hop in range(self.settings.max_redirects + 1):
            if not await self.downloader.allowed_by_robots(request.url):
                raise KubecrawlError(f"{request.url} is disallowed by robots.txt (obey_robots / ROBOTSTXT_OBEY)")
            try:
                resp = await self.downloader.fetch(request)
            except Redirected as r:
                if not redirect:
                    raise KubecrawlError(f"{request.url} redirects to {r.request.url}") from None
                request = r.request
                continue
            if getattr(self.spider, "scrapy_api", False):
                from ..scrapy.http import Headers

                resp.headers = Headers(resp.headers)  # type: ignore[assignment]
            return resp
        raise KubecrawlError(f"more than {self.settings.max_redirects} redirects from {request.url}")

    def fetch(self, request_or_url: Any, redirect: bool = True, **kwargs: Any) -> Response:
        """Fetch a URL or a Request; ``request`` and ``response`` in the shell become the new ones."""
        if isinstance(request_or_url, Request):
            request = request_or_url
        else:
            from ..scrapy.http import Request as ScrapyRequest

            request = ScrapyRequest(str(request_or_url), **kwargs)
        try:
            resp = self.loop.run_until_complete(self._fetch(request, redirect))
        except DownloadError as exc:
            raise KubecrawlError(f"fetching {request.url} failed: {exc}") from None
        self.ns["request"], self.ns["response"] = resp.request, resp
        return resp

    def read_file(self, path: Path) -> Response:
        url = path.resolve().as_uri()
        body = path.read_bytes()
        request = Request(url)
        ctype = "text/html" if path.suffix.lower() in (".html", ".htm") else ""
        headers = {"content-type": ctype} if ctype else {}
        import httpx

        resp = Response(url, 200, httpx.Headers(headers), body, request)
        if getattr(self.spider, "scrapy_api", False):
            from ..scrapy.http import Headers

            resp.headers = Headers(resp.headers)  # type: ignore[assignment]
        self.ns["request"], self.ns["response"] = request, resp
        return resp


def view(response: Response) -> bool:
    """Open the response's body in a web browser (a local file with a ``<base>`` for its links), as
    Scrapy's ``open_in_browser``; the file's path is printed."""
    body = response.body
    suffix = ".html"
    ctype = str(response.headers.get("content-type") or "")
    if "html" in ctype.lower() or b"<html" in body[:1024].lower():
        base = f'<head><base href="{response.url}">'.encode()
        lower = body.lower()
        if b"<base" not in lower:
            i = lower.find(b"<head>")
            body = body[:i] + base + body[i + 6 :] if i >= 0 else base + b"</head>" + body
    elif "json" in ctype.lower():
        suffix = ".json"
    else:
        suffix = ".txt"
    fd, name = tempfile.mkstemp(suffix=suffix, prefix="kubecrawl-view-")
    with open(fd, "wb") as f:
        f.write(body)
    print(f"view: {name}")
    return webbrowser.open(Path(name).as_uri())


HELP = """Available objects:
  response, request   the last fetch's
  spider, settings    the spider and settings in use
  scrapy              kubecrawl.scrapy
Shortcuts:
  fetch(url_or_request, redirect=True, **request_kwargs)   fetch and update response/request
  view(response)      open a response in a web browser
  shelp()             this help
"""


def run_shell(args: argparse.Namespace) -> int:
    from .. import scrapy as kc_scrapy
    from ..logs import setup_logging
    from ..runner import build_spider
    from ..stats import Stats
    from . import _project, command_settings, pick_spider

    project = _project()
    url = args.url
    is_file = bool(url) and "://" not in url and Path(url).exists()
    cls = pick_spider(project, args.spider, None if is_file else url, required=False)
    settings = command_settings(project, cls, args)
    setup_logging(settings.log_level if args.log_level else "WARNING", "text", settings.log_file)
    spider: Any = build_spider(cls, settings, Stats(), {}) if cls is not None else kc_scrapy.Spider(name="default")
    spider.settings = settings
    shell = Shell(spider, settings)
    try:
        shell.ns.update(
            {
                "spider": spider,
                "settings": settings,
                "scrapy": kc_scrapy,
                "fetch": shell.fetch,
                "view": view,
                "shelp": lambda: print(HELP),
                "request": None,
                "response": None,
            }
        )
        if url:
            if is_file:
                shell.read_file(Path(url))
            else:
                shell.fetch(url if "://" in url else f"https://{url}")
        if args.code is not None:
            print(eval(args.code, shell.ns))  # the user's own code, as Scrapy's shell -c
            return 0
        _interact(shell.ns)
        return 0
    finally:
        shell.close()


def _interact(ns: dict[str, Any]) -> None:
    try:
        import IPython
    except ImportError:
        stdlib_code.interact(banner="kubecrawl shell\n" + HELP, local=ns)
        return
    print(HELP)
    IPython.start_ipython(argv=[], user_ns=ns)
