"""The one error hierarchy of kubecrawl (like httpx's ``HTTPError`` tree)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .request import Request


class KubecrawlError(Exception):
    """Base class of every error kubecrawl raises on purpose."""


class ConfigurationError(KubecrawlError):
    """A setting, a CLI flag or a spider definition is invalid; the message says which and why."""


class SpiderError(KubecrawlError):
    """A spider could not be loaded or a callback name does not resolve."""


class StorageError(KubecrawlError):
    """The queue / fingerprint / item store failed (SQLite, Redis)."""


class StorageFatal(StorageError):
    """A store error that waiting cannot fix (wrong password, no permission, an outage past its limit):
    the process stops with the message and exit code 1 instead of retrying."""


class StoreDataLost(StorageFatal):
    """The shared store lost data this crawl had acknowledged (Redis restarted empty or from an older
    snapshot): the crawl is marked, every worker stops, and the status says so instead of "complete"."""


class WireFormatError(StorageError):
    """A serialized request or item read from a store is malformed or hostile; it is rejected and counted."""


class DropItem(KubecrawlError):
    """Raised by an item pipeline to drop an item (counted as ``dropped``)."""


class IgnoreRequest(KubecrawlError):
    """Raised to drop a request without counting it as an error."""


class DownloadError(KubecrawlError):
    """A request that failed for good: what an errback receives and what the crawl counts.

    ``kind`` is the counter name: ``timeout``, ``network``, ``http_503``, ``too_large``,
    ``ssrf_refused``, ``invalid_url``, ``skipped_scheme``, ``decode_error``, ``redirect_loop``,
    ``too_many_redirects``, ``bad_redirect``, ``invalid_request``, ``deadline`` (``download_deadline``
    spent), ``headers_too_large`` (a response head over the HTTP parser's limit). ``retries`` is how many retries
    were spent on it; ``request`` is the :class:`~kubecrawl.Request` that failed (set by the
    downloader; ``None`` only for an error built outside it). ``retryable`` says whether the
    downloader would try this kind again (it does, up to ``max_retries``); ``retry_after`` is the
    server's ``Retry-After`` in seconds, when it sent one.
    """

    def __init__(
        self,
        kind: str,
        message: str,
        retries: int = 0,
        *,
        request: Request | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.retries = retries
        self.request = request
        self.retryable = retryable
        self.retry_after = retry_after


class CloseSpider(KubecrawlError):
    """Raised by a callback to stop the crawl gracefully; ``reason`` becomes the stop reason (Scrapy's name)."""

    def __init__(self, reason: str = "cancelled") -> None:
        super().__init__(reason)
        self.reason = reason


class NotConfigured(KubecrawlError):
    """Raised by a component (a pipeline's ``from_crawler``, say) to say it is disabled; it is then left out."""


#: errno values that mean "no space": the disk or a quota is full, or a file-size limit (RLIMIT_FSIZE) is reached
_NO_SPACE = frozenset({28, 27, 122})  # ENOSPC, EFBIG, EDQUOT (Linux numbers; checked by name below too)


_SQLITE_NO_SPACE = frozenset({"SQLITE_FULL", "SQLITE_IOERR_WRITE", "SQLITE_IOERR_TRUNCATE"})


def is_disk_full(exc: BaseException | None) -> bool:
    """True if ``exc`` (or what caused it) says the disk, a quota or a file-size limit is full:
    an OSError with ENOSPC/EFBIG/EDQUOT, or SQLite's SQLITE_FULL / a refused write."""
    import errno

    codes = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", 122)} | _NO_SPACE
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in codes:
            return True
        # SQLite: SQLITE_FULL, or a write the OS refused (EFBIG under RLIMIT_FSIZE is SQLITE_IOERR_WRITE,
        # "disk I/O error"): waiting does not help either
        if getattr(exc, "sqlite_errorname", None) in _SQLITE_NO_SPACE:
            return True
        if "disk is full" in str(exc) or "No space left" in str(exc) or "File too large" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False
