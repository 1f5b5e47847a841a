# Written for kubecrawl's tests (Apache-2.0, like kubecrawl): a plain Scrapy spider in the style
# Scrapy users write, run unchanged by real Scrapy and, with only the mechanical import change, by
# kubecrawl. (Third-party spiders were run this way during development but are not kept in the repo.)
import scrapy


class PagerXPath(scrapy.Spider):
    """The same quotes with XPath; the next page through response.follow."""

    name = "pager-xpath"
    start_urls = ["http://quotes.toscrape.com/"]

    def parse(self, response):
        for block in response.xpath('//div[@class="quote"]'):
            yield {
                "text": block.xpath('./span[@class="text"]/text()').get(),
                "author": block.xpath('.//small[@class="author"]/text()').get(),
                "tags": block.xpath('.//div[@class="tags"]/a[@class="tag"]/text()').getall(),
            }
        for href in response.xpath('//li[@class="next"]/a/@href').getall():
            yield response.follow(href, callback=self.parse)
