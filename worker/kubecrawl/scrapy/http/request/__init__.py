"""Scrapy's ``Request`` signature over :class:`kubecrawl.Request`.

Everything is kept as kubecrawl keeps it (JSON data, callbacks by name), so a request built here
travels through every store unchanged. ``cookies`` become a ``Cookie`` header (there is no cookie
jar: see docs/scrapy.md); ``encoding`` is the one used for the URL-encoded form data of
:class:`~kubecrawl.scrapy.http.FormRequest`; ``flags`` are accepted and not kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ....request import CallbackRef
from ....request import Request as _KcRequest


def _str(value: Any, encoding: str) -> str:
    if isinstance(value, bytes):
        return value.decode(encoding)
    if isinstance(value, list | tuple):  # Scrapy allows a list of values: the last one is sent
        return _str(value[-1], encoding) if value else ""
    return str(value)


def header_dict(headers: Any, encoding: str = "utf-8") -> dict[str, str]:
    """Scrapy-style headers (str or bytes, values or lists) as kubecrawl's ``str -> str`` dict."""
    if not headers:
        return {}
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {_str(k, encoding): _str(v, encoding) for k, v in items if v is not None}


def cookie_header(cookies: Any) -> str:
    """``{"a": "1"}`` or ``[{"name": "a", "value": "1"}]`` as a ``Cookie`` header value."""
    pairs: Iterable[tuple[Any, Any]]
    pairs = cookies.items() if isinstance(cookies, Mapping) else [(c["name"], c["value"]) for c in cookies]
    return "; ".join(f"{k}={v}" for k, v in pairs)


class Request(_KcRequest):
    """``Request(url, callback=None, method="GET", headers=None, body=None, cookies=None, meta=None,
    encoding="utf-8", priority=0, dont_filter=False, errback=None, flags=None, cb_kwargs=None)``."""

    __slots__ = ()

    def __init__(
        self,
        url: str,
        callback: CallbackRef = None,
        method: str = "GET",
        headers: Any = None,
        body: bytes | str | None = None,
        cookies: Any = None,
        meta: dict[str, Any] | None = None,
        encoding: str = "utf-8",
        priority: int = 0,
        dont_filter: bool = False,
        errback: CallbackRef = None,
        flags: list[str] | None = None,
        cb_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        hdrs = header_dict(headers, encoding)
        if cookies:
            hdrs.setdefault("Cookie", cookie_header(cookies))
        if isinstance(body, str):
            body = body.encode(encoding)
        super().__init__(
            url,
            callback,
            method=method,
            headers=hdrs,
            body=body or b"",
            meta=dict(meta) if meta else None,  # Scrapy copies meta: response.meta passed on is not shared
            priority=priority,
            dont_filter=dont_filter,
            errback=errback,
            cb_kwargs=cb_kwargs,
            **kwargs,
        )

    def copy(self) -> _KcRequest:
        return self.replace()
