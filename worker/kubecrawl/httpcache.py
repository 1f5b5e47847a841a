"""A filesystem HTTP cache for development (Scrapy's ``HTTPCACHE_*`` with its default ``DummyPolicy``).

With ``http_cache`` on, every HTTP exchange (pages, robots.txt, redirects and error statuses alike) is
stored the first time and answered from the cache afterwards, whatever the response's own caching
headers say: a second run of a spider makes no request to the site. It sits at the downloader's
boundary with the network, as a wrapper of the HTTP transport (one hook in ``Downloader._make_client``),
so everything above it (retries, redirects as new requests, size limits, decompression, cookies) works
on a cached response exactly as on a fresh one. The SSRF guard still checks every URL first.

Layout: ``<dir>/<key[:2]>/<key>/body`` (the body as received, still content-encoded) and ``meta.json``
(URL, method, status, headers, time, body length and SHA-256), written body first and meta last, each
through a temporary file and a rename, so a reader sees a whole entry or none. An entry whose body does
not match its metadata is a miss. No pickle. The key is the SHA-1 of method, URL and body (headers do
not count, as in Scrapy's request fingerprint). ``http_cache_expiration`` > 0 makes older entries
misses (re-fetched and stored again); statuses in ``http_cache_ignore_http_codes`` are never stored.
Counters: ``httpcache/hit``, ``httpcache/miss``, ``httpcache/store``, ``httpcache/uncacheable``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from .settings import Settings
    from .stats import Stats

log = logging.getLogger(__name__)

FORMAT = 1


def cache_dir(settings: Settings) -> Path:
    """The cache's directory: ``http_cache_dir``, a relative one under ``./.kubecrawl/``."""
    from .project import DATA_DIR

    d = settings.http_cache_dir
    return d if d.is_absolute() else Path.cwd() / DATA_DIR / d


def cache_key(request: httpx.Request) -> str:
    h = hashlib.sha1(usedforsecurity=False)
    h.update(json.dumps([request.method, str(request.url)]).encode())
    h.update(b"\0")
    h.update(request.content)
    return h.hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _Replay(httpx.AsyncByteStream):
    """The bytes already read, then the rest of the original stream (a body too large to store)."""

    def __init__(self, head: list[bytes], rest: AsyncIterator[bytes], original: httpx.Response) -> None:
        self._head, self._rest, self._original = head, rest, original

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._head:
            yield chunk
        async for chunk in self._rest:
            yield chunk

    async def aclose(self) -> None:
        await self._original.aclose()


class CachingTransport(httpx.AsyncBaseTransport):
    """An httpx transport that answers from the cache, else asks ``inner`` and stores the answer."""

    def __init__(self, inner: httpx.AsyncBaseTransport, settings: Settings, stats: Stats) -> None:
        self.inner = inner
        self.dir = cache_dir(settings)
        self.expiration = settings.http_cache_expiration
        self.ignore = frozenset(settings.http_cache_ignore_http_codes)
        self.limit = settings.max_body_size
        self.stats = stats
        log.info("HTTP cache on (development): %s", self.dir)

    def _entry(self, key: str) -> Path:
        return self.dir / key[:2] / key

    def _load(self, key: str) -> tuple[dict[str, Any], bytes] | None:
        entry = self._entry(key)
        try:
            meta = json.loads((entry / "meta.json").read_bytes())
            if meta.get("format") != FORMAT:
                return None
            if 0 < self.expiration < time.time() - float(meta["time"]):
                return None
            body = (entry / "body").read_bytes()
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if len(body) != meta.get("length") or hashlib.sha256(body).hexdigest() != meta.get("sha256"):
            log.info("HTTP cache: entry %s does not match its metadata: fetched again", entry)
            return None
        return meta, body

    def _store(self, key: str, request: httpx.Request, response: httpx.Response, body: bytes) -> None:
        entry = self._entry(key)
        entry.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT,
            "url": str(request.url),
            "method": request.method,
            "status": response.status_code,
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in response.headers.raw],
            "time": time.time(),
            "length": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
        }
        _write_atomic(entry / "body", body)
        _write_atomic(entry / "meta.json", json.dumps(meta).encode())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        key = cache_key(request)
        hit = await asyncio.to_thread(self._load, key)
        if hit is not None:
            meta, body = hit
            self.stats.inc("httpcache/hit")
            headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in meta["headers"]]
            return httpx.Response(meta["status"], headers=headers, stream=httpx.ByteStream(body), request=request)
        self.stats.inc("httpcache/miss")
        response = await self.inner.handle_async_request(request)
        if response.status_code in self.ignore:
            self.stats.inc("httpcache/uncacheable")
            return response
        chunks: list[bytes] = []
        total = 0
        rest = response.stream.__aiter__()  # type: ignore[union-attr]
        try:
            async for chunk in rest:
                chunks.append(chunk)
                total += len(chunk)
                if total > self.limit:  # the downloader refuses it (too_large): not stored
                    self.stats.inc("httpcache/uncacheable")
                    return httpx.Response(
                        response.status_code,
                        headers=response.headers.raw,
                        stream=_Replay(chunks, rest, response),
                        request=request,
                    )
        finally:
            if total <= self.limit:
                await response.aclose()
        body = b"".join(chunks)
        try:
            await asyncio.to_thread(self._store, key, request, response, body)
            self.stats.inc("httpcache/store")
        except OSError as exc:  # the crawl goes on; the page is fetched again next time
            self.stats.inc("httpcache/store_failed")
            log.warning("HTTP cache: cannot store %s: %s", request.url, exc)
        return httpx.Response(
            response.status_code, headers=response.headers.raw, stream=httpx.ByteStream(body), request=request
        )

    async def aclose(self) -> None:
        await self.inner.aclose()
