"""Scrapy's ``Selector``: parsel's, also built from a response (``Selector(response)``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import parsel
from parsel import SelectorList

if TYPE_CHECKING:
    from ..response import Response


class Selector(parsel.Selector):
    __slots__ = ("response",)

    def __init__(
        self, response: Response | None = None, text: str | None = None, type: str | None = None, **kwargs: Any
    ) -> None:
        self.response = response
        if response is not None and text is None and "root" not in kwargs:
            kwargs.setdefault("base_url", response.url)
            root = response.selector.root
            super().__init__(root=root, type=type or response.selector.type, **kwargs)
            return
        super().__init__(text=text, type=type, **kwargs)


__all__ = ["Selector", "SelectorList"]
