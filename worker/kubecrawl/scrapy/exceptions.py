"""Scrapy's ``scrapy.exceptions`` names, mapped onto kubecrawl's one error tree (:mod:`kubecrawl.errors`)."""

from __future__ import annotations

from ..errors import CloseSpider, DropItem, IgnoreRequest, NotConfigured


class NotSupported(Exception):
    """Raised for a feature that is not supported (Scrapy's name)."""


class UsageError(Exception):
    """Wrong command-line usage (Scrapy's name)."""


__all__ = ["CloseSpider", "DropItem", "IgnoreRequest", "NotConfigured", "NotSupported", "UsageError"]
