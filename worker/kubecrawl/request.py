"""Requests as plain data: what a spider asks to fetch, and how it travels between processes.

A :class:`Request` round-trips through JSON (``to_wire``/``from_wire``); its callback is stored by
*name* and resolved on the spider that reads it, so nothing executable ever crosses a process
boundary. A hostile or malformed payload raises :class:`~kubecrawl.errors.WireFormatError`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from w3lib.url import canonicalize_url

from .errors import WireFormatError
from .urls import normalize

WIRE_VERSION = 1
_MAX_WIRE_BYTES = 1 << 20  # a request larger than 1 MiB on the wire is rejected as hostile

CallbackRef = str | Callable[..., Any] | None


def _callback_name(cb: CallbackRef) -> str | None:
    if cb is None or isinstance(cb, str):
        return cb
    name = getattr(cb, "__name__", None)
    if not isinstance(name, str):
        raise TypeError(f"callback must be a spider method or its name, got {cb!r}")
    return name


#: a normal-form URL with no query, fragment, percent-escape or reserved character in its path:
#: w3lib's canonicalize_url leaves such a URL as it is
_PLAIN_PATH_ONLY = re.compile(r"https?://[^/?#@%\\]++/[A-Za-z0-9\-._~/]*+\Z")


def canonical_url(url: str) -> str:
    """The URL form used for fingerprints; never raises, deterministic for any ``str``.

    First the WHATWG URL Standard's normal form (:func:`kubecrawl.urls.normalize`: lower-case
    host, IDNA, default ports ``:80``/``:443`` dropped, dot segments resolved), then w3lib's
    ``canonicalize_url`` (query sorted, fragment dropped, percent-encoding normalised), so that
    ``http://example.com:80/a`` and ``http://example.com/a#x`` are one page.

    A URL the standard rejects, or one w3lib cannot take, comes back as the normal form or the
    string itself: the engine refuses such URLs (:func:`kubecrawl.urls.check_request_url`) before
    anything is fingerprinted, so this fallback only keeps the function total.
    """
    href = normalize(url)
    if href is None:
        return url
    if _PLAIN_PATH_ONLY.match(href):
        return href  # what canonicalize_url gives for it (tests/unit/test_request.py), ~10x cheaper
    try:
        return canonicalize_url(href)
    except Exception:  # w3lib on a host Python's idna codec refuses, say
        return href.partition("#")[0]


def request_fingerprint(method: str, url: str, body: bytes) -> bytes:
    """SHA1 of method + canonical URL + body, as 20 raw bytes."""
    h = hashlib.sha1(method.encode("ascii", "replace"))
    h.update(b" ")
    h.update(canonical_url(url).encode("utf-8", "surrogatepass"))  # total: lone surrogates too
    h.update(b" ")
    h.update(body)
    return h.digest()


class Request:
    """One thing to fetch. Everything on it is JSON-safe data.

    ``callback``/``errback`` may be given as a spider method or its name; only the name is kept.
    ``fingerprint_ttl`` (seconds) lets this request be fetched again once its fingerprint is that old.
    """

    __slots__ = (
        "_fp",
        "body",
        "callback",
        "cb_kwargs",
        "dont_filter",
        "errback",
        "fingerprint_ttl",
        "headers",
        "meta",
        "method",
        "priority",
        "retries",
        "url",
    )

    def __init__(
        self,
        url: str,
        callback: CallbackRef = None,
        *,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        body: bytes | str = b"",
        meta: dict[str, Any] | None = None,
        priority: int = 0,
        dont_filter: bool = False,
        errback: CallbackRef = None,
        cb_kwargs: dict[str, Any] | None = None,
        retries: int = 0,
        fingerprint_ttl: float | None = None,
    ) -> None:
        if not isinstance(url, str) or not url:
            raise ValueError(f"Request url must be a non-empty string, got {url!r}")
        self.url = url
        self.method = method.upper()
        self.headers: dict[str, str] = dict(headers) if headers else {}
        self.body = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        self.meta: dict[str, Any] = meta if meta is not None else {}
        self.priority = int(priority)
        self.dont_filter = bool(dont_filter)
        self.callback = _callback_name(callback)
        self.errback = _callback_name(errback)
        self.cb_kwargs: dict[str, Any] = cb_kwargs if cb_kwargs is not None else {}
        self.retries = int(retries)
        self.fingerprint_ttl = fingerprint_ttl
        self._fp: bytes | None = None

    @classmethod
    def _link(cls, url: str, callback: str | None) -> Request:
        """A plain GET for a followed link, without __init__'s normalisation (the hot path:
        ~20 per page). ``url`` must already be absolute."""
        r = object.__new__(cls)
        r.url = url
        r.method = "GET"
        r.headers = {}
        r.body = b""
        r.meta = {}
        r.priority = 0
        r.dont_filter = False
        r.callback = callback
        r.errback = None
        r.cb_kwargs = {}
        r.retries = 0
        r.fingerprint_ttl = None
        r._fp = None
        return r

    @property
    def fingerprint(self) -> bytes:
        """20-byte request fingerprint (cached)."""
        fp = self._fp
        if fp is None:
            fp = self._fp = request_fingerprint(self.method, self.url, self.body)
        return fp

    def replace(self, **changes: Any) -> Request:
        data = self.to_dict()
        data.update(changes)
        data.pop("v", None)
        body = data.pop("body", b"")
        return Request(body=body if isinstance(body, bytes) else bytes.fromhex(body), **data)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.url}>"

    # -- wire format -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"v": WIRE_VERSION, "url": self.url}
        if self.method != "GET":
            d["method"] = self.method
        if self.headers:
            d["headers"] = self.headers
        if self.body:
            d["body"] = self.body.hex()
        if self.meta:
            d["meta"] = self.meta
        if self.priority:
            d["priority"] = self.priority
        if self.dont_filter:
            d["dont_filter"] = True
        if self.callback:
            d["callback"] = self.callback
        if self.errback:
            d["errback"] = self.errback
        if self.cb_kwargs:
            d["cb_kwargs"] = self.cb_kwargs
        if self.retries:
            d["retries"] = self.retries
        if self.fingerprint_ttl is not None:
            d["fingerprint_ttl"] = self.fingerprint_ttl
        return d

    def to_wire(self) -> bytes:
        try:
            return orjson.dumps(self.to_dict())
        except TypeError as exc:
            raise TypeError(f"{self!r}: meta and cb_kwargs must be JSON-serialisable ({exc})") from exc

    @classmethod
    def from_wire(cls, raw: bytes | str) -> Request:
        """Parse and validate a serialized request; never executes anything from it."""
        if len(raw) > _MAX_WIRE_BYTES:
            raise WireFormatError(f"request payload of {len(raw)} bytes exceeds {_MAX_WIRE_BYTES}")
        try:
            d = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise WireFormatError(f"request payload is not JSON: {exc}") from None
        return cls.from_dict(d)

    @classmethod
    def from_dict(cls, d: Any) -> Request:
        if not isinstance(d, dict):
            raise WireFormatError("request payload is not a JSON object")
        if d.get("v") != WIRE_VERSION:
            raise WireFormatError(f"unsupported request format version {d.get('v')!r}")
        try:
            url = _typed(d, "url", str, None)
            # the scheme is case-insensitive (a spider may yield "HTTP://..."; the engine accepts it)
            if not url[:8].lower().startswith(("http://", "https://")):
                raise WireFormatError(f"request url {url[:100]!r} is not http(s)")
            body_hex = _typed(d, "body", str, "")
            return cls(
                url,
                callback=_typed(d, "callback", str, None),
                method=_typed(d, "method", str, "GET"),
                headers=_str_map(_typed(d, "headers", dict, {})),
                body=bytes.fromhex(body_hex),
                meta=_typed(d, "meta", dict, {}),
                priority=_typed(d, "priority", int, 0),
                dont_filter=_typed(d, "dont_filter", bool, False),
                errback=_typed(d, "errback", str, None),
                cb_kwargs=_typed(d, "cb_kwargs", dict, {}),
                retries=_typed(d, "retries", int, 0),
                fingerprint_ttl=_typed(d, "fingerprint_ttl", (int, float), None),
            )
        except (ValueError, TypeError) as exc:
            raise WireFormatError(f"invalid request payload: {exc}") from None


def _typed(d: dict[str, Any], key: str, typ: Any, default: Any) -> Any:
    value = d.get(key, default)
    if value is None and default is None:
        if key == "url":
            raise WireFormatError("request payload has no url")
        return None
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise WireFormatError(f"request field {key!r} has type {type(value).__name__}")
    return value


def _str_map(m: dict[str, Any]) -> dict[str, str]:
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in m.items()):
        raise WireFormatError("request headers must map strings to strings")
    return m
