"""Run one spider file under real Scrapy and write its items as JSON lines (executed by Scrapy's Python).

Usage: python run_scrapy.py SPIDER_FILE OUTPUT_FILE SPIDER_ARGS_JSON
This file runs in the Scrapy virtualenv, so it imports nothing from kubecrawl or the tests.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import sys


def main() -> int:
    spider_file, output, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    from scrapy import Spider
    from scrapy.crawler import CrawlerProcess

    sys.path.insert(0, os.path.dirname(os.path.abspath(spider_file)))  # the project's middlewares.py
    spec = importlib.util.spec_from_file_location("ported_spider", spider_file)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    found = [
        obj
        for obj in vars(mod).values()
        if inspect.isclass(obj) and issubclass(obj, Spider) and obj.__module__ == mod.__name__
    ]
    if len(found) != 1:
        sys.stderr.write(f"expected one spider class in {spider_file}, found {found}\n")
        return 2
    process = CrawlerProcess(
        settings={
            "LOG_LEVEL": "WARNING",
            "TELNETCONSOLE_ENABLED": False,
            "FEEDS": {output: {"format": "jsonlines", "encoding": "utf8"}},
        }
    )
    process.crawl(found[0], **args)
    process.start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
