"""A local copy of quotes.toscrape.com, the site the ported spiders target, on a real 127.0.0.1 server.

The markup follows the site's (Bootstrap layout, ``div.quote`` blocks, the ``li.next`` pager, the
author pages, the tag pages, the CSRF-protected login form); the quotes are in ``site/quotes.json``.
Sitemaps (``/robots.txt`` names ``/sitemap_index.xml``, which lists a plain and a gzipped urlset) are
an addition: the real site has none, and the SitemapSpider test needs them. As on the real site, a
successful ``POST /login`` redirects to ``/`` with a session cookie, and the list pages show
"Logout" instead of "Login" to a client that sends it back.
"""

from __future__ import annotations

import gzip
import html
import json
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from tests.helpers.httpserver import Reply, RequestInfo, TestHTTPServer

DATA = json.loads((Path(__file__).parent / "site" / "quotes.json").read_text(encoding="utf-8"))


def all_quotes() -> list[dict[str, Any]]:
    return [q for page in DATA["pages"] for q in page]


def _slug(author: str) -> str:
    return "-".join(author.replace(".", " ").replace("é", "e").split())


def _quote_html(q: dict[str, Any]) -> str:
    tags = "".join(f'<a class="tag" href="/tag/{html.escape(t)}/page/1/">{html.escape(t)}</a>' for t in q["tags"])
    return (
        '<div class="quote" itemscope itemtype="http://schema.org/CreativeWork">\n'
        f'  <span class="text" itemprop="text">{html.escape(q["text"])}</span>\n'
        f'  <span>by <small class="author" itemprop="author">{html.escape(q["author"])}</small>\n'
        f'  <a href="/author/{_slug(q["author"])}">(about)</a>\n  </span>\n'
        '  <div class="tags">\n    Tags:\n'
        f'    <meta class="keywords" itemprop="keywords" content="{html.escape(",".join(q["tags"]))}" /> \n'
        f"    {tags}\n  </div>\n</div>\n"
    )


def _layout(body: str, logged_in: bool = False) -> str:
    login = '<a href="/logout">Logout</a>' if logged_in else '<a href="/login">Login</a>'
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="UTF-8">\n<title>Quotes to Scrape</title>\n'
        '<link rel="stylesheet" href="/static/bootstrap.min.css">\n</head>\n<body>\n<div class="container">\n'
        '<div class="row header-box">\n<div class="col-md-8">\n<h1><a href="/" style="text-decoration: none">'
        f'Quotes to Scrape</a></h1>\n</div>\n<div class="col-md-4">\n<p>\n{login}\n</p>\n</div>\n</div>\n'
        f"{body}</div>\n"
        '<footer class="footer">\n<div class="container">\n<p class="text-muted">Quotes by: '
        '<a href="https://www.goodreads.com/quotes">GoodReads.com</a></p>\n<p class="copyright">Made with '
        '<span class="zyte">&#10084;</span> by <a class="zyte" href="https://www.zyte.com">Zyte</a></p>\n'
        "</div>\n</footer>\n</body>\n</html>\n"
    )


def _list_page(quotes: list[dict[str, Any]], n: int, pages: int, prefix: str = "", logged_in: bool = False) -> str:
    pager = []
    if n > 1:
        pager.append(
            f'<li class="previous"><a href="{prefix}/page/{n - 1}/"><span aria-hidden="true">&larr;</span> Previous</a></li>'
        )
    if n < pages:
        pager.append(
            f'<li class="next"><a href="{prefix}/page/{n + 1}/">Next <span aria-hidden="true">&rarr;</span></a></li>'
        )
    top = "".join(
        f'<span class="tag-item"><a class="tag" style="font-size: {28 - 2 * i}px" href="/tag/{t}/">{t}</a></span>\n'
        for i, t in enumerate(DATA["top_tags"])
    )
    body = (
        '<div class="row">\n<div class="col-md-8">\n'
        + "".join(_quote_html(q) for q in quotes)
        + f'<nav>\n<ul class="pager">\n{"".join(pager)}\n</ul>\n</nav>\n</div>\n'
        f'<div class="col-md-4 tags-box">\n<h2>Top Ten tags</h2>\n{top}</div>\n</div>\n'
    )
    return _layout(body, logged_in)


def _author_page(author: str) -> str:
    body = (
        '<div class="author-details">\n'
        f'<h3 class="author-title">{html.escape(author)}\n    </h3>\n'
        '<p><strong>Born:</strong> <span class="author-born-date">unknown</span> '
        '<span class="author-born-location">in an unknown place</span></p>\n'
        '<strong>Description:</strong>\n<div class="author-description">\n'
        f"        {html.escape(author)} is quoted on this site.\n    </div>\n</div>\n"
    )
    return _layout(body)


