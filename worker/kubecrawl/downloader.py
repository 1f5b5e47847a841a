"""Downloading: one shared ``httpx.AsyncClient``, politeness, retries, redirects, size and robots limits.

The client runs on aiohttp's transport by default (``httpx-aiohttp``; 3-4x less CPU per request than
httpx's default transport, see docs/benchmarks.md) and keeps httpx's API. Redirects are followed here,
hop by hop, so every hop passes the same checks (robots.txt, SSRF guard, loop guard), and a hop to
another origin loses the request's credentials (docs/security.md). Every failure leaves :meth:`fetch`
as one :class:`~kubecrawl.errors.DownloadError`: transport exceptions are translated by one table,
``_ERROR_KINDS``, at one boundary (as httpx maps httpcore's errors to its own).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urlsplit

import httpx
from protego import Protego

from .backends.frontier import DELAY_SPREAD, request_slot
from .compression import ACCEPT_ENCODING, decode_body
from .cookies import CookieJars
from .errors import DownloadError, WireFormatError
from .netguard import SSRFGuard, SSRFRefused, is_ssrf_error
from .request import Request, canonical_url
from .response import Response
from .settings import Settings
from .stats import Stats
from .urls import check_request_url
from .urls import resolve as resolve_url

if TYPE_CHECKING:
    from .backends.base import Backend

log = logging.getLogger(__name__)

__all__ = ["ACCEPT_ENCODING", "DownloadError", "Downloader", "Redirected"]

_REDIRECTS = {301, 302, 303, 307, 308}
#: Scrapy's meta keys the downloader honours; a request whose meta has none of them pays one isdisjoint
_META_KEYS = frozenset(
    {"proxy", "download_timeout", "cookiejar", "dont_merge_cookies", "http_user", "max_retry_times", "dont_retry"}
)
#: what the transports say of a response whose header block is past their bounds (aiohttp: 128
#: fields; h11: 16 KiB), e.g. 10,000 Set-Cookie fields
_HEADER_BOUNDS = ("Too many headers", "Receive buffer too long")
#: distinct meta['proxy'] values this process keeps a connection pool for; more are refused
MAX_PROXIES = 64
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Dropped from a redirect's follow-up when it goes to another origin (httpx's _redirect_headers and
# Scrapy's RedirectMiddleware do the same; Host is the old origin's and the transport sets the new one).
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization", "host"})
# Dropped with the body when a redirect turns the request into a GET (as Scrapy does).
_BODY_HEADERS = frozenset(
    {"content-type", "content-length", "content-encoding", "transfer-encoding", "content-language", "content-location"}
)


# The one translation of transport exceptions into DownloadError kinds: type -> (kind, retryable).
# Looked up along the exception's MRO, so the most specific entry wins. httpx-aiohttp maps aiohttp's
# errors to httpx's, but lossily (a refused connection becomes ConnectTimeout), so with that transport
# the aiohttp error it wraps is looked up first, in the aiohttp entries, and both transports give one
# failure the same kind. decode_error (raised by compression.py; httpx's DecodingError only in case)
# is not retried: a corrupt compressed body is what the server sends, and the same bytes would come
# back; a body cut short in transit is a ``network`` error, which is retried.
_ERROR_KINDS: dict[type[BaseException], tuple[str, bool]] = {
    SSRFRefused: ("ssrf_refused", False),
    httpx.TimeoutException: ("timeout", True),
    httpx.DecodingError: ("decode_error", False),
    httpx.InvalidURL: ("invalid_url", False),
    httpx.UnsupportedProtocol: ("invalid_url", False),
    httpx.LocalProtocolError: ("invalid_request", False),
    httpx.TransportError: ("network", True),
    # what a request's own headers raise while being encoded (a non-ASCII value in both transports,
    # a CR/LF in aiohttp's); the URL is checked before anything is sent
    ValueError: ("invalid_request", False),
}


# A response head (status line and headers) larger than the HTTP client's parser allows: aiohttp
# (8190 bytes a line, a header count limit) and h11 (httpx's transport: 16 KiB in all) say so only in
# the message of a generic error. Not retried: the same server sends the same head.
_HEAD_TOO_LARGE = ("Got more than", "Too many headers", "Receive buffer too long")


def _aiohttp_error_kinds() -> dict[type[BaseException], tuple[str, bool]]:
    import aiohttp

    return {
        aiohttp.InvalidURL: ("invalid_url", False),
        aiohttp.ServerTimeoutError: ("timeout", True),  # connect and socket-read timeouts
        aiohttp.ClientError: ("network", True),
        asyncio.TimeoutError: ("timeout", True),
    }


class Downloader:
    def __init__(self, settings: Settings, guard: SSRFGuard | None = None, stats: Stats | None = None) -> None:
        self.s = settings
        self.stats = stats if stats is not None else Stats()
        self.guard = guard
        self._robots: dict[str, _RobotsRules | _RobotsUnavailable] = {}
        self._robots_locks: dict[str, asyncio.Lock] = {}
        #: the crawl's store, where robots.txt is shared by every worker (set by the process; None: this process only)
        self.robots_store: Backend | None = None
        self.client = self._make_client()
        self.deadline = download_deadline(settings)
        #: tells the store that a slot must wait (``Backend.backoff``; the engine sets it): a 429 or a
        #: 503 with Retry-After slows the host down for every worker of the crawl
        self.on_backoff: Callable[[str, float], Awaitable[None]] | None = None
        #: slot -> ``time.monotonic()`` before which this process sends it nothing (a backoff)
        self._not_before: dict[str, float] = {}
        self._backoff_logged: set[str] = set()

    def _make_client(self) -> httpx.AsyncClient:
        s = self.s
        limits = httpx.Limits(
            max_connections=s.concurrency,
            max_keepalive_connections=s.concurrency,
            keepalive_expiry=30,
        )
        headers = {"User-Agent": s.user_agent, "Accept-Encoding": ACCEPT_ENCODING, **s.default_headers}
        timeout = httpx.Timeout(s.download_timeout)
        proxy = httpx.Proxy(s.proxy) if s.proxy else None
        self._error_kinds = dict(_ERROR_KINDS)
        if s.http_transport == "aiohttp":
            self._error_kinds.update(_aiohttp_error_kinds())
            from httpx_aiohttp import AiohttpTransport

            transport: httpx.AsyncBaseTransport = AiohttpTransport(
                verify=s.verify_tls,
                limits=limits,
                proxy=proxy,
                client=self._aiohttp_session_factory(limits),
            )
        else:
            transport = httpx.AsyncHTTPTransport(verify=s.verify_tls, limits=limits, proxy=proxy)
            if self.guard is not None:
                self._guard_httpcore(transport, proxy)
        if s.http_cache:  # development cache at the network boundary (httpcache.py); off: nothing on the hot path
            from .httpcache import CachingTransport

            transport = CachingTransport(transport, s, self.stats)
        self._mapped_errors = tuple(self._error_kinds)
        # The hot path sends httpx.Requests straight to the transport (see _fetch_once); the client,
        # on the same transport and connection pool, serves everything else (robots.txt).
        self.transport = transport
        self.base_headers = httpx.Headers(headers)
        self.timeout_ext = timeout.as_dict()
        self.jars = CookieJars(s.cookies_per_domain, s.cookies_total, self.stats) if s.cookies else None
        self._proxy_transports: dict[str, httpx.AsyncBaseTransport] = {}
        self._limits = limits
        #: the spider's handle_httpstatus_list: those statuses are not redirected (set by the process)
        self.spider_statuses: tuple[int, ...] = ()
        #: (user, password, domain or None for every host) from the spider's http_user/http_pass
        self.spider_auth: tuple[str, str, str | None] | None = None
        self._auth_first_host = False
        #: follow <meta http-equiv=refresh> (the process sets it for Scrapy spiders when unset)
        self.meta_refresh = bool(s.meta_refresh)
        return httpx.AsyncClient(
            transport=transport, headers=headers, timeout=timeout, follow_redirects=False, trust_env=False
        )

    def _guard_httpcore(self, transport: httpx.AsyncHTTPTransport, proxy: httpx.Proxy | None) -> None:
        """httpx's own transport resolves names in its network backend, after our check: the guard
        takes that backend's place so the address checked is the address connected to (DNS rebinding)."""
        assert self.guard is not None
        pool = transport._pool  # httpx has no public hook for httpcore's network backend (pinned <0.29)
        inner = getattr(pool, "_network_backend", None)
        if inner is None:
            raise RuntimeError("httpx's transport changed: cannot install the SSRF guard's network backend")
        trusted = {proxy.url.host.lower().rstrip(".")} if proxy is not None else set()
        pool._network_backend = self.guard.httpcore_backend(inner, trusted)

    def _aiohttp_session_factory(self, limits: httpx.Limits) -> Any:
        import aiohttp

        guard = self.guard

        def factory() -> aiohttp.ClientSession:
            resolver = guard.aiohttp_resolver() if guard is not None else None
            connector = aiohttp.TCPConnector(
                limit=limits.max_connections or 0,
                limit_per_host=0,
                keepalive_timeout=limits.keepalive_expiry or 30,
                ssl=self.s.verify_tls,
                resolver=resolver,
                ttl_dns_cache=60,
            )
            return aiohttp.ClientSession(connector=connector, auto_decompress=False, trust_env=False)

        return factory

    async def close(self) -> None:
        await self.client.aclose()
        for t in self._proxy_transports.values():
            await t.aclose()

    def _proxy_transport(self, proxy: str | None) -> httpx.AsyncBaseTransport:
        """The connection pool for ``meta['proxy']`` (``None``/empty: no proxy), made on first use."""
        key = proxy or ""
        t = self._proxy_transports.get(key)
        if t is not None:
            return t
        if len(self._proxy_transports) >= MAX_PROXIES:
            raise DownloadError("too_many_proxies", f"more than {MAX_PROXIES} distinct meta['proxy'] values")
        try:
            px = httpx.Proxy(proxy) if proxy else None
        except (ValueError, TypeError) as exc:
            raise DownloadError("invalid_proxy", f"meta['proxy'] {str(proxy)[:200]!r}: {exc}") from None
        limits = self._limits
        if self.s.http_transport == "aiohttp":
            from httpx_aiohttp import AiohttpTransport

            t = AiohttpTransport(
                verify=self.s.verify_tls, limits=limits, proxy=px, client=self._aiohttp_session_factory(limits)
            )
        else:
            t = httpx.AsyncHTTPTransport(verify=self.s.verify_tls, limits=limits, proxy=px)
            if self.guard is not None:
                # the connected address is checked, the proxy's included: a spider's meta['proxy'] is
                # checked like any target (its lookup in _guard could be rebound)
                self._guard_httpcore(t, None)
        self._proxy_transports[key] = t
        return t

    # Politeness (concurrency_per_host, download_delay) is the store's: its frontier leases a request
    # only when its download slot is ready and has a free concurrency slot, for every worker of the
    # crawl together (backends/frontier.py). Within one lease, a retry waits at least the delay.

    async def _guard(self, url: str, proxy: str | None = None) -> None:
        """The SSRF check before connecting to ``url`` (raises SSRFRefused); through ``proxy`` (a
        per-request ``meta['proxy']``) both the proxy and the target are resolved and checked here."""
        assert self.guard is not None
        if proxy:
            await self.guard.resolve_and_check(proxy)
            await self.guard.resolve_and_check(url)
            return
        if not self.s.proxy:
            # names are resolved and checked at connect time, in the lookup the transport connects to
            # (aiohttp's resolver, or the guard's httpcore backend): a lookup here could be rebound
            await self.guard.check_url(url)
        else:  # a proxy resolves the target itself: check its name and its resolution here
            await self.guard.resolve_and_check(url)

    # -- robots.txt --------------------------------------------------------------------------
    # Each origin's robots.txt is read once per crawl, not once per worker: this process's own copy
    # first, then the store (Backend.robots_get: one round trip), then the network, whose answer goes
    # to the store for every other worker (docs/distributed.md, "robots.txt"). Two workers that start
    # on one origin together: one claims it (Backend.robots_claim), the other polls the store for its
    # answer, never longer than download_timeout, then fetches itself. A store that fails or holds a
    # hostile entry never costs the page: the worker fetches robots.txt itself (counted).
    async def allowed_by_robots(self, url: str) -> bool:
        """Whether robots.txt of ``url``'s origin lets us fetch it.

        Raises :class:`~kubecrawl.errors.DownloadError` ``robots_unavailable`` (retryable) while the
        origin's robots.txt cannot be read (5xx, 429, network error, timeout): RFC 9309 says to
        assume complete disallow then, so the caller tries the request again later instead of
        fetching it or dropping it."""
        if not self.s.obey_robots:
            return True
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 -- raises ValueError when out of range or not a number
        except ValueError:
            return True  # fetch refuses it as invalid_url
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            return True  # fetch refuses it (skipped_scheme, invalid_url): no robots.txt to ask
        origin = f"{parts.scheme}://{parts.netloc}"
        entry = self._robots.get(origin)
        if entry is None or entry.until <= time.monotonic():
            lock = self._robots_locks.setdefault(origin, asyncio.Lock())
            async with lock:
                entry = self._robots.get(origin)
                if entry is None or entry.until <= time.monotonic():
                    entry = self._robots[origin] = await self._robots_entry(origin)
        if isinstance(entry, _RobotsUnavailable):
            raise DownloadError("robots_unavailable", f"robots.txt of {origin}: {entry.why}", retryable=True)
        if entry.rules is None:
            return True  # allow all
        return bool(entry.rules.can_fetch(url, self.s.user_agent))

    def crawl_delay(self, url: str) -> float | None:
        """The ``Crawl-delay`` of ``url``'s robots.txt for our user agent, once it has been read."""
        if not self.s.obey_robots:
            return None
        try:
            parts = urlsplit(url)
        except ValueError:
            return None
        entry = self._robots.get(f"{parts.scheme}://{parts.netloc}")
        if not isinstance(entry, _RobotsRules) or entry.rules is None:  # not read yet, allow-all or unavailable
            return None
        delay = entry.rules.crawl_delay(self.s.user_agent)
        return None if delay is None else float(delay)

    async def _robots_entry(self, origin: str) -> _RobotsRules | _RobotsUnavailable:
        """``origin``'s robots.txt from the store, or fetched (and then stored)."""
        store = self.robots_store
        if store is None or not store.shares_robots:
            kind, body, why = await self._fetch_robots(origin)
            self.stats.inc("robots_fetched")
            return self._robots_parsed(origin, kind, body, why, self._robots_ttl(kind))
        shared = await self._robots_stored(store, origin)
        if shared is not None:
            return shared
        claimed = True
        try:
            claimed = await store.robots_claim(origin, self.s.download_timeout + 5)
        except Exception as exc:
            self._robots_store_failed(origin, "claim", exc)
        if not claimed:  # another worker is fetching it: its answer, or ours after download_timeout
            end = time.monotonic() + self.s.download_timeout
            pause = 0.02
            while time.monotonic() < end:
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.5)
                shared = await self._robots_stored(store, origin)
                if shared is not None:
                    return shared
            log.info("robots.txt of %s: the worker fetching it did not store it in time; fetching it here", origin)
        kind, body, why = await self._fetch_robots(origin)
        self.stats.inc("robots_fetched")
        ttl = self._robots_ttl(kind)
        try:
            # written even when it is not to be shared (ttl 0: expired at once): the put ends our claim,
            # so the workers waiting for it fetch at once instead of waiting out download_timeout
            await store.robots_put(origin, kind, body, ttl, why)
        except Exception as exc:
            self._robots_store_failed(origin, "put", exc)
        return self._robots_parsed(origin, kind, body, why, ttl)

    async def _robots_stored(self, store: Backend, origin: str) -> _RobotsRules | _RobotsUnavailable | None:
        """The store's entry for ``origin``, parsed; None when it has none (or fails, or holds a bad one: counted)."""
        try:
            got = await store.robots_get(origin)
        except WireFormatError as exc:
            self.stats.inc("robots_store_invalid")
            log.warning("robots.txt of %s: the store's entry is not valid (%s); fetching it here", origin, exc)
            return None
        except Exception as exc:
            self._robots_store_failed(origin, "get", exc)
            return None
        if got is None:
            return None
        self.stats.inc("robots_shared")
        left = max(0.0, got.expires - store.clock())
        return self._robots_parsed(origin, got.kind, got.body, got.why, left)

    def _robots_store_failed(self, origin: str, what: str, exc: BaseException) -> None:
        self.stats.inc("robots_store_errors")
        log.warning("robots.txt of %s: the store failed (%s: %r); fetching it here", origin, what, exc)

    def _robots_ttl(self, kind: str) -> float:
        """How long an answer of ``kind`` is used: robots_refresh, or retry_backoff while unavailable."""
        return self.s.retry_backoff if kind == "unavailable" else self.s.robots_refresh

    def _robots_parsed(
        self, origin: str, kind: str, body: str, why: str, ttl: float
    ) -> _RobotsRules | _RobotsUnavailable:
        until = time.monotonic() + ttl
        if kind == "unavailable":
            return _RobotsUnavailable(why, until)
        if kind != "ok":
            return _RobotsRules(None, until)
        try:
            return _RobotsRules(Protego.parse(body), until)
        except Exception as exc:  # protego is lenient; this is a last resort
            log.warning("unparsable robots.txt at %s (%s): allowing all", origin, exc)
            return _RobotsRules(None, until)

    async def _fetch_robots(self, origin: str) -> tuple[str, str, str]:
        """robots.txt of ``origin`` as RFC 9309 says: at most 500 KiB parsed, up to five redirects (each
        hop through the SSRF guard), 4xx = allow all, unreachable = disallow for a while; all within
        one total deadline, so a robots.txt that trickles cannot hold the origin's requests.

        Returns ``(kind, body, why)``: ``ok`` with the text to parse, ``allow`` (everything allowed),
        or ``unavailable`` with why (backends/base.py RobotsEntry)."""
        url = origin + "/robots.txt"
        try:
            async with asyncio.timeout(self.s.download_timeout):
                for _hop in range(ROBOTS_REDIRECTS + 1):
                    if self.guard is not None:
                        await self._guard(url)
                    async with self.client.stream("GET", url, follow_redirects=False) as resp:
                        status = resp.status_code
                        location = resp.headers.get("location")
                        if status in _REDIRECTS and location:
                            nxt = resolve_url(url, location)
                            if nxt is None or check_request_url(nxt) is not None:
                                log.info("robots.txt of %s redirects to %r: allowing all", origin, location[:200])
                                return "allow", "", ""
                            url = nxt
                            continue
                        if status == 429 or status >= 500:
                            return self._robots_unavailable(origin, f"HTTP {status}")
                        if status >= 400:
                            return "allow", "", ""  # no robots.txt: everything allowed
                        content = await self._read_limited(resp, url, ROBOTS_MAX_BYTES, truncate=True)
                        break
                else:
                    log.info("robots.txt of %s: more than %d redirects: allowing all", origin, ROBOTS_REDIRECTS)
                    return "allow", "", ""
        except SSRFRefused as exc:
            # the guard refuses the hop: never fetched; the pages themselves meet the same guard
            log.info("robots.txt of %s refused by the SSRF guard (%s): allowing all", origin, exc)
            return "allow", "", ""
        except TimeoutError:
            return self._robots_unavailable(origin, f"not read within {self.s.download_timeout:.0f}s")
        except (httpx.HTTPError, httpx.InvalidURL, DownloadError, OSError) as exc:
            return self._robots_unavailable(origin, f"{type(exc).__name__}: {exc}")
        return "ok", content.decode("utf-8", "replace"), ""

    def _robots_unavailable(self, origin: str, why: str) -> tuple[str, str, str]:
        log.info("robots.txt of %s unavailable (%s): its requests wait and are tried again", origin, why)
        return "unavailable", "", why

    # -- fetching ----------------------------------------------------------------------------
    async def fetch(self, request: Request) -> Response:
        """Download ``request`` with retries.

        Returns the response (any status not in ``retry_http_codes``), raises :class:`Redirected`
        with the follow-up request, or :class:`~kubecrawl.errors.DownloadError` (``.request`` set)
        when it fails for good: at once for a kind that is not retryable, after ``max_retries``
        retries for one that is."""
        if self._not_before:  # a backoff of its slot: waited before the download's deadline starts
            await self._slot_ready(request)
        try:
            async with asyncio.timeout(self.deadline) as scope:
                return await self._fetch_retrying(request)
        except TimeoutError:
            if not scope.expired():
                raise
            raise DownloadError(
                "deadline",
                f"{request.url}: not downloaded within {self.deadline:g}s (download_deadline)",
                request.retries,
                request=request,
                retryable=False,
            ) from None

    async def _fetch_retrying(self, request: Request) -> Response:
        attempt = request.retries
        max_retries = self.s.max_retries
        meta = request.meta
        if meta and not _META_KEYS.isdisjoint(meta):  # Scrapy's dont_retry, max_retry_times
            if meta.get("dont_retry"):
                max_retries = 0
            elif isinstance(meta.get("max_retry_times"), int):
                max_retries = meta["max_retry_times"]
        while True:
            try:
                resp = await self._fetch_following_redirects(request)
            except DownloadError as exc:
                if not exc.retryable:
                    exc.request, exc.retries = request, attempt
                    raise
                wait = self._retry_wait(exc.retry_after, attempt + 1)
                if exc.kind == "http_429" or (exc.kind == "http_503" and exc.retry_after is not None):
                    await self._backoff(request, exc.kind[5:], wait)
                if attempt >= max_retries:
                    raise DownloadError(
                        exc.kind,
                        f"{request.url}: {exc} (after {attempt} retries)",
                        attempt,
                        request=request,
                        retryable=True,
                        retry_after=exc.retry_after,
                    ) from exc.__cause__
                attempt += 1
                self.stats.inc("retries")
                self.stats.inc(f"retry:{exc.kind}")
                if self.s.download_delay > 0:  # the lease holds the slot: its retry keeps the slot's delay
                    wait = max(wait, self.s.download_delay * random.uniform(*DELAY_SPREAD))
                log.debug("retry %d of %s in %.2fs: %s", attempt, request.url, wait, exc)
                await asyncio.sleep(wait)
                if self._not_before:  # another answer of the slot may have asked for longer meanwhile
                    await self._slot_ready(request)
            else:
                # not retried (dont_retry, or not in retry_http_codes): the site's word still holds
                status = resp.status
                if status == 429 or (status == 503 and "retry-after" in resp.headers):
                    ra = _retry_after(resp.headers)
                    if status == 429 or ra is not None:
                        await self._backoff(request, str(status), self._retry_wait(ra, attempt + 1))
                return resp

    def _retry_wait(self, retry_after: float | None, attempt: int) -> float:
        """The wait before retry ``attempt`` (1, 2, ...): the site's Retry-After, else exponential
        backoff from ``retry_backoff``; at most ``retry_max_wait``."""
        wait = retry_after
        if wait is None:
            wait = self.s.retry_backoff * (2 ** (attempt - 1)) * random.uniform(0.8, 1.2)
        return min(wait, self.s.retry_max_wait)

    # -- backoff shared by the crawl (429, 503 + Retry-After) ---------------------------------
    async def _backoff(self, request: Request, status: str, seconds: float) -> None:
        """The site asked to slow down: this process sends the slot nothing for ``seconds`` (other
        leases of it in the buffer wait too) and the store holds it back from every worker. A store
        that fails here costs nothing but the shared part (logged, counted ``slot_backoff_failed``)."""
        url, key = request.url, request_slot(request, self.s.slot_key)
        now = time.monotonic()
        nb = self._not_before
        if len(nb) > 1024:  # forget the backoffs that are over
            for k in [k for k, at in nb.items() if at <= now]:
                del nb[k]
        nb[key] = max(nb.get(key, 0.0), now + seconds)
        self.stats.inc("slot_backoff")
        if key not in self._backoff_logged and len(self._backoff_logged) < 100_000:
            self._backoff_logged.add(key)
            log.info(
                "%s answered %s: slot %s waits %.1fs for every worker of the crawl (logged once per slot; "
                "counted in slot_backoff)",
                url[:200],
                status,
                key,
                seconds,
            )
        if self.on_backoff is None:
            return
        try:
            await self.on_backoff(key, seconds)
        except Exception as exc:
            self.stats.inc("slot_backoff_failed")
            log.warning(
                "could not tell the store that slot %s waits %.1fs (%r): only this process waits", key, seconds, exc
            )

    async def _slot_ready(self, request: Request) -> None:
        """Wait out a backoff this process knows of for ``request``'s slot."""
        url, key = request.url, request_slot(request, self.s.slot_key)
        at = self._not_before.get(key)
        if at is None:
            return
        wait = at - time.monotonic()
        if wait <= 0:
            del self._not_before[key]
            return
        log.debug("%s waits %.2fs: its slot %s is backing off", url[:200], wait, key)
        await asyncio.sleep(wait)

    async def _fetch_following_redirects(self, request: Request) -> Response:
        """One hop. A redirect becomes a new request (raised as :class:`Redirected`) that goes
        through the scheduler, so its target is deduplicated, robots-checked and SSRF-checked
        like any other URL (Scrapy's RedirectMiddleware does the same)."""
        url, method, body = request.url, request.method, request.body
        status, headers, content = await self._fetch_once(request, url, method, body)
        if status in _REDIRECTS and "location" in headers and not self._keeps_status(request, status):
            raise Redirected(self._redirect_request(request, status, headers["location"]))
        if status in self.s.retry_http_codes and not request.meta.get("dont_retry"):
            raise DownloadError(f"http_{status}", f"HTTP {status}", retryable=True, retry_after=_retry_after(headers))
        if self.meta_refresh and method != "HEAD" and b"http-equiv" in content[:4096].lower():
            target = self._meta_refresh_target(request, headers, content)
            if target is not None:
                self.stats.inc("meta_refresh")
                raise Redirected(self._redirect_request(request, 303, target))
        return Response(url, status, headers, content, request)

    def _keeps_status(self, request: Request, status: int) -> bool:
        """Scrapy's RedirectMiddleware leaves a redirect alone with ``dont_redirect``, or when the
        status is one the spider handles (``handle_httpstatus_list``/``_all``)."""
        meta = request.meta
        if not meta:
            return status in self.spider_statuses
        if meta.get("dont_redirect") or meta.get("handle_httpstatus_all"):
            return True
        handled = meta.get("handle_httpstatus_list")
        return status in (handled if isinstance(handled, list) else self.spider_statuses)

    def _meta_refresh_target(self, request: Request, headers: httpx.Headers, content: bytes) -> str | None:
        """The URL of a ``<meta http-equiv=refresh>`` to follow (Scrapy's MetaRefreshMiddleware: HTML
        only, the first 4096 characters, a delay below ``meta_refresh_max_delay``), else None."""
        if request.meta.get("dont_redirect") or "html" not in headers.get("content-type", "text/html").lower():
            return None
        from w3lib.html import get_meta_refresh

        from .encoding import decode_body

        try:
            _, text = decode_body(content[: 4 * 4096], headers.get("content-type"))
            interval, target = get_meta_refresh(text[:4096], baseurl=request.url, ignore_tags=())
        except ValueError:
            return None
        if target is None or interval is None or interval >= self.s.meta_refresh_max_delay:
            return None
        return str(target)

    def _redirect_request(self, request: Request, status: int, location: str) -> Request:
        chain = [*list(request.meta.get("redirect_urls") or []), request.url]
        try:
            # resolved as a browser resolves a Location header (WHATWG URL Standard)
            resolved = resolve_url(request.url, location)
            if resolved is None or check_request_url(resolved) == "bad_url":
                raise ValueError("the URL Standard rejects it")
            target = resolved
            parts = urlsplit(target)
            port = parts.port  # ValueError when out of range or not a number
            canonical_url(target)  # the scheduler fingerprints it: refuse here what it could not
        except ValueError as exc:
            raise DownloadError("bad_redirect", f"redirect to invalid URL {location[:200]!r}: {exc}") from None
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise DownloadError("bad_redirect", f"redirect to non-http URL {target[:200]!r}")
        if target in chain:
            raise DownloadError("redirect_loop", f"redirect loop: {' -> '.join([*chain, target])}")
        if len(chain) > self.s.max_redirects:
            raise DownloadError("too_many_redirects", f"more than {self.s.max_redirects} redirects from {chain[0]}")
        method, body, headers = request.method, request.body, request.headers
        if (status == 303 and method not in ("GET", "HEAD")) or (status in (301, 302) and method == "POST"):
            method, body = "GET", b""
        if headers:
            drop = _BODY_HEADERS if method != request.method else frozenset()
            if not _same_origin(urlsplit(request.url), parts, port):
                drop = drop | _CREDENTIAL_HEADERS
            if drop:
                headers = {k: v for k, v in headers.items() if k.lower() not in drop}
        meta = {**request.meta, "redirect_urls": chain}
        return request.replace(
            url=target, method=method, body=body, headers=headers, meta=meta, priority=request.priority + 2, retries=0
        )

    async def _fetch_once(
        self, request: Request, url: str, method: str, body: bytes
    ) -> tuple[int, httpx.Headers, bytes]:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 -- raises ValueError when out of range or not a number
        except ValueError as exc:
            raise DownloadError("invalid_url", f"{url[:200]}: {exc}") from None
        if parts.scheme not in _DEFAULT_PORTS:
            raise DownloadError("skipped_scheme", f"not an http(s) URL: {url[:200]}")
        host = parts.hostname
        if not host:
            raise DownloadError("invalid_url", f"no host in {url[:200]}")
        try:
            if self.guard is not None:
                await self._guard(url, request.meta.get("proxy") if request.meta else None)
            resp = await self._send(request, url, method, body)
            try:
                content = await self._read_limited(resp, url)
            finally:
                await resp.aclose()
        except self._mapped_errors as exc:
            raise self._download_error(exc) from exc
        return resp.status_code, resp.headers, content

    def _download_error(self, exc: BaseException) -> DownloadError:
        """The table lookup: ``exc`` (a transport or guard exception) as a DownloadError."""
        # the transport's own error first (see _ERROR_KINDS), then httpx's; unknown: a network error
        hit = _lookup(self._error_kinds, exc.__cause__) or _lookup(self._error_kinds, exc)
        kind, retryable = hit or ("network", True)
        if kind == "network" and any(m in str(exc.__cause__ or exc) for m in _HEADER_BOUNDS):
            # the transport's bound on a response's header fields: the same answer would come back
            kind, retryable = "headers_too_large", False
        if retryable and is_ssrf_error(exc):  # the guard's refusal, wrapped by the transport
            kind, retryable = "ssrf_refused", False
        elif kind == "network" and any(m in str(e) for e in (exc, exc.__cause__) for m in _HEAD_TOO_LARGE):
            kind, retryable = "headers_too_large", False
        detail = str(exc) or type(exc).__name__
        return DownloadError(kind, f"{type(exc).__name__}: {detail}", retryable=retryable)

    async def _send(self, request: Request, url: str, method: str, body: bytes) -> httpx.Response:
        """httpx.Request to the transport, without AsyncClient.send's per-request machinery
        (auth flow, event hooks, redirect handling: none of which we use). Cookies are kept."""
        if request.headers:
            headers = self.base_headers.copy()
            headers.update(request.headers)
        else:
            headers = self.base_headers
        timeout, transport, jar_key, merge = self.timeout_ext, self.transport, None, True
        meta = request.meta
        if meta and not _META_KEYS.isdisjoint(meta):  # Scrapy's per-request meta keys
            if "download_timeout" in meta:
                timeout = httpx.Timeout(float(meta["download_timeout"])).as_dict()
            if "proxy" in meta:
                transport = self._proxy_transport(meta["proxy"])
            jar_key = meta.get("cookiejar")
            merge = not meta.get("dont_merge_cookies")
            if meta.get("http_user") is not None and _auth_applies(request):
                headers = headers.copy() if headers is self.base_headers else headers
                headers.setdefault("Authorization", _basic(meta["http_user"], meta.get("http_pass") or ""))
        if self.spider_auth is not None:
            headers = self._spider_auth(url, headers)
        req = httpx.Request(method, url, headers=headers, content=body or None, extensions={"timeout": timeout})
        jars = self.jars
        if jars is not None and merge:
            if jars.shared:  # shared_cookies: the store's copy first (kubecrawl/shared_cookies.py)
                await jars.sync(jar_key)  # type: ignore[attr-defined]
            jars.add_header(jar_key, req)
        resp = await transport.handle_async_request(req)
        if jars is not None and merge and "set-cookie" in resp.headers:
            resp.request = req  # httpx's own transport leaves it unset (AsyncClient.send sets it)
            if jars.shared:
                await jars.extract_shared(jar_key, resp)  # type: ignore[attr-defined]
            else:
                jars.extract(jar_key, resp)
        return resp

    def _spider_auth(self, url: str, headers: httpx.Headers) -> httpx.Headers:
        """Scrapy's HttpAuthMiddleware: the spider's ``http_user``/``http_pass`` go to
        ``http_auth_domain`` and its subdomains only (by default the first request's host)."""
        assert self.spider_auth is not None
        user, password, domain = self.spider_auth
        host = (urlsplit(url).hostname or "").lower()
        if self._auth_first_host:
            self.spider_auth = (user, password, host)
            self._auth_first_host = False
            domain = host
        if domain is None or host == domain or host.endswith("." + domain):
            headers = headers.copy() if headers is self.base_headers else headers
            headers.setdefault("Authorization", _basic(user, password))
        return headers

    def set_spider_auth(self, spider: Any) -> None:
        """Take ``http_user``/``http_pass``/``http_auth_domain`` from the spider, as Scrapy does."""
        user = getattr(spider, "http_user", None)
        if user is None:
            return
        password = getattr(spider, "http_pass", "") or ""
        if hasattr(spider, "http_auth_domain"):
            domain = spider.http_auth_domain
            self.spider_auth = (str(user), str(password), domain.lower() if domain else None)
        else:
            self.spider_auth = (str(user), str(password), "")
            self._auth_first_host = True

    async def _read_limited(
        self, resp: httpx.Response, url: str, limit: int | None = None, truncate: bool = False
    ) -> bytes:
        """The body, decoded, at most ``limit`` bytes (``max_body_size``): too_large past it, or with
        ``truncate`` the first ``limit`` bytes (robots.txt: RFC 9309 parses at least 500 KiB)."""
        limit = self.s.max_body_size if limit is None else limit
        declared = resp.headers.get("content-length")
        if not truncate and declared is not None and declared.isdigit() and int(declared) > limit:
            raise DownloadError("too_large", f"{url}: Content-Length {declared} exceeds max_body_size {limit}")
        chunks: list[bytes] = []
        total = 0
        async for chunk in resp.aiter_raw():  # as sent: compression.py decodes, with a bound
            total += len(chunk)
            if total > limit:
                if truncate and resp.headers.get("content-encoding") is None:
                    chunks.append(chunk[: len(chunk) - (total - limit)])
                    return b"".join(chunks)
                if truncate:
                    break  # compressed: decode what we have, bounded below
                raise DownloadError("too_large", f"{url}: body exceeds max_body_size {limit}")
            chunks.append(chunk)
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        coding = resp.headers.get("content-encoding")
        if coding is None:
            return body
        try:
            body, truncated = decode_body(body, coding, limit)
        except DownloadError as exc:
            if truncate and exc.kind == "too_large":
                return b""  # a compressed robots.txt past the bound: treated as empty (allow all)
            exc.args = (f"{url}: {exc}",)
            raise
        if truncated:
            self.stats.inc("decode_truncated")
            log.info("%s: %s body ended before its compressed stream did; kept what it held", url, coding)
        return body


