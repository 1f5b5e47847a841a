"""Cookie jars: ``Set-Cookie`` remembered and sent back, one jar per ``meta['cookiejar']`` value.

Parsing, domain/path matching and expiry are the standard library's (``http.cookiejar``, through
httpx's ``Cookies``). What is added here are RFC 6265's bounds (§6.1: a user agent keeps at least
4096 bytes per cookie, 50 cookies per domain and 3000 in all): a cookie beyond them is refused and
counted ``cookies_refused`` (logged once per jar), never stored silently or dropped silently. A
response with more ``Set-Cookie`` fields than a jar could ever keep for it has the excess counted
without parsing it, so 10,000 of them cost as little as a few hundred.

Jars are per process: in a distributed crawl each slave keeps its own (docs/scrapy.md).
"""

from __future__ import annotations

import logging
from http.cookiejar import Cookie, CookieJar
from typing import Any

import httpx

from .stats import Stats

log = logging.getLogger(__name__)

#: RFC 6265 §6.1: name + value + attributes of one cookie
MAX_COOKIE_BYTES = 4096
#: distinct cookie jars one process keeps (meta['cookiejar'] values); more are refused
MAX_JARS = 10_000


def _cookie_size(c: Cookie) -> int:
    return len(c.name) + len(c.value or "") + len(c.domain) + len(c.path)


class BoundedCookieJar(CookieJar):
    """A :class:`http.cookiejar.CookieJar` that refuses cookies past RFC 6265's bounds (counted)."""

    def __init__(self, per_domain: int, total: int, stats: Stats, name: Any) -> None:
        super().__init__()
        self.per_domain = per_domain
        self.total = total
        self.stats = stats
        self.name = name
        self.count = 0
        self._logged = False

    def _refuse(self, cookie: Cookie, why: str) -> None:
        self.stats.inc("cookies_refused")
        if not self._logged:
            self._logged = True
            log.warning(
                "cookie jar %r: refused cookie %r from %s (%s); further refusals are only counted (cookies_refused)",
                self.name,
                cookie.name[:100],
                cookie.domain,
                why,
            )

    def set_cookie(self, cookie: Cookie) -> None:
        if _cookie_size(cookie) > MAX_COOKIE_BYTES:
            self._refuse(cookie, f"larger than {MAX_COOKIE_BYTES} bytes")
            return
        paths = self._cookies.get(cookie.domain, {})  # type: ignore[attr-defined]
        replacing = cookie.name in paths.get(cookie.path, {})
        if not replacing:
            if sum(len(names) for names in paths.values()) >= self.per_domain:
                self._refuse(cookie, f"{self.per_domain} cookies for this domain already (cookies_per_domain)")
                return
            if self.count >= self.total:
                self.count = len(self)  # expired ones may have gone
                if self.count >= self.total:
                    self._refuse(cookie, f"{self.total} cookies in this jar already (cookies_total)")
                    return
            self.count += 1
        super().set_cookie(cookie)

    def clear(self, domain: str | None = None, path: str | None = None, name: str | None = None) -> None:
        super().clear(domain, path, name)
        self.count = len(self)


class CookieJars:
    """The jars of one process, by ``meta['cookiejar']`` (``None``: the default jar)."""

    def __init__(self, per_domain: int, total: int, stats: Stats) -> None:
        self.per_domain = per_domain
        self.total = total
        self.stats = stats
        self.jars: dict[Any, httpx.Cookies] = {}
        #: Set-Cookie fields of one response parsed at most; the rest are counted cookies_refused
        self.max_fields = 4 * per_domain

    def get(self, key: Any, create: bool = False) -> httpx.Cookies | None:
        try:
            jar = self.jars.get(key)
        except TypeError:  # an unhashable meta['cookiejar']: its repr names the jar
            key = repr(key)
            jar = self.jars.get(key)
        if jar is None and create:
            if len(self.jars) >= MAX_JARS:
                self.stats.inc("cookies_refused")
                return None
            jar = self.jars[key] = httpx.Cookies(BoundedCookieJar(self.per_domain, self.total, self.stats, key))
        return jar

    def add_header(self, key: Any, request: httpx.Request) -> None:
        """The jar's cookies for ``request``'s URL as its ``Cookie`` header (an explicit one is kept)."""
        jar = self.get(key)
        if jar:
            jar.set_cookie_header(request)

    def extract(self, key: Any, response: httpx.Response) -> None:
        """Remember ``response``'s ``Set-Cookie`` fields (bounded; see the module docstring)."""
        jar = self.get(key, create=True)
        if jar is None:
            return
        fields = response.headers.get_list("set-cookie")
        if len(fields) > self.max_fields:
            self.stats.inc("cookies_refused", len(fields) - self.max_fields)
            log.info(
                "%s sent %d Set-Cookie fields; the first %d are read, the rest counted cookies_refused",
                response.request.url,
                len(fields),
                self.max_fields,
            )
            headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() != "set-cookie"]
            headers += [("set-cookie", v) for v in fields[: self.max_fields]]
            response = httpx.Response(response.status_code, headers=headers, request=response.request)
        jar.extract_cookies(response)
