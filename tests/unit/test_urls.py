"""check_request_url: which yielded URLs the engine may fetch, and why it refuses the others."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubecrawl.urls import _check_slow, check_request_url


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


@settings(max_examples=3000, deadline=None)
@given(_urlish)
def test_fast_path_gives_the_full_answer(url: str) -> None:
    assert check_request_url(url) == _full(url)
