"""Cookie jars: ``Set-Cookie`` remembered and sent back, one jar per ``meta['cookiejar']`` value.

Parsing, domain/path matching and expiry are the standard library's (``http.cookiejar``, through
httpx's ``Cookies``). What is added here are RFC 6265's bounds (§6.1: a user agent keeps at least
4096 bytes per cookie, 50 cookies per domain and 3000 in all): a cookie beyond them is refused and
counted ``cookies_refused`` (logged once per jar), never stored silently or dropped silently. A
response with more ``Set-Cookie`` fields than a jar could ever keep for it has the excess counted
without parsing it, so 10,000 of them cost as little as a few hundred.

Jars are per process: in a distributed crawl each slave keeps its own (docs/scrapy.md), unless
``shared_cookies`` keeps them in Redis (``shared_cookies.py``; cookies cross processes as the JSON of
:func:`cookie_to_json`, never pickled).
"""

from __future__ import annotations

import json
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


def cookie_identity(domain: str, path: str, name: str) -> str:
    """A cookie's identity in a shared jar (RFC 6265 §5.3 step 11: domain, path and name), as JSON."""
    return json.dumps([domain, path, name], ensure_ascii=False, separators=(",", ":"))


_BOOL_ATTRS = ("port_specified", "domain_specified", "domain_initial_dot", "path_specified", "secure", "discard")


def cookie_to_json(c: Cookie) -> str:
    """Every attribute of ``c`` as JSON (``rest`` holds HttpOnly, SameSite...); :func:`cookie_from_json` reverses it."""
    d = {
        "version": c.version,
        "name": c.name,
        "value": c.value,
        "port": c.port,
        "domain": c.domain,
        "path": c.path,
        "expires": c.expires,
        "comment": c.comment,
        "comment_url": c.comment_url,
        "rest": c._rest,  # type: ignore[attr-defined]  # the stdlib keeps the non-standard attributes there
        "rfc2109": c.rfc2109,
        **{a: getattr(c, a) for a in _BOOL_ATTRS},
    }
    return json.dumps(d, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _opt_str(d: dict[str, Any], k: str) -> str | None:
    v = d.get(k)
    if v is not None and not isinstance(v, str):
        raise ValueError(f"{k} is not a string")
    return v


def cookie_from_json(raw: str | bytes) -> Cookie:
    """The :class:`Cookie` of :func:`cookie_to_json`; ``ValueError`` for anything else (types checked)."""
    d = json.loads(raw)
    if not isinstance(d, dict):
        raise ValueError("not a JSON object")
    name, domain, path = d.get("name"), d.get("domain"), d.get("path")
    if not (isinstance(name, str) and isinstance(domain, str) and isinstance(path, str)):
        raise ValueError("name, domain and path must be strings")
    expires = d.get("expires")
    if expires is not None and (isinstance(expires, bool) or not isinstance(expires, int | float)):
        raise ValueError("expires is not a number")
    version = d.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise ValueError("version is not an integer")
    rest = d.get("rest") or {}
    if not isinstance(rest, dict) or not all(
        isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in rest.items()
    ):
        raise ValueError("rest is not an object of strings")
    flags = {a: d.get(a, False) for a in _BOOL_ATTRS}
    if not all(isinstance(v, bool) for v in flags.values()) or not isinstance(d.get("rfc2109", False), bool):
        raise ValueError("a flag is not a boolean")
    return Cookie(
        version,
        name,
        _opt_str(d, "value"),
        _opt_str(d, "port"),
        flags["port_specified"],
        domain,
        flags["domain_specified"],
        flags["domain_initial_dot"],
        path,
        flags["path_specified"],
        flags["secure"],
        None if expires is None else int(expires),
        flags["discard"],
        _opt_str(d, "comment"),
        _opt_str(d, "comment_url"),
        rest,
        d.get("rfc2109", False),
    )


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
        #: while a response's Set-Cookie fields are read for a shared jar: ('s', cookie) for each cookie
        #: kept, ('d', (domain, path, name)) for each deletion asked (Max-Age=0, an expiry in the past)
        self.tracking: list[tuple[str, Any]] | None = None

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
        if self.tracking is not None:
            self.tracking.append(("s", cookie))

    def clear(self, domain: str | None = None, path: str | None = None, name: str | None = None) -> None:
        if self.tracking is not None and domain is not None and path is not None and name is not None:
            # http.cookiejar deletes this way for a Set-Cookie that expires it; the local copy may lack it
            self.tracking.append(("d", (domain, path, name)))
        super().clear(domain, path, name)
        self.count = len(self)

    def replace_all(self, cookies: list[Cookie]) -> None:
        """Hold exactly ``cookies`` (a shared jar's contents, bounded where they were stored)."""
        with self._cookies_lock:  # type: ignore[attr-defined]
            self._cookies = {}  # type: ignore[attr-defined,var-annotated]
            for c in cookies:
                CookieJar.set_cookie(self, c)
        self.count = len(self)


class CookieJars:
    """The jars of one process, by ``meta['cookiejar']`` (``None``: the default jar)."""

    #: jars kept in a store too (:class:`~kubecrawl.shared_cookies.SharedCookieJars`): awaited around each request
    shared = False

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
