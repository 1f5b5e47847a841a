from urllib.parse import urlsplit

import scrapy


class AuthorsSpider(scrapy.Spider):
    """One item per author page reached from the quotes' "(about)" links."""

    name = "authors"
    allowed_domains = ["quotes.toscrape.com"]

    def __init__(self, base="http://quotes.toscrape.com", *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.allowed_domains = [urlsplit(base).hostname]
        self.start_urls = [f"{base}/"]

    def parse(self, response):
        yield from response.follow_all(response.css(".author + a"), callback=self.parse_author)
        yield from response.follow_all(response.css("li.next a"), callback=self.parse)

    def parse_author(self, response):
        yield {
            "name": response.css("h3.author-title::text").get(default="").strip(),
            "born": response.css(".author-born-date::text").get(),
        }
