"""Cookie jars shared by every process of a distributed crawl (setting ``shared_cookies``).

Each jar (one per ``meta['cookiejar']`` value, ``None`` the default) is a Redis HASH
``kc:{crawl}:cookies:<jar>`` (docs/contracts.md §3): field ``c:<identity>`` (JSON ``[domain, path,
name]``) holds the JSON of one cookie's attributes (:func:`~kubecrawl.cookies.cookie_to_json`,
never pickle); ``v`` is the jar's version, ``t`` and ``n:<domain>`` the counts its bounds are
checked against. Two scripts, each one round trip:

- **read** (``cookies_read.lua``) before a request, when this process's copy of the jar is older
  than ``shared_cookies_refresh`` seconds: the version only when it is unchanged, else the whole
  jar, which replaces the local copy. Concurrent requests wait for one read (a lock per jar), so
  it costs one round trip per jar per refresh interval, not one per request.
- **write** (``cookies_write.lua``) after a response whose ``Set-Cookie`` fields changed the jar,
  before the response reaches the spider (so requests its callback yields find the cookie stored):
  cookies kept (after the local RFC 6265 bounds), deletions (``Max-Age=0``, an expiry in the past).
  The script applies the jar's bounds (``cookies_per_domain``, ``cookies_total``) to the shared jar:
  a new cookie past them is refused and counted ``cookies_refused``. A cookie the store already
  holds unchanged (an expiry moved by less than :data:`EXPIRY_SLACK_S`) is not written again.

Expired cookies are dropped when a read finds them, and removed from the store only if they are
still the copy that expired (never a fresher one another process just wrote). A stored entry that is
not a cookie's JSON is skipped and counted ``cookies_invalid``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from http.cookiejar import Cookie
from typing import TYPE_CHECKING, Any

import httpx

from .backends.redis import _load_lua
from .cookies import BoundedCookieJar, CookieJars, cookie_from_json, cookie_identity, cookie_to_json
from .stats import Stats

if TYPE_CHECKING:
    from .backends.redis import RedisBackend

log = logging.getLogger(__name__)

#: a cookie whose expiry moved by less than this many seconds is not written again
EXPIRY_SLACK_S = 60
#: jar names longer than this are keyed by their SHA1
_MAX_TOKEN = 200


def jar_token(key: Any) -> str:
    """The jar's part of its Redis key: JSON of a str/int/bool/None jar name, else ``repr:``
    (what :meth:`CookieJars.get` keys an unhashable one by); long names by SHA1. Names a process
    takes for one jar (``1``, ``1.0``, ``True``) are one jar in the store too."""
    if isinstance(key, bool) or (isinstance(key, float) and key.is_integer()):
        key = int(key)  # one jar in a process (True == 1 == 1.0 as dict keys): one in the store too
    if key is None or isinstance(key, str | int | float):
        token = json.dumps(key, ensure_ascii=False)
    else:
        token = "repr:" + repr(key)
    if len(token) > _MAX_TOKEN:
        token = "sha1:" + hashlib.sha1(token.encode("utf-8", "surrogatepass")).hexdigest()
    return token


def _same(old: str | None, new: str) -> bool:
    """Is ``new`` what the store holds, but for an expiry moved by less than :data:`EXPIRY_SLACK_S`?"""
    if old is None:
        return False
    if old == new:
        return True
    a, b = json.loads(old), json.loads(new)
    ea, eb = a.pop("expires", None), b.pop("expires", None)
    if a != b or (ea is None) != (eb is None):
        return False
    return ea is None or abs(ea - eb) < EXPIRY_SLACK_S


@dataclass
class _JarState:
    key: str  # the Redis key
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    synced_at: float = float("-inf")  # time.monotonic() of the last read
    version: str = ""  # the store's version the local copy is of ('' = none read yet)
    #: identity -> JSON, as the store held it at the last read or write
    known: dict[str, str] = field(default_factory=dict)


class SharedCookieJars(CookieJars):
    """:class:`CookieJars` whose jars live in Redis too (module docstring)."""

    shared = True

    def __init__(self, per_domain: int, total: int, stats: Stats, store: RedisBackend, refresh: float) -> None:
        super().__init__(per_domain, total, stats)
        self.store = store
        self.refresh = refresh
        self.states: dict[Any, _JarState] = {}
        r = store.r
        self._read = r.register_script(_load_lua("cookies_read"))
        self._write = r.register_script(_load_lua("cookies_write"))
        self._invalid_logged = False
        self._refused_logged = False

    def _state(self, key: Any) -> _JarState:
        try:
            st = self.states.get(key)
        except TypeError:
            key = repr(key)
            st = self.states.get(key)
        if st is None:
            st = self.states[key] = _JarState(self.store.k.cookie_jar(jar_token(key)))
        return st

    async def sync(self, key: Any) -> None:
        """Before a request: bring the local copy of jar ``key`` up to date if it is older than ``refresh``."""
        st = self._state(key)
        if time.monotonic() - st.synced_at < self.refresh:
            return
        async with st.lock:
            if time.monotonic() - st.synced_at < self.refresh:
                return  # another request read it while this one waited
            await self._read_jar(key, st)

    async def _read_jar(self, key: Any, st: _JarState) -> None:
        read = self._read
        res = await self.store._call("cookies", lambda: read(keys=[st.key], args=[st.version]))
        st.synced_at = time.monotonic()
        version = _text(res[0])
        if len(res) == 1:
            return
        flat = res[1]
        known: dict[str, str] = {}
        cookies: list[Cookie] = []
        expired: list[tuple[str, str, str]] = []  # identity, json, domain
        now = time.time()
        for i in range(0, len(flat), 2):
            name = _text(flat[i])
            if not name.startswith("c:"):
                continue  # the version and the counts
            ident, raw = name[2:], _text(flat[i + 1])
            try:
                c = cookie_from_json(raw)
            except (ValueError, TypeError) as exc:
                self.stats.inc("cookies_invalid")
                if not self._invalid_logged:
                    self._invalid_logged = True
                    log.warning(
                        "shared cookie jar %s: entry %r is not a cookie (%s), skipped; "
                        "further ones are only counted (cookies_invalid)",
                        st.key,
                        ident[:200],
                        exc,
                    )
                continue
            if c.expires is not None and c.expires <= now:
                expired.append((ident, raw, c.domain))
                continue
            known[ident] = raw
            cookies.append(c)
        st.known = known
        jar = self.get(key, create=True)
        if jar is None:
            return
        assert isinstance(jar.jar, BoundedCookieJar)
        jar.jar.replace_all(cookies)
        st.version = version
        if expired:
            ops: list[Any] = []
            for ident, raw, domain in expired:
                ops += ["x", ident, raw, domain]
            await self._send(key, st, ops)

    async def extract_shared(self, key: Any, response: httpx.Response) -> None:
        """After a response with ``Set-Cookie``: the local jar as :meth:`extract`, then what changed to the store."""
        st = self._state(key)
        async with st.lock:
            jar = self.get(key, create=True)
            if jar is None:
                return
            inner = jar.jar
            assert isinstance(inner, BoundedCookieJar)
            inner.tracking = []
            try:
                self.extract(key, response)
            finally:
                changes, inner.tracking = inner.tracking, None
            ops: list[Any] = []
            fresh = time.monotonic() - st.synced_at < self.refresh
            for kind, what in changes:
                if kind == "s":
                    ident = cookie_identity(what.domain, what.path, what.name)
                    raw = cookie_to_json(what)
                    if _same(st.known.get(ident), raw):
                        continue
                    ops += ["s", ident, raw, what.domain]
                    st.known[ident] = raw
                else:
                    domain, path, name = what
                    ident = cookie_identity(domain, path, name)
                    if ident not in st.known and fresh:
                        continue  # the store did not hold it a moment ago
                    ops += ["d", ident, "", domain]
                    st.known.pop(ident, None)
            if ops:
                await self._send(key, st, ops)

    async def _send(self, key: Any, st: _JarState, ops: list[Any]) -> None:
        write = self._write
        args = [self.per_domain, self.total, *ops]
        res = await self.store._call("cookies", lambda: write(keys=[st.key], args=args))
        version, refused = _text(res[0]), int(res[1])
        if st.version and version == str(int(st.version) + 1):
            st.version = version  # only this write changed it since the last read
        if refused:
            self.stats.inc("cookies_refused", refused)
            if not self._refused_logged:
                self._refused_logged = True
                log.warning(
                    "shared cookie jar %s is full (cookies_per_domain %d, cookies_total %d): refused %d cookie(s); "
                    "further refusals are only counted (cookies_refused)",
                    st.key,
                    self.per_domain,
                    self.total,
                    refused,
                )
            # the local copy holds what the store refused: read the whole jar again before the next request
            st.synced_at, st.version = float("-inf"), ""


def _text(v: Any) -> str:
    return v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else str(v)
