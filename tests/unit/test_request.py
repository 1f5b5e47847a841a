"""Requests are data: fingerprints, and a wire format that rejects hostile payloads."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubecrawl import Request, Spider
from kubecrawl.errors import SpiderError, WireFormatError


def test_fingerprint_ignores_query_order_and_fragment() -> None:
    a = Request("http://example.com/p?b=2&a=1#frag")
    b = Request("http://example.com/p?a=1&b=2")
    assert a.fingerprint == b.fingerprint
    assert len(a.fingerprint) == 20


def test_fingerprint_depends_on_method_and_body() -> None:
    get = Request("http://example.com/p")
    post = Request("http://example.com/p", method="POST", body=b"x=1")
    post2 = Request("http://example.com/p", method="POST", body=b"x=2")
    assert len({get.fingerprint, post.fingerprint, post2.fingerprint}) == 3


def test_wire_round_trip_keeps_everything() -> None:
    class S(Spider):
        async def parse_item(self, response):
            yield {}

    r = Request(
        "http://example.com/a",
        callback=S().parse_item,
        method="POST",
        headers={"X-A": "1"},
        body=b"\x00\xff",
        meta={"k": [1, "两"]},
        priority=7,
        dont_filter=True,
        cb_kwargs={"n": 1},
        retries=2,
        fingerprint_ttl=60,
    )
    back = Request.from_wire(r.to_wire())
    assert back.to_dict() == r.to_dict()
    assert back.callback == "parse_item"
    assert back.fingerprint == r.fingerprint


@pytest.mark.parametrize(
    "raw",
    [
        b"\x80\x04\x95pickle",
        b"not json",
        b"[]",
        b'{"v": 99, "url": "http://x/"}',
        b'{"v": 1}',
        b'{"v": 1, "url": "file:///etc/passwd"}',
        b'{"v": 1, "url": "http://x/", "priority": "high"}',
        b'{"v": 1, "url": "http://x/", "headers": {"a": 1}}',
        b'{"v": 1, "url": "http://x/", "body": "zz"}',
        b'{"v": 1, "url": "http://x/", "dont_filter": 1}',
        b'{"v": 1, "url": "http://x/", "meta": "x"}',
        b'{"v": 1, "url": "' + b"a" * (2 << 20) + b'"}',
    ],
)
def test_hostile_payloads_are_rejected(raw: bytes) -> None:
    with pytest.raises(WireFormatError):
        Request.from_wire(raw)


def test_callback_names_resolve_only_to_public_methods() -> None:
    class S(Spider):
        name = "s"

        async def parse_item(self, response):
            yield {}

    s = S()
    assert s.resolve_callback("parse_item") == s.parse_item
    assert s.resolve_callback(None) == s.parse
    for bad in ("__init__", "_private", "name", "nonexistent", "__class__"):
        with pytest.raises(SpiderError):
            s.resolve_callback(bad)


def test_default_ports_and_browser_equivalent_forms_share_a_fingerprint() -> None:
    same = [
        "http://example.com/a",
        "http://example.com:80/a",
        "HTTP://EXAMPLE.COM/a",
        "http://example.com/b/../a",
        "http://example.com/a#frag",
    ]
    assert len({Request(u).fingerprint for u in same}) == 1
    assert Request("https://example.com:443/a").fingerprint == Request("https://example.com/a").fingerprint
    assert Request("http://example.com:8080/a").fingerprint != Request("http://example.com/a").fingerprint


def test_canonical_url_is_total() -> None:
    from kubecrawl.request import canonical_url, request_fingerprint

    for junk in ("http://h:66000/", "http://[::1", "javascript:x", "", "\ud800", "http://" + "a" * 300 + ".com/"):
        assert canonical_url(junk) == canonical_url(junk)
        assert len(request_fingerprint("GET", junk, b"")) == 20


_path_chars = st.sampled_from([*"aZ09-._~/%:@!$&'()*+,;=?#[] \\", "é"])


@settings(max_examples=1500, deadline=None)
@given(
    st.sampled_from(["http://example.com", "https://h:8443", "http://127.0.0.1:8080", "http://EXAMPLE.com:80"]),
    st.text(_path_chars, max_size=20),
)
def test_canonical_url_shortcut_gives_w3libs_answer(origin: str, path: str) -> None:
    from w3lib.url import canonicalize_url

    from kubecrawl.request import canonical_url
    from kubecrawl.urls import normalize

    url = f"{origin}/{path}"
    href = normalize(url)
    if href is not None:
        assert canonical_url(url) == canonicalize_url(href)


def test_a_request_the_engine_accepts_survives_the_wire_whatever_the_scheme_case() -> None:
    from kubecrawl.core.scraper import check_request
    from kubecrawl.errors import WireFormatError

    for url in ("HTTP://127.0.0.1/x", "Https://127.0.0.1/y"):
        req = Request(url)
        check_request(req, wire=True)  # accepted where it is yielded...
        assert Request.from_wire(req.to_wire()).url == url  # ...so never dropped as corrupt when popped
    with pytest.raises(WireFormatError):
        Request.from_wire(b'{"v": 1, "url": "FTP://127.0.0.1/z"}')
