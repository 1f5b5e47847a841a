"""A 5-minute kubecrawl spider: every book of a books.toscrape.com-style shop.

kubecrawl crawl examples/books.py -o books.jsonl          # the real sandbox shop
kubecrawl demo -o books.jsonl                             # the same spider on a bundled copy
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from kubecrawl import Request, Response, Spider

RATINGS = {"One": 1, "Two": 2, "Three": 3, "Four": 4, "Five": 5}


class BooksSpider(Spider):
    name = "books"
    start_urls = ["http://books.toscrape.com/"]
    custom_settings = {"concurrency": 8, "item_key": ["url"]}

    async def parse(self, response: Response) -> AsyncIterator[Request]:
        """A catalogue page: follow every book, then the next page."""
        for href in response.css("article.product_pod h3 a::attr(href)").getall():
            yield response.follow(href, self.parse_book)
        next_page = response.css("li.next a::attr(href)").get()
        if next_page:
            yield response.follow(next_page, self.parse)

    async def parse_book(self, response: Response) -> AsyncIterator[dict[str, Any]]:
        """A book page: one item."""
        rating = (response.css("p.star-rating::attr(class)").get() or "").split()[-1:]
        yield {
            "url": response.url,
            "title": response.css("div.product_main h1::text").get(),
            "price": float((response.css("p.price_color::text").get() or "0").lstrip("£")),
            "rating": RATINGS.get(rating[0], 0) if rating else 0,
            "in_stock": "In stock" in (response.css("p.availability::text").get() or ""),
            "description": response.xpath("//div[@id='product_description']/following-sibling::p[1]/text()").get(),
        }
