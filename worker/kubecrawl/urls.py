"""URLs as browsers see them: the one place kubecrawl parses, resolves and checks URLs.

Parsing and resolution follow the WHATWG URL Standard through `ada <https://github.com/ada-url/ada>`_
(the ``ada-url`` package, a C++ implementation that passes the standard's own test suite).
:func:`check_request_url` is what the engine asks about every request a callback yields.
"""

from __future__ import annotations

import re

import httpx

try:  # ada's C API through cffi: the public wrappers add an ffi.gc object per call
    from ada_url._ada_wrapper import lib as _ada

    def _can_parse(s: str) -> bool:
        b = s.encode("utf-8")
        return bool(_ada.ada_can_parse(b, len(b)))

except ImportError:  # pragma: no cover - a future ada-url that moves its private module
    from ada_url import check_url as _can_parse

__all__ = ["check_request_url"]

#: what the WHATWG parser strips from both ends of a URL string (C0 controls and space)
_C0_SPACE = "".join(map(chr, range(0x21)))
_TAB_NEWLINE = re.compile("[\t\n\r]")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
#: an http(s) URL with a plain authority (no userinfo, IP literal, percent-escape or backslash; at
#: least one character that is not a digit or a dot, so httpx does not read it as dotted IPv4) and only
#: printable ASCII: ada and httpx split such a URL the same way, so ada's verdict is the answer.
#: Possessive quantifiers keep the match linear on hostile input.
_HOST_CHAR = r"[A-Za-z0-9._~!$&'()*+,;=\-]"
_PLAIN = re.compile(rf"https?://(?![0-9.]*+(?:[:/?#]|\Z)){_HOST_CHAR}++(?::[0-9]{{0,5}}+)?(?:[/?#][\x21-\x7e]*+)?\Z")


def check_request_url(url: str) -> str | None:
    """Why ``url`` cannot be requested, or ``None`` if it can.

    ``None`` means: an absolute http or https URL that the WHATWG URL parser accepts and httpx
    (the downloader) can send as given. Otherwise a short reason kind for the crawl's counters:

    - ``"skipped_scheme"``: an absolute URL of another scheme (``javascript:``, ``mailto:``,
      ``tel:``, ``data:``, ``ftp:``, ...), never fetched by a web crawler;
    - ``"bad_url"``: anything else: not a string, relative, a host or port the standard rejects
      (``http://h:66000/``, ``http://[::1``, ``http://h:PORT/``, ``http://1.2.3.4.5/``), or a
      URL httpx refuses (a tab or newline inside, an empty host).

    The URL is checked, not repaired: links made by :meth:`Response.follow` / ``urljoin`` are
    already in the standard's normal form. Never raises; about a microsecond for a plain URL.
    """
    try:
        if _PLAIN.match(url):
            return None if _can_parse(url) else "bad_url"
        return _check_slow(url)
    except Exception:  # a str subclass with a hostile __getitem__, surrogates, ...
        return "bad_url"


def _check_slow(url: str) -> str | None:
    if not isinstance(url, str):
        return "bad_url"
    m = _SCHEME.match(_TAB_NEWLINE.sub("", url.strip(_C0_SPACE)))
    if m is None:
        return "bad_url"  # no scheme: a relative reference, not something to fetch
    if m.group(1).lower() not in ("http", "https"):
        return "skipped_scheme"
    if not _can_parse(url):
        return "bad_url"
    try:
        if not httpx.URL(url).raw_host:
            return "bad_url"
    except Exception:  # httpx.InvalidURL, idna.IDNAError, UnicodeError: all mean "cannot send"
        return "bad_url"
    return None
