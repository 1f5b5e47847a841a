"""Issue 20 item 6: a catastrophic regex in a declarative spider. Python's backtracking ``re`` takes
seconds on 27 characters for ``^(a+)+$`` and doubles with each one more; declarative spiders run their
regexes with RE2 (linear time), and what RE2 cannot do is refused when the spider is loaded."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import orjson
import pytest

from kubecrawl.declarative import spider_class_from_rules
from kubecrawl.errors import ConfigurationError
from tests.helpers.crawl import crawl
from tests.helpers.httpserver import TestHTTPServer

EVIL = "^(a+)+$"


def _spider(url: str, pattern: str) -> type:
    return spider_class_from_rules(
        {
            "name": "redos",
            "start": {"urls": [url]},
            "callbacks": {
                "parse": {
                    "follow": [{"css": "a", "allow": [pattern, r"/\d+$"], "callback": "parse"}],
                    "items": [
                        {
                            "fields": {
                                "url": {"response": "url"},
                                "title": {"css": "title::text", "regex": "(a+)+!", "required": True},
                                "whole": {"css": "title::text", "post": [f"re:{pattern}"]},
                                "word": {"css": "h1::text", "regex": r"(\w+)"},
                            }
                        }
                    ],
                }
            },
        }
    )


async def test_a_catastrophic_pattern_runs_in_linear_time(http_server: TestHTTPServer, tmp_path: Path) -> None:
    # the 27-character page, and one of 60 (2^33 times the backtracking work of the first),
    # each linking to a URL of the same shape that the follow rule's allow pattern tests
    for n, nxt in ((26, 59), (59, None)):
        text = "a" * n + "!"
        link = f"<a href='/{nxt}'>next</a>" if nxt else ""
        http_server.html(f"/{n}", f"<title>{text}</title><h1>新闻 {n}</h1><a href='/{text}'>x</a>{link}")
    out = tmp_path / "items.jsonl"
    t0 = time.monotonic()
    spider = _spider(http_server.url("/26"), EVIL)()
    stats, _ = await asyncio.wait_for(crawl(spider, obey_robots=False, output=str(out)), 60)
    elapsed = time.monotonic() - t0
    assert stats["items"] == 2 and stats["errors"] == 0
    assert elapsed < 30, elapsed  # Python's re needs about 7 s for the first page and years for the second
    items = sorted((orjson.loads(line) for line in out.read_bytes().splitlines()), key=lambda i: len(i["url"]))
    # the same group as Python's re finds (fast here: the pattern matches, nothing to backtrack)
    assert [i["title"] for i in items] == [re.search("(a+)+!", "a" * n + "!").group(1) for n in (26, 59)]
    assert [i["word"] for i in items] == ["新闻", "新闻"]  # \w is Unicode, as in Python's re
    assert all(i.get("whole") in (None, [], "") for i in items)  # ^(a+)+$ matches no title ending in "!"
    assert http_server.paths().count("/59") == 1


@pytest.mark.parametrize("pattern", [r"(a)\1", "page(?=/)", "(?<!x)y"])
def test_a_pattern_re2_cannot_run_is_a_configuration_error(pattern: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        _spider("http://127.0.0.1/", pattern)
    assert "linear time" in str(info.value) and pattern in str(info.value).replace("\\\\", "\\")
