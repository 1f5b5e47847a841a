"""URLs as browsers see them: the one place kubecrawl parses, resolves and checks URLs.

Parsing and resolution follow the WHATWG URL Standard through `ada <https://github.com/ada-url/ada>`_
(the ``ada-url`` package, a C++ implementation tested against web-platform-tests' URL suite).
docs/standards.md says what that means for links, fingerprints and the engine.
:func:`check_request_url` is what the engine asks about every request a callback yields.
"""

from __future__ import annotations

import re

import httpx

try:  # ada's C API through cffi: the public wrappers cost an ffi.gc object and a copy per call
    from ada_url._ada_wrapper import ffi as _ffi
    from ada_url._ada_wrapper import lib as _ada

    def _can_parse(s: str) -> bool:
        b = s.encode("utf-8")
        return bool(_ada.ada_can_parse(b, len(b)))

    def _ada_join(base: str, href: str) -> str | None:
        b = base.encode("utf-8")
        h = href.encode("utf-8")
        obj = _ada.ada_parse_with_base(h, len(h), b, len(b))
        try:
            if not _ada.ada_is_valid(obj):
                return None
            out = _ada.ada_get_href(obj)
            return str(_ffi.unpack(out.data, out.length).decode("utf-8"))
        finally:
            _ada.ada_free(obj)

    def _ada_parse(url: str) -> str | None:
        u = url.encode("utf-8")
        obj = _ada.ada_parse(u, len(u))
        try:
            if not _ada.ada_is_valid(obj):
                return None
            out = _ada.ada_get_href(obj)
            return str(_ffi.unpack(out.data, out.length).decode("utf-8"))
        finally:
            _ada.ada_free(obj)

except ImportError:  # pragma: no cover - a future ada-url that moves its private module
    from ada_url import check_url as _can_parse
    from ada_url import join_url, normalize_url

    def _ada_join(base: str, href: str) -> str | None:
        try:
            return join_url(base, href)
        except ValueError:
            return None

    def _ada_parse(url: str) -> str | None:
        try:
            return normalize_url(url)
        except ValueError:
            return None


__all__ = ["C0_SPACE", "BaseURL", "check_request_url", "normalize", "resolve"]

#: what the WHATWG parser strips from both ends of a URL string (C0 controls and space)
C0_SPACE = "".join(map(chr, range(0x21)))
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
    m = _SCHEME.match(_TAB_NEWLINE.sub("", url.strip(C0_SPACE)))
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


# -- resolution ------------------------------------------------------------------------------
# Fast paths for the forms most links take, already in the standard's normal form: ada would
# return them unchanged, so they skip the parser. Conservative on purpose: anything unusual
# (upper case, a dot segment, a default or out-of-range port, a character the standard
# percent-encodes, punycode, a host that is not a dotted quad but ends in a number) takes the
# full path. tests/unit/test_urls.py checks both paths agree.
_NORMAL_PATH = r"(?:/[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*+)(?:\?[A-Za-z0-9\-._~!$&()*+,;=:@%/?\[\]]*+)?(?:#[A-Za-z0-9\-._~!$&'()*+,;=:@%/?#\[\]]*+)?"
_NORMAL_HOST = r"(?:[a-z0-9\-]++\.)*+[a-z][a-z0-9\-]*+"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_NORMAL_IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_NORMAL_ABS = re.compile(
    rf"(https?)://(?:(?!(?:[^/]*\.)?xn--){_NORMAL_HOST}|{_NORMAL_IPV4})(?::([1-9][0-9]{{0,4}}))?{_NORMAL_PATH}\Z"
)
_NORMAL_ROOTED = re.compile(rf"(?!//){_NORMAL_PATH}\Z")
_DEFAULT_PORT = {"http": "80", "https": "443"}


def _no_dot_segment(url: str) -> bool:
    """No "." or ".." segment (in any spelling, %2e too) that resolution would remove."""
    return "/." not in url and "%2e" not in url and "%2E" not in url


def _is_normal_abs(url: str) -> bool:
    m = _NORMAL_ABS.match(url)
    if m is None or not _no_dot_segment(url):
        return False
    port = m.group(2)
    return port is None or (int(port) <= 65535 and port != _DEFAULT_PORT[m.group(1)])


def normalize(url: str) -> str | None:
    """The standard's serialisation of an absolute URL (``None`` if the parser rejects it).

    Lower-case scheme and host, IDNA (UTS #46) hosts, IPv4 number forms as dotted quads, default
    ports dropped, dot segments resolved, percent-encoding by the standard's sets. Never raises.
    """
    try:
        if _is_normal_abs(url):
            return url
        return _ada_parse(url)
    except Exception:  # not a str, lone surrogates
        return None


class BaseURL:
    """A page's URL, parsed once, to resolve the page's links against (``~20`` per page)."""

    __slots__ = ("_prefix", "url")

    def __init__(self, url: str) -> None:
        self.url = url
        self._prefix: str | bool | None = False  # False: not computed yet

    def _rooted_prefix(self) -> str | None:
        """``scheme://[userinfo@]host[:port]`` when ``url`` is a normal http(s) URL, else None."""
        prefix = self._prefix
        if prefix is False:
            prefix = None
            if self.url.startswith(("http://", "https://")):
                href = normalize(self.url)
                if href is not None:
                    # the path starts at the first "/" after "scheme://"; an http(s) href has one
                    prefix = href[: href.index("/", href.index("//") + 2)]
            self._prefix = prefix
        assert prefix is not True
        return prefix

    def resolve(self, href: str) -> str | None:
        """The absolute URL a browser makes of ``href`` on this page, or ``None`` if the standard
        rejects it (a bad host or port, an unterminated IPv6 literal, ...). Never raises."""
        try:
            first = href[:1]
            if first == "/":
                if _no_dot_segment(href) and _NORMAL_ROOTED.match(href):
                    prefix = self._rooted_prefix()
                    if prefix is not None:
                        return prefix + href
            elif first == "h" and _is_normal_abs(href):
                return href
            return _ada_join(self.url, href)
        except Exception:  # not a str, lone surrogates
            return None


def resolve(base: str, href: str) -> str | None:
    """``href`` resolved against ``base`` by the WHATWG URL Standard; ``None`` if rejected.

    Leading and trailing C0 controls and spaces are stripped, tabs and newlines removed, ``\\``
    read as ``/`` in http(s) URLs, and the result normalised as by :func:`normalize`.
    """
    return BaseURL(base).resolve(href)
