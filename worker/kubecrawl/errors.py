"""The one error hierarchy of kubecrawl (like httpx's ``HTTPError`` tree)."""

from __future__ import annotations


class KubecrawlError(Exception):
    """Base class of every error kubecrawl raises on purpose."""


class ConfigurationError(KubecrawlError):
    """A setting, a CLI flag or a spider definition is invalid; the message says which and why."""


class SpiderError(KubecrawlError):
    """A spider could not be loaded or a callback name does not resolve."""


class StorageError(KubecrawlError):
    """The queue / fingerprint / item store failed (SQLite, Redis)."""


class WireFormatError(StorageError):
    """A serialized request or item read from a store is malformed or hostile; it is rejected and counted."""


class DropItem(KubecrawlError):
    """Raised by an item pipeline to drop an item (counted as ``dropped``)."""


class IgnoreRequest(KubecrawlError):
    """Raised to drop a request without counting it as an error."""
