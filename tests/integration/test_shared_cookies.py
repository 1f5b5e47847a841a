"""Shared cookie jars (setting shared_cookies) over a real redis-server.

Two :class:`SharedCookieJars` on one Redis stand for two slaves; responses are real ``httpx`` objects
with ``Set-Cookie`` fields, parsed by ``http.cookiejar`` as in a crawl. The crawl-level test (master +
2 slaves behind a login) is ``test_shared_cookies_cluster.py``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import httpx
import pytest
import redis.asyncio as aioredis

from kubecrawl.backends.redis import Keys, RedisBackend
from kubecrawl.cookies import cookie_identity
from kubecrawl.shared_cookies import SharedCookieJars, jar_token
from kubecrawl.stats import Stats

if TYPE_CHECKING:
    from tests.integration.conftest import RedisServer

URL = "http://site.test/account/home"
CRAWL = "jars"


@pytest.fixture
async def make_jars(redis_server: RedisServer) -> AsyncIterator[Callable[..., SharedCookieJars]]:
    made: list[RedisBackend] = []

    def make(per_domain: int = 50, total: int = 3000, refresh: float = 0.0) -> SharedCookieJars:
        store = RedisBackend(aioredis.Redis.from_url(redis_server.url), CRAWL)
        made.append(store)
        return SharedCookieJars(per_domain, total, Stats(), store, refresh)

    yield make
    for store in made:
        await store.r.aclose()


def response(*set_cookie: str, url: str = URL) -> httpx.Response:
    req = httpx.Request("GET", url)
    return httpx.Response(200, headers=[("set-cookie", v) for v in set_cookie], request=req)


async def cookie_header(jars: SharedCookieJars, key: object = None, url: str = URL) -> str | None:
    await jars.sync(key)
    req = httpx.Request("GET", url)
    jars.add_header(key, req)
    value = req.headers.get("cookie")
    if value is None or "; " not in value:
        return value
    return "; ".join(sorted(value.split("; ")))  # the order of a shared jar's cookies is the store's


async def test_a_cookie_set_by_one_process_is_sent_by_another(make_jars, redis_server: RedisServer) -> None:
    a, b = make_jars(), make_jars()
    assert await cookie_header(b) is None
    await a.extract_shared(None, response("sid=s3cr3t; Path=/; HttpOnly; Max-Age=3600"))
    assert await cookie_header(b) == "sid=s3cr3t"
    # stored as JSON under its identity, in the jar's hash-tagged key
    raw = redis_server.client().hgetall(Keys(CRAWL).cookie_jar("null"))
    entry = json.loads(raw[b"c:" + cookie_identity("site.test", "/", "sid").encode()])
    assert entry["value"] == "s3cr3t" and entry["rest"] == {"HttpOnly": None} and entry["expires"] > 0
    assert raw[b"t"] == b"1" and raw[b"n:site.test"] == b"1"


async def test_jars_are_separate_by_meta_cookiejar(make_jars) -> None:
    a, b = make_jars(), make_jars()
    await a.extract_shared("alice", response("sid=A; Path=/"))
    await a.extract_shared(2, response("sid=two; Path=/"))
    assert await cookie_header(b, "alice") == "sid=A"
    assert await cookie_header(b, 2) == "sid=two"
    assert await cookie_header(b, "2") is None  # the str "2" is another jar than the int 2
    assert await cookie_header(b) is None


async def test_max_age_zero_deletes_for_every_process(make_jars, redis_server: RedisServer) -> None:
    a, b = make_jars(), make_jars()
    await a.extract_shared(None, response("sid=s3cr3t; Path=/", "theme=dark; Path=/"))
    assert await cookie_header(b) == "sid=s3cr3t; theme=dark"
    # b logs out: the server expires sid
    await b.extract_shared(None, response("sid=; Path=/; Max-Age=0"))
    assert await cookie_header(a) == "theme=dark"
    raw = redis_server.client().hgetall(Keys(CRAWL).cookie_jar("null"))
    assert raw[b"t"] == b"1" and sum(k.startswith(b"c:") for k in raw) == 1


async def test_expired_cookie_is_dropped_and_removed_from_the_store(make_jars, redis_server: RedisServer) -> None:
    a, b = make_jars(), make_jars()
    await a.extract_shared(None, response("sid=old; Path=/; Max-Age=3600", "keep=1; Path=/"))
    key = Keys(CRAWL).cookie_jar("null")
    field = "c:" + cookie_identity("site.test", "/", "sid")
    client = redis_server.client()
    stale = json.loads(client.hget(key, field))
    stale["expires"] = 1_000_000_000  # 2001: long expired
    client.hset(key, field, json.dumps(stale))
    client.hincrby(key, "v", 1)
    assert await cookie_header(b) == "keep=1"
    assert not client.hexists(key, field)
    assert client.hget(key, "t") == b"1"


async def test_an_expired_copy_never_removes_a_fresher_one(make_jars, redis_server: RedisServer) -> None:
    """The removal of an expired cookie names the copy that expired (cookies_write.lua, op x)."""
    a = make_jars()
    await a.extract_shared(None, response("sid=new; Path=/; Max-Age=3600"))
    key = Keys(CRAWL).cookie_jar("null")
    ident = cookie_identity("site.test", "/", "sid")
    client = redis_server.client()
    fresh = client.hget(key, "c:" + ident)
    stale = json.dumps({**json.loads(fresh), "value": "old", "expires": 1_000_000_000})
    await a._send(None, a._state(None), ["x", ident, stale, "site.test"])
    assert client.hget(key, "c:" + ident) == fresh


async def test_bounds_hold_for_the_shared_jar_and_refusals_are_counted(make_jars, redis_server: RedisServer) -> None:
    a, b = make_jars(per_domain=2), make_jars(per_domain=2)
    await a.extract_shared(None, response("one=1; Path=/", "two=2; Path=/"))
    # b's local jar has room (it holds nothing), the shared one has not
    await b.extract_shared(None, response("three=3; Path=/"))
    assert b.stats["cookies_refused"] == 1
    client = redis_server.client()
    raw = client.hgetall(Keys(CRAWL).cookie_jar("null"))
    assert sorted(k for k in raw if k.startswith(b"c:")) == sorted(
        b"c:" + cookie_identity("site.test", "/", n).encode() for n in ("one", "two")
    )
    # b's next request carries what the store holds, not what it refused
    assert await cookie_header(b) == "one=1; two=2"
    # replacing a held cookie is not a new one: never refused
    await b.extract_shared(None, response("two=22; Path=/"))
    assert b.stats["cookies_refused"] == 1
    assert await cookie_header(a) == "one=1; two=22"


async def test_unchanged_cookies_are_not_written_again(make_jars) -> None:
    a = make_jars(refresh=3600)
    await a.extract_shared(None, response("sid=s; Path=/; Max-Age=3600"))
    writes = a.store.calls.get("cookies", 0)
    for _ in range(20):  # a site that sets its session cookie on every page
        await a.extract_shared(None, response("sid=s; Path=/; Max-Age=3600"))
    assert a.store.calls.get("cookies", 0) == writes
    await a.extract_shared(None, response("sid=t; Path=/; Max-Age=3600"))
    assert a.store.calls.get("cookies", 0) == writes + 1


async def test_reads_are_one_round_trip_per_refresh_not_per_request(make_jars) -> None:
    a, b = make_jars(), make_jars(refresh=3600)
    await a.extract_shared(None, response("sid=s; Path=/"))
    for _ in range(50):
        assert await cookie_header(b) == "sid=s"
    assert b.store.calls == {"cookies": 1}


async def test_entries_that_are_not_cookies_are_skipped_and_counted(make_jars, redis_server: RedisServer) -> None:
    a, b = make_jars(), make_jars()
    await a.extract_shared(None, response("sid=s; Path=/"))
    key = Keys(CRAWL).cookie_jar("null")
    client = redis_server.client()
    hostile = {
        "c:pickle": b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94\x93\x94.",
        "c:list": b"[1, 2]",
        "c:badtype": json.dumps({"name": 1, "domain": "site.test", "path": "/"}).encode(),
        "c:badexpiry": json.dumps({"name": "x", "domain": "site.test", "path": "/", "expires": "soon"}).encode(),
    }
    client.hset(key, mapping=hostile)
    client.hincrby(key, "v", 1)
    assert await cookie_header(b) == "sid=s"
    assert b.stats["cookies_invalid"] == len(hostile)


def test_jar_tokens() -> None:
    assert jar_token(None) == "null"
    assert jar_token("a") == '"a"' and jar_token(1) == "1"
    assert jar_token(("a", 1)) == "repr:('a', 1)"
    assert jar_token(1.0) == jar_token(True) == "1" and jar_token(1.5) == "1.5"
    assert jar_token(float("nan")) == "NaN" and jar_token(float("inf")) == "Infinity"
    assert jar_token("x" * 1000).startswith("sha1:") and len(jar_token("x" * 1000)) == 45


def test_identity_is_unambiguous() -> None:
    assert cookie_identity("a", "/b", "c") != cookie_identity("a", "/", "bc")
    assert cookie_identity("a\t", "/", "c") != cookie_identity("a", "\t/", "c")
