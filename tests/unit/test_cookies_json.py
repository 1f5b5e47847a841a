"""Cookies as JSON for shared jars (kubecrawl/cookies.py): every attribute survives, and nothing but
a cookie's JSON is accepted back."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from kubecrawl import Spider
from kubecrawl.cookies import CookieJars, cookie_from_json, cookie_to_json
from kubecrawl.errors import ConfigurationError
from kubecrawl.runner import CrawlProcess
from kubecrawl.settings import build_settings
from kubecrawl.stats import Stats

# Set-Cookie fields as servers send them (RFC 6265 §3.1 examples, and attributes beyond it)
FIELDS = [
    "SID=31d4d96e407aad42",
    "SID=31d4d96e407aad42; Path=/; Domain=example.com",
    "SID=31d4d96e407aad42; Path=/; Secure; HttpOnly",
    "lang=en-US; Path=/; Domain=example.com; Max-Age=3600",
    "lang=en-US; Expires=Wed, 09 Jun 2121 10:18:14 GMT",
    "pref=a%20b; Path=/docs; SameSite=Lax; Priority=High",
    'quoted="a b c"; Path=/',
    "empty=; Path=/",
    "uni=caf\u00e9; Path=/",
]


def parse(field: str, url: str = "https://www.example.com/docs/page") -> list:
    jars = CookieJars(50, 3000, Stats())
    req = httpx.Request("GET", url)
    jars.extract(None, httpx.Response(200, headers=[(b"set-cookie", field.encode())], request=req))
    jar = jars.get(None)
    assert jar is not None
    return list(jar.jar)


@pytest.mark.parametrize("field", FIELDS)
def test_every_attribute_survives_the_round_trip(field: str) -> None:
    (cookie,) = parse(field)
    back = cookie_from_json(cookie_to_json(cookie))
    assert vars(back) == vars(cookie)
    assert cookie_to_json(back) == cookie_to_json(cookie)


def test_the_json_is_plain_data() -> None:
    (cookie,) = parse("SID=x; Path=/; Secure; HttpOnly; Max-Age=60")
    d = json.loads(cookie_to_json(cookie))
    assert d["value"] == "x" and d["secure"] is True and d["rest"] == {"HttpOnly": None}
    assert abs(d["expires"] - (time.time() + 60)) < 5 and d["discard"] is False


def test_max_age_zero_is_a_deletion_not_a_cookie() -> None:
    jars = CookieJars(50, 3000, Stats())
    url = "https://www.example.com/"
    for field in ("SID=x; Path=/", "SID=; Path=/; Max-Age=0"):
        req = httpx.Request("GET", url)
        jars.extract(None, httpx.Response(200, headers=[(b"set-cookie", field.encode())], request=req))
    jar = jars.get(None)
    assert jar is not None and list(jar.jar) == []


@pytest.mark.parametrize(
    "raw",
    [
        b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94\x93\x94.",  # a pickle
        b"not json",
        b"[]",
        b"null",
        b'{"name": "a", "domain": "x"}',
        b'{"name": "a", "domain": "x", "path": "/", "expires": "tomorrow"}',
        b'{"name": "a", "domain": "x", "path": "/", "expires": true}',
        b'{"name": "a", "domain": "x", "path": "/", "secure": "yes"}',
        b'{"name": "a", "domain": "x", "path": "/", "value": 5}',
        b'{"name": "a", "domain": "x", "path": "/", "rest": {"HttpOnly": 1}}',
        b'{"name": "a", "domain": "x", "path": "/", "version": "0"}',
    ],
)
def test_anything_else_is_refused(raw: bytes) -> None:
    with pytest.raises(ValueError):
        cookie_from_json(raw)


def test_shared_cookies_without_cookies_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="shared_cookies needs cookies"):
        build_settings(cli={"shared_cookies": "true", "cookies": "false"}, environ={})
    s = build_settings(cli={"shared_cookies": "true", "shared_cookies_refresh": "0"}, environ={})
    assert s.shared_cookies and s.shared_cookies_refresh == 0


def test_shared_cookies_with_role_none_changes_nothing() -> None:
    """One process already shares its jars: the setting is a no-op (logged), no store is involved."""

    class One(Spider):
        name = "one"

    s = build_settings(cli={"shared_cookies": "true"}, environ={})
    jars = CrawlProcess(One(), s).downloader.jars
    assert type(jars) is CookieJars and not jars.shared
