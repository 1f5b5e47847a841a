"""Downloading: one shared ``httpx.AsyncClient``, politeness, retries, redirects, size and robots limits.

The client runs on aiohttp's transport by default (``httpx-aiohttp``; 3-4x less CPU per request than
httpx's default transport, see docs/benchmarks.md) and keeps httpx's API. Redirects are followed here,
hop by hop, so every hop passes the same checks (robots.txt, SSRF guard, loop guard).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from protego import Protego

from .netguard import SSRFGuard, SSRFRefused, is_ssrf_error
from .request import Request
from .response import Response
from .settings import Settings
from .stats import Stats

log = logging.getLogger(__name__)

_REDIRECTS = {301, 302, 303, 307, 308}


class DownloadError(Exception):
    """A request that failed for good; ``kind`` is the counter name (``timeout``, ``http_503``...)."""

    def __init__(self, kind: str, message: str, retries: int = 0) -> None:
        super().__init__(message)
        self.kind = kind
        self.retries = retries


@dataclass(slots=True)
class _Slot:
    sem: asyncio.Semaphore
    next_at: float = 0.0
    lock: asyncio.Lock | None = None


class Downloader:
    def __init__(self, settings: Settings, guard: SSRFGuard | None = None, stats: Stats | None = None) -> None:
        self.s = settings
        self.stats = stats if stats is not None else Stats()
        self.guard = guard
        self._slots: dict[str, _Slot] = {}
        self._robots: dict[str, Protego | None] = {}
        self._robots_locks: dict[str, asyncio.Lock] = {}
        self.client = self._make_client()

    def _make_client(self) -> httpx.AsyncClient:
        s = self.s
        limits = httpx.Limits(
            max_connections=s.concurrency,
            max_keepalive_connections=s.concurrency,
            keepalive_expiry=30,
        )
        headers = {"User-Agent": s.user_agent, "Accept-Encoding": "gzip, deflate", **s.default_headers}
        timeout = httpx.Timeout(s.download_timeout)
        proxy = httpx.Proxy(s.proxy) if s.proxy else None
        if s.http_transport == "aiohttp":
            from httpx_aiohttp import AiohttpTransport

            transport: httpx.AsyncBaseTransport = AiohttpTransport(
                verify=s.verify_tls,
                limits=limits,
                proxy=proxy,
                client=self._aiohttp_session_factory(limits),
            )
        else:
            transport = httpx.AsyncHTTPTransport(verify=s.verify_tls, limits=limits, proxy=proxy)
        # The hot path sends httpx.Requests straight to the transport (see _fetch_once); the client,
        # on the same transport and connection pool, serves everything else (robots.txt).
        self.transport = transport
        self.base_headers = httpx.Headers(headers)
        self.timeout_ext = timeout.as_dict()
        self.cookies = httpx.Cookies()
        return httpx.AsyncClient(
            transport=transport, headers=headers, timeout=timeout, follow_redirects=False, trust_env=False
        )

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

    # -- politeness --------------------------------------------------------------------------
    def _slot(self, host: str) -> _Slot:
        slot = self._slots.get(host)
        if slot is None:
            slot = self._slots[host] = _Slot(asyncio.Semaphore(self.s.concurrency_per_host))
            if self.s.download_delay > 0:
                slot.lock = asyncio.Lock()
        return slot

    async def _wait_delay(self, slot: _Slot) -> None:
        if slot.lock is None:
            return
        async with slot.lock:
            now = time.monotonic()
            if slot.next_at > now:
                await asyncio.sleep(slot.next_at - now)
            # randomised like Scrapy's RANDOMIZE_DOWNLOAD_DELAY: 0.5x..1.5x
            slot.next_at = time.monotonic() + self.s.download_delay * random.uniform(0.5, 1.5)

    # -- robots.txt --------------------------------------------------------------------------
    async def allowed_by_robots(self, url: str) -> bool:
        if not self.s.obey_robots:
            return True
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in self._robots:
            lock = self._robots_locks.setdefault(origin, asyncio.Lock())
            async with lock:
                if origin not in self._robots:
                    self._robots[origin] = await self._fetch_robots(origin)
        rp = self._robots[origin]
        return True if rp is None else bool(rp.can_fetch(url, self.s.user_agent))

    async def _fetch_robots(self, origin: str) -> Protego | None:
        url = origin + "/robots.txt"
        try:
            if self.guard is not None:
                await self.guard.check_url(url)
            resp = await self.client.get(url, follow_redirects=True)
        except (httpx.HTTPError, SSRFRefused) as exc:
            log.info("robots.txt of %s unreachable (%s): allowing all", origin, exc)
            return None
        if resp.status_code >= 400:
            return None  # no robots.txt: everything allowed
        try:
            return Protego.parse(resp.content[:500_000].decode("utf-8", "replace"))
        except Exception as exc:  # protego is lenient; this is a last resort
            log.warning("unparsable robots.txt at %s (%s): allowing all", url, exc)
            return None

    # -- fetching ----------------------------------------------------------------------------
    async def fetch(self, request: Request) -> Response:
        """Download ``request`` with retries; raises :class:`DownloadError` when it fails for good."""
        attempt = request.retries
        while True:
            try:
                return await self._fetch_following_redirects(request)
            except _Retryable as exc:
                if attempt >= self.s.max_retries:
                    raise DownloadError(exc.kind, f"{request.url}: {exc} (after {attempt} retries)", attempt) from None
                attempt += 1
                self.stats.inc("retries")
                self.stats.inc(f"retry:{exc.kind}")
                wait = exc.retry_after
                if wait is None:
                    wait = self.s.retry_backoff * (2 ** (attempt - 1)) * random.uniform(0.8, 1.2)
                wait = min(wait, self.s.retry_max_wait)
                log.debug("retry %d of %s in %.2fs: %s", attempt, request.url, wait, exc)
                await asyncio.sleep(wait)

    async def _fetch_following_redirects(self, request: Request) -> Response:
        """One hop. A redirect becomes a new request (raised as :class:`Redirected`) that goes
        through the scheduler, so its target is deduplicated, robots-checked and SSRF-checked
        like any other URL (Scrapy's RedirectMiddleware does the same)."""
        url, method, body = request.url, request.method, request.body
        status, headers, content = await self._fetch_once(request, url, method, body)
        if status in _REDIRECTS and "location" in headers:
            raise Redirected(self._redirect_request(request, status, headers["location"]))
        if status in self.s.retry_http_codes:
            raise _Retryable(f"http_{status}", f"HTTP {status}", _retry_after(headers))
        return Response(url, status, headers, content, request)

    def _redirect_request(self, request: Request, status: int, location: str) -> Request:
        chain = [*list(request.meta.get("redirect_urls") or []), request.url]
        target = urljoin(request.url, location.strip())
        if not target.startswith(("http://", "https://")):
            raise DownloadError("bad_redirect", f"redirect to non-http URL {target[:200]!r}")
        if target in chain:
            raise DownloadError("redirect_loop", f"redirect loop: {' -> '.join([*chain, target])}")
        if len(chain) > self.s.max_redirects:
            raise DownloadError("too_many_redirects", f"more than {self.s.max_redirects} redirects from {chain[0]}")
        method, body = request.method, request.body
        if status == 303 or (status in (301, 302) and method == "POST"):
            method, body = "GET", b""
        meta = {**request.meta, "redirect_urls": chain}
        return request.replace(
            url=target, method=method, body=body, meta=meta, priority=request.priority + 2, retries=0
        )

    async def _fetch_once(
        self, request: Request, url: str, method: str, body: bytes
    ) -> tuple[int, httpx.Headers, bytes]:
        host = urlsplit(url).hostname or ""
        if self.guard is not None:
            try:
                if self.s.http_transport == "aiohttp":
                    await self.guard.check_url(url)  # names are checked again by the resolver
                else:
                    await self.guard.resolve_and_check(url)
            except SSRFRefused as exc:
                raise DownloadError("ssrf_refused", str(exc)) from None
        slot = self._slot(host)
        async with slot.sem:
            await self._wait_delay(slot)
            try:
                resp = await self._send(request, url, method, body)
            except httpx.TimeoutException as exc:
                raise _Retryable("timeout", f"timeout: {exc or type(exc).__name__}") from None
            except SSRFRefused as exc:
                raise DownloadError("ssrf_refused", str(exc)) from None
            except httpx.TransportError as exc:
                if is_ssrf_error(exc):
                    raise DownloadError("ssrf_refused", str(exc)) from None
                raise _Retryable("network", f"{type(exc).__name__}: {exc}") from None
            except httpx.InvalidURL as exc:
                raise DownloadError("invalid_url", str(exc)) from None
            try:
                content = await self._read_limited(resp, url)
            except httpx.TimeoutException as exc:
                raise _Retryable("timeout", f"timeout reading body: {exc or type(exc).__name__}") from None
            except httpx.TransportError as exc:
                raise _Retryable("network", f"{type(exc).__name__} reading body: {exc}") from None
            finally:
                await resp.aclose()
        return resp.status_code, resp.headers, content

    async def _send(self, request: Request, url: str, method: str, body: bytes) -> httpx.Response:
        """httpx.Request to the transport, without AsyncClient.send's per-request machinery
        (auth flow, event hooks, redirect handling: none of which we use). Cookies are kept."""
        if request.headers:
            headers = self.base_headers.copy()
            headers.update(request.headers)
        else:
            headers = self.base_headers
        req = httpx.Request(
            method, url, headers=headers, content=body or None, extensions={"timeout": self.timeout_ext}
        )
        cookies = self.cookies
        if cookies:
            cookies.set_cookie_header(req)
        resp = await self.transport.handle_async_request(req)
        if "set-cookie" in resp.headers:
            cookies.extract_cookies(resp)
        return resp

    async def _read_limited(self, resp: httpx.Response, url: str) -> bytes:
        limit = self.s.max_body_size
        declared = resp.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise DownloadError("too_large", f"{url}: Content-Length {declared} exceeds max_body_size {limit}")
        chunks: list[bytes] = []
        total = 0
        async for chunk in resp.aiter_bytes():
            total += len(chunk)
            if total > limit:
                raise DownloadError("too_large", f"{url}: body exceeds max_body_size {limit}")
            chunks.append(chunk)
        return b"".join(chunks)


class Redirected(Exception):
    """The response was a redirect; ``request`` is the follow-up to schedule."""

    def __init__(self, request: Request) -> None:
        super().__init__(request.url)
        self.request = request


class _Retryable(Exception):
    def __init__(self, kind: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after


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
