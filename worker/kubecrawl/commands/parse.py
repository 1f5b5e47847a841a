"""``kubecrawl parse URL --callback NAME``: what one callback yields for one page, as Scrapy's ``parse``.

The page goes through the crawl's own :class:`~kubecrawl.core.scraper.Scraper` (robots.txt, download,
status policy, ``meta['depth']``, offsite filter, errbacks, the callback's output normalised and
checked), so what is printed is what a crawl would schedule and store. Redirects are followed. With
``--depth N`` the requests of each level are processed, with their own callbacks, as the next level.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pprint
import sys
from typing import Any

import orjson

from ..backends.base import Lease
from ..errors import ConfigurationError
from ..request import Request


def _json_object(text: str | None, flag: str) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ConfigurationError(f"{flag}: not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigurationError(f"{flag}: expected a JSON object")
    return value


def _spider_args(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise ConfigurationError(f"-a expects NAME=VALUE, got {pair!r}")
        out[name.strip()] = value
    return out


def _request_view(req: Request) -> dict[str, Any]:
    return {"method": req.method, "url": req.url, "callback": req.callback or "parse"}


def rule_callback(spider: Any, url: str) -> str:
    """``--rules``: the callback of the first rule whose link extractor matches ``url`` (or ``parse``)."""
    rules = getattr(spider, "rules", None)
    if not rules:
        raise ConfigurationError(f"--rules: spider {spider.name!r} has no CrawlSpider rules; give --callback")
    for rule in rules:
        if rule.link_extractor.matches(url):
            cb = rule.callback
            return str(getattr(cb, "__name__", cb)) if cb else "parse"
    raise ConfigurationError(f"--rules: no rule of spider {spider.name!r} matches {url}")


async def _run(args: argparse.Namespace, cls: type, settings: Any) -> list[dict[str, Any]]:
    from ..core.scraper import Scraper
    from ..downloader import Downloader
    from ..netguard import SSRFGuard, guard_enabled
    from ..pipelines import PipelineChain, load_pipeline
    from ..runner import _maybe_await, build_spider
    from ..stats import Stats

    stats = Stats()
    spider = build_spider(cls, settings, stats, _spider_args(args.spider_args))  # type: ignore[arg-type]
    spider.settings = settings
    guard = SSRFGuard(settings.ssrf_allow) if guard_enabled(settings.ssrf_guard) else None
    downloader = Downloader(settings, guard, stats)
    pipelines = PipelineChain([])
    if args.pipelines:
        refs = [*settings.item_pipelines, *spider.pipelines]
        pipelines = PipelineChain(
            [p for p in (load_pipeline(r, lambda: getattr(spider, "crawler", None)) for r in refs) if p]
        )
    scraper = Scraper(spider, settings, downloader, pipelines, stats, item_key=[], wire=False)
    meta = _json_object(args.meta, "--meta")
    cb_kwargs = _json_object(args.cbkwargs, "--cbkwargs")
    from ..scrapy.http import Request as ScrapyRequest

    callback = args.callback
    if callback is None and args.rules:
        callback = rule_callback(spider, args.url)
    first = ScrapyRequest(args.url, callback=callback, meta=meta, cb_kwargs=cb_kwargs, dont_filter=True)
    levels: list[dict[str, Any]] = []
    try:
        await pipelines.open(spider)
        await _maybe_await(spider.opened())
        todo: list[Request] = [first]
        for level in range(1, max(1, args.depth) + 1):
            items: list[Any] = []
            requests: list[Request] = []
            for req in todo:
                n = 0
                while True:
                    redirects = stats["redirects"]
                    oc = await scraper.process(Lease(f"parse-{level}-{n}", req))
                    n += 1
                    if stats["redirects"] > redirects and oc.requests and not oc.items:
                        req = oc.requests[0]  # the follow-up of a redirect: the same level
                        continue
                    break
                items.extend(orjson.loads(r.data) for r in oc.items)
                requests.extend(oc.requests)
            levels.append({"level": level, "items": items, "requests": requests})
            todo = requests
            if not todo:
                break
        await _maybe_await(spider.closed("finished"))
    finally:
        await pipelines.close(spider)
        await downloader.close()
    errors = {k[6:]: v for k, v in stats.counts.items() if k.startswith("error:")}
    if errors:
        sys.stderr.write(f"errors: {errors}\n")
    return levels


def run_parse(args: argparse.Namespace) -> int:
    from ..logs import setup_logging
    from . import _project, command_settings, pick_spider

    project = _project()
    cls = pick_spider(project, args.spider, args.url, required=True)
    assert cls is not None
    settings = command_settings(project, cls, args)
    setup_logging(settings.log_level if args.log_level else "WARNING", "text", settings.log_file)
    levels = asyncio.run(_run(args, cls, settings))
    out = sys.stdout
    for lv in levels:
        items = [] if args.noitems else lv["items"]
        reqs = [] if args.nolinks else [_request_view(r) for r in lv["requests"]]
        if args.json:
            out.write(json.dumps({"level": lv["level"], "items": items, "requests": reqs}, ensure_ascii=False) + "\n")
            continue
        out.write(f"\n>>> STATUS DEPTH LEVEL {lv['level']} <<<\n")
        if not args.noitems:
            out.write("# Scraped Items  " + "-" * 60 + "\n")
            out.write(pprint.pformat(items) + "\n")
        if not args.nolinks:
            out.write("\n# Requests  " + "-" * 65 + "\n")
            out.write(pprint.pformat([f"<{r['method']} {r['url']}> ({r['callback']})" for r in reqs]) + "\n")
    return 0 if levels else 1
