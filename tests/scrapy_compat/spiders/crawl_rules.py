# Written for kubecrawl's tests (Apache-2.0, like kubecrawl): a plain Scrapy spider in the style
# Scrapy users write, run unchanged by real Scrapy and, with only the mechanical import change, by
# kubecrawl. (Third-party spiders were run this way during development but are not kept in the repo.)
from scrapy import Request  # noqa: F401 - imported as real spiders often do
from scrapy.linkextractors import LinkExtractor  # noqa: F401
from scrapy.selector import Selector  # noqa: F401
from scrapy.spiders import CrawlSpider, Rule


class RulesSpider(CrawlSpider):
    """A CrawlSpider with one catch-all Rule (the default LinkExtractor) and allowed_domains."""

    name = "rules"
    allowed_domains = ["quotes.toscrape.com"]
    start_urls = ["http://quotes.toscrape.com/"]
    rules = [Rule(callback="parse_quotes", follow=True)]

    def parse_quotes(self, response):
        for block in response.css("div.quote"):
            yield {
                "author_link": block.xpath(".//span/a/@href").get(),
                "text": block.xpath('.//span[@class="text"]/text()').get(),
            }
