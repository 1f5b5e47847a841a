# Written for kubecrawl's tests (Apache-2.0, like kubecrawl): a plain Scrapy spider in the style
# Scrapy users write, run unchanged by real Scrapy and, with only the mechanical import change, by
# kubecrawl. (Third-party spiders were run this way during development but are not kept in the repo.)
from itemloaders.processors import MapCompose, TakeFirst
from w3lib.html import remove_tags

import scrapy
from scrapy.loader import ItemLoader


class Quote(scrapy.Item):
    text = scrapy.Field(input_processor=MapCompose(remove_tags, str.strip), output_processor=TakeFirst())
    author = scrapy.Field(input_processor=MapCompose(remove_tags), output_processor=TakeFirst())
    first_tag = scrapy.Field(input_processor=MapCompose(remove_tags), output_processor=TakeFirst())


class LoaderSpider(scrapy.Spider):
    """Items built by an ItemLoader; on the last page .attrib['href'] raises KeyError (a real-world bug
    kept on purpose: both frameworks must keep that page's items and count the callback error)."""

    name = "loader"
    start_urls = ["http://quotes.toscrape.com/page/1/"]

    def parse(self, response):
        for block in response.xpath('//div[@class="quote"]'):
            loader = ItemLoader(item=Quote(), selector=block)
            loader.add_xpath("text", ".//span/text()")
            loader.add_xpath("author", ".//span[2]/small/text()")
            loader.add_xpath("first_tag", ".//div/a/text()")
            yield loader.load_item()
        yield response.follow(response.css(".next a").attrib["href"], callback=self.parse)
