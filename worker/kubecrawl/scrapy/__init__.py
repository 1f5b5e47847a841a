"""Scrapy's public import paths over kubecrawl's engine: ``import kubecrawl.scrapy as scrapy``.

A Scrapy spider runs with its imports changed mechanically (``import scrapy`` becomes
``import kubecrawl.scrapy as scrapy``, ``from scrapy.X import Y`` becomes ``from kubecrawl.scrapy.X
import Y``). What maps to what, what differs and what is not supported: docs/scrapy.md.
"""

from __future__ import annotations

from . import signals
from .http import FormRequest, Headers, HtmlResponse, JsonRequest, Request, TextResponse, XmlResponse
from .item import Field, Item
from .selector import Selector
from .spiders import Spider

__all__ = [
    "Field",
    "FormRequest",
    "Headers",
    "HtmlResponse",
    "Item",
    "JsonRequest",
    "Request",
    "Selector",
    "Spider",
    "TextResponse",
    "XmlResponse",
    "signals",
]
