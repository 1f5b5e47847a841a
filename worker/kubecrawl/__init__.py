"""kubecrawl: a Kubernetes-native distributed web crawler.

The public API: ``from kubecrawl import Spider, Request, Response, Item, Settings``.
"""

from ._version import __version__
from .errors import (
    ConfigurationError,
    DownloadError,
    DropItem,
    IgnoreRequest,
    KubecrawlError,
    SpiderError,
    StorageError,
)
from .pipelines import ItemPipeline
from .redis_spider import RedisSpider
from .request import Request
from .response import Response
from .settings import Settings
from .spider import Item, Spider

__all__ = [
    "ConfigurationError",
    "DownloadError",
    "DropItem",
    "IgnoreRequest",
    "Item",
    "ItemPipeline",
    "KubecrawlError",
    "RedisSpider",
    "Request",
    "Response",
    "Settings",
    "Spider",
    "SpiderError",
    "StorageError",
    "__version__",
]
