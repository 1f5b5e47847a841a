"""Item pipelines: user classes with ``open``/``process_item``/``close`` that may transform or drop items.

Scrapy's pipelines work unchanged: ``open_spider``/``close_spider`` are called like ``open``/``close``,
a class with ``from_crawler(crawler)`` is built by it, and ``NotConfigured`` from it leaves the pipeline
out (logged), as in Scrapy. ``ITEM_PIPELINES = {"path": 300}`` orders them (settings.py).

Storing items is the store's job (``--output`` JSON lines locally, a Redis stream in distributed mode),
after content deduplication; pipelines run before that, in the order given.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Callable
from typing import Any

from .errors import ConfigurationError, DropItem, NotConfigured

log = logging.getLogger(__name__)


class ItemPipeline:
    """Base class (optional: any object with these methods works). Raise :class:`DropItem` to drop."""

    def open(self, spider: Any) -> Any:
        return None

    def process_item(self, item: dict[str, Any], spider: Any) -> Any:
        return item

    def close(self, spider: Any) -> Any:
        return None


def import_object(ref: str, what: str) -> Any:
    """The object named ``pkg.module.Name`` (or ``pkg.module:Name``); a configuration error naming ``what``."""
    mod_name, _, attr = ref.replace(":", ".").rpartition(".")
    try:
        return getattr(importlib.import_module(mod_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigurationError(f"cannot load {what} {ref!r}: {exc}") from None


def load_pipeline(ref: Any, crawler: Callable[[], Any] | None = None) -> Any:
    """The pipeline object for ``ref`` (a class, an object or ``pkg.module.Class``). A class with
    ``from_crawler`` is built by it with ``crawler()`` (Scrapy's :class:`~kubecrawl.scrapy.crawler.Crawler`).
    Returns ``None`` when the pipeline raises :class:`NotConfigured` (it is then left out)."""
    if isinstance(ref, str):
        ref = import_object(ref, "item pipeline")
    if not inspect.isclass(ref):
        return ref
    try:
        factory = getattr(ref, "from_crawler", None)
        if factory is not None and crawler is not None:
            return factory(crawler())
        return ref()
    except NotConfigured as exc:
        log.info("item pipeline %s is disabled (NotConfigured: %s)", ref.__name__, exc)
        return None


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class PipelineFailed(Exception):
    """A pipeline raised something other than :class:`DropItem` on one item; ``cause`` is what it raised."""

    def __init__(self, pipeline: Any, cause: Exception) -> None:
        super().__init__(f"item pipeline {type(pipeline).__name__} raised {cause!r}")
        self.pipeline = pipeline
        self.cause = cause


class PipelineChain:
    def __init__(self, pipelines: list[Any]) -> None:
        self.last_drop: DropItem | None = None  # what the last drop raised (the item_dropped signal)
        self.pipelines = pipelines

    async def open(self, spider: Any) -> None:
        for p in self.pipelines:
            for hook in ("open", "open_spider"):  # kubecrawl's name, Scrapy's name
                if hasattr(p, hook):
                    await _maybe_await(getattr(p, hook)(spider))

    async def close(self, spider: Any) -> None:
        for p in self.pipelines:
            for hook in ("close", "close_spider"):
                if hasattr(p, hook):
                    try:
                        await _maybe_await(getattr(p, hook)(spider))
                    except Exception:
                        log.exception("item pipeline %r failed to close", p)

    async def process(self, item: dict[str, Any], spider: Any) -> dict[str, Any] | None:
        """The item after every pipeline, or ``None`` if one dropped it.

        Raises :class:`PipelineFailed` naming the pipeline when one fails on this item (the caller sets
        the item aside and goes on with the next)."""
        for p in self.pipelines:
            try:
                item = await _maybe_await(p.process_item(item, spider))
            except DropItem as exc:
                log.debug("item dropped by %s: %s", type(p).__name__, exc)
                self.last_drop = exc
                return None
            except Exception as exc:
                raise PipelineFailed(p, exc) from exc
            if item is None:
                return None
        return item
