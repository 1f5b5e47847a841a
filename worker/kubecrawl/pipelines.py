"""Item pipelines: user classes with ``open``/``process_item``/``close`` that may transform or drop items.

Storing items is the store's job (``--output`` JSON lines locally, a Redis stream in distributed mode),
after content deduplication; pipelines run before that, in the order given.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from typing import Any

from .errors import ConfigurationError, DropItem

log = logging.getLogger(__name__)


class ItemPipeline:
    """Base class (optional: any object with these methods works). Raise :class:`DropItem` to drop."""

    def open(self, spider: Any) -> Any:
        return None

    def process_item(self, item: dict[str, Any], spider: Any) -> Any:
        return item

    def close(self, spider: Any) -> Any:
        return None


def load_pipeline(ref: Any) -> Any:
    if isinstance(ref, str):
        mod_name, _, attr = ref.replace(":", ".").rpartition(".")
        try:
            ref = getattr(importlib.import_module(mod_name), attr)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ConfigurationError(f"cannot load item pipeline {ref!r}: {exc}") from None
    return ref() if inspect.isclass(ref) else ref


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
        self.pipelines = pipelines

    async def open(self, spider: Any) -> None:
        for p in self.pipelines:
            if hasattr(p, "open"):
                await _maybe_await(p.open(spider))

    async def close(self, spider: Any) -> None:
        for p in self.pipelines:
            if hasattr(p, "close"):
                try:
                    await _maybe_await(p.close(spider))
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
                return None
            except Exception as exc:
                raise PipelineFailed(p, exc) from exc
            if item is None:
                return None
        return item
