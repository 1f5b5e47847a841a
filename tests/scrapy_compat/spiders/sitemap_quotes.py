# Written for kubecrawl's tests (Apache-2.0, like kubecrawl), after the SitemapSpider examples of
# Scrapy's documentation (sitemap_rules, sitemap_follow, sitemap_filter, robots.txt as a sitemap URL).
# --- a Scrapy spider: run unchanged by Scrapy, with the mechanical import change by kubecrawl ---
from scrapy.spiders import SitemapSpider


class QuotesSitemapSpider(SitemapSpider):
    name = "quotes-sitemap"
    sitemap_urls = ["http://quotes.toscrape.com/robots.txt"]
    sitemap_rules = [("/author/", "parse_author"), ("/page/", "parse_page"), ("/tag/", "parse_page")]
    sitemap_follow = ["/sitemap-"]

    def sitemap_filter(self, entries):
        for entry in entries:
            if entry.get("lastmod", "9999") >= "2020":  # index entries carry no lastmod here
                yield entry

    def parse_author(self, response):
        yield {"author": response.css("h3.author-title::text").get().strip(), "depth": response.meta["depth"]}

    def parse_page(self, response):
        for quote in response.css("div.quote"):
            yield {"text": quote.css("span.text::text").get(), "page": response.url.split("/", 3)[3]}
