from urllib.parse import urlsplit

import scrapy

from quotesproject.items import QuoteItem


class QuotesSpider(scrapy.Spider):
    """Every quote, page after page; ``-a tag=NAME`` keeps to one tag, ``-a base=URL`` points elsewhere."""

    name = "quotes"
    allowed_domains = ["quotes.toscrape.com"]

    def __init__(self, base="http://quotes.toscrape.com", tag=None, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.allowed_domains = [urlsplit(base).hostname]
        self.start_urls = [f"{base}/tag/{tag}/" if tag else f"{base}/"]

    def parse(self, response):
        for quote in response.css("div.quote"):
            yield QuoteItem(
                text=quote.css("span.text::text").get(),
                author=quote.css("small.author::text").get(),
                tags=quote.css("div.tags a.tag::text").getall(),
            )
        next_page = response.css("li.next a::attr(href)").get()
        if next_page is not None:
            yield response.follow(next_page, callback=self.parse)
