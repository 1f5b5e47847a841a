"""The Spider base class: what a user subclasses, and how callbacks are found by name."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, ClassVar

from .errors import SpiderError
from .request import Request
from .response import Response

if TYPE_CHECKING:
    from .settings import Settings


class Item(dict[str, Any]):
    """A scraped item. Any ``dict``, dataclass instance or pydantic model works as well."""


def to_item_dict(obj: Any) -> dict[str, Any] | None:
    """The dict form of an item a callback yielded, or ``None`` if ``obj`` is not an item."""
    if isinstance(obj, dict):
        return obj
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    dump = getattr(obj, "model_dump", None)  # pydantic v2
    if callable(dump):
        result = dump(mode="json")
        if isinstance(result, dict):
            return result
    return None


class Spider:
    """Subclass this. A Scrapy user should recognise everything here.

    Class attributes:
      ``name``            the crawl's default name (Redis key prefix, state).
      ``start_urls``      fetched with :meth:`parse` unless :meth:`start_requests` is overridden.
      ``custom_settings`` settings this spider needs (lowest precedence above the defaults).
      ``item_key``        fields of the item content fingerprint (default: the ``item_key`` setting).
      ``incremental``     start requests of every round bypass request dedup (list pages re-crawled).
      ``pipelines``       item pipeline classes (or ``pkg.module.Class`` strings) for this spider.
    """

    name: ClassVar[str] = "spider"
    start_urls: ClassVar[list[str]] = []
    custom_settings: ClassVar[dict[str, Any]] = {}
    item_key: ClassVar[list[str] | None] = None
    incremental: ClassVar[bool] = False
    pipelines: ClassVar[list[Any]] = []
    #: the crawl's :class:`~kubecrawl.settings.Settings`, set before :meth:`opened`
    settings: Settings

    def __init__(self, **kwargs: Any) -> None:
        for key, value in kwargs.items():
            setattr(self, key, value)

    async def start_requests(self) -> AsyncIterator[Request]:
        start = getattr(self, "start", None)
        if inspect.isasyncgenfunction(start):  # Scrapy 2.13's ``async def start()``, if the spider has one
            async for req in start():
                yield req
            return
        for url in self.start_urls:
            yield Request(url, dont_filter=self.incremental)

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        raise NotImplementedError(f"{type(self).__name__}.parse is not defined")
        yield  # pragma: no cover - makes this an async generator

    def resolve_callback(self, name: str | None) -> Callable[..., Any]:
        """The callable for a callback *name* stored on a request. Only public methods qualify."""
        name = name or "parse"
        if name.startswith("_"):
            raise SpiderError(f"callback {name!r} is private; callbacks must be public spider methods")
        fn = getattr(self, name, None)
        if fn is None or not callable(fn) or not inspect.ismethod(fn):
            raise SpiderError(f"spider {self.name!r} has no callback method {name!r}")
        return fn  # type: ignore[no-any-return]

    async def opened(self) -> None:
        """Called once before the first request."""

    async def closed(self, reason: str) -> None:
        """Called once when the crawl stops."""
