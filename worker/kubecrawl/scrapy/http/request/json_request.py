"""Scrapy's ``JsonRequest``: a JSON body (keys sorted, as Scrapy does) and JSON ``Accept``/``Content-Type``."""

from __future__ import annotations

import json
from typing import Any

from . import Request


class JsonRequest(Request):
    __slots__ = ()

    def __init__(self, *args: Any, data: Any = None, dumps_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        dumps = dict(dumps_kwargs or {})
        dumps.setdefault("sort_keys", True)
        has_body = bool(kwargs.get("body")) or len(args) > 4
        if data is not None and not has_body:
            kwargs["body"] = json.dumps(data, **dumps)
            if "method" not in kwargs and len(args) < 3:
                kwargs["method"] = "POST"
        headers = dict(kwargs.pop("headers", None) or {})
        headers.setdefault("Content-Type", "application/json")
        headers.setdefault("Accept", "application/json, text/javascript, */*; q=0.01")
        kwargs["headers"] = headers
        super().__init__(*args, **kwargs)
