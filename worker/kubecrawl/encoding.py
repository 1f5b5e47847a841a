"""Decoding response bodies to text, the way a browser would.

Order: byte-order mark, HTTP ``Content-Type`` charset, ``<meta charset>`` / ``http-equiv``, then
detection (strict UTF-8 first, then charset-normalizer). Legacy Chinese labels (GBK, GB2312) decode
as GB18030, their superset, so pages that mislabel themselves still come out without mojibake.
"""

from __future__ import annotations

import codecs

from charset_normalizer import from_bytes
from w3lib.encoding import html_to_unicode, resolve_encoding

_DETECT_WINDOW = 64 * 1024


def _detect(body: bytes) -> str | None:
    try:
        body.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    best = from_bytes(body[:_DETECT_WINDOW]).best()
    if best is None:
        return None
    enc = resolve_encoding(best.encoding) or best.encoding
    # charset-normalizer often names simplified Chinese "gb2312"/"gbk"/"big5"; prefer the superset
    return enc


def decode_body(body: bytes, content_type: str | None) -> tuple[str, str]:
    """Return ``(encoding, text)``. Undecodable bytes become U+FFFD; this never raises."""
    enc, text = html_to_unicode(content_type, body, default_encoding="utf-8", auto_detect_fun=_detect)
    return _normalise(enc), text


def _normalise(enc: str) -> str:
    try:
        return codecs.lookup(enc).name
    except LookupError:
        return enc
