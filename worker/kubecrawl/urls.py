"""URL checks shared by link extraction and the scheduler (the WHATWG URL work of issue 15 extends this)."""

from __future__ import annotations

from urllib.parse import urlsplit

_BAD_HOST_CHARS = frozenset(" \t\n\r<>\\^|%\"'`{}")


def check_request_url(url: str) -> str | None:
    """None if ``url`` is an absolute http(s) URL the downloader can request, else why not:
    ``"skipped_scheme"`` (javascript:, mailto:, tel:, data:, ftp: ...) or ``"bad_url"``. Never raises."""
    if not isinstance(url, str):
        return "bad_url"
    if not url.startswith(("http://", "https://")):
        head = url[:12].lower()
        if not head.startswith(("http://", "https://")):
            head = head.lstrip()
            if head.startswith(("http:", "https:")):
                return "bad_url"  # whitespace before it, or a slash form only a browser repairs
            return "skipped_scheme" if ":" in head else "bad_url"
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in 0-65535
    except ValueError:
        return "bad_url"
    if not host or any(c in _BAD_HOST_CHARS or ord(c) < 0x20 for c in host):
        return "bad_url"
    return None
