"""Scrapy's signals (``scrapy.signals``): the objects ``crawler.signals.connect(receiver, signal=...)`` takes.

Sent by kubecrawl's engine (docs/scrapy.md): ``spider_opened(spider)``, ``spider_closed(spider,
reason)``, ``item_scraped(item, response, spider)``, ``item_dropped(item, response, exception,
spider)``, ``request_scheduled(request, spider)``, ``request_dropped(request, spider)`` (a request this
process already knows as a duplicate; the store's own dedup counts its drops as ``filtered`` without
a signal), ``response_received(response, request, spider)``. The others exist so that extensions
connecting to them import and run, and are never sent.
"""

from __future__ import annotations

engine_started = object()
engine_stopped = object()
spider_opened = object()
spider_idle = object()
spider_closed = object()
spider_error = object()
request_scheduled = object()
request_dropped = object()
request_reached_downloader = object()
request_left_downloader = object()
response_received = object()
response_downloaded = object()
headers_received = object()
bytes_received = object()
item_scraped = object()
item_dropped = object()
item_error = object()
feed_slot_closed = object()
feed_exporter_closed = object()

#: the signals kubecrawl sends
SENT = frozenset(
    {spider_opened, spider_closed, item_scraped, item_dropped, request_scheduled, request_dropped, response_received}
)
