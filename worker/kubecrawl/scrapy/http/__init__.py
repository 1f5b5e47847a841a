"""Scrapy's ``scrapy.http`` names. Every response is a :class:`kubecrawl.Response`: ``HtmlResponse``,
``TextResponse`` and ``XmlResponse`` are aliases of it (it decodes text and builds selectors for any
body), and a Scrapy spider's ``response.headers`` is a :class:`Headers` (bytes values, ``getlist``)."""

from __future__ import annotations

from ...response import Response
from .headers import Headers
from .request import Request
from .request.form import FormRequest
from .request.json_request import JsonRequest

HtmlResponse = Response
TextResponse = Response
XmlResponse = Response

__all__ = [
    "FormRequest",
    "Headers",
    "HtmlResponse",
    "JsonRequest",
    "Request",
    "Response",
    "TextResponse",
    "XmlResponse",
]
