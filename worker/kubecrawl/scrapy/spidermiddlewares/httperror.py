"""Scrapy's ``HttpError``: what a Scrapy-style errback's ``failure.value`` is for a non-2xx response."""

from __future__ import annotations

from typing import Any

from ...errors import IgnoreRequest


class HttpError(IgnoreRequest):
    """A response whose status the spider does not handle; ``response`` is that response."""

    def __init__(self, response: Any, *args: Any) -> None:
        self.response = response
        super().__init__(*args or (f"Ignoring non-200 response ({response.status})",))
