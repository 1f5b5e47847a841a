"""Content-Encoding decoding with a bound on what comes out, so a decompression bomb stops at the limit.

httpx decodes a whole network chunk at once, and 16 KiB of brotli can expand to gigabytes (329 bytes
of it to 200 MiB of zeros), so the downloader reads the raw body and decodes here instead: zlib's
``max_length``, brotli's ``output_buffer_limit`` (brotli >= 1.2) and zstandard's ``stream_reader``
each hand the output over in steps, and the decoded size is checked after every step (Scrapy's
HttpCompressionMiddleware bounds its decoding the same way). Codings a server lists but this module
does not know pass through undecoded, as httpx, Scrapy and browsers do.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

from .errors import DownloadError

__all__ = ["ACCEPT_ENCODING", "DECODERS", "decode_body"]

_STEP = 1 << 20  # decoded bytes handed over per step
_ZSTD_MAX_WINDOW = 8 << 20  # RFC 9659: HTTP zstd decoders need not accept windows above 8 MiB

# One decoder: (data, limit) -> (decoded, truncated). ``truncated``: the input ended before the
# compressed stream did (what it held is returned, as Scrapy and browsers do; the caller counts it).
Decoder = Callable[[bytes, int], tuple[bytes, bool]]


class _Output:
    """Decoded steps, with the size checked after each one."""

    __slots__ = ("coding", "limit", "parts", "total")

    def __init__(self, coding: str, limit: int) -> None:
        self.coding, self.limit = coding, limit
        self.parts: list[bytes] = []
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if self.total > self.limit:
            raise DownloadError("too_large", f"{self.coding} body decodes to more than max_body_size {self.limit}")
        self.parts.append(chunk)

    def value(self) -> bytes:
        return self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)


def _zlib_stream(data: bytes, wbits: int, out: _Output) -> tuple[bytes, bool]:
    """Inflate one zlib/gzip/raw-deflate stream; returns (what follows it, truncated)."""
    d = zlib.decompressobj(wbits)
    pending = data
    while pending:
        out.add(d.decompress(pending, _STEP))
        if d.eof:
            return d.unused_data, False
        pending = d.unconsumed_tail
    out.add(d.flush())
    return b"", not d.eof


def _gunzip(data: bytes, limit: int) -> tuple[bytes, bool]:
    out = _Output("gzip", limit)
    try:
        rest, truncated = _zlib_stream(data, 16 + zlib.MAX_WBITS, out)
        while rest.strip(b"\0") and not truncated:  # gzip members may follow one another
            rest, truncated = _zlib_stream(rest, 16 + zlib.MAX_WBITS, out)
    except zlib.error as exc:
        raise DownloadError("decode_error", f"corrupt gzip body: {exc}") from None
    return out.value(), truncated


def _inflate(data: bytes, limit: int) -> tuple[bytes, bool]:
    out = _Output("deflate", limit)
    try:
        try:
            _, truncated = _zlib_stream(data, zlib.MAX_WBITS, out)
        except zlib.error:
            if out.total:
                raise
            out = _Output("deflate", limit)  # raw deflate without the zlib header, as some servers send
            _, truncated = _zlib_stream(data, -zlib.MAX_WBITS, out)
    except zlib.error as exc:
        raise DownloadError("decode_error", f"corrupt deflate body: {exc}") from None
    return out.value(), truncated


def _brotli_decoder() -> Decoder | None:
    try:
        import brotli
    except ImportError:
        try:
            import brotlicffi as brotli
        except ImportError:
            return None
    try:
        brotli.Decompressor().process(b"", output_buffer_limit=1)
    except TypeError:  # older than 1.2: no way to bound the output, so br is not decoded at all
        return None

    def unbrotli(data: bytes, limit: int) -> tuple[bytes, bool]:
        out = _Output("br", limit)
        d: Any = brotli.Decompressor()
        try:
            out.add(d.process(data, output_buffer_limit=_STEP))
            while not d.is_finished() and not d.can_accept_more_data():
                out.add(d.process(b"", output_buffer_limit=_STEP))
        except brotli.error as exc:
            raise DownloadError("decode_error", f"corrupt br body: {exc}") from None
        return out.value(), not d.is_finished()

    return unbrotli


def _zstd_decoder() -> Decoder | None:
    try:
        import zstandard
    except ImportError:
        return None

    def unzstd(data: bytes, limit: int) -> tuple[bytes, bool]:
        out = _Output("zstd", limit)
        decompressor = zstandard.ZstdDecompressor(max_window_size=_ZSTD_MAX_WINDOW)
        reader = decompressor.stream_reader(data, read_across_frames=True)
        try:
            while chunk := reader.read(_STEP):
                out.add(chunk)
        except zstandard.ZstdError as exc:
            raise DownloadError("decode_error", f"corrupt zstd body: {exc}") from None
        return out.value(), False  # the bounded reader does not tell a cut-off frame: never "truncated"

    return unzstd


def _decoders() -> dict[str, Decoder]:
    found: dict[str, Decoder] = {"gzip": _gunzip, "deflate": _inflate}
    for name, make in (("br", _brotli_decoder), ("zstd", _zstd_decoder)):
        decoder = make()
        if decoder is not None:
            found[name] = decoder
    return found


DECODERS = _decoders()
# What this process decodes, in order of preference: advertised as Accept-Encoding.
ACCEPT_ENCODING = ", ".join(DECODERS)
_ALIASES = {"x-gzip": "gzip", "x-deflate": "deflate"}


def decode_body(data: bytes, content_encoding: str, limit: int) -> tuple[bytes, bool]:
    """Undo ``content_encoding`` (a Content-Encoding header value, codings in the order the server
    applied them) on ``data``. Returns (body, truncated). Raises DownloadError ``decode_error`` for a
    corrupt body and ``too_large`` once the decoded size passes ``limit``."""
    truncated = False
    if not data:
        return data, False  # HEAD, 204, 304: the header describes a body that is not there
    for coding in reversed(content_encoding.split(",")):
        coding = coding.strip().lower()
        decoder = DECODERS.get(_ALIASES.get(coding, coding))
        if decoder is not None:
            data, cut = decoder(data, limit)
            truncated = truncated or cut
    return data, truncated
