# Written for kubecrawl's tests (Apache-2.0, like kubecrawl): a plain Scrapy spider in the style
# Scrapy users write, run unchanged by real Scrapy and, with only the mechanical import change, by
# kubecrawl. (Third-party spiders were run this way during development but are not kept in the repo.)
import scrapy


class PagerCSS(scrapy.Spider):
    """Quotes with CSS selectors and Scrapy's older extract()/extract_first() API; follows the pager."""

    name = "pager-css"
    start_urls = ["http://quotes.toscrape.com/"]

    def parse(self, response):
        for block in response.css("div.quote"):
            yield {
                "text": block.css("span.text::text").extract_first(),
                "author": block.css("small.author::text").extract_first(),
                "tags": block.css("div.tags > a.tag::text").extract(),
            }
        nxt = response.css("li.next > a::attr(href)").extract_first()
        if nxt is not None:
            yield scrapy.Request(response.urljoin(nxt))