def _basic(user: Any, password: Any) -> str:
    import base64

    raw = f"{user}:{password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def _auth_applies(request: Request) -> bool:
    """``meta['http_user']`` credentials go to the request's own host only: a redirect hop to
    another host does not get them (the first URL of the chain names the host)."""
    chain = request.meta.get("redirect_urls")
    if not chain:
        return True
    try:
        return urlsplit(str(chain[0])).hostname == urlsplit(request.url).hostname
    except ValueError:
        return False


def download_deadline(s: Settings) -> float:
    """The total time one download may take: ``download_deadline``, and with a shared store at most
    half of ``lease_seconds``, so that a slow download ends (counted) before its lease expires and
    another worker takes the same URL again (a server that trickles would otherwise hold the URL
    forever, walking from worker to worker)."""
    if s.role == "none":
        return s.download_deadline
    return min(s.download_deadline, s.lease_seconds / 2)


def _lookup(table: dict[type[BaseException], tuple[str, bool]], exc: BaseException | None) -> tuple[str, bool] | None:
    if exc is not None:
        for cls in type(exc).__mro__:
            hit = table.get(cls)
            if hit is not None:
                return hit
    return None


def _same_origin(a: SplitResult, b: SplitResult, b_port: int | None) -> bool:
    """Scheme, host and port (default ports filled in) all equal: the fetch standard's origin, so
    https -> http on one host is another origin, and so is http -> https (httpx keeps Authorization
    on that upgrade; Scrapy drops it but keeps Cookie: kubecrawl drops both)."""
    return (
        a.scheme == b.scheme
        and a.hostname == b.hostname
        and (a.port or _DEFAULT_PORTS.get(a.scheme)) == (b_port or _DEFAULT_PORTS.get(b.scheme))
    )


#: RFC 9309: crawlers parse at least the first 500 KiB of robots.txt, and follow at least five redirects
ROBOTS_MAX_BYTES = 500 * 1024
ROBOTS_REDIRECTS = 5


@dataclass(slots=True)
class _RobotsRules:
    """A read robots.txt: its rules (None: everything allowed: 4xx, a redirect off the web, refused by
    the guard, unparsable) until ``until`` (monotonic), when it is read again (robots_refresh)."""

    rules: Protego | None
    until: float


@dataclass(slots=True)
class _RobotsUnavailable:
    why: str
    until: float  # monotonic time after which robots.txt is fetched again


class Redirected(Exception):
    """The response was a redirect; ``request`` is the follow-up to schedule."""

    def __init__(self, request: Request) -> None:
        super().__init__(request.url)
        self.request = request


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
