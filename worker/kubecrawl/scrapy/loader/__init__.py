"""Scrapy's ``ItemLoader``: the ``itemloaders`` package Scrapy itself uses, built from a response."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import itemloaders

from ..item import Item
from ..selector import Selector

if TYPE_CHECKING:
    from ...response import Response


class ItemLoader(itemloaders.ItemLoader):  # type: ignore[misc]
    """``ItemLoader(item=None, selector=None, response=None, parent=None, **context)``."""

    default_item_class: type = Item
    default_selector_class = Selector

    def __init__(
        self,
        item: Any = None,
        selector: Any = None,
        response: Response | None = None,
        parent: itemloaders.ItemLoader | None = None,
        **context: Any,
    ) -> None:
        if selector is None and response is not None:
            selector = self.default_selector_class(response)
        context.update(response=response)
        super().__init__(item=item, selector=selector, parent=parent, **context)
