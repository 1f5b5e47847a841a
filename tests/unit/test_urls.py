"""check_request_url: which yielded URLs the engine may fetch, and why it refuses the others."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubecrawl.urls import BaseURL, _ada_join, _ada_parse, _check_slow, check_request_url, normalize, resolve


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/",
        "https://example.com:8443/a/b?c=d#e",
        "http://example.com",
        "HTTPS://EXAMPLE.COM/x",
        "http://127.0.0.1:8080/",
        "http://[::1]:8080/",
        "http://0x7f.1/",  # an IPv4 number form a browser accepts (127.0.0.1)
        "http://üé.com/",
        "http://example.com/ä?q=ü",
        "http://user:pw@example.com/",
    ],
)
def test_fetchable_http_urls_pass(url: str) -> None:
    assert check_request_url(url) is None


@pytest.mark.parametrize(
    "url",
    [
        "javascript:void(0)",
        "  JavaScript:alert(1)",
        "mailto:a@example.com",
        "tel:+1",
        "data:,x",
        "ftp://h/f",
        "ws://h/",
    ],
)
def test_other_schemes_are_skipped(url: str) -> None:
    assert check_request_url(url) == "skipped_scheme"


@pytest.mark.parametrize(
    "url",
    [
        "http://h:66000/",  # port out of range
        "http://[::1",  # unterminated IPv6
        "http://h:PORT/",
        "http://1.2.3.4.5/",  # ends in a number but is no IPv4 address
        "http://01.2.3.4/",  # the standard accepts it, httpx refuses the leading zero
        "http://ho\tst/",  # the standard drops the tab, httpx refuses it: not sendable as given
        "http://a b/",
        "http:///path",
        "http:foo",  # an absolute http URL only against a base
        "/relative",
        "//example.com/x",
        "",
        "http://\ud800/",  # a lone surrogate
    ],
)
def test_unparseable_or_unsendable_urls_are_bad(url: str) -> None:
    assert check_request_url(url) == "bad_url"


def test_never_raises_on_non_strings() -> None:
    for junk in (None, 5, b"http://example.com/", ["http://example.com/"]):
        assert check_request_url(junk) == "bad_url"  # type: ignore[arg-type]


def _full(url: str) -> str | None:
    try:
        return _check_slow(url)
    except Exception:
        return "bad_url"


_PUNCT = "aZ09.-_~:/?#[]@!$&'()*+,;=% \t\n\\\"<>`{}|^\x00\x7f"
_url_chars = st.sampled_from([*_PUNCT, "é", "ü", "\u3002", "\uff11"])
_urlish = st.tuples(
    st.sampled_from(["http://", "https://", "HTTP://", "http:", "http:/", "ftp://", " http://", ""]),
    st.text(_url_chars, max_size=12),
    st.sampled_from(["", ":80", ":443", ":0", ":65535", ":65536", ":", ":x"]),
    st.text(_url_chars, max_size=16),
).map("".join)


@settings(max_examples=1500, deadline=None)
@given(_urlish)
def test_fast_path_gives_the_full_answer(url: str) -> None:
    assert check_request_url(url) == _full(url)


# -- resolution ------------------------------------------------------------------------------
_BASES = [
    "http://example.com/a/b.html",
    "https://example.com:8443/dir/",
    "http://u:p@example.com/x?q#f",
    "http://127.0.0.1:8080/p/1.html",
    "https://EXAMPLE.com:443/a/../b",
    "http://xn--zca.com/",
    "http://[::1]:8080/a",
    "https://user@[2001:db8::1]/x/",
]
_STARTS = ["", "/", "//", "http://", "https://", "HTTP://", "http:", "/p/", "../", "./", "?", "#", " ", "\t/"]
_AUTHORITIES = ["http://127.0.0.1", "https://10.0.0.255:8443", "http://1.2.3.04", "http://example.com:80"]
_AUTHORITIES += ["https://h:443", "http://h:65535", "http://h:65536", "http://h:080", "http://a.xn--b"]
_href = st.tuples(
    st.sampled_from([*_STARTS, *_AUTHORITIES]),
    st.text(_url_chars, max_size=8),
    st.sampled_from(["", ".html", "/..", "/.", "/%2e", "/%2E%2e/", ":80", ":443", "?a=1", "#x", "\\"]),
    st.text(_url_chars, max_size=8),
).map("".join)


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(_BASES), _href)
def test_resolution_fast_paths_give_the_parsers_answer(base: str, href: str) -> None:
    try:
        expected = _ada_join(base, href)
    except UnicodeEncodeError:
        expected = None
    assert BaseURL(base).resolve(href) == expected


@settings(max_examples=1000, deadline=None)
@given(_href)
def test_normalize_fast_path_gives_the_parsers_answer(url: str) -> None:
    try:
        expected = _ada_parse(url)
    except UnicodeEncodeError:
        expected = None
    assert normalize(url) == expected


@settings(max_examples=1000, deadline=None)
@given(st.sampled_from(_BASES), _href)
def test_a_rejected_href_is_never_fetched(base: str, href: str) -> None:
    # Response.urljoin hands back a rejected href as it was: check_request_url must refuse it
    if BaseURL(base).resolve(href) is None:
        assert check_request_url(href) is not None


@settings(max_examples=1000, deadline=None)
@given(st.sampled_from(_BASES), _href)
def test_every_resolved_http_link_is_fetchable(base: str, href: str) -> None:
    resolved = BaseURL(base).resolve(href)
    if resolved is not None and resolved.startswith(("http://", "https://")):
        assert check_request_url(resolved) is None, resolved


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("http://ho\tst/", "http://host/"),
        ("/a\nb", "http://example.com/ab"),
        ("\\x", "http://example.com/x"),
        ("http:/example.com/", "http://example.com/example.com/"),  # same scheme: root-relative
        ("https:example.com/", "https://example.com/"),
        ("/foo/bar/..", "http://example.com/foo/"),
        ("/foo/%2e%2E/bar", "http://example.com/bar"),
        ("http://0x7f.1/", "http://127.0.0.1/"),
        ("http://2130706433/", "http://127.0.0.1/"),
        ("http://ＥＸＡＭＰＬＥ.com/", "http://example.com/"),
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("  /a b\x01c\x01", "http://example.com/a%20b%01c"),
    ],
)
def test_hrefs_resolve_as_in_a_browser(href: str, expected: str) -> None:
    assert resolve("http://example.com/a/b", href) == expected