def _login_page(token: str, error: str = "") -> str:
    err = f'<p class="error">{html.escape(error)}</p>\n' if error else ""
    body = (
        f'{err}<form action="/login" method="post" accept-charset="utf-8" >\n'
        f'<input type="hidden" name="csrf_token" value="{token}">\n'
        '<div class="row">\n<div class="form-group col-xs-3">\n<label for="username">Username</label>\n'
        '<input type="text" class="form-control" id="username" name="username" />\n</div>\n</div>\n'
        '<div class="row">\n<div class="form-group col-xs-3">\n<label for="username">Password</label>\n'
        '<input type="password" class="form-control" id="password" name="password" />\n</div>\n</div>\n'
        '<input type="submit" value="Login" class="btn btn-primary" />\n</form>\n'
    )
    return _layout(body)


def _ok(text: str) -> Reply:
    return 200, {"Content-Type": "text/html; charset=utf-8"}, text.encode("utf-8")


def serve_quotes_site(server: TestHTTPServer) -> TestHTTPServer:
    """Register the site's pages on ``server`` (started by the caller)."""
    pages = DATA["pages"]
    token = secrets.token_hex(16)
    session = secrets.token_hex(16)

    def logged_in(req: RequestInfo) -> bool:
        cookie = next((v for k, v in req.headers.items() if k.lower() == "cookie"), "")
        return f"session={session}" in cookie.replace(" ", "").split(";")

    def list_page(quotes: list[dict[str, Any]], n: int) -> Any:
        def handler(req: RequestInfo) -> Reply:
            return _ok(_list_page(quotes, n, len(pages), logged_in=logged_in(req)))

        return handler

    for n, quotes in enumerate(pages, start=1):
        server.route(f"/page/{n}/", list_page(quotes, n))
        if n == 1:
            server.route("/", list_page(quotes, n))
    authors = {q["author"] for q in all_quotes()}
    for author in authors:
        server.html(f"/author/{_slug(author)}", _author_page(author))
    tags = {t for q in all_quotes() for t in q["tags"]} | set(DATA["top_tags"])
    for tag in tags:
        tagged = [q for q in all_quotes() if tag in q["tags"]]
        page = _list_page(tagged, 1, 1)
        server.html(f"/tag/{tag}/", page)
        server.html(f"/tag/{tag}/page/1/", page)

    def login(req: RequestInfo) -> Reply:
        if req.method != "POST":
            return _ok(_login_page(token))
        form = parse_qs(req.body.decode("utf-8"))
        if form.get("csrf_token") != [token]:
            return _ok(_login_page(token, "Error while logging in: invalid CSRF token."))
        if not form.get("username"):
            return _ok(_login_page(token, "Error while logging in: please, provide your username."))
        cookie = f"session={session}; HttpOnly; Path=/"
        return 302, {"Location": "/", "Set-Cookie": cookie, "Content-Type": "text/html; charset=utf-8"}, b""

    def sitemap(entries: list[tuple[str, str]], alternate: str | None = None) -> bytes:
        rows = []
        for i, (path, lastmod) in enumerate(entries):
            alt = f'<xhtml:link rel="alternate" hreflang="de" href="{alternate}"/>' if alternate and i == 0 else ""
            rows.append(f"<url><loc>{{base}}{path}</loc><lastmod>{lastmod}</lastmod>{alt}</url>")
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
            'xmlns:xhtml="http://www.w3.org/1999/xhtml">' + "".join(rows) + "</urlset>\n"
        ).encode()

    page_map = sitemap(
        [(f"/page/{n}/", f"2021-03-0{n}") for n in range(1, len(pages) + 1)] + [("/tag/love/", "2009-01-01")],
        alternate="{base}/tag/humor/",
    )
    author_map = sitemap([(f"/author/{_slug(a)}", "2022-05-05") for a in sorted(authors)])
    index = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        b"<sitemap><loc>{base}/sitemap-pages.xml</loc></sitemap>"
        b"<sitemap><loc>{base}/sitemap-authors.xml.gz</loc></sitemap>"
        b"<sitemap><loc>{base}/unlisted.xml</loc></sitemap></sitemapindex>\n"
    )

    def with_base(body: bytes, ctype: str, gz: bool = False) -> Any:
        def handler(req: RequestInfo) -> Reply:
            host = next(v for k, v in req.headers.items() if k.lower() == "host")
            data = body.replace(b"{base}", f"http://{host}".encode())
            return 200, {"Content-Type": ctype}, gzip.compress(data) if gz else data

        return handler

    server.route(
        "/robots.txt", with_base(b"User-agent: *\nDisallow:\nSitemap: {base}/sitemap_index.xml\n", "text/plain")
    )
    server.route("/sitemap_index.xml", with_base(index, "application/xml"))
    server.route("/sitemap-pages.xml", with_base(page_map, "text/xml; charset=utf-8"))
    server.route("/sitemap-authors.xml.gz", with_base(author_map, "application/x-gzip", gz=True))
    server.route("/login", login)
    server.html("/logout", _layout("<p>Logged out.</p>\n"))
    return server
