"""Sina rolling news (新浪滚动新闻) as a Python spider; the same crawl as examples/sina_roll.yaml.

    kubecrawl crawl examples/sina_roll.py --every 60 --state-dir state -o news.jsonl
    kubecrawl crawl examples/sina_roll.py -s base_url=http://127.0.0.1:PORT ...   # a local copy

The roll API's URL never changes, so the spider is ``incremental``: its start requests bypass
request dedup every round, while article pages are fetched once. Items are deduplicated by title and
source, not URL, because Sina re-publishes stories under new URLs.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from kubecrawl import Request, Response, Spider

API = "https://feed.mix.sina.com.cn/api/roll/get?pageid=153&lid=2509&num=50&page={page}"
ARTICLE = re.compile(r"\.s?html?$")


class SinaRollSpider(Spider):
    name = "sina_roll"
    incremental = True
    item_key = ["title", "source"]
    pages = 3
    custom_settings = {"concurrency": 8, "concurrency_per_host": 4, "item_dedup": "skip"}

    def api_url(self, page: int) -> str:
        url = API.format(page=page)
        base = getattr(getattr(self, "settings", None), "base_url", None)
        return url.replace("https://feed.mix.sina.com.cn", base.rstrip("/")) if base else url

    async def start_requests(self) -> AsyncIterator[Request]:
        for page in range(1, self.pages + 1):
            yield Request(self.api_url(page), self.parse_roll, dont_filter=True)

    async def parse_roll(self, response: Response) -> AsyncIterator[Request]:
        for row in response.json().get("result", {}).get("data", []):
            url = row.get("url") or ""
            if not ARTICLE.search(url):
                continue
            ctime = row.get("ctime")
            meta = {
                "ctime": datetime.fromtimestamp(int(ctime), tz=UTC).isoformat() if ctime else None,
                "media_name": (row.get("media_name") or "").strip(),
            }
            yield response.follow(url, self.parse_article, meta=meta)

    async def parse_article(self, response: Response) -> AsyncIterator[dict[str, Any]]:
        title = " ".join(response.css("h1.main-title::text").get("").split())
        if not title:
            return
        date_text = " ".join(response.css(".date::text").get("").split())
        try:
            date = datetime.strptime(date_text, "%Y年%m月%d日 %H:%M").isoformat()
        except ValueError:
            date = None
        paragraphs = [" ".join(p.split()) for p in response.css("#article p::text").getall()]
        yield {
            "url": response.url,
            "title": title,
            "source": " ".join(response.css(".source::text").get("").split()),
            "date": date,
            "ctime": response.meta.get("ctime"),
            "body": "\n".join(p for p in paragraphs if p),
        }
